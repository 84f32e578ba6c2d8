//! The runtime options of a Create: `config::config_path` on arbitrary bytes decoded as a
//! protobuf `Any`, and on arbitrary bytes as the value of a `runtimeoptions.v1.Options`.
//!
//! containerd passes the options from its configuration and, through CRI, from what a
//! kubelet sends; bytes that do not decode must be an error, never a panic.
#![no_main]

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use execguard_shim::config::config_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(any) = Any::parse_from_bytes(data) {
        let _ = config_path(&any);
    }
    let options = Any { type_url: "runtimeoptions.v1.Options".into(), value: data.to_vec(), ..Any::default() };
    let _ = config_path(&options);
});
