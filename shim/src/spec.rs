//! The change the shim makes to a container's OCI spec (config.json): a seccomp rule that
//! sends execve and execveat to the supervisor's listener, and, where the profile lets
//! them run, rules that report the syscalls which change roots (the supervisor's
//! `RootChanges`: with them it opens the container's root once, not for every exec).
//!
//! The spec is edited as JSON, not through typed structs: oci-spec drops fields it does not
//! know on a round trip, and the spec is containerd's, not ours. Only `linux.seccomp` is
//! touched, and the file is replaced atomically (write beside it, then rename), so runc
//! never reads half a spec.
//!
//! One difference from the `execguard run` filter is deliberate: the patch sets no
//! `flags`, so containers go without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV. runc learned
//! that flag in 1.5 (opencontainers/runc#5172, with libseccomp 2.6), and Debian's runc
//! 1.1.5 with libseccomp 2.5.4 would refuse the container. Without it a signalled task
//! withdraws its notification and sends it again: one more inspection, the same decision.

use std::io;
use std::path::Path;

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
    /// stays: see [`supervise_exec`] for what changes for execve and execveat. The
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
        let seccomp = linux.entry("seccomp").or_insert(Value::Null);
        if seccomp.is_null() {
            *seccomp = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [],
            });
        }
        let seccomp = seccomp.as_object_mut().ok_or("`linux.seccomp` is not an object")?;
        if seccomp.get("defaultAction").and_then(Value::as_str) == Some("SCMP_ACT_NOTIFY") {
            return Err("the seccomp profile's defaultAction is SCMP_ACT_NOTIFY, which runc refuses".into());
        }
        let default_action = seccomp.get("defaultAction").and_then(Value::as_str).unwrap_or("").to_string();
        let syscalls = seccomp.entry("syscalls").or_insert_with(|| json!([]));
        let rules = syscalls.as_array_mut().ok_or("`linux.seccomp.syscalls` is not an array")?;
        supervise(rules, &default_action, &seccomp::names(seccomp::Treatment::Exec))?;
        if let Some(gate) = self.gate {
            add_gate(rules, &default_action, gate)?;
        }
        let watch = watch_root_changes(rules, &default_action);
        rules.retain(|rule| rule.get("names").and_then(Value::as_array).is_none_or(|names| !names.is_empty()));
        seccomp.insert("listenerPath".into(), Value::String(self.listener_path.clone()));
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

/// The socket gate's rules. With no rule of the profile about socket and a default that
/// allows it, only the network families are sent (the family is the first argument);
/// otherwise socket (and i386's socketcall) is sent wherever the profile lets it run, as
/// exec is, and the supervisor lets the other families through at once.
fn add_gate(rules: &mut Vec<Value>, default_action: &str, gate: Gate) -> Result<(), String> {
    let sockets = seccomp::names(seccomp::Treatment::NetworkSocket);
    if is_allow(default_action) && !rules.iter().any(|rule| sockets.iter().any(|name| rule_names(rule, name))) {
        for family in [libc::AF_INET, libc::AF_INET6, libc::AF_PACKET] {
            // socket() reads its family as an int, so only the low half counts: an EQ on
            // the whole register would let AF_INET with garbage above bit 31 run unseen
            // (tests/filter_agreement.rs found it).
            let args = json!([{"index": 0, "value": 0xffff_ffffu32, "valueTwo": family, "op": "SCMP_CMP_MASKED_EQ"}]);
            rules.push(json!({"names": sockets, "action": "SCMP_ACT_NOTIFY", "args": args}));
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
fn supervise(rules: &mut Vec<Value>, default_action: &str, names: &[&'static str]) -> Result<(), String> {
    let mut notified = Vec::new();
    let mut added = Vec::new();
    for &name in names {
        let mut decided_by_rule = false;
        let mut denied_under_conditions = false;
        for rule in rules.iter_mut() {
            if !rule_names(rule, name) {
                continue;
            }
            let action = action(rule).to_string();
            if is_deny(&action) {
                decided_by_rule |= !conditional(rule);
                denied_under_conditions |= conditional(rule);
                continue;
            }
            if !is_allow(&action) {
                return Err(format!(
                    "the seccomp profile gives {name} the action {action:?}, which execguard cannot combine with its own rule: \
                     allow, deny or leave {name} to the default action"
                ));
            }
            remove_names(std::slice::from_mut(rule), &[name]);
            if conditional(rule) {
                let args = rule.get("args").cloned().unwrap_or(Value::Null);
                added.push(json!({"names": [name], "action": "SCMP_ACT_NOTIFY", "args": args}));
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
        rules.push(json!({"names": notified, "action": "SCMP_ACT_NOTIFY"}));
    }
    Ok(())
}

/// Adds the rules that report root changes, unless the profile allows one of those
/// syscalls under conditions (then nothing is changed). Rules that allow them without
/// conditions lose their names; the caller drops rules left without names.
fn watch_root_changes(rules: &mut Vec<Value>, default_action: &str) -> RootWatch {
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
            Treatment::Unknown => return RootWatch::NotReported { syscall: name },
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
        rules.push(json!({"names": root_changing, "action": "SCMP_ACT_NOTIFY"}));
    }
    let creating = names(&creating);
    if !creating.is_empty() {
        let flags = |value| json!([{"index": 0, "value": CLONE_NEWNS, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}]);
        rules.push(json!({"names": creating, "action": "SCMP_ACT_NOTIFY", "args": flags(CLONE_NEWNS)}));
        if !is_allow(default_action) {
            // Their ALLOW rule gave way: forks and threads still need one.
            rules.push(json!({"names": creating, "action": "SCMP_ACT_ALLOW", "args": flags(0)}));
        }
    }
    let refused = names(&refused);
    if !refused.is_empty() {
        rules.push(json!({"names": refused, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}));
    }
    RootWatch::Reported
}

/// Takes `names` out of every rule (a rule left without names is the caller's to drop).
fn remove_names(rules: &mut [Value], names: &[&str]) {
    for rule in rules {
        if let Some(rule_names) = rule.get_mut("names").and_then(Value::as_array_mut) {
            rule_names.retain(|name| !name.as_str().is_some_and(|n| names.contains(&n)));
        }
    }
}

/// Whether the rule names the syscall.
fn rule_names(rule: &Value, syscall: &str) -> bool {
    rule.get("names").and_then(Value::as_array).is_some_and(|names| names.iter().any(|n| n.as_str() == Some(syscall)))
}

/// Whether the rule has argument conditions.
fn conditional(rule: &Value) -> bool {
    rule.get("args").and_then(Value::as_array).is_some_and(|args| !args.is_empty())
}

fn action(rule: &Value) -> &str {
    rule.get("action").and_then(Value::as_str).unwrap_or("")
}

fn is_allow(action: &str) -> bool {
    matches!(action, "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG")
}

fn is_deny(action: &str) -> bool {
    matches!(
        action,
        "SCMP_ACT_ERRNO" | "SCMP_ACT_KILL" | "SCMP_ACT_KILL_PROCESS" | "SCMP_ACT_KILL_THREAD" | "SCMP_ACT_TRAP"
    )
}

/// What the profile does with `name`; with `only_new_mount_namespace`, what it does with
/// calls that have CLONE_NEWNS in their first argument.
fn treatment(rules: &[Value], default_action: &str, name: &str, only_new_mount_namespace: bool) -> Treatment {
    let naming: Vec<&Value> = rules.iter().filter(|rule| rule_names(rule, name)).collect();
    if naming.is_empty() {
        return match default_action {
            action if is_deny(action) => Treatment::Denied,
            action if is_allow(action) => Treatment::Allowed { allowed_by_rule: false },
            _ => Treatment::Unknown,
        };
    }
    if naming.iter().all(|rule| !conditional(rule)) {
        if naming.iter().all(|rule| is_deny(action(rule))) {
            return Treatment::Denied;
        }
        if naming.iter().all(|rule| is_allow(action(rule))) {
            return Treatment::Allowed { allowed_by_rule: true };
        }
        return Treatment::Unknown;
    }
    // containerd's and Docker's default profiles allow clone and unshare only when
    // `flags & NAMESPACES == 0`, NAMESPACES including CLONE_NEWNS: such a call with
    // CLONE_NEWNS falls to their default action.
    let excludes_new_mount_namespace = |rule: &Value| {
        rule.get("args").and_then(Value::as_array).is_some_and(|args| {
            args.iter().any(|arg| {
                let field = |key: &str| arg.get(key).and_then(Value::as_u64).unwrap_or(0);
                arg.get("index").and_then(Value::as_u64) == Some(0)
                    && arg.get("op").and_then(Value::as_str) == Some("SCMP_CMP_MASKED_EQ")
                    && field("value") & CLONE_NEWNS != 0
                    && field("valueTwo") & CLONE_NEWNS == 0
            })
        })
    };
    let never_allows =
        |rule: &&Value| is_deny(action(rule)) || (is_allow(action(rule)) && excludes_new_mount_namespace(rule));
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
