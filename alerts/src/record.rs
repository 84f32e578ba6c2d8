//! The alert record, in the Elastic Common Schema (ECS).
//!
//! The exec event and the decision stay where they were (`process.*`, `container.*`,
//! `orchestrator.*`, `execguard.*` facts, `decision`, `rule`, `reason`), so that a record
//! replays as the event it was. Around them go the fields that Elastic, Fluent Bit and
//! Vector route on: `ecs.version`, `@timestamp`, `event.*` (kind, category, type, action,
//! outcome, a unique id, a numeric severity), `rule.*` as ECS names them, `host.name` and
//! `execguard.mode`; a summary of suppressed repeats adds `execguard.repeats`.

use std::time::SystemTime;

use execguard_policy::{Action, DecisionRecord, ExecEvent, Mode, Severity};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The ECS release whose field definitions the record follows.
pub const ECS_VERSION: &str = "8.17.0";

/// An exec that was alerted on or blocked, on its way to the sinks.
#[derive(Debug, Clone)]
pub struct Alert {
    pub event: Box<ExecEvent>,
    pub record: Box<DecisionRecord>,
    /// The mode of the policy that decided it.
    pub mode: Mode,
    pub action: EventAction,
    pub at: SystemTime,
}

/// What happened, as `event.action` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventAction {
    ExecBlocked,
    ExecAlerted,
    /// The socket gate found a process running something its exec was not decided on.
    ExecRace,
    /// The exec could not be decided (in time, or at all): the fail action applied.
    ExecUndecided,
    /// io_uring refused under the socket gate (it makes sockets the gate cannot see).
    IoUringRefused,
}

impl EventAction {
    /// What a reported decision of the policy (or of the fail action) was about: an exec,
    /// or a socket of the gate.
    pub fn of(decision: &DecisionRecord, at_socket_gate: bool) -> EventAction {
        if decision.rule.is_none() {
            // Only the fail action reports a decision without a rule.
            EventAction::ExecUndecided
        } else if at_socket_gate {
            EventAction::ExecRace
        } else if decision.decision == Action::Block {
            EventAction::ExecBlocked
        } else {
            EventAction::ExecAlerted
        }
    }
}

/// ECS `event.severity` is a number whose scale the source defines: Elastic's detection
/// rules use 21, 47, 73 and 99 for low to critical, and so does this record. A decision
/// without a rule (a fail action) counts as high: something kept the supervisor from
/// deciding.
fn severity_number(severity: Option<Severity>) -> u8 {
    match severity {
        Some(Severity::Low) => 21,
        Some(Severity::Medium) => 47,
        Some(Severity::High) | None => 73,
        Some(Severity::Critical) => 99,
    }
}

pub(crate) fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

/// The count and times of the repeats a summary record stands for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Repeats {
    /// Alerts suppressed after the one written.
    pub count: u64,
    /// When the alert that was written happened.
    pub first_seen: String,
    /// When the last suppressed one happened.
    pub last_seen: String,
}

/// Builds the record of `alert` as written to every sink.
pub(crate) fn build(alert: &Alert, host: &str) -> Value {
    let decision = &alert.record;
    let mut types = vec!["start"];
    if decision.decision == Action::Block {
        types.push("denied");
    }
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(timestamp(alert.at)));
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert(
        "event".into(),
        json!({
            "kind": "alert",
            "category": ["process"],
            "type": types,
            "action": alert.action,
            // ECS: the outcome of the event itself, the exec.
            "outcome": if decision.decision == Action::Block { "failure" } else { "success" },
            "id": uuid::Uuid::new_v4().to_string(),
            "severity": severity_number(decision.rule.as_ref().map(|r| r.severity)),
            "module": "execguard",
            "dataset": "execguard.alert",
        }),
    );
    doc.insert("decision".into(), json!(decision.decision));
    doc.insert("rule".into(), serde_json::to_value(&decision.rule).unwrap_or(Value::Null));
    doc.insert("reason".into(), json!(decision.reason));
    // An ExecEvent is a struct of strings, numbers and options: always an object.
    if let Ok(Value::Object(event)) = serde_json::to_value(&*alert.event) {
        doc.extend(event);
    }
    doc.insert("host".into(), json!({ "name": host }));
    let facts = doc.entry("execguard").or_insert_with(|| json!({}));
    if let Value::Object(facts) = facts {
        facts.insert("mode".into(), json!(alert.mode));
    }
    Value::Object(doc)
}

/// The summary of `first`'s suppressed repeats: the same record with a new id, the time of
/// the last repeat, and the counts.
pub(crate) fn summary(first: &Value, repeats: &Repeats) -> Value {
    let mut doc = first.clone();
    doc["@timestamp"] = json!(repeats.last_seen);
    doc["event"]["id"] = json!(uuid::Uuid::new_v4().to_string());
    doc["execguard"]["repeats"] = json!(repeats);
    doc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use execguard_policy::Policy;

    pub(crate) fn alert(json: &str) -> Alert {
        let policy = Policy::embedded().unwrap();
        let event: ExecEvent = serde_json::from_str(json).unwrap();
        let record = policy.record(&event, &policy.decide(&event));
        let action = EventAction::of(&record, false);
        Alert {
            event: Box::new(event),
            record: Box::new(record),
            mode: policy.mode(),
            action,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_block_is_an_ecs_alert_that_replays_as_the_same_event() {
        let nc = alert(
            r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","4444"],"pid":42},
                "container":{"id":"abc","image":{"name":"nginx:1.27"}}}"#,
        );
        let record = build(&nc, "node-1");
        assert_eq!(record["@timestamp"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(record["ecs"]["version"], ECS_VERSION);
        assert_eq!(record["event"]["kind"], "alert");
        assert_eq!(record["event"]["category"], json!(["process"]));
        assert_eq!(record["event"]["type"], json!(["start", "denied"]));
        assert_eq!(record["event"]["action"], "exec-blocked");
        assert_eq!(record["event"]["outcome"], "failure");
        assert_eq!(record["event"]["severity"], 73);
        assert_eq!(record["event"]["id"].as_str().map(str::len), Some(36));
        assert_eq!(record["decision"], "block");
        assert_eq!(record["rule"]["id"], "datadog.netcat_shell");
        assert_eq!(record["rule"]["ruleset"], "datadog");
        assert!(record["rule"]["reference"].as_str().is_some_and(|r| r.starts_with("https://")));
        assert!(record["rule"]["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(record["host"]["name"], "node-1");
        assert_eq!(record["execguard"]["mode"], "enforce");
        assert_eq!(record["process"]["pid"], 42);
        let replayed: ExecEvent = serde_json::from_value(record.clone()).unwrap();
        assert_eq!(replayed, *nc.event);
        assert_ne!(build(&nc, "node-1")["event"]["id"], record["event"]["id"], "ids are unique");
    }

    #[test]
    fn the_action_says_what_happened() {
        let curl = alert(r#"{"process":{"executable":"/usr/bin/curl","args":["curl","https://example.com"]}}"#);
        assert_eq!(curl.action, EventAction::ExecAlerted);
        let record = build(&curl, "h");
        assert_eq!(record["event"]["type"], json!(["start"]));
        assert_eq!(record["event"]["outcome"], "success");
        let race = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc"]}}"#);
        assert_eq!(EventAction::of(&race.record, true), EventAction::ExecRace);
        assert_eq!(EventAction::of(&race.record, false), EventAction::ExecBlocked);
        let mut undecided = race.clone();
        undecided.record.rule = None;
        undecided.action = EventAction::of(&undecided.record, true);
        assert_eq!(undecided.action, EventAction::ExecUndecided);
        assert_eq!(build(&undecided, "h")["event"]["action"], "exec-undecided");
        assert_eq!(build(&undecided, "h")["event"]["severity"], 73);
        assert_eq!(build(&undecided, "h")["rule"], Value::Null);
    }

    #[test]
    fn a_summary_counts_the_repeats_under_a_new_id() {
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","1"]}}"#);
        let first = build(&nc, "h");
        let repeats = Repeats { count: 4, first_seen: "a".into(), last_seen: "b".into() };
        let summary = summary(&first, &repeats);
        assert_eq!(summary["execguard"]["repeats"], json!({"count": 4, "first_seen": "a", "last_seen": "b"}));
        assert_eq!(summary["@timestamp"], "b");
        assert_eq!(summary["execguard"]["mode"], "enforce");
        assert_ne!(summary["event"]["id"], first["event"]["id"]);
        assert_eq!(summary["rule"], first["rule"]);
    }
}
