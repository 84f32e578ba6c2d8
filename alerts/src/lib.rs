//! What happens after a decision: the alert record, its de-duplication, the bounded
//! queue the supervisor hands alerts to, and the sink they are written to.
//!
//! Not here: deciding (`execguard-policy`) and inspecting processes
//! (`execguard-supervisor`). The supervisor only enqueues; everything that can be slow
//! (serialising, writing, a full disk) happens on the writer's thread.
//!
//! An alert is the exec event exactly as the policy saw it, plus the decision record
//! (`decision`, `rule`, `reason`) and an `@timestamp`: one flat ECS-style JSON document per
//! line. Log pipelines ingest it as it is, and `execguard policy eval` reads it back as an
//! event (it ignores the extra fields), which is how a stricter policy is tried on what
//! really ran.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime};

use execguard_policy::{DecisionRecord, ExecEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub mod http;
mod writer;
pub use writer::{spawn_writer, Alert, AlertSender, ALERT_QUEUE};

/// One alert or block, as written to every sink.
#[derive(Debug, Serialize)]
pub struct AlertRecord<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    #[serde(flatten)]
    pub event: &'a ExecEvent,
    #[serde(flatten)]
    pub decision: &'a DecisionRecord,
}

impl<'a> AlertRecord<'a> {
    pub fn new(event: &'a ExecEvent, decision: &'a DecisionRecord, at: SystemTime) -> Self {
        AlertRecord { timestamp: humantime::format_rfc3339_millis(at).to_string(), event, decision }
    }
}

/// Writes alert records as JSON lines, one `write` per record so that lines from several
/// writers appending to one file do not interleave.
pub struct JsonLinesSink<W: Write> {
    out: W,
}

impl<W: Write> JsonLinesSink<W> {
    pub fn new(out: W) -> Self {
        JsonLinesSink { out }
    }

    pub fn write(&mut self, record: &AlertRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }
}

/// Suppresses an alert that repeats one already reported within a window: the same
/// decision by the same rule for the same executable, arguments and parent in the same
/// container (Datadog's de-duplication, by arguments and parent path, over an hour). A
/// shell trying each PATH entry, or a crash loop, then yields one record rather than
/// hundreds. Decisions are never de-duplicated: every exec is still decided and blocked.
pub struct Deduplicator {
    window: Duration,
    seen: HashMap<RepeatKey, Instant>,
}

/// What makes two alerts the same: SHA-256 over the fields as a JSON array. JSON quotes
/// and delimits every field, so `["a b"]` and `["a", "b"]` differ; SHA-256 is specified
/// (std's DefaultHasher is not, and may change between Rust releases) and no collision
/// can make a new alert pass for a repeat.
type RepeatKey = [u8; 32];

fn repeat_key(event: &ExecEvent, decision: &DecisionRecord) -> RepeatKey {
    let fields = (
        event.container.as_ref().and_then(|c| c.id.as_deref()),
        decision.decision,
        decision.rule.as_ref().map(|r| r.id.as_str()),
        &event.process.executable,
        &event.process.args,
        event.process.parent.as_ref().and_then(|p| p.executable.as_deref()),
    );
    // Strings, options and an enum of unit variants: serialising them cannot fail.
    let json = serde_json::to_vec(&fields).unwrap_or_default();
    Sha256::digest(json).into()
}

/// Entries kept before expired ones are swept (and, if all are recent, before the memory
/// is given up: a flood of distinct alerts is reported rather than remembered).
const MAX_REMEMBERED: usize = 16 * 1024;

impl Deduplicator {
    /// A zero window reports every alert.
    pub fn new(window: Duration) -> Self {
        Deduplicator { window, seen: HashMap::new() }
    }

    /// Whether this alert is the first of its kind within the window; remembers it.
    pub fn first_time(&mut self, event: &ExecEvent, decision: &DecisionRecord, now: Instant) -> bool {
        if self.window.is_zero() {
            return true;
        }
        let key = repeat_key(event, decision);
        if self.seen.get(&key).is_some_and(|at| now.duration_since(*at) < self.window) {
            return false;
        }
        if self.seen.len() >= MAX_REMEMBERED {
            let window = self.window;
            self.seen.retain(|_, at| now.duration_since(*at) < window);
            if self.seen.len() >= MAX_REMEMBERED {
                self.seen.clear();
            }
        }
        self.seen.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use execguard_policy::Policy;

    #[test]
    fn an_alert_replays_as_the_same_event() {
        let policy = Policy::embedded().unwrap();
        let event: ExecEvent = serde_json::from_str(
            r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","4444"],"pid":42},
                "container":{"id":"abc","image":{"name":"nginx:1.27"}}}"#,
        )
        .unwrap();
        let decision = policy.record(&event, &policy.decide(&event));
        let mut sink = JsonLinesSink::new(Vec::new());
        sink.write(&AlertRecord::new(&event, &decision, SystemTime::UNIX_EPOCH)).unwrap();
        let line = String::from_utf8(sink.out).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["@timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["decision"], "block");
        assert_eq!(json["rule"]["id"], "datadog.netcat_shell");
        assert_eq!(json["process"]["pid"], 42);
        let replayed: ExecEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(replayed, event);
    }

    /// The key is a specified function of the record, the same in every build and on
    /// every node: SHA-256 of this JSON text (the hex is `sha256sum`'s over it).
    #[test]
    fn the_repeat_key_is_sha256_of_the_fields() {
        let policy = Policy::embedded().unwrap();
        let nc = ExecEvent::new("/usr/bin/nc.openbsd", vec!["nc".into()]);
        let decision = policy.record(&nc, &policy.decide(&nc));
        // [null,"block","falco.launch_suspicious_network_tool","/usr/bin/nc.openbsd",["nc"],null]
        assert_eq!(decision.rule.as_ref().map(|r| r.id.as_str()), Some("falco.launch_suspicious_network_tool"));
        let hex: String = repeat_key(&nc, &decision).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ce7d4916c38b17285c2048d7ceca6a4e58076ed687910f9d2e93d827a0e98345");
    }

    #[test]
    fn repeats_within_the_window_are_suppressed() {
        let policy = Policy::embedded().unwrap();
        let nc = ExecEvent::new("/usr/bin/nc.openbsd", vec!["nc".into(), "10.0.0.1".into(), "4444".into()]);
        let mut other_args = nc.clone();
        other_args.process.args.push("-v".into());
        let decision = policy.record(&nc, &policy.decide(&nc));
        let start = Instant::now();
        let mut dedup = Deduplicator::new(Duration::from_secs(3600));
        assert!(dedup.first_time(&nc, &decision, start));
        assert!(!dedup.first_time(&nc, &decision, start + Duration::from_secs(60)));
        assert!(dedup.first_time(&other_args, &decision, start + Duration::from_secs(60)));
        assert!(dedup.first_time(&nc, &decision, start + Duration::from_secs(3601)));
        let mut split_args = nc.clone();
        split_args.process.args = vec!["nc 10.0.0.1".into(), "4444".into()];
        assert!(dedup.first_time(&split_args, &decision, start + Duration::from_secs(60)), "arguments are delimited");
        let mut everything = Deduplicator::new(Duration::ZERO);
        assert!(everything.first_time(&nc, &decision, start) && everything.first_time(&nc, &decision, start));
    }
}
