//! The OCI bundles containerd writes for its tasks, read to tell which containers the shim
//! gave a seccomp listener.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// `linux.seccomp.listenerPath` of task ID's config.json in NAMESPACE, where containerd
/// (its runtime v2 plugin, under its state directory STATE) keeps the bundle while the
/// task exists. The shim sets it on every container it supervises; runc connects to it.
pub fn seccomp_listener(state: &Path, namespace: &str, id: &str) -> Result<Option<String>, BundleError> {
    let path = state.join("io.containerd.runtime.v2.task").join(namespace).join(id).join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?;
    let spec: Value = serde_json::from_str(&text).map_err(|source| BundleError::Parse { path, source })?;
    Ok(spec.pointer("/linux/seccomp/listenerPath").and_then(Value::as_str).map(str::to_owned))
}
