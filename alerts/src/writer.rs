//! The bounded queue between the supervisor and the sinks, and the thread that drains it:
//! it drops repeats within the repeat window and writes the rest. A slow disk delays
//! alerts, never execs: the supervisor only ever tries to enqueue.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use execguard_policy::{DecisionRecord, ExecEvent};

use crate::{AlertRecord, Deduplicator, JsonLinesSink};

/// An exec that was alerted on or blocked, on its way to the sinks.
#[derive(Debug)]
pub struct Alert {
    pub event: Box<ExecEvent>,
    pub record: Box<DecisionRecord>,
    pub at: SystemTime,
}

/// Alerts waiting for the sinks, at most. A flood of alerts must not grow the shim's
/// memory or slow execs down: what does not fit is counted and logged.
pub const ALERT_QUEUE: usize = 4096;

/// The supervisor's end of the queue. Clones share the queue and the count of drops; the
/// writer ends once every clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct AlertSender {
    queue: SyncSender<Alert>,
    dropped: Arc<AtomicU64>,
}

impl AlertSender {
    /// Queues an alert without waiting: a full queue (or a writer that is gone) drops it,
    /// counted and logged.
    pub fn send(&self, alert: Alert) {
        if self.queue.try_send(alert).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped, "alert queue full or closed: alert dropped");
        }
    }
}

/// Starts the writer, which writes each alert to `out` as a JSON line.
pub fn spawn_writer(
    out: Box<dyn Write + Send>,
    repeat_window: Duration,
) -> io::Result<(AlertSender, std::thread::JoinHandle<()>)> {
    let (queue, alerts) = mpsc::sync_channel::<Alert>(ALERT_QUEUE);
    let thread = std::thread::Builder::new().name("execguard-alerts".into()).spawn(move || {
        let mut sink = JsonLinesSink::new(out);
        let mut repeats = Deduplicator::new(repeat_window);
        for alert in alerts {
            if !repeats.first_time(&alert.event, &alert.record, Instant::now()) {
                tracing::debug!(executable = %alert.event.process.executable, "repeated alert not written again");
                continue;
            }
            if let Err(error) = sink.write(&AlertRecord::new(&alert.event, &alert.record, alert.at)) {
                tracing::error!(%error, "cannot write an alert");
            }
        }
    })?;
    Ok((AlertSender { queue, dropped: Arc::default() }, thread))
}
