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
//! policy_dir = "/etc/execguard/policies"   # NAME.toml files for execguard.dev/policy
//! allow_overrides = true                   # may pods choose their mode and policy?
//! deadline_ms = 2000
//! fail = "closed"                          # or "open" (allow and alert)
//! repeat_window_secs = 3600                # write a repeated alert once per window
//!
//! [alerts]
//! file = "/var/log/execguard/alerts.jsonl" # JSON lines; also logged by the shim
//!
//! [delegate]
//! binary = "containerd-shim-runc-v2"       # the shim that runs the containers
//! systemd_cgroup = false                   # runc options for its Create
//! binary_name = ""                         # runc binary ("" = runc)
//! root = ""                                # runc state root ("" = default)
//! ```
//!
//! Per pod or container, the annotations `execguard.dev/mode` (off | monitor | enforce)
//! and `execguard.dev/policy` (a NAME from `policy_dir`) override the file, unless
//! `allow_overrides = false`. Every bad value fails the container's Create with a message
//! that names the file or the annotation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use execguard_policy::{Mode, Policy, PolicyErrors};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::supervisor::FailAction;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/execguard/config.toml";
/// Set by tests and by hand to use another configuration file.
pub const CONFIG_ENV: &str = "EXECGUARD_CONFIG";
pub const MODE_ANNOTATION: &str = "execguard.dev/mode";
pub const POLICY_ANNOTATION: &str = "execguard.dev/policy";

/// The modes a container can be in: the policy's two, or not supervised at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    pub file: Option<PathBuf>,
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
    pub mode: Option<ContainerMode>,
    pub policy_dir: Option<PathBuf>,
    pub allow_overrides: bool,
    pub deadline_ms: u64,
    pub fail: String,
    pub repeat_window_secs: u64,
    pub alerts: Alerts,
    pub delegate: Delegate,
}

impl Default for ShimConfig {
    fn default() -> Self {
        ShimConfig {
            policy: None,
            mode: None,
            policy_dir: None,
            allow_overrides: true,
            deadline_ms: 2000,
            fail: "closed".into(),
            repeat_window_secs: 3600,
            alerts: Alerts::default(),
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
        let from_env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let (path, required) = match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => (path, true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
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
            Some(path) => Policy::load(path),
            None => Policy::embedded(),
        }
        .map_err(ConfigError::Policy)
    }

    /// What a container with these annotations runs under: `None` for mode off, else the
    /// name of its policy (None for the base policy) and its mode, if the configuration or
    /// an annotation sets one.
    pub fn resolve(&self, annotations: &Map<String, Value>) -> Result<Option<Selection>, ConfigError> {
        let annotation = |key: &'static str| -> Result<Option<String>, ConfigError> {
            match annotations.get(key) {
                None => Ok(None),
                Some(Value::String(value)) if self.allow_overrides => Ok(Some(value.clone())),
                Some(value) => Err(ConfigError::Annotation {
                    annotation: key,
                    value: value.to_string(),
                    message: if self.allow_overrides {
                        "must be a string".into()
                    } else {
                        "overrides are disabled by the execguard configuration (allow_overrides = false)".into()
                    },
                }),
            }
        };
        let mode = match annotation(MODE_ANNOTATION)? {
            Some(value) => Some(value.parse::<ContainerMode>().map_err(|message| ConfigError::Annotation {
                annotation: MODE_ANNOTATION,
                value: value.clone(),
                message,
            })?),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotations(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        let config = ShimConfig::parse("", "c.toml").unwrap();
        assert_eq!(config.fail_action(), Ok(FailAction::Closed));
        assert_eq!(config.delegate.binary, "containerd-shim-runc-v2");
        assert_eq!(config.resolve(&Map::new()).unwrap(), Some(Selection { policy: None, mode: None }));
    }

    #[test]
    fn bad_files_name_themselves_and_the_place() {
        let error = ShimConfig::parse("mdoe = \"enforce\"\n", "/etc/execguard/config.toml").unwrap_err().to_string();
        assert!(error.starts_with("/etc/execguard/config.toml:1:1: unknown field `mdoe`"), "{error}");
        let error = ShimConfig::parse("fail = \"sometimes\"\n", "c.toml").unwrap_err().to_string();
        assert!(error.contains("unknown fail action"), "{error}");
        let error = ShimConfig::parse("mode = \"loud\"\n", "c.toml").unwrap_err().to_string();
        assert!(error.contains("loud"), "{error}");
    }

    #[test]
    fn annotations_choose_mode_and_policy_when_allowed() {
        let dir = std::env::temp_dir().join(format!("execguard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("strict.toml"), "mode = \"enforce\"\n").unwrap();
        let config = ShimConfig::parse(&format!("mode = \"enforce\"\npolicy_dir = {:?}\n", dir), "c.toml").unwrap();

        let off = config.resolve(&annotations(json!({"execguard.dev/mode": "off"}))).unwrap();
        assert_eq!(off, None);
        let monitor = config.resolve(&annotations(json!({"execguard.dev/mode": "monitor"}))).unwrap();
        assert_eq!(monitor, Some(Selection { policy: None, mode: Some(Mode::Monitor) }));
        let strict = config.resolve(&annotations(json!({"execguard.dev/policy": "strict"}))).unwrap();
        assert_eq!(strict, Some(Selection { policy: Some(dir.join("strict.toml")), mode: Some(Mode::Enforce) }));

        for (key, value, expected) in [
            ("execguard.dev/mode", "sometimes", "annotation execguard.dev/mode=\"sometimes\": unknown mode"),
            ("execguard.dev/policy", "../etc/passwd", "not a path"),
            ("execguard.dev/policy", "missing", "no policy"),
        ] {
            let error = config.resolve(&annotations(json!({ key: value }))).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        let locked = ShimConfig::parse("allow_overrides = false\n", "c.toml").unwrap();
        let error = locked.resolve(&annotations(json!({"execguard.dev/mode": "off"}))).unwrap_err().to_string();
        assert!(error.contains("overrides are disabled"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
