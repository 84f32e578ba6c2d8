//! The `execguard` command line: policy checks and dry runs, supervised runs, installation.

use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use execguard_policy::{Mode, Policy, PolicyErrors, DEFAULT_POLICY_ORIGIN};
use execguard_shim::eval::eval_lines;

/// Stops network utilities in containers: every exec is checked against a policy, and
/// allowed, alerted on, or blocked.
#[derive(Parser)]
#[command(name = "execguard", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a policy, or try it on recorded exec events before enforcing it.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file: prints every error as FILE:LINE:COLUMN with a hint and
    /// exits 1, or exits 0 when the policy is valid. Without FILE, checks the embedded
    /// default policy.
    Check {
        /// The policy (TOML) to check.
        file: Option<PathBuf>,
    },
    /// Decide exec events (JSON lines, one event per line: alerts can be replayed as they
    /// are) and print one decision per event:
    /// {"decision":"allow|alert|block","rule":{"id","name","severity"}|null,"reason":".."}.
    /// A malformed line prints {"line":N,"error":".."}, evaluation goes on, and the exit
    /// code is 1.
    Eval {
        /// The policy to use (default: the embedded default policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Override the policy's mode: "monitor" turns blocks into alerts.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// The events; "-" or nothing reads standard input.
        events: Option<PathBuf>,
    },
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse()
}

fn load_policy(path: Option<&Path>) -> Result<Policy, PolicyErrors> {
    match path {
        Some(path) => Policy::load(path),
        None => Policy::embedded(),
    }
}

fn check(file: Option<&Path>) -> ExitCode {
    let origin = file.map_or_else(|| DEFAULT_POLICY_ORIGIN.to_string(), |p| p.display().to_string());
    match load_policy(file) {
        Ok(policy) => {
            println!("{origin}: ok ({} rules, mode {})", policy.rule_count(), policy.mode());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{origin}: {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn eval(policy: Option<&Path>, mode: Option<Mode>, events: Option<&Path>) -> ExitCode {
    let policy = match load_policy(policy) {
        Ok(policy) => policy,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let policy = match mode {
        Some(mode) => policy.with_mode(mode),
        None => policy,
    };
    let stdout = io::stdout().lock();
    let result = match events {
        Some(path) if path != Path::new("-") => match std::fs::File::open(path) {
            Ok(file) => eval_lines(&policy, BufReader::new(file), stdout),
            Err(error) => {
                eprintln!("execguard: cannot read events from {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
        _ => eval_lines(&policy, io::stdin().lock(), stdout),
    };
    match result {
        Ok(summary) if summary.malformed == 0 => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!(
                "execguard: {} of {} lines were not exec events",
                summary.malformed,
                summary.malformed + summary.decided
            );
            ExitCode::FAILURE
        }
        // A reader that stops early (`| head`) is not an error.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("execguard: {error}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Policy(PolicyCommand::Check { file }) => check(file.as_deref()),
        Command::Policy(PolicyCommand::Eval { policy, mode, events }) => {
            eval(policy.as_deref(), mode, events.as_deref())
        }
    }
}
