//! `cri-e2e`: execguard's end-to-end test through containerd's CRI API, as a kubelet drives
//! a pod with a RuntimeClass. Run by tests/e2e/cri.sh against a private containerd; prints
//! one line per check and "N passed, M failed", and exits 1 if any check failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use execguard_e2e::cri_e2e::{self, Settings};
use execguard_e2e::report::Report;

/// Runs pods under the `execguard` and `runc` runtime handlers through containerd's CRI
/// API and checks what execguard did to them. Every pod it makes is removed at the end.
#[derive(Parser)]
#[command(name = "cri-e2e")]
struct Cli {
    /// containerd's grpc socket (its CRI endpoint).
    #[arg(long)]
    socket: PathBuf,
    /// The alert file the shim writes (`[alerts] file` of its configuration).
    #[arg(long)]
    alerts: PathBuf,
    /// containerd's state directory (`state` in its configuration), where task bundles are.
    #[arg(long)]
    containerd_state: PathBuf,
    /// The test image, imported into containerd's k8s.io namespace.
    #[arg(long, default_value = "execguard.test/e2e:latest")]
    image: String,
    /// The policy file the shim's configuration names (the reload checks rewrite it).
    #[arg(long)]
    policy: PathBuf,
    /// containerd's log file.
    #[arg(long)]
    containerd_log: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings {
        socket: cli.socket,
        alerts: cli.alerts,
        containerd_state: cli.containerd_state,
        image: cli.image,
        policy: cli.policy,
        containerd_log: cli.containerd_log,
    };
    let mut report = Report::default();
    cri_e2e::run(&settings, &mut report).await;
    if report.finish() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
