//! `execguard install containerd` / `uninstall` against the real containerd binaries of
//! both lines (their `config dump` is the judge of what a configuration means), on files in
//! a scratch directory: Debian's containerd 1.6.20 for config version 2, containerd 2.3.4
//! (from a tarball, see `containerd_2x`) for versions 3 and 4 and for a version 2 file that
//! 2.x migrates.

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

fn version_of(containerd: &Path) -> String {
    let output = Command::new(containerd)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", containerd.display()));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Debian's containerd on PATH (scripts/test installs it), checked to be of the 1.x line:
/// the version 2 tests mean containerd's per-plugin merge.
fn containerd_1x() -> &'static Path {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let containerd = PathBuf::from("containerd");
        let version = version_of(&containerd);
        let words: Vec<&str> = version.split_whitespace().collect();
        assert!(
            words.get(1) == Some(&"github.com/containerd/containerd")
                && words.get(2).is_some_and(|v| v.starts_with("1.")),
            "the containerd on PATH must be Debian's 1.6 (scripts/test installs it), not: {version}"
        );
        containerd
    })
}

const CONTAINERD_2X_TARBALL: &str = "containerd-2.3.4-linux-amd64.tar.gz";
/// `sha256sum` of the tarball the 2.x tests were written against.
const CONTAINERD_2X_SHA256: &str = "599799aa1497cc7f3f104adaac99dd6fa6bcf55a65cabf343af3975503e9feff";

/// containerd 2.3.4, unpacked from its tarball once into the target dir, in a directory
/// named by the tarball's sha256. The tarball is `$EXECGUARD_CONTAINERD_2X_TARBALL`, or
/// `../shared/containerd/` beside the workspace when that is unset.
fn containerd_2x() -> &'static Path {
    static UNPACKED: OnceLock<PathBuf> = OnceLock::new();
    UNPACKED.get_or_init(|| {
        let tarball = match std::env::var_os("EXECGUARD_CONTAINERD_2X_TARBALL") {
            Some(path) => PathBuf::from(path),
            // CARGO_MANIFEST_DIR is cli/; its parent the workspace root.
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/containerd").join(CONTAINERD_2X_TARBALL),
        };
        assert!(
            tarball.is_file(),
            "{} is not a file: the config version 3 and 4 tests need containerd 2.3.4. Set \
             EXECGUARD_CONTAINERD_2X_TARBALL to the path of {CONTAINERD_2X_TARBALL} (sha256 {CONTAINERD_2X_SHA256}), \
             or put it in ../shared/containerd/ beside the workspace",
            tarball.display()
        );
        let sum = Command::new("sha256sum").arg(&tarball).output().expect("run sha256sum");
        assert!(sum.status.success(), "sha256sum {}: {}", tarball.display(), String::from_utf8_lossy(&sum.stderr));
        let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap_or_default().to_string();
        assert_eq!(
            sum,
            CONTAINERD_2X_SHA256,
            "{} is not the containerd 2.3.4 tarball these tests were written against",
            tarball.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("containerd-{sum}"));
        let containerd = dir.join("bin/containerd");
        if !containerd.is_file() {
            // Unpacked aside and renamed into place whole, so that a concurrent run never
            // uses half of it; when another run got there first, its copy is as good.
            let partial = dir.with_file_name(format!(".containerd-{sum}.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&partial);
            std::fs::create_dir_all(&partial).expect("a directory to unpack containerd into");
            let tar = Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&partial).output().expect("run tar");
            assert!(tar.status.success(), "tar -xzf {}: {}", tarball.display(), String::from_utf8_lossy(&tar.stderr));
            if std::fs::rename(&partial, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&partial);
            }
        }
        let version = version_of(&containerd);
        assert!(version.contains(" v2.3.4 "), "{} is not containerd 2.3.4: {version}", containerd.display());
        containerd
    })
}

struct Scratch {
    dir: PathBuf,
    containerd: &'static Path,
}

impl Scratch {
    fn new(name: &str, containerd: &'static Path) -> Scratch {
        let dir = std::env::temp_dir().join(format!("execguard-install-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch { dir, containerd }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
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
            .arg("--containerd")
            .arg(self.containerd)
            .args(extra)
            .output()
            .expect("run execguard")
    }
    fn containerd(&self, args: &[&str]) -> String {
        let output = Command::new(self.containerd).args(args).output().expect("run containerd");
        assert!(output.status.success(), "containerd {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
    /// The effective configuration of the main file.
    fn dump(&self) -> String {
        self.containerd(&["--config", &self.path("config.toml").display().to_string(), "config", "dump"])
    }
    /// What containerd runs with when there is no main file.
    fn defaults(&self) -> String {
        self.containerd(&["config", "default"])
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn parsed(dump: &str) -> toml::Table {
    toml::from_str(dump).unwrap_or_else(|e| panic!("containerd's dump is not TOML: {e}\n{dump}"))
}

fn at<'a>(table: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(table.get(*first)?, |value, key| value.get(*key))
}

/// Where the dump's CRI plugin keeps its runtimes: a version 2 dump is containerd 1.x's.
fn cri_runtime_plugin(dump: &toml::Table) -> &'static str {
    match dump.get("version").and_then(toml::Value::as_integer) {
        Some(2) => "io.containerd.grpc.v1.cri",
        _ => "io.containerd.cri.v1.runtime",
    }
}

/// A dump without what the installer is meant to change: `imports`, the runtime, and the
/// default runtime's name when it was asked to set it.
fn untouched(dump: &toml::Table, runtime: &str, set_as_default: bool) -> String {
    let mut dump = dump.clone();
    let plugin = cri_runtime_plugin(&dump);
    dump.remove("imports");
    let containerd = dump["plugins"][plugin]["containerd"].as_table_mut().expect("the CRI plugin's containerd table");
    if set_as_default {
        containerd.remove("default_runtime_name");
    }
    containerd["runtimes"].as_table_mut().expect("runtimes").remove(runtime);
    toml::to_string(&dump).expect("a dump prints as TOML")
}

/// Installs on `scratch` as it is, and checks with containerd that the runtime is there as
/// meant and that nothing else in the effective configuration changed. Returns the dump
/// before (containerd's defaults when there is no main file) and the one after.
fn install_checked(scratch: &Scratch, runtime: &str, set_as_default: bool) -> (String, toml::Table) {
    let before = if scratch.path("config.toml").exists() { scratch.dump() } else { scratch.defaults() };
    let mut extra = vec!["--runtime-name", runtime];
    if set_as_default {
        extra.push("--set-as-default");
    }
    let out = scratch.execguard("install", &extra);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("next: restart containerd"), "{}", text(&out));
    let dump = scratch.dump();
    let after = parsed(&dump);
    let plugin = cri_runtime_plugin(&after);
    let entry = |path: &[&str]| {
        let full: Vec<&str> = ["plugins", plugin, "containerd"].iter().chain(path).copied().collect();
        at(&after, &full).cloned()
    };
    let string = |s: &str| Some(toml::Value::String(s.into()));
    assert_eq!(entry(&["runtimes", runtime, "runtime_type"]), string("io.containerd.execguard.v2"), "{dump}");
    assert_eq!(
        entry(&["runtimes", runtime, "pod_annotations"]),
        Some(toml::Value::Array(vec![toml::Value::String("execguard.dev/*".into())])),
        "{dump}"
    );
    let config_path = scratch.path("execguard/config.toml").display().to_string();
    assert_eq!(entry(&["runtimes", runtime, "options", "ConfigPath"]), string(&config_path), "{dump}");
    let default = if set_as_default { runtime } else { "runc" };
    assert_eq!(entry(&["default_runtime_name"]), string(default), "{dump}");
    let (was, is) = (untouched(&parsed(&before), runtime, set_as_default), untouched(&after, runtime, set_as_default));
    assert!(
        was == is,
        "install changed more than the runtime:\n{}",
        similar::TextDiff::from_lines(&was, &is).unified_diff().header("before", "after")
    );
    (before, after)
}

/// Uninstalls, and checks that containerd's effective configuration is what it was before
/// the install and that the main file is as the operator wrote it.
fn uninstall_checked(scratch: &Scratch, before: &str, original: Option<&str>) {
    let out = scratch.execguard("uninstall", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!scratch.path("conf.d/99-execguard.toml").exists());
    assert!(!scratch.path("bin/containerd-shim-execguard-v2").exists());
    let dump = scratch.dump();
    match original {
        Some(original) => {
            assert_eq!(read(&scratch.path("config.toml")), original);
            assert_eq!(dump, before);
        }
        None => {
            // The main file install wrote stays, without the import: the same as no file.
            let (mut was, mut is) = (parsed(before), parsed(&dump));
            was.remove("imports");
            is.remove("imports");
            assert_eq!(was, is, "{dump}");
        }
    }
}

fn backups(scratch: &Scratch) -> Vec<PathBuf> {
    std::fs::read_dir(&scratch.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("config.toml.execguard-backup-"))
        .map(|e| e.path())
        .collect()
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
    USER_CONFIG.replace("ROOT", &scratch.dir.display().to_string())
}

#[test]
fn install_registers_the_runtime_and_keeps_every_other_setting() {
    let scratch = Scratch::new("fresh", containerd_1x());
    let original = user_config(&scratch);
    std::fs::write(scratch.path("config.toml"), &original).unwrap();
    let (before, _) = install_checked(&scratch, "execguard", false);

    // The operator's CRI settings are still in force.
    let dump = scratch.dump();
    assert!(dump.contains("sandbox_image = \"registry.example/pause:3.9\""), "{dump}");
    assert!(dump.contains("snapshotter = \"native\""), "{dump}");

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
    // containerd 1.6 replaces the main file's CRI table with the drop-in's: all of it is there.
    let drop_in = read(&scratch.path("conf.d/99-execguard.toml"));
    assert!(drop_in.contains("\nversion = 2\n"), "{drop_in}");
    assert!(drop_in.contains("sandbox_image = \"registry.example/pause:3.9\""), "{drop_in}");
    assert!(scratch.path("bin/containerd-shim-execguard-v2").is_file());
    assert!(read(&scratch.path("execguard/policy.toml")).contains("falco.netcat_rce"));
    let backups = backups(&scratch);
    assert_eq!(backups.len(), 1);
    assert_eq!(read(&backups[0]), original);

    // Idempotent.
    let again = scratch.execguard("install", &[]);
    assert!(text(&again).contains("nothing to change"), "{}", text(&again));
    assert_eq!(read(&scratch.path("config.toml")), main);
    assert_eq!(read(&scratch.path("conf.d/99-execguard.toml")), drop_in);

    uninstall_checked(&scratch, &before, Some(&original));
}

/// An operator's version 3 file for containerd 2.x, with CRI settings of its own in both
/// CRI plugins, in a runtime's options and in a runtime of its own.
const USER_CONFIG_V3: &str = r#"# The operator's containerd 2.x configuration.
version = 3
root = "ROOT/root"
state = "ROOT/state"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "registry.example/pause:3.10"

[plugins."io.containerd.cri.v1.runtime"]
  max_container_log_line_size = 1234
  [plugins."io.containerd.cri.v1.runtime".cni]
    conf_dir = "/etc/example/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = true
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.kata]
      runtime_type = "io.containerd.kata.v2"
"#;

#[test]
fn a_version_3_file_on_2x_keeps_its_cri_settings_and_gets_the_runtime_alone() {
    let scratch = Scratch::new("v3", containerd_2x());
    let original = USER_CONFIG_V3.replace("ROOT", &scratch.dir.display().to_string());
    std::fs::write(scratch.path("config.toml"), &original).unwrap();
    let (before, after) = install_checked(&scratch, "execguard", false);
    // The file's own settings were in force, and stay (install_checked: nothing changed).
    let runtime = "io.containerd.cri.v1.runtime";
    for (path, value) in [
        (&["plugins", runtime, "max_container_log_line_size"][..], toml::Value::Integer(1234)),
        (&["plugins", runtime, "cni", "conf_dir"], "/etc/example/net.d".into()),
        (&["plugins", runtime, "containerd", "runtimes", "runc", "options", "SystemdCgroup"], true.into()),
        (&["plugins", runtime, "containerd", "runtimes", "kata", "runtime_type"], "io.containerd.kata.v2".into()),
        (&["plugins", "io.containerd.cri.v1.images", "snapshotter"], "native".into()),
        (&["plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"], "registry.example/pause:3.10".into()),
    ] {
        assert_eq!(at(&after, path), Some(&value), "{path:?}");
    }
    // 2.x merges key by key: the drop-in is the runtime alone, in the main file's version
    // (2.3.4 refuses a drop-in of a higher version than the main file).
    let drop_in = read(&scratch.path("conf.d/99-execguard.toml"));
    assert!(drop_in.contains("\nversion = 3\n"), "{drop_in}");
    assert!(
        drop_in.contains("\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.execguard]\n"),
        "{drop_in}"
    );
    assert!(!drop_in.contains("max_container_log_line_size") && !drop_in.contains("runc"), "{drop_in}");
    let main = read(&scratch.path("config.toml"));
    assert!(main.starts_with("# The operator's containerd 2.x configuration.\nversion = 3\n"), "{main}");
    assert!(main.ends_with("runtime_type = \"io.containerd.kata.v2\"\n"), "{main}");

    let again = scratch.execguard("install", &[]);
    assert!(text(&again).contains("nothing to change"), "{}", text(&again));
    uninstall_checked(&scratch, &before, Some(&original));
}

#[test]
fn containerd_2x_default_config_as_the_main_file() {
    let scratch = Scratch::new("v4-default", containerd_2x());
    // `config default` of 2.3.4 is version 4 and imports /etc/containerd/conf.d/*.toml.
    let original = scratch.defaults();
    assert!(original.starts_with("version = 4\n"), "{original}");
    std::fs::write(scratch.path("config.toml"), &original).unwrap();
    let (before, _) = install_checked(&scratch, "execguard", false);
    let drop_in = read(&scratch.path("conf.d/99-execguard.toml"));
    assert!(drop_in.contains("\nversion = 4\n"), "{drop_in}");
    // Only the import is new in the main file.
    let main = read(&scratch.path("config.toml"));
    let expected = original.replace(
        "imports = ['/etc/containerd/conf.d/*.toml']",
        &format!("imports = ['/etc/containerd/conf.d/*.toml', {:?}]", scratch.path("conf.d/99-execguard.toml")),
    );
    assert_eq!(main, expected);
    uninstall_checked(&scratch, &before, Some(&original));
}

#[test]
fn a_version_2_file_on_2x_gets_a_version_2_drop_in_that_containerd_migrates() {
    let scratch = Scratch::new("v2-on-2x", containerd_2x());
    let original = user_config(&scratch);
    std::fs::write(scratch.path("config.toml"), &original).unwrap();
    let (before, after) = install_checked(&scratch, "execguard", false);
    // The operator's sandbox image, which containerd migrates to the CRI image plugin. (Its
    // `containerd.snapshotter` is lost, with or without execguard: 2.3.4's image plugin
    // migrates it only from a file that has a `containerd.runtimes` table too.)
    let images = "io.containerd.cri.v1.images";
    assert_eq!(
        at(&after, &["plugins", images, "pinned_images", "sandbox"]),
        Some(&"registry.example/pause:3.9".into())
    );
    let drop_in = read(&scratch.path("conf.d/99-execguard.toml"));
    assert!(drop_in.contains("\nversion = 2\n"), "{drop_in}");
    assert!(drop_in.contains("\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.execguard]\n"), "{drop_in}");
    assert!(!drop_in.contains("sandbox_image"), "{drop_in}");
    uninstall_checked(&scratch, &before, Some(&original));
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let scratch = Scratch::new("dry", containerd_1x());
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
    for (line, containerd, config) in [("1x", containerd_1x(), USER_CONFIG), ("2x", containerd_2x(), USER_CONFIG_V3)] {
        let scratch = Scratch::new(&format!("default-{line}"), containerd);
        let original = config.replace("ROOT", &scratch.dir.display().to_string());
        std::fs::write(scratch.path("config.toml"), &original).unwrap();
        let (before, _) = install_checked(&scratch, "guarded", true);
        uninstall_checked(&scratch, &before, Some(&original));
    }
}

#[test]
fn a_missing_main_config_is_created_in_the_version_containerd_reads() {
    for (line, containerd, version) in [("1x", containerd_1x(), 2), ("2x", containerd_2x(), 4)] {
        let scratch = Scratch::new(&format!("missing-{line}"), containerd);
        let (before, _) = install_checked(&scratch, "execguard", false);
        let main = read(&scratch.path("config.toml"));
        assert!(main.starts_with(&format!("version = {version}\nimports = [")), "{line}: {main}");
        uninstall_checked(&scratch, &before, None);
    }
}

#[test]
fn files_it_cannot_parse_or_support_are_left_alone() {
    let cases = [
        (containerd_1x(), "version = 2\n[plugins\n", "cannot parse it as TOML, so nothing was changed"),
        (containerd_1x(), "root = \"/x\"\n", "config version 1 is not supported"),
        (containerd_1x(), "version = 2\nimports = \"/etc/x.toml\"\n", "`imports` is not an array"),
        // 1.6.20 itself reads this file without a word and ignores its CRI tables.
        (containerd_1x(), "version = 3\n", "config version 3 is newer than"),
        (containerd_2x(), "root = \"/x\"\n", "config version 1 is not supported"),
        (containerd_2x(), "version = 5\n", "config version 5 is not supported"),
    ];
    for (case, (containerd, content, expected)) in cases.into_iter().enumerate() {
        let scratch = Scratch::new(&format!("broken-{case}"), containerd);
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
fn relative_paths_are_imported_as_containerd_resolves_them() {
    // containerd reads a relative import from the main file's directory, not from where
    // the installer ran: run it from the scratch dir's parent with paths relative to that.
    for (line, containerd) in [("1x", containerd_1x()), ("2x", containerd_2x())] {
        let scratch = Scratch::new(&format!("relative-{line}"), containerd);
        let original = user_config(&scratch);
        std::fs::write(scratch.path("config.toml"), &original).unwrap();
        let (parent, name) = (scratch.dir.parent().unwrap(), scratch.dir.file_name().unwrap().to_string_lossy());
        let run = |verb: &str| {
            let out = Command::new(shipped_execguard())
                .current_dir(parent)
                .args([verb, "containerd"])
                .args([
                    "--config",
                    &format!("{name}/config.toml"),
                    "--drop-in",
                    &format!("{name}/conf.d/99-execguard.toml"),
                ])
                .args(["--shim-dir", &format!("{name}/bin"), "--execguard-dir", &format!("{name}/execguard")])
                .arg("--containerd")
                .arg(containerd)
                .output()
                .expect("run execguard");
            assert!(out.status.success(), "{line} {verb}: {}", text(&out));
        };
        run("install");
        let main = read(&scratch.path("config.toml"));
        assert!(main.contains(&format!("imports = [{:?}]", scratch.path("conf.d/99-execguard.toml"))), "{main}");
        assert!(scratch.dump().contains("io.containerd.execguard.v2"), "{line}");
        run("uninstall");
        assert_eq!(read(&scratch.path("config.toml")), original, "{line}");
    }
}
