//! Recognising a known tool by its file rather than its name: a renamed copy of nc is nc.
//!
//! Each filter (one container, or one `execguard run` tree) learns, at its first exec, the
//! files that the known tool names resolve to in that process's root (`/usr/bin/nc`, ...).
//! An executed file is then that tool when it is the same inode (a hard link, a symlink
//! resolved, `exec -a`), or when it has the same size and the same content (a copy). Only
//! files whose size equals a known tool's are ever read, and every verdict is cached by
//! (dev, inode, size, mtime): after the first time, identifying a file costs one fstat.
//!
//! Identity is per filter: overlayfs gives each container's view its own st_dev, and
//! images ship different builds of the same tool. A modified copy (one byte patched) is
//! not recognised; see the threat model in the README.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::supervisor::resolve::{self, FileKey, ProcessRoot};

/// Where the known tools are looked up in each root.
const TOOL_DIRS: [&str; 6] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"];

/// Verdicts kept per filter before the cache starts over (a bound, not a tuning knob: a
/// container rarely runs more than a few hundred distinct files).
const MAX_VERDICTS: usize = 4096;

/// A known tool's file, held open so that its content can be fingerprinted when (and only
/// when) a file of the same size shows up.
struct KnownFile {
    name: Box<str>,
    file: OwnedFd,
    fingerprint: Option<u64>,
}

#[derive(Default)]
pub struct Identities {
    learned: bool,
    by_inode: HashMap<(u64, u64), Box<str>>,
    by_size: HashMap<i64, Vec<KnownFile>>,
    verdicts: HashMap<FileKey, Option<Box<str>>>,
}

impl Identities {
    /// Whether [`Identities::learn`] ran for this filter.
    pub fn learned(&self) -> bool {
        self.learned
    }

    /// Resolves every known tool name in `root`, the root of `pid`. Names that are not
    /// installed are skipped; the first name to claim an inode keeps it (`nc` before
    /// `netcat`).
    pub fn learn(&mut self, pid: u32, root: &ProcessRoot, tools: &[String]) {
        self.learned = true;
        for name in tools {
            for dir in TOOL_DIRS {
                let path = format!("{dir}/{name}");
                let Ok(found) = resolve::resolve(pid, root, None, path.as_bytes(), false) else { continue };
                let key = found.key;
                if self.by_inode.contains_key(&(key.dev, key.ino)) {
                    continue;
                }
                self.by_inode.insert((key.dev, key.ino), name.as_str().into());
                let known = KnownFile { name: name.as_str().into(), file: found.file, fingerprint: None };
                self.by_size.entry(key.size).or_default().push(known);
            }
        }
        tracing::debug!(pid, files = self.by_inode.len(), "learned known tool files");
    }

    /// The known tool that `file` is, if any.
    pub fn identify(&mut self, file: BorrowedFd<'_>, key: FileKey) -> Option<Box<str>> {
        if let Some(verdict) = self.verdicts.get(&key) {
            return verdict.clone();
        }
        let verdict = match self.by_inode.get(&(key.dev, key.ino)) {
            Some(name) => Some(name.clone()),
            None => self.same_content(file, key.size),
        };
        if self.verdicts.len() >= MAX_VERDICTS {
            self.verdicts.clear();
        }
        self.verdicts.insert(key, verdict.clone());
        verdict
    }

    fn same_content(&mut self, file: BorrowedFd<'_>, size: i64) -> Option<Box<str>> {
        let candidates = self.by_size.get_mut(&size)?;
        let fingerprint = fingerprint(file).ok()?;
        candidates.iter_mut().find_map(|known| {
            if known.fingerprint.is_none() {
                known.fingerprint = self::fingerprint(known.file.as_fd()).ok();
            }
            (known.fingerprint == Some(fingerprint)).then(|| known.name.clone())
        })
    }
}

/// A hash of the whole content. Not cryptographic, and need not be: a file crafted to
/// collide with nc would only get itself treated as nc.
fn fingerprint(file: BorrowedFd<'_>) -> io::Result<u64> {
    // The fd is O_PATH (it pins what was resolved); reading needs a real open of it.
    let mut reader = File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let mut hasher = DefaultHasher::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.write(buffer.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key_of(path: &str) -> (OwnedFd, FileKey) {
        let me = std::process::id();
        let found = resolve::resolve(me, &ProcessRoot::of(me).unwrap(), None, path.as_bytes(), false).unwrap();
        let key = resolve::file_key(found.file.as_fd()).unwrap();
        (found.file, key)
    }

    #[test]
    fn a_copy_and_a_link_are_the_tool_and_other_files_are_not() {
        let dir = std::env::temp_dir().join(format!("execguard-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("x");
        std::fs::copy("/bin/true", &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut identities = Identities::default();
        let me = std::process::id();
        identities.learn(me, &ProcessRoot::of(me).unwrap(), &["true".to_string(), "false".to_string()]);
        assert!(identities.learned());

        let (file, key) = key_of("/bin/true");
        assert_eq!(identities.identify(file.as_fd(), key).as_deref(), Some("true"));
        let (file, key) = key_of(copy.to_str().unwrap());
        assert_eq!(identities.identify(file.as_fd(), key).as_deref(), Some("true"));
        // Cached: the same answer without the file.
        assert_eq!(identities.verdicts.get(&key).cloned().flatten().as_deref(), Some("true"));
        let (file, key) = key_of("/bin/ls");
        assert_eq!(identities.identify(file.as_fd(), key), None);

        std::fs::write(&copy, b"#!/bin/sh\nexit 0\n").unwrap();
        let (file, key) = key_of(copy.to_str().unwrap());
        assert_eq!(identities.identify(file.as_fd(), key), None, "rewritten: no longer a copy");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
