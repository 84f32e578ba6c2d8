//! The event and alert JSON reader: `execguard policy eval` over arbitrary JSON lines, and
//! `ExecEvent` read from arbitrary bytes.
//!
//! Alerts are replayed through `eval_lines` from wherever a log pipeline kept them, so a
//! line may be anything; a malformed one must become an error line, never a panic that
//! ends the dry run. The same bytes are then read as one `ExecEvent`, as the alert
//! readers do, and an event that reads must come back equal from its own JSON: alerts
//! carry that JSON, and a field lost on the way would make a replay decide something
//! else than the cluster did.
#![no_main]

use std::sync::LazyLock;

use execguard_cli::eval::eval_lines;
use execguard_policy::{ExecEvent, Policy};
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policy> = LazyLock::new(|| Policy::embedded().expect("the embedded policy compiles"));

fuzz_target!(|data: &[u8]| {
    let _ = eval_lines(&POLICY, data, std::io::sink());
    if let Ok(event) = serde_json::from_slice::<ExecEvent>(data) {
        let written = serde_json::to_vec(&event).expect("an event that was read can be written");
        let again: ExecEvent = serde_json::from_slice(&written).expect("an event reads its own JSON");
        assert_eq!(event, again, "the event changed on its way through JSON");
    }
});
