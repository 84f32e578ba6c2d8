//! The file an execve will run, found as the calling process would find it.
//!
//! The path in the notification is the process's own: relative to its working directory or
//! execveat's dirfd, and absolute paths (and absolute symlinks on the way) start at the
//! process's root, which for a container is its image, not the host's /. Opening
//! /proc/PID/root/PATH plainly would get this wrong: an absolute symlink inside the image
//! would be followed on the host. openat2(2) with RESOLVE_IN_ROOT resolves the path as if
//! /proc/PID/root were "/": symlinks are followed, but every absolute one restarts at that
//! root, and ".." stops at it, exactly as for the process itself.
//!
//! RESOLVE_IN_ROOT cannot follow a path through the process's procfs: it refuses the
//! magic links there (EXDEV: fs/namei.c, nd_jump_link(), deems them unsafe for scoped
//! lookups), and procfs's `self` names the supervisor, or nobody. Those paths, in any
//! spelling and behind any symlink, are followed by [`walk`](crate::walk)
//! instead, one component at a time as the kernel follows them for the process; so are
//! relative paths that are not plain, from the handle of the working directory (or
//! execveat's dirfd) rather than its text.
//!
//! The result is only as current as the moment of resolution: the process (or anyone who
//! can write to its file system) can swap the file between this check and the kernel's
//! own lookup. The fd in [`Resolved`] pins what was checked, for hashing or identity.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags};

use crate::lock;
use crate::walk::walk;

/// Missing from libc for this target (linux/magic.h).
const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// The inode number of a procfs root (fs/proc/internal.h, PROC_ROOT_INO).
pub(crate) const PROC_ROOT_INO: u64 = 1;

/// The file an execve names.
#[derive(Debug)]
pub struct Resolved {
    /// The canonical path inside the process's root (symlinks followed), lossy UTF-8. A file
    /// that has no such path reads as the kernel prints it: "/memfd:NAME (deleted)",
    /// "/tmp/x (deleted)", or a host path for an fd opened outside a chroot.
    pub path: String,
    /// The file itself, opened O_PATH | O_CLOEXEC.
    pub file: OwnedFd,
    /// The file has no name in any file system: a memfd, or a deleted file.
    pub fileless: bool,
    /// The file's identity, from the same fstat.
    pub key: FileKey,
    /// Its hard links.
    pub links: u64,
    /// The unique id of the file's mount (None before Linux 6.8).
    pub mount: Option<u64>,
}

/// A process's root directory, opened through /proc/PID/root, and its path as the
/// supervisor sees it (d_path).
#[derive(Debug)]
pub struct ProcessRoot {
    fd: OwnedFd,
    text: PathBuf,
    /// Absolute paths that the last time needed the full resolution (a symlink on the way:
    /// `/bin/sh` on a merged-/usr system): resolved in full at once, without first trying
    /// the plain lookup that failed. Only a hint: both ways find the same file.
    not_plain: Mutex<HashSet<Box<[u8]>>>,
}

/// How many such paths a root remembers: the shells and interpreters a container runs
/// by a symlinked name are a handful.
const MAX_NOT_PLAIN: usize = 256;

impl ProcessRoot {
    /// The root of `pid` now. /proc/PID is the costly part of resolving (its first access
    /// for a new process takes 15-20 us here), which is why the supervisor keeps one root
    /// per filter for as long as no process under it could have changed roots.
    pub fn of(pid: u32) -> io::Result<ProcessRoot> {
        let fd = open_o_path(&format!("/proc/{pid}/root"))?;
        // The text of the root we resolve in, not a second look at /proc/PID/root: another
        // thread of the process could chroot in between.
        let text = fd_link(fd.as_fd())?;
        Ok(ProcessRoot { fd, text, not_plain: Mutex::default() })
    }
}

/// Finds the file that `pid`, whose root is `root`, executes with `path`: for execve,
/// `dirfd` is `None`; for execveat it is the process's dirfd (`None` for AT_FDCWD) and
/// `empty_path` tells whether AT_EMPTY_PATH was given.
pub fn resolve(
    pid: u32,
    root: &ProcessRoot,
    dirfd: Option<i32>,
    path: &[u8],
    empty_path: bool,
) -> io::Result<Resolved> {
    let root_text = root.text.as_os_str().as_bytes();
    let not_plain = &root.not_plain;
    let root = root.fd.as_fd();
    let file = if path.is_empty() {
        // path_resolution(7): an empty path is ENOENT, unless AT_EMPTY_PATH names dirfd.
        if !empty_path {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        open_o_path(&base_link(pid, dirfd))?
    } else if path.starts_with(b"/") {
        let known = || lock(not_plain);
        if !known().contains(path) {
            if let Some(resolved) = resolve_plain(root, path)? {
                return Ok(resolved);
            }
            let mut known = known();
            if known.len() >= MAX_NOT_PLAIN {
                known.clear();
            }
            known.insert(path.into());
        }
        match open_in_root(root, path) {
            // EXDEV: a magic link on the way; ENOENT: perhaps procfs's `self`, which names
            // nobody when the supervisor reads it in a container's procfs. The walk tells.
            Err(error) if matches!(error.raw_os_error(), Some(libc::EXDEV | libc::ENOENT)) => {
                walk(pid, root, root.try_clone_to_owned()?, path)?
            }
            result => result?,
        }
    } else {
        // From the handle, not its text: a directory deeper than PATH_MAX, or on a mount
        // detached since, has no text to start from.
        let base = open_o_path(&base_link(pid, dirfd))?;
        let beneath = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
        match openat2(base.as_fd(), path, libc::O_PATH, beneath) {
            Ok(file) => file,
            Err(error)
                if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::EXDEV | libc::ENOENT | libc::EAGAIN)) =>
            {
                walk(pid, root, base, path)?
            }
            Err(error) => return Err(error),
        }
    };
    // A file deeper than the kernel can name (d_path fails past PATH_MAX) is named by the
    // last component it was asked for: the fd is what identifies it.
    let text = fd_link(file.as_fd()).unwrap_or_else(|_| unnamed(path));
    let text = text.as_os_str().as_bytes();
    let st = fstat(file.as_fd())?;
    let fileless = st.stx_nlink == 0 || text.starts_with(b"/memfd:") || text.ends_with(b" (deleted)");
    let in_root = strip_root(text, root_text).unwrap_or(text);
    Ok(Resolved {
        path: String::from_utf8_lossy(in_root).into_owned(),
        file,
        fileless,
        key: FileKey::of(&st),
        links: u64::from(st.stx_nlink),
        mount: unique_mount(&st),
    })
}

/// The text of the symlink that `path` names for `pid` (its last component is not
/// followed), as readlink(2) would give it to the process.
pub fn read_link(pid: u32, root: &ProcessRoot, path: &[u8]) -> io::Result<Vec<u8>> {
    let (directory, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &path[1..]),
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&b"."[..], path),
    };
    let directory = resolve(pid, root, None, directory, false)?;
    crate::walk::read_link_at(directory.file.as_fd(), name)
}

/// Resolves an absolute path that has no symlink, "." or ".." on the way: then it is its
/// own canonical form, and asking the kernel for the file's path (a readlink through
/// /proc/self/fd, 6-10 us here) can be skipped. The kernel checks the "no symlink" part
/// during the same walk that opens the file (RESOLVE_NO_SYMLINKS). None when the path
/// needs the full resolution.
fn resolve_plain(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<Option<Resolved>> {
    let components = || path.split(|&b| b == b'/').filter(|c| !c.is_empty());
    if components().any(|c| c == b"." || c == b"..") {
        return Ok(None);
    }
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS;
    let file = match openat2(root, path, libc::O_PATH, resolve) {
        Ok(file) => file,
        // ELOOP: a symlink on the way; EAGAIN: a concurrent rename, retried by the full
        // resolution.
        Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EAGAIN)) => return Ok(None),
        Err(err) => return Err(err),
    };
    let st = fstat(file.as_fd())?;
    let mut canonical = Vec::with_capacity(path.len());
    for component in components() {
        canonical.push(b'/');
        canonical.extend_from_slice(component);
    }
    if canonical.is_empty() {
        canonical.push(b'/');
    }
    Ok(Some(Resolved {
        path: String::from_utf8_lossy(&canonical).into_owned(),
        file,
        // Found by its name, so it has one, unless it was unlinked since.
        fileless: st.stx_nlink == 0,
        key: FileKey::of(&st),
        links: u64::from(st.stx_nlink),
        mount: unique_mount(&st),
    }))
}

/// The path of an open file as the kernel prints it (d_path): relative to the root of the
/// file's mount namespace, with " (deleted)" appended to an unlinked file.
fn fd_link(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Where a relative path starts: the dirfd of execveat, or the working directory.
fn base_link(pid: u32, dirfd: Option<i32>) -> String {
    match dirfd {
        Some(fd) => format!("/proc/{pid}/fd/{fd}"),
        None => format!("/proc/{pid}/cwd"),
    }
}

/// `path` as seen from `root`, both as d_path prints them: None when `path` is not under
/// `root`.
fn strip_root<'a>(path: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    if root == b"/" {
        return Some(path);
    }
    match path.strip_prefix(root)? {
        [] => Some(b"/"),
        rest if rest.starts_with(b"/") => Some(rest),
        _ => None,
    }
}

/// The name of a file whose path is longer than the kernel names: `.../LAST`.
fn unnamed(path: &[u8]) -> PathBuf {
    let last = path.rsplit(|&b| b == b'/').find(|c| !c.is_empty()).unwrap_or(b"");
    PathBuf::from(format!(".../{}", String::from_utf8_lossy(last)))
}

/// Opens a path of the supervisor's (usually a /proc magic link) O_PATH.
fn open_o_path(path: &str) -> io::Result<OwnedFd> {
    // std adds O_CLOEXEC; with O_PATH the access mode is ignored.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(path)?;
    Ok(file.into())
}

/// Opens `path` O_PATH as the process whose root is `root` would find it.
fn open_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    // openat2(2): with RESOLVE_IN_ROOT the kernel answers EAGAIN when a concurrent rename
    // or mount could have let ".." escape, and invites a retry.
    let mut attempts = 0;
    loop {
        match openat2(root, path, libc::O_PATH, libc::RESOLVE_IN_ROOT) {
            Err(err) if err.raw_os_error() == Some(libc::EAGAIN) && attempts < 3 => attempts += 1,
            result => return result,
        }
    }
}

fn openat2(dir: BorrowedFd<'_>, path: &[u8], flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    // A path read from the process ends at its first NUL, so one inside is never ours to
    // resolve: nix refuses it with EINVAL.
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags | libc::O_CLOEXEC))
        .resolve(ResolveFlag::from_bits_retain(resolve));
    loop {
        match nix::fcntl::openat2(dir, path, how) {
            Err(Errno::EINTR) => continue,
            result => return Ok(result?),
        }
    }
}

/// fstat, and the id of the file's mount: the unique one (Linux 6.8), which is never
/// reused, so that facts about a mount can be cached by it.
///
/// By hand: nix has no statx (rustix has, but a second syscall crate for one call is not
/// worth it), and fstat's st_dev/st_ino carry no mount id.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    // SAFETY: all zeroes is a valid `statx` (integers only).
    let mut st: libc::statx = unsafe { mem::zeroed() };
    let mask = libc::STATX_BASIC_STATS | libc::STATX_MNT_ID_UNIQUE;
    // SAFETY: an empty path with AT_EMPTY_PATH names the fd itself (O_PATH fds work), and
    // `st` is a writable statx buffer.
    if unsafe { libc::statx(fd.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, mask, &mut st) } == 0 {
        Ok(st)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The unique mount id in `st`, when the kernel gave one.
fn unique_mount(st: &libc::statx) -> Option<u64> {
    (st.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0).then_some(st.stx_mnt_id)
}

/// The type of the file system that holds the file (fstatfs works on O_PATH fds, Linux
/// 3.12).
pub(crate) fn filesystem_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_long> {
    Ok(nix::sys::statfs::fstatfs(fd)?.filesystem_type().0)
}

/// What identifies a file's contents well enough to cache a verdict on it.
///
/// Compare keys per container, never host-wide: overlayfs gives each container's merged
/// view its own st_dev while the inode is the layer's, and a path alone says nothing.
/// The ctime catches a file rewritten in place: every write sets it to the current time,
/// and unlike the mtime its owner cannot set it back (utimensat sets the ctime too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

/// The key of an open file (fstat; O_PATH fds work). The supervisor takes it from
/// [`Resolved::key`].
#[cfg(test)]
pub fn file_key(fd: BorrowedFd<'_>) -> io::Result<FileKey> {
    Ok(FileKey::of(&fstat(fd)?))
}

impl FileKey {
    fn of(st: &libc::statx) -> FileKey {
        FileKey {
            dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            size: st.stx_size as i64,
            ctime_sec: st.stx_ctime.tv_sec,
            ctime_nsec: i64::from(st.stx_ctime.tv_nsec),
        }
    }
}

/// Whether the file's file system keeps its files in memory (tmpfs, which devtmpfs and
/// /dev/shm are too, or ramfs): where files dropped at run time live. A mount stays on one
/// file system for its life, so the answer can be cached per mount.
///
/// The container image is writable too (overlayfs with an upper layer), but statfs cannot
/// tell a file of the image from one written later into the same overlay, so overlay is
/// not counted here: the caller decides that from its knowledge of the image and the
/// well-known writable directories.
pub fn on_memory_fs(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let fs = filesystem_type(fd)?;
    Ok(fs == libc::TMPFS_MAGIC || fs == RAMFS_MAGIC)
}

/// Whether the file's mount is read-only now (a remount can change that).
pub fn mounted_read_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // statfs's f_flags is hidden on this target; statvfs carries the same mount flags.
    Ok(fstatvfs(fd)?.flags().contains(FsFlags::ST_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::tests::{require_root, set_name, Forked};
    use std::ffi::CString;
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn me() -> u32 {
        std::process::id()
    }

    /// Resolves in the process's root as it is now.
    fn resolve_now(pid: u32, dirfd: Option<i32>, path: &[u8], empty_path: bool) -> io::Result<Resolved> {
        resolve(pid, &ProcessRoot::of(pid)?, dirfd, path, empty_path)
    }

    /// A directory removed with its contents on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("execguard-resolve-{}-{n}", me()));
            fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A fake root with a /bin/sh of its own, reached through an absolute symlink
    /// (/etc/x), a relative one that climbs past the root (/etc/up), and a chain
    /// (/etc/chain -> /etc/x).
    fn fake_root() -> TempDir {
        let root = TempDir::new();
        for dir in ["bin", "etc"] {
            fs::create_dir(root.0.join(dir)).unwrap();
        }
        fs::write(root.0.join("bin/sh"), "not the host's shell").unwrap();
        symlink("/bin/sh", root.0.join("etc/x")).unwrap();
        symlink("../../../../../bin/sh", root.0.join("etc/up")).unwrap();
        symlink("/etc/x", root.0.join("etc/chain")).unwrap();
        root
    }

    /// A child chrooted into `root`, with its working directory at `cwd` inside it (or left
    /// outside when None), /bin open as fd 100 and /bin/sh as fd 101.
    fn chrooted(root: &Path, cwd: Option<&str>) -> Forked {
        let root = CString::new(root.as_os_str().as_bytes()).unwrap();
        let cwd = cwd.map(|c| CString::new(c).unwrap());
        let (bin, sh) = (CString::new("/bin").unwrap(), CString::new("/bin/sh").unwrap());
        let name = CString::new("chrooted").unwrap();
        Forked::new(b"chrooted", || {
            // SAFETY: async-signal-safe calls on NUL-terminated strings prepared before fork.
            unsafe {
                libc::chroot(root.as_ptr());
                if let Some(cwd) = &cwd {
                    libc::chdir(cwd.as_ptr());
                }
                libc::dup2(libc::open(bin.as_ptr(), libc::O_PATH | libc::O_DIRECTORY), 100);
                libc::dup2(libc::open(sh.as_ptr(), libc::O_RDONLY), 101);
            }
            set_name(&name);
        })
    }

    fn ino(path: &Path) -> u64 {
        fs::metadata(path).unwrap().ino()
    }

    fn assert_is(resolved: &Resolved, path: &str, file: &Path) {
        assert_eq!(resolved.path, path);
        assert_eq!(file_key(resolved.file.as_fd()).unwrap().ino, ino(file));
        assert!(!resolved.fileless);
    }

    #[test]
    fn absolute_symlinks_stay_in_the_process_root() {
        let root = fake_root();
        let child = chrooted(&root.0, Some("/"));
        let sh = root.0.join("bin/sh");
        // "/bin/sh" and "//bin//sh" take the plain path (no symlink, no dots), the others not.
        for path in ["/etc/x", "/etc/chain", "/bin/sh", "//bin//sh", "/bin/../etc/x"] {
            assert_is(&resolve_now(child.pid(), None, path.as_bytes(), false).unwrap(), "/bin/sh", &sh);
        }
    }

    /// A root remembers which paths needed the full resolution, as a hint only: when the
    /// files change, each lookup still finds what the process would.
    #[test]
    fn a_remembered_path_follows_the_files_as_they_change() {
        let root = fake_root();
        let child = chrooted(&root.0, Some("/"));
        let process_root = ProcessRoot::of(child.pid()).unwrap();
        let resolve_in_root = |path: &str| resolve(child.pid(), &process_root, None, path.as_bytes(), false).unwrap();
        let (sh, x) = (root.0.join("bin/sh"), root.0.join("etc/x"));
        assert_is(&resolve_in_root("/etc/x"), "/bin/sh", &sh);
        assert!(process_root.not_plain.lock().unwrap().contains(b"/etc/x".as_slice()));
        assert_is(&resolve_in_root("/etc/x"), "/bin/sh", &sh);
        // The symlink becomes a file; a plain path becomes a symlink.
        fs::remove_file(&x).unwrap();
        fs::write(&x, "a file now").unwrap();
        assert_is(&resolve_in_root("/etc/x"), "/etc/x", &x);
        fs::rename(&sh, root.0.join("bin/dash")).unwrap();
        symlink("dash", &sh).unwrap();
        assert_is(&resolve_in_root("/bin/sh"), "/bin/dash", &root.0.join("bin/dash"));
    }

    #[test]
    fn dot_dot_stops_at_the_process_root() {
        let root = fake_root();
        let child = chrooted(&root.0, Some("/etc"));
        let sh = root.0.join("bin/sh");
        for path in ["/../../../bin/sh", "/etc/up", "up", "../../../../bin/sh", "x", "./chain"] {
            let resolved = resolve_now(child.pid(), None, path.as_bytes(), false).unwrap();
            assert_is(&resolved, "/bin/sh", &sh);
        }
    }

    #[test]
    fn execveat_resolves_from_its_dirfd() {
        let root = fake_root();
        let child = chrooted(&root.0, Some("/etc"));
        let sh = root.0.join("bin/sh");
        assert_is(&resolve_now(child.pid(), Some(100), b"sh", false).unwrap(), "/bin/sh", &sh);
        assert_is(&resolve_now(child.pid(), Some(100), b"../etc/up", false).unwrap(), "/bin/sh", &sh);
        assert_is(&resolve_now(child.pid(), Some(101), b"", true).unwrap(), "/bin/sh", &sh);
        let err = resolve_now(child.pid(), Some(101), b"", false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "empty path without AT_EMPTY_PATH");
        let err = resolve_now(child.pid(), Some(101), b"x", false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn proc_self_is_not_taken_on_trust_in_a_root_without_procfs() {
        let root = fake_root();
        let child = chrooted(&root.0, Some("/"));
        for path in ["/proc/self/fd/101", "/dev/fd/101", "/proc/self/exe"] {
            let err = resolve_now(child.pid(), None, path.as_bytes(), false).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{path}");
        }
        // A plain directory posing as /proc is resolved as what it is.
        fs::create_dir_all(root.0.join("proc/self/fd")).unwrap();
        fs::write(root.0.join("proc/self/fd/101"), "planted").unwrap();
        let planted = root.0.join("proc/self/fd/101");
        let resolved = resolve_now(child.pid(), None, b"/proc/self/fd/101", false).unwrap();
        assert_is(&resolved, "/proc/self/fd/101", &planted);
    }

    #[test]
    fn a_working_directory_outside_the_root_is_where_relative_paths_start() {
        let root = fake_root();
        let child = chrooted(&root.0, None);
        // The kernel starts a relative path at the working directory, wherever it is.
        let here = std::env::current_dir().unwrap().join("Cargo.toml");
        let resolved = resolve_now(child.pid(), None, b"Cargo.toml", false).unwrap();
        assert_eq!(file_key(resolved.file.as_fd()).unwrap().ino, ino(&here));
        assert!(resolve_now(child.pid(), None, b"bin/sh", false).is_err());
        assert!(resolve_now(child.pid(), None, b"/bin/sh", false).is_ok());
    }

    fn memfd() -> OwnedFd {
        // SAFETY: memfd_create reads a NUL-terminated name; the fd is new and ours.
        let fd = unsafe { libc::memfd_create(c"payload".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        fs::File::from(fd.try_clone().unwrap()).write_all(b"#!/bin/sh\n").unwrap();
        fd
    }

    #[test]
    fn a_memfd_is_fileless_by_fd_and_through_proc_self() {
        let fd = memfd();
        let n = fd.as_raw_fd();
        let by_fd = resolve_now(me(), Some(n), b"", true).unwrap();
        assert!(by_fd.fileless);
        assert!(by_fd.path.starts_with("/memfd:payload"), "{}", by_fd.path);
        let key = file_key(by_fd.file.as_fd()).unwrap();
        let mut paths = vec![format!("/proc/self/fd/{n}"), format!("/proc/thread-self/fd/{n}")];
        if fs::read_link("/dev/fd").is_ok_and(|t| t == Path::new("/proc/self/fd")) {
            paths.push(format!("/dev/fd/{n}"));
        }
        for path in paths {
            let resolved = resolve_now(me(), None, path.as_bytes(), false).unwrap();
            assert!(resolved.fileless, "{path}");
            assert_eq!(resolved.path, by_fd.path);
            assert_eq!(file_key(resolved.file.as_fd()).unwrap(), key);
        }
        assert!(on_memory_fs(by_fd.file.as_fd()).unwrap(), "memfds live on an internal tmpfs");
    }

    #[test]
    fn proc_self_exe_is_the_process_executable() {
        let resolved = resolve_now(me(), None, b"/proc/self/exe", false).unwrap();
        assert_eq!(Path::new(&resolved.path), std::env::current_exe().unwrap());
        assert!(!resolved.fileless);
        let err = resolve_now(me(), None, b"/proc/self/fd/0/x", false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "fd 0 is no directory, as for the kernel");
    }

    /// A container's view: a process in its own pid namespace, chrooted into a root with
    /// its own procfs (where the supervisor has no pid), a memfd at fd 101 and on stdin,
    /// and /dev/fd, /dev/stdin and a symlink elsewhere that lead into that procfs.
    struct Contained {
        parent: Forked,
        pid: u32,
        memfd_key: FileKey,
        root: TempDir,
    }

    impl Contained {
        fn new() -> Contained {
            require_root();
            let root = fake_root();
            for dir in ["proc", "dev"] {
                fs::create_dir(root.0.join(dir)).unwrap();
            }
            symlink("/proc/self/fd", root.0.join("dev/fd")).unwrap();
            symlink("/proc/self/fd/0", root.0.join("dev/stdin")).unwrap();
            symlink("../proc/self/fd/101", root.0.join("etc/payload")).unwrap();
            let memfd = memfd();
            let memfd_key = file_key(memfd.as_fd()).unwrap();
            let (root_c, proc_c) = (
                CString::new(root.0.as_os_str().as_bytes()).unwrap(),
                CString::new(root.0.join("proc").as_os_str().as_bytes()).unwrap(),
            );
            let (slash, proc_type, name) =
                (CString::new("/").unwrap(), CString::new("proc").unwrap(), CString::new("pidns-parent").unwrap());
            let mut ready = [0; 2];
            // SAFETY: a pipe of two fds.
            assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
            let memfd_raw = memfd.as_raw_fd();
            let parent = Forked::new(b"pidns-parent", || {
                // SAFETY: async-signal-safe calls on data prepared before the fork; the
                // grandchild is pid 1 of a new pid namespace, with a procfs of its own.
                unsafe {
                    libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS);
                    if libc::fork() == 0 {
                        let private = libc::MS_REC | libc::MS_PRIVATE;
                        libc::mount(std::ptr::null(), slash.as_ptr(), std::ptr::null(), private, std::ptr::null());
                        libc::mount(proc_type.as_ptr(), proc_c.as_ptr(), proc_type.as_ptr(), 0, std::ptr::null());
                        libc::chroot(root_c.as_ptr());
                        libc::chdir(slash.as_ptr());
                        libc::dup2(memfd_raw, 101);
                        libc::dup2(memfd_raw, 0);
                        libc::write(ready[1], b"x".as_ptr().cast(), 1);
                        loop {
                            libc::pause();
                        }
                    }
                    let mut byte = 0u8;
                    libc::read(ready[0], (&mut byte as *mut u8).cast(), 1);
                }
                set_name(&name);
            });
            let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", parent.pid())).unwrap();
            let pid = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("the contained process");
            Contained { parent, pid, memfd_key, root }
        }
    }

    impl Drop for Contained {
        fn drop(&mut self) {
            // SAFETY: killing our own grandchild (pid 1 of its namespace: the rest goes too).
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            let _ = &self.parent;
        }
    }

    /// Every spelling of a path into the process's own procfs, and every link that leads
    /// there, finds what the kernel will run for it: the memfd, the process's root.
    #[test]
    fn paths_through_a_containers_procfs_are_followed_as_the_process_sees_them() {
        let contained = Contained::new();
        let memfd_paths = [
            "/proc/self/fd/101",
            "//proc//self//fd/101",
            "/proc/./self/fd/./101",
            "/proc/self/../self/fd/101",
            "/proc/thread-self/fd/101",
            "/proc/1/fd/101",
            "/proc/1/task/1/fd/101",
            "/dev/fd/101",
            "/dev/stdin",
            "/etc/payload",
            "/proc/self/fd/0",
        ];
        for path in memfd_paths {
            let resolved = resolve_now(contained.pid, None, path.as_bytes(), false)
                .unwrap_or_else(|error| panic!("{path}: {error}"));
            assert_eq!(file_key(resolved.file.as_fd()).unwrap(), contained.memfd_key, "{path}");
            assert!(resolved.fileless, "{path}");
        }
        let sh = contained.root.0.join("bin/sh");
        for path in
            ["/proc/self/root/bin/sh", "/proc/1/root/etc/x", "/proc/self/cwd/bin/sh", "/proc/self/cwd/../../bin/sh"]
        {
            let resolved = resolve_now(contained.pid, None, path.as_bytes(), false)
                .unwrap_or_else(|error| panic!("{path}: {error}"));
            assert_is(&resolved, "/bin/sh", &sh);
        }
        // Relative, from the working directory (the root here).
        let resolved = resolve_now(contained.pid, None, b"proc/self/fd/101", false).unwrap();
        assert_eq!(file_key(resolved.file.as_fd()).unwrap(), contained.memfd_key);
        // What does not exist for the process does not exist.
        let missing = resolve_now(contained.pid, None, b"/proc/self/fd/999", false).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    /// A working directory deeper than PATH_MAX has no text, and one on a mount detached
    /// after the `cd` has text that leads nowhere: relative paths start at the handle.
    #[test]
    fn deep_and_detached_working_directories_resolve_as_for_the_kernel() {
        require_root();
        let top = TempDir::new();
        let level = "d".repeat(200);
        // SAFETY: open of a NUL-terminated path; the fd is ours.
        let mut dir = unsafe {
            OwnedFd::from_raw_fd(libc::open(
                CString::new(top.0.as_os_str().as_bytes()).unwrap().as_ptr(),
                libc::O_DIRECTORY,
            ))
        };
        let level_c = CString::new(level.as_str()).unwrap();
        for _ in 0..25 {
            // SAFETY: mkdirat and openat on a directory fd we own, with a NUL-terminated name.
            unsafe {
                libc::mkdirat(dir.as_raw_fd(), level_c.as_ptr(), 0o755);
                dir = OwnedFd::from_raw_fd(libc::openat(dir.as_raw_fd(), level_c.as_ptr(), libc::O_DIRECTORY));
            }
        }
        let x = CString::new("x").unwrap();
        // SAFETY: openat creates a file in a directory fd we own.
        let file = unsafe { libc::openat(dir.as_raw_fd(), x.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o755) };
        assert!(file >= 0);
        // SAFETY: our fd.
        unsafe { libc::close(file) };
        let deep_x = resolve_now(me(), Some(dir.as_raw_fd()), b"x", false).unwrap();
        let dir_raw = dir.as_raw_fd();
        let name = CString::new("deep").unwrap();
        let deep = Forked::new(b"deep", || {
            // SAFETY: fchdir to a directory fd inherited from the parent.
            unsafe { libc::fchdir(dir_raw) };
            set_name(&name);
        });
        for path in ["x", "./x", &format!("../{level}/x")] {
            let resolved =
                resolve_now(deep.pid(), None, path.as_bytes(), false).unwrap_or_else(|error| panic!("{path}: {error}"));
            assert_eq!(resolved.key, deep_x.key, "{path}");
        }

        // Detached: the child binds a directory onto itself, enters it, and detaches it.
        let mounted = TempDir::new();
        fs::write(mounted.0.join("x"), "#!/bin/sh\n").unwrap();
        let target = CString::new(mounted.0.as_os_str().as_bytes()).unwrap();
        let (slash, name) = (CString::new("/").unwrap(), CString::new("detached").unwrap());
        let detached = Forked::new(b"detached", || {
            // SAFETY: async-signal-safe calls on strings prepared before the fork; the
            // mounts live in the child's own mount namespace.
            unsafe {
                libc::unshare(libc::CLONE_NEWNS);
                let private = libc::MS_REC | libc::MS_PRIVATE;
                libc::mount(std::ptr::null(), slash.as_ptr(), std::ptr::null(), private, std::ptr::null());
                libc::mount(target.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null());
                libc::chdir(target.as_ptr());
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
            set_name(&name);
        });
        let resolved = resolve_now(detached.pid(), None, b"./x", false).unwrap();
        assert_eq!(file_key(resolved.file.as_fd()).unwrap().ino, ino(&mounted.0.join("x")));
    }

    #[test]
    fn a_deleted_file_is_fileless() {
        let dir = TempDir::new();
        let path = dir.0.join("dropped");
        fs::write(&path, "#!/bin/sh\n").unwrap();
        let file = fs::File::open(&path).unwrap();
        let before = resolve_now(me(), Some(file.as_raw_fd()), b"", true).unwrap();
        assert!(!before.fileless);
        assert_eq!(Path::new(&before.path), path);
        fs::remove_file(&path).unwrap();
        let after = resolve_now(me(), Some(file.as_raw_fd()), b"", true).unwrap();
        assert!(after.fileless);
        assert!(after.path.ends_with(" (deleted)"), "{}", after.path);
    }

    #[test]
    fn file_key_follows_content_changes() {
        let dir = TempDir::new();
        let path = dir.0.join("tool");
        fs::write(&path, "v1").unwrap();
        let key = |p: &Path| file_key(fs::File::open(p).unwrap().as_fd()).unwrap();
        let first = key(&path);
        assert_eq!(first, key(&path));
        assert_eq!((first.ino, first.size), (ino(&path), 2));
        fs::write(&path, "version 2").unwrap();
        assert_ne!(first, key(&path));
    }

    #[test]
    fn memory_file_systems_are_told_from_the_others() {
        let shm = fs::File::open("/dev/shm").unwrap();
        assert!(on_memory_fs(shm.as_fd()).unwrap() && !mounted_read_only(shm.as_fd()).unwrap());
        let dev = fs::File::open("/dev/null").unwrap();
        assert!(on_memory_fs(dev.as_fd()).unwrap(), "devtmpfs reports tmpfs");
        let proc = fs::File::open("/proc/self/status").unwrap();
        assert!(!on_memory_fs(proc.as_fd()).unwrap());
    }

    /// A read-only tmpfs, mounted in a child's private mount namespace so that nothing
    /// outlives the test: the child reports mounted_read_only's answer as its exit code.
    #[test]
    fn a_read_only_tmpfs_is_not_writable() {
        require_root();
        let dir = TempDir::new();
        let target = CString::new(dir.0.as_os_str().as_bytes()).unwrap();
        let (slash, tmpfs) = (CString::new("/").unwrap(), CString::new("tmpfs").unwrap());
        // SAFETY: the child makes async-signal-safe calls only, on strings prepared before
        // the fork, and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: as above; the mounts live and die with the child's mount namespace.
            let code = unsafe {
                let private = libc::MS_REC | libc::MS_PRIVATE;
                let ro = libc::MS_RDONLY;
                let ready = libc::unshare(libc::CLONE_NEWNS) == 0
                    && libc::mount(std::ptr::null(), slash.as_ptr(), std::ptr::null(), private, std::ptr::null()) == 0
                    && libc::mount(tmpfs.as_ptr(), target.as_ptr(), tmpfs.as_ptr(), ro, std::ptr::null()) == 0;
                let fd = libc::open(target.as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
                match (ready && fd >= 0).then(|| mounted_read_only(BorrowedFd::borrow_raw(fd))) {
                    Some(Ok(true)) => 0,
                    Some(Ok(false)) => 1,
                    _ => 2,
                }
            };
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child, which exits on its own at once.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0, "1: counted as writable, 2: setup failed");
    }
}
