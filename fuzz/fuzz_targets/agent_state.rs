//! The runc state message on the agent socket: `agent::parse_state` on arbitrary bytes,
//! then `agent::scope` on whatever it accepts, as `read_state` and `take_listener` do.
//!
//! The socket is the container's `listenerPath`; whoever can connect to it sends these
//! bytes, and a panic there would leave that container's execs without a supervisor.
#![no_main]

use execguard_shim::agent::{parse_state, scope, ContainerFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(state)) = parse_state(data) else { return };
    let facts = ContainerFacts { id: "fuzz".into(), upper_dir: None, root_changes: None, gate: false };
    let _ = scope(&state, &facts);
    let _ = state["pid"].as_u64();
});
