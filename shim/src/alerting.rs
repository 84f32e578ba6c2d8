//! The pod's alert sinks, built from config.toml's `[alerts]`, and the one only a shim
//! has: containerd's event stream.
//!
//! # The containerd event
//! Each record is published on topic [`TOPIC`] in the container's namespace through the
//! shim's publisher (containerd's `Events.Forward`, the way task events travel), so
//! `ctr events` and every containerd event consumer see each block and alert.
//!
//! The event is a `containerd.types.Descriptor`, not a message type of our own, because
//! consumers decode an event by looking its type up in their own registry and skip what
//! they cannot: `ctr events` 2.3.4 prints "cannot unmarshal an event from Any" and
//! nothing else for an unknown type, and it has no generic one (google.protobuf.Struct
//! and the wrappers are not linked into it; 1.6's ctr has them). Every containerd client,
//! on both lines, knows `containerd.types.Descriptor`. It describes the record as a piece
//! of content: media type [`MEDIA_TYPE`], the record's sha256 and size, and annotations
//! that carry the fields a responder looks at first and, under [`RECORD_ANNOTATION`], the
//! whole ECS record.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::asynchronous::publisher::RemotePublisher;
use containerd_shim_protos::protobuf::well_known_types::{any::Any, timestamp::Timestamp};
use containerd_shim_protos::shim::{event::Envelope, events::ForwardRequest};
use containerd_shim_protos::shim_async::Events;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use execguard_alerts::{FileRotation, FileSink, HttpSink, LogSink, Sink};
use prost::Message;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Alerts;

pub const TOPIC: &str = "/execguard/exec";
pub const MEDIA_TYPE: &str = "application/vnd.execguard.alert.v1+json";
pub const RECORD_ANNOTATION: &str = "execguard.dev/record";

/// containerd's `containerd.types.Descriptor` (api/types/descriptor.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct Descriptor {
    #[prost(string, tag = "1")]
    media_type: String,
    #[prost(string, tag = "2")]
    digest: String,
    #[prost(int64, tag = "3")]
    size: i64,
    #[prost(map = "string, string", tag = "5")]
    annotations: HashMap<String, String>,
}

const DESCRIPTOR_TYPE: &str = "containerd.types.Descriptor";

/// How long a record may wait for room in the publisher's queue (which retries and
/// reconnects by itself) before it is counted as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes records on containerd's event stream.
pub struct EventsSink {
    publisher: Arc<RemotePublisher>,
    namespace: String,
    runtime: tokio::runtime::Handle,
}

impl EventsSink {
    pub fn new(publisher: Arc<RemotePublisher>, namespace: &str, runtime: tokio::runtime::Handle) -> EventsSink {
        EventsSink { publisher, namespace: namespace.to_string(), runtime }
    }
}

fn text(record: &Value, pointer: &str) -> Option<String> {
    record.pointer(pointer).and_then(Value::as_str).map(str::to_string)
}

/// The annotations of the event: the fields to triage by, and the whole record.
fn annotations(record: &Value, json: &str) -> HashMap<String, String> {
    let args = record.pointer("/process/args").and_then(Value::as_array);
    let command_line = args.map(|args| args.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "));
    let pod = text(record, "/orchestrator/namespace")
        .zip(text(record, "/orchestrator/resource/name"))
        .map(|(namespace, pod)| format!("{namespace}/{pod}"));
    [
        ("execguard.dev/event-action", text(record, "/event/action")),
        ("execguard.dev/event-id", text(record, "/event/id")),
        ("execguard.dev/decision", text(record, "/decision")),
        ("execguard.dev/rule", text(record, "/rule/id")),
        ("execguard.dev/container", text(record, "/container/id")),
        ("execguard.dev/pod", pod),
        ("execguard.dev/executable", text(record, "/process/executable")),
        ("execguard.dev/command-line", command_line),
        (RECORD_ANNOTATION, Some(json.to_string())),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect()
}

fn envelope(record: &Value, namespace: &str) -> io::Result<Envelope> {
    let json = serde_json::to_string(record).map_err(io::Error::other)?;
    let annotations = annotations(record, &json);
    Ok(descriptor_envelope(TOPIC, namespace, MEDIA_TYPE, &json, annotations))
}

/// The time now, as containerd's events and responses carry it.
pub fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut timestamp = Timestamp::new();
    timestamp.seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    timestamp.nanos = i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0);
    timestamp
}

/// An event on `topic` that describes the JSON document `json` (see the module's docs).
pub fn descriptor_envelope(
    topic: &str,
    namespace: &str,
    media_type: &str,
    json: &str,
    annotations: HashMap<String, String>,
) -> Envelope {
    let digest: String = Sha256::digest(json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let descriptor = Descriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{digest}"),
        size: i64::try_from(json.len()).unwrap_or(i64::MAX),
        annotations,
    };
    let mut event = Any::new();
    event.type_url = DESCRIPTOR_TYPE.to_string();
    event.value = descriptor.encode_to_vec();
    let mut envelope = Envelope::new();
    envelope.set_topic(topic.to_string());
    envelope.set_namespace(namespace.to_string());
    envelope.set_timestamp(now());
    envelope.set_event(event);
    envelope
}

impl Sink for EventsSink {
    fn name(&self) -> &str {
        "containerd-events"
    }

    fn write(&mut self, record: &Value) -> io::Result<()> {
        let mut request = ForwardRequest::new();
        request.set_envelope(envelope(record, &self.namespace)?);
        let context = TtrpcContext { mh: Default::default(), metadata: Default::default(), timeout_nano: 0 };
        let publisher = self.publisher.clone();
        // This sink's own thread, outside the runtime: blocking on the runtime is allowed.
        let forwarded = self
            .runtime
            .block_on(async { tokio::time::timeout(PUBLISH_TIMEOUT, publisher.forward(&context, request)).await });
        match forwarded {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(io::Error::other(format!("cannot publish on {TOPIC}: {error}"))),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("publishing on {TOPIC} timed out"))),
        }
    }
}

/// Where the shim's alerts go, from `[alerts]`, and containerd's events when asked for.
pub fn sinks(config: &Alerts, events: Option<EventsSink>) -> Result<Vec<Box<dyn Sink>>, String> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(path) = &config.file {
        let rotation = FileRotation { max_bytes: config.rotate_mib.saturating_mul(1 << 20), keep: config.rotate_keep };
        let file = FileSink::new(path, rotation).map_err(|e| format!("cannot open the alert file {e}"))?;
        sinks.push(Box::new(file));
    }
    if config.log {
        sinks.push(Box::new(LogSink));
    }
    for http in &config.http {
        sinks.push(Box::new(HttpSink::new(http)?));
    }
    if let Some(events) = events.filter(|_| config.containerd_events) {
        sinks.push(Box::new(events));
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_event_is_a_descriptor_of_the_record() {
        let record = json!({
            "event": {"action": "exec-blocked", "id": "e1"},
            "decision": "block",
            "rule": {"id": "datadog.netcat_shell"},
            "process": {"executable": "/usr/bin/nc.openbsd", "args": ["nc", "-lp", "4444"]},
            "container": {"id": "c1"},
            "orchestrator": {"namespace": "shop", "resource": {"name": "web-1"}},
        });
        let envelope = envelope(&record, "k8s.io").unwrap();
        assert_eq!(envelope.topic, TOPIC);
        assert_eq!(envelope.namespace, "k8s.io");
        let event = envelope.event.as_ref().unwrap();
        assert_eq!(event.type_url, "containerd.types.Descriptor");
        let descriptor = Descriptor::decode(event.value.as_slice()).unwrap();
        assert_eq!(descriptor.media_type, MEDIA_TYPE);
        let json = &descriptor.annotations[RECORD_ANNOTATION];
        assert_eq!(serde_json::from_str::<Value>(json).unwrap(), record);
        assert_eq!(descriptor.size as usize, json.len());
        assert!(descriptor.digest.starts_with("sha256:") && descriptor.digest.len() == 7 + 64);
        assert_eq!(descriptor.annotations["execguard.dev/command-line"], "nc -lp 4444");
        assert_eq!(descriptor.annotations["execguard.dev/pod"], "shop/web-1");
        assert_eq!(descriptor.annotations["execguard.dev/rule"], "datadog.netcat_shell");
    }
}
