//! `execguard policy check` and `execguard policy eval` as a user runs them: the real
//! binary, real files, exit codes and output lines.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn execguard(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_execguard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run execguard");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for execguard")
}

fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("execguard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

const SAMPLES: &str = include_str!("../../tests/data/sample-events.jsonl");

#[test]
fn check_accepts_the_default_policy() {
    let out = execguard(&["policy", "check"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (17 rules, mode enforce)"));
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy.toml");
    assert!(execguard(&["policy", "check", shipped], "").status.success());
}

#[test]
fn check_prints_every_error_with_its_place() {
    let path = temp_file("bad.toml", "mode = \"enforce\"\nlsits = 1\n[[rules]]\nid = \"x\"\nseverity = \"loud\"\n");
    let out = execguard(&["policy", "check", path.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let place = path.display().to_string();
    assert!(stderr.contains(&format!("{place}:2:1: unknown key `lsits`")), "{stderr}");
    assert!(stderr.contains("hint: did you mean `lists`?"), "{stderr}");
    assert!(stderr.contains(&format!("{place}:5:12: unknown severity \"loud\"")), "{stderr}");
    assert!(stderr.contains("a rule has no `when`"), "{stderr}");
}

#[test]
fn eval_decides_the_samples_with_the_default_policy() {
    let out = execguard(&["policy", "eval", "-"], SAMPLES);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decisions: Vec<String> =
        lines(&out).iter().map(|l| l["decision"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(decisions, ["allow", "allow", "alert", "block", "allow", "block", "block", "allow"]);
    let rce = &lines(&out)[5];
    assert_eq!(rce["rule"]["id"], "falco.netcat_rce");
    assert_eq!(rce["rule"]["severity"], "critical");
}

#[test]
fn eval_reports_malformed_lines_and_goes_on() {
    let input = format!(
        "{}\n{{\"process\":{{}}}}\nnot json\n{}",
        SAMPLES.lines().next().unwrap(),
        SAMPLES.lines().nth(5).unwrap()
    );
    let out = execguard(&["policy", "eval"], &input);
    assert_eq!(out.status.code(), Some(1));
    let lines = lines(&out);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("line 2"));
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(lines[3]["decision"], "block");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 4 lines were not exec events"));
}

#[test]
fn eval_with_a_stricter_policy_file_and_a_mode_override() {
    let strict = "mode = \"enforce\"\n[[rules]]\nid = \"acme.no_curl\"\nname = \"No curl\"\ndescription = \"curl is not used here\"\nseverity = \"high\"\naction = \"block\"\nwhen.name = [\"curl\"]\n";
    let policy = temp_file("strict.toml", strict);
    let events = temp_file("events.jsonl", SAMPLES);
    let (policy, events) = (policy.to_str().unwrap(), events.to_str().unwrap());
    let enforce = lines(&execguard(&["policy", "eval", "--policy", policy, events], ""));
    assert_eq!(enforce[1]["decision"], "block");
    assert_eq!(enforce[1]["rule"]["id"], "acme.no_curl");
    assert_eq!(enforce[5]["decision"], "allow");
    let monitor = lines(&execguard(&["policy", "eval", "--policy", policy, "--mode", "monitor", events], ""));
    assert_eq!(monitor[1]["decision"], "alert");
    let bad_mode = execguard(&["policy", "eval", "--mode", "strict", events], "");
    assert_eq!(bad_mode.status.code(), Some(2));
}

/// A zero deadline would give every exec the fail action before it is inspected.
#[test]
fn run_refuses_a_zero_deadline() {
    let output = execguard(&["run", "--deadline-ms", "0", "--", "/bin/true"], "");
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--deadline-ms"));
}
