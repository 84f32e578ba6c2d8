//! `execguard install containerd` and `execguard uninstall containerd`: register the
//! runtime with containerd's CRI plugin the way other RuntimeClass runtimes' installers do.
//!
//! What it changes:
//! - a drop-in (default `/etc/containerd/conf.d/99-execguard.toml`) with the runtime in the
//!   CRI plugin's table: `runtime_type = "io.containerd.execguard.v2"`,
//!   `pod_annotations = ["execguard.dev/*"]` (CRI passes pod annotations to a runtime only
//!   when they match) and the `ConfigPath` option;
//! - the main config's `imports`, when it does not import the drop-in yet, edited as a TOML
//!   document: comments, order and everything else stay as the user wrote them. A backup is
//!   written first. Without a main file it writes one (`version` and `imports` only):
//!   containerd 2.x resolves imports only in files it has loaded, so without a main file it
//!   reads no drop-in at all, not even the `/etc/containerd/conf.d/*.toml` that its
//!   `config default` lists (2.3.4's source, `LoadConfigWithPlugins`).
//!
//! # How each containerd line reads a drop-in
//!
//! Seen in the `config dump` of Debian's containerd 1.6.20 and of containerd 2.3.4 (built
//! from its tag), and in their source:
//! - **1.6 and 1.7** read config version 2 (`config dump` prints `version = 2`) and merge an
//!   imported file *per plugin*: a drop-in's `[plugins."io.containerd.grpc.v1.cri"]`
//!   replaces the main file's whole CRI table (on 1.6.20 a drop-in with just a runtime put
//!   `max_container_log_line_size` back to its default; 1.7.0's `mergeConfig` does the
//!   same). So the drop-in holds the CRI table
//!   in full as `config dump` shows it, plus the runtime, and the installer must run again
//!   after the main file's CRI settings change. 1.6.20 also loads a `version = 3` file
//!   without a word and ignores its `io.containerd.cri.v1.runtime` tables, so a file newer
//!   than the containerd that reads it is refused.
//! - **2.x** reads version 3 (2.0 to 2.2) or 4 (2.3; its `config default` writes
//!   `version = 4`). On every load it migrates each file on its own to that version (with a
//!   warning "Configuration migrated from version N"; a version 2 file's
//!   `io.containerd.grpc.v1.cri` tables move to `io.containerd.cri.v1.runtime`), then merges
//!   it *per key*, down to a runtime's options; an array is replaced, not appended to
//!   (`mergeConfig` in cmd/containerd/server/config/config.go, the same in 2.0 to 2.2: mergo
//!   over the `plugins` map). 2.3.4 refuses a drop-in of a
//!   higher version than the main file ("drop-in config version 3 higher than root config
//!   version 2"). So the drop-in holds only the runtime (and `default_runtime_name` with
//!   --set-as-default), in the main file's version and table names, and the main file's CRI
//!   settings stay in force when they change later.
//!
//! A version 2 main file on 2.x gets a version 2 drop-in, which 2.x migrates together with
//! the main file: that is the only version 2.3.4 accepts under it, and the node already runs
//! on the migrated main file. It is not refused with "run `containerd config migrate`":
//! that prints the whole merged configuration (every default, the content of every import,
//! `/etc/containerd/conf.d/*.toml` added to `imports`, comments gone), more of a change to a
//! node than a runtime's installer should ask for.
//!
//! Both lines read a relative import from the main file's directory, so the drop-in is
//! imported by its absolute path.
//!
//! Which line reads the files comes from the version its `config dump` prints (the version
//! it migrates every file to, and whose table names the dump uses), not from
//! `containerd --version`. The installer asks for the effective configuration before and
//! after the change and keeps the change only if the runtime is there and nothing else
//! differs. So a node upgraded from 1.x to 2.x with the whole-table drop-in of 1.x in place
//! is refused (its settings would go) with the advice to uninstall first. Anything it
//! cannot parse is refused before a byte is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use toml_edit::{value, Array, DocumentMut, Item, Table};

use execguard_shim::RUNTIME_ID;

pub const DEFAULT_CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const DEFAULT_DROP_IN: &str = "/etc/containerd/conf.d/99-execguard.toml";
pub const SHIM_BINARY: &str = "containerd-shim-execguard-v2";
/// The pod annotations CRI must pass to the runtime (execguard.dev/mode, .../policy).
const POD_ANNOTATIONS: &str = "execguard.dev/*";

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

/// A config version the installer writes, and the table the CRI plugin keeps its runtimes
/// in at that version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Schema {
    version: i64,
    cri_runtime: &'static str,
}

impl Schema {
    fn of(version: i64) -> Option<Schema> {
        let cri_runtime = match version {
            2 => "io.containerd.grpc.v1.cri",
            3 | 4 => "io.containerd.cri.v1.runtime",
            _ => return None,
        };
        Some(Schema { version, cri_runtime })
    }
}

/// How a containerd line merges an imported file into the main one (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// containerd 1.6 and 1.7: an imported plugin table replaces the main file's.
    PerPlugin,
    /// containerd 2.x: key by key.
    PerKey,
}

/// The configuration containerd would run with: the main file and its imports, each
/// migrated to the version this containerd reads, merged.
struct Effective {
    document: DocumentMut,
    /// The version the dump is written in.
    schema: Schema,
}

impl Effective {
    fn merge(&self) -> Merge {
        if self.schema.version == 2 {
            Merge::PerPlugin
        } else {
            Merge::PerKey
        }
    }

    fn cri(&self) -> Option<&Table> {
        self.document.get("plugins")?.get(self.schema.cri_runtime)?.as_table()
    }

    fn containerd(&self) -> Option<&Item> {
        self.cri()?.get("containerd")
    }

    fn runtime(&self, name: &str) -> Option<&Item> {
        self.containerd()?.get("runtimes")?.get(name)
    }

    /// Everything the installer must leave as it is: the dump without `imports` (which
    /// gains the drop-in), the runtime, and the default runtime's name when it sets that.
    fn untouched(&self, options: &InstallOptions) -> Result<toml::Table, String> {
        let mut table: toml::Table = toml::from_str(&self.document.to_string())
            .map_err(|e| format!("containerd's config dump does not read back as TOML: {e}"))?;
        table.remove("imports");
        let containerd = table
            .get_mut("plugins")
            .and_then(|p| p.get_mut(self.schema.cri_runtime))
            .and_then(|c| c.get_mut("containerd"))
            .and_then(toml::Value::as_table_mut);
        if let Some(containerd) = containerd {
            if options.set_as_default {
                containerd.remove("default_runtime_name");
            }
            if let Some(runtimes) = containerd.get_mut("runtimes").and_then(toml::Value::as_table_mut) {
                runtimes.remove(&options.runtime_name);
            }
        }
        Ok(table)
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

/// The main file's config version, if the installer can write a drop-in for it.
fn file_schema(path: &Path, document: &DocumentMut) -> Result<Schema, InstallError> {
    // containerd reads a file without `version` as version 1 (short plugin names).
    let version = match document.get("version") {
        None => 1,
        Some(item) => item.as_integer().ok_or_else(|| file_error(path, "`version` is not an integer"))?,
    };
    Schema::of(version).ok_or_else(|| {
        let advice = if version < 2 {
            "containerd 2.x's `containerd config migrate` prints it as the version that containerd reads; \
             for containerd 1.6/1.7 add `version = 2` and write plugin names in full (`containerd config default` shows them)"
        } else {
            "containerd 1.6/1.7 read version 2, 2.0 to 2.2 version 3, 2.3 version 4"
        };
        file_error(path, format!("config version {version} is not supported, so nothing was changed: {advice}"))
    })
}

/// `containerd config dump` of `config`.
fn effective_config(containerd: &Path, config: &Path) -> Result<Effective, InstallError> {
    let output =
        Command::new(containerd).arg("--config").arg(config).args(["config", "dump"]).output().map_err(|e| {
            InstallError::Containerd(format!(
                "cannot run {}: {e}; name the containerd that reads {} with --containerd",
                containerd.display(),
                config.display()
            ))
        })?;
    if !output.status.success() {
        return Err(InstallError::Containerd(format!(
            "{} --config {} config dump failed, so nothing was changed: {}; fix what it reports in that file or a file it imports",
            containerd.display(),
            config.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let document = String::from_utf8_lossy(&output.stdout)
        .parse::<DocumentMut>()
        .map_err(|e| InstallError::Containerd(format!("{}'s config dump is not TOML: {e}", containerd.display())))?;
    let version = document.get("version").and_then(Item::as_integer);
    let schema = version.and_then(Schema::of).ok_or_else(|| {
        InstallError::Containerd(format!(
            "{} dumps its configuration as version {}, which this installer does not know (2: containerd 1.6/1.7, 3 and 4: 2.x)",
            containerd.display(),
            version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
        ))
    })?;
    Ok(Effective { document, schema })
}

/// The table under `key`, made one if it is missing or something else. A new table is
/// implicit: it gets a header only if it holds keys of its own.
fn table_mut<'a>(table: &'a mut Table, key: &str) -> &'a mut Table {
    let implicit = || {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    };
    let item = table.entry(key).or_insert_with(implicit);
    if !item.is_table() {
        *item = implicit();
    }
    match item {
        Item::Table(table) => table,
        _ => unreachable!("the item was made a table just above"),
    }
}

/// The drop-in's text, written in the main file's `schema`: the runtime, with all of the
/// effective CRI table around it where containerd merges per plugin.
fn drop_in_text(options: &InstallOptions, schema: Schema, effective: &Effective) -> String {
    let mut cri = match effective.merge() {
        Merge::PerPlugin => effective.cri().cloned().unwrap_or_default(),
        Merge::PerKey => Table::new(),
    };
    cri.set_implicit(true);
    let containerd = table_mut(&mut cri, "containerd");
    if options.set_as_default {
        containerd.insert("default_runtime_name", value(options.runtime_name.as_str()));
    }
    // Built afresh on every run: the dump lists the runtime of an earlier install with
    // every defaulted field, and the drop-in must come out the same every time.
    let runtimes = table_mut(containerd, "runtimes");
    runtimes.remove(&options.runtime_name);
    let runtime = table_mut(runtimes, &options.runtime_name);
    // No runtime_path: containerd 1.6 ignores it for CRI (containerd issue 8207) and 2.x
    // forgets it when it reloads a pod's shim (issue 10811). containerd finds the shim on
    // its PATH, which is why --shim-dir defaults to /usr/local/bin.
    runtime.insert("runtime_type", value(RUNTIME_ID));
    // Both lines replace an array rather than append to it: keep the patterns the runtime
    // has already.
    let mut annotations: Vec<String> = effective
        .runtime(&options.runtime_name)
        .and_then(|r| r.get("pod_annotations"))
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if !annotations.iter().any(|a| a == POD_ANNOTATIONS) {
        annotations.push(POD_ANNOTATIONS.into());
    }
    runtime.insert("pod_annotations", value(annotations.iter().map(String::as_str).collect::<Array>()));
    let runtime_options = table_mut(runtime, "options");
    runtime_options.insert("ConfigPath", value(options.execguard_dir.join("config.toml").display().to_string()));

    let mut plugins = Table::new();
    plugins.set_implicit(true);
    plugins.insert(schema.cri_runtime, Item::Table(cri));
    let mut document = DocumentMut::new();
    document.insert("version", value(schema.version));
    document.insert("plugins", Item::Table(plugins));
    let why = match effective.merge() {
        Merge::PerPlugin => {
            "# the CRI plugin's complete effective table (containerd 1.6/1.7 replace a plugin's whole\n\
             # table with an imported one) plus the execguard runtime. Re-run the installer after\n\
             # changing the CRI settings of the main file."
        }
        Merge::PerKey => {
            "# the execguard runtime alone (containerd 2.x merges an imported file key by key), in the\n\
             # main file's config version (2.x migrates each file to the version it reads; 2.3 refuses\n\
             # a drop-in of a higher version than the main file)."
        }
    };
    format!(
        "# Written by `execguard install containerd`:\n{why}\n\
         # `execguard uninstall containerd` removes this file.\n{document}"
    )
}

/// A path made absolute against the working directory.
fn absolute(path: &Path) -> Result<PathBuf, InstallError> {
    std::path::absolute(path).map_err(|e| file_error(path, e))
}

/// Whether `imports` of the main file in `config_dir` already bring in `drop_in` (absolute),
/// literally or through a glob. A relative import is relative to the main file's directory.
fn imports_cover(imports: &Array, config_dir: &Path, drop_in: &Path) -> bool {
    let drop_in = drop_in.display().to_string();
    imports.iter().filter_map(|v| v.as_str()).any(|pattern| {
        let pattern = config_dir.join(pattern).display().to_string();
        pattern == drop_in || glob_matches(&pattern, &drop_in)
    })
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

/// Adds the drop-in to the main config's `imports` unless they cover it already. The import
/// is written as an absolute path: both lines read a relative one from the main file's
/// directory (`resolveImports` in 1.6.20 and 2.3.4), not from where the installer runs.
fn import_drop_in(options: &InstallOptions, document: &mut DocumentMut) -> Result<(), InstallError> {
    let imports = document.entry("imports").or_insert_with(|| value(Array::new()));
    let imports = imports.as_array_mut().ok_or_else(|| {
        file_error(&options.config, "`imports` is not an array, so nothing was changed: make it a list of paths")
    })?;
    let config = absolute(&options.config)?;
    let drop_in = absolute(&options.drop_in)?;
    if !imports_cover(imports, config.parent().unwrap_or(Path::new("/")), &drop_in) {
        imports.push(drop_in.display().to_string());
    }
    Ok(())
}

/// The first setting that differs between two dumps, as a TOML key path.
fn first_difference(path: &str, before: &toml::Table, after: &toml::Table) -> Option<String> {
    let key_path = |key: &str| {
        let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let key = if bare { key.to_string() } else { format!("{key:?}") };
        if path.is_empty() {
            key
        } else {
            format!("{path}.{key}")
        }
    };
    for (key, old) in before {
        match (old, after.get(key)) {
            (_, None) => return Some(format!("{} would go", key_path(key))),
            (toml::Value::Table(old), Some(toml::Value::Table(new))) => {
                if let Some(difference) = first_difference(&key_path(key), old, new) {
                    return Some(difference);
                }
            }
            (old, Some(new)) if old != new => {
                return Some(format!("{} would change from {old} to {new}", key_path(key)))
            }
            _ => {}
        }
    }
    after.keys().find(|key| !before.contains_key(*key)).map(|key| format!("{} would be added", key_path(key)))
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

/// What `install` will write, and the effective configuration it starts from: the check
/// after writing compares against it.
pub struct InstallPlan {
    pub changes: Vec<FileChange>,
    before: Effective,
}

/// Computes what `install` would write, without writing.
pub fn plan_install(options: &InstallOptions) -> Result<InstallPlan, InstallError> {
    let original = read_optional(&options.config)?;
    // Checked before containerd reads it: containerd's own errors would not say what to do
    // (and 1.6.20 reads a file without `version` or with a newer one without complaint).
    let main = match &original {
        Some(text) => {
            let mut document = parse(&options.config, text)?;
            let schema = file_schema(&options.config, &document)?;
            import_drop_in(options, &mut document)?;
            Some((document, schema))
        }
        None => None,
    };
    // The effective configuration as it is now, with an earlier drop-in if one is imported.
    let before = match original {
        Some(_) => effective_config(&options.containerd, &options.config)?,
        None => {
            // `config dump` of a missing file fails on 1.6.20 (2.3.4 dumps its defaults);
            // both read an empty version 2 file as their defaults (its dump is their
            // `config default` but for `imports`).
            let staged = staging(&options.config);
            write(&staged, "version = 2\n")?;
            let dumped = effective_config(&options.containerd, &staged);
            let _ = std::fs::remove_file(&staged);
            dumped?
        }
    };
    let (main, schema) = match main {
        Some(main) => main,
        None => {
            // A new main file is written in the version this containerd reads.
            let mut document = DocumentMut::new();
            document.insert("version", value(before.schema.version));
            import_drop_in(options, &mut document)?;
            (document, before.schema)
        }
    };
    if schema.version > before.schema.version {
        return Err(file_error(
            &options.config,
            format!(
                "config version {} is newer than {} reads (it dumps version {}; containerd 1.6.20 ignores the tables \
                 of a newer version it does not know), so nothing was changed: name the containerd that reads this \
                 file with --containerd, or write the file in version {}",
                schema.version,
                options.containerd.display(),
                before.schema.version,
                before.schema.version
            ),
        ));
    }
    let drop_in_before = read_optional(&options.drop_in)?;
    if let Some(text) = &drop_in_before {
        parse(&options.drop_in, text)?;
    }
    let changes = vec![
        FileChange { path: options.config.clone(), before: original, after: Some(main.to_string()) },
        FileChange {
            path: options.drop_in.clone(),
            before: drop_in_before,
            after: Some(drop_in_text(options, schema, &before)),
        },
    ];
    Ok(InstallPlan { changes, before })
}

/// Computes what `uninstall` would change.
pub fn plan_uninstall(options: &InstallOptions) -> Result<Vec<FileChange>, InstallError> {
    let mut changes = Vec::new();
    if let Some(original) = read_optional(&options.config)? {
        let mut document = parse(&options.config, &original)?;
        // As install writes it now, and as it was given (earlier installers wrote that).
        let drop_in = [absolute(&options.drop_in)?.display().to_string(), options.drop_in.display().to_string()];
        if let Some(imports) = document.get_mut("imports").and_then(Item::as_array_mut) {
            imports.retain(|v| !v.as_str().is_some_and(|v| drop_in.iter().any(|d| d == v)));
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

/// Checks with containerd itself that it sees the runtime as the drop-in says and that
/// nothing else in its effective configuration changed.
fn verify_installed(options: &InstallOptions, before: &Effective) -> Result<(), String> {
    let after = effective_config(&options.containerd, &options.config).map_err(|e| e.to_string())?;
    let name = &options.runtime_name;
    let Some(runtime) = after.runtime(name) else {
        return Err(format!("containerd does not see the runtime {name:?} after the change"));
    };
    let config_path = options.execguard_dir.join("config.toml").display().to_string();
    let annotations = runtime.get("pod_annotations").and_then(Item::as_array);
    let settings = [
        ("runtime_type", runtime.get("runtime_type").and_then(Item::as_str) == Some(RUNTIME_ID)),
        ("pod_annotations", annotations.is_some_and(|a| a.iter().any(|v| v.as_str() == Some(POD_ANNOTATIONS)))),
        (
            "options.ConfigPath",
            runtime.get("options").and_then(|o| o.get("ConfigPath")).and_then(Item::as_str)
                == Some(config_path.as_str()),
        ),
    ];
    if let Some((key, _)) = settings.iter().find(|(_, as_meant)| !as_meant) {
        return Err(format!(
            "containerd sees the runtime {name:?} with another {key} than {} gives it: a file imported after it sets \
             that too",
            options.drop_in.display()
        ));
    }
    let default = after.containerd().and_then(|c| c.get("default_runtime_name")).and_then(Item::as_str).unwrap_or("");
    if after.containerd().and_then(|c| c.get("runtimes")).and_then(|r| r.get(default)).is_none() {
        return Err(format!("the default runtime {default:?} has no runtime table any more"));
    }
    if let Some(difference) = first_difference("", &before.untouched(options)?, &after.untouched(options)?) {
        return Err(format!(
            "in containerd's effective configuration {difference}; an earlier {} with settings of its own does \
             this: run `execguard uninstall containerd`, then install again",
            options.drop_in.display()
        ));
    }
    Ok(())
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
    let plan = plan_install(options)?;
    let changes = &plan.changes;
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
    let backups = apply(changes, || verify_installed(options, &plan.before))?;
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

    /// A `config dump`, as containerd would print one (cut down).
    fn dumped(text: &str) -> Effective {
        let document: DocumentMut = text.parse().unwrap();
        let schema = Schema::of(document["version"].as_integer().unwrap()).unwrap();
        Effective { document, schema }
    }

    /// Cut from 2.3.4's `config dump`, with a runtime that already has a pattern of its own.
    const DUMP_2X: &str = "version = 4
[plugins.'io.containerd.cri.v1.runtime']
  max_container_log_line_size = 16384
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.execguard]
      runtime_type = 'io.containerd.execguard.v2'
      pod_annotations = ['example.com/*']
";

    #[test]
    fn imports_are_matched_literally_or_by_glob() {
        let drop_in = Path::new("/etc/containerd/conf.d/99-execguard.toml");
        let covers = |pattern: &str| imports_cover(&string_array(&[pattern]), Path::new("/etc/containerd"), drop_in);
        assert!(covers("/etc/containerd/conf.d/*.toml"));
        assert!(covers("/etc/containerd/conf.d/99-execguard.toml"));
        // Relative to the main file's directory, as containerd reads it.
        assert!(covers("conf.d/*.toml"));
        assert!(covers("conf.d/99-execguard.toml"));
        assert!(!covers("/etc/containerd/other/*.toml"));
        assert!(!covers("/etc/containerd/conf.d/*.conf"));
        assert!(!covers("other/conf.d/*.toml"));
    }

    #[test]
    fn on_2x_the_drop_in_holds_the_runtime_alone_in_the_main_files_version() {
        let options = defaults();
        let effective = dumped(DUMP_2X);
        for (version, header) in [
            (4, "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.execguard]\n"),
            (3, "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.execguard]\n"),
            // A version 2 main file: 2.x migrates this table to io.containerd.cri.v1.runtime.
            (2, "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.execguard]\n"),
        ] {
            let text = drop_in_text(&options, Schema::of(version).unwrap(), &effective);
            let document = text.parse::<DocumentMut>().unwrap();
            assert_eq!(document["version"].as_integer(), Some(version), "{text}");
            assert!(text.contains(header), "{text}");
            // Arrays are replaced on merge: the runtime's own pattern must stay.
            assert!(text.contains("pod_annotations = [\"example.com/*\", \"execguard.dev/*\"]"), "{text}");
            assert!(text.contains("ConfigPath = \"/etc/execguard/config.toml\""), "{text}");
            // Nothing containerd would merge over the main file's settings.
            for other in ["max_container_log_line_size", "runc", "default_runtime_name"] {
                assert!(!text.contains(other), "{other} in {text}");
            }
            // No empty parent tables.
            assert_eq!(text.matches("\n[").count(), 2, "{text}");
        }
        let options = InstallOptions { set_as_default: true, ..defaults() };
        let text = drop_in_text(&options, Schema::of(4).unwrap(), &effective);
        assert!(
            text.contains(
                "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \"execguard\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn on_1x_the_drop_in_carries_the_whole_cri_table() {
        let effective = dumped(
            "version = 2
[plugins.\"io.containerd.grpc.v1.cri\"]
  max_container_log_line_size = 1234
  [plugins.\"io.containerd.grpc.v1.cri\".containerd]
    default_runtime_name = \"runc\"
    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]
      runtime_type = \"io.containerd.runc.v2\"
",
        );
        let text = drop_in_text(&defaults(), Schema::of(2).unwrap(), &effective);
        for setting in [
            "version = 2\n",
            "max_container_log_line_size = 1234",
            "default_runtime_name = \"runc\"",
            "runtime_type = \"io.containerd.runc.v2\"",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.execguard]",
            "pod_annotations = [\"execguard.dev/*\"]",
        ] {
            assert!(text.contains(setting), "{setting} missing from {text}");
        }
    }

    #[test]
    fn the_main_file_keeps_its_comments_and_order() {
        let options = defaults();
        let original = "# my containerd\nversion = 2\nroot = \"/var/lib/containerd\" # where\n\n[grpc]\n  address = \"/run/c.sock\"\n";
        let mut document = parse(&options.config, original).unwrap();
        import_drop_in(&options, &mut document).unwrap();
        let text = document.to_string();
        assert!(text.starts_with("# my containerd\nversion = 2\nroot = \"/var/lib/containerd\" # where\n"), "{text}");
        assert!(text.contains("imports = [\"/etc/containerd/conf.d/99-execguard.toml\"]"), "{text}");
        assert!(text.contains("[grpc]\n  address = \"/run/c.sock\"\n"), "{text}");
        import_drop_in(&options, &mut document).unwrap();
        assert_eq!(document.to_string(), text, "installing twice changes nothing");
        let error = parse(&options.config, "version = [\n").unwrap_err().to_string();
        assert!(error.starts_with("/etc/containerd/config.toml: ") && error.contains("nothing was changed"), "{error}");
    }

    #[test]
    fn main_file_versions_are_those_a_drop_in_can_be_written_for() {
        let config = Path::new("/etc/containerd/config.toml");
        let schema = |text: &str| file_schema(config, &text.parse().unwrap());
        assert_eq!(schema("version = 2").unwrap().cri_runtime, "io.containerd.grpc.v1.cri");
        assert_eq!(schema("version = 3").unwrap().cri_runtime, "io.containerd.cri.v1.runtime");
        assert_eq!(schema("version = 4").unwrap().cri_runtime, "io.containerd.cri.v1.runtime");
        for (text, message) in [
            // No version is version 1 to containerd.
            ("root = \"/x\"", "config version 1 is not supported, so nothing was changed: containerd 2.x's `containerd config migrate`"),
            ("version = 5", "config version 5 is not supported, so nothing was changed: containerd 1.6/1.7 read version 2"),
            ("version = \"3\"", "`version` is not an integer"),
        ] {
            let error = schema(text).unwrap_err().to_string();
            assert!(error.starts_with("/etc/containerd/config.toml: ") && error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn the_comparison_ignores_only_what_the_installer_sets() {
        let before = dumped(DUMP_2X);
        let mut after = dumped(DUMP_2X);
        after.document["imports"] = value(string_array(&["/etc/containerd/conf.d/99-execguard.toml"]));
        after.document["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["execguard"]
            ["pod_annotations"] = value(string_array(&["execguard.dev/*"]));
        let options = defaults();
        let untouched = |effective: &Effective, options: &InstallOptions| effective.untouched(options).unwrap();
        assert_eq!(first_difference("", &untouched(&before, &options), &untouched(&after, &options)), None);

        after.document["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["default_runtime_name"] =
            value("execguard");
        assert_eq!(
            first_difference("", &untouched(&before, &options), &untouched(&after, &options)).as_deref(),
            Some(
                "plugins.\"io.containerd.cri.v1.runtime\".containerd.default_runtime_name would change from \"runc\" \
                 to \"execguard\""
            )
        );
        let set_as_default = InstallOptions { set_as_default: true, ..defaults() };
        assert_eq!(
            first_difference("", &untouched(&before, &set_as_default), &untouched(&after, &set_as_default)),
            None
        );

        // Another runtime's settings count, the execguard runtime's do not.
        after.document["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]["options"]
            ["SystemdCgroup"] = value(true);
        let difference =
            first_difference("", &untouched(&before, &set_as_default), &untouched(&after, &set_as_default));
        assert_eq!(
            difference.as_deref(),
            Some("plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options would be added")
        );
        after.document["plugins"]["io.containerd.cri.v1.runtime"]
            .as_table_mut()
            .unwrap()
            .remove("max_container_log_line_size");
        let difference =
            first_difference("", &untouched(&before, &set_as_default), &untouched(&after, &set_as_default));
        assert_eq!(
            difference.as_deref(),
            Some("plugins.\"io.containerd.cri.v1.runtime\".max_container_log_line_size would go")
        );
    }
}
