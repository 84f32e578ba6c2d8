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
