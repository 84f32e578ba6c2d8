//! A CRI client that drives containerd the way a kubelet does for a pod with a
//! RuntimeClass: RunPodSandbox with a runtime handler, CreateContainer and StartContainer,
//! ExecSync. It remembers every pod it ran, so that `remove_pods` can stop and remove them
//! whatever happened in between.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StatusRequest, StopPodSandboxRequest, VersionRequest,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long one call may take: a hung shim must fail the test, not hang it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// ExecSync's own timeout, in seconds (CRI's unit).
const EXEC_TIMEOUT_SECS: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot connect to the CRI socket {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{call} {subject}: {} ({:?})", .status.message(), .status.code())]
    Call { call: &'static str, subject: String, status: tonic::Status },
}

pub type Result<T> = std::result::Result<T, CriError>;

/// The pod a test asks for.
pub struct PodSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The RuntimeClass's handler: a runtime name in containerd's CRI configuration.
    pub runtime_handler: &'a str,
    pub annotations: &'a [(&'a str, &'a str)],
}

/// A pod that runs: its sandbox id, and the configuration CreateContainer needs again.
pub struct Pod {
    pub id: String,
    config: PodSandboxConfig,
}

impl Pod {
    pub fn namespace(&self) -> &str {
        self.config.metadata.as_ref().map_or("", |m| m.namespace.as_str())
    }

    pub fn name(&self) -> &str {
        self.config.metadata.as_ref().map_or("", |m| m.name.as_str())
    }
}

/// What ExecSync returned for a command that ran.
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}, stdout {:?}, stderr {:?}", self.exit_code, self.stdout, self.stderr)
    }
}

pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// Every sandbox RunPodSandbox created, for `remove_pods`.
    pods: Vec<String>,
}

impl Cri {
    /// Connects to a CRI endpoint on a unix socket (containerd's grpc address) and asks
    /// for its version, so that a wrong socket fails here.
    pub async fn connect(socket: &Path) -> Result<(Self, String)> {
        let path = socket.to_owned();
        // The URI is required by tonic and ignored by the connector.
        let channel = Endpoint::from_static("http://localhost")
            .timeout(CALL_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|source| CriError::Connect { socket: socket.to_owned(), source })?;
        let mut cri = Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            pods: Vec::new(),
        };
        let version = cri
            .runtime
            .version(VersionRequest { version: String::new() })
            .await
            .map_err(|status| call("Version", socket.display(), status))?
            .into_inner();
        let version =
            format!("{} {}, CRI {}", version.runtime_name, version.runtime_version, version.runtime_api_version);
        Ok((cri, version))
    }

    /// The RuntimeReady condition of CRI's Status, which a kubelet needs before it runs
    /// any pod: whether it holds, and containerd's reason and message for it.
    pub async fn runtime_ready(&mut self) -> Result<(bool, String)> {
        let status = self
            .runtime
            .status(StatusRequest { verbose: false })
            .await
            .map_err(|status| call("Status", "of the runtime", status))?
            .into_inner();
        let condition = status.status.into_iter().flat_map(|s| s.conditions).find(|c| c.r#type == "RuntimeReady");
        Ok(match condition {
            Some(c) => (c.status, format!("RuntimeReady={} {} {}", c.status, c.reason, c.message)),
            None => (false, "Status has no RuntimeReady condition".to_owned()),
        })
    }

    /// Whether the CRI image service (containerd's k8s.io namespace) has IMAGE.
    pub async fn has_image(&mut self, image: &str) -> Result<bool> {
        let request = ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        let status = self.images.image_status(request).await.map_err(|status| call("ImageStatus", image, status))?;
        Ok(status.into_inner().image.is_some())
    }

    /// RunPodSandbox as a kubelet sends it, with the settings this machine needs: host
    /// network (there is no CNI), no hostname (a UTS namespace of its own would need one
    /// set by the runtime).
    pub async fn run_pod(&mut self, spec: &PodSpec<'_>) -> Result<Pod> {
        let uid = pod_uid();
        let labels = HashMap::from([
            ("io.kubernetes.pod.name".to_owned(), spec.name.to_owned()),
            ("io.kubernetes.pod.namespace".to_owned(), spec.namespace.to_owned()),
            ("io.kubernetes.pod.uid".to_owned(), uid.clone()),
        ]);
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: spec.name.to_owned(),
                uid,
                namespace: spec.namespace.to_owned(),
                attempt: 0,
            }),
            hostname: String::new(),
            labels,
            annotations: spec.annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node.into(),
                        pid: NamespaceMode::Container.into(),
                        ipc: NamespaceMode::Pod.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request =
            RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: spec.runtime_handler.to_owned() };
        let subject = format!("{}/{} (runtime handler {})", spec.namespace, spec.name, spec.runtime_handler);
        let id = self
            .runtime
            .run_pod_sandbox(request)
            .await
            .map_err(|status| call("RunPodSandbox", subject, status))?
            .into_inner()
            .pod_sandbox_id;
        self.pods.push(id.clone());
        Ok(Pod { id, config })
    }

    /// CreateContainer and StartContainer; returns the container's id.
    pub async fn start_container(&mut self, pod: &Pod, name: &str, image: &str, command: &[&str]) -> Result<String> {
        let metadata = pod.config.metadata.clone().unwrap_or_default();
        let labels = HashMap::from([
            ("io.kubernetes.container.name".to_owned(), name.to_owned()),
            ("io.kubernetes.pod.name".to_owned(), metadata.name.clone()),
            ("io.kubernetes.pod.namespace".to_owned(), metadata.namespace.clone()),
            ("io.kubernetes.pod.uid".to_owned(), metadata.uid.clone()),
        ]);
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_owned(), attempt: 0 }),
            image: Some(image_spec(image)),
            command: command.iter().map(|s| s.to_string()).collect(),
            labels,
            ..Default::default()
        };
        let subject = format!("{name} in pod {}/{}", metadata.namespace, metadata.name);
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let id = self
            .runtime
            .create_container(request)
            .await
            .map_err(|status| call("CreateContainer", &subject, status))?
            .into_inner()
            .container_id;
        self.runtime
            .start_container(StartContainerRequest { container_id: id.clone() })
            .await
            .map_err(|status| call("StartContainer", &subject, status))?;
        Ok(id)
    }

    /// ExecSync: runs COMMAND in the container and waits for it. An exec that runc could
    /// not start at all is an error of the call, not an exit code.
    pub async fn exec_sync(&mut self, container: &str, command: &[&str]) -> Result<ExecOutput> {
        let request = ExecSyncRequest {
            container_id: container.to_owned(),
            cmd: command.iter().map(|s| s.to_string()).collect(),
            timeout: EXEC_TIMEOUT_SECS,
        };
        let subject = format!("{command:?} in {container}");
        let output =
            self.runtime.exec_sync(request).await.map_err(|status| call("ExecSync", subject, status))?.into_inner();
        Ok(ExecOutput {
            exit_code: output.exit_code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// StopPodSandbox and RemovePodSandbox for every pod `run_pod` made, as a kubelet does
    /// when a pod is deleted (both stop and remove the pod's containers too). Goes on after
    /// a failure; returns every failure.
    pub async fn remove_pods(&mut self) -> Vec<CriError> {
        let mut errors = Vec::new();
        for id in std::mem::take(&mut self.pods) {
            let stopped = self.runtime.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.clone() }).await;
            if let Err(status) = stopped {
                errors.push(call("StopPodSandbox", &id, status));
            }
            let removed = self.runtime.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id.clone() }).await;
            if let Err(status) = removed {
                errors.push(call("RemovePodSandbox", &id, status));
            }
        }
        errors
    }

    /// The ids of every pod sandbox the runtime knows.
    pub async fn pod_ids(&mut self) -> Result<Vec<String>> {
        let pods = self
            .runtime
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
            .map_err(|status| call("ListPodSandbox", "", status))?
            .into_inner();
        Ok(pods.items.into_iter().map(|pod| pod.id).collect())
    }
}

fn call(call: &'static str, subject: impl fmt::Display, status: tonic::Status) -> CriError {
    CriError::Call { call, subject: subject.to_string(), status }
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec { image: image.to_owned(), annotations: HashMap::new() }
}

/// A fresh pod UID, shaped like the API server's UUIDs: unique enough for one machine.
fn pod_uid() -> String {
    let nanos = std::time::UNIX_EPOCH.elapsed().unwrap_or_default().as_nanos();
    format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}
