//! The `execguard` command line: policy checks and dry runs, supervised runs, installation.

use std::ffi::OsString;
use std::io::{self, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use execguard_alerts::{FileRotation, FileSink, JsonLinesSink, Sink};
use execguard_cli::alerts::{self, AlertsError, AlertsOptions, Filter};
use execguard_cli::eval::eval_lines;
use execguard_cli::install::{self, InstallOptions};
use execguard_cli::run::{run, RunOptions};
use execguard_policy::{Mode, Pattern, Policy, PolicyErrors, DEFAULT_POLICY_ORIGIN};
use execguard_supervisor::{Config, FailAction};

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
    /// Register execguard with containerd (see `execguard install containerd --help`).
    #[command(subcommand)]
    Install(InstallCommand),
    /// Undo `execguard install`.
    #[command(subcommand)]
    Uninstall(InstallCommand),
    /// Print the node's execguard counters (decisions by action and rule, execs and
    /// sockets inspected, exec races, fail actions, decision latency) in Prometheus text
    /// format, merged from the file each pod's shim keeps in the metrics directory.
    Metrics {
        /// The directory the shims write to (default: `[metrics] textfile_dir` of
        /// /etc/execguard/config.toml, or EXECGUARD_CONFIG's file, else /run/execguard/metrics).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the node's alerts as a table (time, namespace/pod/container, decision, rule,
    /// command line, parent), oldest first, from the alert file and its rotated files
    /// (FILE.N down to FILE.1, then FILE; compressed ones are skipped), fitted to the
    /// terminal's width (COLUMNS, else the terminal's, else 120).
    Alerts(AlertsArgs),
    /// Run a command with every exec of its process tree supervised: each one is decided
    /// by the policy, alerts and blocks are written as JSON lines (the exec event plus the
    /// decision), and execguard exits with the command's status (128+N when a signal N
    /// killed it, 126 when its own exec was blocked). Needs Linux with seccomp user
    /// notification (5.5+); without CAP_SYS_ADMIN the command runs with no_new_privs.
    Run {
        /// The policy to use (default: the embedded default policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Override the policy's mode: "monitor" reports what enforce would block.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// Append alert lines to this file instead of standard error.
        #[arg(long)]
        alerts: Option<PathBuf>,
        /// How long an exec may wait for its decision, in milliseconds.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
        deadline_ms: u64,
        /// What an exec gets past the deadline: "closed" (blocked) or "open" (allowed and
        /// alerted).
        #[arg(long, default_value = "closed", value_parser = parse_fail_action)]
        fail: FailAction,
        /// Write an alert that repeats one written within this many seconds (same rule,
        /// executable, arguments and parent) only once; 0 writes every one.
        #[arg(long, default_value_t = 3600)]
        repeat_window_secs: u64,
        /// In enforce mode the first network socket (AF_INET, AF_INET6, AF_PACKET) of each
        /// process is checked against what the process really runs, and io_uring, which
        /// makes sockets without socket(), is refused: this lets the command use io_uring.
        #[arg(long)]
        allow_io_uring: bool,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<OsString>,
    },
}

#[derive(clap::Args)]
struct AlertsArgs {
    /// The alert file (default: `[alerts] file` of /etc/execguard/config.toml, or of
    /// EXECGUARD_CONFIG's file).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Go on printing alerts as they are written, across rotations (the file renamed away
    /// and created again, or truncated), like `tail -F`.
    #[arg(long, short)]
    follow: bool,
    /// Only alerts written this long ago or later: "10m", "2h", "3days".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Only the pod of this name.
    #[arg(long)]
    pod: Option<String>,
    /// Only pods of this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Only this decision.
    #[arg(long, value_parser = ["block", "alert", "allow"])]
    decision: Option<String>,
    /// Only this rule: its id, or a pattern as a policy writes them ("falco.*",
    /// "re:^datadog\."). Records no rule decided match their `event.action`.
    #[arg(long, value_parser = parse_rule)]
    rule: Option<Pattern>,
    /// Print the matching records as JSON lines, as they are in the file.
    #[arg(long)]
    json: bool,
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

#[derive(Subcommand)]
enum InstallCommand {
    /// Register the runtime io.containerd.execguard.v2 with containerd's CRI plugin: a
    /// drop-in with the runtime (for containerd 1.6/1.7, which replace a plugin's whole
    /// table with an imported one, inside the CRI plugin's complete effective table; 2.x
    /// merges key by key), the drop-in added to the main config's imports (comments and
    /// order kept, a backup written first), the shim copied to --shim-dir, and execguard's
    /// config.toml and policy.toml created when missing. Idempotent; refuses files it cannot
    /// parse; checks the result with `containerd config dump` and puts the old files back if
    /// the runtime is missing or anything else changed. Config versions 2 (containerd 1.x,
    /// and 2.x, which migrates it), 3 (2.0 to 2.2) and 4 (2.3). Restart containerd
    /// afterwards.
    Containerd(InstallArgs),
}

#[derive(clap::Args)]
struct InstallArgs {
    /// containerd's main configuration.
    #[arg(long, default_value = execguard_cli::install::DEFAULT_CONTAINERD_CONFIG)]
    config: PathBuf,
    /// The drop-in file execguard owns.
    #[arg(long, default_value = execguard_cli::install::DEFAULT_DROP_IN)]
    drop_in: PathBuf,
    /// The runtime's name: a RuntimeClass's handler.
    #[arg(long, default_value = "execguard")]
    runtime_name: String,
    /// Where containerd-shim-execguard-v2 is installed: a directory on containerd's PATH
    /// (containerd finds shims by name there).
    #[arg(long, default_value = "/usr/local/bin")]
    shim_dir: PathBuf,
    /// Where execguard's config.toml and policy.toml live.
    #[arg(long, default_value = "/etc/execguard")]
    execguard_dir: PathBuf,
    /// Make execguard the CRI plugin's default runtime (every pod without a RuntimeClass).
    #[arg(long)]
    set_as_default: bool,
    /// Print the changes as a diff and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// The containerd binary to ask for its effective configuration.
    #[arg(long, default_value = "containerd")]
    containerd: PathBuf,
}

impl InstallArgs {
    fn options(self) -> InstallOptions {
        InstallOptions {
            config: self.config,
            drop_in: self.drop_in,
            runtime_name: self.runtime_name,
            shim_dir: self.shim_dir,
            execguard_dir: self.execguard_dir,
            set_as_default: self.set_as_default,
            dry_run: self.dry_run,
            containerd: self.containerd,
        }
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse()
}

fn parse_rule(text: &str) -> Result<Pattern, String> {
    Pattern::parse(text, None)
}

fn parse_fail_action(text: &str) -> Result<FailAction, String> {
    text.parse()
}

fn load_policy(path: Option<&Path>) -> Result<Policy, PolicyErrors> {
    match path {
        Some(path) => Policy::load(path),
        None => Policy::embedded(),
    }
}

/// The policy to decide with, in `mode` when one is given; on errors, prints them and
/// gives the exit code.
fn policy_in_mode(path: Option<&Path>, mode: Option<Mode>) -> Result<Policy, ExitCode> {
    let policy = load_policy(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })?;
    Ok(policy.with_mode(mode))
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
    let policy = match policy_in_mode(policy, mode) {
        Ok(policy) => policy,
        Err(code) => return code,
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

fn supervised_run(
    policy: Option<&Path>,
    mode: Option<Mode>,
    alerts: Option<&Path>,
    config: Config,
    repeat_window: Duration,
    allow_io_uring: bool,
    command: Vec<OsString>,
) -> ExitCode {
    let policy = match policy_in_mode(policy, mode) {
        Ok(policy) => policy,
        Err(code) => return code,
    };
    let alerts: Box<dyn Sink> = match alerts {
        None => Box::new(JsonLinesSink::new("stderr", io::stderr())),
        Some(path) => match FileSink::new(path, FileRotation { max_bytes: 0, keep: 1 }) {
            Ok(file) => Box::new(file),
            Err(error) => {
                eprintln!("execguard: cannot open the alert file {error}");
                return ExitCode::from(2);
            }
        },
    };
    match run(RunOptions { policy, config, alerts, repeat_window, command, allow_io_uring }) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("execguard: {error}");
            ExitCode::from(2)
        }
    }
}

fn installed(result: Result<(), install::InstallError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("execguard: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXECGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(ansi).init();
}

fn metrics(dir: Option<PathBuf>) -> ExitCode {
    let dir = match dir {
        Some(dir) => dir,
        None => match execguard_shim::config::ShimConfig::load(None) {
            Ok((config, _)) => config.metrics.textfile_dir,
            Err(error) => {
                eprintln!("execguard metrics: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    match execguard_cli::metrics::merged(&dir) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("execguard metrics: {error}");
            ExitCode::FAILURE
        }
    }
}

fn show_alerts(args: AlertsArgs) -> ExitCode {
    let file = match args.file.map_or_else(alerts::configured_file, Ok) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("execguard alerts: {error}");
            return ExitCode::FAILURE;
        }
    };
    let filter = Filter {
        since: args.since,
        pod: args.pod,
        namespace: args.namespace,
        decision: args.decision,
        rule: args.rule,
    };
    let options = AlertsOptions { file, follow: args.follow, json: args.json, width: alerts::terminal_width(), filter };
    match alerts::show(&options, &mut io::stdout().lock(), &mut io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stops early (`| head`) is not an error.
        Err(AlertsError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("execguard alerts: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    init_logging();
    match Cli::parse().command {
        Command::Policy(PolicyCommand::Check { file }) => check(file.as_deref()),
        Command::Policy(PolicyCommand::Eval { policy, mode, events }) => {
            eval(policy.as_deref(), mode, events.as_deref())
        }
        Command::Install(InstallCommand::Containerd(args)) => {
            installed(install::install(&args.options(), &mut io::stdout()))
        }
        Command::Uninstall(InstallCommand::Containerd(args)) => {
            installed(install::uninstall(&args.options(), &mut io::stdout()))
        }
        Command::Metrics { dir } => metrics(dir),
        Command::Alerts(args) => show_alerts(args),
        Command::Run { policy, mode, alerts, deadline_ms, fail, repeat_window_secs, allow_io_uring, command } => {
            let config =
                Config { deadline: Duration::from_millis(deadline_ms), fail_action: fail, ..Config::default() };
            let repeat_window = Duration::from_secs(repeat_window_secs);
            supervised_run(policy.as_deref(), mode, alerts.as_deref(), config, repeat_window, allow_io_uring, command)
        }
    }
}
