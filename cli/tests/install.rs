//! `execguard install containerd` / `uninstall` against the real containerd binary (its
//! `config dump` is the judge of what a configuration means), on files in a scratch
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// `execguard` as it ships: with `containerd-shim-execguard-v2` next to it, which install
/// copies. The shim is another package's binary, which `cargo test` of this package does
/// not build, so it is built here once (a no-op when it is up to date) and both are staged
/// in a directory of their own.
fn shipped_execguard() -> &'static Path {
    static STAGED: OnceLock<PathBuf> = OnceLock::new();
    STAGED.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let build = Command::new(cargo)
            .args(["build", "--locked", "--quiet", "--message-format=json", "-p", "execguard-shim"])
            .args(["--bin", "containerd-shim-execguard-v2"])
            .output()
            .expect("run cargo to build the shim");
        assert!(build.status.success(), "building the shim failed:\n{}", String::from_utf8_lossy(&build.stderr));
        let shim = String::from_utf8_lossy(&build.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the shim executable it built");
        // Under the target dir, so nothing is left in TMPDIR; each file is copied aside and
        // renamed into place, so a concurrent run never executes a half-written binary.
        let staged = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shipped-execguard");
        std::fs::create_dir_all(&staged).expect("staging dir");
        for (from, name) in
            [(Path::new(env!("CARGO_BIN_EXE_execguard")), "execguard"), (&shim, "containerd-shim-execguard-v2")]
        {
            let partial = staged.join(format!(".{name}.{}", std::process::id()));
            std::fs::copy(from, &partial).expect("stage a binary");
            std::fs::rename(&partial, staged.join(name)).expect("stage a binary");
        }
        staged.join("execguard")
    })
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("execguard-install-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn execguard(&self, verb: &str, extra: &[&str]) -> Output {
        let (config, drop_in, shims, dir) =
            (self.path("config.toml"), self.path("conf.d/99-execguard.toml"), self.path("bin"), self.path("execguard"));
        Command::new(shipped_execguard())
            .args([verb, "containerd", "--config"])
            .arg(config)
            .arg("--drop-in")
            .arg(drop_in)
            .arg("--shim-dir")
            .arg(shims)
            .arg("--execguard-dir")
            .arg(dir)
            .args(extra)
            .output()
            .expect("run execguard")
    }
    fn dump(&self) -> String {
        let output = Command::new("containerd")
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["config", "dump"])
            .output()
            .expect("containerd must be installed (scripts/test installs it)");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

const USER_CONFIG: &str = r#"# The operator's own configuration: comments and order must survive.
version = 2
root = "ROOT/root"   # where images live
state = "ROOT/state"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.example/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
"#;

fn user_config(scratch: &Scratch) -> String {
    USER_CONFIG.replace("ROOT", &scratch.0.display().to_string())
}

#[test]
fn install_registers_the_runtime_and_keeps_every_other_setting() {
    let scratch = Scratch::new("fresh");
    let original = user_config(&scratch);
    std::fs::write(scratch.path("config.toml"), &original).unwrap();
    let out = scratch.execguard("install", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("next: restart containerd"), "{}", text(&out));

    let dump = scratch.dump();
    assert!(dump.contains("runtime_type = \"io.containerd.execguard.v2\""), "{dump}");
    assert!(dump.contains("pod_annotations = [\"execguard.dev/*\"]"), "{dump}");
    assert!(dump.contains(&format!("ConfigPath = \"{}\"", scratch.path("execguard/config.toml").display())), "{dump}");
    // The operator's CRI settings are still in force, and runc is still the default.
    assert!(dump.contains("sandbox_image = \"registry.example/pause:3.9\""), "{dump}");
    assert!(dump.contains("snapshotter = \"native\""), "{dump}");
    assert!(dump.contains("default_runtime_name = \"runc\""), "{dump}");

    let main = read(&scratch.path("config.toml"));
    assert!(
        main.starts_with("# The operator's own configuration: comments and order must survive.\nversion = 2\n"),
        "{main}"
    );
    assert!(main.contains("# where images live"), "{main}");
    assert!(
        main.ends_with("[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    snapshotter = \"native\"\n"),
        "{main}"
    );
    assert!(
        main.contains(&format!("imports = [\"{}\"]", scratch.path("conf.d/99-execguard.toml").display())),
        "{main}"
    );
    assert!(scratch.path("bin/containerd-shim-execguard-v2").is_file());
    assert!(read(&scratch.path("execguard/policy.toml")).contains("falco.netcat_rce"));
    let backups: Vec<_> = std::fs::read_dir(&scratch.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("config.toml.execguard-backup-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(read(&backups[0].path()), original);

    // Idempotent.
    let drop_in = read(&scratch.path("conf.d/99-execguard.toml"));
    let again = scratch.execguard("install", &[]);
    assert!(text(&again).contains("nothing to change"), "{}", text(&again));
    assert_eq!(read(&scratch.path("config.toml")), main);
    assert_eq!(read(&scratch.path("conf.d/99-execguard.toml")), drop_in);

    // Uninstall puts the main file back as it was.
    let out = scratch.execguard("uninstall", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read(&scratch.path("config.toml")), original);
    assert!(!scratch.path("conf.d/99-execguard.toml").exists());
    assert!(!scratch.path("bin/containerd-shim-execguard-v2").exists());
    assert!(!scratch.dump().contains("io.containerd.execguard.v2"));
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let scratch = Scratch::new("dry");
    let original = user_config(&scratch);
    std::fs::write(scratch.path("config.toml"), &original).unwrap();
    let out = scratch.execguard("install", &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("+imports = ["), "{printed}");
    assert!(printed.contains("runtime_type = \"io.containerd.execguard.v2\""), "{printed}");
    assert!(printed.contains("dry run: nothing was written"));
    assert_eq!(read(&scratch.path("config.toml")), original);
    assert!(!scratch.path("conf.d").exists() && !scratch.path("execguard").exists() && !scratch.path("bin").exists());
}

#[test]
fn set_as_default_makes_execguard_the_default_runtime() {
    let scratch = Scratch::new("default");
    std::fs::write(scratch.path("config.toml"), user_config(&scratch)).unwrap();
    let out = scratch.execguard("install", &["--set-as-default", "--runtime-name", "guarded"]);
    assert!(out.status.success(), "{}", text(&out));
    let dump = scratch.dump();
    assert!(dump.contains("default_runtime_name = \"guarded\""), "{dump}");
    assert!(dump.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.guarded]"), "{dump}");
}

#[test]
fn files_it_cannot_parse_or_support_are_left_alone() {
    let scratch = Scratch::new("broken");
    for (content, expected) in [
        ("version = 2\n[plugins\n", "cannot parse it as TOML, so nothing was changed"),
        ("root = \"/x\"\n", "config version 1 is not supported"),
        ("version = 2\nimports = \"/etc/x.toml\"\n", "`imports` is not an array"),
    ] {
        std::fs::write(scratch.path("config.toml"), content).unwrap();
        let out = scratch.execguard("install", &[]);
        assert_eq!(out.status.code(), Some(1), "{content}");
        assert!(text(&out).contains(&format!("{}: ", scratch.path("config.toml").display())), "{}", text(&out));
        assert!(text(&out).contains(expected), "{}", text(&out));
        assert_eq!(read(&scratch.path("config.toml")), content);
        assert!(!scratch.path("conf.d").exists());
    }
}

#[test]
fn a_missing_main_config_is_created() {
    let scratch = Scratch::new("missing");
    let out = scratch.execguard("install", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let main = read(&scratch.path("config.toml"));
    assert!(main.starts_with("version = 2\nimports = ["), "{main}");
    assert!(scratch.dump().contains("io.containerd.execguard.v2"));
}
