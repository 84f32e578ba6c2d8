//! The config.json patch, `SpecPatch::apply`, on arbitrary JSON, and `spec::annotations`.
//!
//! The spec is containerd's, built from a pod manifest and a seccomp profile the pod may
//! choose (Localhost): the shim must refuse a spec it cannot patch with a message, never
//! panic in the middle of a Create. Each input is patched with and without the socket
//! gate (with io_uring both ways), since the gate takes other paths through the rules.
#![no_main]

use execguard_seccomp::Gate;
use execguard_shim::spec::{annotations, SpecPatch};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const LISTENER: &str = "/run/execguard/fuzz.sock";

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<Value>(data) else { return };
    let _ = annotations(&spec);
    for gate in [None, Some(Gate { io_uring: false }), Some(Gate { io_uring: true })] {
        let patch = SpecPatch { listener_path: LISTENER.into(), gate };
        let mut patched = spec.clone();
        if patch.apply(&mut patched).is_ok() {
            assert_eq!(patched["linux"]["seccomp"]["listenerPath"], LISTENER, "a patched spec names the listener");
        }
    }
});
