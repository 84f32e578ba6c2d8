//! The last good copy of each policy file, for `policy_fallback = "last-good"`: a policy
//! that is missing, unreadable or broken when a container is created can then be replaced
//! by the last version of the same file that compiled on this node. Copies live on tmpfs
//! under [`DIR`]: they outlive the shims (a new pod gets what an older one loaded) but not
//! a reboot, after which the node's installer puts the policies back.

use std::path::{Path, PathBuf};

use execguard_policy::Policy;
use sha2::{Digest, Sha256};

pub const DIR: &str = "/run/execguard/last-good";

fn copy_of(dir: &Path, policy_file: &Path) -> PathBuf {
    let digest = Sha256::digest(policy_file.as_os_str().as_encoded_bytes());
    let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.toml"))
}

/// Keeps `text`, which just compiled, as the last good version of `policy_file`. Written
/// to a temporary name and renamed, so that a reader never sees half a copy.
pub fn remember(dir: &Path, policy_file: &Path, text: &str) {
    let copy = copy_of(dir, policy_file);
    let temporary = copy.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&temporary, text))
        .and_then(|()| std::fs::rename(&temporary, &copy));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        tracing::warn!(%error, copy = %copy.display(), "cannot keep the last good copy of {}", policy_file.display());
    }
}

/// The last good version of `policy_file`, compiled, if one was kept.
pub fn recall(dir: &Path, policy_file: &Path) -> Option<Policy> {
    let text = std::fs::read_to_string(copy_of(dir, policy_file)).ok()?;
    let origin = format!("{} (last good copy)", policy_file.display());
    Policy::parse(&text, &origin).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_kept_per_file_and_recalled() {
        let dir = std::env::temp_dir().join(format!("execguard-last-good-{}", std::process::id()));
        let text = "mode = \"monitor\"\n";
        remember(&dir, Path::new("/etc/execguard/a.toml"), text);
        let recalled = recall(&dir, Path::new("/etc/execguard/a.toml")).expect("kept");
        assert_eq!(recalled.mode(), execguard_policy::Mode::Monitor);
        assert!(recall(&dir, Path::new("/etc/execguard/b.toml")).is_none(), "per file");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
