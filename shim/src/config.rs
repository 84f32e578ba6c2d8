//! The shim's configuration, and what it makes of a container's annotations.
//!
//! The file is TOML, `/etc/execguard/config.toml` unless containerd passes another path
//! (the `ConfigPath` runtime option, which wins) or `EXECGUARD_CONFIG` names one. Every key is
//! optional; a missing default file means the defaults (the embedded policy in its own
//! mode, fail-closed after 2 s). Unknown keys are errors: a misspelt `mode` must not leave
//! a cluster in a mode nobody chose.
//!
//! ```toml
//! policy = "/etc/execguard/policy.toml"   # default: the embedded default policy
//! mode = "monitor"                         # off | monitor | enforce; default: the policy's
//! policy_fallback = "refuse"              # a policy file missing, unreadable or broken at
//!                                          # Create: refuse | last-good | embedded
//! policy_dir = "/etc/execguard/policies"   # NAME.toml files for execguard.dev/policy
//! overrides = "tighten"                    # what pod annotations may do: none | tighten | any
//! deadline_ms = 2000
//! fail = "closed"                          # or "open" (allow and alert)
//! repeat_window_secs = 3600                # write a repeated alert once per window
//! allow_io_uring = false                   # enforce mode refuses io_uring (it makes
//!                                          # sockets past the socket gate)
//!
//! [alerts]                                 # where alert records go, any combination
//! file = "/var/log/execguard/alerts.jsonl" # JSON lines, shared by the node's shims
//! rotate_mib = 100                         # rotate past this size (0: leave it to logrotate)
//! rotate_keep = 5                          # alerts.jsonl.1 (newest) .. .5
//! log = true                               # the shim's log, fields as fields
//! containerd_events = true                 # containerd's event stream, /execguard/exec
//!
//! [[alerts.http]]                          # any number: each record POSTed to each
//! url = "http://falcosidekick.falco:2801/"
//! format = "falco"                         # or "ecs" (the record as it is)
//! timeout_ms = 2000                        # per attempt
//! retries = 2                              # attempts after the first (5xx, 429, no answer)
//!
//! [delegate]
//! binary = "containerd-shim-runc-v2"       # the shim that runs the containers
//! systemd_cgroup = false                   # runc options for its Create
//! binary_name = ""                         # runc binary ("" = runc)
//! root = ""                                # runc state root ("" = default)
//! ```
//!
//! `deadline_ms`, `fail`, `repeat_window_secs` and `[alerts]` apply to running pods when
//! the file changes (`reload`); the rest applies to containers created afterwards.
//!
//! Per pod or container, the annotations `execguard.dev/mode` (off | monitor | enforce)
//! and `execguard.dev/policy` (a NAME from `policy_dir`) override the file as far as
//! `overrides` lets them. By default (`tighten`) a pod can only raise its supervision
//! (monitor to enforce): anyone who can create a pod must not be able to switch execguard
//! off for it, so lowering the mode or picking another policy needs `overrides = "any"`
//! in the node's configuration. Every bad or refused value fails the container's Create
//! with a message that names the file or the annotation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use execguard_policy::{Mode, Policy, PolicyErrors};

use crate::last_good;
use serde::Deserialize;
use serde_json::{Map, Value};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use execguard_alerts::{HttpConfig, HttpSink};
use execguard_supervisor::FailAction;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/execguard/config.toml";
/// Set by tests and by hand to use another configuration file.
pub const CONFIG_ENV: &str = "EXECGUARD_CONFIG";
pub const MODE_ANNOTATION: &str = "execguard.dev/mode";
pub const POLICY_ANNOTATION: &str = "execguard.dev/policy";

/// The modes a container can be in: the policy's two, or not supervised at all, in order
/// of supervision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerMode {
    Off,
    Monitor,
    Enforce,
}

impl std::str::FromStr for ContainerMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(ContainerMode::Off),
            "monitor" => Ok(ContainerMode::Monitor),
            "enforce" => Ok(ContainerMode::Enforce),
            _ => Err(format!("unknown mode {text:?}: use \"off\", \"monitor\" or \"enforce\"")),
        }
    }
}

/// What a new container gets when its policy file is missing, unreadable or broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyFallback {
    /// Its Create fails with the policy's errors: nothing runs under a policy nobody chose.
    #[default]
    Refuse,
    /// The last version of the same file that compiled on this node (`last_good`).
    LastGood,
    /// The embedded default policy.
    Embedded,
}

/// What pod annotations may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overrides {
    /// Annotations are refused.
    None,
    /// The mode annotation may raise supervision, never lower it; no other policy.
    #[default]
    Tighten,
    /// Any mode and any named policy.
    Any,
}

impl From<Mode> for ContainerMode {
    fn from(mode: Mode) -> ContainerMode {
        match mode {
            Mode::Monitor => ContainerMode::Monitor,
            Mode::Enforce => ContainerMode::Enforce,
        }
    }
}

impl std::fmt::Display for ContainerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerMode::Off => "off",
            ContainerMode::Monitor => "monitor",
            ContainerMode::Enforce => "enforce",
        })
    }
}

/// Where alert records go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    pub file: Option<PathBuf>,
    /// Size past which the file is rotated, in MiB; 0 leaves rotation to logrotate.
    pub rotate_mib: u64,
    pub rotate_keep: u32,
    pub log: bool,
    pub containerd_events: bool,
    /// `[[alerts.http]]`: endpoints each record is POSTed to.
    pub http: Vec<HttpConfig>,
}

impl Default for Alerts {
    fn default() -> Self {
        // Bounded by default: shims that write for months must not fill the node's disk.
        Alerts { file: None, rotate_mib: 100, rotate_keep: 5, log: true, containerd_events: true, http: Vec::new() }
    }
}

/// Where each shim writes its Prometheus counters, one file per pod, for node_exporter's
/// textfile collector (and `execguard metrics`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// An empty path turns the files off.
    pub textfile_dir: PathBuf,
}

/// On tmpfs: counts of shims that ran before a reboot are not the node's any more.
pub const DEFAULT_METRICS_DIR: &str = "/run/execguard/metrics";

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { textfile_dir: PathBuf::from(DEFAULT_METRICS_DIR) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delegate {
    pub binary: String,
    pub systemd_cgroup: bool,
    pub binary_name: String,
    pub root: String,
}

impl Default for Delegate {
    fn default() -> Self {
        Delegate {
            binary: "containerd-shim-runc-v2".into(),
            systemd_cgroup: false,
            binary_name: String::new(),
            root: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShimConfig {
    pub policy: Option<PathBuf>,
    pub policy_fallback: PolicyFallback,
    pub mode: Option<ContainerMode>,
    pub policy_dir: Option<PathBuf>,
    pub overrides: Overrides,
    pub deadline_ms: u64,
    pub fail: String,
    pub repeat_window_secs: u64,
    pub allow_io_uring: bool,
    pub alerts: Alerts,
    pub metrics: MetricsConfig,
    pub delegate: Delegate,
}

impl Default for ShimConfig {
    fn default() -> Self {
        ShimConfig {
            policy: None,
            policy_fallback: PolicyFallback::Refuse,
            mode: None,
            policy_dir: None,
            overrides: Overrides::Tighten,
            deadline_ms: 2000,
            fail: "closed".into(),
            repeat_window_secs: 3600,
            allow_io_uring: false,
            alerts: Alerts::default(),
            metrics: MetricsConfig::default(),
            delegate: Delegate::default(),
        }
    }
}

/// A configuration that cannot be used, with the file or annotation it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the execguard configuration: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{0}")]
    Policy(PolicyErrors),
    #[error("annotation {annotation}={value:?}: {message}")]
    Annotation { annotation: &'static str, value: String, message: String },
}

impl ShimConfig {
    /// Reads the configuration: `explicit` (the ConfigPath option, most specific), else
    /// EXECGUARD_CONFIG, else the default path. The first two must exist; the default may
    /// be missing.
    pub fn load(explicit: Option<&Path>) -> Result<(ShimConfig, String), ConfigError> {
        let (path, required) = ShimConfig::file(explicit);
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
                return Ok((ShimConfig::default(), format!("{shown} (absent: defaults)")));
            }
            Err(source) => return Err(ConfigError::Read { path: shown, source }),
        };
        let config = ShimConfig::parse(&text, &shown)?;
        Ok((config, shown))
    }

    /// The file [`ShimConfig::load`] reads, and whether it must exist.
    pub fn file(explicit: Option<&Path>) -> (PathBuf, bool) {
        let from_env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => (path, true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<ShimConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.to_string(), message };
        let config: ShimConfig = toml::from_str(text).map_err(|error| {
            // FILE:LINE:COLUMN: message, like the policy's errors.
            let offset = error.span().map_or(0, |span| span.start);
            let before = text.get(..offset).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ConfigError::Invalid { path: format!("{path}:{line}:{column}"), message: error.message().to_string() }
        })?;
        config.fail_action().map_err(invalid)?;
        if config.alerts.rotate_mib > 0 && config.alerts.rotate_keep == 0 {
            return Err(invalid(
                "[alerts] rotate_keep = 0 would delete every rotated file: keep at least 1, or set rotate_mib = 0"
                    .into(),
            ));
        }
        for (n, http) in config.alerts.http.iter().enumerate() {
            HttpSink::new(http).map_err(|e| invalid(format!("[[alerts.http]] number {}: {e}", n + 1)))?;
        }
        if config.deadline_ms == 0 {
            // A zero deadline would answer every exec with the fail action before it is
            // inspected: every container would fail closed, or run unchecked.
            return Err(invalid(
                "deadline_ms = 0 leaves no time to decide an exec: use the default 2000, or at least 1".into(),
            ));
        }
        Ok(config)
    }

    pub fn fail_action(&self) -> Result<FailAction, String> {
        self.fail.parse()
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn repeat_window(&self) -> Duration {
        Duration::from_secs(self.repeat_window_secs)
    }

    /// The policy file the configuration names, or the embedded one.
    pub fn base_policy(&self) -> Result<Policy, ConfigError> {
        match &self.policy {
            Some(path) => self.load_policy(path),
            None => Policy::embedded().map_err(ConfigError::Policy),
        }
    }

    /// Loads a policy file for a new container; one that is missing, unreadable or broken
    /// gets `policy_fallback`. A good one is kept as the file's last good copy.
    pub fn load_policy(&self, path: &Path) -> Result<Policy, ConfigError> {
        let origin = path.display().to_string();
        let errors = match Policy::load_with_text(path) {
            Ok((policy, text)) => {
                last_good::remember(Path::new(last_good::DIR), path, &text);
                return Ok(policy);
            }
            Err(errors) => errors,
        };
        let one_line = errors.to_string().replace('\n', "; ");
        match self.policy_fallback {
            PolicyFallback::Refuse => Err(ConfigError::Policy(errors)),
            PolicyFallback::Embedded => {
                tracing::warn!(policy = %origin, "unusable policy, the embedded default policy applies (policy_fallback = \"embedded\"): {one_line}");
                Policy::embedded().map_err(ConfigError::Policy)
            }
            PolicyFallback::LastGood => match last_good::recall(Path::new(last_good::DIR), path) {
                Some(policy) => {
                    tracing::warn!(policy = %origin, "unusable policy, its last good copy applies (policy_fallback = \"last-good\"): {one_line}");
                    Ok(policy)
                }
                None => Err(ConfigError::Invalid {
                    path: origin,
                    message: format!("{one_line} (policy_fallback = \"last-good\", but no good copy of it was ever loaded on this node)"),
                }),
            },
        }
    }

    /// What a container with these annotations runs under: `None` for mode off, else the
    /// name of its policy (None for the base policy) and its mode, if the configuration or
    /// an annotation sets one. `base_policy_mode` gives the base policy's own mode, read
    /// only when a mode annotation must be compared with it.
    pub fn resolve(
        &self,
        annotations: &Map<String, Value>,
        base_policy_mode: impl FnOnce() -> Result<Mode, ConfigError>,
    ) -> Result<Option<Selection>, ConfigError> {
        let annotation = |key: &'static str| -> Result<Option<String>, ConfigError> {
            let refused = |value: &Value, message: &str| ConfigError::Annotation {
                annotation: key,
                value: value.as_str().map_or_else(|| value.to_string(), str::to_string),
                message: message.into(),
            };
            match annotations.get(key) {
                None => Ok(None),
                Some(value) if self.overrides == Overrides::None => {
                    Err(refused(value, "annotations are refused by the execguard configuration (overrides = \"none\")"))
                }
                Some(Value::String(value)) => Ok(Some(value.clone())),
                Some(value) => Err(refused(value, "must be a string")),
            }
        };
        let refused = |annotation, value: &str, message: String| ConfigError::Annotation {
            annotation,
            value: value.into(),
            message,
        };
        let mode = match annotation(MODE_ANNOTATION)? {
            Some(value) => {
                let wanted =
                    value.parse::<ContainerMode>().map_err(|message| refused(MODE_ANNOTATION, &value, message))?;
                if self.overrides == Overrides::Tighten {
                    let configured = match self.mode {
                        Some(mode) => mode,
                        None => base_policy_mode()?.into(),
                    };
                    if wanted < configured {
                        let message = format!(
                            "lowers supervision below the node's mode {configured}; the execguard configuration lets \
                             annotations only raise it (set overrides = \"any\" to allow this)"
                        );
                        return Err(refused(MODE_ANNOTATION, &value, message));
                    }
                }
                Some(wanted)
            }
            None => self.mode,
        };
        let mode = match mode {
            Some(ContainerMode::Off) => return Ok(None),
            Some(ContainerMode::Monitor) => Some(Mode::Monitor),
            Some(ContainerMode::Enforce) => Some(Mode::Enforce),
            None => None,
        };
        let policy = match annotation(POLICY_ANNOTATION)? {
            None => None,
            Some(name) if self.overrides == Overrides::Tighten => {
                let message =
                    "another policy may allow what the node's policy blocks; the execguard configuration lets \
                               annotations only raise supervision (set overrides = \"any\" to allow named policies)";
                return Err(refused(POLICY_ANNOTATION, &name, message.into()));
            }
            Some(name) => Some(self.named_policy(&name)?),
        };
        Ok(Some(Selection { policy, mode }))
    }

    fn named_policy(&self, name: &str) -> Result<PathBuf, ConfigError> {
        let bad =
            |message: String| ConfigError::Annotation { annotation: POLICY_ANNOTATION, value: name.into(), message };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid || name.starts_with('.') {
            return Err(bad("a policy name is letters, digits, '-', '_' and '.', not a path".into()));
        }
        let dir =
            self.policy_dir.as_ref().ok_or_else(|| bad("no policy_dir is configured for named policies".into()))?;
        let path = dir.join(format!("{name}.toml"));
        if !path.is_file() {
            return Err(bad(format!("no policy {} (policies are NAME.toml in policy_dir)", path.display())));
        }
        Ok(path)
    }
}

/// The policy and mode one container runs under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selection {
    /// A named policy's file; `None` for the configuration's base policy.
    pub policy: Option<PathBuf>,
    /// `None` keeps the policy's own mode.
    pub mode: Option<Mode>,
}

/// containerd's message for the runtime options of runtimes other than runc
/// (`runtimeoptions.v1.Options`, in containerd's CRI API), which carries ConfigPath.
#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeOptions {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(string, tag = "2")]
    config_path: String,
}

const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";

/// The ConfigPath of a runtime's options (CRI's `options.ConfigPath`), if they carry one.
pub fn config_path(options: &Any) -> Result<Option<PathBuf>, String> {
    if !options.type_url.ends_with(RUNTIME_OPTIONS_TYPE) {
        return Ok(None);
    }
    let options = <RuntimeOptions as prost::Message>::decode(options.value.as_slice()).map_err(|e| e.to_string())?;
    Ok((!options.config_path.is_empty()).then(|| PathBuf::from(options.config_path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotations(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_zero_deadline_is_refused_naming_the_file() {
        let error = ShimConfig::parse("deadline_ms = 0\n", "/etc/execguard/config.toml").unwrap_err().to_string();
        assert!(error.contains("/etc/execguard/config.toml") && error.contains("deadline_ms = 0"), "{error}");
        assert!(ShimConfig::parse("deadline_ms = 1\n", "c.toml").is_ok());
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        let config = ShimConfig::parse("", "c.toml").unwrap();
        assert_eq!(config.fail_action(), Ok(FailAction::Closed));
        assert_eq!(config.delegate.binary, "containerd-shim-runc-v2");
        assert_eq!(
            config.resolve(&Map::new(), || Ok(Mode::Enforce)).unwrap(),
            Some(Selection { policy: None, mode: None })
        );
    }

    #[test]
    fn bad_files_name_themselves_and_the_place() {
        let error = ShimConfig::parse("mdoe = \"enforce\"\n", "/etc/execguard/config.toml").unwrap_err().to_string();
        assert!(error.starts_with("/etc/execguard/config.toml:1:1: unknown field `mdoe`"), "{error}");
        let error = ShimConfig::parse("fail = \"sometimes\"\n", "c.toml").unwrap_err().to_string();
        assert!(error.contains("unknown fail action"), "{error}");
        let error = ShimConfig::parse("mode = \"loud\"\n", "c.toml").unwrap_err().to_string();
        assert!(error.contains("loud"), "{error}");
        let http = "[[alerts.http]]\nurl = \"http://a/\"\n[[alerts.http]]\nurl = \"ftp://b/\"\n";
        let error = ShimConfig::parse(http, "c.toml").unwrap_err().to_string();
        assert!(error.starts_with("c.toml: [[alerts.http]] number 2: "), "{error}");
        let error = ShimConfig::parse("[alerts]\nrotate_keep = 0\n", "c.toml").unwrap_err().to_string();
        assert!(error.contains("rotate_keep = 0"), "{error}");
    }

    fn resolve(config: &ShimConfig, value: Value) -> Result<Option<Selection>, ConfigError> {
        config.resolve(&annotations(value), || Ok(Mode::Enforce))
    }

    #[test]
    fn with_overrides_any_annotations_choose_mode_and_policy() {
        let dir = std::env::temp_dir().join(format!("execguard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("strict.toml"), "mode = \"enforce\"\n").unwrap();
        let text = format!("mode = \"enforce\"\noverrides = \"any\"\npolicy_dir = {:?}\n", dir);
        let config = ShimConfig::parse(&text, "c.toml").unwrap();

        assert_eq!(resolve(&config, json!({"execguard.dev/mode": "off"})).unwrap(), None);
        let monitor = resolve(&config, json!({"execguard.dev/mode": "monitor"})).unwrap();
        assert_eq!(monitor, Some(Selection { policy: None, mode: Some(Mode::Monitor) }));
        let strict = resolve(&config, json!({"execguard.dev/policy": "strict"})).unwrap();
        assert_eq!(strict, Some(Selection { policy: Some(dir.join("strict.toml")), mode: Some(Mode::Enforce) }));

        for (key, value, expected) in [
            ("execguard.dev/mode", "sometimes", "annotation execguard.dev/mode=\"sometimes\": unknown mode"),
            ("execguard.dev/policy", "../etc/passwd", "not a path"),
            ("execguard.dev/policy", "missing", "no policy"),
        ] {
            let error = resolve(&config, json!({ key: value })).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        let locked = ShimConfig::parse("overrides = \"none\"\n", "c.toml").unwrap();
        let error = resolve(&locked, json!({"execguard.dev/mode": "enforce"})).unwrap_err().to_string();
        assert!(error.contains("execguard.dev/mode=\"enforce\": annotations are refused"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The default: a pod can raise its supervision, never lower it or pick a policy.
    #[test]
    fn by_default_annotations_may_only_tighten() {
        let default = ShimConfig::parse("", "c.toml").unwrap();
        assert_eq!(default.overrides, Overrides::Tighten);
        for mode in ["off", "monitor"] {
            let error = resolve(&default, json!({"execguard.dev/mode": mode})).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!(
                    "annotation execguard.dev/mode=\"{mode}\": lowers supervision below the node's mode enforce"
                )),
                "{error}"
            );
        }
        let enforce = resolve(&default, json!({"execguard.dev/mode": "enforce"})).unwrap();
        assert_eq!(enforce, Some(Selection { policy: None, mode: Some(Mode::Enforce) }));
        let error = resolve(&default, json!({"execguard.dev/policy": "strict"})).unwrap_err().to_string();
        assert!(error.contains("execguard.dev/policy=\"strict\": another policy may allow"), "{error}");

        // Against the node's mode when it sets one, else the base policy's own.
        let monitoring = ShimConfig::parse("mode = \"monitor\"\n", "c.toml").unwrap();
        let raised = resolve(&monitoring, json!({"execguard.dev/mode": "enforce"})).unwrap();
        assert_eq!(raised, Some(Selection { policy: None, mode: Some(Mode::Enforce) }));
        assert!(resolve(&monitoring, json!({"execguard.dev/mode": "monitor"})).is_ok());
        assert!(resolve(&monitoring, json!({"execguard.dev/mode": "off"})).is_err());
        let monitoring_policy =
            default.resolve(&annotations(json!({"execguard.dev/mode": "monitor"})), || Ok(Mode::Monitor));
        assert!(monitoring_policy.is_ok());
        let off = ShimConfig::parse("mode = \"off\"\n", "c.toml").unwrap();
        assert!(resolve(&off, json!({"execguard.dev/mode": "monitor"})).unwrap().is_some());
    }

    #[test]
    fn config_path_is_read_from_the_runtime_options() {
        // runtimeoptions.v1.Options { type_url = "x", config_path = "/etc/eg.toml" }
        let mut value = vec![0x0a, 1, b'x', 0x12, 12];
        value.extend_from_slice(b"/etc/eg.toml");
        let any = Any { type_url: "type.googleapis.com/runtimeoptions.v1.Options".into(), value, ..Any::default() };
        assert_eq!(config_path(&any), Ok(Some(PathBuf::from("/etc/eg.toml"))));
        let runc = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![0x12, 1, b'y'], ..Any::default() };
        assert_eq!(config_path(&runc), Ok(None));
        let broken =
            Any { type_url: "runtimeoptions.v1.Options".into(), value: vec![0x12, 40, b'/'], ..Any::default() };
        assert!(config_path(&broken).is_err());
    }
}
