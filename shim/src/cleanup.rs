//! `delete`: containerd's cleanup of a container whose shim died (SIGKILL, a crash, the
//! OOM killer) or never served it (a failed start or Create).
//!
//! What a dead execguard shim leaves: the runc shim, which is not its child, still runs
//! the container, and the container's seccomp filter has lost its listener, so the kernel
//! fails every exec of the container with ENOSYS (seccomp_unotify(2): once the listener
//! is closed, notifying filters return ENOSYS) while everything else keeps running. The
//! listener cannot be given back to a new shim: it is made once, when the filter is
//! installed in the container's first process, and only this shim held it. So supervision
//! is not resumed; the container is stopped, and started again by whoever runs it (the
//! kubelet, by the pod's restart policy). containerd runs this cleanup as soon as it sees
//! the shim's connection close, which bounds how long a container stays in that state.
//!
//! The cleanup stops the container through the runc shim (kill, wait, Delete, Shutdown: as
//! a normal delete would end, so the runc shim exits once its last container is gone), or,
//! when that shim is gone too, runs its `delete` command. When the container was
//! supervised it says so in containerd's log (this command's standard error, which
//! containerd logs as "cleanup warnings") and on containerd's event stream (topic
//! [`SUPERVISION_LOST_TOPIC`]), and removes the agent socket and the metrics file the
//! dead shim left.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use containerd_shim_protos::api::{DeleteRequest, DeleteResponse, KillRequest, ShutdownRequest, WaitRequest};
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::EventsClient;
use containerd_shim_protos::ttrpc::context::Context;

use crate::alerting;
use crate::config::ShimConfig;
use crate::delegate::{self, ShimFlags};
use crate::launch::Endpoint;
use crate::metrics::PodLabels;

pub const SUPERVISION_LOST_TOPIC: &str = "/execguard/supervision-lost";
const SUPERVISION_LOST_MEDIA_TYPE: &str = "application/vnd.execguard.supervision-lost.v1+json";

/// How long the container's processes may take to die after SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Cleans up container `id` of `bundle`, and returns what containerd reports as its exit.
pub async fn delete(flags: &ShimFlags, id: &str, bundle: &Path) -> Result<DeleteResponse, String> {
    let agent = crate::task::agent_path(&flags.namespace, id);
    let supervised = agent.exists();
    let stopped = match delegate::recorded_endpoint(bundle) {
        Some(endpoint) => stop(&endpoint, id).await,
        None => Err("no runc shim was recorded for it".to_string()),
    };
    let response = match stopped {
        Ok(response) => response,
        Err(reason) => {
            tracing::debug!(container = id, "{reason}: running the runc shim's delete");
            runc_shim_delete(flags, id, bundle).await?
        }
    };
    // Named in the bundle's `address` file (as the runc shim of containerd 1.x did there).
    if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
        remove_dead_socket(address.trim()).await;
    }
    if supervised {
        report_lost_supervision(flags, id).await;
        let _ = std::fs::remove_file(&agent);
        remove_metrics_file(flags, id, bundle);
    }
    Ok(response)
}

/// Stops the container through its running runc shim, as a normal delete would end.
async fn stop(endpoint: &Endpoint, id: &str) -> Result<DeleteResponse, String> {
    let client = delegate::connect(endpoint).await?;
    let context = Context::default;
    let kill = KillRequest { id: id.to_string(), signal: 9, all: true, ..KillRequest::default() };
    // An error here is a container that has stopped already: Wait and Delete tell.
    let _ = client.kill(context(), &kill).await;
    let wait = WaitRequest { id: id.to_string(), ..WaitRequest::default() };
    if tokio::time::timeout(STOP_TIMEOUT, client.wait(context(), &wait)).await.is_err() {
        return Err(format!("container {id} did not stop within {STOP_TIMEOUT:?} of SIGKILL"));
    }
    let delete = DeleteRequest { id: id.to_string(), ..DeleteRequest::default() };
    let response = client.delete(context(), &delete).await.map_err(|e| format!("the runc shim's Delete: {e}"))?;
    // The runc shim exits once it serves no container; a closed connection is that exit.
    let _ = client.shutdown(context(), &ShutdownRequest { id: id.to_string(), ..ShutdownRequest::default() }).await;
    // It leaves its socket to the shim that started it, which is dead.
    remove_dead_socket(&endpoint.address).await;
    Ok(response)
}

async fn runc_shim_delete(flags: &ShimFlags, id: &str, bundle: &Path) -> Result<DeleteResponse, String> {
    let binary = match delegate::recorded_binary(bundle) {
        Some(binary) => binary,
        // Create never ran for this bundle: the default configuration is all there is.
        None => ShimConfig::load(None).map_err(|e| e.to_string())?.0.delegate.binary,
    };
    delegate::delete(&binary, flags, bundle, id).await
}

async fn report_lost_supervision(flags: &ShimFlags, id: &str) {
    let reason = "the execguard shim exited before the container did (killed, or crashed): the container lost \
                  its exec supervision (its execs failed with ENOSYS since), so it was stopped; a new shim cannot \
                  take the seccomp listener back, so the container must be started again";
    // containerd logs this command's standard error as a warning.
    eprintln!("execguard: container {id}: {reason}");
    let json = serde_json::json!({ "container": id, "namespace": flags.namespace, "reason": reason }).to_string();
    let annotations = HashMap::from([
        ("execguard.dev/event-action".to_string(), "supervision-lost".to_string()),
        ("execguard.dev/container".to_string(), id.to_string()),
        ("execguard.dev/reason".to_string(), reason.to_string()),
    ]);
    let envelope = alerting::descriptor_envelope(
        SUPERVISION_LOST_TOPIC,
        &flags.namespace,
        SUPERVISION_LOST_MEDIA_TYPE,
        &json,
        annotations,
    );
    let address = &flags.launch.ttrpc_address;
    // ttrpc wants a scheme; containerd passes a path.
    let endpoint = if address.contains("://") { address.clone() } else { format!("unix://{address}") };
    let published = async {
        let client =
            containerd_shim_protos::ttrpc::r#async::Client::connect(&endpoint).await.map_err(|e| e.to_string())?;
        let mut request = ForwardRequest::new();
        request.set_envelope(envelope);
        EventsClient::new(client).forward(Context::default(), &request).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(5), published).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => eprintln!("execguard: cannot publish {SUPERVISION_LOST_TOPIC} on {address}: {error}"),
        Err(_) => eprintln!("execguard: publishing {SUPERVISION_LOST_TOPIC} on {address} timed out"),
    }
}

/// Removes a shim's socket once nothing answers on it (within a second: a shim told to
/// shut down may still be exiting). One that still serves, say other containers of the
/// pod, keeps it.
async fn remove_dead_socket(address: &str) {
    let mut answered = true;
    for _ in 0..10 {
        answered = containerd_shim_protos::ttrpc::r#async::Client::connect(address).await.is_ok();
        if !answered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if answered {
        return;
    }
    let path = address.trim_start_matches("unix://");
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            eprintln!("execguard: cannot remove the dead shim's socket {path}: {error}");
        }
    }
}

/// The dead shim's metrics file, named by its pod (read from the bundle's config.json) in
/// the directory of the node's configuration.
fn remove_metrics_file(flags: &ShimFlags, id: &str, bundle: &Path) {
    let Ok((config, _)) = ShimConfig::load(None) else { return };
    let spec = std::fs::read(bundle.join("config.json")).ok().and_then(|t| serde_json::from_slice(&t).ok());
    let sandbox = spec
        .as_ref()
        .and_then(|spec| crate::spec::annotations(spec).get("io.kubernetes.cri.sandbox-id").cloned())
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_else(|| id.to_string());
    let labels = PodLabels { containerd_namespace: flags.namespace.clone(), sandbox, pod: None };
    let _ = std::fs::remove_file(config.metrics.textfile_dir.join(labels.file_name()));
}
