//! The shim's alert file as a test reads it: JSON lines, one record per alerted or blocked
//! exec, told apart by `container.id`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AlertFileError {
    #[error("cannot read the alert file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not a JSON record: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

pub struct AlertFile {
    path: PathBuf,
}

impl AlertFile {
    pub fn new(path: &Path) -> Self {
        AlertFile { path: path.to_owned() }
    }

    /// The records whose `container.id` is CONTAINER (none while the file does not exist).
    pub fn records_for(&self, container: &str) -> Result<Vec<Value>, AlertFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AlertFileError::Read { path: self.path.clone(), source }),
        };
        let mut records = Vec::new();
        for (index, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let record: Value = serde_json::from_str(line).map_err(|source| AlertFileError::Parse {
                path: self.path.clone(),
                line: index + 1,
                source,
            })?;
            if field(&record, "/container/id") == Some(container) {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// The records about CONTAINER once there are at least COUNT of them, or those there
    /// are after TIMEOUT: the shim writes alerts from a thread of its own, so a record may
    /// land shortly after the exec it is about was answered.
    pub async fn wait_for(
        &self,
        container: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Value>, AlertFileError> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.records_for(container)?;
            if records.len() >= count || Instant::now() >= deadline {
                return Ok(records);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A string field of a record by JSON pointer (`/orchestrator/namespace`).
pub fn field<'a>(record: &'a Value, pointer: &str) -> Option<&'a str> {
    record.pointer(pointer).and_then(Value::as_str)
}
