//! How containerd launches a shim, on each containerd line: what `start` reads and what
//! it must print. This module is the one place where the lines differ; the shim passes the
//! same launch on to the runc shim it drives, as containerd would have launched it.
//!
//! - containerd 2.3 and later write `BootstrapParams` (protobuf,
//!   `containerd.runtime.bootstrap.v1`) to stdin and read a `BootstrapResult` from stdout
//!   (containerd `pkg/shim/util.go` Command, `core/runtime/v2/shim.go`
//!   parseStartResponse). They still pass the old flags and `TTRPC_ADDRESS` as well.
//! - containerd 1.6 to 2.2 pass flags, `TTRPC_ADDRESS` in the environment and the runtime
//!   options (a protobuf `Any`) on stdin. 1.6 takes stdout as the address; 1.7 to 2.2 also
//!   accept JSON `{"version", "address", "protocol"}` and read a bare address as task API
//!   v2 over ttrpc.
//!
//! This shim serves task API v2 on every line and says so: containerd 2.x talks to a v2
//! shim through its v2 bridge (`core/runtime/v2/bridge.go`). Announcing v3 would also tell
//! containerd 2.x that the shim serves the sandbox API and streaming I/O
//! (`shim_manager.go`, supportSandboxAPIVersion), and it would then stop running `start`
//! and `delete` for each container of a pod, which this shim relies on.
//!
//! The runc shim's reply is read the way containerd reads it: a `BootstrapResult`, else
//! JSON, else a bare address (task API v2); containerd 2.x's runc shim announces v3.

use std::io::{IsTerminal, Read};

use prost::Message;
use serde::{Deserialize, Serialize};

/// The task API version this shim serves.
pub const SERVED_TASK_API: i32 = 2;
/// containerd's limit on what `start` reads from stdin.
const MAX_INPUT: u64 = 10 << 20;
/// Where shim sockets go when containerd names no directory.
pub const DEFAULT_SOCKET_DIR: &str = "/run/containerd/s";
/// Carries [`Launch`] from `start` to the serving process it spawns.
pub const LAUNCH_ENV: &str = "EXECGUARD_LAUNCH";
/// containerd's ttrpc address, in the environment of every line's shims.
pub const TTRPC_ADDRESS_ENV: &str = "TTRPC_ADDRESS";

/// `containerd.runtime.bootstrap.v1.BootstrapParams`.
#[derive(Clone, PartialEq, Message)]
pub struct BootstrapParams {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    /// An open enum: INFO = 0, DEBUG = -4, TRACE = -8, more critical levels positive.
    #[prost(int32, tag = "3")]
    pub log_level: i32,
    #[prost(string, tag = "4")]
    pub containerd_version: String,
    #[prost(string, tag = "5")]
    pub containerd_ttrpc_address: String,
    #[prost(string, tag = "6")]
    pub containerd_grpc_address: String,
    #[prost(string, tag = "7")]
    pub containerd_binary: String,
    #[prost(message, repeated, tag = "8")]
    pub extensions: Vec<Extension>,
    #[prost(string, optional, tag = "9")]
    pub socket_dir: Option<String>,
}

/// `containerd.runtime.bootstrap.v1.Extension`: typed configuration, such as the
/// runtime options.
#[derive(Clone, PartialEq, Message)]
pub struct Extension {
    #[prost(message, optional, tag = "1")]
    pub value: Option<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `containerd.runtime.bootstrap.v1.BootstrapResult` (capabilities and metadata are
/// not used by either side yet).
#[derive(Clone, PartialEq, Message)]
pub struct BootstrapResult {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(string, tag = "2")]
    pub address: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
}

pub const LOG_LEVEL_DEBUG: i32 = -4;

/// How containerd launched this shim. `start` learns it and hands it to the serving
/// process (in [`LAUNCH_ENV`]), which launches the runc shim the same way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// containerd's version, when it spoke the bootstrap protocol (2.3 and later).
    pub bootstrap: Option<String>,
    pub ttrpc_address: String,
    pub socket_dir: Option<String>,
    pub log_level: i32,
    /// The containerd binary that publishes events (`-publish-binary`).
    pub publish_binary: String,
}

/// The flags containerd passes on every line.
#[derive(Debug, Clone, Default)]
pub struct StartFlags {
    pub id: String,
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub debug: bool,
}

impl Launch {
    /// What containerd passed to `start`: `input` is its stdin, `ttrpc_env` the
    /// `TTRPC_ADDRESS` it set.
    pub fn from_start(input: &[u8], flags: &StartFlags, ttrpc_env: Option<String>) -> Result<Launch, String> {
        let launch = match BootstrapParams::decode(input) {
            // Runtime options (an Any) decode as params too, with the type URL as the id:
            // only params about this very shim are the bootstrap protocol.
            Ok(params)
                if !input.is_empty() && params.instance_id == flags.id && params.namespace == flags.namespace =>
            {
                Launch {
                    bootstrap: Some(params.containerd_version),
                    ttrpc_address: params.containerd_ttrpc_address,
                    socket_dir: params.socket_dir.filter(|dir| !dir.is_empty()),
                    log_level: params.log_level,
                    publish_binary: match params.containerd_binary.is_empty() {
                        true => flags.publish_binary.clone(),
                        false => params.containerd_binary,
                    },
                }
            }
            _ => Launch {
                bootstrap: None,
                ttrpc_address: ttrpc_env.unwrap_or_default(),
                socket_dir: None,
                log_level: 0,
                publish_binary: flags.publish_binary.clone(),
            },
        };
        let launch = Launch {
            log_level: if flags.debug { launch.log_level.min(LOG_LEVEL_DEBUG) } else { launch.log_level },
            ..launch
        };
        if launch.ttrpc_address.is_empty() {
            return Err(match launch.bootstrap {
                Some(_) => "containerd's bootstrap parameters carry no ttrpc address".to_string(),
                None => format!("containerd did not set {TTRPC_ADDRESS_ENV}"),
            });
        }
        Ok(launch)
    }

    /// The launch that `start` handed to this serving process; the old protocol's
    /// defaults when there is none (`delete`, or a shim started by hand).
    pub fn from_env() -> Launch {
        let launch = std::env::var(LAUNCH_ENV).ok().and_then(|json| serde_json::from_str(&json).ok());
        launch.unwrap_or_else(|| Launch {
            ttrpc_address: std::env::var(TTRPC_ADDRESS_ENV).unwrap_or_default(),
            ..Launch::default()
        })
    }

    pub fn to_env(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn socket_dir(&self) -> &str {
        self.socket_dir.as_deref().unwrap_or(DEFAULT_SOCKET_DIR)
    }

    /// What `start` prints for containerd: the shim's ttrpc address, in the form
    /// containerd's protocol expects.
    pub fn start_reply(&self, address: &str) -> Vec<u8> {
        match self.bootstrap {
            Some(_) => BootstrapResult { version: SERVED_TASK_API, address: address.into(), protocol: "ttrpc".into() }
                .encode_to_vec(),
            None => address.as_bytes().to_vec(),
        }
    }

    /// The runc shim's stdin for `start`, as containerd would have written it:
    /// `runc_options` is the runtime options Any (`containerd.runc.v1.Options`).
    pub fn delegate_input(&self, id: &str, namespace: &str, grpc_address: &str, runc_options: Any) -> Vec<u8> {
        match &self.bootstrap {
            Some(version) => BootstrapParams {
                instance_id: id.into(),
                namespace: namespace.into(),
                log_level: self.log_level,
                containerd_version: version.clone(),
                containerd_ttrpc_address: self.ttrpc_address.clone(),
                containerd_grpc_address: grpc_address.into(),
                containerd_binary: self.publish_binary.clone(),
                extensions: vec![Extension { value: Some(runc_options) }],
                socket_dir: self.socket_dir.clone(),
            }
            .encode_to_vec(),
            None => runc_options.encode_to_vec(),
        }
    }
}

/// Reads what containerd piped to `start` (nothing when run by hand at a terminal).
pub fn read_start_input() -> Result<Vec<u8>, String> {
    let stdin = std::io::stdin();
    let mut input = Vec::new();
    if !stdin.is_terminal() {
        stdin.lock().take(MAX_INPUT).read_to_end(&mut input).map_err(|e| format!("cannot read stdin: {e}"))?;
    }
    Ok(input)
}

/// Where a shim said it listens, and the task API version it serves there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    pub version: i32,
}

#[derive(Deserialize)]
struct JsonReply {
    version: i32,
    address: String,
    protocol: String,
}

/// A shim's reply to `start`, read as containerd 2.x reads it.
pub fn parse_start_reply(reply: &[u8]) -> Result<Endpoint, String> {
    let (version, address, protocol) = match BootstrapResult::decode(reply) {
        Ok(result) if !result.address.is_empty() => (result.version, result.address, result.protocol),
        _ => {
            let text = String::from_utf8_lossy(reply).trim().to_string();
            match serde_json::from_str::<JsonReply>(&text) {
                Ok(json) if json.version >= 2 => (json.version, json.address, json.protocol),
                _ => (2, text, "ttrpc".to_string()),
            }
        }
    };
    if address.is_empty() {
        return Err("it printed no address".into());
    }
    if protocol != "ttrpc" {
        return Err(format!("it serves {protocol} at {address}; execguard speaks ttrpc only"));
    }
    if !(2..=3).contains(&version) {
        return Err(format!("it serves task API v{version} at {address}; execguard speaks v2 and v3"));
    }
    Ok(Endpoint { address, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> StartFlags {
        StartFlags {
            id: "c1".into(),
            namespace: "k8s.io".into(),
            address: "/run/containerd/containerd.sock".into(),
            publish_binary: "/usr/bin/containerd".into(),
            debug: false,
        }
    }

    fn params() -> BootstrapParams {
        BootstrapParams {
            instance_id: "c1".into(),
            namespace: "k8s.io".into(),
            log_level: 0,
            containerd_version: "v2.3.4".into(),
            containerd_ttrpc_address: "/run/c.sock.ttrpc".into(),
            containerd_grpc_address: "/run/c.sock".into(),
            containerd_binary: "/usr/local/bin/containerd".into(),
            extensions: vec![],
            socket_dir: Some("/var/run/shims".into()),
        }
    }

    #[test]
    fn bootstrap_params_select_the_bootstrap_protocol() {
        let launch = Launch::from_start(&params().encode_to_vec(), &flags(), Some("/env.ttrpc".into())).unwrap();
        assert_eq!(launch.bootstrap.as_deref(), Some("v2.3.4"));
        assert_eq!(launch.ttrpc_address, "/run/c.sock.ttrpc");
        assert_eq!(launch.socket_dir(), "/var/run/shims");
        assert_eq!(launch.publish_binary, "/usr/local/bin/containerd");
        let reply = BootstrapResult::decode(launch.start_reply("unix:///s/x").as_slice()).unwrap();
        assert_eq!((reply.version, reply.address.as_str(), reply.protocol.as_str()), (2, "unix:///s/x", "ttrpc"));
    }

    #[test]
    fn runtime_options_on_stdin_are_the_old_protocol() {
        // What containerd 1.6 writes: the runtime options as an Any.
        let options = Any { type_url: "runtimeoptions.v1.Options".into(), value: vec![0x12, 2, b'/', b'x'] };
        for input in [options.encode_to_vec(), Vec::new(), vec![0xff, 0xfe]] {
            let launch = Launch::from_start(&input, &flags(), Some("/env.ttrpc".into())).unwrap();
            assert_eq!(launch.bootstrap, None);
            assert_eq!(launch.ttrpc_address, "/env.ttrpc");
            assert_eq!(launch.socket_dir(), DEFAULT_SOCKET_DIR);
            assert_eq!(launch.start_reply("unix:///s/x"), b"unix:///s/x");
        }
    }

    #[test]
    fn params_for_another_shim_are_not_taken() {
        let other = BootstrapParams { instance_id: "c2".into(), ..params() };
        let launch = Launch::from_start(&other.encode_to_vec(), &flags(), Some("/env.ttrpc".into())).unwrap();
        assert_eq!(launch.bootstrap, None);
    }

    #[test]
    fn no_ttrpc_address_is_an_error() {
        assert!(Launch::from_start(&[], &flags(), None).unwrap_err().contains("TTRPC_ADDRESS"));
        let params = BootstrapParams { containerd_ttrpc_address: String::new(), ..params() };
        assert!(Launch::from_start(&params.encode_to_vec(), &flags(), None).is_err());
    }

    #[test]
    fn debug_raises_the_log_level() {
        let flags = StartFlags { debug: true, ..flags() };
        assert_eq!(Launch::from_start(&[], &flags, Some("/t".into())).unwrap().log_level, LOG_LEVEL_DEBUG);
    }

    #[test]
    fn the_launch_survives_the_environment() {
        let launch = Launch::from_start(&params().encode_to_vec(), &flags(), None).unwrap();
        let back: Launch = serde_json::from_str(&launch.to_env()).unwrap();
        assert_eq!(back, launch);
    }

    #[test]
    fn the_delegate_is_launched_as_containerd_launched_this_shim() {
        let options = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![0x3a, 1, b'r'] };
        let bootstrap = Launch::from_start(&params().encode_to_vec(), &flags(), None).unwrap();
        let input = bootstrap.delegate_input("c1", "k8s.io", "/run/c.sock", options.clone());
        let sent = BootstrapParams::decode(input.as_slice()).unwrap();
        assert_eq!(sent.instance_id, "c1");
        assert_eq!(sent.socket_dir.as_deref(), Some("/var/run/shims"));
        assert_eq!(sent.extensions, vec![Extension { value: Some(options.clone()) }]);
        let old = Launch::from_start(&[], &flags(), Some("/t".into())).unwrap();
        assert_eq!(
            Any::decode(old.delegate_input("c1", "k8s.io", "/run/c.sock", options.clone()).as_slice()),
            Ok(options)
        );
    }

    #[test]
    fn start_replies_are_read_on_every_line() {
        let v3 = BootstrapResult { version: 3, address: "unix:///run/s/abc".into(), protocol: "ttrpc".into() };
        let expected = Endpoint { address: "unix:///run/s/abc".into(), version: 3 };
        assert_eq!(parse_start_reply(&v3.encode_to_vec()), Ok(expected.clone()));
        let json = br#"{"version":3,"address":"unix:///run/s/abc","protocol":"ttrpc"}"#;
        assert_eq!(parse_start_reply(json), Ok(expected));
        let bare = parse_start_reply(b"unix:///run/containerd/s/0123456789abcdef\n").unwrap();
        assert_eq!(bare, Endpoint { address: "unix:///run/containerd/s/0123456789abcdef".into(), version: 2 });
        let grpc = BootstrapResult { protocol: "grpc".into(), ..v3.clone() };
        assert!(parse_start_reply(&grpc.encode_to_vec()).unwrap_err().contains("grpc"));
        let v4 = BootstrapResult { version: 4, ..v3 };
        assert!(parse_start_reply(&v4.encode_to_vec()).unwrap_err().contains("v4"));
        assert!(parse_start_reply(b"  \n").is_err());
    }
}
