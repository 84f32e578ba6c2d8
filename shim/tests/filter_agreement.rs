//! The two forms of the exec filter say the same: the BPF program that `execguard run`
//! installs (`execguard_seccomp::ExecFilter`) and the rules that the spec patch gives runc
//! for a container without a profile of its own, compiled by the real libseccomp as runc
//! compiles them (tests/libseccomp_compile.c). Both run through one BPF interpreter for
//! every x86 ABI, every syscall number up to 1024 and a set of first arguments, with and
//! without the socket gate. What differs must be exactly the differences listed, each
//! with the reason it is harmless. (Other ABIs cannot reach an x86_64 kernel: the BPF
//! program kills them with KILL_PROCESS, libseccomp with its default KILL_THREAD.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use execguard_seccomp::{ExecFilter, Gate, Kind, Notification};
use execguard_shim::spec::SpecPatch;
use serde_json::{json, Value};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 0x4000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// The syscall runs (SECCOMP_RET_ALLOW, or a notification the supervisor lets pass at
    /// once without looking: a socket of a family the gate does not check).
    Runs,
    Notified,
    Errno(u32),
    KillProcess,
    KillThread,
}

fn outcome(action: u32, notification: &Notification) -> Outcome {
    match action & 0xffff_0000 {
        0x7fff_0000 => Outcome::Runs,
        0x7fc0_0000 if notification.kind() == Kind::NetworkSocket && !notification.needs_the_gate() => Outcome::Runs,
        0x7fc0_0000 => Outcome::Notified,
        0x0005_0000 => Outcome::Errno(action & 0xffff),
        0x8000_0000 => Outcome::KillProcess,
        0 => Outcome::KillThread,
        other => panic!("an action neither program uses: {other:#x}"),
    }
}

/// A classic BPF interpreter for what seccomp accepts (seccomp_check_filter): loads of
/// seccomp_data words, immediates, scratch memory, ALU with constants, jumps, returns.
fn run(program: &[libc::sock_filter], data: &[u32; 16]) -> u32 {
    let (mut a, mut x, mut memory, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    loop {
        let ins = program[pc];
        let k = ins.k;
        pc += 1;
        match ins.code {
            0x20 => a = data[(k / 4) as usize], // ld [k]
            0x00 => a = k,                      // ld #k
            0x01 => x = k,                      // ldx #k
            0x60 => a = memory[k as usize],     // ld M[k]
            0x61 => x = memory[k as usize],     // ldx M[k]
            0x02 => memory[k as usize] = a,     // st M[k]
            0x03 => memory[k as usize] = x,     // stx M[k]
            0x54 => a &= k,                     // and #k
            0x44 => a |= k,                     // or #k
            0x04 => a = a.wrapping_add(k),      // add #k
            0x14 => a = a.wrapping_sub(k),      // sub #k
            0x07 => x = a,                      // tax
            0x87 => a = x,                      // txa
            0x05 => pc += k as usize,           // ja
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match ins.code {
                    0x15 => a == k,
                    0x25 => a > k,
                    0x35 => a >= k,
                    _ => a & k != 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            0x06 => return k, // ret #k
            0x16 => return a, // ret a
            code => panic!("an instruction this interpreter does not know: {code:#04x}"),
        }
    }
}

/// seccomp_data as the filter sees it: nr, arch, the instruction pointer, six u64 args.
fn data(arch: u32, nr: u32, arg0: u64) -> [u32; 16] {
    let mut words = [0u32; 16];
    words[0] = nr;
    words[1] = arch;
    words[4] = arg0 as u32;
    words[5] = (arg0 >> 32) as u32;
    words
}

/// The compiler program, built once.
fn compiler() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libseccomp_compile.c");
        let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("libseccomp_compile-{}", std::process::id()));
        let built = Command::new("cc").arg("-O1").arg("-o").arg(&binary).arg(&source).arg("-lseccomp").status();
        assert!(
            built.is_ok_and(|status| status.success()),
            "cannot build {}: it needs gcc and libseccomp-dev (scripts/test installs them)",
            source.display()
        );
        binary
    })
}

/// The container rules for a spec without a profile, as libseccomp compiles them.
fn compiled_container_rules(gate: Option<Gate>) -> Vec<libc::sock_filter> {
    let mut spec = json!({});
    SpecPatch { listener_path: "/run/execguard/test.sock".into(), gate }.apply(&mut spec).unwrap();
    let seccomp = &spec["linux"]["seccomp"];
    let action = |text: &str, rule: &Value| match text {
        "SCMP_ACT_ALLOW" => "allow".to_string(),
        "SCMP_ACT_NOTIFY" => "notify".to_string(),
        "SCMP_ACT_ERRNO" => format!("errno:{}", rule["errnoRet"].as_u64().unwrap_or(1)),
        other => panic!("an action the test does not translate: {other}"),
    };
    let mut input = format!("default {}\n", action(seccomp["defaultAction"].as_str().unwrap(), &Value::Null));
    for arch in seccomp["architectures"].as_array().unwrap() {
        let name = match arch.as_str().unwrap() {
            "SCMP_ARCH_X86_64" => "x86_64",
            "SCMP_ARCH_X86" => "x86",
            "SCMP_ARCH_X32" => "x32",
            other => panic!("an architecture the test does not translate: {other}"),
        };
        input += &format!("arch {name}\n");
    }
    for rule in seccomp["syscalls"].as_array().unwrap() {
        let conditions: String = rule["args"]
            .as_array()
            .map(|args| {
                args.iter()
                    .map(|arg| {
                        let op = match arg["op"].as_str().unwrap() {
                            "SCMP_CMP_EQ" => "eq",
                            "SCMP_CMP_MASKED_EQ" => "masked_eq",
                            other => panic!("an operator the test does not translate: {other}"),
                        };
                        let field = |name: &str| arg[name].as_u64().unwrap_or(0);
                        format!(" {} {op} {} {}", field("index"), field("value"), field("valueTwo"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for name in rule["names"].as_array().unwrap() {
            let action = action(rule["action"].as_str().unwrap(), rule);
            input += &format!("rule {action} {}{conditions}\n", name.as_str().unwrap());
        }
    }
    let mut child = Command::new(compiler())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the libseccomp compiler");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}\ninput:\n{input}", String::from_utf8_lossy(&output.stderr));
    output
        .stdout
        .chunks_exact(8)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect()
}

/// First arguments that tell the rules apart: fork flags with and without CLONE_NEWNS,
/// each network family and a local one, socketcall's SOCKET and BIND, and values with
/// garbage in the upper half, which the kernel drops for int arguments.
const FIRST_ARGUMENTS: [u64; 12] = [
    0,
    0x11,
    0x2_0011,
    0x2_0000,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_PACKET as u64,
    libc::AF_UNIX as u64,
    2 | 0x1_0000_0000,
    0x2_0000 | 0xdead_0000_0000,
    3,
    0xffff_ffff,
];

/// The differences, by ABI, syscall number and the two outcomes, with the first arguments
/// they show for.
fn differences(gate: Option<Gate>) -> BTreeMap<String, Vec<u64>> {
    let ours = ExecFilter::new(gate);
    let theirs = compiled_container_rules(gate);
    let mut found = BTreeMap::<String, Vec<u64>>::new();
    let numbers = |arch| -> Vec<u32> {
        let plain = 0..1024u32;
        if arch == AUDIT_ARCH_X86_64 {
            plain.clone().chain(plain.map(|nr| nr | X32_BIT)).collect()
        } else {
            plain.collect()
        }
    };
    for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386] {
        for nr in numbers(arch) {
            for arg0 in FIRST_ARGUMENTS {
                let notification = Notification { id: 0, pid: 0, nr: nr as i32, arch, args: [arg0, 0, 0, 0, 0, 0] };
                let words = data(arch, nr, arg0);
                let (a, b) = (
                    outcome(run(ours.instructions(), &words), &notification),
                    outcome(run(&theirs, &words), &notification),
                );
                if a != b {
                    let abi = match arch {
                        AUDIT_ARCH_X86_64 if nr & X32_BIT != 0 => "x32",
                        AUDIT_ARCH_X86_64 => "x86_64",
                        _ => "i386",
                    };
                    let key = format!("{abi} {}: bpf {a:?}, libseccomp {b:?}", nr & !X32_BIT);
                    found.entry(key).or_default().push(arg0);
                }
            }
        }
    }
    found
}

/// Where the two may differ, and why that is harmless: x86_64's execve (59) and execveat
/// (322) numbers with the x32 bit set. The BPF program notifies them, in case a kernel
/// ever maps them; libseccomp knows x32's own numbers (520, 545) and lets these run, and
/// the kernel answers them ENOSYS (they are 64-bit-only entries of syscall_64.tbl).
const HARMLESS: [&str; 2] = ["x32 322: bpf Notified, libseccomp Runs", "x32 59: bpf Notified, libseccomp Runs"];

#[test]
fn the_bpf_program_and_the_container_rules_agree() {
    let mut report = String::new();
    for gate in [None, Some(Gate { io_uring: false }), Some(Gate { io_uring: true })] {
        let found = differences(gate);
        for (what, args) in &found {
            if !HARMLESS.contains(&what.as_str()) || args.len() != FIRST_ARGUMENTS.len() {
                report += &format!("gate {gate:?}: {what} (arg0 {args:x?})\n");
            }
        }
        for harmless in HARMLESS {
            if !found.contains_key(harmless) {
                report += &format!("gate {gate:?}: no longer differs, take it off the list: {harmless}\n");
            }
        }
    }
    assert!(report.is_empty(), "{report}");
}
