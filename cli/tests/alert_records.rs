//! Real alert records, written by `execguard run` for real execs, against the schema that
//! pipelines are told to expect (alerts/schema/alert-record.schema.json), and the
//! de-duplication summary as a user gets it.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../alerts/schema/alert-record.schema.json");
    let text = std::fs::read_to_string(path).expect("the schema file");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Runs `script` under `execguard run` with `options`; returns its alert records.
fn records(options: &[&str], script: &str) -> Vec<Value> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("execguard-alert-records-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("alerts.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_execguard"))
        .arg("run")
        .args(options)
        .arg("--alerts")
        .arg(&file)
        .args(["--", "/bin/sh", "-c", script])
        .status()
        .expect("run execguard");
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    text.lines().map(|line| serde_json::from_str(line).expect("each line is one JSON record")).collect()
}

fn assert_valid(schema: &jsonschema::Validator, record: &Value) {
    let errors: Vec<String> = schema.iter_errors(record).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{record}\ndoes not match the schema: {errors:#?}");
}

#[test]
fn blocks_alerts_and_summaries_match_the_schema() {
    let schema = schema();
    // nc three times (blocked, de-duplicated), curl (alerted: a network client).
    // Absolute paths: a shell trying each PATH entry would try nc more than once per line.
    let script = "for i in 1 2 3; do /usr/bin/nc -h 2>/dev/null; done; /usr/bin/curl --version >/dev/null 2>&1; true";
    let enforce = records(&["--repeat-window-secs", "3600"], script);
    let actions: Vec<&str> = enforce.iter().filter_map(|r| r["event"]["action"].as_str()).collect();
    assert_eq!(actions, ["exec-blocked", "exec-alerted", "exec-blocked"], "{enforce:#?}");
    for record in &enforce {
        assert_valid(&schema, record);
        assert_eq!(record["execguard"]["mode"], "enforce");
    }
    let summary = &enforce[2];
    assert_eq!(summary["execguard"]["repeats"]["count"], 2, "the two repeats of nc, summarised at exit");
    assert_eq!(summary["process"], enforce[0]["process"]);
    assert_ne!(summary["event"]["id"], enforce[0]["event"]["id"]);
    assert_eq!(enforce[0]["event"]["type"], serde_json::json!(["start", "denied"]));

    let monitor = records(&["--mode", "monitor", "--repeat-window-secs", "0"], "nc -h 2>/dev/null; true");
    assert_eq!(monitor.len(), 1);
    assert_valid(&schema, &monitor[0]);
    assert_eq!(monitor[0]["event"]["action"], "exec-alerted");
    assert_eq!(monitor[0]["execguard"]["mode"], "monitor");
}

#[test]
fn the_schema_rejects_what_pipelines_could_not_route() {
    let schema = schema();
    let record = records(&["--repeat-window-secs", "0"], "nc -h 2>/dev/null; true").remove(0);
    for (field, broken) in [
        ("/event/action", Value::from("exec-maybe")),
        ("/event/severity", Value::from(50)),
        ("/decision", Value::from("allow")),
        ("/execguard/mode", Value::from("off")),
    ] {
        let mut wrong = record.clone();
        *wrong.pointer_mut(field).unwrap() = broken;
        assert!(!schema.is_valid(&wrong), "{field} changed, still valid");
    }
}
