//! The containerd runtime shim v2 `containerd-shim-execguard-v2` (runtime type
//! `io.containerd.execguard.v2`).
//!
//! It wraps the stock `containerd-shim-runc-v2` rather than re-implementing it: it starts
//! one runc shim for its pod with the same namespace, containerd address and publish
//! binary, and forwards every Task RPC to it unchanged, so exec, attach, logs, stats and
//! events behave as users know them. Its own work is in Create: the container's spec gets a
//! seccomp rule that sends execve and execveat to an agent socket of this shim, and every
//! seccomp listener runc hands over there (the container's init, each exec session) is
//! supervised. Containers of one pod share one execguard shim and one runc shim, grouped
//! like the runc shim groups them (`io.kubernetes.cri.sandbox-id`).
//!
//! Not here: how an exec is inspected and decided (`execguard-supervisor`,
//! `execguard-policy`), what the filter is made of (`execguard-seccomp`, whose table the
//! spec patch takes its syscall names from), where alerts go (`execguard-alerts`), and
//! installation into containerd (the `execguard` CLI, so that its TOML editing is never
//! linked into this binary).

pub mod agent;
pub mod config;
pub mod delegate;
pub mod reload;
pub mod spec;
pub mod task;

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::asynchronous::{publisher::RemotePublisher, spawn, ExitSignal, Shim};
use containerd_shim::{Config, Flags, StartOpts};
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use config::ShimConfig;
use delegate::ShimFlags;
use task::ExecguardTask;

pub const RUNTIME_ID: &str = "io.containerd.execguard.v2";

pub struct ExecguardShim {
    flags: ShimFlags,
    id: String,
    bundle: String,
    exit: Arc<ExitSignal>,
}

fn shim_error(message: String) -> containerd_shim::Error {
    containerd_shim::Error::Other(message)
}

/// The pod this container belongs to, as the runc shim groups containers.
fn grouping(id: &str) -> String {
    let spec =
        std::fs::read("config.json").ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    spec.as_ref()
        .and_then(|spec| spec["annotations"]["io.kubernetes.cri.sandbox-id"].as_str())
        .unwrap_or(id)
        .to_string()
}

#[async_trait]
impl Shim for ExecguardShim {
    type T = ExecguardTask;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let publish_binary = if args.publish_binary.is_empty() {
            std::env::var(delegate::PUBLISH_BINARY_ENV).unwrap_or_default()
        } else {
            args.publish_binary.clone()
        };
        ExecguardShim {
            flags: ShimFlags {
                namespace: args.namespace.clone(),
                address: args.address.clone(),
                publish_binary,
                debug: args.debug,
                socket: args.socket.clone(),
            },
            id: args.id.clone(),
            bundle: args.bundle.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        // Not the runc shim's grouping key itself: both shims would hash to one socket.
        let grouping = format!("{}-execguard", grouping(&opts.id));
        let publish_binary = opts.publish_binary.clone();
        let address = spawn(opts, &grouping, vec![(delegate::PUBLISH_BINARY_ENV, publish_binary.as_str())]).await?;
        std::fs::write("address", &address).map_err(|e| shim_error(format!("cannot write the address file: {e}")))?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = match self.bundle.as_str() {
            "" => std::env::current_dir().map_err(|e| shim_error(format!("no bundle: {e}")))?.display().to_string(),
            bundle => bundle.to_string(),
        };
        let bundle = std::path::Path::new(&bundle);
        let binary = match delegate::recorded_binary(bundle) {
            Some(binary) => binary,
            // Create never ran for this bundle: the default configuration is all there is.
            None => ShimConfig::load(None).map_err(|e| shim_error(e.to_string()))?.0.delegate.binary,
        };
        let output = delegate::delete(&binary, &self.flags, bundle, &self.id).await.map_err(shim_error)?;
        DeleteResponse::parse_from_bytes(&output).map_err(|e| shim_error(format!("the runc shim's delete answer: {e}")))
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, _publisher: RemotePublisher) -> Self::T {
        // Task events are published by the runc shim itself, to the same containerd.
        ExecguardTask::new(self.flags.clone(), self.exit.clone())
    }
}
