//! The shim's configuration file and the annotations it judges: `ShimConfig::parse` on
//! arbitrary text, then `ShimConfig::resolve` with arbitrary annotations.
//!
//! The input is the TOML text, a NUL, then the annotations as a JSON object. The file is
//! the node's, but the annotations are whatever a pod's author wrote: a bad value must
//! fail the Create with a message naming the annotation, never panic the shim. When the
//! text is no valid configuration the defaults judge the annotations, as they do on a
//! node without a file.
//!
//! What `overrides` promises is checked too, since it is what keeps a pod from switching
//! execguard off for itself: under `tighten` an accepted annotation never lowers the
//! node's mode nor picks another policy, and under `none` it changes nothing.
#![no_main]

use execguard_policy::Mode;
use execguard_shim::config::{ContainerMode, Overrides, ShimConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let (text, annotations) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let config =
        std::str::from_utf8(text).ok().and_then(|text| ShimConfig::parse(text, "fuzz").ok()).unwrap_or_default();
    let annotations = match serde_json::from_slice::<Value>(annotations) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    // The base policy's mode is asked for only when an annotation's mode must be compared.
    for base in [Mode::Monitor, Mode::Enforce] {
        let Ok(selection) = config.resolve(&annotations, || Ok(base)) else { continue };
        let node = config.mode.unwrap_or(base.into());
        let (mode, policy) = match selection {
            None => (ContainerMode::Off, None),
            Some(selection) => (selection.mode.map_or(node, ContainerMode::from), selection.policy),
        };
        match config.overrides {
            Overrides::Tighten => {
                assert!(mode >= node, "an annotation lowered {node} to {mode} under overrides = \"tighten\"");
                assert!(policy.is_none(), "an annotation chose {policy:?} under overrides = \"tighten\"");
            }
            Overrides::None => {
                assert_eq!(mode, node, "an annotation changed the mode under overrides = \"none\"");
                assert!(policy.is_none(), "an annotation chose {policy:?} under overrides = \"none\"");
            }
            Overrides::Any => {}
        }
    }
});
