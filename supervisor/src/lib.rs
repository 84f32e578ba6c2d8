//! The supervisor: receives each execve/execveat that a seccomp filter sent to user space,
//! builds the exec event from the stopped process, asks the policy and answers the kernel.
//!
//! It knows the kernel and /proc, not containerd: the shim hands it notify fds with the
//! container's metadata, `execguard run` the fd of a plain process tree. It is plain
//! threads and blocking syscalls, no async runtime: each exec waits in the kernel while
//! it is decided, and the cheapest way to decide it is on the thread that received it.
//! The filter and the notify fd are `execguard-seccomp`'s; alerts leave through
//! `execguard-alerts`' queue without waiting.
//!
//! # Serving
//! One receiver thread waits on an epoll set that holds every filter's notify fd (a filter
//! can be added at any time), receives a notification, inspects it and answers it, all on
//! that thread. That is the kernel's floor (a supervisor that only answers) plus the
//! inspection and nothing else: handing each exec to another thread or task costs more
//! than inspecting an ordinary one on these machines (a wake-up is about 6 us on one CPU
//! and 25-30 us across CPUs; tokio's tasks added about 16 us of CPU per exec, measured).
//! POLLHUP ends a filter: every task it applied to has exited.
//!
//! A process can stall its own inspection (memory whose reads block, a path on a file
//! system it serves). So that it cannot hold up the other processes and containers, the
//! watchdog retires a receiver that has been busy with one notification for
//! [`STALL_AFTER`] and starts a new one; the retired thread ends once its read returns.
//! At most [`MAX_STALLED_RECEIVERS`] such threads are kept; past that, new notifications
//! wait in the kernel until one of them returns (THREAT_MODEL.md, gap 4).
//!
//! # Never a stuck exec
//! Each notification is registered with the watchdog thread before it is inspected.
//! Whichever of the inspection and the watchdog claims the notification first answers it;
//! at the deadline the watchdog applies the configured [`FailAction`]. The default is
//! fail-closed: a process that can stall its own inspection must not get its exec through
//! unchecked.

pub mod identity;
pub mod inspect;
pub mod memory;
pub mod metrics;
pub mod processes;
pub mod procfs;
pub mod program;
pub mod resolve;
pub mod walk;

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use execguard_alerts::{Alert, AlertSender, EventAction};
use execguard_policy::{Action, DecisionRecord, ExecEvent, Mode, Policy};
use execguard_seccomp::{Kind, Notification, NotifyFd};
use metrics::{FailCause, Metrics};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{kill, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::unistd::Pid;

use identity::Identities;
use inspect::{GateState, Inspected, Limits, Lineage, RootChanges, Scope, Source, WritableLineage};
use processes::ProcessTable;
use resolve::ProcessRoot;

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

#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    /// How long one exec may wait for its decision. Inspection takes well under a
    /// millisecond; two seconds leaves room for a loaded node while still far below the
    /// point where an exec looks hung to a person or a probe's timeout.
    pub deadline: Duration,
    pub fail_action: FailAction,
}

impl Default for Config {
    fn default() -> Self {
        Config { limits: Limits::default(), deadline: Duration::from_secs(2), fail_action: FailAction::Closed }
    }
}

/// How long a receiver may be busy with one notification before the other filters get a
/// new one. An ordinary inspection takes tens of microseconds and a complete one (an
/// alert, ancestors read from /proc) under a millisecond: a receiver still busy after
/// 10 ms waits on something the process controls, or on a starved node, where an extra
/// thread for a while does no harm. Short, because execs queued in the kernel behind
/// processes that stall wait one STALL_AFTER per stalled one until the bound below is
/// reached: at most about 16 x 10 ms = 0.16 s, then the pod's execs are answered without
/// inspection.
pub const STALL_AFTER: Duration = Duration::from_millis(10);

/// Retired receivers still blocked in a stalled inspection, at most. Each is a thread;
/// the bound keeps processes that stall on purpose from growing the supervisor without
/// end. Only processes that can stall reads of their own memory can get here
/// (THREAT_MODEL.md, gap 4).
pub const MAX_STALLED_RECEIVERS: usize = 16;

/// The epoll token of the eventfd that tells receivers the supervisor is gone.
const STOP_TOKEN: u64 = u64::MAX;

/// One notification between RECV and SEND. The first to set `answered` answers.
struct Pending {
    fd: Arc<NotifyFd>,
    id: u64,
    pid: u32,
    deadline: Instant,
    /// The deadline's length when it was set (the configuration may change meanwhile).
    allowed: Duration,
    /// The mode of the filter's policy, for the alert.
    mode: Mode,
    answered: Arc<AtomicBool>,
    /// Set while a receiver inspects it (cleared when the inspection returns or panics).
    inspecting: Arc<AtomicBool>,
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
    /// Replaced whole by [`Supervisor::set_deadline`]; each notification reads it once.
    config: RwLock<Arc<Config>>,
    alerts: AlertSender,
    pending: Mutex<Vec<Pending>>,
    /// Every filter's notify fd (level-triggered: readable while a notification waits)
    /// and the stop eventfd. Receivers hold it too, so that it outlives them.
    epoll: Arc<Epoll>,
    /// Written when the supervisor is dropped: receivers waiting in epoll end.
    stop: EventFd,
    /// The filters, by the token their fd is registered with in `epoll`.
    filters: Mutex<HashMap<u64, Arc<Filter>>>,
    next_token: AtomicU64,
    /// The receiver that serves now.
    receiver: Mutex<Arc<Receiver>>,
    /// Receivers retired while stuck and not ended yet.
    stalled_receivers: AtomicUsize,
    /// The origin of [`Receiver::busy_since`].
    epoch: Instant,
    /// Wakes the watchdog when the receiver may be stuck.
    stall_alarm: Arc<StallAlarm>,
    metrics: Metrics,
}

/// Wakes the watchdog [`STALL_AFTER`] after the receiver took its latest notification.
///
/// Re-armed at each notification (one timerfd_settime), it fires only when one took that
/// long, or once after the last of a burst. The watchdog used to wake on a tick of
/// STALL_AFTER / 2 while execs came in instead: on a loaded VM each wake-up cost about
/// 190 us of CPU, a fifth of the supervisor's CPU per exec in the bench (issue #16); on a
/// quiet one the two gave the same CPU per exec.
struct StallAlarm {
    timer: TimerFd,
    /// Holds `timer` alone: a wait on it with a timeout.
    epoll: Epoll,
}

impl StallAlarm {
    fn new() -> io::Result<StallAlarm> {
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll_add(&epoll, &timer, 0)?;
        Ok(StallAlarm { timer, epoll })
    }

    /// Fires STALL_AFTER from now, unless armed again before.
    fn arm(&self) {
        let after = Expiration::OneShot(TimeSpec::from_duration(STALL_AFTER));
        if let Err(error) = self.timer.set(after, TimerSetTimeFlags::empty()) {
            // Only an invalid time can fail it: the watchdog's quiet tick still comes.
            tracing::error!(%error, "cannot arm the stall alarm");
        }
    }

    /// Returns when the alarm fires, or after `timeout`.
    fn wait(&self, timeout: Duration) {
        let timeout = EpollTimeout::try_from(timeout).unwrap_or(EpollTimeout::NONE);
        let mut events = [EpollEvent::empty()];
        if matches!(self.epoll.wait(&mut events, timeout), Ok(1..)) {
            // Drained, or it would stay readable; EAGAIN when re-armed meanwhile.
            let _ = self.timer.wait();
        }
    }
}

/// A receiver thread, as the watchdog sees it.
#[derive(Default)]
struct Receiver {
    /// When it received the notification it is busy with, in nanoseconds after the
    /// supervisor's epoch; 0 while it waits for the next one.
    busy_since: AtomicU64,
    /// Set by the watchdog when a new receiver took over: this one ends once it is done
    /// with the notification it is stuck on.
    retired: AtomicBool,
    /// The `busy_since` the watchdog last reported as not relieved.
    reported_since: AtomicU64,
}

/// The filter a notification came from.
struct Filter {
    fd: Arc<NotifyFd>,
    scope: Arc<Scope>,
    policy: Arc<PolicySlot>,
    lineage: OnceLock<Lineage>,
    filter_root: OnceLock<ProcessRoot>,
    mounts_not_in_memory: Mutex<HashSet<u64>>,
    identities: Mutex<Identities>,
    writable_lineage: WritableLineage,
    processes: ProcessTable,
    gate: GateState,
}

impl Supervisor {
    /// What it and its alert sinks counted so far, in Prometheus text format, with
    /// `labels` on every sample (see [`Metrics::render`]).
    pub fn render_metrics(&self, labels: &str) -> String {
        self.metrics.render(labels, &self.alerts.counts())
    }

    /// A supervisor, its receiver thread and its watchdog thread. Alerts go to `alerts`.
    pub fn new(config: Config, alerts: AlertSender) -> io::Result<Arc<Supervisor>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let stop = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll_add(&epoll, &stop, STOP_TOKEN)?;
        let supervisor = Arc::new(Supervisor {
            config: RwLock::new(Arc::new(config)),
            alerts,
            pending: Mutex::new(Vec::new()),
            epoll: Arc::new(epoll),
            stop,
            filters: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
            receiver: Mutex::new(Arc::default()),
            stalled_receivers: AtomicUsize::new(0),
            epoch: Instant::now(),
            stall_alarm: Arc::new(StallAlarm::new()?),
            metrics: Metrics::default(),
        });
        let first = lock(&supervisor.receiver).clone();
        supervisor.start_receiver(first)?;
        let (weak, alarm) = (Arc::downgrade(&supervisor), supervisor.stall_alarm.clone());
        // Woken by the stall alarm, or at the next notification's deadline. Otherwise
        // seldom: the shim runs one supervisor per pod, and an idle pod should not wake the
        // node 40 times a second. The tick also ends the thread once the supervisor is gone.
        std::thread::Builder::new().name("execguard-watchdog".into()).spawn(move || {
            while let Some(supervisor) = weak.upgrade() {
                let quiet_tick = (supervisor.config().deadline / 4).clamp(STALL_AFTER, Duration::from_millis(250));
                let now = Instant::now();
                let next_deadline = supervisor.expire(now);
                supervisor.relieve_stalled_receiver(now);
                drop(supervisor);
                let until_deadline = next_deadline.map(|at| at.saturating_duration_since(now));
                alarm.wait(until_deadline.map_or(quiet_tick, |wait| wait.min(quiet_tick)));
            }
        })?;
        Ok(supervisor)
    }

    fn config(&self) -> Arc<Config> {
        // Replaced whole, never left torn.
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Changes the deadline and the fail action for the notifications received from now
    /// on (a reloaded configuration).
    pub fn set_deadline(&self, deadline: Duration, fail_action: FailAction) {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        *config = Arc::new(Config { deadline, fail_action, ..(**config).clone() });
    }

    /// Serves a notify fd with `policy` until every process under its filter has exited.
    pub fn supervise(&self, fd: NotifyFd, scope: Scope, policy: Arc<PolicySlot>) -> io::Result<()> {
        if let Err(error) = fd.enable_sync_wakeup() {
            tracing::debug!(%error, "no synchronous wake-ups on this kernel");
        }
        let filter = Arc::new(Filter {
            fd: Arc::new(fd),
            scope: Arc::new(scope),
            policy,
            lineage: OnceLock::new(),
            filter_root: OnceLock::new(),
            mounts_not_in_memory: Mutex::new(HashSet::new()),
            identities: Mutex::new(Identities::default()),
            writable_lineage: WritableLineage::default(),
            processes: ProcessTable::default(),
            gate: GateState::default(),
        });
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(container = filter.container(), token, "supervising");
        let fd = filter.fd.clone();
        lock(&self.filters).insert(token, filter);
        epoll_add(&self.epoll, &*fd, token).inspect_err(|_| {
            lock(&self.filters).remove(&token);
        })
    }

    /// Starts a receiver thread that reports to the watchdog through `receiver`.
    fn start_receiver(self: &Arc<Self>, receiver: Arc<Receiver>) -> io::Result<()> {
        let (weak, epoll) = (Arc::downgrade(self), self.epoll.clone());
        std::thread::Builder::new()
            .name("execguard-receiver".into())
            .spawn(move || receive(&weak, &epoll, &receiver))?;
        Ok(())
    }

    /// Receives one notification of the filter registered as `token` and answers it.
    fn receive_one(&self, token: u64, receiver: &Receiver) {
        let Some(filter) = lock(&self.filters).get(&token).cloned() else { return };
        let since = self.epoch.elapsed().as_nanos();
        receiver.busy_since.store(u64::try_from(since).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
        self.stall_alarm.arm();
        match filter.fd.recv() {
            Ok(notification) => match notification.kind() {
                Kind::RootChange => root_change(&filter, &notification),
                Kind::IoUring => self.refuse_io_uring(&filter, &notification),
                kind @ (Kind::Exec | Kind::NetworkSocket) if self.overloaded() => {
                    self.answer_uninspected(&filter, &notification, kind)
                }
                kind @ (Kind::Exec | Kind::NetworkSocket) => self.handle(&filter, notification, kind),
            },
            // Withdrawn between epoll and RECV (a signal, an exit): nothing to answer.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::error!(container = filter.container(), %error, "cannot receive from the notify fd; execs under it will fail with ENOSYS");
                self.end(token);
            }
        }
        receiver.busy_since.store(0, Ordering::Relaxed);
    }

    /// Whether every receiver it may keep is stuck in a stalled inspection: the one serving
    /// now must not read a process's memory, or it could be stuck as well.
    fn overloaded(&self) -> bool {
        self.stalled_receivers.load(Ordering::Relaxed) >= MAX_STALLED_RECEIVERS
    }

    /// Answers a notification with the fail action without inspecting it: the wait it would
    /// otherwise have, behind stalled inspections, has no bound (THREAT_MODEL.md, gap 4).
    fn answer_uninspected(&self, filter: &Filter, notification: &Notification, kind: Kind) {
        let received = Instant::now();
        if kind == Kind::Exec {
            // Let through undecided (fail-open): the gate must check what runs afresh.
            filter.gate.forget(notification.pid);
        }
        let fail_action = self.config().fail_action;
        let (action, outcome) = match fail_action {
            FailAction::Open => (Action::Alert, "allowed (fail-open)"),
            FailAction::Closed => (Action::Block, "blocked (fail-closed)"),
        };
        if !answer(&filter.fd, notification.id, action) {
            return;
        }
        self.metrics.fail_action(FailCause::Overload);
        self.count(kind, action, None, received);
        let mut event = ExecEvent::new(String::new(), Vec::new());
        event.process.pid = Some(notification.pid);
        event.container = filter.scope.container.clone();
        event.orchestrator = filter.scope.orchestrator.clone();
        let reason = format!(
            "not inspected: every receiver ({MAX_STALLED_RECEIVERS}) is stuck in an inspection that processes of this \
             pod stall: {outcome}"
        );
        let record = Box::new(DecisionRecord { decision: action, rule: None, reason });
        self.report(Box::new(event), record, filter.policy.get().mode(), EventAction::ExecUndecided);
    }

    /// Stops serving the filter registered as `token`.
    fn end(&self, token: u64) {
        let Some(filter) = lock(&self.filters).remove(&token) else { return };
        // Failing, the fd stays registered until the filter's last reference closes it.
        let _ = self.epoll.delete(&*filter.fd);
        tracing::debug!(container = filter.container(), "every process under the filter has exited");
    }

    /// Gives the filters a new receiver when the current one has been busy with one
    /// notification for longer than [`STALL_AFTER`].
    fn relieve_stalled_receiver(self: &Arc<Self>, now: Instant) {
        let mut current = lock(&self.receiver);
        let since = current.busy_since.load(Ordering::Relaxed);
        let busy_for = now.saturating_duration_since(self.epoch).saturating_sub(Duration::from_nanos(since));
        if since == 0 || busy_for < STALL_AFTER {
            return;
        }
        // Said once per stuck notification, not at every wake-up.
        let first_report = current.reported_since.swap(since, Ordering::Relaxed) != since;
        if self.stalled_receivers.load(Ordering::Relaxed) >= MAX_STALLED_RECEIVERS {
            if first_report {
                tracing::error!(
                    stalled = MAX_STALLED_RECEIVERS,
                    "the receiver that answers without inspection is stuck too"
                );
            }
            return;
        }
        let fresh = Arc::<Receiver>::default();
        if let Err(error) = self.start_receiver(fresh.clone()) {
            if first_report {
                tracing::error!(%error, "cannot start a receiver in place of a stuck one");
            }
            return;
        }
        current.retired.store(true, Ordering::Release);
        let stalled = self.stalled_receivers.fetch_add(1, Ordering::Relaxed) + 1;
        *current = fresh;
        tracing::warn!(busy_for = ?busy_for, "an inspection is stuck (a process may be stalling reads of its memory): a new receiver serves the other execs");
        if stalled == MAX_STALLED_RECEIVERS {
            tracing::error!(
                stalled,
                "every receiver is stuck in a stalled inspection: new execs get the fail action without inspection until one returns, and the stalling processes are killed at their deadline (fail-closed)"
            );
        }
    }

    /// Decides an exec, or a network socket of the gate, and answers it.
    fn handle(&self, filter: &Filter, notification: Notification, kind: Kind) {
        let received = Instant::now();
        let config = self.config();
        let policy = filter.policy.get();
        let container = filter.container();
        let _span = tracing::debug_span!("exec", container, pid = notification.pid, id = notification.id).entered();
        let answered = Arc::new(AtomicBool::new(false));
        let inspecting = Arc::new(AtomicBool::new(true));
        /// Clears `inspecting` however the inspection ends.
        struct Inspecting(Arc<AtomicBool>);
        impl Drop for Inspecting {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _inspecting = Inspecting(inspecting.clone());
        lock(&self.pending).push(Pending {
            fd: filter.fd.clone(),
            id: notification.id,
            pid: notification.pid,
            deadline: received + config.deadline,
            allowed: config.deadline,
            mode: policy.mode(),
            answered: answered.clone(),
            inspecting,
            scope: filter.scope.clone(),
        });
        let source = Source {
            fd: &filter.fd,
            scope: &filter.scope,
            lineage: filter.lineage.get_or_init(|| Lineage::of(notification.pid)),
            filter_root: &filter.filter_root,
            mounts_not_in_memory: &filter.mounts_not_in_memory,
            identities: &filter.identities,
            writable_lineage: &filter.writable_lineage,
            processes: &filter.processes,
            gate: &filter.gate,
        };
        let inspected = match kind {
            Kind::NetworkSocket => inspect::gate(&source, &notification, &policy, &config),
            _ => inspect::inspect(&source, &notification, &policy, &config),
        };
        let claimed = !answered.swap(true, Ordering::AcqRel);
        lock(&self.pending).retain(|p| !Arc::ptr_eq(&p.answered, &answered));
        if !claimed {
            tracing::debug!("decided after the deadline: the watchdog answered");
            return;
        }
        match inspected {
            Inspected::Withdrawn => tracing::debug!("withdrawn during inspection"),
            Inspected::Missing | Inspected::Passed => {
                if answer(&filter.fd, notification.id, Action::Allow) {
                    self.count(kind, Action::Allow, None, received);
                }
            }
            Inspected::Decided { event, record, action, after } => {
                if kind == Kind::NetworkSocket && action == Action::Block {
                    // What runs was blocked: the process must not go on without its socket
                    // either (it could try another way, or touch files).
                    // A pid the kernel gave us, still stopped in socket(): at worst it is gone.
                    // 0 (a task outside the supervisor's pid namespace) would signal the
                    // shim's own process group: then the EPERM alone must do.
                    if let Ok(pid @ 1..) = i32::try_from(notification.pid) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                let answered = answer(&filter.fd, notification.id, action);
                after.finish(&filter.processes, action);
                if answered {
                    self.count(kind, action, record.rule.as_ref().map(|r| r.id.as_str()), received);
                    if action != Action::Allow {
                        let what = EventAction::of(&record, kind == Kind::NetworkSocket);
                        self.report(event, record, policy.mode(), what);
                    }
                }
            }
        }
    }

    /// Counts an answered notification. One the kernel withdrew (its SEND failed) is not
    /// an exec: the same execve comes again as a new notification.
    fn count(&self, kind: Kind, action: Action, rule: Option<&str>, received: Instant) {
        match kind {
            Kind::NetworkSocket => self.metrics.inspected_socket(),
            _ => self.metrics.inspected_exec(),
        }
        self.metrics.decided(action, rule, received.elapsed());
        if action != Action::Allow {
            match kind {
                // The gate only objects to a process that runs something its exec was
                // not decided on.
                Kind::NetworkSocket => self.metrics.exec_race(),
                _ if rule.is_none() => self.metrics.fail_action(FailCause::Undecidable),
                _ => {}
            }
        }
    }

    fn report(&self, event: Box<ExecEvent>, record: Box<DecisionRecord>, mode: Mode, action: EventAction) {
        // The alert sinks log it at info or warn (LogSink); this is for following one exec.
        tracing::debug!(
            decision = ?record.decision,
            rule = record.rule.as_ref().map_or("", |r| r.id.as_str()),
            executable = %event.process.executable,
            pid = event.process.pid.unwrap_or(0),
            "{}", record.reason
        );
        self.alerts.send(Alert { event, record, mode, action, at: SystemTime::now() });
    }

    /// Answers every notification past its deadline with the fail action. Returns the
    /// earliest deadline still to come.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let (expired, next_deadline): (Vec<Pending>, _) = {
            let mut pending = lock(&self.pending);
            let (expired, waiting): (Vec<Pending>, Vec<Pending>) = pending.drain(..).partition(|p| p.deadline <= now);
            *pending = waiting;
            (expired, pending.iter().map(|p| p.deadline).min())
        };
        for late in expired {
            if late.answered.swap(true, Ordering::AcqRel) {
                continue;
            }
            let fail_action = self.config().fail_action;
            // Its inspection still waits, far past STALL_AFTER, on memory the process does
            // not let it read: only the process's end ends that read and gives the pod its
            // receiver back, and a refusal alone would let the process keep it as long as
            // it likes. Fail-closed kills it; fail-open lets it run, as it lets its exec.
            // (A pid the kernel gave us, still stopped in the syscall; 0, a task outside
            // our pid namespace, would be our own group.)
            let kill_it = fail_action == FailAction::Closed && late.inspecting.load(Ordering::Acquire);
            let (action, outcome) = match (fail_action, kill_it) {
                (FailAction::Open, _) => (Action::Alert, "allowed (fail-open)"),
                (FailAction::Closed, false) => (Action::Block, "blocked (fail-closed)"),
                (FailAction::Closed, true) => {
                    (Action::Block, "blocked, and the process killed: its inspection is stalled (fail-closed)")
                }
            };
            tracing::warn!(pid = late.pid, deadline = ?late.allowed, "no decision in time: {outcome}");
            // Killed first: answered first, the process could act on the refusal (and even
            // exit and let its pid be reused) before the signal. Killed, it withdraws the
            // notification, and the answer usually finds nothing to answer.
            let killed = kill_it
                && i32::try_from(late.pid)
                    .is_ok_and(|pid| pid >= 1 && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok());
            if answer(&late.fd, late.id, action) || killed {
                // Counted only when it applied: a notification the kernel withdrew is not an
                // exec (it comes again), as on every other path.
                self.metrics.fail_action(FailCause::Deadline);
                self.metrics.decided(action, None, late.allowed + now.saturating_duration_since(late.deadline));
                let mut event = ExecEvent::new(String::new(), Vec::new());
                event.process.pid = Some(late.pid);
                event.container = late.scope.container.clone();
                event.orchestrator = late.scope.orchestrator.clone();
                let reason = format!("no decision within {:?}: {outcome}", late.allowed);
                let record = Box::new(DecisionRecord { decision: action, rule: None, reason });
                self.report(Box::new(event), record, late.mode, EventAction::ExecUndecided);
            }
        }
        next_deadline
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Failing, the receivers stay blocked in epoll, which ends with the process.
        let _ = self.stop.write(1);
    }
}

impl Filter {
    /// The container's id, for logs; empty for `execguard run`.
    fn container(&self) -> &str {
        self.scope.container.as_ref().and_then(|c| c.id.as_deref()).unwrap_or_default()
    }
}

/// A receiver thread: waits for notifications on every filter, and serves each ready
/// filter in turn. Ends when retired by the watchdog, or when the supervisor is gone.
fn receive(supervisor: &Weak<Supervisor>, epoll: &Epoll, receiver: &Receiver) {
    let mut events = [EpollEvent::empty(); 16];
    loop {
        let ready = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(ready) => ready,
            Err(Errno::EINTR) => continue,
            Err(error) => {
                tracing::error!(%error, "cannot wait for notifications; execs will wait for their deadline");
                return;
            }
        };
        for event in events.iter().take(ready) {
            let (token, flags) = (event.data(), event.events());
            if token == STOP_TOKEN {
                return;
            }
            let Some(supervisor) = supervisor.upgrade() else { return };
            if flags.contains(EpollFlags::EPOLLIN) {
                // A bug in an inspection must not end the receiver, which serves every
                // container of the pod: the notification it was on is still registered
                // with the watchdog, which answers it with the fail action at its deadline.
                let served = std::panic::catch_unwind(AssertUnwindSafe(|| supervisor.receive_one(token, receiver)));
                if served.is_err() {
                    receiver.busy_since.store(0, Ordering::Relaxed);
                    tracing::error!("an inspection panicked (a bug: please report it); its exec gets the fail action at its deadline");
                }
            } else {
                supervisor.end(token);
            }
            if receiver.retired.load(Ordering::Acquire) {
                supervisor.stalled_receivers.fetch_sub(1, Ordering::Relaxed);
                tracing::info!("a stalled inspection returned; its receiver ends");
                return;
            }
        }
    }
}

/// Registers `fd` with `epoll` for readability, as `token`.
fn epoll_add(epoll: &Epoll, fd: impl AsFd, token: u64) -> io::Result<()> {
    Ok(epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))?)
}

/// Locks a mutex of the supervisor (its queues, its per-filter caches). Their contents are
/// replaced, inserted, pushed, removed or cleared whole: a panic elsewhere cannot leave
/// them torn, so a poisoned lock is still good.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Supervisor {
    /// io_uring_setup under a gate that refuses it: io_uring creates sockets without
    /// socket(), past the gate. Refused with EPERM and reported.
    fn refuse_io_uring(&self, filter: &Filter, notification: &Notification) {
        let executable = procfs::exe(notification.pid).map(|p| p.display().to_string()).unwrap_or_default();
        if answer(&filter.fd, notification.id, Action::Block) {
            let mut event = ExecEvent::new(executable, Vec::new());
            event.process.pid = Some(notification.pid);
            event.container = filter.scope.container.clone();
            event.orchestrator = filter.scope.orchestrator.clone();
            let reason = "io_uring_setup refused: io_uring creates sockets that the socket gate cannot see \
                          (allow it in the node's configuration where a workload needs it)"
                .to_string();
            let record = Box::new(DecisionRecord { decision: Action::Block, rule: None, reason });
            self.report(Box::new(event), record, filter.policy.get().mode(), EventAction::IoUringRefused);
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
    answer(&filter.fd, notification.id, Action::Allow);
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
