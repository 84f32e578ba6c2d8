//! The engine's semantics on small policies: precedence, exceptions, modes, each kind of
//! condition, and missing fields.

mod common;

use common::{exec, exec_argv, EventExt};
use execguard_policy::{Action, Mode, Policy, Severity};

fn policy(body: &str) -> Policy {
    Policy::parse(&format!("mode = \"enforce\"\n{body}"), "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn rule(id: &str, action: &str, severity: &str, when: &str) -> String {
    format!(
        "[[rules]]\nid = \"{id}\"\nname = \"{id}\"\ndescription = \"{id}\"\nseverity = \"{severity}\"\naction = \"{action}\"\nwhen = {when}\n"
    )
}

fn decided(policy: &Policy, event: &execguard_policy::ExecEvent) -> (Action, Option<String>) {
    let record = policy.record(event, &policy.decide(event));
    (record.decision, record.rule.map(|r| r.id))
}

#[test]
fn strongest_action_then_severity_then_file_order() {
    let p = policy(
        &[
            rule("alert_critical", "alert", "critical", "{ name = [\"nc\"] }"),
            rule("block_low", "block", "low", "{ name = [\"nc\"] }"),
            rule("block_high", "block", "high", "{ name = [\"nc\"] }"),
            rule("block_high_later", "block", "high", "{ name = [\"nc\"] }"),
        ]
        .concat(),
    );
    assert_eq!(decided(&p, &exec("/bin/nc", "nc")), (Action::Block, Some("block_high".into())));
}

#[test]
fn an_exception_removes_only_its_rule() {
    let p = policy(&format!(
        "{}[[rules.exceptions]]\nname = \"probe\"\nwhen.flags_any = [\"-z\"]\n{}",
        rule("blocker", "block", "high", "{ name = [\"nc\"] }"),
        rule("alerter", "alert", "low", "{ name = [\"nc\"] }"),
    ));
    assert_eq!(decided(&p, &exec("/bin/nc", "nc -z host 80")), (Action::Alert, Some("alerter".into())));
    assert_eq!(decided(&p, &exec("/bin/nc", "nc host 80")), (Action::Block, Some("blocker".into())));
}

#[test]
fn a_global_exception_allows_whatever_matched() {
    let p = policy(&format!(
        "[[exceptions]]\nname = \"debug images\"\nwhen = {{ image = [\"debug/*\"], namespace = [\"tools\"] }}\n{}",
        rule("blocker", "block", "high", "{ name = [\"nc\"] }"),
    ));
    let debug = exec("/bin/nc", "nc host 80").container("c", "debug/netshoot:1").pod("tools", "p");
    let record = p.record(&debug, &p.decide(&debug));
    assert_eq!(record.decision, Action::Allow);
    assert!(record.reason.contains("debug images"), "{}", record.reason);
    let other_namespace = exec("/bin/nc", "nc host 80").container("c", "debug/netshoot:1").pod("prod", "p");
    assert_eq!(p.decide(&other_namespace).action, Action::Block);
    // Without the fields the exception needs, it does not hold.
    assert_eq!(p.decide(&exec("/bin/nc", "nc host 80")).action, Action::Block);
}

#[test]
fn monitor_mode_turns_block_into_alert() {
    let p = policy(&rule("blocker", "block", "high", "{ name = [\"nc\"] }")).with_mode(Mode::Monitor);
    assert_eq!(decided(&p, &exec("/bin/nc", "nc")), (Action::Alert, Some("blocker".into())));
    let from_file = Policy::parse(
        &format!("mode = \"monitor\"\n{}", rule("blocker", "block", "high", "{ name = [\"nc\"] }")),
        "m.toml",
    )
    .unwrap();
    assert_eq!(from_file.decide(&exec("/bin/nc", "nc")).action, Action::Alert);
}

#[test]
fn an_allow_rule_names_itself_but_never_overrides() {
    let p = policy(
        &[
            rule("expected", "allow", "low", "{ name = [\"curl\"] }"),
            rule("loud", "alert", "low", "{ name = [\"curl\"], args_any = [\"*evil*\"] }"),
        ]
        .concat(),
    );
    assert_eq!(decided(&p, &exec("/bin/curl", "curl ok")), (Action::Allow, Some("expected".into())));
    assert_eq!(decided(&p, &exec("/bin/curl", "curl evil")), (Action::Alert, Some("loud".into())));
}

#[test]
fn argument_conditions() {
    let p = policy(
        &[
            rule("sequence", "block", "high", "{ name = [\"socat\"], args_sequence = [\"-d\", \"re:^TCP\"] }"),
            rule("regex", "alert", "low", "{ name = [\"curl\"], args_any = [\"re:^https?://\\\\d+\\\\.\"] }"),
            rule("flags_all", "block", "high", "{ name = [\"nc\"], flags_all = [\"-l\", \"-k\"] }"),
        ]
        .concat(),
    );
    assert_eq!(p.decide(&exec("/bin/socat", "socat -d TCP:x:1 -")).action, Action::Block);
    assert_eq!(p.decide(&exec("/bin/socat", "socat TCP:x:1 -d")).action, Action::Allow);
    assert_eq!(p.decide(&exec("/bin/curl", "curl http://10.0.0.1/x")).action, Action::Alert);
    assert_eq!(p.decide(&exec("/bin/curl", "curl http://example.com/")).action, Action::Allow);
    assert_eq!(p.decide(&exec("/bin/nc", "nc -lk 80")).action, Action::Block);
    assert_eq!(p.decide(&exec("/bin/nc", "nc -l 80")).action, Action::Allow);
}

#[test]
fn parent_conditions_look_at_the_parent_only_and_ancestor_at_all() {
    let p = policy(
        &[
            rule("parent", "block", "high", "{ name = [\"curl\"], parent = { name = [\"php-fpm*\"] } }"),
            rule("ancestor", "alert", "low", "{ name = [\"curl\"], ancestor = { name = [\"php-fpm*\"] } }"),
        ]
        .concat(),
    );
    let direct = exec("/bin/curl", "curl x").parent("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]);
    assert_eq!(decided(&p, &direct), (Action::Block, Some("parent".into())));
    let via_shell = exec("/bin/curl", "curl x")
        .parent("/bin/sh", &["sh", "-c", "curl x"])
        .ancestor("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]);
    assert_eq!(decided(&p, &via_shell), (Action::Alert, Some("ancestor".into())));
    assert_eq!(p.decide(&exec("/bin/curl", "curl x")).action, Action::Allow);
}

#[test]
fn container_and_pod_scopes() {
    let p = policy(&rule(
        "scoped",
        "block",
        "medium",
        "{ name = [\"curl\"], container_name = [\"web\"], namespace = [\"prod-*\"], pod = [\"web-*\"], container_id = [\"0123*\"] }",
    ));
    let inside = exec("/bin/curl", "curl x").container("web", "nginx").pod("prod-eu", "web-7d9f");
    assert_eq!(p.decide(&inside).action, Action::Block);
    let elsewhere = exec("/bin/curl", "curl x").container("web", "nginx").pod("staging", "web-7d9f");
    assert_eq!(p.decide(&elsewhere).action, Action::Allow);
}

#[test]
fn a_missing_field_never_matches() {
    let p = policy(
        &[
            rule("not_interactive", "block", "high", "{ name = [\"nc\"], interactive = false }"),
            rule("image_outsider", "block", "high", "{ in_image = false }"),
            rule("by_identity", "block", "high", "{ identity = [\"nc\"] }"),
            rule("by_parent", "block", "high", "{ parent = { executable = [\"*\"] } }"),
        ]
        .concat(),
    );
    assert_eq!(p.decide(&exec("/bin/nc", "nc")).action, Action::Allow);
    assert_eq!(p.decide(&exec("/bin/x", "x").identity("nc")).action, Action::Block);
}

#[test]
fn lists_nest_and_expand() {
    let p = policy(&format!(
        "[lists]\ninner = [\"nc*\"]\nouter = [\"@inner\", \"socat\"]\n{}",
        rule("listed", "block", "high", "{ name = [\"@outer\"] }")
    ));
    assert_eq!(p.decide(&exec("/bin/ncat", "ncat")).action, Action::Block);
    assert_eq!(p.decide(&exec("/bin/socat", "socat")).action, Action::Block);
    assert_eq!(p.decide(&exec("/bin/ls", "ls")).action, Action::Allow);
}

#[test]
fn arguments_with_spaces_and_empty_argv() {
    let p = policy(&rule("spaced", "alert", "low", "{ args_any = [\"* -e *\"] }"));
    assert_eq!(p.decide(&exec_argv("/bin/sh", &["sh", "-c", "nc -e /bin/sh"])).action, Action::Alert);
    assert_eq!(p.decide(&exec_argv("/bin/sh", &[])).action, Action::Allow);
}

#[test]
fn records_carry_the_rule_summary() {
    let p = policy(&rule("r1", "block", "critical", "{ name = [\"nc\"] }"));
    let record = p.record(&exec("/bin/nc", "nc"), &p.decide(&exec("/bin/nc", "nc")));
    let rule = record.rule.unwrap();
    assert_eq!((rule.id.as_str(), rule.severity), ("r1", Severity::Critical));
    let json = serde_json::to_value(p.record(&exec("/bin/ls", "ls"), &p.decide(&exec("/bin/ls", "ls")))).unwrap();
    assert_eq!(json, serde_json::json!({"decision": "allow", "rule": null, "reason": "no rule matched"}));
}
