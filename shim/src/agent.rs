//! The seccomp agent socket of one container (its spec's `linux.seccomp.listenerPath`).
//!
//! runc connects once when it starts the container and once more for every exec session
//! (`ctr task exec`, CRI ExecSync, `kubectl exec`), each time with a new seccomp listener:
//! it sends one JSON document (the container process state: `fds: ["seccompFd"]`, `pid`,
//! `metadata`, `state` with id, bundle and annotations) together with the fd
//! (SCM_RIGHTS). runc never closes the connection afterwards, so the state is read until
//! the bytes parse as one JSON value, never until EOF.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use execguard_policy::event::{Container, Image, Orchestrator, Resource};
use serde_json::Value;
use tokio::net::UnixListener;

use execguard_seccomp::{recv_with_fd, NotifyFd};
use execguard_supervisor::inspect::{RootChanges, Scope};
use execguard_supervisor::{PolicySlot, Supervisor};

/// How long runc may take to send its state once connected.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// A state document is a few kilobytes (the annotations); anything past this is not runc.
const MAX_STATE: usize = 1024 * 1024;

/// What the agent knows of its container before runc says more.
#[derive(Debug, Clone)]
pub struct ContainerFacts {
    pub id: String,
    pub upper_dir: Option<PathBuf>,
    /// Shared by every filter of the container when its profile reports root changes.
    pub root_changes: Option<Arc<RootChanges>>,
    /// The spec sends network sockets to the supervisor (enforce mode's socket gate).
    pub gate: bool,
}

/// A listening agent socket. Dropping it stops accepting and removes the socket file;
/// filters already handed to the supervisor keep being served until their processes exit.
pub struct Agent {
    path: PathBuf,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.accepting.abort();
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), %error, "agent socket already gone");
        }
    }
}

impl Agent {
    /// Listens on `path` (replacing a stale socket left by a crashed shim).
    pub fn listen(
        path: &Path,
        facts: ContainerFacts,
        supervisor: Arc<Supervisor>,
        policy: Arc<PolicySlot>,
    ) -> io::Result<Agent> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        let facts = Arc::new(facts);
        let span = tracing::debug_span!("agent", container = %facts.id);
        let accepting = tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            let (facts, supervisor, policy) = (facts.clone(), supervisor.clone(), policy.clone());
                            tokio::spawn(async move {
                                if let Err(error) = take_listener(stream, &facts, &supervisor, policy).await {
                                    tracing::error!(%error, "a runc connection brought no usable seccomp listener; execs of that process fail with ENOSYS");
                                }
                            });
                        }
                        Err(error) => {
                            tracing::error!(%error, "cannot accept on the agent socket");
                            return;
                        }
                    }
                }
            },
            span,
        ));
        Ok(Agent { path: path.to_path_buf(), accepting })
    }
}

async fn take_listener(
    stream: tokio::net::UnixStream,
    facts: &ContainerFacts,
    supervisor: &Arc<Supervisor>,
    policy: Arc<PolicySlot>,
) -> io::Result<()> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STATE_TIMEOUT))?;
    let (state, fd) = tokio::task::spawn_blocking(move || read_state(&stream)).await??;
    let scope = scope(&state, facts);
    tracing::info!(pid = state["pid"].as_u64().unwrap_or(0), "supervising a new process of the container");
    supervisor.supervise(NotifyFd::from_owned(fd), scope, policy)?;
    Ok(())
}

/// Reads runc's state document and the listener fd that comes with it.
fn read_state(stream: &std::os::unix::net::UnixStream) -> io::Result<(Value, OwnedFd)> {
    let mut received = Vec::new();
    let mut listener = None;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let (n, fd) = recv_with_fd(stream.as_fd(), &mut chunk)?;
        listener = listener.or(fd);
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "runc closed the connection before its state"));
        }
        received.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(state) = parse_state(&received)? {
            let listener =
                listener.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no fd came with the state"))?;
            return Ok((state, listener));
        }
    }
}

/// runc's state document from the bytes received so far: `None` while they are the start
/// of one JSON value (more is coming: runc keeps the connection open), an error when they
/// cannot become one or pass [`MAX_STATE`]. Public for the fuzz harness (fuzz/): these
/// bytes come from whoever can connect to the socket.
pub fn parse_state(received: &[u8]) -> io::Result<Option<Value>> {
    match serde_json::from_slice::<Value>(received) {
        Ok(state) => Ok(Some(state)),
        Err(error) if error.is_eof() && received.len() < MAX_STATE => Ok(None),
        Err(error) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("runc's state: {error}"))),
    }
}

/// The container and pod as the CRI annotations describe them (ctr sets none: then the id
/// alone). Public for the fuzz harness (fuzz/), which gives it whatever [`parse_state`]
/// accepts.
pub fn scope(state: &Value, facts: &ContainerFacts) -> Scope {
    let annotations = &state["state"]["annotations"];
    let annotation = |key: &str| annotations.get(key).and_then(Value::as_str).map(String::from);
    let pod = annotation("io.kubernetes.cri.sandbox-name");
    let namespace = annotation("io.kubernetes.cri.sandbox-namespace");
    let orchestrator = (pod.is_some() || namespace.is_some())
        .then(|| Orchestrator { namespace, resource: Some(Resource { name: pod, kind: Some("pod".into()) }) });
    // CRI names the image; a Create request does not, so under ctr it stays unknown.
    let image = annotation("io.kubernetes.cri.image-name");
    Scope {
        container: Some(Container {
            id: Some(facts.id.clone()),
            name: annotation("io.kubernetes.cri.container-name").or_else(|| Some(facts.id.clone())),
            image: image.map(|name| Image { name: Some(name) }),
        }),
        orchestrator,
        upper_dir: facts.upper_dir.clone(),
        root_changes: facts.root_changes.clone(),
        gate: facts.gate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cri_annotations_name_the_pod_and_the_container() {
        let state = json!({"pid": 42, "state": {"id": "abc", "annotations": {
            "io.kubernetes.cri.sandbox-name": "web-7d9f",
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.container-name": "nginx",
            "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.27"
        }}});
        let facts = ContainerFacts { id: "abc".into(), upper_dir: None, root_changes: None, gate: false };
        let scope = scope(&state, &facts);
        let container = scope.container.unwrap();
        assert_eq!(container.name.as_deref(), Some("nginx"));
        assert_eq!(container.image.and_then(|i| i.name).as_deref(), Some("docker.io/library/nginx:1.27"));
        let orchestrator = scope.orchestrator.unwrap();
        assert_eq!(orchestrator.namespace.as_deref(), Some("shop"));
        assert_eq!(orchestrator.resource.and_then(|r| r.name).as_deref(), Some("web-7d9f"));
        let bare = super::scope(&json!({"state": {}}), &facts);
        assert!(bare.orchestrator.is_none());
        assert_eq!(bare.container.and_then(|c| c.name).as_deref(), Some("abc"));
    }

    #[test]
    fn a_partial_state_waits_for_more_and_a_broken_one_is_an_error() {
        assert!(parse_state(br#"{"pid": 7, "state": {"#).unwrap().is_none());
        assert_eq!(parse_state(br#"{"pid": 7}"#).unwrap().unwrap()["pid"], 7);
        assert!(parse_state(br#"{"pid": 7}}"#).is_err(), "trailing bytes");
        let endless = [b"[".repeat(10), vec![b' '; MAX_STATE]].concat();
        assert!(parse_state(&endless).is_err(), "past MAX_STATE");
    }

    #[test]
    fn the_state_is_read_without_waiting_for_eof() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let state = br#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":7,"state":{"id":"c1"}}"#;
        // Sent in two pieces, the fd with the first, and the connection left open.
        execguard_seccomp::send_with_fd(theirs.as_fd(), &state[..20], file.as_fd()).unwrap();
        let sender = std::thread::spawn(move || {
            use std::io::Write;
            let mut theirs = theirs;
            std::thread::sleep(Duration::from_millis(20));
            theirs.write_all(&state[20..]).unwrap();
            theirs
        });
        ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (value, _fd) = read_state(&ours).unwrap();
        assert_eq!(value["state"]["id"], "c1");
        drop(sender.join().unwrap());
    }
}
