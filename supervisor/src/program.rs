//! What the kernel will run inside one execve: the file the path names is not always the
//! program that runs.
//!
//! - **binfmt_misc** handlers (fs/binfmt_misc.c) are asked first: a file whose bytes at an
//!   offset match a registered magic, or whose name ends in a registered extension, runs
//!   the handler's interpreter with argv `[interpreter, filename, (argv[0] with the P
//!   flag), argv[1..]]`.
//! - An **interpreter line** (fs/binfmt_script.c): `#!` in the first two bytes, then the
//!   interpreter's path and at most one argument (the rest of the line), within the first
//!   256 bytes. The kernel runs `[interpreter, argument, filename, argv[1..]]`.
//!
//! Either can point at another script: the kernel follows five such steps at most and
//! fails the exec with ELOOP after that. Each step is followed here the same way, from the
//! calling process's root and working directory, so that the decision is about the
//! program that will run, with the argv it will get, and the record names the scripts on
//! the way. The file facts of the exec cover every file it runs (`merge`): a dropped
//! script is dropped even when /bin/sh runs it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::resolve::{self, ProcessRoot, Resolved};

/// Where binfmt_misc shows its handlers (systemd mounts it at boot).
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";
/// How long a reading of the handlers is used before it is read again: registering one
/// leaves no trace that is cheaper to check than reading them.
const MISC_HANDLERS_FOR: Duration = Duration::from_secs(1);

/// The kernel's limit on interpreter steps in one execve (fs/exec.c, exec_binprm()).
const MAX_STEPS: usize = 5;
/// How much of a file the kernel reads to choose its format (BINPRM_BUF_SIZE).
pub const HEADER_SIZE: usize = 256;

/// The program an execve runs, and the scripts handed to it on the way.
pub struct Program {
    pub file: Resolved,
    /// The argv the program gets.
    pub argv: Vec<Vec<u8>>,
    /// The scripts, outermost first (the file the path named, then each interpreter that
    /// was itself a script).
    pub scripts: Vec<Resolved>,
}

/// An interpreter step that a file asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub path: Vec<u8>,
    /// The interpreter line's one argument.
    pub argument: Option<Vec<u8>>,
    /// binfmt_misc: the argv the kernel builds differs (see the module).
    pub misc: Option<MiscFlags>,
}

/// The binfmt_misc flags that change what the kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiscFlags {
    /// P: argv[0] is passed on, after the filename.
    pub preserve_argv0: bool,
    /// F: the interpreter was opened when the handler was registered, in the registering
    /// process's root (the host's), not in the caller's.
    pub fixed: bool,
}

/// Follows the interpreter steps from `first` (what `filename` names, with `argv`).
/// `interpreter_of` says which step a file asks for. Err(ENOENT) when an interpreter does
/// not exist (the kernel fails the exec the same way), Err(ELOOP) past the kernel's limit.
pub fn follow(
    pid: u32,
    root: &ProcessRoot,
    first: Resolved,
    filename: Vec<u8>,
    argv: Vec<Vec<u8>>,
    mut interpreter_of: impl FnMut(&Resolved, &[u8]) -> Option<Interpreter>,
) -> io::Result<Program> {
    let (mut file, mut filename, mut argv) = (first, filename, argv);
    let mut scripts = Vec::new();
    for _ in 0..=MAX_STEPS {
        let Some(interpreter) = interpreter_of(&file, &filename) else {
            return Ok(Program { file, argv, scripts });
        };
        if scripts.len() == MAX_STEPS {
            break;
        }
        let mut next = vec![interpreter.path.clone()];
        match interpreter.misc {
            Some(flags) => {
                next.push(filename);
                if flags.preserve_argv0 {
                    next.extend(argv.first().cloned());
                }
            }
            None => {
                next.extend(interpreter.argument.clone());
                next.push(filename);
            }
        }
        next.extend(argv.into_iter().skip(1));
        let fixed = interpreter.misc.is_some_and(|flags| flags.fixed);
        let interpreter_file = if fixed {
            let own = ProcessRoot::of(std::process::id())?;
            resolve::resolve(std::process::id(), &own, None, &interpreter.path, false)?
        } else {
            resolve::resolve(pid, root, None, &interpreter.path, false)?
        };
        scripts.push(std::mem::replace(&mut file, interpreter_file));
        filename = interpreter.path;
        argv = next;
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// A registered binfmt_misc handler (its entry under /proc/sys/fs/binfmt_misc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscHandler {
    matches: MiscMatch,
    interpreter: Vec<u8>,
    flags: MiscFlags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MiscMatch {
    /// `magic` at `offset`, compared under `mask` (the kernel keeps `magic` masked).
    Magic { offset: usize, magic: Vec<u8>, mask: Option<Vec<u8>> },
    /// The text after the filename's last '.'.
    Extension(Vec<u8>),
}

/// The enabled handlers, as a recent reading of /proc/sys/fs/binfmt_misc gives them:
/// none when it is not mounted, or binfmt_misc is disabled.
pub fn misc_handlers() -> Arc<[MiscHandler]> {
    static READING: OnceLock<Mutex<(Instant, Arc<[MiscHandler]>)>> = OnceLock::new();
    let reading = READING.get_or_init(|| Mutex::new((Instant::now(), read_misc_handlers(Path::new(BINFMT_MISC)))));
    let mut reading = crate::lock(reading);
    if reading.0.elapsed() >= MISC_HANDLERS_FOR {
        *reading = (Instant::now(), read_misc_handlers(Path::new(BINFMT_MISC)));
    }
    reading.1.clone()
}

fn read_misc_handlers(dir: &Path) -> Arc<[MiscHandler]> {
    let enabled = std::fs::read(dir.join("status")).is_ok_and(|status| status.starts_with(b"enabled"));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) if enabled => entries,
        _ => return Arc::from([]),
    };
    let mut handlers: Vec<(std::ffi::OsString, MiscHandler)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name() != "register" && entry.file_name() != "status")
        .filter_map(|entry| {
            let text = std::fs::read(entry.path()).ok()?;
            parse_misc_handler(&text).map(|handler| (entry.file_name(), handler))
        })
        .collect();
    // The kernel asks the newest first; the entries do not say which that is.
    handlers.sort_by(|a, b| a.0.cmp(&b.0));
    handlers.into_iter().map(|(_, handler)| handler).collect()
}

/// An entry as fs/binfmt_misc.c prints it (bm_entry_read): `enabled`, `interpreter PATH`,
/// `flags: POCF`, then `offset N`, `magic HEX`, `mask HEX`, or `extension .EXT`. None for a
/// disabled entry.
fn parse_misc_handler(text: &[u8]) -> Option<MiscHandler> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "enabled" {
        return None;
    }
    let (mut interpreter, mut flags, mut offset, mut magic, mut mask, mut extension) =
        (None, MiscFlags { preserve_argv0: false, fixed: false }, 0, None, None, None);
    let hex = |text: &str| -> Option<Vec<u8>> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
    };
    for line in lines {
        if let Some(path) = line.strip_prefix("interpreter ") {
            interpreter = Some(path.as_bytes().to_vec());
        } else if let Some(letters) = line.strip_prefix("flags:") {
            flags = MiscFlags { preserve_argv0: letters.contains('P'), fixed: letters.contains('F') };
        } else if let Some(n) = line.strip_prefix("offset ") {
            offset = n.trim().parse().ok()?;
        } else if let Some(bytes) = line.strip_prefix("magic ") {
            magic = Some(hex(bytes.trim())?);
        } else if let Some(bytes) = line.strip_prefix("mask ") {
            mask = Some(hex(bytes.trim())?);
        } else if let Some(ext) = line.strip_prefix("extension .") {
            extension = Some(ext.as_bytes().to_vec());
        }
    }
    let matches = match (magic, extension) {
        (Some(magic), _) => MiscMatch::Magic { offset, magic, mask },
        (None, Some(extension)) => MiscMatch::Extension(extension),
        (None, None) => return None,
    };
    Some(MiscHandler { matches, interpreter: interpreter?, flags })
}

/// The handler the kernel picks for a file with this header and filename (the first that
/// matches; fs/binfmt_misc.c check_file()).
pub fn misc_interpreter(handlers: &[MiscHandler], header: &[u8], filename: &[u8]) -> Option<Interpreter> {
    let handler = handlers.iter().find(|handler| match &handler.matches {
        MiscMatch::Magic { offset, magic, mask } => magic.iter().enumerate().all(|(i, &want)| {
            let byte = header.get(offset + i).copied();
            let mask = mask.as_ref().and_then(|mask| mask.get(i).copied()).unwrap_or(0xff);
            byte.is_some_and(|byte| byte & mask == want)
        }),
        MiscMatch::Extension(extension) => filename
            .iter()
            .rposition(|&b| b == b'.')
            .and_then(|dot| filename.get(dot + 1..))
            .is_some_and(|ext| ext == extension.as_slice()),
    })?;
    Some(Interpreter { path: handler.interpreter.clone(), argument: None, misc: Some(handler.flags) })
}

/// The first bytes of a file, as the kernel reads them to choose its format.
pub fn header(file: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    // The fd is O_PATH; reading needs a real open of it.
    let reader = File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let mut header = Vec::with_capacity(HEADER_SIZE);
    reader.take(HEADER_SIZE as u64).read_to_end(&mut header)?;
    Ok(header)
}

/// The interpreter line of a header, parsed as fs/binfmt_script.c does: the interpreter
/// is the first word after `#!` (spaces and tabs skipped), its argument the rest of the
/// line with the surrounding spaces and tabs removed. A line longer than the header counts
/// only if the interpreter's name ends within it (else the kernel refuses the file).
pub fn interpreter_line(header: &[u8]) -> Option<Interpreter> {
    let rest = header.strip_prefix(b"#!")?;
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let line = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => rest.get(..end)?,
        None => {
            let start = rest.iter().position(|b| !is_space(b))?;
            let name = rest.get(start..)?;
            name.iter().position(|b| is_space(b) || *b == 0)?;
            rest
        }
    };
    let line = trim(line, is_space);
    let end = line.iter().position(|b| is_space(b) || *b == 0).unwrap_or(line.len());
    let (path, after) = line.split_at(end);
    if path.is_empty() {
        return None;
    }
    let argument = match after.first() {
        Some(b' ' | b'\t') => Some(trim(after, is_space).to_vec()).filter(|arg| !arg.is_empty()),
        _ => None,
    };
    Some(Interpreter { path: path.to_vec(), argument, misc: None })
}

fn trim(bytes: &[u8], is_space: impl Fn(&u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(start, |end| end + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The filename the kernel hands an interpreter (bprm->filename, fs/exec.c
/// alloc_bprm()): the path as given, or `/dev/fd/N[/path]` for execveat with a dirfd.
pub fn kernel_filename(path: &[u8], dirfd: Option<i32>, empty_path: bool) -> Vec<u8> {
    match dirfd {
        Some(fd) if !path.starts_with(b"/") => {
            let mut name = format!("/dev/fd/{fd}").into_bytes();
            if !(path.is_empty() && empty_path) {
                name.push(b'/');
                name.extend_from_slice(path);
            }
            name
        }
        _ => path.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &[u8]) -> Option<(String, Option<String>)> {
        interpreter_line(text).map(|i| {
            let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (lossy(&i.path), i.argument.as_deref().map(lossy))
        })
    }

    #[test]
    fn interpreter_lines_are_read_as_the_kernel_reads_them() {
        let some = |path: &str, arg: Option<&str>| Some((path.to_string(), arg.map(String::from)));
        assert_eq!(line(b"#!/bin/sh\necho"), some("/bin/sh", None));
        assert_eq!(line(b"#! \t/usr/bin/nc -e /bin/sh \t\nx"), some("/usr/bin/nc", Some("-e /bin/sh")));
        assert_eq!(line(b"#!/usr/bin/env python3\n"), some("/usr/bin/env", Some("python3")));
        assert_eq!(line(b"#!nc\n"), some("nc", None));
        assert_eq!(line(b"#!/bin/sh"), None, "no newline and the name runs to the end: the kernel refuses");
        assert_eq!(line(b"#!/bin/sh -x"), some("/bin/sh", Some("-x")));
        assert_eq!(line(b"#!   \n"), None);
        assert_eq!(line(b"\x7fELF"), None);
        assert_eq!(line(b"# !/bin/sh\n"), None);
    }

    #[test]
    fn binfmt_misc_entries_are_read_and_matched_as_the_kernel_does() {
        let magic = parse_misc_handler(
            b"enabled\ninterpreter /usr/bin/qemu-arm\nflags: POCF\noffset 2\nmagic 4507\nmask ff0f\n",
        )
        .unwrap();
        assert_eq!(magic.flags, MiscFlags { preserve_argv0: true, fixed: true });
        let extension = parse_misc_handler(b"enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n").unwrap();
        assert_eq!(parse_misc_handler(b"disabled\ninterpreter /x\nflags: \nextension .x\n"), None);
        let handlers = [magic, extension];
        let found = |header: &[u8], name: &[u8]| misc_interpreter(&handlers, header, name).map(|i| i.path);
        assert_eq!(found(b"..EG..", b"/tmp/a"), Some(b"/usr/bin/qemu-arm".to_vec()));
        assert_eq!(found(b"..E\x37", b"/tmp/a"), Some(b"/usr/bin/qemu-arm".to_vec()), "under the mask");
        assert_eq!(found(b"..EH", b"/tmp/a"), None);
        assert_eq!(found(b"..", b"/tmp/a.exe"), Some(b"/usr/bin/wine".to_vec()));
        assert_eq!(found(b"..", b"/tmp/a.exe/b"), None);
    }

    #[test]
    fn execveat_names_the_file_by_its_dirfd() {
        assert_eq!(kernel_filename(b"/tmp/x", Some(3), false), b"/tmp/x");
        assert_eq!(kernel_filename(b"x", None, false), b"x");
        assert_eq!(kernel_filename(b"x", Some(3), false), b"/dev/fd/3/x");
        assert_eq!(kernel_filename(b"", Some(3), true), b"/dev/fd/3");
    }
}
