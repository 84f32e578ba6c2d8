//! JSON lines sinks: a file shared by every shim of a node, and any writer (standard
//! error for `execguard run`).
//!
//! Many shims append to one file. Each record is one `write(2)` on a file opened with
//! `O_APPEND`, made under an exclusive `flock(2)` that every execguard writer takes, so
//! lines never interleave and a rotation never happens in the middle of one.
//!
//! Rotation by others: before each record the sink checks that the path still names the
//! file it holds open (device and inode). A file renamed away (logrotate's default,
//! `create`) or deleted is closed and the path opened anew, so no later record goes to
//! the rotated file. A file truncated in place (`copytruncate`) needs nothing: `O_APPEND`
//! writes at its new end. (copytruncate itself loses what is written between its copy and
//! its truncate unless the rotating program takes the same `flock`; prefer rename.)
//!
//! Rotation by the sink: past `max_bytes`, the writer holding the lock renames PATH.N-1 to
//! PATH.N, ..., PATH to PATH.1 and the next record opens a new PATH; the others notice as
//! above. PATH.1 is the newest, as logrotate names them, so `execguard alerts` reads both.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use crate::Sink;

fn line(record: &Value) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// Writes each record as a JSON line to a writer (one `write_all` and a flush per record).
pub struct JsonLinesSink<W: Write + Send> {
    name: String,
    out: W,
}

impl<W: Write + Send> JsonLinesSink<W> {
    pub fn new(name: &str, out: W) -> Self {
        JsonLinesSink { name: name.to_string(), out }
    }
}

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, record: &Value) -> io::Result<()> {
        self.out.write_all(&line(record)?)?;
        self.out.flush()
    }
}

/// Size rotation: past `max_bytes` (0: never) the file becomes PATH.1 and `keep` files
/// are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRotation {
    pub max_bytes: u64,
    pub keep: u32,
}

/// The node's alert file.
pub struct FileSink {
    path: PathBuf,
    rotation: FileRotation,
    /// The open file and the (device, inode) it had when opened.
    open: Option<(File, (u64, u64))>,
}

impl FileSink {
    /// Creates the file (and its directory) now, so that a path that cannot be written is
    /// an error of the configuration rather than of the first alert.
    pub fn new(path: &Path, rotation: FileRotation) -> io::Result<FileSink> {
        let context = |error: io::Error| io::Error::new(error.kind(), format!("{}: {error}", path.display()));
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(context)?;
        }
        let mut sink = FileSink { path: path.to_path_buf(), rotation, open: None };
        sink.reopen().map_err(context)?;
        Ok(sink)
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.open = None;
        // 0640: alerts carry command lines, which may hold secrets.
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(&self.path)?;
        let meta = file.metadata()?;
        self.open = Some((file, (meta.dev(), meta.ino())));
        Ok(())
    }

    /// Whether the path still names the open file.
    fn current(&self) -> bool {
        let Some((_, id)) = &self.open else { return false };
        std::fs::metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == *id)
    }

    fn rotated_name(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Shifts the rotated files up by one and makes the current file PATH.1. Runs under
    /// the lock on the current file, so only one writer rotates it.
    fn rotate(&self) -> io::Result<()> {
        let keep = self.rotation.keep.max(1);
        for n in (1..keep).rev() {
            let from = self.rotated_name(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated_name(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated_name(1))
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn write(&mut self, record: &Value) -> io::Result<()> {
        let line = line(record)?;
        // Bounded: each retry follows a rotation that happened between open and lock.
        for _ in 0..8 {
            if !self.current() {
                self.reopen()?;
            }
            let Some((file, id)) = self.open.take() else { continue };
            let mut locked = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io::Error::from(errno))?;
            // Rotated while this writer waited for the lock: write to the new file instead.
            let still_current = std::fs::metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == id);
            let outcome = if still_current {
                locked.write_all(&line).and_then(|()| {
                    let size = locked.metadata()?.len();
                    if self.rotation.max_bytes > 0 && size >= self.rotation.max_bytes {
                        self.rotate()?;
                    }
                    Ok(())
                })
            } else {
                Err(io::Error::from(io::ErrorKind::Interrupted))
            };
            let file = locked.unlock().map_err(|(_, errno)| io::Error::from(errno))?;
            self.open = Some((file, id));
            match outcome {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
        Err(io::Error::other(format!("{}: rotated again and again while writing", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("execguard-file-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole JSON lines"))
            .collect()
    }

    const NEVER: FileRotation = FileRotation { max_bytes: 0, keep: 1 };

    #[test]
    fn a_file_renamed_away_is_followed_by_a_new_one() {
        let dir = temp_dir("rename");
        let path = dir.join("alerts.jsonl");
        let mut sink = FileSink::new(&path, NEVER).unwrap();
        sink.write(&json!({"n": 1})).unwrap();
        std::fs::rename(&path, dir.join("alerts.jsonl.1")).unwrap();
        sink.write(&json!({"n": 2})).unwrap();
        assert_eq!(lines(&dir.join("alerts.jsonl.1")), vec![json!({"n": 1})]);
        assert_eq!(lines(&path), vec![json!({"n": 2})]);
        std::fs::remove_file(&path).unwrap();
        sink.write(&json!({"n": 3})).unwrap();
        assert_eq!(lines(&path), vec![json!({"n": 3})], "a deleted file is created again");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_truncated_in_place_is_written_from_its_start() {
        let dir = temp_dir("truncate");
        let path = dir.join("alerts.jsonl");
        let mut sink = FileSink::new(&path, NEVER).unwrap();
        sink.write(&json!({"n": 1})).unwrap();
        File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
        sink.write(&json!({"n": 2})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n", "no hole of zeros before it");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn size_rotation_keeps_n_files_newest_first() {
        let dir = temp_dir("size");
        let path = dir.join("alerts.jsonl");
        let mut sink = FileSink::new(&path, FileRotation { max_bytes: 20, keep: 2 }).unwrap();
        for n in 0..7 {
            // {"n":N,"pad":"xxxxxxxxxxxx"} is over 20 bytes: every record rotates.
            sink.write(&json!({"n": n, "pad": "xxxxxxxxxxxx"})).unwrap();
        }
        assert_eq!(lines(&dir.join("alerts.jsonl.1"))[0]["n"], 6);
        assert_eq!(lines(&dir.join("alerts.jsonl.2"))[0]["n"], 5);
        assert!(!dir.join("alerts.jsonl.3").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_path_that_cannot_be_created_is_an_error_naming_it() {
        let error = FileSink::new(Path::new("/proc/execguard/alerts.jsonl"), NEVER).err().unwrap();
        assert!(error.to_string().contains("/proc/execguard"), "{error}");
    }
}
