//! What each process under a filter was started with, learned from the execs the
//! supervisor let through, so that its parent and ancestors need not be read from /proc.
//!
//! An exec that the rules look closer at (a network tool: alerted, or let through after
//! its arguments were read) gets its parent and every ancestor up to the top of the
//! lineage. Read from /proc, each of them costs its cmdline (open, read, close) and a
//! readlink of its exe, on top of the stat that leads up a level (issue #16 measured
//! 140-250 us per network-tool exec). Yet the supervisor decided the exec of every one of
//! them: the table keeps, per pid, the file and argv that its last exec was let through
//! for, and the socket gate checks a process against the same entry.
//!
//! An entry describes the process under its pid only while two checks hold, both made at
//! each use:
//! - the process started no later than the clock tick at which the exec was let through
//!   (start time from /proc/PID/stat, read anyway to go up a level; both in clock ticks of
//!   CLOCK_BOOTTIME). A later process that reused the pid started after that tick, unless
//!   the pid came round again within the same tick: pids are handed out cyclically, so the
//!   whole pid space would have had to be used up in 10 ms;
//! - /proc/PID/exe is still the file the exec was let through for (one statx): an exec that
//!   the kernel failed after the supervisor let it through (E2BIG under a small stack limit,
//!   EACCES, ENOEXEC) leaves the process running its old program, and its children must not
//!   be taken for the children of the new one.
//!
//! A process that forked without an exec (a subshell), or whose exec came from a thread
//! that does not lead its process (the process keeps the leader's pid), has no entry and is
//! read from /proc. The argv kept is the one the exec was decided on, not what the process
//! may have written over its command line since (setproctitle).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use nix::time::{clock_gettime, ClockId};
use nix::unistd::{sysconf, SysconfVar};

use crate::lock;
use crate::procfs::{self, FileId};

/// What an exec was let through for: the file the kernel maps (the program, the
/// interpreter of a script, or the loader), as the process's root shows its path, and the
/// argv it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub path: String,
    pub file: FileId,
    pub argv: Vec<Vec<u8>>,
    /// CLOCK_BOOTTIME in clock ticks when it was let through.
    let_through_at: u64,
}

/// Processes kept per filter, and bytes of their argv, before the table starts over (a
/// bound: a forgotten process only costs its /proc reads).
const MAX_PROCESSES: usize = 4096;
const MAX_ARGV_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
pub struct ProcessTable(Mutex<Table>);

#[derive(Debug, Default)]
struct Table {
    by_pid: HashMap<u32, Started>,
    argv_bytes: usize,
}

impl ProcessTable {
    /// Records that thread `tid`'s exec of `file` (at `path`) with `argv` was let through.
    pub fn record(&self, tid: u32, path: String, file: FileId, argv: Vec<Vec<u8>>) {
        let Some(let_through_at) = now_in_ticks() else { return };
        let bytes: usize = argv.iter().map(Vec::len).sum();
        let started = Started { path, file, argv, let_through_at };
        let mut table = lock(&self.0);
        if table.by_pid.len() >= MAX_PROCESSES || table.argv_bytes + bytes > MAX_ARGV_BYTES {
            *table = Table::default();
        }
        table.argv_bytes += bytes;
        if let Some(replaced) = table.by_pid.insert(tid, started) {
            table.argv_bytes -= replaced.argv.iter().map(Vec::len).sum::<usize>();
        }
    }

    /// What thread `tid`'s last exec was let through for, if the table has it, unchecked:
    /// the socket gate compares it with what runs itself.
    pub fn last_exec(&self, tid: u32) -> Option<Started> {
        lock(&self.0).by_pid.get(&tid).cloned()
    }

    /// What process `pid`, which started at `start_time` (clock ticks, /proc/PID/stat),
    /// runs: its last exec's entry, when both checks of the module hold.
    pub fn running(&self, pid: u32, start_time: u64) -> Option<Started> {
        let started = lock(&self.0).by_pid.get(&pid).filter(|s| start_time <= s.let_through_at).cloned()?;
        (procfs::exe_file(pid).ok()? == started.file).then_some(started)
    }
}

/// CLOCK_BOOTTIME in the clock ticks of /proc/PID/stat's start time (fs/proc/array.c:
/// nsec_to_clock_t of the boot-time start).
fn now_in_ticks() -> Option<u64> {
    static TICKS_PER_SECOND: OnceLock<Option<u64>> = OnceLock::new();
    let per_second = (*TICKS_PER_SECOND
        .get_or_init(|| sysconf(SysconfVar::CLK_TCK).ok().flatten().and_then(|n| u64::try_from(n).ok())))?;
    let now = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
    let nanos = u64::try_from(now.tv_sec()).ok()?.checked_mul(1_000_000_000)? + u64::try_from(now.tv_nsec()).ok()?;
    Some(nanos / (1_000_000_000 / per_second.max(1)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The file this test process runs.
    pub(crate) fn own_exe() -> FileId {
        procfs::exe_file(std::process::id()).unwrap()
    }

    #[test]
    fn a_process_is_described_by_its_entry_while_it_runs_what_the_entry_says() {
        let me = std::process::id();
        let start_time = procfs::stat(me).unwrap().start_time;
        let table = ProcessTable::default();
        assert_eq!(table.running(me, start_time), None, "no exec recorded");
        table.record(me, "/bin/me".into(), own_exe(), vec![b"me".to_vec(), b"-v".to_vec()]);
        let running = table.running(me, start_time).expect("started before its exec was let through");
        assert_eq!((running.path.as_str(), running.argv.len()), ("/bin/me", 2));
        assert_eq!(table.running(me, now_in_ticks().unwrap() + 1), None, "a later process under the same pid");
        table.record(me, "/bin/other".into(), (own_exe().0, own_exe().1 + 1), vec![b"other".to_vec()]);
        assert_eq!(table.running(me, start_time), None, "an exec the kernel failed: the process runs its old program");
        assert_eq!(table.last_exec(me).map(|s| s.path), Some("/bin/other".to_string()), "the gate sees the last exec");
    }

    #[test]
    fn the_table_starts_over_at_its_bound() {
        let table = ProcessTable::default();
        for pid in 0..MAX_PROCESSES as u32 + 1 {
            table.record(pid, "/bin/true".into(), (1, 1), vec![b"true".to_vec()]);
        }
        let table = lock(&table.0);
        assert_eq!(table.by_pid.len(), 1, "the entry that did not fit is the first of a new table");
        assert_eq!(table.argv_bytes, 4);
    }

    #[test]
    fn ticks_are_those_of_proc_start_times() {
        let me = procfs::stat(std::process::id()).unwrap().start_time;
        let now = now_in_ticks().unwrap();
        assert!(me <= now && now - me < 100 * 3600, "this process started {me}, now is {now}: not the same clock");
    }
}
