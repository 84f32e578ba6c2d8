//! The thread that writes alerts: it drains the supervisor's bounded queue, drops repeats
//! within the repeat window, and writes the rest as JSON lines. A slow disk delays alerts,
//! never execs.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use execguard_hooks::{AlertRecord, Deduplicator, JsonLinesSink};
use tokio::sync::mpsc;

use crate::supervisor::{Alert, ALERT_QUEUE};

/// Starts the writer; it ends once every sender is dropped and the queue is drained.
pub fn spawn_writer(
    out: Box<dyn Write + Send>,
    repeat_window: Duration,
) -> io::Result<(mpsc::Sender<Alert>, std::thread::JoinHandle<()>)> {
    let (sender, mut receiver) = mpsc::channel::<Alert>(ALERT_QUEUE);
    let thread = std::thread::Builder::new().name("execguard-alerts".into()).spawn(move || {
        let mut sink = JsonLinesSink::new(out);
        let mut repeats = Deduplicator::new(repeat_window);
        while let Some(alert) = receiver.blocking_recv() {
            if !repeats.first_time(&alert.event, &alert.record, Instant::now()) {
                tracing::debug!(executable = %alert.event.process.executable, "repeated alert not written again");
                continue;
            }
            if let Err(error) = sink.write(&AlertRecord::new(&alert.event, &alert.record, alert.at)) {
                tracing::error!(%error, "cannot write an alert");
            }
        }
    })?;
    Ok((sender, thread))
}
