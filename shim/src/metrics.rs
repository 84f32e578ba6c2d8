//! The pod's Prometheus counters as a file. A node runs one shim per pod, each its own
//! process: rather than one HTTP port per pod (which a scraper would have to discover),
//! every shim replaces `DIR/execguard-<pod>.prom` atomically every few seconds, which
//! node_exporter's textfile collector serves with the node's other metrics and
//! `execguard metrics` prints merged. The samples carry the pod's labels, so no two files
//! hold the same series. The file goes when the shim exits; one left by a killed shim
//! shows its age in node_exporter's `node_textfile_mtime_seconds`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use execguard_supervisor::metrics::label_value;
use execguard_supervisor::Supervisor;
use sha2::{Digest, Sha256};

/// How often the file is rewritten: below the usual 15-60 s scrape interval.
const INTERVAL: Duration = Duration::from_secs(5);

/// Whose counts a file holds: the containerd namespace and the pod's sandbox (the
/// container's id for a container without a pod), and the Kubernetes pod when CRI says.
pub struct PodLabels {
    pub containerd_namespace: String,
    pub sandbox: String,
    pub pod: Option<(String, String)>,
}

impl PodLabels {
    fn render(&self) -> String {
        let mut labels = format!(
            r#"containerd_namespace="{}",sandbox="{}""#,
            label_value(&self.containerd_namespace),
            label_value(&self.sandbox)
        );
        if let Some((namespace, name)) = &self.pod {
            labels.push_str(&format!(r#",pod_namespace="{}",pod="{}""#, label_value(namespace), label_value(name)));
        }
        labels
    }

    /// The file's name: unique per pod and safe as a path whatever the ids hold.
    pub fn file_name(&self) -> String {
        let digest = Sha256::digest(format!("{}/{}", self.containerd_namespace, self.sandbox).as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("execguard-{hex}.prom")
    }
}

/// Writes `supervisor`'s counts to `dir` now and every [`INTERVAL`] until the runtime
/// ends; returns the file's path, for removing it at exit.
pub fn spawn_textfile(supervisor: Arc<Supervisor>, dir: &Path, labels: &PodLabels) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the metrics directory {}: {e}", dir.display()))?;
    let path = dir.join(labels.file_name());
    let labels = labels.render();
    write(&path, &supervisor.render_metrics(&labels))?;
    let file = path.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(INTERVAL);
        let mut failing = false;
        loop {
            ticks.tick().await;
            match write(&file, &supervisor.render_metrics(&labels)) {
                Ok(()) => failing = false,
                // Once per failing spell, not every 5 s.
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot write the metrics file");
                }
                Err(_) => {}
            }
        }
    });
    Ok(path)
}

/// Replaces the file whole: a reader never sees half of it.
fn write(path: &Path, text: &str) -> Result<(), String> {
    let staged = path.with_extension("prom.tmp");
    std::fs::write(&staged, text)
        .and_then(|()| std::fs::rename(&staged, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_pod_and_escape_its_ids() {
        let labels = PodLabels {
            containerd_namespace: "k8s.io".into(),
            sandbox: "abc\"def".into(),
            pod: Some(("shop".into(), "web".into())),
        };
        assert_eq!(
            labels.render(),
            r#"containerd_namespace="k8s.io",sandbox="abc\"def",pod_namespace="shop",pod="web""#
        );
        assert!(labels.file_name().starts_with("execguard-") && labels.file_name().ends_with(".prom"));
        let other = PodLabels { sandbox: "other".into(), ..labels };
        assert_ne!(other.file_name(), PodLabels { sandbox: "abc\"def".into(), ..other }.file_name());
    }
}
