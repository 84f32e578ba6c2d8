//! Building the exec event from the stopped process, and deciding it.
//!
//! The order is what makes the result trustworthy and cheap:
//! 1. the path and argv come from the process's memory (process_vm_readv), and
//!    SECCOMP_IOCTL_NOTIF_ID_VALID then proves that the pid still belongs to the task that
//!    waits in this execve (seccomp_unotify(2): the pid could have been reused meanwhile);
//! 2. the path is resolved in the process's root (the filter's, opened once, while no
//!    process could have changed roots: [`RootChanges`]) and working directory, and the
//!    file it names is pinned and identified (its identity cached by inode);
//! 3. the policy says which costly facts the rules that may match need (parent,
//!    ancestors, terminal, working directory: each a /proc read of 5 to 30 us here) and
//!    only those are read before deciding;
//! 4. an exec that is to be alerted on or blocked gets every fact (a responder needs the
//!    whole picture, and the extra reads only cost the rare exec), is decided again on the
//!    complete event, and ID_VALID is checked once more after those reads.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use execguard_policy::event::{Ancestor, Parent, User};
use execguard_policy::name::{basename, is_dynamic_loader, is_multi_call, loaded_program, script, tool_name};
use execguard_policy::{Action, DecisionRecord, ExecEvent, FirstLook, Needs, Policy, ProcessView};

use crate::identity::Identities;
use crate::memory::{self, Bounds, Unreadable};
use crate::processes::{ProcessTable, Started};
use crate::procfs::{self, FileId};
use crate::program::{self, Program};
use crate::resolve::{self, ProcessRoot, Resolved};
use crate::{lock, Config, FailAction};
use execguard_seccomp::{ExecArgs, Notification, NotifyFd};

/// PATH_MAX: the kernel refuses a longer path itself.
const MAX_PATH: usize = 4096;

/// Directories where files dropped at run time live (besides tmpfs mounts, which are
/// recognised by their file system).
const WRITABLE_DIRS: [&str; 6] = ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/", "/home/", "/root/"];

/// How much of a process the supervisor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Arguments read from argv; more sets `execguard.args_truncated`.
    pub max_args: usize,
    /// Bytes of arguments read in all.
    pub max_arg_bytes: usize,
    /// Ancestors listed above the parent.
    pub max_ancestors: usize,
}

impl Default for Limits {
    /// Generous for real command lines (Linux's own limit is 2 MiB with at most 128 KiB per
    /// argument), small enough that an argv of megabytes costs little: what is cut is
    /// marked, and the default policy blocks network tools whose argv was cut.
    fn default() -> Self {
        Limits { max_args: 1024, max_arg_bytes: 256 * 1024, max_ancestors: 16 }
    }
}

/// What the exec belongs to: the container and pod, when there is one.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub container: Option<execguard_policy::event::Container>,
    pub orchestrator: Option<execguard_policy::event::Orchestrator>,
    /// The container's writable layer (overlayfs upperdir) as the host sees it: a file
    /// that has an entry there was written after the container started, not shipped in
    /// the image.
    pub upper_dir: Option<std::path::PathBuf>,
    /// Present when the filter also notifies every syscall that can change a process's
    /// root (see [`RootChanges`]); shared by every filter of one mount namespace.
    pub root_changes: Option<Arc<RootChanges>>,
    /// The filter has the socket gate (execguard_seccomp::Gate): the supervisor keeps what it
    /// approved at each exec, to tell an exec race when the process opens a socket.
    pub gate: bool,
}

/// Whether any process of a mount namespace has changed roots since its filters were
/// installed.
///
/// Opening /proc/PID/root costs more than everything else an ordinary exec needs. The
/// processes under a filter inherit the root of the process that installed it, and only
/// chroot, pivot_root, setns, and unshare or clone with CLONE_NEWNS give a process another
/// root or mount tree (mounts made later in the same tree are seen from any root in it).
/// When the filter notifies those too, the supervisor opens the root once per filter and
/// resolves every path in it, until the first such syscall: the supervisor records it here
/// before letting it run, and from then on opens each exec's own root. It is shared per
/// mount namespace because pivot_root moves the root of every process in it.
#[derive(Debug, Default)]
pub struct RootChanges(AtomicBool);

impl RootChanges {
    /// Records a root change about to happen; true the first time.
    pub fn record(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }

    pub fn seen(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where a filter's process tree ends.
///
/// The process whose exec a filter saw first (the container's init as runc execs the
/// entrypoint, an exec session's process, the command of `execguard run`) is the top.
/// The processes above it are the host's: runc's parent, the shim, `execguard run` and
/// whoever started it. They are never part of an event: rules are written for the
/// container's paths, and a host binary under /home or /tmp is no "writable ancestor" of
/// the workload. So the top has no parent, and a process that was reparented out of the
/// tree (to a subreaper above the top, or to the host's init) has none either.
#[derive(Debug)]
pub struct Lineage {
    top: u32,
    /// The top's ancestors when the filter saw it, with their start times: a pid that is
    /// reused later by a process of the tree is not taken for them.
    outside: HashMap<u32, u64>,
}

impl Lineage {
    /// The lineage whose top is `top`, read while `top` waits in its first execve.
    pub fn of(top: u32) -> Lineage {
        let mut outside = HashMap::new();
        let mut current = top;
        while let Ok(stat) = procfs::stat(current) {
            if stat.ppid <= 1 || outside.len() >= 64 {
                break;
            }
            let Ok(parent) = procfs::stat(stat.ppid) else { break };
            outside.insert(stat.ppid, parent.start_time);
            current = stat.ppid;
        }
        Lineage { top, outside }
    }

    /// Whether `ppid`, the parent of a process of the tree that is not the top, is in the
    /// tree too.
    fn contains_parent(&self, ppid: u32) -> bool {
        if ppid <= 1 {
            return false;
        }
        match self.outside.get(&ppid) {
            None => true,
            Some(&start_time) => procfs::stat(ppid).is_ok_and(|stat| stat.start_time != start_time),
        }
    }
}

/// The processes of a filter that run, or were started by, something from a writable
/// location, recorded at their exec and found again for any descendant at any depth.
///
/// A process is recorded when its exec runs a file from a writable location (the
/// program, or a script the kernel hands to it), or when a program that the rules read a
/// script for (`sh /tmp/x.sh`, however the path is spelled or linked) gets one from there,
/// or reads one from there on its stdin (`sh < /tmp/x.sh`). The record stays with the pid
/// (and its start time) across later execs: `exec nc` in such a script is still started
/// by it. A shell that sources a file keeps it open while it runs it (dash, busybox ash;
/// bash reads it whole first), so the open files of the lineage are looked at too.
#[derive(Debug, Default)]
pub struct WritableLineage(Mutex<HashMap<u32, (u64, Box<str>)>>);

/// Records kept per filter before the ones of processes that are gone are dropped.
const MAX_LINEAGE_RECORDS: usize = 4096;
/// Open files looked at per process of the lineage.
const MAX_OPEN_FILES: usize = 256;

impl WritableLineage {
    fn record(&self, pid: u32, origin: String) {
        let Ok(stat) = procfs::stat(pid) else { return };
        let mut records = lock(&self.0);
        if records.len() >= MAX_LINEAGE_RECORDS {
            records.retain(|&pid, (start, _)| procfs::stat(pid).is_ok_and(|stat| stat.start_time == *start));
        }
        records.entry(pid).or_insert((stat.start_time, origin.into()));
    }

    /// Why `pid` counts as started from a writable location, if it does: itself (as it
    /// was before this exec), then each process above it up to the lineage's top.
    fn find(&self, pid: u32, lineage: &Lineage, policy: &Policy, seen: &mut Seen) -> Option<String> {
        let mut current = pid;
        for _ in 0..=MAX_LINEAGE_RECORDS {
            let stat = seen.stat(current)?;
            let recorded = lock(&self.0).get(&current).filter(|(start, _)| *start == stat.start_time).cloned();
            if let Some((_, origin)) = recorded {
                return Some(origin.into());
            }
            let program = seen.executable(current);
            if program.as_deref().is_some_and(|exe| policy.reads_script(basename(exe))) {
                if let Some(file) = open_writable_script(current) {
                    return Some(format!("pid {current} ({}) reads the script {file}", program.unwrap_or_default()));
                }
            }
            if current == lineage.top || !lineage.contains_parent(stat.ppid) {
                return None;
            }
            current = stat.ppid;
        }
        None
    }
}

/// A regular file in a writable location that `pid` holds open for reading only: a
/// script being sourced (a log the process writes is no script).
///
/// How each fd was opened is the mode of its /proc/PID/fd link (fs/proc/fd.c,
/// tid_fd_update_inode: S_IRUSR for FMODE_READ, S_IWUSR for FMODE_WRITE), so one statx
/// (relative to the directory, as DirEntry::metadata makes it) sets aside a shell's
/// stdout, stderr and terminal before any readlink, and no fdinfo is read (issue #16:
/// these scans were most of a network-tool exec's syscalls under a shell).
fn open_writable_script(pid: u32) -> Option<String> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    entries.filter_map(Result::ok).take(MAX_OPEN_FILES).find_map(|entry| {
        let opened = entry.metadata().ok()?.permissions().mode();
        if opened & libc::S_IWUSR != 0 || opened & libc::S_IRUSR == 0 {
            return None;
        }
        let text = lossy(std::fs::read_link(entry.path()).ok()?.as_os_str().as_encoded_bytes());
        if !WRITABLE_DIRS.iter().any(|dir| text.starts_with(dir)) || !std::fs::metadata(entry.path()).ok()?.is_file() {
            return None;
        }
        Some(text)
    })
}

/// What makes this exec's process run something from a writable location, if anything.
fn writable_origin(
    event: &ExecEvent,
    files: &[Resolved],
    policy: &Policy,
    pid: u32,
    root: &ProcessRoot,
    source: &Source,
) -> Option<String> {
    let from_writable = |f: &Resolved| {
        f.fileless
            || in_writable_location(f, source)
            || source.scope.upper_dir.as_ref().is_some_and(|u| !in_image(f, u))
    };
    let executable = &event.process.executable;
    // The program and its scripts: the facts already computed for them.
    let facts = &event.execguard.file;
    if facts.fileless == Some(true) || facts.writable_location == Some(true) || facts.in_image == Some(false) {
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        return Some(format!("pid {pid} runs {}, from a writable location", paths.join(", ")));
    }
    let name = event.process.name.as_deref()?;
    if !policy.reads_script(name) {
        return None;
    }
    let args = event.process.args.get(1..).unwrap_or(&[]);
    let script = match script(args) {
        Some(path) => resolve::resolve(pid, root, None, path.as_bytes(), false).ok(),
        // No script and no inline code (`sh < /tmp/x.sh`): the script is on stdin.
        None if !args.iter().any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c')) => {
            resolve::resolve(pid, root, Some(0), b"", true).ok().filter(stdin_is_file)
        }
        None => None,
    }?;
    from_writable(&script).then(|| format!("pid {pid} ({executable}) runs the script {}", script.path))
}

fn stdin_is_file(stdin: &Resolved) -> bool {
    resolve::fstat(stdin.file.as_fd()).is_ok_and(|st| u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFREG)
}

fn in_writable_location(file: &Resolved, source: &Source) -> bool {
    WRITABLE_DIRS.iter().any(|dir| file.path.starts_with(dir))
        || on_writable_memory_fs(file, source.mounts_not_in_memory)
}

/// Whether the file was in the image: it has no entry in the container's writable layer.
fn in_image(file: &Resolved, upper: &std::path::Path) -> bool {
    !(file.fileless || upper.join(file.path.trim_start_matches('/')).symlink_metadata().is_ok())
}

/// The socket gate's memory, per filter: the threads whose running program was verified
/// against what their exec was let through for ([`ProcessTable`]).
///
/// Each is kept with its /proc/TID directory held open (O_PATH) and the file it runs, so
/// that its later sockets cost one fstatat of `exe` in that directory: the directory
/// names that thread and no later one that reuses the tid (a lookup under it fails once
/// the thread is gone), and the file tells another program. An exec of the thread, or of
/// another thread of its process, is forgotten at the exec ([`GateState::forget`]), for a
/// multi-call binary runs the same file whatever it was exec'd as.
#[derive(Debug, Default)]
pub struct GateState {
    verified: Mutex<HashMap<u32, Verified>>,
}

#[derive(Debug)]
struct Verified {
    dir: std::os::fd::OwnedFd,
    file: FileId,
}

/// Threads kept verified per filter, each an open fd: past the bound the ones that are
/// gone are dropped, and a thread that does not fit is verified again at each socket.
const MAX_VERIFIED: usize = 128;

/// The file that the process whose /proc/TID directory `dir` is runs; None once it is gone.
fn exe_in(dir: &std::os::fd::OwnedFd) -> Option<FileId> {
    let st = nix::sys::stat::fstatat(dir, "exe", nix::fcntl::AtFlags::empty()).ok()?;
    Some((st.st_dev, st.st_ino))
}

impl GateState {
    /// An exec of `tid`: its process will run something else, under the thread-group
    /// leader's tid once the exec is done (de_thread), whichever thread called it.
    /// Most execs come from a thread that leads its process, which one pidfd_open tells;
    /// only another thread's exec has its leader looked up in /proc/TID/status.
    pub(crate) fn forget(&self, tid: u32) {
        let mut verified = lock(&self.verified);
        verified.remove(&tid);
        if verified.is_empty() {
            return;
        }
        drop(verified);
        if procfs::leads_its_process(tid).unwrap_or(false) {
            return;
        }
        if let Some(&leader) = procfs::namespace_ids(tid).ok().as_ref().and_then(|ids| ids.tgid.first()) {
            lock(&self.verified).remove(&leader);
        }
    }

    /// Keeps `tid`, just found to run `file` as its exec was let through for, verified.
    /// Its directory is opened after that check, so it is proven to name a thread that
    /// runs `file` before it is kept.
    fn verify(&self, tid: u32, file: FileId) {
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
        let Ok(dir) = nix::fcntl::open(format!("/proc/{tid}").as_str(), flags, nix::sys::stat::Mode::empty()) else {
            return;
        };
        if exe_in(&dir) != Some(file) {
            return;
        }
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, kept| exe_in(&kept.dir).is_some());
        }
        if verified.len() < MAX_VERIFIED || verified.contains_key(&tid) {
            verified.insert(tid, Verified { dir, file });
        }
    }

    fn is_verified(&self, tid: u32) -> bool {
        lock(&self.verified).get(&tid).is_some_and(|kept| exe_in(&kept.dir) == Some(kept.file))
    }
}

/// A network socket of a process under the gate. What runs is read from state the kernel
/// owns after the exec, which no racing thread can change: the file behind /proc/TID/exe
/// and argv from /proc/TID/cmdline (the kernel's copy, in the new image's own memory).
/// When that is what the exec gate approved, the socket passes, and so do the thread's
/// later ones. Otherwise (a race won at the exec, or an exec that was let through
/// undecided) it is decided afresh on what runs; a block refuses the socket, and the
/// caller kills the process.
pub fn gate(source: &Source, notification: &Notification, policy: &Policy, config: &Config) -> Inspected {
    if !notification.needs_the_gate() {
        return Inspected::Passed;
    }
    let tid = notification.pid;
    if source.gate.is_verified(tid) {
        return Inspected::Passed;
    }
    let Ok(file) = procfs::exe_file(tid) else { return Inspected::Withdrawn };
    let limits = &config.limits;
    // The common case first, without resolving anything: the file and argv that the
    // exec was approved for.
    let argv = procfs::cmdline(tid, limits.max_arg_bytes);
    let approved = source.processes.last_exec(tid);
    if let (Ok(argv), Some(approved)) = (&argv, &approved) {
        if approved.file == file && &approved.argv == argv && source.fd.id_valid(notification.id) {
            source.gate.verify(tid, file);
            return Inspected::Passed;
        }
    }
    let mut own_root = None;
    let process_root = match filter_root_for(source, notification) {
        Some(shared) => Ok(shared),
        None => ProcessRoot::of(tid).map(|opened| &*own_root.insert(opened)),
    };
    let read =
        process_root.and_then(|root| Ok((root, resolve::resolve(tid, root, None, b"/proc/self/exe", false)?, argv?)));
    if !source.fd.id_valid(notification.id) {
        return Inspected::Withdrawn;
    }
    let (process_root, exe, argv) = match read {
        Ok(read) => read,
        Err(error) => {
            let event = ExecEvent::new(String::new(), Vec::new());
            return undecidable(event, config.fail_action, &format!("cannot read what the process runs: {error}"));
        }
    };
    let mut event = ExecEvent::new(String::new(), Vec::new());
    event.process.pid = Some(tid);
    event.container = source.scope.container.clone();
    event.orchestrator = source.scope.orchestrator.clone();
    event.execguard.exec_race = Some(match &approved {
        Some(checked) => {
            let args: Vec<String> = lossy_all(&checked.argv);
            format!("the exec was approved for {} {args:?}; the process runs something else", checked.path)
        }
        None => "no exec of this process was approved (it was let through undecided)".to_string(),
    });
    event.process.args = lossy_all(&argv);
    let identities = lock(source.identities);
    let program = Program { file: exe, argv, scripts: Vec::new() };
    let inspected = judge(source, notification, policy, config, process_root, event, program, None, identities);
    if !matches!(&inspected, Inspected::Decided { action: Action::Block, .. }) {
        source.gate.verify(tid, file);
    }
    inspected
}

/// Fault injection for the tests of a panicking inspection (cli/tests/faults.rs): in
/// debug builds only, an exec of the path that `EXECGUARD_TEST_PANIC_ON_EXEC` names
/// panics here, as a bug in an inspection would. Release builds have no such path.
fn panic_on_request(path: &[u8]) {
    if cfg!(debug_assertions) {
        let requested = std::env::var_os("EXECGUARD_TEST_PANIC_ON_EXEC");
        if requested.is_some_and(|requested| requested.as_encoded_bytes() == path) {
            panic!("EXECGUARD_TEST_PANIC_ON_EXEC: a panic in the inspection of {}", lossy(path));
        }
    }
}

/// The outcome for one notification.
#[derive(Debug)]
pub enum Inspected {
    /// The notification vanished (signal, exit, pid reuse): there is nothing to answer.
    Withdrawn,
    /// A socket of a process that runs what its exec was approved for: nothing new.
    Passed,
    /// The path names no file: the kernel fails the exec with ENOENT by itself. Blocking
    /// it instead would break PATH searches (execvp stops at the first error that is not
    /// ENOENT), so it is let through, undecided.
    Missing,
    Decided {
        event: Box<ExecEvent>,
        record: Box<DecisionRecord>,
        action: Action,
        after: AfterAnswer,
    },
}

/// What is left of an inspection once its answer is sent: the exec waits for none of it
/// (issue #16: close what was resolved, and record the exec, after SEND).
#[derive(Debug, Default)]
pub struct AfterAnswer {
    /// The files resolved to decide it.
    opened: Vec<Resolved>,
    /// The exec, for the process table: thread, path, file and argv.
    exec: Option<(u32, String, FileId, Vec<Vec<u8>>)>,
}

impl AfterAnswer {
    /// Records the exec in the process table unless it was blocked, and closes its files.
    /// Recorded after the answer, the entry is there before the process's next
    /// notification (one receiver serves them in turn) and dated later than the exec
    /// was let through, as [`ProcessTable`] requires.
    pub fn finish(self, processes: &ProcessTable, action: Action) {
        let AfterAnswer { opened, exec } = self;
        if let Some((tid, path, file, argv)) = exec.filter(|_| action != Action::Block) {
            processes.record(tid, path, file, argv);
        }
        drop(opened);
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lossy_all(args: &[Vec<u8>]) -> Vec<String> {
    args.iter().map(|a| lossy(a)).collect()
}

/// The filter a notification came from, as inspection sees it.
pub struct Source<'a> {
    pub fd: &'a NotifyFd,
    pub scope: &'a Scope,
    pub lineage: &'a Lineage,
    /// The root of the filter's processes, opened at its first exec (see [`RootChanges`]).
    pub filter_root: &'a OnceLock<ProcessRoot>,
    /// Unique ids of the mounts seen so far whose file system is not a memory one.
    pub mounts_not_in_memory: &'a Mutex<HashSet<u64>>,
    pub identities: &'a Mutex<Identities>,
    pub writable_lineage: &'a WritableLineage,
    pub processes: &'a ProcessTable,
    pub gate: &'a GateState,
}

/// Inspects and decides one notification.
pub fn inspect(source: &Source, notification: &Notification, policy: &Policy, config: &Config) -> Inspected {
    let Source { fd, scope, identities, .. } = *source;
    let limits = &config.limits;
    let pid = notification.pid;
    let exec = notification.exec_args();
    // A new program: what the gate verified for this thread no longer holds.
    source.gate.forget(pid);
    let bounds = Bounds { max_path: MAX_PATH, max_args: limits.max_args, max_arg_bytes: limits.max_arg_bytes };
    let read = memory::read_exec(pid, exec.path, exec.argv, exec.pointer_width, bounds);
    // Nothing read is used before this check.
    if !fd.id_valid(notification.id) {
        return Inspected::Withdrawn;
    }
    let (path, argv) = match read {
        Ok(read) => read,
        Err(unreadable) => return unreadable_exec(pid, scope, unreadable),
    };
    panic_on_request(&path);

    let mut event = ExecEvent::new(lossy(&path), lossy_all(&argv.args));
    event.process.pid = Some(pid);
    event.container = scope.container.clone();
    event.orchestrator = scope.orchestrator.clone();
    event.execguard.args_truncated = argv.truncated;
    let mut own_root = None;
    let process_root = match filter_root_for(source, notification) {
        Some(shared) => Ok(shared),
        None => ProcessRoot::of(pid).map(|opened| &*own_root.insert(opened)),
    };
    let resolved = process_root
        .and_then(|root| resolve::resolve(pid, root, exec.dirfd, &path, exec.empty_path).map(|found| (root, found)));
    let (process_root, resolved) = match resolved {
        Ok(found) => found,
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Inspected::Missing,
        // Anything else (EACCES, ELOOP, a process gone mid-walk): what will run is unknown,
        // and a decision on the path's text would be a decision on something else.
        Err(error) => {
            return undecidable(event, config.fail_action, &format!("cannot establish which file runs: {error}"))
        }
    };
    let mut identities = lock(identities);
    identities.learn(pid, process_root, policy.tool_names());
    // Interpreter lines, followed as the kernel follows them within this execve.
    let filename = program::kernel_filename(&path, exec.dirfd, exec.empty_path);
    let misc_handlers = program::misc_handlers();
    let interpreter_of = |file: &Resolved, filename: &[u8]| {
        let misc = (!misc_handlers.is_empty()).then(|| program::header(file.file.as_fd()).ok()).flatten();
        misc.and_then(|header| program::misc_interpreter(&misc_handlers, &header, filename))
            .or_else(|| identities.interpreter_line(file))
    };
    let followed = program::follow(pid, process_root, resolved, filename, argv.args, interpreter_of);
    let program = match followed {
        Ok(program) => program,
        // An interpreter that does not exist: the kernel fails the exec by itself.
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Inspected::Missing,
        Err(error) => {
            drop(identities);
            return undecidable(
                event,
                config.fail_action,
                &format!("cannot establish which interpreter runs: {error}"),
            );
        }
    };
    // The event was made with the exec's argv; an interpreter line gives the program another.
    if !program.scripts.is_empty() {
        event.process.args = lossy_all(&program.argv);
    }
    judge(source, notification, policy, config, process_root, event, program, Some(&exec), identities)
}

/// Decides `program`, the program the process runs (or will run), with the facts the
/// rules need; `event` already carries the program's argv. `exec`: the execve's
/// arguments, when it is one.
#[allow(clippy::too_many_arguments)]
fn judge(
    source: &Source,
    notification: &Notification,
    policy: &Policy,
    config: &Config,
    process_root: &ProcessRoot,
    mut event: ExecEvent,
    program: Program,
    exec: Option<&ExecArgs>,
    mut identities: std::sync::MutexGuard<'_, Identities>,
) -> Inspected {
    let (pid, limits, scope, fd) = (notification.pid, &config.limits, source.scope, source.fd);
    event.process.executable = program.file.path.clone();
    event.execguard.scripts = program.scripts.iter().map(|script| script.path.clone()).collect();
    let mut identity = identities.identify(program.file.file.as_fd(), program.file.key);
    // What the process table keeps of an exec: the file the kernel maps, not a loaded one.
    let key = program.file.key;
    let mapped = exec.map(|_| (program.file.path.clone(), (key.dev, key.ino)));
    let mut files = vec![program.file];
    files.extend(program.scripts);
    // `ld.so PROGRAM`: what runs is PROGRAM, so the file facts are its own, unless the
    // loader only lists the program's libraries (`ldd`), which runs nothing of it.
    let loader_path = files[0].path.as_str();
    let loader = identity.as_deref().unwrap_or_else(|| basename(loader_path));
    if is_dynamic_loader(loader) {
        let lists_only = exec.is_some_and(|exec| loader_lists_only(pid, exec, loader_path, &program.argv, limits));
        event.execguard.loader_lists_only = lists_only;
        let loaded = loaded_program(loader, &event.process.args)
            .filter(|_| !lists_only)
            .and_then(|index| program.argv.get(index))
            .and_then(|path| resolve::resolve(pid, process_root, None, path, false).ok());
        if let Some(loaded) = loaded {
            identity = identities.identify(loaded.file.as_fd(), loaded.key);
            files[0] = loaded;
        }
    }
    drop(identities);
    let file = &mut event.execguard.file;
    file.identity = identity.map(String::from);
    file.fileless = Some(files.iter().any(|f| f.fileless));
    file.writable_location = Some(files.iter().any(|f| in_writable_location(f, source)));
    file.in_image = scope.upper_dir.as_ref().map(|upper| files.iter().all(|f| in_image(f, upper)));
    if event.execguard.file.identity.as_deref() == Some("toybox") {
        event.execguard.applet = toybox_link_applet(pid, process_root, &event.process.args, policy);
    }
    event.process.name = ProcessView::of_event(&event).name().map(String::from);
    // Carried down the lineage: this process now runs something from a writable place.
    if let Some(origin) = writable_origin(&event, &files, policy, pid, process_root, source) {
        source.writable_lineage.record(pid, origin);
    }

    let mut seen = Seen::new(source.processes, limits);
    let (mut decision, read_proc) = match policy.first_look(&event) {
        FirstLook::Decided(decision) => (decision, false),
        FirstLook::Needs(needs) => {
            fill(&mut event, needs, source, policy, limits, &mut seen);
            (policy.decide(&event), true)
        }
    };
    if decision.action != Action::Allow {
        let everything =
            Needs { parent: true, ancestors: true, interactive: true, working_directory: true, writable_lineage: true };
        fill(&mut event, everything, source, policy, limits, &mut seen);
        complete_directories(&mut event);
        event.process.user = procfs::uid(pid).ok().map(|uid| User { id: Some(uid.to_string()) });
        decision = policy.decide(&event);
    }
    if read_proc || decision.action != Action::Allow {
        // /proc was read after the first check: the same proof again.
        if !fd.id_valid(notification.id) {
            return Inspected::Withdrawn;
        }
    }
    let record = policy.record(&event, &decision);
    // The gate's judgement is of a process that already runs: no exec to record.
    let exec = mapped.map(|(path, file)| (pid, path, file, program.argv));
    let after = AfterAnswer { opened: files, exec };
    Inspected::Decided { event: Box::new(event), record: Box::new(record), action: decision.action, after }
}

/// The filter's root, when every process under the filter still has it: opened at the
/// first exec, and proven to be that process's by ID_VALID before it is kept. None when a
/// root may have changed, or the filter does not report root changes.
fn filter_root_for<'a>(source: &Source<'a>, notification: &Notification) -> Option<&'a ProcessRoot> {
    let root_changes = source.scope.root_changes.as_deref()?;
    if root_changes.seen() {
        return None;
    }
    if let Some(root) = source.filter_root.get() {
        return Some(root);
    }
    let opened = ProcessRoot::of(notification.pid).ok()?;
    if !source.fd.id_valid(notification.id) || root_changes.seen() {
        return None;
    }
    // Another exec of the filter may have opened it meanwhile: the same root either way.
    Some(source.filter_root.get_or_init(|| opened))
}

/// Whether the file lies on a writable tmpfs or ramfs. Most execs come from a few mounts
/// of other file systems, remembered so that they cost no syscall.
fn on_writable_memory_fs(resolved: &Resolved, mounts_not_in_memory: &Mutex<HashSet<u64>>) -> bool {
    let remembered = || lock(mounts_not_in_memory);
    if resolved.mount.is_some_and(|mount| remembered().contains(&mount)) {
        return false;
    }
    let file = resolved.file.as_fd();
    match resolve::on_memory_fs(file) {
        // Read-only can change with a remount: asked every time.
        Ok(true) => resolve::mounted_read_only(file).is_ok_and(|read_only| !read_only),
        Ok(false) => {
            if let Some(mount) = resolved.mount {
                remembered().insert(mount);
            }
            false
        }
        Err(_) => false,
    }
}

/// toybox runs argv[0]'s name when it is an applet, and otherwise follows argv[0] as a
/// symlink (readlink, relative to the working directory) and tries each name on the way
/// (main.c, toybox_main()). Which names are applets only the binary knows; so when a
/// name on the chain past argv[0]'s own is a tool the policy names, and argv[0]'s is not,
/// that tool is taken for what runs (the stricter reading: a symlink named like an
/// applet that points to nc is then decided as nc).
fn toybox_link_applet(pid: u32, root: &ProcessRoot, argv: &[String], policy: &Policy) -> Option<String> {
    let is_tool = |name: &str| policy.tool_names().iter().any(|tool| &**tool == name && !is_multi_call(name));
    let mut link = argv.first()?.as_bytes().to_vec();
    if is_tool(basename(&lossy(&link))) || basename(&lossy(&link)).starts_with("toybox") {
        return None;
    }
    for _ in 0..40 {
        link = resolve::read_link(pid, root, &link).ok()?;
        let name = lossy(&link);
        let name = name.trim_end_matches('/');
        let name = basename(name);
        if name.starts_with("toybox") {
            return None;
        }
        if is_tool(name) {
            return Some(name.to_string());
        }
    }
    None
}

/// Whether the dynamic loader is asked to list the program's libraries rather than run
/// it, as `ldd` asks: glibc's loader with LD_TRACE_LOADED_OBJECTS in the environment
/// (elf/rtld.c reads it whatever its value), musl's when called as `ldd` (ldso/dynlink.c).
/// The environment is read only for an exec of the loader.
fn loader_lists_only(pid: u32, exec: &ExecArgs, loader_path: &str, argv: &[Vec<u8>], limits: &Limits) -> bool {
    if loader_path.contains("ld-musl") {
        return argv.first().is_some_and(|arg0| basename(&lossy(arg0)) == "ldd");
    }
    let Ok(environment) = memory::read_argv(pid, exec.envp, exec.pointer_width, limits.max_args, limits.max_arg_bytes)
    else {
        return false;
    };
    environment.args.iter().any(|variable| variable.starts_with(b"LD_TRACE_LOADED_OBJECTS="))
}

/// An exec whose program cannot be established: the fail action, with the reason.
fn undecidable(mut event: ExecEvent, fail_action: FailAction, why: &str) -> Inspected {
    let (action, outcome) = match fail_action {
        FailAction::Open => (Action::Alert, "allowed (fail-open)"),
        FailAction::Closed => (Action::Block, "blocked (fail-closed)"),
    };
    event.process.name = Some(tool_name(&event.process.executable, None, &event.process.args).to_string());
    let record = DecisionRecord { decision: action, rule: None, reason: format!("{why}: {outcome}") };
    Inspected::Decided { event: Box::new(event), record: Box::new(record), action, after: AfterAnswer::default() }
}

fn unreadable_exec(pid: u32, scope: &Scope, unreadable: Unreadable) -> Inspected {
    let mut event = ExecEvent::new(String::new(), Vec::new());
    event.process.pid = Some(pid);
    event.container = scope.container.clone();
    event.orchestrator = scope.orchestrator.clone();
    let record = DecisionRecord { decision: Action::Block, rule: None, reason: unreadable.to_string() };
    let after = AfterAnswer::default();
    Inspected::Decided { event: Box::new(event), record: Box::new(record), action: Action::Block, after }
}

/// Reads the facts in `needs` that the event does not have yet. A process that is gone or
/// unreadable leaves its fields empty: a rule that needs them then does not match.
/// `seen` keeps what was read about the lineage's processes between calls for one exec.
fn fill(event: &mut ExecEvent, needs: Needs, source: &Source, policy: &Policy, limits: &Limits, seen: &mut Seen) {
    let Some(pid) = event.process.pid else { return };
    let lineage = source.lineage;
    if needs.writable_lineage && !seen.looked_for_writable_lineage {
        seen.looked_for_writable_lineage = true;
        event.execguard.writable_lineage = source.writable_lineage.find(pid, lineage, policy, seen);
    }
    let stat = if needs.parent || needs.ancestors || needs.interactive { seen.stat(pid) } else { None };
    if needs.interactive && event.process.interactive.is_none() {
        event.process.interactive = stat.map(|s| s.tty_nr != 0);
    }
    if needs.working_directory && event.process.working_directory.is_none() {
        event.process.working_directory = directory(pid);
    }
    let Some(stat) = stat else { return };
    if pid == lineage.top || !lineage.contains_parent(stat.ppid) {
        return;
    }
    if (needs.parent || needs.ancestors) && event.process.parent.is_none() {
        let facts = process_facts(stat.ppid, seen);
        let name = facts.executable.as_deref().map(|exe| tool_name(exe, None, &facts.args).to_string());
        event.process.parent = Some(Parent {
            executable: facts.executable,
            name,
            args: facts.args,
            pid: Some(stat.ppid),
            working_directory: facts.working_directory,
        });
    }
    if needs.ancestors && event.execguard.ancestors.is_empty() {
        event.execguard.ancestors = ancestors(stat.ppid, lineage, seen, limits);
    }
}

/// What one exec's inspection read about the processes of its lineage, so that each is
/// read once however many facts need it: /proc/PID/stat, and what the process runs, from
/// the process table where it still describes the process ([`ProcessTable::running`]),
/// from /proc otherwise.
struct Seen<'a> {
    processes: &'a ProcessTable,
    max_arg_bytes: usize,
    stats: Vec<(u32, Option<procfs::Stat>)>,
    running: Vec<(u32, Option<Started>)>,
    /// The writable lineage was looked for, found or not: an alert's second [`fill`] must
    /// not scan the lineage's open files again (issue #16).
    looked_for_writable_lineage: bool,
}

impl<'a> Seen<'a> {
    fn new(processes: &'a ProcessTable, limits: &Limits) -> Seen<'a> {
        Seen {
            processes,
            max_arg_bytes: limits.max_arg_bytes,
            stats: Vec::new(),
            running: Vec::new(),
            looked_for_writable_lineage: false,
        }
    }

    fn stat(&mut self, pid: u32) -> Option<procfs::Stat> {
        if let Some(&(_, stat)) = self.stats.iter().find(|(seen, _)| *seen == pid) {
            return stat;
        }
        let stat = procfs::stat(pid).ok();
        self.stats.push((pid, stat));
        stat
    }

    fn running(&mut self, pid: u32) -> Option<&Started> {
        if !self.running.iter().any(|(seen, _)| *seen == pid) {
            let running = self.stat(pid).and_then(|stat| self.processes.running(pid, stat.start_time));
            self.running.push((pid, running));
        }
        self.running.iter().find(|(seen, _)| *seen == pid).and_then(|(_, running)| running.as_ref())
    }

    fn executable(&mut self, pid: u32) -> Option<String> {
        match self.running(pid) {
            Some(started) => Some(started.path.clone()),
            None => procfs::exe(pid).ok().map(|exe| lossy(exe.as_os_str().as_encoded_bytes())),
        }
    }

    fn args(&mut self, pid: u32) -> Vec<String> {
        let max_arg_bytes = self.max_arg_bytes;
        match self.running(pid) {
            Some(started) => lossy_all(&started.argv),
            None => procfs::cmdline(pid, max_arg_bytes).map(|a| lossy_all(&a)).unwrap_or_default(),
        }
    }
}

struct ProcessFacts {
    executable: Option<String>,
    args: Vec<String>,
    working_directory: Option<String>,
}

/// A process of the lineage. Its working directory only makes a relative script path
/// absolute for the rules, so it is read here only for such a script (a readlink of
/// 6-10 us saved per process on the way up); an alert gets it by [`complete_directories`].
fn process_facts(pid: u32, seen: &mut Seen) -> ProcessFacts {
    let args = seen.args(pid);
    let executable = seen.executable(pid);
    let script_is_relative = ProcessView::of_ancestor(executable.as_deref(), &args).script_is_relative();
    let working_directory = if script_is_relative { directory(pid) } else { None };
    ProcessFacts { executable, args, working_directory }
}

fn directory(pid: u32) -> Option<String> {
    procfs::cwd(pid).ok().map(|p| lossy(p.as_os_str().as_encoded_bytes()))
}

/// The working directories of the lineage that [`process_facts`] left out: a responder
/// reading an alert wants every one.
fn complete_directories(event: &mut ExecEvent) {
    let parent = event.process.parent.iter_mut().map(|p| (p.pid, &mut p.working_directory));
    let ancestors = event.execguard.ancestors.iter_mut().map(|a| (a.pid, &mut a.working_directory));
    for (pid, working_directory) in parent.chain(ancestors) {
        if let (Some(pid), None) = (pid, &working_directory) {
            *working_directory = directory(pid);
        }
    }
}

/// The grandparent and up, until the top of the lineage or the limit.
fn ancestors(ppid: u32, lineage: &Lineage, seen: &mut Seen, limits: &Limits) -> Vec<Ancestor> {
    let mut ancestors = Vec::new();
    let mut current = ppid;
    while ancestors.len() < limits.max_ancestors && current != lineage.top {
        let Some(stat) = seen.stat(current) else { break };
        if !lineage.contains_parent(stat.ppid) {
            break;
        }
        let facts = process_facts(stat.ppid, seen);
        ancestors.push(Ancestor {
            executable: facts.executable,
            args: facts.args,
            pid: Some(stat.ppid),
            working_directory: facts.working_directory,
        });
        current = stat.ppid;
    }
    ancestors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processes::tests::own_exe;
    use crate::procfs::tests::ParkedThread;

    /// What makes a verified thread's later sockets cheap must also make them exact: the
    /// kept directory stops passing once its thread is gone (its tid may be reused), and
    /// it passes only for the file it was verified with.
    #[test]
    fn a_verified_thread_stays_verified_only_while_it_lives_and_runs_the_same_file() {
        let gate = GateState::default();
        let me = std::process::id();
        gate.verify(me, (own_exe().0, own_exe().1 + 1));
        assert!(!gate.is_verified(me), "verified for a file it does not run");
        gate.verify(me, own_exe());
        assert!(gate.is_verified(me));
        gate.forget(me);
        assert!(!gate.is_verified(me), "an exec of the thread is forgotten");

        let thread = ParkedThread::start();
        let tid = thread.tid;
        gate.verify(tid, own_exe());
        gate.verify(me, own_exe());
        assert!(gate.is_verified(tid) && gate.is_verified(me));
        gate.forget(tid);
        assert!(!gate.is_verified(me), "an exec of another thread gives the leader's tid another program");
        gate.verify(tid, own_exe());
        drop(thread);
        assert!(!gate.is_verified(tid), "a thread that is gone is no longer verified");
    }

    /// A shell sourcing a script holds it open for reading; a file it writes (a log, a
    /// redirection) in the same place is no script, nor is a directory it holds open.
    #[test]
    fn an_open_script_is_a_regular_file_in_a_writable_place_held_for_reading_only() {
        // /dev/shm is one of WRITABLE_DIRS on every Linux, wherever TMPDIR points.
        let dir = std::path::PathBuf::from(format!("/dev/shm/execguard-open-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("sourced.sh");
        std::fs::write(&script, "sleep 30\n").unwrap();
        let held = |stdin: std::fs::File, stdout: std::fs::File| {
            let mut child = std::process::Command::new("sleep").arg("30").stdin(stdin).stdout(stdout).spawn().unwrap();
            let found = open_writable_script(child.id());
            let _ = child.kill();
            let _ = child.wait();
            found
        };
        let log = || std::fs::File::create(dir.join("log")).unwrap();
        let read_only = std::fs::File::open(&script).unwrap();
        assert_eq!(held(read_only, log()), Some(script.display().to_string()), "a script held for reading");
        let read_write = std::fs::OpenOptions::new().read(true).write(true).open(&script).unwrap();
        assert_eq!(held(read_write, log()), None, "a file held open for writing too");
        assert_eq!(held(std::fs::File::open(&dir).unwrap(), log()), None, "a directory");
        let elsewhere = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(held(elsewhere, log()), None, "a file outside the writable places");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
