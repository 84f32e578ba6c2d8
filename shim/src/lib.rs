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
pub mod alerting;
pub mod cleanup;
pub mod config;
pub mod delegate;
pub mod last_good;
pub mod launch;
pub mod metrics;
pub mod reload;
pub mod spec;
pub mod task;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim::asynchronous::{publisher::RemotePublisher, ExitSignal, Shim};
use containerd_shim::{Config, Flags, StartOpts};
use containerd_shim_protos::api::DeleteResponse;
use sha2::{Digest, Sha256};

use delegate::ShimFlags;
use launch::{Launch, StartFlags};
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

/// How long `start` waits for the serving process it spawned to listen.
const SERVE_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `start` action, run by containerd in the container's bundle: makes sure a serving
/// shim listens for the container's pod and returns what containerd must read on
/// stdout. A failed start leaves no process and no socket behind.
pub fn start(flags: &Flags) -> Result<Vec<u8>, String> {
    let start_flags = StartFlags {
        id: flags.id.clone(),
        namespace: flags.namespace.clone(),
        address: flags.address.clone(),
        publish_binary: flags.publish_binary.clone(),
        debug: flags.debug,
    };
    let input = launch::read_start_input()?;
    let launch = Launch::from_start(&input, &start_flags, std::env::var(launch::TTRPC_ADDRESS_ENV).ok())?;
    // Not the runc shim's grouping key itself: both shims would hash to one socket.
    let grouping = format!("{}-execguard", grouping(&flags.id));
    let digest = Sha256::digest(format!("{}/{}/{grouping}", flags.address, flags.namespace).as_bytes());
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let socket = Path::new(launch.socket_dir()).join(name);
    let address = format!("unix://{}", socket.display());
    // A later container of the pod: its shim already serves.
    if UnixStream::connect(&socket).is_err() {
        let child =
            spawn_server(flags, &launch, &address).map_err(|e| format!("cannot start the serving shim: {e}"))?;
        if let Err(error) = await_server(child, &socket) {
            // Whatever is at that path now is dead: the server bound it, or a killed
            // shim of this pod left it.
            let _ = std::fs::remove_file(&socket);
            return Err(error);
        }
    }
    // containerd 1.x reconnects after a restart through the bundle's address file (2.x
    // through the bootstrap.json it writes itself).
    std::fs::write("address", &address).map_err(|e| format!("cannot write the bundle's address file: {e}"))?;
    Ok(launch.start_reply(&address))
}

fn spawn_server(flags: &Flags, launch: &Launch, address: &str) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.args(["-namespace", &flags.namespace, "-id", &flags.id, "-address", &flags.address, "-socket", address]);
    if flags.debug || launch.log_level <= launch::LOG_LEVEL_DEBUG {
        command.arg("-debug");
    }
    command
        .env(launch::LAUNCH_ENV, launch.to_env())
        .env(launch::TTRPC_ADDRESS_ENV, &launch.ttrpc_address)
        // containerd reads start's stdout and stderr to their end: the server must hold
        // neither. It says it listens by closing its stdout (the shim library's
        // signal_server_started) and logs to the bundle's log fifo.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, as containerd's runc shim: a signal to containerd's
        // group (a terminal's Ctrl-C) must not take the pod's shim along.
        .process_group(0);
    command.spawn()
}

/// Waits until the spawned server listens at `socket`; kills it when it does not.
fn await_server(mut child: Child, socket: &Path) -> Result<(), String> {
    let ready = match child.stdout.take() {
        Some(mut stdout) => {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || sender.send(stdout.read_to_end(&mut Vec::new())));
            receiver.recv_timeout(SERVE_READY_TIMEOUT).is_ok()
        }
        None => false,
    };
    let outcome = match (ready, child.try_wait()) {
        (_, Ok(Some(status))) => {
            Err(format!("the serving shim exited ({status}) before it listened; see containerd's log"))
        }
        (false, _) => Err(format!("the serving shim did not listen within {SERVE_READY_TIMEOUT:?}")),
        (true, _) => match UnixStream::connect(socket) {
            Ok(_) => containerd_shim::cgroup::adjust_oom_score(child.id())
                .map_err(|e| format!("cannot set the serving shim's OOM score: {e}")),
            Err(error) => Err(format!("the serving shim does not answer on {}: {error}", socket.display())),
        },
    };
    if outcome.is_err() {
        // Killing an exited child fails harmlessly; waiting reaps it either way.
        let _ = child.kill();
        let _ = child.wait();
    }
    outcome
}

#[async_trait]
impl Shim for ExecguardShim {
    type T = ExecguardTask;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let mut launch = Launch::from_env();
        if !args.publish_binary.is_empty() {
            launch.publish_binary = args.publish_binary.clone();
        }
        ExecguardShim {
            flags: ShimFlags {
                namespace: args.namespace.clone(),
                address: args.address.clone(),
                debug: args.debug,
                socket: args.socket.clone(),
                launch,
            },
            id: args.id.clone(),
            bundle: args.bundle.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, _opts: StartOpts) -> containerd_shim::Result<String> {
        // The library's start reads containerd 1.x's stdin only and leaves its server
        // behind when it fails: main runs this crate's `start` instead.
        Err(shim_error("`start` is handled by execguard_shim::start".into()))
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = match self.bundle.as_str() {
            "" => std::env::current_dir().map_err(|e| shim_error(format!("no bundle: {e}")))?.display().to_string(),
            bundle => bundle.to_string(),
        };
        cleanup::delete(&self.flags, &self.id, std::path::Path::new(&bundle)).await.map_err(shim_error)
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        // Task events are published by the runc shim itself, to the same containerd; this
        // publisher carries the alerts.
        ExecguardTask::new(self.flags.clone(), self.exit.clone(), publisher)
    }
}
