//! Recognising a known tool by its file rather than its name: a renamed copy of nc is nc.
//!
//! Each filter (one container, or one `execguard run` tree) learns, at its first exec, the
//! files that the policy's tool names resolve to in that process's root (`/usr/bin/nc`,
//! ...): every name a rule matches literally ([`Policy::tool_names`]), learned again when
//! a reloaded policy brings other names. An executed file is then that tool when it is the
//! same inode (a hard link, a symlink resolved, `exec -a`), or when it has the same size
//! and the same content (a copy). Only files whose size equals a known tool's are ever
//! read, and every verdict is cached by the file's [`FileKey`], which changes with any
//! write: after the first time, identifying a file costs one fstat.
//!
//! A multi-call binary never takes one tool's identity: in an Alpine-style image `/bin/nc`,
//! `/bin/wget` and `/bin/sleep` all resolve to `/bin/busybox`, and that file is
//! "busybox", whose applet the policy then picks from argv as busybox's dispatcher does.
//! A file that several known names resolve to (or that has several hard links) is taken
//! for busybox or toybox when its content carries the dispatcher's banner, and for
//! aliases of one tool otherwise (Debian's `nc` and `netcat` are both `nc.openbsd`).
//!
//! Identity is per filter: overlayfs gives each container's view its own st_dev, and
//! images ship different builds of the same tool. A modified copy (one byte patched) is
//! not recognised; see THREAT_MODEL.md.
//!
//! [`Policy::tool_names`]: execguard_policy::Policy::tool_names

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use execguard_policy::name::is_multi_call;
use sha2::{Digest, Sha256};

use crate::program::{self, Interpreter};
use crate::resolve::{self, FileKey, ProcessRoot, Resolved};

/// Where the known tools are looked up in each root.
const TOOL_DIRS: [&str; 6] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"];

/// Where images keep the dynamic loader (the PT_INTERP of their programs). A file with the
/// same inode or content under any other name is the loader too, whose program is what
/// runs (`ld.so PROGRAM`); glibc's, musl's (which is also its libc.so), for x86_64, i386
/// and arm64.
const LOADER_PATHS: [&str; 7] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-x86-64.so.2",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-linux.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-musl-aarch64.so.1",
    "/lib/ld-musl-i386.so.1",
];
/// The identity of a file that is the dynamic loader.
pub const LOADER: &str = "ld.so";

/// Verdicts kept per filter before the cache starts over (a bound, not a tuning knob: a
/// container rarely runs more than a few hundred distinct files).
const MAX_VERDICTS: usize = 4096;

/// Text that each multi-call binary's dispatcher prints, and so carries: busybox's
/// bb_banner (libbb/messages.c) and toybox's version line (main.c).
const MULTI_CALL_BANNERS: [(&[u8], &str); 2] = [(b"BusyBox v", "busybox"), (b"toybox ", "toybox")];

/// Files larger than this are not searched for a banner (busybox is 1-2 MiB, toybox less).
const MAX_BANNER_SEARCH: u64 = 16 << 20;

/// A known tool's file, held open so that its content can be fingerprinted when (and only
/// when) a file of the same size shows up.
struct KnownFile {
    identity: Box<str>,
    file: OwnedFd,
    fingerprint: Option<[u8; 32]>,
}

#[derive(Default)]
pub struct Identities {
    /// The names learned, as the policy shared them: another list means another policy.
    learned_from: Option<Arc<[Box<str>]>>,
    by_inode: HashMap<(u64, u64), Box<str>>,
    by_size: HashMap<i64, Vec<KnownFile>>,
    verdicts: HashMap<FileKey, Option<Box<str>>>,
    /// The interpreter line of each file executed, by the same key.
    interpreter_lines: HashMap<FileKey, Option<Interpreter>>,
}

/// One file that known names resolve to, while learning.
struct Found {
    names: Vec<Box<str>>,
    file: OwnedFd,
    key: FileKey,
    links: u64,
}

impl Identities {
    /// Resolves every name of `tools` in `root`, the root of `pid`, unless these very
    /// names were learned already. Names that are not installed are skipped.
    pub fn learn(&mut self, pid: u32, root: &ProcessRoot, tools: &Arc<[Box<str>]>) {
        if self.learned_from.as_ref().is_some_and(|learned| Arc::ptr_eq(learned, tools)) {
            return;
        }
        *self = Identities { learned_from: Some(tools.clone()), ..Identities::default() };
        let mut found: HashMap<(u64, u64), Found> = HashMap::new();
        let tool_paths =
            tools.iter().flat_map(|name| TOOL_DIRS.iter().map(move |dir| (format!("{dir}/{name}"), name.clone())));
        let loader_paths = LOADER_PATHS.iter().map(|path| (path.to_string(), Box::from(LOADER)));
        for (path, name) in tool_paths.chain(loader_paths) {
            let Ok(resolved) = resolve::resolve(pid, root, None, path.as_bytes(), false) else { continue };
            let key = resolved.key;
            let entry = found.entry((key.dev, key.ino)).or_insert_with(|| Found {
                names: Vec::new(),
                file: resolved.file,
                key,
                links: resolved.links,
            });
            if !entry.names.contains(&name) {
                entry.names.push(name);
            }
        }
        for (inode, file) in found {
            let identity = identity_of(&file);
            self.by_inode.insert(inode, identity.clone());
            let known = KnownFile { identity, file: file.file, fingerprint: None };
            self.by_size.entry(file.key.size).or_default().push(known);
        }
        tracing::debug!(pid, files = self.by_inode.len(), "learned known tool files");
    }

    /// The known tool (or multi-call binary) that `file` is, if any.
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

    /// The interpreter line of an executed file (see `program`), read once per file.
    pub fn interpreter_line(&mut self, file: &Resolved) -> Option<Interpreter> {
        if let Some(line) = self.interpreter_lines.get(&file.key) {
            return line.clone();
        }
        let line = match program::header(file.file.as_fd()) {
            Ok(header) => program::interpreter_line(&header),
            Err(error) => {
                tracing::debug!(%error, path = %file.path, "cannot read the file's first bytes");
                None
            }
        };
        if self.interpreter_lines.len() >= MAX_VERDICTS {
            self.interpreter_lines.clear();
        }
        self.interpreter_lines.insert(file.key, line.clone());
        line
    }

    fn same_content(&mut self, file: BorrowedFd<'_>, size: i64) -> Option<Box<str>> {
        let candidates = self.by_size.get_mut(&size)?;
        let fingerprint = fingerprint(file).ok()?;
        candidates.iter_mut().find_map(|known| {
            if known.fingerprint.is_none() {
                known.fingerprint = self::fingerprint(known.file.as_fd()).ok();
            }
            (known.fingerprint == Some(fingerprint)).then(|| known.identity.clone())
        })
    }
}

/// What a file that known names resolve to is: the multi-call binary when one of its
/// names is one or when, named several times, it carries a dispatcher's banner; else the
/// first tool name (the policy lists aliases of one tool together).
fn identity_of(found: &Found) -> Box<str> {
    if let Some(multi_call) = found.names.iter().find(|name| is_multi_call(name)) {
        return multi_call.clone();
    }
    if found.names.len() > 1 || found.links > 1 {
        if let Some(banner) = multi_call_banner(found.file.as_fd(), found.key.size) {
            return banner.into();
        }
    }
    found.names.first().cloned().unwrap_or_default()
}

/// The multi-call binary whose banner the file's content carries.
fn multi_call_banner(file: BorrowedFd<'_>, size: i64) -> Option<&'static str> {
    if u64::try_from(size).map_or(true, |size| size > MAX_BANNER_SEARCH) {
        return None;
    }
    let mut content = Vec::new();
    reopen(file).ok()?.take(MAX_BANNER_SEARCH).read_to_end(&mut content).ok()?;
    MULTI_CALL_BANNERS
        .iter()
        .find(|(banner, _)| content.windows(banner.len()).any(|window| window == *banner))
        .map(|(_, name)| *name)
}

/// The fd is O_PATH (it pins what was resolved); reading needs a real open of it.
fn reopen(file: BorrowedFd<'_>) -> io::Result<File> {
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// SHA-256 of the whole content: a file crafted to pass for nc would need a collision.
fn fingerprint(file: BorrowedFd<'_>) -> io::Result<[u8; 32]> {
    let mut reader = reopen(file)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(buffer.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::{Path, PathBuf};

    fn key_of(path: &Path) -> (OwnedFd, FileKey) {
        let me = std::process::id();
        let path = path.as_os_str().as_encoded_bytes();
        let found = resolve::resolve(me, &ProcessRoot::of(me).unwrap(), None, path, false).unwrap();
        let key = resolve::file_key(found.file.as_fd()).unwrap();
        (found.file, key)
    }

    fn names(names: &[&str]) -> Arc<[Box<str>]> {
        names.iter().map(|&name| Box::from(name)).collect()
    }

    fn identify(identities: &mut Identities, path: &Path) -> Option<Box<str>> {
        let (file, key) = key_of(path);
        identities.identify(file.as_fd(), key)
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("execguard-identity-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn learned(tools: &Arc<[Box<str>]>) -> Identities {
        let mut identities = Identities::default();
        let me = std::process::id();
        identities.learn(me, &ProcessRoot::of(me).unwrap(), tools);
        identities
    }

    #[test]
    fn a_copy_and_a_link_are_the_tool_and_other_files_are_not() {
        let dir = TempDir::new("copy");
        let copy = dir.0.join("x");
        std::fs::copy("/bin/true", &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut identities = learned(&names(&["true", "false"]));

        assert_eq!(identify(&mut identities, Path::new("/bin/true")).as_deref(), Some("true"));
        assert_eq!(identify(&mut identities, &copy).as_deref(), Some("true"));
        let (_, key) = key_of(&copy);
        assert_eq!(identities.verdicts.get(&key).cloned().flatten().as_deref(), Some("true"), "cached");
        assert_eq!(identify(&mut identities, Path::new("/bin/ls")), None);
    }

    /// A file rewritten in place with a tool's content, its mtime set back, is decided
    /// afresh: the verdict's key holds the ctime, which the owner cannot set.
    #[test]
    fn content_replaced_in_place_with_the_mtime_restored_is_identified_again() {
        let dir = TempDir::new("rewrite");
        let file = dir.0.join("tool");
        let tool = std::fs::read("/bin/true").unwrap();
        std::fs::write(&file, vec![b'x'; tool.len()]).unwrap();
        let mut identities = learned(&names(&["true"]));
        assert_eq!(identify(&mut identities, &file), None);
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, &tool).unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        assert_eq!(identify(&mut identities, &file).as_deref(), Some("true"));
    }

    /// Alpine's layout: network tools and everyday commands are links to one busybox.
    /// The file is busybox, whatever tool name claims it first; so is a copy of it.
    #[test]
    fn busybox_links_and_copies_are_busybox_not_the_first_tool_name() {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "the tests need Debian's busybox-static (scripts/test installs it)");
        let dir = TempDir::new("busybox");
        let (nc, copy, sleep) = (dir.0.join("nc"), dir.0.join("bb"), dir.0.join("sleep"));
        symlink(busybox, &nc).unwrap();
        std::fs::copy(busybox, &copy).unwrap();
        std::fs::hard_link(&copy, &sleep).unwrap();
        for tools in [names(&["nc", "busybox", "wget"]), names(&["busybox"])] {
            let mut identities = learned(&tools);
            for path in [busybox, &nc, &copy, &sleep] {
                assert_eq!(identify(&mut identities, path).as_deref(), Some("busybox"), "{}", path.display());
            }
        }
    }

    /// Several tool names on one file with no multi-call binary among them: busybox's
    /// banner in its content makes it busybox; without one the names are aliases.
    #[test]
    fn a_file_named_by_several_tools_is_busybox_by_its_banner_or_else_an_alias() {
        let me = std::process::id();
        let root = ProcessRoot::of(me).unwrap();
        let found = |path: &Path, names: &[&str]| {
            let path = path.as_os_str().as_encoded_bytes();
            let resolved = resolve::resolve(me, &root, None, path, false).unwrap();
            let names = names.iter().map(|&n| Box::from(n)).collect();
            Found { names, file: resolved.file, key: resolved.key, links: resolved.links }
        };
        let dir = TempDir::new("banner");
        let copy = dir.0.join("one");
        std::fs::copy("/bin/busybox", &copy).unwrap();
        assert_eq!(&*identity_of(&found(Path::new("/bin/busybox"), &["nc", "wget"])), "busybox");
        assert_eq!(&*identity_of(&found(Path::new("/bin/true"), &["nc", "netcat"])), "nc");
        assert_eq!(&*identity_of(&found(&copy, &["nc"])), "nc", "one name, one link: not searched");
        std::fs::hard_link(&copy, dir.0.join("two")).unwrap();
        assert_eq!(&*identity_of(&found(&copy, &["nc"])), "busybox", "hard links: searched");
    }

    #[test]
    fn a_policy_with_other_names_is_learned_again() {
        let mut identities = learned(&names(&["true"]));
        assert_eq!(identify(&mut identities, Path::new("/bin/false")), None);
        let me = std::process::id();
        identities.learn(me, &ProcessRoot::of(me).unwrap(), &names(&["true", "false"]));
        assert_eq!(identify(&mut identities, Path::new("/bin/false")).as_deref(), Some("false"));
    }
}
