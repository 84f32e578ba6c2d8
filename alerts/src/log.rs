//! The tracing log as a sink: one line per record, its fields as tracing fields (so a
//! JSON log formatter or journald keeps them apart), the reason as the message.

use std::io;

use serde_json::Value;

use crate::Sink;

pub struct LogSink;

fn text<'a>(record: &'a Value, pointer: &str) -> &'a str {
    record.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn joined(record: &Value, pointer: &str) -> String {
    let words = record.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    words.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
}

impl Sink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    fn write(&mut self, record: &Value) -> io::Result<()> {
        let repeats = record.pointer("/execguard/repeats/count").and_then(Value::as_u64).unwrap_or(0);
        macro_rules! log {
            ($level:expr) => {
                tracing::event!(
                    target: "execguard::alert",
                    $level,
                    event.action = text(record, "/event/action"),
                    event.id = text(record, "/event/id"),
                    decision = text(record, "/decision"),
                    rule.id = text(record, "/rule/id"),
                    process.executable = text(record, "/process/executable"),
                    process.command_line = joined(record, "/process/args"),
                    process.pid = record.pointer("/process/pid").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    process.parent.executable = text(record, "/process/parent/executable"),
                    container.id = text(record, "/container/id"),
                    container.name = text(record, "/container/name"),
                    container.image.name = text(record, "/container/image/name"),
                    orchestrator.namespace = text(record, "/orchestrator/namespace"),
                    orchestrator.resource.name = text(record, "/orchestrator/resource/name"),
                    execguard.mode = text(record, "/execguard/mode"),
                    execguard.repeats = repeats,
                    "{}",
                    text(record, "/reason")
                )
            };
        }
        if text(record, "/decision") == "block" {
            log!(tracing::Level::WARN);
        } else {
            log!(tracing::Level::INFO);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    type Logged = Vec<(tracing::Level, Vec<(String, String)>)>;

    /// Keeps each event's fields as (name, value) and its level.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<Logged>>);

    struct Collect(Vec<(String, String)>);

    impl Visit for Collect {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_string(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl Subscriber for Fields {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Collect(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push((*event.metadata().level(), fields.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_record_is_logged_with_its_fields_as_fields() {
        let record = serde_json::json!({
            "event": {"action": "exec-blocked", "id": "e1"},
            "decision": "block",
            "rule": {"id": "datadog.netcat_shell"},
            "reason": "netcat was started as a listener",
            "process": {"executable": "/usr/bin/nc.openbsd", "args": ["nc", "-lp", "4444"], "pid": 7},
            "container": {"id": "c1"},
        });
        let seen = Fields::default();
        tracing::subscriber::with_default(seen.clone(), || LogSink.write(&record).unwrap());
        let events = seen.0.lock().unwrap();
        let (level, fields) = &events[0];
        assert_eq!(*level, tracing::Level::WARN, "a block is a warning");
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(field("rule.id"), Some("datadog.netcat_shell"));
        assert_eq!(field("process.command_line"), Some("nc -lp 4444"));
        assert_eq!(field("container.id"), Some("c1"));
        assert_eq!(field("process.pid"), Some("7"));
        assert_eq!(field("message"), Some("netcat was started as a listener"));
    }
}
