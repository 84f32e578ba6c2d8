//! The config.json patch, `SpecPatch::apply`, on arbitrary JSON, and `spec::annotations`.
//!
//! The spec is containerd's, built from a pod manifest and a seccomp profile the pod may
//! choose (Localhost): the shim must refuse a spec it cannot patch with a message, never
//! panic in the middle of a Create. Each input is patched with and without the socket
//! gate (with io_uring both ways), since the gate takes other paths through the rules.
//!
//! A patch that succeeds must also keep its promise, or a profile could smuggle a call
//! past the supervisor: no rule of the result allows (ALLOW, LOG) execve or execveat,
//! nor, under the gate, socket, socketcall or io_uring_setup; and when the result says
//! root changes are reported, none allows chroot, pivot_root, setns or clone3 either.
#![no_main]

use execguard_seccomp::{names, Gate, Treatment};
use execguard_shim::spec::{annotations, RootWatch, SpecPatch};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const LISTENER: &str = "/run/execguard/fuzz.sock";

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<Value>(data) else { return };
    let _ = annotations(&spec);
    for gate in [None, Some(Gate { io_uring: false }), Some(Gate { io_uring: true })] {
        let patch = SpecPatch { listener_path: LISTENER.into(), gate };
        let mut patched = spec.clone();
        let Ok(watch) = patch.apply(&mut patched) else { continue };
        let seccomp = &patched["linux"]["seccomp"];
        assert_eq!(seccomp["listenerPath"], LISTENER, "a patched spec names the listener");
        let mut supervised = names(Treatment::Exec);
        if let Some(gate) = gate {
            supervised.extend(names(Treatment::NetworkSocket));
            supervised.extend(names(Treatment::SocketCall));
            if gate.io_uring {
                supervised.extend(names(Treatment::IoUring));
            }
        }
        if watch == RootWatch::Reported {
            supervised.extend(names(Treatment::RootChange));
            supervised.extend(names(Treatment::NoSuchSyscall));
        }
        let rules = seccomp["syscalls"].as_array().map(Vec::as_slice).unwrap_or_default();
        for name in supervised {
            let allowing = rules.iter().find(|rule| {
                matches!(rule["action"].as_str(), Some("SCMP_ACT_ALLOW" | "SCMP_ACT_LOG"))
                    && rule["names"].as_array().is_some_and(|names| names.iter().any(|n| n == name))
            });
            assert!(allowing.is_none(), "the patched profile still allows {name} ({watch:?}): {allowing:?}");
        }
    }
});
