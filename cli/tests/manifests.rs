//! The Kubernetes manifests in config/kubernetes agree with the code: the ConfigMap's files
//! are a valid configuration and policy, the RuntimeClass's handler is the runtime name
//! the installer registers, and the DaemonSet mounts the ConfigMap it documents.

use execguard_policy::{Action, ExecEvent, Policy};
use execguard_shim::config::ShimConfig;

fn manifest(name: &str) -> String {
    let path = format!("{}/../config/kubernetes/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of a `KEY: |` block scalar (indented four spaces under `data:`).
fn block(yaml: &str, key: &str) -> String {
    let header = format!("  {key}: |");
    let mut lines = yaml.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no {header:?}");
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect()
}

#[test]
fn the_configmap_holds_a_valid_configuration_and_policy() {
    let configmap = manifest("configmap.yaml");
    let config = ShimConfig::parse(&block(&configmap, "config.toml"), "configmap.yaml config.toml").unwrap();
    assert_eq!(config.policy_dir.as_deref(), Some(std::path::Path::new("/etc/execguard/policies")));
    let strict = Policy::parse(&block(&configmap, "strict.toml"), "configmap.yaml strict.toml").unwrap();
    let curl = ExecEvent::new("/usr/bin/curl", vec!["curl".into(), "https://example.com".into()]);
    assert_eq!(strict.decide(&curl).action, Action::Block);
}

#[test]
fn the_runtimeclass_handler_is_the_installed_runtime_name() {
    assert!(manifest("runtimeclass.yaml").contains("\nhandler: execguard\n"));
    for example in ["example-pod.yaml", "example-deployment.yaml"] {
        assert!(manifest(example).contains("runtimeClassName: execguard"), "{example}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_execguard"))
        .args(["install", "containerd", "--help"])
        .output()
        .expect("execguard install --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("[default: execguard]"));
}

#[test]
fn the_installer_uses_the_configmap_and_the_install_command() {
    let daemonset = manifest("installer-daemonset.yaml");
    assert!(daemonset.contains("configMap: {name: execguard}"));
    assert!(daemonset.contains("/usr/local/bin/execguard install containerd"));
    assert!(manifest("configmap.yaml").contains("  name: execguard\n  namespace: kube-system"));
}

#[test]
fn node_exporter_reads_the_directory_the_shims_write_to() {
    let configmap = manifest("configmap.yaml");
    let config = ShimConfig::parse(&block(&configmap, "config.toml"), "configmap.yaml config.toml").unwrap();
    let dir = config.metrics.textfile_dir.display().to_string();
    let patch = manifest("node-exporter-textfile.yaml");
    assert!(patch.contains(&format!("hostPath: {{path: {dir}, ")), "{patch}");
    assert!(patch.contains(&format!("--collector.textfile.directory=/host{dir}\n")), "{patch}");
    assert!(patch.contains(&format!("mountPath: /host{dir}, ")), "{patch}");
}
