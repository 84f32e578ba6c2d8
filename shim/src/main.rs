//! `containerd-shim-execguard-v2`: containerd starts it for pods whose RuntimeClass
//! selects `io.containerd.execguard.v2`. See the `execguard_shim` crate.

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};

use execguard_shim::config::ShimConfig;
use execguard_shim::{ExecguardShim, RUNTIME_ID};

/// `-info` (containerd 2.x asks for runtime features): answered by the runc shim, whose
/// features are the ones that apply.
fn relay_info() -> ExitCode {
    let binary = ShimConfig::load(None).map(|(config, _)| config.delegate.binary).unwrap_or_else(|error| {
        eprintln!("{error}");
        "containerd-shim-runc-v2".into()
    });
    let mut input = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("cannot read the -info request: {error}");
        return ExitCode::FAILURE;
    }
    let child = Command::new(&binary).arg("-info").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let output = child.and_then(|mut child| {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&input)?;
        }
        child.wait_with_output()
    });
    match output {
        Ok(output) if output.status.success() && std::io::stdout().write_all(&output.stdout).is_ok() => {
            ExitCode::SUCCESS
        }
        Ok(output) => {
            eprintln!("{binary} -info failed: {}", output.status);
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("cannot run {binary} -info: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "-info" || arg == "--info") {
        return relay_info();
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
