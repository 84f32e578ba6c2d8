//! The change the shim makes to a container's OCI spec (config.json): a seccomp rule that
//! sends execve and execveat to the supervisor's listener, and, where the profile lets
//! them run, rules that report the syscalls which change roots (the supervisor's
//! `RootChanges`: with them it opens the container's root once, not for every exec).
//!
//! Only `linux.seccomp` is touched, through oci-spec's typed `LinuxSeccomp`: the slot is
//! read, edited typed and written back into that one slot. The rest of the spec stays
//! untyped JSON, because oci-spec drops fields it does not model and the spec is
//! containerd's, not ours. The file is replaced atomically (write beside it, then rename),
//! so runc never reads half a spec.
//!
//! One difference from the `execguard run` filter is deliberate: the patch sets no
//! `flags`, so containers go without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV. runc learned
//! that flag in 1.5 (opencontainers/runc#5172, with libseccomp 2.6), and Debian's runc
//! 1.1.5 with libseccomp 2.5.4 would refuse the container. Without it a signalled task
//! withdraws its notification and sends it again: one more inspection, the same decision.

use std::io;
use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator as Operator, LinuxSyscall,
};
use serde_json::{json, Map, Value};

use execguard_seccomp::{self as seccomp, Gate};

const CLONE_NEWNS: u64 = libc::CLONE_NEWNS as u64;

/// What a profile does with a syscall, as far as its rules can tell without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// It always fails.
    Denied,
    /// It runs, through the default action (`allowed_by_rule` false) or rules without
    /// conditions that allow it.
    Allowed { allowed_by_rule: bool },
    /// Conditions or mixed actions: only libseccomp could tell.
    Unknown,
}

/// Whether the patched spec reports root changes to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootWatch {
    /// Every syscall that can change roots is either denied by the profile or notified.
    Reported,
    /// The profile lets such a syscall run under conditions execguard does not evaluate:
    /// its rules are left as they are, and each exec's root is looked up on its own.
    NotReported { syscall: &'static str },
}

/// What the shim adds to a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecPatch {
    /// The supervisor's socket, where runc sends the listener fd.
    /// One socket per container: runc's `listenerMetadata` would only repeat what the
    /// socket already says, so the patch sets none.
    pub listener_path: String,
    /// Enforce mode's socket gate (`execguard_seccomp::Gate`): network sockets, and io_uring_setup
    /// unless the node allows it, go to the supervisor too.
    pub gate: Option<Gate>,
}

/// Why a spec could not be patched.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} is not valid JSON: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("{path}: {what}")]
    Shape { path: String, what: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
}

impl SpecPatch {
    /// Adds the notify rule to a spec.
    ///
    /// With no seccomp profile, it adds one that allows everything but execve and
    /// execveat, for the native and the compat architectures. With a profile (Kubernetes'
    /// RuntimeDefault, a Localhost profile, ctr's default), every restriction it makes
    /// stays: see [`supervise`] for what changes for execve and execveat. The
    /// profile's architectures are kept as they are: adding one would open that ABI to
    /// the profile's allowed syscalls.
    ///
    /// Then the root-changing syscalls: a rule that allows one without conditions gives
    /// way to a NOTIFY rule (the same precedence as for execve), one that the profile
    /// denies stays denied, and if any is allowed under conditions the profile keeps its
    /// rules for all of them and the result says so.
    pub fn apply(&self, spec: &mut Value) -> Result<RootWatch, String> {
        let root = spec.as_object_mut().ok_or("the spec is not a JSON object")?;
        let linux = root.entry("linux").or_insert_with(|| json!({}));
        let linux = linux.as_object_mut().ok_or("`linux` is not an object")?;
        let mut seccomp = match linux.remove("seccomp").filter(|slot| !slot.is_null()) {
            None => no_profile(),
            Some(slot) => serde_json::from_value::<LinuxSeccomp>(slot)
                .map_err(|e| format!("`linux.seccomp` is not a seccomp profile runc could load: {e}"))?,
        };
        let default_action = seccomp.default_action();
        if default_action == Action::ScmpActNotify {
            return Err("the seccomp profile's defaultAction is SCMP_ACT_NOTIFY, which runc refuses".into());
        }
        let mut rules = seccomp.syscalls().clone().unwrap_or_default();
        supervise(&mut rules, default_action, &seccomp::names(seccomp::Treatment::Exec))?;
        if let Some(gate) = self.gate {
            add_gate(&mut rules, default_action, gate)?;
        }
        let watch = watch_root_changes(&mut rules, default_action)?;
        rules.retain(|rule| !rule.names().is_empty());
        seccomp.set_syscalls(Some(rules));
        seccomp.set_listener_path(Some(self.listener_path.clone().into()));
        let slot = serde_json::to_value(&seccomp).map_err(|e| format!("cannot write `linux.seccomp`: {e}"))?;
        linux.insert("seccomp".into(), slot);
        Ok(watch)
    }

    /// Patches `BUNDLE/config.json` in place, atomically.
    pub fn apply_to_bundle(&self, bundle: &Path) -> Result<RootWatch, SpecError> {
        let path = bundle.join("config.json");
        let shown = path.display().to_string();
        let text = std::fs::read(&path).map_err(|source| SpecError::Read { path: shown.clone(), source })?;
        let mut spec: Value =
            serde_json::from_slice(&text).map_err(|source| SpecError::Json { path: shown.clone(), source })?;
        let watch = self.apply(&mut spec).map_err(|what| SpecError::Shape { path: shown.clone(), what })?;
        let staged = bundle.join(".config.json.execguard");
        let bytes = serde_json::to_vec(&spec).map_err(|source| SpecError::Json { path: shown.clone(), source })?;
        std::fs::write(&staged, bytes)
            .and_then(|()| std::fs::rename(&staged, &path))
            .map_err(|source| SpecError::Write { path: shown, source })?;
        Ok(watch)
    }
}

/// The profile of a spec that has none: everything runs, on the native and the compat
/// architectures.
fn no_profile() -> LinuxSeccomp {
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(Action::ScmpActAllow);
    seccomp.set_architectures(Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]));
    seccomp
}

fn rule(names: &[&str], action: Action, args: Option<Vec<LinuxSeccompArg>>) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|name| name.to_string()).collect());
    rule.set_action(action);
    rule.set_args(args);
    rule
}

/// `(argument 0 & mask) == value`.
fn first_argument_masked(mask: u64, value: u64) -> Result<Vec<LinuxSeccompArg>, String> {
    let arg = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(mask)
        .value_two(value)
        .op(Operator::ScmpCmpMaskedEq)
        .build()
        .map_err(|e| format!("cannot build a seccomp condition: {e}"))?;
    Ok(vec![arg])
}

/// The socket gate's rules. With no rule of the profile about socket and a default that
/// allows it, only the network families are sent (the family is the first argument);
/// otherwise socket (and i386's socketcall) is sent wherever the profile lets it run, as
/// exec is, and the supervisor lets the other families through at once.
fn add_gate(rules: &mut Vec<LinuxSyscall>, default_action: Action, gate: Gate) -> Result<(), String> {
    let sockets = seccomp::names(seccomp::Treatment::NetworkSocket);
    if is_allow(default_action) && !rules.iter().any(|rule| sockets.iter().any(|name| rule_names(rule, name))) {
        for family in [libc::AF_INET, libc::AF_INET6, libc::AF_PACKET] {
            // socket() reads its family as an int, so only the low half counts: an EQ on
            // the whole register would let AF_INET with garbage above bit 31 run unseen
            // (tests/filter_agreement.rs found it).
            let args = first_argument_masked(0xffff_ffff, family as u64)?;
            rules.push(rule(&sockets, Action::ScmpActNotify, Some(args)));
        }
    } else {
        supervise(rules, default_action, &sockets)?;
    }
    supervise(rules, default_action, &seccomp::names(seccomp::Treatment::SocketCall))?;
    if gate.io_uring {
        supervise(rules, default_action, &seccomp::names(seccomp::Treatment::IoUring))?;
    }
    Ok(())
}

/// Sends execve and execveat to the supervisor wherever the profile would let them run,
/// and nowhere else: a rule that allows them (ALLOW, LOG) becomes a NOTIFY rule with the
/// same conditions; a rule that denies, kills or traps stays as written; a default action
/// that allows them gets an unconditional NOTIFY rule, unless a rule of the profile
/// already decides every call. An exec that the profile always refuses gets no rule.
///
/// A profile that allows exec by default but refuses it under conditions cannot be
/// served: an unconditional NOTIFY rule would take the place of those conditions in
/// libseccomp, so the container is refused rather than its restriction dropped.
fn supervise(rules: &mut Vec<LinuxSyscall>, default_action: Action, names: &[&'static str]) -> Result<(), String> {
    let mut notified = Vec::new();
    let mut added = Vec::new();
    for &name in names {
        let mut decided_by_rule = false;
        let mut denied_under_conditions = false;
        for rule in rules.iter_mut() {
            if !rule_names(rule, name) {
                continue;
            }
            let action = rule.action();
            if is_deny(action) {
                decided_by_rule |= !conditional(rule);
                denied_under_conditions |= conditional(rule);
                continue;
            }
            if !is_allow(action) {
                return Err(format!(
                    "the seccomp profile gives {name} the action \"{action}\", which execguard cannot combine with its own rule: \
                     allow, deny or leave {name} to the default action"
                ));
            }
            remove_names(std::slice::from_mut(rule), &[name]);
            if conditional(rule) {
                added.push(self::rule(&[name], Action::ScmpActNotify, rule.args().clone()));
            } else {
                decided_by_rule = true;
                notified.push(name);
            }
        }
        if !decided_by_rule && is_allow(default_action) {
            if denied_under_conditions {
                return Err(format!(
                    "the seccomp profile allows {name} by default and denies it under conditions: execguard cannot add its \
                     rule without dropping those conditions; give {name} an explicit SCMP_ACT_ALLOW rule, or deny it by default"
                ));
            }
            notified.push(name);
        }
    }
    rules.extend(added);
    if !notified.is_empty() {
        rules.push(rule(&notified, Action::ScmpActNotify, None));
    }
    Ok(())
}

/// Adds the rules that report root changes, unless the profile allows one of those
/// syscalls under conditions (then nothing is changed). Rules that allow them without
/// conditions lose their names; the caller drops rules left without names.
fn watch_root_changes(rules: &mut Vec<LinuxSyscall>, default_action: Action) -> Result<RootWatch, String> {
    // What the filter table says of them (execguard_seccomp::SYSCALLS).
    let root_changing = seccomp::names(seccomp::Treatment::RootChange);
    let creating = seccomp::names(seccomp::Treatment::NewMountNamespace);
    let refused = seccomp::names(seccomp::Treatment::NoSuchSyscall);
    let mut allowed = Vec::new();
    for &name in root_changing.iter().chain(&creating).chain(&refused) {
        let only_new_mount_namespace = creating.contains(&name);
        match treatment(rules, default_action, name, only_new_mount_namespace) {
            Treatment::Denied => {}
            Treatment::Allowed { allowed_by_rule } => allowed.push((name, allowed_by_rule)),
            Treatment::Unknown => return Ok(RootWatch::NotReported { syscall: name }),
        }
    }
    let allowed_by_rules: Vec<&str> =
        allowed.iter().filter(|&&(_, allowed_by_rule)| allowed_by_rule).map(|&(name, _)| name).collect();
    remove_names(rules, &allowed_by_rules);
    let names = |from: &[&'static str]| -> Vec<&'static str> {
        allowed.iter().map(|&(name, _)| name).filter(|name| from.contains(name)).collect()
    };
    let root_changing = names(&root_changing);
    if !root_changing.is_empty() {
        rules.push(rule(&root_changing, Action::ScmpActNotify, None));
    }
    let creating = names(&creating);
    if !creating.is_empty() {
        let flags = |value| first_argument_masked(CLONE_NEWNS, value).map(Some);
        rules.push(rule(&creating, Action::ScmpActNotify, flags(CLONE_NEWNS)?));
        if !is_allow(default_action) {
            // Their ALLOW rule gave way: forks and threads still need one.
            rules.push(rule(&creating, Action::ScmpActAllow, flags(0)?));
        }
    }
    let refused = names(&refused);
    if !refused.is_empty() {
        let mut enosys = rule(&refused, Action::ScmpActErrno, None);
        enosys.set_errno_ret(Some(libc::ENOSYS as u32));
        rules.push(enosys);
    }
    Ok(RootWatch::Reported)
}

/// Takes `names` out of every rule (a rule left without names is the caller's to drop).
fn remove_names(rules: &mut [LinuxSyscall], names: &[&str]) {
    for rule in rules {
        let kept = rule.names().iter().filter(|name| !names.contains(&name.as_str())).cloned().collect();
        rule.set_names(kept);
    }
}

/// Whether the rule names the syscall.
fn rule_names(rule: &LinuxSyscall, syscall: &str) -> bool {
    rule.names().iter().any(|name| name == syscall)
}

/// Whether the rule has argument conditions.
fn conditional(rule: &LinuxSyscall) -> bool {
    rule.args().as_ref().is_some_and(|args| !args.is_empty())
}

fn is_allow(action: Action) -> bool {
    matches!(action, Action::ScmpActAllow | Action::ScmpActLog)
}

fn is_deny(action: Action) -> bool {
    matches!(
        action,
        Action::ScmpActErrno
            | Action::ScmpActKill
            | Action::ScmpActKillProcess
            | Action::ScmpActKillThread
            | Action::ScmpActTrap
    )
}

/// What the profile does with `name`; with `only_new_mount_namespace`, what it does with
/// calls that have CLONE_NEWNS in their first argument.
fn treatment(rules: &[LinuxSyscall], default_action: Action, name: &str, only_new_mount_namespace: bool) -> Treatment {
    let naming: Vec<&LinuxSyscall> = rules.iter().filter(|rule| rule_names(rule, name)).collect();
    if naming.is_empty() {
        return match default_action {
            action if is_deny(action) => Treatment::Denied,
            action if is_allow(action) => Treatment::Allowed { allowed_by_rule: false },
            _ => Treatment::Unknown,
        };
    }
    if naming.iter().all(|rule| !conditional(rule)) {
        if naming.iter().all(|rule| is_deny(rule.action())) {
            return Treatment::Denied;
        }
        if naming.iter().all(|rule| is_allow(rule.action())) {
            return Treatment::Allowed { allowed_by_rule: true };
        }
        return Treatment::Unknown;
    }
    // containerd's and Docker's default profiles allow clone and unshare only when
    // `flags & NAMESPACES == 0`, NAMESPACES including CLONE_NEWNS: such a call with
    // CLONE_NEWNS falls to their default action.
    let excludes_new_mount_namespace = |rule: &LinuxSyscall| {
        rule.args().iter().flatten().any(|arg| {
            arg.index() == 0
                && arg.op() == Operator::ScmpCmpMaskedEq
                && arg.value() & CLONE_NEWNS != 0
                && arg.value_two().unwrap_or(0) & CLONE_NEWNS == 0
        })
    };
    let never_allows = |rule: &&LinuxSyscall| {
        is_deny(rule.action()) || (is_allow(rule.action()) && excludes_new_mount_namespace(rule))
    };
    if only_new_mount_namespace && is_deny(default_action) && naming.iter().all(never_allows) {
        Treatment::Denied
    } else {
        Treatment::Unknown
    }
}

/// The spec's annotations (`annotations`), empty when there are none.
pub fn annotations(spec: &Value) -> Map<String, Value> {
    spec.get("annotations").and_then(Value::as_object).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch() -> SpecPatch {
        SpecPatch { listener_path: "/run/execguard/x.sock".into(), gate: None }
    }

    #[test]
    fn a_spec_without_seccomp_gets_an_allow_all_profile_with_the_notify_rule() {
        let mut spec =
            json!({"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"namespaces": []}, "x-unknown": 1});
        assert_eq!(patch().apply(&mut spec), Ok(RootWatch::Reported));
        let seccomp = &spec["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(seccomp["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        assert_eq!(
            seccomp["syscalls"],
            json!([
                {"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["chroot", "pivot_root", "setns"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["unshare", "clone"], "action": "SCMP_ACT_NOTIFY", "args": new_mount_namespace(true)},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ])
        );
        assert_eq!(seccomp["listenerPath"], "/run/execguard/x.sock");
        // Fields the shim does not own are kept as they were.
        assert_eq!(spec["x-unknown"], 1);
        assert_eq!(spec["linux"]["namespaces"], json!([]));
    }

    #[test]
    fn an_existing_profile_is_kept_but_cannot_allow_exec() {
        let mut spec = json!({"linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["read", "execve", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["execveat"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]}}});
        patch().apply(&mut spec).unwrap();
        let seccomp = &spec["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(seccomp["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(
            seccomp["syscalls"],
            json!([
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}
            ])
        );
    }

    fn exec_rules(default_action: &str, rules: Value) -> Result<Value, String> {
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": default_action, "syscalls": rules}}});
        patch().apply(&mut spec)?;
        let rules = spec["linux"]["seccomp"]["syscalls"].as_array().unwrap().clone();
        let names_exec =
            |rule: &Value| rule["names"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("exec"));
        Ok(Value::Array(rules.into_iter().filter(names_exec).collect()))
    }

    /// The pod's profile keeps every restriction it makes on exec: NOTIFY only where it
    /// would let the exec run.
    #[test]
    fn rules_that_deny_exec_stay_and_notify_is_added_only_where_exec_is_allowed() {
        let errno = json!({"names": ["execve"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1});
        let kill = json!({"names": ["execveat"], "action": "SCMP_ACT_KILL_PROCESS"});
        // Both denied: nothing to supervise, and the denials are as written.
        assert_eq!(exec_rules("SCMP_ACT_ALLOW", json!([errno, kill])).unwrap(), json!([errno, kill]));
        // Denied by default, allowed by no rule: no NOTIFY at all.
        assert_eq!(
            exec_rules("SCMP_ACT_ERRNO", json!([{"names": ["read"], "action": "SCMP_ACT_ALLOW"}])).unwrap(),
            json!([])
        );
        // One denied, the other allowed by default.
        assert_eq!(
            exec_rules("SCMP_ACT_ALLOW", json!([kill])).unwrap(),
            json!([kill, {"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}])
        );
        // A conditional ALLOW becomes a NOTIFY under the same conditions; a conditional
        // denial stays; what the default denies gets nothing.
        let empty_path = json!([{"index": 4, "value": 0x1000, "valueTwo": 0x1000, "op": "SCMP_CMP_MASKED_EQ"}]);
        let rules = json!([
            {"names": ["execveat"], "action": "SCMP_ACT_ALLOW", "args": empty_path},
            {"names": ["execve"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["execve"], "action": "SCMP_ACT_LOG"}
        ]);
        assert_eq!(
            exec_rules("SCMP_ACT_ERRNO", rules.clone()).unwrap(),
            json!([
                rules[1],
                {"names": ["execveat"], "action": "SCMP_ACT_NOTIFY", "args": empty_path},
                {"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}
            ])
        );
    }

    /// The gate: network families only, where no rule of the profile is about socket;
    /// else socket wherever the profile lets it run; io_uring when the gate refuses it.
    #[test]
    fn the_gate_sends_network_sockets_and_io_uring_where_the_profile_allows_them() {
        let gated = SpecPatch { gate: Some(Gate { io_uring: true }), ..patch() };
        let mut spec = json!({});
        gated.apply(&mut spec).unwrap();
        let rules = spec["linux"]["seccomp"]["syscalls"].as_array().unwrap().clone();
        let family = |f: i32| {
            json!({"names": ["socket"], "action": "SCMP_ACT_NOTIFY",
                                       "args": [{"index": 0, "value": 0xffff_ffffu32, "valueTwo": f, "op": "SCMP_CMP_MASKED_EQ"}]})
        };
        for f in [libc::AF_INET, libc::AF_INET6, libc::AF_PACKET] {
            assert!(rules.contains(&family(f)), "{rules:#?}");
        }
        let notified = |rules: &[Value], name: &str| {
            rules
                .iter()
                .any(|r| r["action"] == "SCMP_ACT_NOTIFY" && r["names"].as_array().unwrap().iter().any(|n| n == name))
        };
        assert!(notified(&rules, "io_uring_setup") && notified(&rules, "socketcall"));

        // containerd's default profile allows socket by a rule: that rule becomes NOTIFY.
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["execve", "socket", "read"], "action": "SCMP_ACT_ALLOW"}]}}});
        SpecPatch { gate: Some(Gate { io_uring: false }), ..patch() }.apply(&mut spec).unwrap();
        let rules = spec["linux"]["seccomp"]["syscalls"].as_array().unwrap().clone();
        assert_eq!(rules[0], json!({"names": ["read"], "action": "SCMP_ACT_ALLOW"}));
        assert!(notified(&rules, "socket") && !notified(&rules, "io_uring_setup") && !notified(&rules, "socketcall"));
        assert!(!rules
            .iter()
            .any(|r| r["action"] == "SCMP_ACT_ALLOW" && r["names"].as_array().unwrap().iter().any(|n| n == "socket")));
    }

    #[test]
    fn exec_rules_execguard_cannot_combine_with_refuse_the_container_with_the_reason() {
        let conditional_deny = json!([{"names": ["execve"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]);
        let error = exec_rules("SCMP_ACT_ALLOW", conditional_deny).unwrap_err();
        assert!(error.contains("allows execve by default and denies it under conditions"), "{error}");
        let trace = json!([{"names": ["execveat"], "action": "SCMP_ACT_TRACE"}]);
        let error = exec_rules("SCMP_ACT_ALLOW", trace).unwrap_err();
        assert!(error.contains("execveat the action \"SCMP_ACT_TRACE\""), "{error}");
    }

    /// The rule argument that tells whether CLONE_NEWNS is in the flags.
    fn new_mount_namespace(set: bool) -> Value {
        json!([{"index": 0, "value": 0x20000, "valueTwo": if set { 0x20000 } else { 0 }, "op": "SCMP_CMP_MASKED_EQ"}])
    }

    /// The shape of containerd's default profile (contrib/seccomp) without CAP_SYS_ADMIN.
    #[test]
    fn the_default_profile_reports_chroot_and_already_denies_the_rest() {
        let namespaces = json!([{"index": 0, "value": 0x7E02_0000_u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]);
        let mut spec = json!({"linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["chroot", "execve", "execveat", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": namespaces},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]}}});
        assert_eq!(patch().apply(&mut spec), Ok(RootWatch::Reported));
        assert_eq!(
            spec["linux"]["seccomp"]["syscalls"],
            json!([
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": namespaces},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["chroot"], "action": "SCMP_ACT_NOTIFY"}
            ])
        );
    }

    /// With CAP_SYS_ADMIN the default profile allows them all: forks keep their ALLOW rule.
    #[test]
    fn unconditional_allows_give_way_to_notify_rules() {
        let mut spec = json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["clone", "clone3", "chroot", "pivot_root", "setns", "unshare", "read", "execve", "execveat"],
                          "action": "SCMP_ACT_ALLOW"}]}}});
        assert_eq!(patch().apply(&mut spec), Ok(RootWatch::Reported));
        assert_eq!(
            spec["linux"]["seccomp"]["syscalls"],
            json!([
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["chroot", "pivot_root", "setns"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["unshare", "clone"], "action": "SCMP_ACT_NOTIFY", "args": new_mount_namespace(true)},
                {"names": ["unshare", "clone"], "action": "SCMP_ACT_ALLOW", "args": new_mount_namespace(false)},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ])
        );
    }

    #[test]
    fn conditions_execguard_cannot_evaluate_leave_the_profile_as_it_was() {
        let only_fd_3 = json!([{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]);
        let rules = json!([
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "args": only_fd_3}
        ]);
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_LOG", "syscalls": rules}}});
        assert_eq!(patch().apply(&mut spec), Ok(RootWatch::NotReported { syscall: "setns" }));
        let mut expected = rules.as_array().unwrap().clone();
        expected.push(json!({"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}));
        assert_eq!(spec["linux"]["seccomp"]["syscalls"], Value::Array(expected));

        // Two unconditional rules that disagree: libseccomp's choice is not execguard's to guess.
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO"}
        ]}}});
        assert_eq!(patch().apply(&mut spec), Ok(RootWatch::NotReported { syscall: "chroot" }));
    }

    #[test]
    fn specs_that_cannot_take_the_rule_are_errors() {
        assert!(patch().apply(&mut json!([])).is_err());
        assert!(patch().apply(&mut json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}}})).is_err());
        assert!(patch().apply(&mut json!({"linux": {"seccomp": {"syscalls": {}}}})).is_err());
        // An action runc does not know is refused by name, not dropped or read as another.
        let mut unknown = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_MAYBE"}]}}});
        let error = patch().apply(&mut unknown).unwrap_err();
        assert!(
            error.contains("`linux.seccomp` is not a seccomp profile") && error.contains("SCMP_ACT_MAYBE"),
            "{error}"
        );
    }

    /// The slot goes through oci-spec's types; what the profile says that the patch does
    /// not change comes back as it was.
    #[test]
    fn the_profile_keeps_what_the_patch_does_not_change() {
        let mut spec = json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}}});
        patch().apply(&mut spec).unwrap();
        let seccomp = &spec["linux"]["seccomp"];
        assert_eq!(seccomp["defaultErrnoRet"], 1);
        assert_eq!(seccomp["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(seccomp["flags"], json!(["SECCOMP_FILTER_FLAG_LOG"]));
        let rules = seccomp["syscalls"].as_array().unwrap();
        assert_eq!(rules[0], json!({"names": ["read"], "action": "SCMP_ACT_ALLOW"}));
        assert_eq!(rules[1], json!({"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}));
        assert!(rules.contains(&json!({"names": ["execve"], "action": "SCMP_ACT_NOTIFY"})), "{rules:#?}");
    }

    #[test]
    fn the_bundle_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("execguard-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"ociVersion":"1.0.2","annotations":{"a":"b"}}"#).unwrap();
        patch().apply_to_bundle(&dir).unwrap();
        let spec: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(spec["linux"]["seccomp"]["listenerPath"], "/run/execguard/x.sock");
        assert_eq!(annotations(&spec)["a"], "b");
        assert!(!dir.join(".config.json.execguard").exists());
        std::fs::write(dir.join("config.json"), "{not json").unwrap();
        let error = patch().apply_to_bundle(&dir).unwrap_err().to_string();
        assert!(error.contains("config.json is not valid JSON"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
