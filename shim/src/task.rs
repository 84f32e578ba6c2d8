//! The Task service containerd talks to: every RPC goes to the runc shim unchanged, and
//! Create first gives the container its seccomp rule and its agent socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim::asynchronous::publisher::RemotePublisher;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::ttrpc::{self, r#async::TtrpcContext};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::agent::{Agent, ContainerFacts};
use crate::alerting::{self, EventsSink};
use crate::config::{self, Selection, ShimConfig};
use crate::delegate::{self, ShimFlags, TaskClient};
use crate::metrics::{self, PodLabels};
use crate::reload::Reloader;
use crate::spec::{self, RootWatch, SpecPatch};
use execguard_alerts as alerts;
use execguard_seccomp::Gate;
use execguard_supervisor::{PolicySlot, Supervisor};

/// Where agent sockets live. Short on purpose: a unix socket path has at most 107 bytes,
/// and bundle paths alone come close to that.
const AGENT_DIR: &str = "/run/execguard";

/// What the shim runs for all containers of its pod.
struct Supervision {
    supervisor: Arc<Supervisor>,
    /// Alerts are delivered by threads of their own; they live as long as the shim.
    _dispatcher: alerts::Dispatcher,
    /// The pod's metrics file, removed when the shim exits.
    metrics_file: std::sync::OnceLock<PathBuf>,
}

/// A container created through this shim.
struct Container {
    /// Its agent: none for the pod's sandbox and for containers in mode off.
    _agent: Option<Agent>,
    bundle: PathBuf,
}

#[derive(Default)]
struct State {
    containers: HashMap<String, Container>,
    /// Containers whose runc shim died under them, with what its `delete` cleaned up and
    /// reported (see `runc_shim_exited`): this shim answers for them from then on.
    exited: HashMap<String, DeleteResponse>,
    /// One slot per distinct (policy, mode), shared by the containers that use it.
    policies: HashMap<Selection, Arc<PolicySlot>>,
}

pub struct ExecguardTask {
    flags: ShimFlags,
    /// The runc shim's client and its socket address.
    delegate: OnceCell<(TaskClient, String)>,
    supervision: OnceCell<Supervision>,
    /// Watches the policy files in use and the configuration.
    reloader: Arc<Reloader>,
    /// containerd's event stream, for the alert sink that publishes on it.
    publisher: Arc<RemotePublisher>,
    state: Arc<Mutex<State>>,
    /// Set once the runc shim died and its containers were cleaned up.
    runc_shim_gone: Arc<tokio::sync::watch::Sender<bool>>,
    exit: Arc<ExitSignal>,
    /// Set by the first Create: a shim that never gets one exits (see `exit_unless_used`).
    used: Arc<AtomicBool>,
}

/// How long an RPC that found the runc shim gone waits for its containers' cleanup (its
/// `delete`, which runs `runc delete --force`) before it reports the error it got.
const RUNC_SHIM_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The cleanup after the runc shim died: its `delete` for each container (which kills what
/// is left of it and unmounts its root file system), a TaskExit event for each, so that
/// containerd and the kubelet learn that it stopped, and its socket removed. From then on
/// this shim answers State, Wait, Kill and Delete for those containers itself, and exits
/// at the Shutdown after the last Delete as always.
struct RuncShimExit {
    pid: u32,
    binary: String,
    address: String,
    flags: ShimFlags,
    state: Arc<Mutex<State>>,
    publisher: Arc<RemotePublisher>,
    gone: Arc<tokio::sync::watch::Sender<bool>>,
}

impl RuncShimExit {
    async fn run(self) {
        let containers: Vec<(String, PathBuf)> =
            lock(&self.state).containers.iter().map(|(id, c)| (id.clone(), c.bundle.clone())).collect();
        if containers.is_empty() {
            // Its last container was deleted: the usual end, before this shim's own.
            tracing::debug!(pid = self.pid, "the runc shim exited");
            remove_socket(&self.address);
            self.gone.send_replace(true);
            return;
        }
        tracing::error!(
            pid = self.pid,
            containers = containers.len(),
            "the runc shim exited under running containers: they are stopped and reported as exited"
        );
        for (id, bundle) in containers {
            let response = match delegate::delete(&self.binary, &self.flags, &bundle, &id).await {
                Ok(response) => response,
                Err(error) => {
                    tracing::error!(container = %id, "{error}: its processes or mounts may be left");
                    // 128 + SIGKILL, as for a task whose shim was killed.
                    DeleteResponse {
                        exit_status: 137,
                        exited_at: Some(alerting::now()).into(),
                        ..DeleteResponse::default()
                    }
                }
            };
            let event = TaskExit {
                container_id: id.clone(),
                id: id.clone(),
                pid: response.pid,
                exit_status: response.exit_status,
                exited_at: response.exited_at.clone(),
                ..TaskExit::default()
            };
            let context = ttrpc::context::Context::default();
            if let Err(error) =
                self.publisher.publish(context, TASK_EXIT_TOPIC, &self.flags.namespace, Box::new(event)).await
            {
                tracing::error!(container = %id, %error, "cannot tell containerd that the container exited");
            }
            tracing::info!(container = %id, exit_status = response.exit_status, "cleaned up after the runc shim");
            lock(&self.state).exited.insert(id, response);
        }
        remove_socket(&self.address);
        self.gone.send_replace(true);
    }
}

const TASK_EXIT_TOPIC: &str = "/tasks/exit";

/// How long a new shim waits for its first Create. containerd sends it right after
/// `start`; a shim that has none by then serves a containerd that failed or gave up, and
/// nobody would ever stop it.
const FIRST_CREATE_TIMEOUT: Duration = Duration::from_secs(30);

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every update is a single insert or remove: a panic cannot leave it torn.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid(message: String) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(ttrpc::Code::INVALID_ARGUMENT, message))
}

fn internal(message: String) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(ttrpc::Code::INTERNAL, message))
}

fn context(ctx: &TtrpcContext) -> ttrpc::context::Context {
    ttrpc::context::Context { metadata: ctx.metadata.clone(), timeout_nano: ctx.timeout_nano }
}

/// The writable layer of an overlay root file system, from the Create request's mounts.
fn upper_dir(rootfs: &[Mount]) -> Option<PathBuf> {
    rootfs
        .iter()
        .filter(|m| m.type_ == "overlay")
        .flat_map(|m| m.options.iter())
        .find_map(|option| option.strip_prefix("upperdir=").map(PathBuf::from))
}

/// Where container `id`'s agent listens for the listener runc hands over.
pub(crate) fn agent_path(namespace: &str, id: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{namespace}/{id}").as_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    Path::new(AGENT_DIR).join(format!("{name}.sock"))
}

impl ExecguardTask {
    pub fn new(flags: ShimFlags, exit: Arc<ExitSignal>, publisher: RemotePublisher) -> ExecguardTask {
        let used = Arc::new(AtomicBool::new(false));
        tokio::spawn(exit_unless_used(used.clone(), exit.clone(), flags.socket.clone()));
        ExecguardTask {
            flags,
            delegate: OnceCell::new(),
            supervision: OnceCell::new(),
            reloader: Arc::default(),
            publisher: Arc::new(publisher),
            state: Arc::default(),
            runc_shim_gone: Arc::new(tokio::sync::watch::Sender::new(false)),
            exit,
            used,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The runc shim's client, starting that shim (`binary`, from the configuration that
    /// Create loaded) with the first container's bundle (it groups the pod's containers
    /// itself, by the sandbox id in the spec).
    async fn delegate(&self, binary: &str, req: &CreateTaskRequest) -> ttrpc::Result<&TaskClient> {
        self.delegate
            .get_or_try_init(|| async {
                let options = req.options.as_ref().cloned().unwrap_or_default();
                let started = delegate::start(binary, &self.flags, Path::new(&req.bundle), &req.id, &options)
                    .await
                    .map_err(internal)?;
                self.watch_runc_shim(&started.0, &req.id, &started.1, binary).await;
                Ok(started)
            })
            .await
            .map(|(client, _)| client)
    }

    /// Follows the runc shim's process: if it dies while it runs containers (killed, or
    /// crashed), nobody else would tell containerd, and the tasks would stay UNKNOWN with
    /// their processes, mounts and this shim left behind.
    async fn watch_runc_shim(&self, client: &TaskClient, id: &str, address: &str, binary: &str) {
        let request = ConnectRequest { id: id.to_string(), ..ConnectRequest::default() };
        let pid = match client.connect(ttrpc::context::Context::default(), &request).await {
            Ok(response) => response.shim_pid,
            Err(error) => {
                tracing::warn!(%error, "cannot learn the runc shim's pid: its death would go unnoticed");
                return;
            }
        };
        let exited = match delegate::exited(pid) {
            Ok(exited) => exited,
            Err(error) => {
                tracing::warn!(%error, pid, "cannot follow the runc shim's process: its death would go unnoticed");
                return;
            }
        };
        let cleanup = RuncShimExit {
            pid,
            binary: binary.to_string(),
            address: address.to_string(),
            flags: self.flags.clone(),
            state: self.state.clone(),
            publisher: self.publisher.clone(),
            gone: self.runc_shim_gone.clone(),
        };
        tokio::spawn(async move {
            if let Err(error) = exited.await {
                tracing::warn!(%error, pid, "lost track of the runc shim's process");
                return;
            }
            cleanup.run().await;
        });
    }

    /// What the runc shim's death left for a container, once it is cleaned up; waits for
    /// the cleanup if the runc shim is dying (its connection closed, `error`).
    async fn exited(&self, id: &str, error: ttrpc::Error) -> ttrpc::Result<DeleteResponse> {
        // An answer from the runc shim (an unknown exec, a stopped process) is its own:
        // only a lost connection can mean that it died.
        if matches!(error, ttrpc::Error::RpcStatus(_)) {
            return Err(error);
        }
        let mut gone = self.runc_shim_gone.subscribe();
        let settled = tokio::time::timeout(RUNC_SHIM_CLEANUP_TIMEOUT, gone.wait_for(|gone| *gone)).await;
        match self.state().exited.get(id) {
            Some(response) if matches!(settled, Ok(Ok(_))) => Ok(response.clone()),
            _ => Err(error),
        }
    }

    /// The delegate for RPCs other than Create, which always comes first.
    fn running_delegate(&self) -> ttrpc::Result<&TaskClient> {
        self.delegate.get().map(|(client, _)| client).ok_or_else(|| {
            ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::FAILED_PRECONDITION,
                "no container was created".to_string(),
            ))
        })
    }

    /// The pod's alert sinks as `config` says.
    fn alert_sinks(&self, config: &ShimConfig) -> Result<Vec<Box<dyn alerts::Sink>>, String> {
        let events = EventsSink::new(self.publisher.clone(), &self.flags.namespace, tokio::runtime::Handle::current());
        alerting::sinks(&config.alerts, Some(events))
    }

    /// The pod's supervisor and alert dispatcher, made at its first supervised Create with
    /// the configuration that Create loaded from `explicit` (or the default path), which
    /// is watched from then on: a changed file applies to the running pod.
    fn supervision(
        &self,
        config: &ShimConfig,
        explicit: Option<&Path>,
        pod: &PodLabels,
    ) -> Result<&Supervision, String> {
        if let Some(supervision) = self.supervision.get() {
            return Ok(supervision);
        }
        let (sender, dispatcher) =
            alerts::spawn(self.alert_sinks(config)?, config.repeat_window()).map_err(|e| e.to_string())?;
        let supervisor_config = execguard_supervisor::Config {
            deadline: config.deadline(),
            fail_action: config.fail_action()?,
            ..execguard_supervisor::Config::default()
        };
        let supervisor = Supervisor::new(supervisor_config, sender.clone()).map_err(|e| e.to_string())?;
        // Two Creates at once: the second's supervisor is dropped unused.
        let supervision =
            Supervision { supervisor: supervisor.clone(), _dispatcher: dispatcher, metrics_file: Default::default() };
        if self.supervision.set(supervision).is_ok() {
            let (publisher, namespace) = (self.publisher.clone(), self.flags.namespace.clone());
            let runtime = tokio::runtime::Handle::current();
            self.reloader.watch_config(
                explicit.map(Path::to_path_buf),
                Box::new(move |config: &ShimConfig| {
                    let events = EventsSink::new(publisher.clone(), &namespace, runtime.clone());
                    let sinks = alerting::sinks(&config.alerts, Some(events))?;
                    let fail_action = config.fail_action()?;
                    sender.configure(sinks, config.repeat_window());
                    supervisor.set_deadline(config.deadline(), fail_action);
                    Ok(())
                }),
            );
            tokio::spawn(self.reloader.clone().run());
            if let Some(supervision) = self.supervision.get() {
                self.start_metrics(supervision, config, pod);
            }
        }
        self.supervision.get().ok_or_else(|| "supervisor not set".to_string())
    }

    /// Metrics are not worth refusing a container for: a directory that cannot be
    /// written is logged, and the pod runs without its file.
    fn start_metrics(&self, supervision: &Supervision, config: &ShimConfig, pod: &PodLabels) {
        let dir = &config.metrics.textfile_dir;
        if dir.as_os_str().is_empty() {
            return;
        }
        match metrics::spawn_textfile(supervision.supervisor.clone(), dir, pod) {
            Ok(path) => {
                tracing::info!(file = %path.display(), "metrics");
                let _ = supervision.metrics_file.set(path);
            }
            Err(error) => tracing::warn!("{error}: the pod's metrics are not written"),
        }
    }

    fn policy_slot(&self, config: &ShimConfig, selection: &Selection) -> Result<Arc<PolicySlot>, String> {
        if let Some(slot) = self.state().policies.get(selection) {
            return Ok(slot.clone());
        }
        let policy = match &selection.policy {
            Some(path) => config.load_policy(path).map_err(|error| error.to_string()),
            None => config.base_policy().map_err(|error| error.to_string()),
        }?;
        let policy = policy.with_mode(selection.mode);
        let slot = PolicySlot::new(policy);
        if let Some(file) = selection.policy.clone().or_else(|| config.policy.clone()) {
            self.reloader.watch(file, selection.mode, slot.clone());
        }
        self.state().policies.insert(selection.clone(), slot.clone());
        Ok(slot)
    }

    /// Everything Create does before the runc shim sees the request: the configuration,
    /// the container's mode and policy, the spec patch and the agent. Nothing is left
    /// half-applied: the spec is only rewritten once everything else is known to be good.
    /// Returns the agent (none when the container is not supervised) and the runc shim
    /// binary of the configuration it loaded.
    fn prepare(&self, req: &mut CreateTaskRequest) -> Result<(Option<Agent>, String), String> {
        let explicit = match req.options.as_ref() {
            Some(options) => config::config_path(options).map_err(|e| format!("runtime options: {e}"))?,
            None => None,
        };
        let (config, origin) = ShimConfig::load(explicit.as_deref()).map_err(|e| e.to_string())?;
        tracing::debug!(config = %origin, "configuration");
        req.options = Some(delegate::runc_options(&config)?).into();
        delegate::record_binary(Path::new(&req.bundle), &config.delegate.binary)?;
        let agent = self.supervise(req, &config, explicit.as_deref())?;
        Ok((agent, config.delegate.binary))
    }

    /// The supervision part of [`ExecguardTask::prepare`].
    fn supervise(
        &self,
        req: &CreateTaskRequest,
        config: &ShimConfig,
        explicit: Option<&Path>,
    ) -> Result<Option<Agent>, String> {
        let bundle = Path::new(&req.bundle);
        let spec_path = bundle.join("config.json");
        let spec_text = std::fs::read(&spec_path).map_err(|e| format!("cannot read {}: {e}", spec_path.display()))?;
        let spec: serde_json::Value = serde_json::from_slice(&spec_text)
            .map_err(|e| format!("{} is not valid JSON: {e}", spec_path.display()))?;
        let annotations = spec::annotations(&spec);
        if annotations.get("io.kubernetes.cri.container-type").and_then(|v| v.as_str()) == Some("sandbox") {
            tracing::info!(container = %req.id, "the pod's sandbox container is not supervised");
            return Ok(None);
        }
        let base_policy_mode = || config.base_policy().map(|policy| policy.mode());
        let Some(selection) = config.resolve(&annotations, base_policy_mode).map_err(|e| e.to_string())? else {
            tracing::info!(container = %req.id, "execguard mode off: the container runs without a filter");
            return Ok(None);
        };
        let text = |key: &str| annotations.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let pod = PodLabels {
            containerd_namespace: self.flags.namespace.clone(),
            sandbox: text("io.kubernetes.cri.sandbox-id").unwrap_or_else(|| req.id.clone()),
            pod: text("io.kubernetes.cri.sandbox-namespace").zip(text("io.kubernetes.cri.sandbox-name")),
        };
        // The policy first: a container refused for it must not leave a supervisor behind.
        let slot = self.policy_slot(config, &selection)?;
        let supervisor = self.supervision(config, explicit, &pod)?.supervisor.clone();
        let path = agent_path(&self.flags.namespace, &req.id);
        // Enforce mode also guards each process's first network socket (seccomp::Gate).
        let enforce = slot.get().mode() == execguard_policy::Mode::Enforce;
        let gate = enforce.then_some(Gate { io_uring: !config.allow_io_uring });
        let patch = SpecPatch { listener_path: path.display().to_string(), gate };
        let root_changes = match patch.apply_to_bundle(bundle).map_err(|e| e.to_string())? {
            RootWatch::Reported => Some(Arc::default()),
            RootWatch::NotReported { syscall } => {
                tracing::info!(
                    container = %req.id,
                    syscall,
                    "the seccomp profile allows {syscall} under conditions: each exec's root is looked up on its own (slower)"
                );
                None
            }
        };
        let facts = ContainerFacts {
            id: req.id.clone(),
            upper_dir: upper_dir(&req.rootfs),
            root_changes,
            gate: gate.is_some(),
        };
        let agent = Agent::listen(&path, facts, supervisor, slot)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        let mode = selection.mode.map_or_else(|| "the policy's".to_string(), |m| m.to_string());
        let policy =
            selection.policy.as_ref().or(config.policy.as_ref()).map_or("embedded".into(), |p| p.display().to_string());
        tracing::info!(container = %req.id, %mode, %policy, "execs will be supervised");
        Ok(Some(agent))
    }
}

fn remove_socket(address: &str) {
    let path = address.trim_start_matches("unix://");
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, path, "cannot remove a shim socket");
        }
    }
}

/// Stops serving. This shim's socket goes first: the library removes the one named in
/// the first container's bundle, which containerd may have deleted by now.
fn exit(signal: &ExitSignal, socket: &str) {
    remove_socket(socket);
    signal.signal();
}

async fn exit_unless_used(used: Arc<AtomicBool>, signal: Arc<ExitSignal>, socket: String) {
    tokio::time::sleep(FIRST_CREATE_TIMEOUT).await;
    if !used.load(Ordering::SeqCst) {
        tracing::warn!("no container was created within {FIRST_CREATE_TIMEOUT:?} of start: exiting");
        exit(&signal, &socket);
    }
}

/// The Task service: the RPCs listed first need nothing from execguard and go straight
/// to the runc shim; the methods after them do execguard's part. (One macro writes the
/// whole impl because #[async_trait] must see every method expanded.)
macro_rules! task_service {
    ($($method:ident($request:ty) -> $response:ty;)* { $($own:item)* }) => {
        #[async_trait]
        impl Task for ExecguardTask {
            $(
                async fn $method(&self, ctx: &TtrpcContext, req: $request) -> ttrpc::Result<$response> {
                    self.running_delegate()?.$method(context(ctx), &req).await
                }
            )*
            $($own)*
        }
    };
}

task_service! {
    start(StartRequest) -> StartResponse;
    pids(PidsRequest) -> PidsResponse;
    pause(PauseRequest) -> Empty;
    resume(ResumeRequest) -> Empty;
    checkpoint(CheckpointTaskRequest) -> Empty;
    exec(ExecProcessRequest) -> Empty;
    resize_pty(ResizePtyRequest) -> Empty;
    close_io(CloseIORequest) -> Empty;
    update(UpdateTaskRequest) -> Empty;
    stats(StatsRequest) -> StatsResponse;
{
    async fn create(&self, ctx: &TtrpcContext, mut req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        self.used.store(true, Ordering::SeqCst);
        // Reading and compiling the policy and rewriting the bundle block: the worker gives
        // its other tasks to the runtime's other threads meanwhile (block_in_place borrows
        // `self` and `req`, which spawn_blocking's 'static closure could not).
        let (agent, binary) = tokio::task::block_in_place(|| self.prepare(&mut req)).map_err(|message| {
            tracing::error!(container = %req.id, "{message}");
            invalid(format!("execguard: {message}"))
        })?;
        let delegate = self.delegate(&binary, &req).await?;
        let response = delegate.create(context(ctx), &req).await?;
        let container = Container { _agent: agent, bundle: PathBuf::from(&req.bundle) };
        self.state().containers.insert(req.id.clone(), container);
        Ok(response)
    }

    async fn delete(&self, ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let response = match self.running_delegate()?.delete(context(ctx), &req).await {
            Ok(response) => response,
            Err(error) => self.exited(&req.id, error).await?,
        };
        if req.exec_id.is_empty() {
            // Dropping the agent removes its socket.
            let mut state = self.state();
            state.containers.remove(&req.id);
            state.exited.remove(&req.id);
        }
        Ok(response)
    }

    async fn state(&self, ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        match self.running_delegate()?.state(context(ctx), &req).await {
            Ok(response) => Ok(response),
            Err(error) => {
                let exited = self.exited(&req.id, error).await?;
                let bundle = self.state().containers.get(&req.id).map(|c| c.bundle.display().to_string());
                Ok(StateResponse {
                    id: req.id,
                    exec_id: req.exec_id,
                    bundle: bundle.unwrap_or_default(),
                    pid: exited.pid,
                    status: containerd_shim_protos::types::task::Status::STOPPED.into(),
                    exit_status: exited.exit_status,
                    exited_at: exited.exited_at,
                    ..StateResponse::default()
                })
            }
        }
    }

    async fn wait(&self, ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        match self.running_delegate()?.wait(context(ctx), &req).await {
            Ok(response) => Ok(response),
            Err(error) => {
                let exited = self.exited(&req.id, error).await?;
                Ok(WaitResponse { exit_status: exited.exit_status, exited_at: exited.exited_at, ..WaitResponse::default() })
            }
        }
    }

    async fn kill(&self, ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        match self.running_delegate()?.kill(context(ctx), &req).await {
            Ok(response) => Ok(response),
            // Its processes are gone already.
            Err(error) => self.exited(&req.id, error).await.map(|_| Empty::new()),
        }
    }

    async fn connect(&self, ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let mut response = self.running_delegate()?.connect(context(ctx), &req).await?;
        response.shim_pid = std::process::id();
        Ok(response)
    }

    async fn shutdown(&self, ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        if let Some((delegate, _)) = self.delegate.get() {
            // The runc shim exits once it has no container left; a closed connection
            // afterwards is expected.
            if let Err(error) = delegate.shutdown(context(ctx), &req).await {
                tracing::debug!(%error, "runc shim shutdown");
            }
        }
        if self.state().containers.is_empty() {
            tracing::info!("no container left: exiting");
            // The runc shim removes the socket named in the bundle's address file, which
            // names this shim: its own socket is this shim's to remove.
            if let Some((_, address)) = self.delegate.get() {
                remove_socket(address);
            }
            if let Some(file) = self.supervision.get().and_then(|s| s.metrics_file.get()) {
                if let Err(error) = std::fs::remove_file(file) {
                    tracing::warn!(%error, file = %file.display(), "cannot remove the metrics file");
                }
            }
            exit(&self.exit, &self.flags.socket);
        }
        Ok(Empty::new())
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_dir_comes_from_the_overlay_mount() {
        let overlay = Mount {
            type_: "overlay".into(),
            source: "overlay".into(),
            options: vec!["workdir=/w".into(), "upperdir=/var/lib/u/fs".into(), "lowerdir=/l".into()],
            ..Mount::default()
        };
        assert_eq!(upper_dir(&[overlay]), Some(PathBuf::from("/var/lib/u/fs")));
        assert_eq!(upper_dir(&[]), None);
    }

    #[test]
    fn agent_paths_fit_a_unix_socket() {
        let path = agent_path("k8s.io", &"f".repeat(64));
        assert!(path.as_os_str().len() < 100, "{}", path.display());
        assert_ne!(path, agent_path("default", &"f".repeat(64)));
    }
}
