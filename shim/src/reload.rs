//! Hot reload: every policy file that a running container uses, and the shim's
//! config.toml, are checked every [`INTERVAL`]. A changed policy is compiled and, if
//! valid, replaces the policy for every exec decided from then on, without restarting
//! anything. A changed config.toml is parsed and, if valid, applied to the running pod
//! (the deadline, the fail action, the repeat window and the alert sinks: see
//! `task::ExecguardTask`). A file that does not compile or parse is rejected with its
//! errors in the log (FILE:LINE:COLUMN), and the last good one stays in force.
//!
//! Polling rather than inotify: a ConfigMap mounted into the installer's pod is replaced
//! through a symlink swap that inotify watches on the file miss, and a stat every two
//! seconds per policy file costs nothing measurable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use execguard_policy::{Mode, Policy};

use execguard_supervisor::PolicySlot;

use crate::config::ShimConfig;
use crate::last_good;

/// Applies a changed configuration to the running pod, or says why it cannot.
pub type ApplyConfig = Box<dyn Fn(&ShimConfig) -> Result<(), String> + Send + Sync>;

struct WatchedConfig {
    /// What the first Create was given (the ConfigPath runtime option): read the same way.
    explicit: Option<PathBuf>,
    path: PathBuf,
    seen: Option<Stamp>,
    apply: ApplyConfig,
}

/// How often files are checked: a changed policy applies within this (plus the time to
/// compile it, milliseconds).
pub const INTERVAL: Duration = Duration::from_secs(2);

/// What tells one version of a file from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // metadata() follows symlinks: a swapped ConfigMap link shows as a new inode.
    std::fs::metadata(path).ok().map(|m| Stamp { modified: m.modified().ok(), len: m.len(), inode: m.ino() })
}

#[derive(Clone)]
struct Watched {
    path: PathBuf,
    mode: Option<Mode>,
    slot: Arc<PolicySlot>,
    seen: Option<Stamp>,
}

/// The policy files in use and the configuration, checked by one task.
#[derive(Default)]
pub struct Reloader {
    watched: Mutex<Vec<Watched>>,
    config: Mutex<Option<WatchedConfig>>,
}

impl Reloader {
    /// Starts watching `path`, which `slot` was just loaded from (with `mode` applied).
    pub fn watch(&self, path: PathBuf, mode: Option<Mode>, slot: Arc<PolicySlot>) {
        let seen = stamp(&path);
        self.lock().push(Watched { path, mode, slot, seen });
    }

    /// Starts watching the configuration file the pod's first Create loaded.
    pub fn watch_config(&self, explicit: Option<PathBuf>, apply: ApplyConfig) {
        let (path, _) = ShimConfig::file(explicit.as_deref());
        let seen = stamp(&path);
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(WatchedConfig { explicit, path, seen, apply });
    }

    fn check_config(&self) {
        // Only this check uses the entry after it is set: holding it while applying is free.
        let mut config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(watched) = config.as_mut() else { return };
        let now = stamp(&watched.path);
        if now == watched.seen {
            return;
        }
        watched.seen = now;
        let path = watched.path.display();
        let applied = ShimConfig::load(watched.explicit.as_deref())
            .map_err(|error| error.to_string())
            .and_then(|(config, _)| (watched.apply)(&config).map(|()| config));
        match applied {
            Ok(config) => tracing::info!(
                config = %path,
                deadline_ms = config.deadline_ms,
                fail = %config.fail,
                repeat_window_secs = config.repeat_window_secs,
                "configuration reloaded: deadline, fail action, repeat window and alert sinks applied to the running pod"
            ),
            Err(error) => {
                tracing::error!(config = %path, "configuration not reloaded, the last good one stays in force: {}", error.replace('\n', "; "))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        // Entries are pushed whole and only their stamp changes: always usable.
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks every file once; reloads those that changed. The list is locked only to copy
    /// it and to note what was seen: a compile never holds up a Create that starts
    /// watching another file.
    pub fn check(&self) {
        self.check_config();
        let watched: Vec<Watched> = self.lock().clone();
        for (index, watched) in watched.into_iter().enumerate() {
            let now = stamp(&watched.path);
            if now == watched.seen {
                continue;
            }
            // Entries are only ever appended, so the index still names this one.
            if let Some(entry) = self.lock().get_mut(index) {
                entry.seen = now;
            }
            let path = watched.path.display();
            match Policy::load_with_text(&watched.path) {
                Ok((policy, text)) => {
                    last_good::remember(Path::new(last_good::DIR), &watched.path, &text);
                    let policy = policy.with_mode(watched.mode);
                    tracing::info!(policy = %path, mode = %policy.mode(), rules = policy.rule_count(), "policy reloaded");
                    watched.slot.set(policy);
                }
                Err(errors) => {
                    // One line: log pipelines split records on newlines.
                    let errors = errors.to_string().replace("\n  hint:", " hint:").replace('\n', "; ");
                    tracing::error!(policy = %path, "policy not reloaded, the last good one stays in force: {errors}");
                }
            }
        }
    }

    /// Checks forever, every [`INTERVAL`].
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(INTERVAL);
        loop {
            ticks.tick().await;
            let reloader = self.clone();
            // Reading and compiling files blocks: keep it off the runtime's workers.
            if let Err(error) = tokio::task::spawn_blocking(move || reloader.check()).await {
                tracing::error!(%error, "policy reload check failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use execguard_policy::{Action, ExecEvent};

    #[test]
    fn a_changed_file_replaces_the_policy_and_a_broken_one_does_not() {
        let dir = std::env::temp_dir().join(format!("execguard-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        let rule = |action: &str| {
            format!("mode = \"enforce\"\n[[rules]]\nid = \"r\"\nname = \"n\"\ndescription = \"d\"\nseverity = \"low\"\naction = \"{action}\"\nwhen.name = [\"nc\"]\n")
        };
        std::fs::write(&path, rule("block")).unwrap();
        let slot = PolicySlot::new(Policy::load(&path).unwrap());
        let reloader = Reloader::default();
        reloader.watch(path.clone(), None, slot.clone());
        let nc = ExecEvent::new("/bin/nc", vec!["nc".into()]);
        assert_eq!(slot.get().decide(&nc).action, Action::Block);

        reloader.check();
        assert_eq!(slot.get().decide(&nc).action, Action::Block, "unchanged file: same policy");
        std::fs::write(&path, rule("alert") + "\n").unwrap();
        reloader.check();
        assert_eq!(slot.get().decide(&nc).action, Action::Alert, "changed file: new policy");
        std::fs::write(&path, "mode = \"enforce\"\n[[rules]]\nid = 1\n").unwrap();
        reloader.check();
        assert_eq!(slot.get().decide(&nc).action, Action::Alert, "broken file: the last good policy stays");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
