//! Reading the path and argv of a task stopped in execve, with process_vm_readv(2).
//!
//! process_vm_readv copies straight from the target's address space without stopping or
//! attaching to it (ptrace access mode "attach" is checked, which root in the initial user
//! namespace passes). Its man page promises partial transfers only at iovec boundaries, so
//! a read that runs from a mapped page into an unmapped one may fail as a whole (Linux 6.18
//! returned the bytes before the fault, but that is not promised). Every read here stays
//! within one page, so a string that ends just before an unmapped page is never lost.
//!
//! Everything read here is a snapshot of memory that the task (or another thread of it)
//! controls, and the pid may have died and been reused between the notification and the
//! read. The caller must therefore call `NotifyFd::id_valid` after its last read and
//! before acting on what it read: a valid id proves the task still waits in that execve,
//! so the memory belonged to it (seccomp_unotify(2), "Caveats"). Another thread of the
//! task can still rewrite the strings after they were read: never trust them for the
//! identity of the executed file, which `resolve` takes from an open fd.

use std::io::{self, IoSliceMut};

use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::{sysconf, Pid, SysconfVar};

pub use execguard_seccomp::PointerWidth;

/// The arguments an execve passes, as far as the bounds allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Argv {
    pub args: Vec<Vec<u8>>,
    /// Whether `max_args` or `max_bytes` cut the list or its last string.
    pub truncated: bool,
}

const CHUNK: usize = 4096;

fn page_size() -> u64 {
    let size = sysconf(SysconfVar::PAGE_SIZE).ok().flatten();
    size.and_then(|size| u64::try_from(size).ok()).filter(|&s| s > 0).unwrap_or(4096)
}

fn efault() -> io::Error {
    io::Error::from_raw_os_error(libc::EFAULT)
}

/// How many bytes of `addr`'s page lie at and after `addr`.
fn left_in_page(addr: u64) -> usize {
    let page = page_size();
    usize::try_from(page - addr % page).unwrap_or(usize::MAX)
}

/// One process_vm_readv from the `remote` ranges, in order, into `local`. The kernel stops
/// at the first range that faults and returns the bytes before it (0 if the first one
/// faults, which is an error here).
fn read_ranges(pid: libc::pid_t, local: &mut [u8], remote: &[RemoteIoVec]) -> io::Result<usize> {
    match process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(local)], remote)? {
        0 => Err(efault()),
        n => Ok(n),
    }
}

/// A range of the other process's memory. Its addresses fit a usize: x86_64 only.
fn remote(addr: u64, len: usize) -> RemoteIoVec {
    RemoteIoVec { base: addr as usize, len }
}

/// Reads from `addr` into `buf`, never past the end of the page that holds `addr`.
/// Returns how many bytes arrived (at least one: a fault is an error).
fn read_in_page(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len().min(left_in_page(addr));
    read_ranges(pid, &mut buf[..len], &[remote(addr, len)])
}

fn pid_t(pid: u32) -> io::Result<libc::pid_t> {
    libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))
}

/// Reads the NUL-terminated string at `addr` in process `pid`, at most `max` bytes of it
/// (without the NUL). Returns the bytes and whether `max` cut the string.
///
/// A string that runs into unmapped memory before its NUL is an error (EFAULT), not a
/// truncated string: the kernel's own copy of it would fail the same way, so the execve
/// could not run it. A null `addr` is EFAULT too.
pub fn read_c_string(pid: u32, addr: u64, max: usize) -> io::Result<(Vec<u8>, bool)> {
    let pid = pid_t(pid)?;
    if addr == 0 {
        return Err(efault());
    }
    let mut out = Vec::new();
    let mut buf = [0u8; CHUNK];
    let mut addr = addr;
    loop {
        // One byte beyond `max` tells a string of exactly `max` bytes from a longer one.
        let want = max.saturating_add(1) - out.len();
        let n = read_in_page(pid, addr, &mut buf[..want.min(CHUNK)])?;
        let got = &buf[..n];
        if let Some(nul) = got.iter().position(|&b| b == 0) {
            out.extend_from_slice(&got[..nul]);
            if out.len() > max {
                out.truncate(max);
                return Ok((out, true));
            }
            return Ok((out, false));
        }
        out.extend_from_slice(got);
        if out.len() > max {
            out.truncate(max);
            return Ok((out, true));
        }
        addr = addr.checked_add(n as u64).ok_or_else(efault)?;
    }
}

/// Why an exec's path or arguments could not be read. A path or argv that cannot be read
/// now would fail the kernel's own copy too, unless the process maps it in between: the
/// supervisor blocks such an exec.
#[derive(Debug)]
pub struct Unreadable {
    pub what: &'static str,
    pub error: io::Error,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "execguard could not read the exec's {}: {}", self.what, self.error)
    }
}

/// How much of an exec's path and arguments to read.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_path: usize,
    pub max_args: usize,
    pub max_arg_bytes: usize,
}

/// Memory of the task read earlier: `bytes` were at `addr`.
#[derive(Clone, Copy)]
struct Seen<'a> {
    addr: u64,
    bytes: &'a [u8],
}

impl<'a> Seen<'a> {
    /// What was read from `addr` on, if `addr` lies in this range.
    fn from(&self, addr: u64) -> Option<&'a [u8]> {
        let offset = usize::try_from(addr.checked_sub(self.addr)?).ok()?;
        self.bytes.get(offset..).filter(|rest| !rest.is_empty())
    }
}

/// Reads an exec's path (the string at `path_addr`) and argv (the array at `argv_addr`).
///
/// Every read costs a syscall of 5 us or more here, so the first one takes the rest of the
/// path's page and the start of the pointer array at once: shells and libcs build the
/// path and the argument strings next to the array, and most execs need no other read.
/// Whatever that read did not cover is read as [`read_c_string`] would, string by string.
pub fn read_exec(
    pid: u32,
    path_addr: u64,
    argv_addr: u64,
    width: PointerWidth,
    bounds: Bounds,
) -> Result<(Vec<u8>, Argv), Unreadable> {
    let path_error = |error| Unreadable { what: "path", error };
    let pid_t = pid_t(pid).map_err(path_error)?;
    if path_addr == 0 {
        return Err(path_error(efault()));
    }
    let path_len = CHUNK.min(left_in_page(path_addr));
    let pointers_len = match argv_addr {
        0 => 0,
        addr => CHUNK.min(left_in_page(addr)).min(bounds.max_args.saturating_add(1).saturating_mul(width.bytes())),
    };
    let mut buf = [0u8; 2 * CHUNK];
    let ranges = [remote(path_addr, path_len), remote(argv_addr, pointers_len)];
    let ranges = if pointers_len == 0 { &ranges[..1] } else { &ranges[..] };
    let arrived = read_ranges(pid_t, &mut buf[..path_len + pointers_len], ranges).map_err(path_error)?;
    let seen = [
        Seen { addr: path_addr, bytes: &buf[..arrived.min(path_len)] },
        Seen { addr: argv_addr, bytes: buf.get(path_len..arrived).unwrap_or_default() },
    ];
    let path = match seen[0].bytes.iter().position(|&b| b == 0) {
        Some(nul) if nul <= bounds.max_path => seen[0].bytes[..nul].to_vec(),
        _ => read_c_string(pid, path_addr, bounds.max_path).map_err(path_error)?.0,
    };
    let argv = read_argv_after(pid, argv_addr, width, bounds, &seen)
        .map_err(|error| Unreadable { what: "arguments", error })?;
    Ok((path, argv))
}

/// Reads the NULL-terminated pointer array at `argv_addr` and the strings it points to:
/// at most `max_args` strings and `max_bytes` bytes of them in all (NULs not counted; the
/// string that crosses the byte bound is cut to fit). A null `argv_addr` is an empty argv:
/// Linux accepts execve with argv NULL. The environment (envp) has the same shape.
pub fn read_argv(pid: u32, argv_addr: u64, width: PointerWidth, max_args: usize, max_bytes: usize) -> io::Result<Argv> {
    let bounds = Bounds { max_path: 0, max_args, max_arg_bytes: max_bytes };
    read_argv_after(pid, argv_addr, width, bounds, &[])
}

/// [`read_argv`], taking what `seen` already holds instead of reading it again.
fn read_argv_after(pid: u32, argv_addr: u64, width: PointerWidth, bounds: Bounds, seen: &[Seen]) -> io::Result<Argv> {
    if argv_addr == 0 {
        return Ok(Argv::default());
    }
    let pid_t = pid_t(pid)?;
    let max_args = bounds.max_args;
    let known_pointers =
        seen.iter().find_map(|s| s.from(argv_addr)).and_then(|bytes| pointers_in(bytes, width, max_args));
    let (pointers, mut truncated) = match known_pointers {
        Some(known) => known,
        None => read_pointers(pid_t, argv_addr, width, max_args)?,
    };
    let in_seen = |pointer: u64| seen.iter().find_map(|s| s.from(pointer));
    let mut args = Vec::with_capacity(pointers.len());
    let mut budget = bounds.max_arg_bytes;
    let mut buf = Vec::new();
    'batches: for batch in pointers.chunks(PREFETCH_BATCH) {
        let unseen: Vec<u64> = batch.iter().copied().filter(|&p| in_seen(p).is_none()).collect();
        let mut fetched = if unseen.is_empty() { Vec::new() } else { prefetch(pid_t, &unseen, &mut buf)? }.into_iter();
        for &pointer in batch {
            let piece = match in_seen(pointer) {
                Some(piece) => Some(piece),
                None => fetched.next().flatten(),
            };
            let whole = piece.and_then(|p| p.iter().position(|&b| b == 0).map(|nul| &p[..nul]));
            let (arg, cut) = match whole {
                Some(whole) if whole.len() <= budget => (whole.to_vec(), false),
                Some(whole) => (whole[..budget].to_vec(), true),
                None => read_c_string(pid, pointer, budget)?,
            };
            budget -= arg.len();
            args.push(arg);
            if cut {
                truncated = true;
                break 'batches;
            }
        }
    }
    Ok(Argv { args, truncated })
}

/// How many strings [`prefetch`] reads with one syscall, and how much of each: a
/// process_vm_readv costs about as much as one short string's worth of work, and most
/// arguments are short.
const PREFETCH_BATCH: usize = 64;
const PREFETCH_LEN: usize = 256;

/// Reads the first bytes of every string in `pointers` (up to PREFETCH_LEN, never past its
/// page) into `buf` with one syscall. A piece that did not arrive, because it or an
/// earlier range faulted, is None: the caller reads that string alone.
fn prefetch<'a>(pid: libc::pid_t, pointers: &[u64], buf: &'a mut Vec<u8>) -> io::Result<Vec<Option<&'a [u8]>>> {
    let ranges: Vec<RemoteIoVec> = pointers.iter().map(|&p| remote(p, PREFETCH_LEN.min(left_in_page(p)))).collect();
    buf.clear();
    buf.resize(ranges.iter().map(|r| r.len).sum(), 0);
    let arrived = match read_ranges(pid, buf, &ranges) {
        Ok(n) => n,
        Err(err) if err.raw_os_error() == Some(libc::EFAULT) => 0,
        Err(err) => return Err(err),
    };
    let buf: &'a [u8] = buf;
    let mut offset = 0;
    Ok(ranges
        .iter()
        .map(|range| {
            let piece = buf.get(offset..offset + range.len).filter(|_| offset + range.len <= arrived);
            offset += range.len;
            piece
        })
        .collect())
}

/// The pointer at the start of `raw` (`width` bytes of it).
fn decode_pointer(raw: &[u8]) -> u64 {
    // x86 is little-endian: a 32-bit pointer is the low half of a zero-padded u64.
    let mut bytes = [0u8; 8];
    let n = raw.len().min(8);
    bytes[..n].copy_from_slice(&raw[..n]);
    u64::from_le_bytes(bytes)
}

/// The pointers of a NULL-terminated array whose start is `bytes`, as [`read_pointers`]
/// returns them, or None when `bytes` ends before that is known.
fn pointers_in(bytes: &[u8], width: PointerWidth, max: usize) -> Option<(Vec<u64>, bool)> {
    let mut pointers = Vec::new();
    scan_pointers(bytes, width.bytes(), max, &mut pointers).map(|truncated| (pointers, truncated))
}

/// Adds the pointers in `bytes` (`size` bytes each) to `pointers`, up to `max` in all.
/// Some(whether a non-null pointer followed the last one kept) once the array's end or
/// `max` is reached; None when `bytes` ran out first.
fn scan_pointers(bytes: &[u8], size: usize, max: usize, pointers: &mut Vec<u64>) -> Option<bool> {
    for raw in bytes.chunks_exact(size) {
        let pointer = decode_pointer(raw);
        if pointer == 0 {
            return Some(false);
        }
        if pointers.len() == max {
            return Some(true);
        }
        pointers.push(pointer);
    }
    None
}

/// Reads up to `max` non-null pointers of a NULL-terminated array, a page at a time, and
/// whether a non-null pointer followed the last one read.
fn read_pointers(pid: libc::pid_t, addr: u64, width: PointerWidth, max: usize) -> io::Result<(Vec<u64>, bool)> {
    let size = width.bytes();
    let mut pointers = Vec::new();
    let mut buf = [0u8; CHUNK];
    let mut addr = addr;
    loop {
        // Up to `max` pointers plus the one that must be NULL to prove nothing was cut.
        let want = ((max - pointers.len()).saturating_add(1)).saturating_mul(size).min(CHUNK);
        // A misaligned array can have a pointer straddle two pages: read on into the next
        // page only until one whole pointer is in hand.
        let mut filled = 0;
        while filled < size {
            let at = addr.checked_add(filled as u64).ok_or_else(efault)?;
            filled += read_in_page(pid, at, &mut buf[filled..want])?;
        }
        let whole = filled - filled % size;
        if let Some(truncated) = scan_pointers(&buf[..whole], size, max, &mut pointers) {
            return Ok((pointers, truncated));
        }
        addr = addr.checked_add(whole as u64).ok_or_else(efault)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn me() -> u32 {
        std::process::id()
    }

    /// An anonymous mapping of `pages` pages, unmapped on drop.
    struct Mapping {
        addr: *mut u8,
        len: usize,
    }

    impl Mapping {
        fn new(pages: usize, flags: libc::c_int) -> Mapping {
            let len = pages * page_size() as usize;
            // SAFETY: a fresh anonymous mapping; nothing else refers to it.
            let addr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
                    -1,
                    0,
                )
            };
            assert_ne!(addr, libc::MAP_FAILED, "mmap: {}", io::Error::last_os_error());
            Mapping { addr: addr.cast(), len }
        }

        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: the mapping is `len` readable and writable bytes that we own.
            unsafe { std::slice::from_raw_parts_mut(self.addr, self.len) }
        }

        fn at(&self, offset: usize) -> u64 {
            self.addr as u64 + offset as u64
        }

        /// Makes every page from `page` on inaccessible.
        fn protect_from(&mut self, page: usize) {
            let offset = page * page_size() as usize;
            // SAFETY: the range lies within our mapping, and no reference into it is alive.
            let rc = unsafe { libc::mprotect(self.addr.add(offset).cast(), self.len - offset, libc::PROT_NONE) };
            assert_eq!(rc, 0);
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(self.addr.cast(), self.len) };
        }
    }

    #[test]
    fn reads_a_c_string() {
        let s = CString::new("/usr/bin/nc").unwrap();
        let got = read_c_string(me(), s.as_ptr() as u64, 4096).unwrap();
        assert_eq!(got, (b"/usr/bin/nc".to_vec(), false));
    }

    #[test]
    fn max_cuts_the_string_but_not_one_that_fits_exactly() {
        let s = CString::new("abcdef").unwrap();
        let addr = s.as_ptr() as u64;
        assert_eq!(read_c_string(me(), addr, 3).unwrap(), (b"abc".to_vec(), true));
        assert_eq!(read_c_string(me(), addr, 6).unwrap(), (b"abcdef".to_vec(), false));
        assert_eq!(read_c_string(me(), addr, 0).unwrap(), (Vec::new(), true));
    }

    #[test]
    fn null_address_is_efault() {
        let err = read_c_string(me(), 0, 16).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFAULT));
    }

    #[test]
    fn string_crossing_into_a_mapped_page_is_read_whole() {
        let mut map = Mapping::new(2, 0);
        let page = page_size() as usize;
        map.bytes()[page - 3..page + 4].copy_from_slice(b"abcdef\0");
        let got = read_c_string(me(), map.at(page - 3), 4096).unwrap();
        assert_eq!(got, (b"abcdef".to_vec(), false));
    }

    #[test]
    fn string_ending_at_an_unmapped_page() {
        let mut map = Mapping::new(2, 0);
        let page = page_size() as usize;
        map.bytes()[page - 8..page].copy_from_slice(b"abc\0wxyz");
        map.protect_from(1);
        // Terminated within the readable page: read without touching the next.
        let got = read_c_string(me(), map.at(page - 8), 4096).unwrap();
        assert_eq!(got, (b"abc".to_vec(), false));
        // Unterminated: the kernel's own copy would fault, and so does ours.
        let err = read_c_string(me(), map.at(page - 4), 4096).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFAULT));
    }

    #[test]
    fn argv_keeps_bytes_that_are_not_utf8() {
        let args = [&b"nc"[..], b"-e", b"\xff\xfe/bin/sh", b""];
        let strings: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let mut pointers: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(std::ptr::null());
        let argv = read_argv(me(), pointers.as_ptr() as u64, PointerWidth::Bits64, 16, 4096).unwrap();
        assert_eq!(argv.args, args.map(<[u8]>::to_vec));
        assert!(!argv.truncated);
    }

    #[test]
    fn null_argv_is_empty() {
        assert_eq!(read_argv(me(), 0, PointerWidth::Bits64, 16, 4096).unwrap(), Argv::default());
    }

    #[test]
    fn megabytes_of_argv_stop_at_max_bytes() {
        let arg = CString::new(vec![b'x'; 1000]).unwrap();
        let mut pointers = vec![arg.as_ptr(); 4000];
        pointers.push(std::ptr::null());
        let addr = pointers.as_ptr() as u64;
        let argv = read_argv(me(), addr, PointerWidth::Bits64, 100_000, 1 << 20).unwrap();
        assert!(argv.truncated);
        assert_eq!(argv.args.iter().map(Vec::len).sum::<usize>(), 1 << 20);
        assert_eq!(argv.args.len(), (1 << 20) / 1000 + 1);
        assert_eq!(argv.args.last().unwrap().len(), (1 << 20) % 1000);

        let argv = read_argv(me(), addr, PointerWidth::Bits64, 10, 1 << 20).unwrap();
        assert!(argv.truncated);
        assert_eq!(argv.args.len(), 10);

        let argv = read_argv(me(), addr, PointerWidth::Bits64, 4000, 4_000_000).unwrap();
        assert!(!argv.truncated, "exactly max_args and max_bytes fit");
        assert_eq!(argv.args.len(), 4000);
    }

    #[test]
    fn pointer_array_straddling_pages_is_read_whole() {
        let mut map = Mapping::new(2, 0);
        let page = page_size() as usize;
        let s = CString::new("arg").unwrap();
        // Three pointers that start 4 bytes before the page end, misaligned on purpose.
        let mut words = Vec::new();
        for p in [s.as_ptr() as u64, s.as_ptr() as u64, 0] {
            words.extend_from_slice(&p.to_le_bytes());
        }
        map.bytes()[page - 4..page - 4 + words.len()].copy_from_slice(&words);
        let argv = read_argv(me(), map.at(page - 4), PointerWidth::Bits64, 16, 4096).unwrap();
        assert_eq!(argv.args, vec![b"arg".to_vec(), b"arg".to_vec()]);
    }

    const BOUNDS: Bounds = Bounds { max_path: 4096, max_args: 16, max_arg_bytes: 4096 };

    /// A page laid out as a shell lays out an exec: the path, the pointer array, and the
    /// strings, side by side. Then the same exec with each part somewhere that the first read
    /// does not reach.
    #[test]
    fn read_exec_takes_what_its_first_read_holds_and_reads_the_rest() {
        let mut map = Mapping::new(3, 0);
        let page = page_size() as usize;
        let (path, args) = (page + 16, page + 64);
        map.bytes()[path..path + 8].copy_from_slice(b"/bin/ls\0");
        map.bytes()[page + 200..page + 203].copy_from_slice(b"-l\0");
        let pointers = [map.at(path), map.at(page + 200), 0];
        let words: Vec<u8> = pointers.iter().flat_map(|p| p.to_le_bytes()).collect();
        map.bytes()[args..args + words.len()].copy_from_slice(&words);
        let expected =
            (b"/bin/ls".to_vec(), Argv { args: vec![b"/bin/ls".to_vec(), b"-l".to_vec()], truncated: false });
        let read = read_exec(me(), map.at(path), map.at(args), PointerWidth::Bits64, BOUNDS).unwrap();
        assert_eq!(read, expected);

        // An argument on another page, the path crossing into the next page, the array
        // straddling a page end.
        let far = CString::new("-l").unwrap();
        let crossing = 2 * page - 4;
        map.bytes()[crossing..crossing + 8].copy_from_slice(b"/bin/ls\0");
        let pointers = [map.at(crossing), far.as_ptr() as u64, 0];
        let words: Vec<u8> = pointers.iter().flat_map(|p| p.to_le_bytes()).collect();
        let straddling = page - 12;
        map.bytes()[straddling..straddling + words.len()].copy_from_slice(&words);
        let read = read_exec(me(), map.at(crossing), map.at(straddling), PointerWidth::Bits64, BOUNDS).unwrap();
        assert_eq!(read, expected);

        // Which part could not be read is said.
        let err = read_exec(me(), 0, map.at(args), PointerWidth::Bits64, BOUNDS).unwrap_err();
        assert_eq!((err.what, err.error.raw_os_error()), ("path", Some(libc::EFAULT)));
        map.protect_from(2);
        let bad = [map.at(path), map.at(2 * page), 0];
        let words: Vec<u8> = bad.iter().flat_map(|p| p.to_le_bytes()).collect();
        map.bytes()[args..args + words.len()].copy_from_slice(&words);
        let err = read_exec(me(), map.at(path), map.at(args), PointerWidth::Bits64, BOUNDS).unwrap_err();
        assert_eq!((err.what, err.error.raw_os_error()), ("arguments", Some(libc::EFAULT)));
    }

    #[test]
    fn argv_strings_up_to_an_unreadable_page_and_a_bad_pointer() {
        let mut map = Mapping::new(2, 0);
        let page = page_size() as usize;
        map.bytes()[page - 5..page].copy_from_slice(b"last\0");
        map.protect_from(1);
        let (first, after) = (CString::new("first").unwrap(), CString::new("after").unwrap());
        let pointers = [first.as_ptr() as u64, map.at(page - 5), after.as_ptr() as u64, 0];
        let argv = read_argv(me(), pointers.as_ptr() as u64, PointerWidth::Bits64, 16, 4096).unwrap();
        assert_eq!(argv.args, [&b"first"[..], b"last", b"after"].map(<[u8]>::to_vec));

        // The kernel would fail this execve with EFAULT, and so does the read.
        let pointers = [first.as_ptr() as u64, map.at(page), after.as_ptr() as u64, 0];
        let err = read_argv(me(), pointers.as_ptr() as u64, PointerWidth::Bits64, 16, 4096).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFAULT));
    }

    #[test]
    fn argv_of_a_32_bit_abi() {
        // MAP_32BIT puts everything below 2 GiB, where a 32-bit pointer can reach it.
        let mut map = Mapping::new(1, libc::MAP_32BIT);
        let base = map.at(0);
        let bytes = map.bytes();
        bytes[64..72].copy_from_slice(b"busybox\0");
        bytes[72..75].copy_from_slice(b"nc\0");
        for (i, p) in [base + 64, base + 72, 0].into_iter().enumerate() {
            let p = u32::try_from(p).unwrap();
            bytes[i * 4..i * 4 + 4].copy_from_slice(&p.to_le_bytes());
        }
        let argv = read_argv(me(), base, PointerWidth::Bits32, 16, 4096).unwrap();
        assert_eq!(argv.args, vec![b"busybox".to_vec(), b"nc".to_vec()]);
    }

    #[test]
    fn a_process_that_is_gone_is_esrch() {
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let s = CString::new("x").unwrap();
        let err = read_c_string(pid, s.as_ptr() as u64, 16).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}
