//! The stock runc shim that really runs the containers, driven through its own command
//! line (`start`, `delete`, `-info`) exactly as containerd would drive it.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// What containerd told this shim about itself, passed on to the runc shim.
#[derive(Debug, Clone, Default)]
pub struct ShimFlags {
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub debug: bool,
    /// This shim's own ttrpc socket.
    pub socket: String,
}

/// Set by `start` for the serving process: containerd passes -publish-binary to `start`
/// only, and the runc shim needs it.
pub const PUBLISH_BINARY_ENV: &str = "EXECGUARD_PUBLISH_BINARY";

/// The file in a container's bundle that names the runc shim binary its Create used.
/// `delete` runs as a process of its own, with no runtime options: without this record
/// it would read the default configuration, not the one that ConfigPath named.
const RECORDED_BINARY: &str = "execguard-delegate";

/// Records which runc shim binary serves the bundle's container.
pub fn record_binary(bundle: &Path, binary: &str) -> Result<(), String> {
    let path = bundle.join(RECORDED_BINARY);
    std::fs::write(&path, binary).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The runc shim binary that Create recorded in the bundle, if it recorded one.
pub fn recorded_binary(bundle: &Path) -> Option<String> {
    let binary = std::fs::read_to_string(bundle.join(RECORDED_BINARY)).ok()?;
    (!binary.is_empty()).then_some(binary)
}

fn base_command(binary: &str, flags: &ShimFlags, id: &str) -> Command {
    let mut command = Command::new(binary);
    command.args(["-namespace", &flags.namespace, "-id", id, "-address", &flags.address]);
    if !flags.publish_binary.is_empty() {
        command.args(["-publish-binary", &flags.publish_binary]);
    }
    if flags.debug {
        command.arg("-debug");
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Runs one of the runc shim's commands and returns what it printed.
async fn output(binary: &str, mut command: Command, verb: &str) -> Result<Vec<u8>, String> {
    let output = command.output().await.map_err(|e| format!("cannot run {binary}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{binary} {verb} failed ({}): {}", output.status, stderr.trim()));
    }
    Ok(output.stdout)
}

/// Starts (or finds, for a later container of the same pod) the runc shim and returns
/// its ttrpc address. It reads the bundle's config.json for the pod grouping.
pub async fn start(binary: &str, flags: &ShimFlags, bundle: &Path, id: &str) -> Result<String, String> {
    let mut command = base_command(binary, flags, id);
    command.current_dir(bundle).arg("start");
    let address = String::from_utf8_lossy(&output(binary, command, "start").await?).trim().to_string();
    if address.is_empty() {
        return Err(format!("{binary} start printed no address"));
    }
    // The runc shim wrote its own address into the bundle; containerd reads that file to
    // reconnect after a restart, and must find this shim there, not the runc shim.
    if !flags.socket.is_empty() {
        std::fs::write(bundle.join("address"), &flags.socket)
            .map_err(|e| format!("cannot write {}: {e}", bundle.join("address").display()))?;
    }
    Ok(address)
}

/// Runs the runc shim's `delete` (containerd's cleanup after a shim died) and returns its
/// output, a serialized DeleteResponse.
pub async fn delete(binary: &str, flags: &ShimFlags, bundle: &Path, id: &str) -> Result<Vec<u8>, String> {
    let mut command = base_command(binary, flags, id);
    command.current_dir(bundle).args(["-bundle", &bundle.display().to_string(), "delete"]);
    output(binary, command, "delete").await
}
