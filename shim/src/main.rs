//! `containerd-shim-execguard-v2`: containerd starts it for pods whose RuntimeClass
//! selects `io.containerd.execguard.v2`. See the `execguard_shim` crate.

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use execguard_shim::config::{self, ShimConfig};
use execguard_shim::{delegate, ExecguardShim, RUNTIME_ID};

/// `-info` (containerd 2.x asks for runtime features, with the runtime options on stdin):
/// answered by the runc shim of the configuration those options name, whose features
/// are the ones that apply, asked with the runc options that configuration gives it.
fn relay_info() -> ExitCode {
    match info() {
        Ok(output) if std::io::stdout().write_all(&output).is_ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{RUNTIME_ID} -info: {error}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<Vec<u8>, String> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).map_err(|e| format!("cannot read the runtime options: {e}"))?;
    let explicit = match input.is_empty() {
        true => None,
        false => {
            let options = Any::parse_from_bytes(&input).map_err(|e| format!("the runtime options: {e}"))?;
            config::config_path(&options)?
        }
    };
    let (config, _) = ShimConfig::load(explicit.as_deref()).map_err(|e| e.to_string())?;
    let options = delegate::runc_options(&config)?.write_to_bytes().map_err(|e| e.to_string())?;
    let binary = &config.delegate.binary;
    let mut child = Command::new(binary)
        .arg("-info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {binary} -info: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&options).map_err(|e| format!("cannot write to {binary} -info: {e}"))?;
    }
    let output = child.wait_with_output().map_err(|e| format!("{binary} -info: {e}"))?;
    if !output.status.success() {
        return Err(format!("{binary} -info failed: {}", output.status));
    }
    Ok(output.stdout)
}

/// The `start` action. containerd reads all of stdout and stderr: nothing else may be
/// printed on success.
fn start(flags: &containerd_shim::Flags) -> ExitCode {
    match execguard_shim::start(flags) {
        Ok(reply) if std::io::stdout().write_all(&reply).and_then(|()| std::io::stdout().flush()).is_ok() => {
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("{RUNTIME_ID}: cannot write the start reply");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{RUNTIME_ID}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "-info" || arg == "--info") {
        return relay_info();
    }
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match containerd_shim::parse(&args) {
        Ok(flags) if flags.action == "start" => return start(&flags),
        Ok(_) => {}
        Err(error) => {
            eprintln!("{RUNTIME_ID}: {error}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{RUNTIME_ID}: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The containers' processes are the runc shim's children, not this shim's: reaping
    // every child here would only steal the exit status of the runc shim commands this
    // shim runs (ECHILD), and being a subreaper would make it the parent of the
    // daemonized runc shim.
    let config = containerd_shim::Config { no_reaper: true, no_sub_reaper: true, ..Default::default() };
    runtime.block_on(containerd_shim::asynchronous::run::<ExecguardShim>(RUNTIME_ID, Some(config)));
    ExitCode::SUCCESS
}
