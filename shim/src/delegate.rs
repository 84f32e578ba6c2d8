//! The stock runc shim that really runs the containers, driven through its own command
//! line (`start`, `delete`, `-info`) exactly as containerd would drive it, and its Task
//! service at the version its `start` announced: v2 from containerd 1.x's runc shim, v3
//! from 2.x's, which serves nothing else. The two differ only in the service's name.

use std::path::Path;
use std::process::Stdio;

use containerd_shim_protos::api::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, CodedOutputStream, Message};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::config::ShimConfig;
use crate::launch::{self, Endpoint, Launch};

/// What containerd told this shim about itself, passed on to the runc shim.
#[derive(Debug, Clone, Default)]
pub struct ShimFlags {
    pub namespace: String,
    pub address: String,
    pub debug: bool,
    /// This shim's own ttrpc socket.
    pub socket: String,
    pub launch: Launch,
}

const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

/// The runc shim's runtime options (for Create, and for its `start` and `-info`), from
/// the configuration.
pub fn runc_options(config: &ShimConfig) -> Result<Any, String> {
    let options = RuncOptions {
        systemd_cgroup: config.delegate.systemd_cgroup,
        binary_name: config.delegate.binary_name.clone(),
        root: config.delegate.root.clone(),
        ..RuncOptions::default()
    };
    let value = options.write_to_bytes().map_err(|e| e.to_string())?;
    Ok(Any { type_url: RUNC_OPTIONS_TYPE.into(), value, ..Any::default() })
}

/// The file in a container's bundle that names the runc shim binary its Create used.
/// `delete` runs as a process of its own, with no runtime options: without this record
/// it would read the default configuration, not the one that ConfigPath named.
const RECORDED_BINARY: &str = "execguard-delegate";

/// Records which runc shim binary serves the bundle's container.
pub fn record_binary(bundle: &Path, binary: &str) -> Result<(), String> {
    let path = bundle.join(RECORDED_BINARY);
    std::fs::write(&path, binary).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The file in a container's bundle that names the runc shim's socket and the task API
/// version it serves, for the cleanup after this shim died (`death`).
const RECORDED_ENDPOINT: &str = "execguard-delegate-endpoint";

/// The runc shim's socket and version, as its start recorded them in `bundle`.
pub fn recorded_endpoint(bundle: &Path) -> Option<Endpoint> {
    let text = std::fs::read_to_string(bundle.join(RECORDED_ENDPOINT)).ok()?;
    let (version, address) = text.trim().split_once(' ')?;
    Some(Endpoint { version: version.parse().ok()?, address: address.to_string() })
}

/// Connects to the runc shim's Task service.
pub async fn connect(endpoint: &Endpoint) -> Result<TaskClient, String> {
    let client = ttrpc::r#async::Client::connect(&endpoint.address)
        .await
        .map_err(|e| format!("cannot connect to the runc shim at {}: {e}", endpoint.address))?;
    let service = if endpoint.version == 3 { "containerd.task.v3.Task" } else { "containerd.task.v2.Task" };
    Ok(TaskClient { client, service })
}

/// The runc shim binary that Create recorded in the bundle, if it recorded one.
pub fn recorded_binary(bundle: &Path) -> Option<String> {
    let binary = std::fs::read_to_string(bundle.join(RECORDED_BINARY)).ok()?;
    (!binary.is_empty()).then_some(binary)
}

fn base_command(binary: &str, flags: &ShimFlags, id: &str) -> Command {
    let mut command = Command::new(binary);
    command.args(["-namespace", &flags.namespace, "-id", id, "-address", &flags.address]);
    if !flags.launch.publish_binary.is_empty() {
        command.args(["-publish-binary", &flags.launch.publish_binary]);
    }
    if flags.debug {
        command.arg("-debug");
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Runs one of the runc shim's commands, with `input` on its stdin, and returns what it
/// printed.
async fn output(binary: &str, mut command: Command, verb: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    if !input.is_empty() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().map_err(|e| format!("cannot run {binary}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A shim that does not read its stdin closes it: its answer says the rest.
        let _ = stdin.write_all(input).await;
    }
    let output = child.wait_with_output().await.map_err(|e| format!("cannot run {binary}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{binary} {verb} failed ({}): {}", output.status, stderr.trim()));
    }
    Ok(output.stdout)
}

/// Starts (or finds, for a later container of the same pod) the runc shim, launched as
/// containerd launched this shim, and connects to its Task service. It reads the
/// bundle's config.json for the pod grouping.
pub async fn start(
    binary: &str,
    flags: &ShimFlags,
    bundle: &Path,
    id: &str,
    options: &Any,
) -> Result<(TaskClient, String), String> {
    let mut command = base_command(binary, flags, id);
    command.current_dir(bundle).arg("start");
    let options = launch::Any { type_url: options.type_url.clone(), value: options.value.clone() };
    let input = flags.launch.delegate_input(id, &flags.namespace, &flags.address, options);
    let reply = output(binary, command, "start", &input).await?;
    let endpoint = launch::parse_start_reply(&reply).map_err(|e| format!("{binary} start: {e}"))?;
    // The runc shim of containerd 1.x wrote its own address into the bundle; containerd
    // reads that file to reconnect after a restart, and must find this shim there.
    if !flags.socket.is_empty() {
        std::fs::write(bundle.join("address"), &flags.socket)
            .map_err(|e| format!("cannot write {}: {e}", bundle.join("address").display()))?;
    }
    let path = bundle.join(RECORDED_ENDPOINT);
    std::fs::write(&path, format!("{} {}", endpoint.version, endpoint.address))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let client = connect(&endpoint).await?;
    tracing::info!(address = %endpoint.address, version = endpoint.version, "runc shim started");
    Ok((client, endpoint.address))
}

/// Runs the runc shim's `delete` (containerd's cleanup after a shim died) and returns its
/// answer.
pub async fn delete(binary: &str, flags: &ShimFlags, bundle: &Path, id: &str) -> Result<DeleteResponse, String> {
    let mut command = base_command(binary, flags, id);
    command.current_dir(bundle).args(["-bundle", &bundle.display().to_string(), "delete"]);
    let output = output(binary, command, "delete", &[]).await?;
    DeleteResponse::parse_from_bytes(&output).map_err(|e| format!("the runc shim's delete answer: {e}"))
}

/// Resolves when process `pid` (the runc shim) has exited. A pidfd rather than polling
/// the pid: it names this process and no later one that reuses the number, and it becomes
/// readable when the process exits (pidfd_open(2), Linux 5.3).
pub fn exited(pid: u32) -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let fd = execguard_seccomp::pidfd_open(pid)?;
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until dropped.
    let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
    Ok(async move {
        fd.readable().await?.retain_ready();
        Ok(())
    })
}

/// The runc shim's Task service under the name of the version it serves.
#[derive(Clone)]
pub struct TaskClient {
    client: ttrpc::r#async::Client,
    service: &'static str,
}

/// One forwarding method per RPC: the request goes out under `self.service`, through
/// ttrpc's own client code.
macro_rules! task_client {
    ($($method:ident($request:ty) -> $response:ty = $rpc:literal;)*) => {
        impl TaskClient {
            $(
                pub async fn $method(&self, ctx: ttrpc::context::Context, req: &$request) -> ttrpc::Result<$response> {
                    let mut cres = <$response>::new();
                    ttrpc::async_client_request!(self, ctx, req, self.service, $rpc, cres);
                }
            )*
        }
    };
}

task_client! {
    state(StateRequest) -> StateResponse = "State";
    create(CreateTaskRequest) -> CreateTaskResponse = "Create";
    start(StartRequest) -> StartResponse = "Start";
    delete(DeleteRequest) -> DeleteResponse = "Delete";
    pids(PidsRequest) -> PidsResponse = "Pids";
    pause(PauseRequest) -> Empty = "Pause";
    resume(ResumeRequest) -> Empty = "Resume";
    checkpoint(CheckpointTaskRequest) -> Empty = "Checkpoint";
    kill(KillRequest) -> Empty = "Kill";
    exec(ExecProcessRequest) -> Empty = "Exec";
    resize_pty(ResizePtyRequest) -> Empty = "ResizePty";
    close_io(CloseIORequest) -> Empty = "CloseIO";
    update(UpdateTaskRequest) -> Empty = "Update";
    wait(WaitRequest) -> WaitResponse = "Wait";
    stats(StatsRequest) -> StatsResponse = "Stats";
    connect(ConnectRequest) -> ConnectResponse = "Connect";
    shutdown(ShutdownRequest) -> Empty = "Shutdown";
}
