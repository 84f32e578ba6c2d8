//! What happens after a decision: the alert record, its de-duplication, the queues and
//! the sinks the records go to.
//!
//! Not here: deciding (`execguard-policy`) and inspecting processes
//! (`execguard-supervisor`). The supervisor only enqueues ([`AlertSender::send`] never
//! waits); everything that can be slow happens on the dispatcher's thread and on one
//! thread per sink, each behind a bounded queue of its own, so that a full disk or an
//! unreachable URL delays neither a decision nor another sink (`dispatch`).
//!
//! A record is the exec event exactly as the policy saw it and the decision, with the
//! Elastic Common Schema fields that let a pipeline route it without mapping (`record`,
//! described by `alerts/schema/alert-record.schema.json`). `execguard policy eval` reads it back
//! as an event (it ignores the extra fields), which is how a stricter policy is tried on
//! what really ran.
//!
//! Sinks here know files, HTTP and the log. The shim adds containerd's event stream,
//! which only it can reach.

use std::io;

mod dispatch;
mod file;
mod http;
mod log;
mod record;
mod repeats;

pub use dispatch::{spawn, AlertSender, Dispatcher, SinkCounts, ALERT_QUEUE, QUEUE_SINK, SINK_QUEUE};
pub use file::{FileRotation, FileSink, JsonLinesSink};
pub use http::{HttpConfig, HttpFormat, HttpSink};
pub use log::LogSink;
pub use record::{Alert, EventAction, ECS_VERSION};

/// A place alert records go. Each sink runs on a thread of its own behind a bounded
/// queue: `write` may block (a slow disk, a retried POST) without holding up anything
/// but this sink's own queue.
pub trait Sink: Send {
    /// Names the sink in logs and in the dropped-records counter, e.g. `file`.
    fn name(&self) -> &str;
    /// Delivers one record. An error is counted and logged (at most once per interval) by
    /// the caller, and the record is lost to this sink only.
    fn write(&mut self, record: &serde_json::Value) -> io::Result<()>;
}
