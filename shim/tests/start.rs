//! The `start` action of the built shim binary, as containerd 2.3 runs it (bootstrap
//! parameters on stdin, a `BootstrapResult` on stdout) and as containerd 1.x runs it
//! (flags and TTRPC_ADDRESS, a bare address): it leaves a serving shim that exits when told
//! to or when no container ever comes, and a failed start leaves no process and no socket.
//! No containerd is needed: a unix listener stands in for containerd's ttrpc socket, which
//! the server only connects to.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use execguard_shim::launch::{BootstrapParams, BootstrapResult};
use prost::Message;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-execguard-v2");

/// A bundle, socket directory and stand-in containerd socket, all in one temp dir.
struct Node {
    dir: PathBuf,
    bundle: PathBuf,
    sockets: PathBuf,
    ttrpc: PathBuf,
    _containerd: UnixListener,
}

impl Node {
    fn new(name: &str) -> Node {
        // Short: socket paths must fit sun_path.
        let dir = PathBuf::from(format!("/tmp/eg-start-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("b");
        let sockets = dir.join("s");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::create_dir_all(&sockets).unwrap();
        std::fs::write(bundle.join("config.json"), r#"{"ociVersion":"1.0.2","annotations":{}}"#).unwrap();
        // containerd makes it a fifo it reads; the server logs there.
        std::fs::write(bundle.join("log"), "").unwrap();
        let ttrpc = dir.join("c.ttrpc");
        let containerd = UnixListener::bind(&ttrpc).unwrap();
        Node { dir, bundle, sockets, ttrpc, _containerd: containerd }
    }

    /// A namespace no other test uses: processes are found by it.
    fn namespace(&self) -> String {
        format!("eg-start-{}", self.dir.file_name().unwrap().to_string_lossy())
    }

    fn params(&self, socket_dir: &Path) -> BootstrapParams {
        BootstrapParams {
            instance_id: "c1".into(),
            namespace: self.namespace(),
            log_level: 0,
            containerd_version: "v2.3.4".into(),
            containerd_ttrpc_address: self.ttrpc.display().to_string(),
            containerd_grpc_address: self.dir.join("c.sock").display().to_string(),
            containerd_binary: "/bin/true".into(),
            extensions: vec![],
            socket_dir: Some(socket_dir.display().to_string()),
        }
    }

    fn start(&self, stdin: &[u8], ttrpc_env: Option<&Path>) -> Output {
        let mut command = Command::new(SHIM);
        command
            .args(["-namespace", &self.namespace(), "-id", "c1", "-address"])
            .arg(self.dir.join("c.sock"))
            .args(["-publish-binary", "/bin/true", "start"])
            .current_dir(&self.bundle)
            .env_remove("TTRPC_ADDRESS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ttrpc) = ttrpc_env {
            command.env("TTRPC_ADDRESS", ttrpc);
        }
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Pids of this node's serving shims.
    fn servers(&self) -> Vec<u32> {
        let namespace = self.namespace();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let args: Vec<_> = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy).collect();
            let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
            if !zombie && args.iter().any(|a| a == &namespace) && args.iter().any(|a| a == "-socket") {
                pids.push(pid);
            }
        }
        pids
    }

    fn wait_for_no_server(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.servers().is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for pid in self.servers() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn socket_path(address: &str) -> PathBuf {
    PathBuf::from(address.strip_prefix("unix://").unwrap_or_else(|| panic!("not a unix address: {address}")))
}

/// Asks the server to shut down, as containerd does once the pod's last container is
/// deleted.
fn shutdown(address: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = containerd_shim_protos::ttrpc::r#async::Client::connect(address).await.unwrap();
        let task = containerd_shim_protos::shim_async::TaskClient::new(client);
        let request = containerd_shim_protos::api::ShutdownRequest::default();
        // The server may close the connection as it exits.
        let _ = task.shutdown(containerd_shim_protos::ttrpc::context::with_timeout(5_000_000_000), &request).await;
    });
}

#[test]
fn containerd_2_3_gets_a_bootstrap_result_and_a_server_in_its_socket_dir() {
    let node = Node::new("v23");
    let input = node.params(&node.sockets).encode_to_vec();
    let output = node.start(&input, None);
    assert!(output.status.success(), "start failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "containerd reads stderr too: {}", String::from_utf8_lossy(&output.stderr));
    let reply = BootstrapResult::decode(output.stdout.as_slice()).expect("a BootstrapResult");
    assert_eq!((reply.version, reply.protocol.as_str()), (2, "ttrpc"));
    let socket = socket_path(&reply.address);
    assert_eq!(socket.parent(), Some(node.sockets.as_path()));
    assert!(UnixStream::connect(&socket).is_ok(), "nothing listens on {}", socket.display());
    assert_eq!(std::fs::read_to_string(node.bundle.join("address")).unwrap(), reply.address);
    assert_eq!(node.servers().len(), 1);

    // Another container of the pod: the same server.
    let again = node.start(&input, None);
    assert!(again.status.success());
    assert_eq!(BootstrapResult::decode(again.stdout.as_slice()).unwrap().address, reply.address);
    assert_eq!(node.servers().len(), 1);

    shutdown(&reply.address);
    assert!(node.wait_for_no_server(Duration::from_secs(10)), "the server did not exit on Shutdown");
    assert!(!socket.exists(), "{} is left", socket.display());
}

#[test]
fn containerd_1_x_gets_a_bare_address() {
    let node = Node::new("v16");
    // containerd 1.6 writes the runtime options (an Any) to stdin.
    let options = execguard_shim::launch::Any { type_url: "runtimeoptions.v1.Options".into(), value: vec![] };
    let output = node.start(&options.encode_to_vec(), Some(&node.ttrpc));
    assert!(output.status.success(), "start failed: {}", String::from_utf8_lossy(&output.stderr));
    let address = String::from_utf8(output.stdout).unwrap();
    assert!(address.starts_with("unix:///run/containerd/s/"), "{address}");
    assert!(UnixStream::connect(socket_path(&address)).is_ok());
    shutdown(&address);
    assert!(node.wait_for_no_server(Duration::from_secs(10)));
    assert!(!socket_path(&address).exists());
}

#[test]
fn a_start_that_fails_leaves_no_process_and_no_socket() {
    let node = Node::new("fail");
    // A socket directory that is a file: the server cannot listen.
    let not_a_dir = node.dir.join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let output = node.start(&node.params(&not_a_dir).encode_to_vec(), None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("serving shim"), "{stderr}");
    assert!(node.servers().is_empty(), "a server is left: {:?}", node.servers());

    // Neither protocol's ttrpc address: refused before anything starts.
    let output = node.start(&[], None);
    assert!(String::from_utf8_lossy(&output.stderr).contains("TTRPC_ADDRESS"));
    assert!(node.servers().is_empty());
}

#[test]
fn a_server_that_never_gets_a_container_exits() {
    let node = Node::new("idle");
    let output = node.start(&node.params(&node.sockets).encode_to_vec(), None);
    assert!(output.status.success(), "start failed: {}", String::from_utf8_lossy(&output.stderr));
    let socket = socket_path(&BootstrapResult::decode(output.stdout.as_slice()).unwrap().address);
    // FIRST_CREATE_TIMEOUT (30 s) and a margin.
    assert!(node.wait_for_no_server(Duration::from_secs(40)), "the unused server is still running");
    assert!(!socket.exists(), "{} is left", socket.display());
}
