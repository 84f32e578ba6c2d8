//! Facts about a process from /proc (proc(5)), each from the cheapest source that gives it.
//!
//! Every read sits in the path of the exec being decided, and the /proc reads are most of
//! the supervisor's own cost (measured here: /proc/PID/status about 31 us, /proc/PID/stat
//! about 20 us, a readlink about 6 us): read only what a rule needs, prefer `stat` to
//! `status` and a readlink or a stat(2) to either.
//!
//! `pid` may be a thread id (notifications carry the calling thread's): /proc/TID works
//! although `ls /proc` does not list it. Paths read as the kernel's d_path prints them for
//! the supervisor: for a process in another mount namespace (a container), relative to that
//! namespace's root, i.e. as seen inside the container. Like memory reads, anything read
//! here about a notified task is trustworthy only once `NotifyFd::id_valid` has confirmed
//! afterwards that the task still waits in its execve (the pid may have been reused).
//!
//! Errors are the syscalls' own: NotFound (ENOENT) or ESRCH mean the process is gone.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The fields of /proc/PID/stat that the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// The controlling terminal (major and minor packed as in proc(5)); 0 for none.
    pub tty_nr: i32,
    /// Clock ticks after boot when the process started: with the pid, it tells one
    /// process from a later one that reused its pid.
    pub start_time: u64,
}

/// Parses /proc/PID/stat.
pub fn stat(pid: u32) -> io::Result<Stat> {
    let path = format!("/proc/{pid}/stat");
    parse_stat(&read_whole(&path, 1024, 64 * 1024)?)
        .map_err(|what| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {what}")))
}

/// The fields of a /proc/PID/stat text that [`stat`] reads. Public for the fuzz harness
/// (fuzz/): the bytes are whatever the kernel prints, and a process chooses its own comm.
pub fn parse_stat(text: &[u8]) -> Result<Stat, &'static str> {
    // Field 2, comm, is in parentheses and may itself contain spaces and ')' (a process
    // chooses it with prctl(PR_SET_NAME)): the fields resume after the LAST ')'.
    let close = text.iter().rposition(|&b| b == b')').ok_or("no ')' after comm")?;
    let rest = std::str::from_utf8(&text[close + 1..]).map_err(|_| "not ASCII after comm")?;
    // After comm: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    let field = |n: usize| fields.get(n - 3).ok_or("too few fields");
    Ok(Stat {
        ppid: field(4)?.parse().map_err(|_| "bad ppid")?,
        tty_nr: field(7)?.parse().map_err(|_| "bad tty_nr")?,
        start_time: field(22)?.parse().map_err(|_| "bad starttime")?,
    })
}

/// A /proc file read whole, up to `limit` bytes, into a buffer of `expected` bytes to
/// start with. Not `fs::read` or `read_to_end`: /proc files report size 0, so those stat
/// the file for nothing and grow their buffer from 32 bytes, one read(2) per doubling.
/// A read that returns less than the buffer holds is the end: the files read here hand
/// over all they have up to the count asked for (seq_file's single_open for stat, status
/// and fdinfo; cmdline copies page by page until the count), so the read(2) that would
/// only return 0 is saved.
fn read_whole(path: &str, expected: usize, limit: usize) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut bytes = vec![0; expected.min(limit)];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            if len >= limit {
                break;
            }
            bytes.resize(len.saturating_mul(2).clamp(1, limit), 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(n) => {
                len += n;
                if n == 0 || len < bytes.len() {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// The executable the process runs (readlink /proc/PID/exe). For a program started through
/// the dynamic loader this is ld.so, and a deleted or memfd executable reads with a
/// " (deleted)" suffix.
pub fn exe(pid: u32) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe"))
}

/// A file as (st_dev, st_ino).
pub type FileId = (u64, u64);

/// The file the process runs (a stat of /proc/PID/exe): which file, where [`exe`] says
/// under what name.
pub fn exe_file(pid: u32) -> io::Result<FileId> {
    let exe = fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok((exe.dev(), exe.ino()))
}

/// The process's command line, split at NULs, from at most `max_bytes` bytes of
/// /proc/PID/cmdline (the last argument may be cut). The process can rewrite this memory
/// (setproctitle), so it describes, it does not identify.
pub fn cmdline(pid: u32, max_bytes: usize) -> io::Result<Vec<Vec<u8>>> {
    Ok(parse_cmdline(&read_whole(&format!("/proc/{pid}/cmdline"), 4096, max_bytes)?))
}

/// The arguments of a /proc/PID/cmdline text: NUL-terminated strings, the last one
/// possibly cut (then without its NUL). An empty text is no argument; "\0" is one empty
/// argument. Public for the fuzz harness (fuzz/): the process writes these bytes itself.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// The effective uid, as the supervisor's user namespace sees it: the owner of the
/// /proc/PID directory, one stat(2) instead of parsing /proc/PID/status.
///
/// Exact even for a non-dumpable process (a set-uid program, or root that dropped to a
/// user): the kernel makes the files under /proc/PID of such a process owned by root, but
/// keeps the directory itself owned by the effective uid, precisely so that tools can
/// stat it (fs/proc/base.c, task_dump_owner(); the test below checks both).
pub fn uid(pid: u32) -> io::Result<u32> {
    Ok(fs::metadata(format!("/proc/{pid}"))?.uid())
}

/// The process's working directory (readlink /proc/PID/cwd).
pub fn cwd(pid: u32) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd"))
}

/// Whether thread `tid` leads its thread group, i.e. its tid is its process's pid. One
/// pidfd_open(2) and a close rather than /proc/TID/status (about 30 us here): without
/// PIDFD_THREAD the kernel refuses a thread that does not lead its group
/// ([`execguard_seccomp::pidfd_open`]).
pub fn leads_its_process(tid: u32) -> io::Result<bool> {
    match execguard_seccomp::pidfd_open(tid) {
        Ok(_closed_at_once) => Ok(true),
        Err(error) if matches!(error.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// A thread's ids in each pid namespace it is in, outermost (the supervisor's) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceIds {
    /// Its process's (NStgid).
    pub tgid: Vec<u32>,
    /// Its own (NSpid).
    pub pid: Vec<u32>,
}

/// The NStgid and NSpid lines of /proc/TID/status.
pub fn namespace_ids(tid: u32) -> io::Result<NamespaceIds> {
    let path = format!("/proc/{tid}/status");
    let text = read_whole(&path, 2048, 64 * 1024)?;
    parse_namespace_ids(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: no NStgid/NSpid")))
}

/// The NStgid and NSpid lines of a /proc/TID/status text, when both are there and agree
/// in length. Public for the fuzz harness (fuzz/).
pub fn parse_namespace_ids(text: &[u8]) -> Option<NamespaceIds> {
    let text = std::str::from_utf8(text).ok()?;
    let ids = |key: &str| -> Option<Vec<u32>> {
        let line = text.lines().find_map(|line| line.strip_prefix(key))?;
        line.split_ascii_whitespace().map(|id| id.parse().ok()).collect()
    };
    let ids = NamespaceIds { tgid: ids("NStgid:")?, pid: ids("NSpid:")? };
    (!ids.tgid.is_empty() && ids.tgid.len() == ids.pid.len()).then_some(ids)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::ffi::CString;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    fn me() -> u32 {
        std::process::id()
    }

    /// A child killed and reaped on drop.
    struct Sleeper(Child);

    impl Sleeper {
        /// spawn() returns once the exec has passed its point of no return, a moment before
        /// the new image's arguments are in place: wait for them.
        fn spawn() -> Sleeper {
            let sleeper = Sleeper(Command::new("sleep").arg("30").spawn().unwrap());
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::read(format!("/proc/{}/cmdline", sleeper.0.id())).unwrap().is_empty() {
                assert!(Instant::now() < deadline, "sleep never showed its arguments");
                std::thread::sleep(Duration::from_millis(1));
            }
            sleeper
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Forks a child that runs `setup` (async-signal-safe only: the harness is
    /// multi-threaded) and then waits for SIGKILL; returns once /proc/PID/comm equals
    /// `ready_comm`. Killed and reaped on drop.
    pub(crate) struct Forked(libc::pid_t);

    impl Forked {
        pub(crate) fn new(ready_comm: &[u8], setup: impl FnOnce()) -> Forked {
            // SAFETY: the child only calls `setup` and pause(), and never returns.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                setup();
                loop {
                    // SAFETY: pause has no preconditions.
                    unsafe { libc::pause() };
                }
            }
            let forked = Forked(pid);
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::read(format!("/proc/{pid}/comm")).unwrap() != [ready_comm, b"\n"].concat() {
                assert!(Instant::now() < deadline, "child never set its name");
                std::thread::sleep(Duration::from_millis(2));
            }
            forked
        }

        pub(crate) fn pid(&self) -> u32 {
            self.0 as u32
        }
    }

    impl Drop for Forked {
        fn drop(&mut self) {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }

    /// Fails the test loudly when it cannot run: some tests need root (mounts, namespaces,
    /// other uids), and CI runs them as root.
    pub(crate) fn require_root() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root: run the suite as root (scripts/test does)");
    }

    pub(crate) fn set_name(name: &CString) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes are kept).
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }

    /// A thread of this test process that waits until it is dropped: a thread that does
    /// not lead its process, by its tid.
    pub(crate) struct ParkedThread {
        pub(crate) tid: u32,
        release: Option<std::sync::mpsc::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl ParkedThread {
        pub(crate) fn start() -> ParkedThread {
            let (tid_of, tid) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                tid_of.send(nix::unistd::gettid().as_raw() as u32).unwrap();
                let _ = released.recv();
            });
            ParkedThread { tid: tid.recv().unwrap(), release: Some(release), thread: Some(thread) }
        }
    }

    impl Drop for ParkedThread {
        /// Returns once the thread has ended.
        fn drop(&mut self) {
            drop(self.release.take());
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    #[test]
    fn only_the_thread_that_leads_a_process_leads_it() {
        assert!(leads_its_process(me()).unwrap(), "this test's process leads itself");
        let other = std::thread::spawn(|| nix::unistd::gettid().as_raw() as u32).join().unwrap();
        let thread = ParkedThread::start();
        assert!(!leads_its_process(thread.tid).unwrap(), "thread {} of process {} does not lead it", thread.tid, me());
        assert!(leads_its_process(other).is_err(), "a thread that ended is no thread at all");
    }

    #[test]
    fn namespace_ids_of_self_and_of_a_status_text() {
        let ids = namespace_ids(me()).unwrap();
        assert_eq!(ids.tgid.first(), Some(&me()));
        let text = b"Name:\tsh\nNStgid:\t4242\t1\nNSpid:\t4243\t2\nNSpgid:\t4242\t1\n";
        assert_eq!(parse_namespace_ids(text), Some(NamespaceIds { tgid: vec![4242, 1], pid: vec![4243, 2] }));
        assert_eq!(parse_namespace_ids(b"NStgid:\t1 2\nNSpid:\t3\n"), None);
    }

    #[test]
    fn stat_of_self() {
        let st = stat(me()).unwrap();
        // SAFETY: getppid has no preconditions.
        assert_eq!(st.ppid, unsafe { libc::getppid() } as u32);
        assert!(st.start_time > 0);
        assert_eq!(st, stat(me()).unwrap(), "the same process reads the same");
    }

    #[test]
    fn stat_survives_a_comm_with_spaces_and_parens() {
        let name = CString::new("a) b ) 0 0").unwrap();
        let child = Forked::new(b"a) b ) 0 0", || set_name(&name));
        let st = stat(child.pid()).unwrap();
        assert_eq!(st.ppid, me());
        assert_eq!(st.tty_nr, stat(me()).unwrap().tty_nr, "inherited terminal");
        assert!(st.start_time >= stat(me()).unwrap().start_time);
    }

    #[test]
    fn parse_stat_takes_fields_after_the_last_paren() {
        let line = b"42 (x) (y) 1 2 3) S 7 42 42 34816 42 4194304 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        let st = parse_stat(line).unwrap();
        assert_eq!(st, Stat { ppid: 7, tty_nr: 34816, start_time: 123456 });
        assert!(parse_stat(b"42 (x) S 7").is_err());
        assert!(parse_stat(b"no paren").is_err());
    }

    #[test]
    fn parse_cmdline_splits_at_nuls_and_keeps_a_cut_last_argument() {
        assert_eq!(parse_cmdline(b""), Vec::<Vec<u8>>::new());
        assert_eq!(parse_cmdline(b"\0"), vec![b"".to_vec()], "argv [\"\"]");
        assert_eq!(parse_cmdline(b"sh\0-c\0\0"), vec![b"sh".to_vec(), b"-c".to_vec(), b"".to_vec()]);
        assert_eq!(parse_cmdline(b"sleep\0thir"), vec![b"sleep".to_vec(), b"thir".to_vec()], "cut at max_bytes");
    }

    #[test]
    fn exe_and_cwd_of_self() {
        assert_eq!(exe(me()).unwrap(), std::env::current_exe().unwrap());
        assert_eq!(cwd(me()).unwrap(), std::env::current_dir().unwrap());
    }

    #[test]
    fn facts_of_a_spawned_child() {
        let child = Sleeper::spawn();
        let pid = child.0.id();
        assert_eq!(stat(pid).unwrap().ppid, me());
        assert_eq!(cmdline(pid, 4096).unwrap(), vec![b"sleep".to_vec(), b"30".to_vec()]);
        assert_eq!(cmdline(pid, 3).unwrap(), vec![b"sle".to_vec()]);
        assert_eq!(cmdline(pid, 6).unwrap(), vec![b"sleep".to_vec()]);
        let sleep = fs::canonicalize(exe(pid).unwrap()).unwrap();
        assert!(sleep.ends_with("sleep"), "{}", sleep.display());
        assert_eq!(uid(pid).unwrap(), fs::metadata("/proc/self").unwrap().uid());
    }

    #[test]
    fn a_process_that_is_gone_is_not_found() {
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(stat(pid).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(exe(pid).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(uid(pid).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    /// Dropping root makes a process non-dumpable: the files in /proc/PID then belong to
    /// root, but /proc/PID itself keeps the effective uid.
    #[test]
    fn uid_of_a_process_that_dropped_root() {
        require_root();
        let dropped = CString::new("dropped").unwrap();
        let child = Forked::new(b"dropped", || {
            // SAFETY: setresuid takes integers.
            unsafe { libc::setresuid(4242, 4242, 4242) };
            set_name(&dropped);
        });
        if fs::read_to_string("/proc/sys/fs/suid_dumpable").unwrap().trim() == "0" {
            let environ = fs::metadata(format!("/proc/{}/environ", child.pid())).unwrap();
            assert_eq!(environ.uid(), 0, "non-dumpable");
        }
        assert_eq!(uid(child.pid()).unwrap(), 4242);
    }
}
