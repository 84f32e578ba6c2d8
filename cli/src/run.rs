//! `execguard run`: any command tree under the supervisor, without containers. The way to
//! try a policy on a laptop, and to test the supervisor without containerd.
//!
//! The command's child installs the same kind of filter runc installs in a container
//! (execve and execveat of every ABI to the supervisor) and hands the listener to this
//! process over a socket pair before it execs the command, so that the command's own exec
//! is the first one decided.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use execguard_policy::{Mode, Policy};

use execguard_alerts as alerts;
use execguard_seccomp::{self as seccomp, ExecFilter, Gate, NotifyFd};
use execguard_supervisor::inspect::Scope;
use execguard_supervisor::{Config, PolicySlot, Supervisor};

/// What `execguard run` was asked to do.
pub struct RunOptions {
    pub policy: Policy,
    pub config: Config,
    /// Where alert records go.
    pub alerts: Box<dyn alerts::Sink>,
    /// Repeats of an alert within this window are not written again (zero: all are).
    pub repeat_window: Duration,
    pub command: Vec<OsString>,
    /// Let the command use io_uring under the socket gate (which refuses it by default).
    pub allow_io_uring: bool,
}

/// Runs the command under the supervisor and returns the exit code to leave with: the
/// command's, 128 + the signal that killed it, or 126 when its own exec was blocked or
/// failed (127 when it does not exist), as shells do.
pub fn run(options: RunOptions) -> io::Result<i32> {
    let RunOptions { policy, config, alerts, repeat_window, command, allow_io_uring } = options;
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command to run"));
    };
    let (sender, dispatcher) = alerts::spawn(vec![alerts], repeat_window)?;
    let supervisor = Supervisor::new(config, sender)?;
    // Enforce mode also guards the first network socket of what runs (seccomp::Gate).
    let gate = (policy.mode() == Mode::Enforce).then_some(Gate { io_uring: !allow_io_uring });
    let policy = PolicySlot::new(policy);

    let mut child_command = Command::new(program);
    child_command.args(args);
    let filter = ExecFilter::new(gate);
    let set_no_new_privs = !seccomp::holds_cap_sys_admin();
    let (ours, theirs) = UnixStream::pair()?;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, seccomp, sendmsg, close): no allocation, no lock.
    unsafe {
        child_command.pre_exec(move || {
            let listener = filter.install_in_child(set_no_new_privs)?;
            seccomp::send_fd(theirs.as_fd(), listener.as_fd())
        });
    }

    // spawn() returns only once the child's exec has been answered, which the supervisor
    // does once it has the listener: spawn on another thread, hand the listener over here.
    let spawner = std::thread::spawn(move || child_command.spawn());
    match seccomp::recv_fd(ours.as_fd()) {
        Ok(listener) => {
            // ExecFilter reports root changes, and the tree has one filter.
            let scope = Scope { root_changes: Some(Default::default()), gate: gate.is_some(), ..Scope::default() };
            supervisor.supervise(NotifyFd::from_owned(listener), scope, policy)?;
        }
        // The child failed before installing the filter; spawn() reports why.
        Err(error) => tracing::debug!(%error, "no listener from the child"),
    }
    let spawned = spawner.join().map_err(|_| io::Error::other("the thread that starts the command panicked"))?;
    let outcome = match spawned {
        Ok(mut child) => Ok(child.wait()?),
        Err(error) => Err(error),
    };
    // The supervisor holds the last handle on the alert queue: dropped, the dispatcher
    // delivers what is left and returns.
    drop(supervisor);
    dispatcher.join();
    Ok(match outcome {
        Ok(status) => exit_code(status),
        Err(error) => {
            let name = program.to_string_lossy();
            let blocked = error.raw_os_error() == Some(libc::EPERM);
            let why = if blocked { " (blocked by the policy; see the alert)" } else { "" };
            eprintln!("execguard: cannot run {name}: {error}{why}");
            if error.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    })
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1)
}
