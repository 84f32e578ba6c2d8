//! What happens after a decision: the alert record and the sinks it goes to.
//!
//! An alert is the exec event exactly as the policy saw it, plus the decision record
//! (`decision`, `rule`, `reason`) and an `@timestamp`: one flat ECS-style JSON document per
//! line. Log pipelines ingest it as it is, and `execguard policy eval` reads it back as an
//! event (it ignores the extra fields), which is how a stricter policy is tried on what
//! really ran.

use std::io::{self, Write};
use std::time::SystemTime;

use execguard_policy::{DecisionRecord, ExecEvent};
use serde::Serialize;

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
}
