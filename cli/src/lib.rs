//! The work behind the `execguard` command line: `execguard run` (a command tree under the
//! supervisor, without containers), `policy eval` (a policy tried on recorded events),
//! `install`/`uninstall containerd` (editing containerd's configuration), and `metrics` and
//! `alerts` (what the node's shims counted and reported).
//!
//! `main.rs` only parses arguments and calls in here. The installer lives in this crate,
//! not in the shim's, so that the TOML editing and diffing it needs are never linked into
//! the shim that runs in every pod.

pub mod alerts;
pub mod eval;
pub mod install;
pub mod metrics;
pub mod run;
