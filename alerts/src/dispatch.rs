//! The queues and threads between the supervisor and the sinks.
//!
//! ```text
//! supervisor --try_send--> [ALERT_QUEUE] --> dispatcher: de-duplicates, builds the record
//!                                              |--try_send--> [SINK_QUEUE] --> file sink thread
//!                                              |--try_send--> [SINK_QUEUE] --> http sink thread
//!                                              '--try_send--> [SINK_QUEUE] --> ...
//! ```
//!
//! Nothing upstream ever waits for anything downstream: a full queue drops the record,
//! counted per sink (`SinkCounts`, exported as metrics) and logged at most once per
//! [`LOG_INTERVAL`]. So a slow, failing or hung sink (a full disk, an unreachable URL, a
//! reader that stopped reading) costs its own records only, never a decision's time and
//! never another sink's records. The record is built once, for all sinks.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::record::{self, Alert};
use crate::repeats::{Admitted, Deduplicator};
use crate::Sink;

/// Alerts waiting for the dispatcher, at most. A flood of alerts must not grow the shim's
/// memory or slow execs down: what does not fit is counted and logged.
pub const ALERT_QUEUE: usize = 4096;

/// Records waiting for one sink, at most.
pub const SINK_QUEUE: usize = 1024;

/// The name [`SinkCounts`] gives the dispatcher's own queue.
pub const QUEUE_SINK: &str = "queue";

/// How often the dispatcher closes ended repeat windows and applies a new configuration.
const TICK: Duration = Duration::from_millis(250);

/// The same trouble (a full queue, a failing sink) is logged at most this often, with the
/// number of times it happened in between.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What one sink did, counted for the life of the process (a sink replaced by a new
/// configuration keeps its name's counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// The sink's name; `queue` counts what the dispatcher's own queue dropped before any
    /// sink saw it.
    pub sink: String,
    pub written: u64,
    /// Records that did not fit in the sink's queue.
    pub dropped: u64,
    /// Records the sink could not deliver (its error was logged).
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

#[derive(Default)]
struct Stats {
    queue_dropped: AtomicU64,
    queue_log: Mutex<Throttle>,
    sinks: Mutex<BTreeMap<String, Arc<Counters>>>,
}

impl Stats {
    fn counters(&self, sink: &str) -> Arc<Counters> {
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        sinks.entry(sink.to_string()).or_default().clone()
    }
}

/// Logs a recurring problem once per [`LOG_INTERVAL`].
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    since_last: u64,
}

impl Throttle {
    /// Whether to log now, and how many occurrences went unlogged before this one.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < LOG_INTERVAL) {
            self.since_last += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since_last))
    }
}

struct Configuration {
    sinks: Vec<Box<dyn Sink>>,
    repeat_window: Duration,
}

/// The supervisor's end of the queue. Clones share the queue and the counts; the
/// dispatcher ends once every clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct AlertSender {
    queue: SyncSender<Alert>,
    control: mpsc::Sender<Configuration>,
    stats: Arc<Stats>,
}

impl AlertSender {
    /// Queues an alert without waiting: a full queue (or a dispatcher that is gone) drops
    /// it, counted and logged.
    pub fn send(&self, alert: Alert) {
        if self.queue.try_send(alert).is_err() {
            let dropped = self.stats.queue_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let due = self.stats.queue_log.lock().unwrap_or_else(PoisonError::into_inner).due(Instant::now());
            if due.is_some() {
                tracing::warn!(dropped, "alert queue full: alerts are being dropped (counted in execguard_alerts_dropped_total{{sink=\"queue\"}})");
            }
        }
    }

    /// Replaces the sinks and the repeat window from the next alert on (a reloaded
    /// configuration). The old sinks finish what they hold, then end.
    pub fn configure(&self, sinks: Vec<Box<dyn Sink>>, repeat_window: Duration) {
        // The dispatcher holds the receiver as long as any sender lives.
        let _ = self.control.send(Configuration { sinks, repeat_window });
    }

    /// Every sink's counts so far, the dispatcher's queue first.
    pub fn counts(&self) -> Vec<SinkCounts> {
        let queue = SinkCounts {
            sink: QUEUE_SINK.into(),
            dropped: self.stats.queue_dropped.load(Ordering::Relaxed),
            ..SinkCounts::default()
        };
        let sinks = self.stats.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        let each = sinks.iter().map(|(name, c)| SinkCounts {
            sink: name.clone(),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        });
        std::iter::once(queue).chain(each).collect()
    }
}

/// The dispatcher thread.
pub struct Dispatcher {
    thread: JoinHandle<()>,
}

impl Dispatcher {
    /// Waits until every alert queued so far reached its sinks. Returns once every
    /// [`AlertSender`] is dropped.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the alert dispatcher panicked");
        }
    }
}

/// Starts the dispatcher with these sinks.
pub fn spawn(sinks: Vec<Box<dyn Sink>>, repeat_window: Duration) -> io::Result<(AlertSender, Dispatcher)> {
    let (queue, alerts) = mpsc::sync_channel::<Alert>(ALERT_QUEUE);
    let (control, configurations) = mpsc::channel();
    let stats = Arc::new(Stats::default());
    let sender = AlertSender { queue, control, stats: stats.clone() };
    let outlets = start_outlets(sinks, &stats)?;
    let thread = std::thread::Builder::new()
        .name("execguard-alerts".into())
        .spawn(move || dispatch(alerts, configurations, stats, outlets, repeat_window))?;
    Ok((sender, Dispatcher { thread }))
}

/// A sink's queue and thread, as the dispatcher sees them.
struct Outlet {
    name: String,
    queue: SyncSender<Arc<Value>>,
    counters: Arc<Counters>,
    drops: Throttle,
    thread: JoinHandle<()>,
}

fn start_outlets(sinks: Vec<Box<dyn Sink>>, stats: &Stats) -> io::Result<Vec<Outlet>> {
    sinks
        .into_iter()
        .map(|sink| {
            let name = sink.name().to_string();
            let counters = stats.counters(&name);
            let (queue, records) = mpsc::sync_channel(SINK_QUEUE);
            let for_thread = counters.clone();
            let thread = std::thread::Builder::new()
                .name(format!("execguard-sink-{}", name.split(':').next().unwrap_or("sink")))
                .spawn(move || drain(sink, records, &for_thread))?;
            Ok(Outlet { name, queue, counters, drops: Throttle::default(), thread })
        })
        .collect()
}

/// A sink's thread: delivers its records one by one.
fn drain(mut sink: Box<dyn Sink>, records: Receiver<Arc<Value>>, counters: &Counters) {
    let mut errors = Throttle::default();
    for record in records {
        match sink.write(&record) {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(unlogged) = errors.due(Instant::now()) {
                    tracing::error!(sink = sink.name(), %error, unlogged, "cannot deliver an alert record (further errors of this sink are logged once a minute)");
                }
            }
        }
    }
}

fn deliver(outlets: &mut [Outlet], record: Value) {
    let record = Arc::new(record);
    for outlet in outlets {
        if outlet.queue.try_send(record.clone()).is_err() {
            let dropped = outlet.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if outlet.drops.due(Instant::now()).is_some() {
                tracing::warn!(sink = %outlet.name, dropped, "alert sink too slow: its queue is full and records are dropped");
            }
        }
    }
}

fn host_name() -> String {
    nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

fn dispatch(
    alerts: Receiver<Alert>,
    configurations: Receiver<Configuration>,
    stats: Arc<Stats>,
    mut outlets: Vec<Outlet>,
    repeat_window: Duration,
) {
    let host = host_name();
    let mut repeats = Deduplicator::new(repeat_window);
    let mut swept = Instant::now();
    loop {
        match alerts.recv_timeout(TICK) {
            Ok(alert) => {
                let now = Instant::now();
                match repeats.admit(&alert.event, &alert.record, alert.at, now) {
                    Admitted::First(key) => {
                        let record = record::build(&alert, &host);
                        deliver(&mut outlets, record.clone());
                        for summary in repeats.remember(key, Arc::new(record), alert.at, now) {
                            deliver(&mut outlets, summary);
                        }
                    }
                    Admitted::Repeat => {
                        tracing::debug!(executable = %alert.event.process.executable, "repeated alert counted")
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(Configuration { sinks, repeat_window }) = configurations.try_recv() {
            if repeat_window != repeats.window() {
                for summary in repeats.close_all() {
                    deliver(&mut outlets, summary);
                }
                repeats = Deduplicator::new(repeat_window);
            }
            match start_outlets(sinks, &stats) {
                // The old outlets' queues close: their threads write what they hold and end.
                Ok(new) => outlets = new,
                Err(error) => tracing::error!(%error, "cannot start the new alert sinks: the old ones stay"),
            }
        }
        let now = Instant::now();
        if now.saturating_duration_since(swept) >= TICK {
            swept = now;
            for summary in repeats.expire(now) {
                deliver(&mut outlets, summary);
            }
        }
    }
    for summary in repeats.close_all() {
        deliver(&mut outlets, summary);
    }
    for Outlet { queue, thread, name, .. } in outlets {
        drop(queue);
        if thread.join().is_err() {
            tracing::error!(sink = %name, "an alert sink panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::alert;
    use std::sync::atomic::AtomicBool;

    /// Collects what it is given, optionally after waiting for a gate, optionally failing.
    struct Probe {
        name: String,
        seen: Seen,
        hold: Arc<AtomicBool>,
        fail: bool,
    }

    impl Sink for Probe {
        fn name(&self) -> &str {
            &self.name
        }
        fn write(&mut self, record: &Value) -> io::Result<()> {
            while self.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.fail {
                return Err(io::Error::other("refused"));
            }
            self.seen.lock().unwrap().push(record.clone());
            Ok(())
        }
    }

    type Seen = Arc<Mutex<Vec<Value>>>;

    fn probe(name: &str, hold: bool, fail: bool) -> (Box<dyn Sink>, Seen, Arc<AtomicBool>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(AtomicBool::new(hold));
        let sink = Probe { name: name.into(), seen: seen.clone(), hold: gate.clone(), fail };
        (Box::new(sink), seen, gate)
    }

    fn wait_until(done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(20), "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn counts(sender: &AlertSender, sink: &str) -> SinkCounts {
        sender.counts().into_iter().find(|c| c.sink == sink).unwrap_or_default()
    }

    #[test]
    fn a_hung_sink_loses_only_its_own_records_and_never_delays_the_sender() {
        let (hung, hung_seen, gate) = probe("hung", true, false);
        let (failing, _, _) = probe("failing", false, true);
        let (healthy, healthy_seen, _) = probe("healthy", false, false);
        let (sender, dispatcher) = spawn(vec![hung, failing, healthy], Duration::ZERO).unwrap();
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","1"]}}"#);
        let total = 3000;
        let mut slowest = Duration::ZERO;
        for batch in 1..=total / 100 {
            for _ in 0..100 {
                let before = Instant::now();
                sender.send(nc.clone());
                slowest = slowest.max(before.elapsed());
            }
            // Batches keep the healthy sink's queue short whatever the machine's load.
            wait_until(|| counts(&sender, "healthy").written >= batch * 100);
        }
        let failing = || counts(&sender, "failing");
        wait_until(|| failing().failed + failing().dropped >= total);
        assert!(slowest < Duration::from_millis(50), "send waited {slowest:?}");
        let hung_counts = counts(&sender, "hung");
        assert!(hung_counts.dropped >= (total - SINK_QUEUE as u64 - 1), "{hung_counts:?}");
        assert!(failing().failed > 0, "a failing sink's errors are counted");
        assert_eq!(counts(&sender, "healthy").dropped, 0, "the healthy sink kept up");
        gate.store(false, Ordering::SeqCst);
        let counts_before_exit = counts(&sender, "hung");
        drop(sender);
        dispatcher.join();
        assert_eq!(healthy_seen.lock().unwrap().len() as u64, total);
        assert_eq!(hung_seen.lock().unwrap().len() as u64, total - counts_before_exit.dropped);
    }

    #[test]
    fn repeats_reach_the_sinks_as_one_record_and_a_summary() {
        let (sink, seen, _) = probe("p", false, false);
        let (sender, dispatcher) = spawn(vec![sink], Duration::from_secs(3600)).unwrap();
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","1"]}}"#);
        for _ in 0..5 {
            sender.send(nc.clone());
        }
        drop(sender);
        dispatcher.join();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0]["execguard"].get("repeats").is_none());
        assert_eq!(seen[1]["execguard"]["repeats"]["count"], 4);
    }

    #[test]
    fn a_new_configuration_replaces_the_sinks_and_keeps_their_counts() {
        let (first, first_seen, _) = probe("p", false, false);
        let (sender, dispatcher) = spawn(vec![first], Duration::ZERO).unwrap();
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","1"]}}"#);
        sender.send(nc.clone());
        wait_until(|| counts(&sender, "p").written >= 1);
        let (second, second_seen, _) = probe("p", false, false);
        sender.configure(vec![second], Duration::ZERO);
        std::thread::sleep(TICK * 3);
        sender.send(nc);
        drop(sender);
        dispatcher.join();
        assert_eq!(first_seen.lock().unwrap().len(), 1);
        assert_eq!(second_seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_full_queue_logs_once_per_interval() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.due(start), Some(0));
        assert_eq!(throttle.due(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.due(start + Duration::from_secs(2)), None);
        assert_eq!(throttle.due(start + LOG_INTERVAL), Some(2));
    }
}
