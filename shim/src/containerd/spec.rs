//! The change the shim makes to a container's OCI spec (config.json): a seccomp rule that
//! sends execve and execveat to the supervisor's listener.
//!
//! The spec is edited as JSON, not through typed structs: oci-spec drops fields it does not
//! know on a round trip, and the spec is containerd's, not ours. Only `linux.seccomp` is
//! touched, and the file is replaced atomically (write beside it, then rename), so runc
//! never reads half a spec.

use std::io;
use std::path::Path;

use serde_json::{json, Map, Value};

/// The syscalls the supervisor decides.
const SUPERVISED: [&str; 2] = ["execve", "execveat"];

/// What the shim adds to a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecPatch {
    /// The supervisor's socket, where runc sends the listener fd.
    pub listener_path: String,
    /// Passed back by runc with every connection: names the container.
    pub listener_metadata: String,
}

/// Why a spec could not be patched.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} is not valid JSON: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("{path}: {what}")]
    Shape { path: String, what: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
}

impl SpecPatch {
    /// Adds the notify rule to a spec.
    ///
    /// With no seccomp profile, it adds one that allows everything but execve and
    /// execveat, for the native and the compat architectures. With a profile (Kubernetes'
    /// RuntimeDefault, a Localhost profile, ctr's default), it keeps every rule and only
    /// takes execve and execveat out of them: libseccomp gives an ALLOW rule for a syscall
    /// precedence over a NOTIFY rule for it, so an allowed execve would silently bypass
    /// the supervisor. The profile's architectures are kept as they are: adding one
    /// would open that ABI to the profile's allowed syscalls.
    pub fn apply(&self, spec: &mut Value) -> Result<(), String> {
        let root = spec.as_object_mut().ok_or("the spec is not a JSON object")?;
        let linux = root.entry("linux").or_insert_with(|| json!({}));
        let linux = linux.as_object_mut().ok_or("`linux` is not an object")?;
        let seccomp = linux.entry("seccomp").or_insert(Value::Null);
        if seccomp.is_null() {
            *seccomp = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [],
            });
        }
        let seccomp = seccomp.as_object_mut().ok_or("`linux.seccomp` is not an object")?;
        if seccomp.get("defaultAction").and_then(Value::as_str) == Some("SCMP_ACT_NOTIFY") {
            return Err("the seccomp profile's defaultAction is SCMP_ACT_NOTIFY, which runc refuses".into());
        }
        let syscalls = seccomp.entry("syscalls").or_insert_with(|| json!([]));
        let rules = syscalls.as_array_mut().ok_or("`linux.seccomp.syscalls` is not an array")?;
        for rule in rules.iter_mut() {
            if let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) {
                names.retain(|name| !name.as_str().is_some_and(|n| SUPERVISED.contains(&n)));
            }
        }
        rules.retain(|rule| rule.get("names").and_then(Value::as_array).is_none_or(|names| !names.is_empty()));
        rules.push(json!({"names": SUPERVISED, "action": "SCMP_ACT_NOTIFY"}));
        seccomp.insert("listenerPath".into(), Value::String(self.listener_path.clone()));
        seccomp.insert("listenerMetadata".into(), Value::String(self.listener_metadata.clone()));
        Ok(())
    }

    /// Patches `BUNDLE/config.json` in place, atomically.
    pub fn apply_to_bundle(&self, bundle: &Path) -> Result<(), SpecError> {
        let path = bundle.join("config.json");
        let shown = path.display().to_string();
        let text = std::fs::read(&path).map_err(|source| SpecError::Read { path: shown.clone(), source })?;
        let mut spec: Value =
            serde_json::from_slice(&text).map_err(|source| SpecError::Json { path: shown.clone(), source })?;
        self.apply(&mut spec).map_err(|what| SpecError::Shape { path: shown.clone(), what })?;
        let staged = bundle.join(".config.json.execguard");
        let bytes = serde_json::to_vec(&spec).map_err(|source| SpecError::Json { path: shown.clone(), source })?;
        std::fs::write(&staged, bytes)
            .and_then(|()| std::fs::rename(&staged, &path))
            .map_err(|source| SpecError::Write { path: shown, source })
    }
}

/// The spec's annotations (`annotations`), empty when there are none.
pub fn annotations(spec: &Value) -> Map<String, Value> {
    spec.get("annotations").and_then(Value::as_object).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch() -> SpecPatch {
        SpecPatch { listener_path: "/run/execguard/x.sock".into(), listener_metadata: "ctr-1".into() }
    }

    #[test]
    fn a_spec_without_seccomp_gets_an_allow_all_profile_with_the_notify_rule() {
        let mut spec =
            json!({"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"namespaces": []}, "x-unknown": 1});
        patch().apply(&mut spec).unwrap();
        let seccomp = &spec["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(seccomp["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        assert_eq!(seccomp["syscalls"], json!([{"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}]));
        assert_eq!(seccomp["listenerPath"], "/run/execguard/x.sock");
        assert_eq!(seccomp["listenerMetadata"], "ctr-1");
        // Fields the shim does not own are kept as they were.
        assert_eq!(spec["x-unknown"], 1);
        assert_eq!(spec["linux"]["namespaces"], json!([]));
    }

    #[test]
    fn an_existing_profile_is_kept_but_cannot_allow_exec() {
        let mut spec = json!({"linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["read", "execve", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["execveat"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]}}});
        patch().apply(&mut spec).unwrap();
        let seccomp = &spec["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(seccomp["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(
            seccomp["syscalls"],
            json!([
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}
            ])
        );
    }

    #[test]
    fn specs_that_cannot_take_the_rule_are_errors() {
        assert!(patch().apply(&mut json!([])).is_err());
        assert!(patch().apply(&mut json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}}})).is_err());
        assert!(patch().apply(&mut json!({"linux": {"seccomp": {"syscalls": {}}}})).is_err());
    }

    #[test]
    fn the_bundle_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("execguard-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"ociVersion":"1.0.2","annotations":{"a":"b"}}"#).unwrap();
        patch().apply_to_bundle(&dir).unwrap();
        let spec: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(spec["linux"]["seccomp"]["listenerMetadata"], "ctr-1");
        assert_eq!(annotations(&spec)["a"], "b");
        assert!(!dir.join(".config.json.execguard").exists());
        std::fs::write(dir.join("config.json"), "{not json").unwrap();
        let error = patch().apply_to_bundle(&dir).unwrap_err().to_string();
        assert!(error.contains("config.json is not valid JSON"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
