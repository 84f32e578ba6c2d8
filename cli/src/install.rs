//! `execguard install containerd` and `execguard uninstall containerd`: register the
//! runtime with containerd's CRI plugin the way other RuntimeClass runtimes' installers do.
//!
//! What it changes:
//! - a drop-in (default `/etc/containerd/conf.d/99-execguard.toml`) with the CRI plugin's
//!   table and, in it, the runtime: `runtime_type = "io.containerd.execguard.v2"`,
//!   `pod_annotations = ["execguard.dev/*"]` (CRI passes pod annotations to a
//!   runtime only when they match) and the `ConfigPath` option;
//! - the main config's `imports`, when it does not import the drop-in yet, edited as a TOML
//!   document: comments, order and everything else stay as the user wrote them. A backup is
//!   written first.
//!
//! Why the drop-in holds the *whole* CRI table: containerd 1.6 and 1.7 merge an imported
//! file per plugin, not per key: a drop-in with a `[plugins."io.containerd.grpc.v1.cri"]`
//! table replaces the main file's entire CRI section, so a drop-in that only adds a
//! runtime would silently drop every other CRI setting (and break CRI). The installer
//! therefore asks the installed containerd for its effective configuration (`containerd
//! config dump`), takes the complete CRI table from it, adds the runtime, and afterwards
//! checks with another dump that the result is what it meant. This is right whether the
//! running version merges per plugin or per key. Config version 2 (containerd 1.x, plugin
//! `io.containerd.grpc.v1.cri`) and version 3 (containerd 2.x, `io.containerd.cri.v1.runtime`)
//! are handled; anything it cannot parse is refused before a byte is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use toml_edit::{value, Array, DocumentMut, Item, Table};

use execguard_shim::RUNTIME_ID;

pub const DEFAULT_CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const DEFAULT_DROP_IN: &str = "/etc/containerd/conf.d/99-execguard.toml";
pub const SHIM_BINARY: &str = "containerd-shim-execguard-v2";

/// What the installer was asked to do.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub config: PathBuf,
    pub drop_in: PathBuf,
    pub runtime_name: String,
    pub shim_dir: PathBuf,
    /// Where execguard's own config.toml and policy.toml go.
    pub execguard_dir: PathBuf,
    pub set_as_default: bool,
    pub dry_run: bool,
    /// The containerd binary that answers `config dump`.
    pub containerd: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Containerd(String),
    #[error("the result is not what was meant: {0}; the previous files were put back")]
    Verify(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> InstallError {
    InstallError::File { path: path.display().to_string(), message: message.to_string() }
}

/// The CRI plugin's name and where runtimes live in it, by config version.
fn cri_plugin(version: i64, path: &Path) -> Result<&'static str, InstallError> {
    match version {
        2 => Ok("io.containerd.grpc.v1.cri"),
        3 => Ok("io.containerd.cri.v1.runtime"),
        other => Err(file_error(
            path,
            format!(
                "config version {other} is not supported: migrate it with `containerd config migrate` (version 2 or 3)"
            ),
        )),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(file_error(path, error)),
    }
}

fn parse(path: &Path, text: &str) -> Result<DocumentMut, InstallError> {
    text.parse::<DocumentMut>().map_err(|error| {
        file_error(path, format!("cannot parse it as TOML, so nothing was changed: {}", error.to_string().trim()))
    })
}

/// The configuration containerd would run with, main file and imports merged.
fn effective_config(containerd: &Path, config: &Path) -> Result<DocumentMut, InstallError> {
    let output = Command::new(containerd)
        .arg("--config")
        .arg(config)
        .args(["config", "dump"])
        .output()
        .map_err(|e| InstallError::Containerd(format!("cannot run {} config dump: {e}", containerd.display())))?;
    if !output.status.success() {
        return Err(InstallError::Containerd(format!(
            "{} --config {} config dump failed: {}",
            containerd.display(),
            config.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&output.stdout)
        .parse::<DocumentMut>()
        .map_err(|e| InstallError::Containerd(format!("containerd's config dump is not TOML: {e}")))
}

/// The table under `key`, made one if it is missing or something else.
fn table_mut<'a>(table: &'a mut Table, key: &str) -> &'a mut Table {
    let item = table.entry(key).or_insert_with(|| Item::Table(Table::new()));
    if !item.is_table() {
        *item = Item::Table(Table::new());
    }
    match item {
        Item::Table(table) => table,
        _ => unreachable!("the item was made a table just above"),
    }
}

/// The drop-in's text: version, and the CRI plugin's complete effective table with the
/// runtime added.
fn drop_in_text(options: &InstallOptions, version: i64, plugin: &str, effective: &DocumentMut) -> String {
    let mut cri =
        effective.get("plugins").and_then(|p| p.get(plugin)).and_then(Item::as_table).cloned().unwrap_or_default();
    let containerd = table_mut(&mut cri, "containerd");
    if options.set_as_default {
        containerd.insert("default_runtime_name", value(options.runtime_name.as_str()));
    }
    // Built afresh on every run: the dump lists the runtime of an earlier install with
    // every defaulted field, and the drop-in must come out the same every time.
    let runtimes = table_mut(containerd, "runtimes");
    let previous = runtimes.remove(&options.runtime_name);
    let runtime = table_mut(runtimes, &options.runtime_name);
    // No runtime_path: containerd 1.6 ignores it for CRI (containerd issue 8207) and 2.x
    // forgets it when it reloads a pod's shim (issue 10811). containerd finds the shim on
    // its PATH, which is why --shim-dir defaults to /usr/local/bin.
    runtime.insert("runtime_type", value(RUNTIME_ID));
    let mut annotations: Vec<String> = previous
        .as_ref()
        .and_then(|p| p.get("pod_annotations"))
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if !annotations.iter().any(|a| a == "execguard.dev/*") {
        annotations.push("execguard.dev/*".into());
    }
    runtime.insert("pod_annotations", value(annotations.iter().map(String::as_str).collect::<Array>()));
    let runtime_options = table_mut(runtime, "options");
    runtime_options.insert("ConfigPath", value(options.execguard_dir.join("config.toml").display().to_string()));

    let mut plugins = Table::new();
    plugins.set_implicit(true);
    plugins.insert(plugin, Item::Table(cri));
    let mut document = DocumentMut::new();
    document.insert("version", value(version));
    document.insert("plugins", Item::Table(plugins));
    format!(
        "# Written by `execguard install containerd`: the CRI plugin's complete effective table\n\
         # (containerd 1.6/1.7 replace a plugin's whole table with an imported one) plus the\n\
         # execguard runtime. Re-run the installer after changing the CRI settings of the main\n\
         # file; `execguard uninstall containerd` removes this file.\n{document}"
    )
}

/// Whether `imports` already brings in `drop_in`, literally or through a glob.
fn imports_cover(imports: &Array, drop_in: &Path) -> bool {
    let drop_in = drop_in.display().to_string();
    imports.iter().filter_map(|v| v.as_str()).any(|pattern| pattern == drop_in || glob_matches(pattern, &drop_in))
}

/// containerd's imports take shell globs; `*` within one path component is all they use.
fn glob_matches(pattern: &str, path: &str) -> bool {
    let (Some((pattern_dir, pattern_name)), Some((dir, name))) = (pattern.rsplit_once('/'), path.rsplit_once('/'))
    else {
        return false;
    };
    if pattern_dir != dir {
        return false;
    }
    match pattern_name.split_once('*') {
        Some((prefix, suffix)) => {
            name.starts_with(prefix) && name.ends_with(suffix) && name.len() >= prefix.len() + suffix.len()
        }
        None => pattern_name == name,
    }
}

/// The main config with the drop-in imported.
fn main_text(options: &InstallOptions, original: Option<&str>) -> Result<(String, i64), InstallError> {
    let text = original.unwrap_or("version = 2\n");
    let mut document = parse(&options.config, text)?;
    let version = match document.get("version") {
        None => 1,
        Some(item) => item.as_integer().ok_or_else(|| file_error(&options.config, "`version` is not an integer"))?,
    };
    cri_plugin(version, &options.config)?;
    let imports = document.entry("imports").or_insert_with(|| value(Array::new()));
    let imports = imports.as_array_mut().ok_or_else(|| file_error(&options.config, "`imports` is not an array"))?;
    if !imports_cover(imports, &options.drop_in) {
        imports.push(options.drop_in.display().to_string());
    }
    Ok((document.to_string(), version))
}

/// One file the installer changes: what is there and what it will write.
pub struct FileChange {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl FileChange {
    pub fn changes(&self) -> bool {
        self.before != self.after
    }

    /// A unified diff, for --dry-run.
    pub fn diff(&self) -> String {
        let before = self.before.as_deref().unwrap_or("");
        let after = self.after.as_deref().unwrap_or("");
        let path = self.path.display().to_string();
        similar::TextDiff::from_lines(before, after).unified_diff().header(&path, &path).to_string()
    }
}

/// Computes what `install` would write, without writing.
pub fn plan_install(options: &InstallOptions) -> Result<Vec<FileChange>, InstallError> {
    let original = read_optional(&options.config)?;
    let (main, version) = main_text(options, original.as_deref())?;
    let plugin = cri_plugin(version, &options.config)?;
    // The effective configuration of the main file as it is now (with an earlier drop-in,
    // if imported): the drop-in's CRI table starts from it.
    let effective = match original {
        Some(_) => effective_config(&options.containerd, &options.config)?,
        None => {
            let staged = staging(&options.config);
            write(&staged, "version = 2\n")?;
            let dumped = effective_config(&options.containerd, &staged);
            let _ = std::fs::remove_file(&staged);
            dumped?
        }
    };
    let drop_in_before = read_optional(&options.drop_in)?;
    if let Some(text) = &drop_in_before {
        parse(&options.drop_in, text)?;
    }
    Ok(vec![
        FileChange { path: options.config.clone(), before: original, after: Some(main) },
        FileChange {
            path: options.drop_in.clone(),
            before: drop_in_before,
            after: Some(drop_in_text(options, version, plugin, &effective)),
        },
    ])
}

/// Computes what `uninstall` would change.
pub fn plan_uninstall(options: &InstallOptions) -> Result<Vec<FileChange>, InstallError> {
    let mut changes = Vec::new();
    if let Some(original) = read_optional(&options.config)? {
        let mut document = parse(&options.config, &original)?;
        let drop_in = options.drop_in.display().to_string();
        if let Some(imports) = document.get_mut("imports").and_then(Item::as_array_mut) {
            imports.retain(|v| v.as_str() != Some(drop_in.as_str()));
            if imports.is_empty() {
                document.remove("imports");
            }
        }
        changes.push(FileChange {
            path: options.config.clone(),
            before: Some(original),
            after: Some(document.to_string()),
        });
    }
    changes.push(FileChange { path: options.drop_in.clone(), before: read_optional(&options.drop_in)?, after: None });
    Ok(changes)
}

fn staging(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.execguard-new"))
}

/// Writes atomically: a file beside it, then rename.
fn write(path: &Path, text: &str) -> Result<(), InstallError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    }
    let staged = staging(path);
    std::fs::write(&staged, text).and_then(|()| std::fs::rename(&staged, path)).map_err(|e| file_error(path, e))
}

/// Applies the changes, backing up every file that existed; on `verify` failure puts the
/// previous contents back.
pub fn apply(
    changes: &[FileChange],
    verify: impl FnOnce() -> Result<(), String>,
) -> Result<Vec<PathBuf>, InstallError> {
    let mut backups = Vec::new();
    for change in changes.iter().filter(|c| c.changes()) {
        if let Some(before) = &change.before {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let backup = change.path.with_file_name(format!(
                "{}.execguard-backup-{stamp}",
                change.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ));
            write(&backup, before)?;
            backups.push(backup);
        }
        match &change.after {
            Some(text) => write(&change.path, text)?,
            None => std::fs::remove_file(&change.path).map_err(|e| file_error(&change.path, e))?,
        }
    }
    if let Err(problem) = verify() {
        for change in changes.iter().filter(|c| c.changes()) {
            let restored = match &change.before {
                Some(text) => write(&change.path, text),
                None => std::fs::remove_file(&change.path).map_err(|e| file_error(&change.path, e)),
            };
            if let Err(error) = restored {
                tracing::error!(%error, "cannot put a file back");
            }
        }
        return Err(InstallError::Verify(problem));
    }
    Ok(backups)
}

/// Checks with containerd itself that the runtime is registered and CRI kept its
/// settings.
pub fn verify_installed(options: &InstallOptions, version: i64) -> Result<(), String> {
    let effective = effective_config(&options.containerd, &options.config).map_err(|e| e.to_string())?;
    let plugin = if version == 3 { "io.containerd.cri.v1.runtime" } else { "io.containerd.grpc.v1.cri" };
    let containerd = effective.get("plugins").and_then(|p| p.get(plugin)).and_then(|c| c.get("containerd"));
    let runtime_type = containerd
        .and_then(|c| c.get("runtimes"))
        .and_then(|r| r.get(&options.runtime_name))
        .and_then(|r| r.get("runtime_type"))
        .and_then(Item::as_str);
    if runtime_type != Some(RUNTIME_ID) {
        return Err(format!("containerd does not see the runtime {:?} after the change", options.runtime_name));
    }
    let default = containerd.and_then(|c| c.get("default_runtime_name")).and_then(Item::as_str).unwrap_or("");
    let default_exists = containerd.and_then(|c| c.get("runtimes")).and_then(|r| r.get(default)).is_some();
    if !default_exists {
        return Err(format!("the default runtime {default:?} has no runtime table any more"));
    }
    Ok(())
}

/// Version of the main config after `plan_install` (for `verify_installed`).
pub fn config_version(changes: &[FileChange]) -> i64 {
    changes
        .first()
        .and_then(|c| c.after.as_deref())
        .and_then(|t| t.parse::<DocumentMut>().ok())
        .and_then(|d| d.get("version").and_then(Item::as_integer))
        .unwrap_or(2)
}

/// The execguard files that `install` creates when they are missing.
pub fn execguard_files(options: &InstallOptions) -> Vec<(PathBuf, String)> {
    let policy = options.execguard_dir.join("policy.toml");
    let config = format!(
        "# execguard configuration: see `execguard install containerd --help` and the README.\n\
         # Every key is optional; unknown keys are errors.\n\
         policy = {:?}\n\
         # mode = \"monitor\"          # off | monitor | enforce; default: the policy's own mode\n\
         # policy_dir = \"{}/policies\" # NAME.toml files pods can pick with execguard.dev/policy\n\
         overrides = \"tighten\"          # pod annotations may raise the mode only; \"any\" lets them lower it\n\
         deadline_ms = 2000\n\
         fail = \"closed\"\n\
         repeat_window_secs = 3600\n\n\
         [alerts]\n\
         file = \"/var/log/execguard/alerts.jsonl\"\n",
        policy.display().to_string(),
        options.execguard_dir.display()
    );
    vec![(options.execguard_dir.join("config.toml"), config), (policy, execguard_policy::DEFAULT_POLICY.to_string())]
}

/// The shim binary shipped next to the running `execguard`.
fn shipped_shim() -> Result<PathBuf, InstallError> {
    let exe =
        std::env::current_exe().map_err(|e| InstallError::Containerd(format!("cannot find execguard itself: {e}")))?;
    let shim = exe.with_file_name(SHIM_BINARY);
    if shim.is_file() {
        Ok(shim)
    } else {
        Err(file_error(&shim, format!("missing: {SHIM_BINARY} must be installed next to execguard")))
    }
}

/// Installs, telling `out` what it does (or, with --dry-run, would do).
pub fn install(options: &InstallOptions, out: &mut dyn std::io::Write) -> Result<(), InstallError> {
    let changes = plan_install(options)?;
    let shim_target = options.shim_dir.join(SHIM_BINARY);
    let shim_source = shipped_shim()?;
    let missing: Vec<(PathBuf, String)> =
        execguard_files(options).into_iter().filter(|(path, _)| !path.exists()).collect();
    let say = |out: &mut dyn std::io::Write, text: String| {
        let _ = writeln!(out, "{text}");
    };
    if options.dry_run {
        for change in changes.iter().filter(|c| c.changes()) {
            say(out, change.diff());
        }
        if shim_source != shim_target {
            say(out, format!("would copy {} to {}", shim_source.display(), shim_target.display()));
        }
        for (path, _) in &missing {
            say(out, format!("would create {}", path.display()));
        }
        say(out, "dry run: nothing was written".into());
        return Ok(());
    }
    if shim_source != shim_target {
        write_binary(&shim_source, &shim_target)?;
        say(out, format!("installed {}", shim_target.display()));
    }
    for (path, text) in &missing {
        write(path, text)?;
        say(out, format!("created {}", path.display()));
    }
    let version = config_version(&changes);
    let backups = apply(&changes, || verify_installed(options, version))?;
    for change in changes.iter().filter(|c| c.changes()) {
        say(out, format!("wrote {}", change.path.display()));
    }
    for backup in backups {
        say(out, format!("backed up the previous version to {}", backup.display()));
    }
    if changes.iter().all(|c| !c.changes()) {
        say(out, "containerd's configuration already registers execguard: nothing to change".into());
    }
    say(out, format!(
        "next: restart containerd (systemctl restart containerd) so that it loads the runtime {:?}, then select it with a RuntimeClass whose handler is {:?}",
        options.runtime_name, options.runtime_name
    ));
    Ok(())
}

/// Uninstalls: the drop-in and its import go, the copied shim goes; execguard's own
/// configuration and policy stay (they are the user's).
pub fn uninstall(options: &InstallOptions, out: &mut dyn std::io::Write) -> Result<(), InstallError> {
    let changes = plan_uninstall(options)?;
    let say = |out: &mut dyn std::io::Write, text: String| {
        let _ = writeln!(out, "{text}");
    };
    let shim = options.shim_dir.join(SHIM_BINARY);
    if options.dry_run {
        for change in changes.iter().filter(|c| c.changes()) {
            say(out, change.diff());
        }
        say(out, "dry run: nothing was written".into());
        return Ok(());
    }
    apply(&changes, || Ok(()))?;
    for change in changes.iter().filter(|c| c.changes()) {
        say(out, format!("{} {}", if change.after.is_some() { "wrote" } else { "removed" }, change.path.display()));
    }
    let shipped = shipped_shim().ok();
    if shim.is_file() && shipped.as_deref() != Some(shim.as_path()) {
        std::fs::remove_file(&shim).map_err(|e| file_error(&shim, e))?;
        say(out, format!("removed {}", shim.display()));
    }
    say(out, format!("kept {} (configuration and policy)", options.execguard_dir.display()));
    say(out, "next: restart containerd (systemctl restart containerd)".into());
    Ok(())
}

/// Copies an executable atomically (a running shim keeps its old file).
fn write_binary(source: &Path, target: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    }
    let staged = staging(target);
    std::fs::copy(source, &staged)
        .and_then(|_| std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::rename(&staged, target))
        .map_err(|e| file_error(target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> InstallOptions {
        InstallOptions {
            config: DEFAULT_CONTAINERD_CONFIG.into(),
            drop_in: DEFAULT_DROP_IN.into(),
            runtime_name: "execguard".into(),
            shim_dir: "/usr/local/bin".into(),
            execguard_dir: "/etc/execguard".into(),
            set_as_default: false,
            dry_run: true,
            containerd: "containerd".into(),
        }
    }

    fn string_array(items: &[&str]) -> Array {
        items.iter().copied().collect()
    }

    #[test]
    fn imports_are_matched_literally_or_by_glob() {
        let drop_in = Path::new("/etc/containerd/conf.d/99-execguard.toml");
        assert!(imports_cover(&string_array(&["/etc/containerd/conf.d/*.toml"]), drop_in));
        assert!(imports_cover(&string_array(&["/etc/containerd/conf.d/99-execguard.toml"]), drop_in));
        assert!(!imports_cover(&string_array(&["/etc/containerd/other/*.toml"]), drop_in));
        assert!(!imports_cover(&string_array(&["/etc/containerd/conf.d/*.conf"]), drop_in));
    }

    #[test]
    fn version_3_registers_the_runtime_under_the_cri_runtime_plugin() {
        let options = defaults();
        let effective: DocumentMut = "version = 3
[plugins.\"io.containerd.cri.v1.runtime\".containerd]
default_runtime_name = \"runc\"
"
        .parse()
        .unwrap();
        let text = drop_in_text(&options, 3, cri_plugin(3, Path::new("c")).unwrap(), &effective);
        assert!(text.contains("version = 3"), "{text}");
        assert!(text.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.execguard]"), "{text}");
        assert!(text.contains("default_runtime_name = \"runc\""), "{text}");
    }

    #[test]
    fn the_main_file_keeps_its_comments_and_order() {
        let options = defaults();
        let original = "# my containerd\nversion = 2\nroot = \"/var/lib/containerd\" # where\n\n[grpc]\n  address = \"/run/c.sock\"\n";
        let (text, version) = main_text(&options, Some(original)).unwrap();
        assert_eq!(version, 2);
        assert!(text.starts_with("# my containerd\nversion = 2\nroot = \"/var/lib/containerd\" # where\n"), "{text}");
        assert!(text.contains("imports = [\"/etc/containerd/conf.d/99-execguard.toml\"]"), "{text}");
        assert!(text.contains("[grpc]\n  address = \"/run/c.sock\"\n"), "{text}");
        let (again, _) = main_text(&options, Some(&text)).unwrap();
        assert_eq!(again, text, "installing twice changes nothing");
        assert!(main_text(&options, Some("version = 1\n")).is_err());
        assert!(main_text(&options, Some("version = [\n")).unwrap_err().to_string().contains("nothing was changed"));
    }
}
