//! Following a path component by component, as the kernel follows it for the process
//! that execs: the lookups that openat2's scoped resolution cannot do.
//!
//! `resolve` first lets openat2(RESOLVE_IN_ROOT) find the file in one syscall. It cannot
//! when the path goes through the process's procfs, which is where fileless execution
//! lives (`/proc/self/fd/3`, `/dev/fd/3`, `/dev/stdin`, `/proc/self/exe`, `/proc/PID/root/
//! ...`, `/proc/self/cwd/...`, in any spelling or behind any symlink):
//! - procfs's `self` and `thread-self` name whoever reads them. Read by the supervisor in a
//!   container's procfs they name nobody (the supervisor has no pid in the container's pid
//!   namespace), and in the host's procfs they name the supervisor;
//! - the links under /proc/PID (`fd/N`, `cwd`, `root`, `exe`) are magic: they lead to an
//!   open file, not to a path, and a scoped lookup refuses them (EXDEV).
//!
//! So the walk does what the kernel's path walk does, one component at a time from a
//! handle (the process's root, its working directory, execveat's dirfd): `..` stops at the
//! process's root, symlinks are read and followed (at most 40 in all, the kernel's
//! MAXSYMLINKS), absolute ones from the root; `self` and `thread-self` at the top of a
//! procfs become the calling process's own pid *in that procfs's pid namespace*; a magic
//! link is opened, so that the kernel jumps to the object it stands for. Starting from
//! handles rather than from their text is also what makes a working directory deeper than
//! PATH_MAX, or on a mount detached since the `cd`, resolve as it does for the process.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::Mode;

use crate::procfs;
use crate::resolve::{filesystem_type, fstat, PROC_ROOT_INO};

/// The kernel's limit on symlinks followed in one lookup (include/linux/namei.h).
const MAX_SYMLINKS: usize = 40;

/// Opens, O_PATH, the file that `path` names for the thread `tid`, whose root is `root`,
/// starting at `start` (its root for an absolute path, else its working directory or
/// execveat's dirfd). Errors are the kernel's: ENOENT, ENOTDIR, ELOOP, EACCES.
pub fn walk(tid: u32, root: BorrowedFd<'_>, start: OwnedFd, path: &[u8]) -> io::Result<OwnedFd> {
    let must_be_directory = path.ends_with(b"/");
    let mut pending: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
    let mut current = if path.starts_with(b"/") { duplicate(root)? } else { start };
    let mut links = 0;
    while let Some(name) = pending.pop() {
        match name.as_slice() {
            b"." => continue,
            b".." => {
                if !same_directory(current.as_fd(), root)? {
                    current = open_at(current.as_fd(), b"..", libc::O_NOFOLLOW)?;
                }
                continue;
            }
            _ => {}
        }
        let child = open_at(current.as_fd(), &name, libc::O_NOFOLLOW)?;
        if u32::from(fstat(child.as_fd())?.stx_mode) & libc::S_IFMT != libc::S_IFLNK {
            current = child;
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = match procfs_place(current.as_fd())? {
            Place::ProcfsRoot if name == b"self" || name == b"thread-self" => {
                pending.extend(caller_entry(tid, current.as_fd(), name == b"thread-self")?.into_iter().rev());
                continue;
            }
            // A magic link (fd/N, cwd, root, exe): the kernel jumps to what it stands for.
            Place::InsideProcfs => {
                current = open_at(current.as_fd(), &name, 0)?;
                continue;
            }
            // The symlinks at the top of a procfs (mounts, net) are plain: self/...
            Place::ProcfsRoot | Place::Elsewhere => read_link(child.as_fd())?,
        };
        if target.starts_with(b"/") {
            current = duplicate(root)?;
        }
        pending.extend(components(&target).rev().map(<[u8]>::to_vec));
    }
    if must_be_directory && u32::from(fstat(current.as_fd())?.stx_mode) & libc::S_IFMT != libc::S_IFDIR {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(current)
}

/// The text of the symlink `name` in `dir`; EINVAL when it is no symlink.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    let link = open_at(dir, name, libc::O_NOFOLLOW)?;
    read_link(link.as_fd())
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

#[derive(Debug, PartialEq)]
enum Place {
    ProcfsRoot,
    InsideProcfs,
    Elsewhere,
}

fn procfs_place(directory: BorrowedFd<'_>) -> io::Result<Place> {
    if filesystem_type(directory)? != libc::PROC_SUPER_MAGIC {
        return Ok(Place::Elsewhere);
    }
    Ok(if fstat(directory)?.stx_ino == PROC_ROOT_INO { Place::ProcfsRoot } else { Place::InsideProcfs })
}

/// What `self` (or `thread-self`) in the procfs at `procfs` means for the thread `tid`:
/// its process's pid in the pid namespace that procfs shows (`[TGID]`, or `[TGID, "task",
/// TID]`). Of the pids the thread has in its namespaces (NStgid/NSpid, outermost first),
/// the one whose entry in that procfs is the same process (same start time). None of
/// them: the process is not in that namespace, and the kernel's lookup fails too.
fn caller_entry(tid: u32, procfs: BorrowedFd<'_>, thread: bool) -> io::Result<Vec<Vec<u8>>> {
    let ids = procfs::namespace_ids(tid)?;
    let start_time = procfs::stat(tid)?.start_time;
    for (tgid, pid) in ids.tgid.iter().zip(&ids.pid) {
        let entry = if thread { format!("{tgid}/task/{pid}") } else { tgid.to_string() };
        let Ok(stat) = read_at(procfs, format!("{entry}/stat").as_bytes()) else { continue };
        if procfs::parse_stat(&stat).is_ok_and(|stat| stat.start_time == start_time) {
            return Ok(entry.split('/').map(|part| part.as_bytes().to_vec()).collect());
        }
    }
    Err(io::Error::from_raw_os_error(libc::ENOENT))
}

/// Whether two directories are the same one (the same inode on the same mount).
fn same_directory(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<bool> {
    let (a, b) = (fstat(a)?, fstat(b)?);
    Ok((a.stx_dev_major, a.stx_dev_minor, a.stx_ino, a.stx_mnt_id)
        == (b.stx_dev_major, b.stx_dev_minor, b.stx_ino, b.stx_mnt_id))
}

fn duplicate(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// openat(dir, name, O_PATH | O_CLOEXEC | extra).
fn open_at(dir: BorrowedFd<'_>, name: &[u8], extra: libc::c_int) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::from_bits_retain(extra);
    loop {
        match openat(dir, name, flags, Mode::empty()) {
            Err(Errno::EINTR) => continue,
            result => return Ok(result?),
        }
    }
}

/// The whole text of the symlink that an O_PATH | O_NOFOLLOW fd stands for (an empty path
/// reads the link the fd itself refers to: readlink(2), since Linux 2.6.39).
fn read_link(link: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    Ok(readlinkat(link, c"")?.into_vec())
}

/// The content of a small file under `dir` (a /proc/PID/stat).
fn read_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    let mut file = File::from(openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?);
    let mut content = Vec::new();
    file.by_ref().take(64 * 1024).read_to_end(&mut content)?;
    Ok(content)
}
