//! The supervisor: receives each execve/execveat that a seccomp filter sent to user space,
//! builds the exec event from the stopped process, asks the policy and answers the kernel.
//!
//! It knows the kernel and /proc, not containerd: the shim hands it notify fds with the
//! container's metadata, `execguard run` the fd of a plain process tree.
//!
//! # Serving
//! One tokio task per filter waits for the fd to become readable (RECV would block
//! otherwise), receives, and hands each notification to a task of its own, so that one
//! process's slow /proc read does not hold up the others of its container; other
//! containers' filters are other tasks. The inspection runs on the task that received it
//! (no hop to another thread: a cross-CPU wake-up alone costs 25-30 us on these machines).
//! POLLHUP ends a filter: every task it applied to has exited.
//!
//! # Never a stuck exec
//! Each notification is registered with a watchdog thread (a plain thread, so that it
//! runs even if every runtime worker were stuck in a read) before it is inspected.
//! Whichever of the inspection and the watchdog claims the notification first answers it;
//! at the deadline the watchdog applies the configured [`FailAction`]. The default is
//! fail-closed: a process that can stall its own inspection (for example with memory whose
//! reads block) must not get its exec through unchecked.

pub mod identity;
pub mod inspect;
pub mod memory;
pub mod procfs;
pub mod resolve;
pub mod seccomp;

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use execguard_policy::{Action, DecisionRecord, ExecEvent, Policy};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tracing::Instrument;

use identity::Identities;
use inspect::{Inspected, Limits, RootChanges, RootPid, Scope, Source};
use resolve::ProcessRoot;
use seccomp::{Notification, NotifyFd};

/// What an exec gets when it could not be decided in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Allow it, and report it as an alert.
    Open,
    /// Fail it with EPERM, and report it.
    Closed,
}

impl std::str::FromStr for FailAction {
    type Err = String;
    fn from_str(text: &str) -> Result<FailAction, String> {
        match text {
            "open" => Ok(FailAction::Open),
            "closed" => Ok(FailAction::Closed),
            _ => Err(format!("unknown fail action {text:?}: use \"open\" (allow and alert) or \"closed\" (block)")),
        }
    }
}

/// The tools whose files the supervisor recognises under any name.
pub const KNOWN_TOOLS: [&str; 18] = [
    "nc", "netcat", "ncat", "socat", "nmap", "masscan", "zmap", "tcpdump", "tshark", "ngrep", "telnet", "dig",
    "nslookup", "host", "curl", "wget", "busybox", "toybox",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    /// How long one exec may wait for its decision. Inspection takes well under a
    /// millisecond; two seconds leaves room for a loaded node while still far below the
    /// point where an exec looks hung to a person or a probe's timeout.
    pub deadline: Duration,
    pub fail_action: FailAction,
    pub known_tools: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            deadline: Duration::from_secs(2),
            fail_action: FailAction::Closed,
            known_tools: KNOWN_TOOLS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// An exec that was alerted on or blocked, on its way to the alert sinks.
#[derive(Debug)]
pub struct Alert {
    pub event: Box<ExecEvent>,
    pub record: Box<DecisionRecord>,
    pub at: SystemTime,
}

/// Alerts waiting for the sinks. Bounded: a flood of alerts must not grow the shim's
/// memory or slow execs down; what does not fit is counted and logged.
pub const ALERT_QUEUE: usize = 4096;

/// One notification between RECV and SEND. The first to set `answered` answers.
struct Pending {
    fd: Arc<AsyncFd<NotifyFd>>,
    id: u64,
    pid: u32,
    deadline: Instant,
    answered: Arc<AtomicBool>,
    scope: Arc<Scope>,
}

/// A policy that can be replaced while execs are being decided (a reloaded file). Filters
/// that share a policy share its slot.
pub struct PolicySlot(RwLock<Arc<Policy>>);

impl PolicySlot {
    pub fn new(policy: Policy) -> Arc<PolicySlot> {
        Arc::new(PolicySlot(RwLock::new(Arc::new(policy))))
    }

    /// The policy for the exec being decided now.
    pub fn get(&self) -> Arc<Policy> {
        // A poisoned lock still holds a whole policy: replacing is a single assignment.
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the policy for every exec decided from now on.
    pub fn set(&self, policy: Policy) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }
}

pub struct Supervisor {
    config: Config,
    alerts: mpsc::Sender<Alert>,
    pending: Mutex<Vec<Pending>>,
    /// Alerts that did not fit the queue, for the warning that says so.
    alerts_dropped: AtomicU64,
}

/// The filter a notification came from.
struct Filter {
    fd: Arc<AsyncFd<NotifyFd>>,
    scope: Arc<Scope>,
    policy: Arc<PolicySlot>,
    root: OnceLock<RootPid>,
    filter_root: OnceLock<ProcessRoot>,
    mounts_not_in_memory: Mutex<HashSet<u64>>,
    identities: Mutex<Identities>,
}

impl Supervisor {
    /// A supervisor and its watchdog thread. Alerts go to `alerts`.
    pub fn new(config: Config, alerts: mpsc::Sender<Alert>) -> io::Result<Arc<Supervisor>> {
        let supervisor =
            Arc::new(Supervisor { config, alerts, pending: Mutex::new(Vec::new()), alerts_dropped: AtomicU64::new(0) });
        let weak = Arc::downgrade(&supervisor);
        let tick = (supervisor.config.deadline / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        std::thread::Builder::new().name("execguard-watchdog".into()).spawn(move || {
            while let Some(supervisor) = weak.upgrade() {
                supervisor.expire(Instant::now());
                drop(supervisor);
                std::thread::sleep(tick);
            }
        })?;
        Ok(supervisor)
    }

    /// Serves a notify fd with `policy` until every process under its filter has exited.
    /// Must be called within a tokio runtime.
    pub fn supervise(
        self: &Arc<Self>,
        fd: NotifyFd,
        scope: Scope,
        policy: Arc<PolicySlot>,
    ) -> io::Result<tokio::task::JoinHandle<()>> {
        if let Err(error) = fd.enable_sync_wakeup() {
            tracing::debug!(%error, "no synchronous wake-ups on this kernel");
        }
        // SAFETY: NotifyFd owns its fd (an OwnedFd that nothing else closes) and always
        // returns that same fd, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(io::Error::from)?;
        let filter = Arc::new(Filter {
            fd: Arc::new(fd),
            scope: Arc::new(scope),
            policy,
            root: OnceLock::new(),
            filter_root: OnceLock::new(),
            mounts_not_in_memory: Mutex::new(HashSet::new()),
            identities: Mutex::new(Identities::default()),
        });
        let container = filter.scope.container.as_ref().and_then(|c| c.id.clone()).unwrap_or_default();
        let span = tracing::debug_span!("filter", container = %container);
        Ok(tokio::spawn(self.clone().serve(filter).instrument(span)))
    }

    async fn serve(self: Arc<Self>, filter: Arc<Filter>) {
        tracing::debug!("supervising");
        loop {
            let mut guard = match filter.fd.readable().await {
                Ok(guard) => guard,
                Err(error) => {
                    tracing::error!(%error, "cannot poll the notify fd; execs under it will fail with ENOSYS");
                    return;
                }
            };
            if !pending_now(filter.fd.get_ref()) {
                if guard.ready().is_read_closed() {
                    tracing::debug!("every process under the filter has exited");
                    return;
                }
                guard.clear_ready();
                continue;
            }
            match filter.fd.get_ref().recv() {
                Ok(notification) if !notification.is_exec() => root_change(&filter, &notification),
                Ok(notification) => {
                    let supervisor = self.clone();
                    let filter = filter.clone();
                    // No span is carried over (Span::current costs a dispatcher lookup per exec):
                    // the exec's own span names its container.
                    tokio::spawn(async move { supervisor.handle(&filter, notification) });
                    // Let the exec just received be decided before this task polls for the
                    // next one: that poll is a syscall the waiting exec need not pay for.
                    tokio::task::yield_now().await;
                }
                // Withdrawn between poll and RECV (a signal, an exit): nothing to answer.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::error!(%error, "cannot receive from the notify fd; execs under it will fail with ENOSYS");
                    return;
                }
            }
        }
    }

    fn handle(&self, filter: &Filter, notification: Notification) {
        let container = filter.scope.container.as_ref().and_then(|c| c.id.as_deref()).unwrap_or_default();
        let _span = tracing::debug_span!("exec", container, pid = notification.pid, id = notification.id).entered();
        let answered = Arc::new(AtomicBool::new(false));
        self.lock_pending().push(Pending {
            fd: filter.fd.clone(),
            id: notification.id,
            pid: notification.pid,
            deadline: Instant::now() + self.config.deadline,
            answered: answered.clone(),
            scope: filter.scope.clone(),
        });
        let policy = filter.policy.get();
        let source = Source {
            fd: filter.fd.get_ref(),
            scope: &filter.scope,
            root: *filter.root.get_or_init(|| notification.pid),
            filter_root: &filter.filter_root,
            mounts_not_in_memory: &filter.mounts_not_in_memory,
            identities: &filter.identities,
        };
        let inspected = inspect::inspect(&source, &notification, &policy, &self.config);
        let claimed = !answered.swap(true, Ordering::AcqRel);
        self.lock_pending().retain(|p| !Arc::ptr_eq(&p.answered, &answered));
        if !claimed {
            tracing::debug!("decided after the deadline: the watchdog answered");
            return;
        }
        match inspected {
            Inspected::Withdrawn => tracing::debug!("withdrawn during inspection"),
            Inspected::Missing => {
                answer(filter.fd.get_ref(), notification.id, Action::Allow);
            }
            Inspected::Decided { event, record, action } => {
                if answer(filter.fd.get_ref(), notification.id, action) && action != Action::Allow {
                    self.report(event, record);
                }
            }
        }
    }

    fn report(&self, event: Box<ExecEvent>, record: Box<DecisionRecord>) {
        tracing::info!(
            decision = ?record.decision,
            rule = record.rule.as_ref().map_or("", |r| r.id.as_str()),
            executable = %event.process.executable,
            pid = event.process.pid.unwrap_or(0),
            "{}", record.reason
        );
        if self.alerts.try_send(Alert { event, record, at: SystemTime::now() }).is_err() {
            let dropped = self.alerts_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped, "alert queue full or closed: alert dropped");
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        // Entries are pushed and removed whole: a panic elsewhere cannot leave one torn.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers every notification past its deadline with the fail action.
    fn expire(&self, now: Instant) {
        let expired: Vec<Pending> = {
            let mut pending = self.lock_pending();
            let (expired, waiting) = pending.drain(..).partition(|p| p.deadline <= now);
            *pending = waiting;
            expired
        };
        for late in expired {
            if late.answered.swap(true, Ordering::AcqRel) {
                continue;
            }
            let (action, outcome) = match self.config.fail_action {
                FailAction::Open => (Action::Alert, "allowed (fail-open)"),
                FailAction::Closed => (Action::Block, "blocked (fail-closed)"),
            };
            tracing::warn!(pid = late.pid, deadline = ?self.config.deadline, "no decision in time: {outcome}");
            if answer(late.fd.get_ref(), late.id, action) {
                let mut event = ExecEvent::new(String::new(), Vec::new());
                event.process.pid = Some(late.pid);
                event.container = late.scope.container.clone();
                event.orchestrator = late.scope.orchestrator.clone();
                let reason = format!("no decision within {:?}: {outcome}", self.config.deadline);
                self.report(Box::new(event), Box::new(DecisionRecord { decision: action, rule: None, reason }));
            }
        }
    }
}

/// A syscall that may change roots (chroot, pivot_root, setns, a new mount namespace):
/// recorded before it runs, so that every exec after it is resolved in its own root. It
/// is never refused: execguard supervises execs, and containers that chroot keep working.
fn root_change(filter: &Filter, notification: &Notification) {
    let first = filter.scope.root_changes.as_deref().is_some_and(RootChanges::record);
    if first {
        tracing::info!(
            pid = notification.pid,
            syscall = notification.nr,
            "a process may change its root or mount namespace: each exec's path is resolved in its own root from now on"
        );
    }
    answer(filter.fd.get_ref(), notification.id, Action::Allow);
}

/// Whether a notification is waiting right now (poll with no timeout). RECV blocks when
/// none is, and an edge-triggered readiness can outlive the notification that caused it.
fn pending_now(fd: &NotifyFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, a timeout of zero.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & libc::POLLIN != 0
}

/// Sends the answer; false when the notification was gone (not an error: the process
/// died or a signal withdrew the syscall, which will come again if restarted).
fn answer(fd: &NotifyFd, id: u64, action: Action) -> bool {
    let sent = match action {
        Action::Allow | Action::Alert => fd.respond_continue(id),
        Action::Block => fd.respond_errno(id, libc::EPERM),
    };
    match sent {
        Ok(()) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            tracing::debug!("the exec was withdrawn before its answer");
            false
        }
        Err(error) => {
            tracing::error!(%error, "cannot answer the notification");
            false
        }
    }
}
