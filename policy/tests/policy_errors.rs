//! Policy files that must be refused, and how: every error, each at file:line:column,
//! with a hint where one helps.

use execguard_policy::{Policy, PolicyErrors};

fn errors(text: &str) -> PolicyErrors {
    match Policy::parse(text, "bad.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors,
    }
}

/// (line, column, message) of each error.
fn positions(text: &str) -> Vec<(usize, usize, String)> {
    errors(text)
        .0
        .into_iter()
        .map(|e| {
            let (line, column) = e.position.unwrap_or((0, 0));
            (line, column, e.message)
        })
        .collect()
}

const RULE_HEAD: &str =
    "[[rules]]\nid = \"r\"\nname = \"n\"\ndescription = \"d\"\nseverity = \"low\"\naction = \"block\"\n";

#[test]
fn syntax_errors_point_at_the_place() {
    let found = positions("mode = \"enforce\"\nrules = [\n  { id = \"x\" \n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, 3, "{found:?}");
    assert!(found[0].2.starts_with("not valid TOML"), "{found:?}");
}

#[test]
fn unknown_keys_are_rejected_with_the_closest_known_key() {
    let text = format!("mode = \"enforce\"\nmdoe = 1\n{RULE_HEAD}when.flag_any = [\"-e\"]\n");
    let errors = errors(&text);
    let rendered = errors.to_string();
    assert!(rendered.contains("bad.toml:2:1: unknown key `mdoe` in the policy"), "{rendered}");
    assert!(rendered.contains("did you mean `mode`?"), "{rendered}");
    assert!(rendered.contains("bad.toml:9:6: unknown key `flag_any`"), "{rendered}");
    assert!(rendered.contains("did you mean `flags_any`?"), "{rendered}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = format!(
        "mode = \"sometimes\"\n[lists]\na = [\"@b\"]\nb = [\"@a\"]\n{RULE_HEAD}when.name = [\"@nope\", \"[x\"]\nwhen.args_any = [\"re:(\"]\n{}",
        RULE_HEAD.replace("\"low\"", "\"urgent\"").replace("\"block\"", "\"kill\"")
    );
    let found = positions(&text);
    let messages: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
    let expect = [
        "unknown mode",
        "refers to itself",
        "unknown list `@nope`",
        "unclosed '['",
        "invalid regular expression",
        "rule id \"r\" is used twice",
        "unknown severity \"urgent\"",
        "unknown action \"kill\"",
        "a rule has no `when`",
    ];
    for e in expect {
        assert!(messages.iter().any(|m| m.contains(e)), "missing {e:?} in {messages:#?}");
    }
    assert!(found.iter().all(|(line, column, _)| *line >= 1 && *column >= 1));
}

#[test]
fn missing_keys_and_wrong_types() {
    let rendered = errors("[[rules]]\nid = 3\nwhen = { interactive = \"yes\" }\n").to_string();
    for e in [
        "the policy has no `mode`",
        "`id` must be a string, not an integer",
        "a rule has no `name`",
        "a rule has no `severity`",
        "`interactive` must be true or false, not a string",
    ] {
        assert!(rendered.contains(e), "missing {e:?} in\n{rendered}");
    }
    assert!(rendered.contains("hint: add `mode = \"monitor\"`"), "{rendered}");
}

#[test]
fn conditions_that_cannot_apply_where_they_are_written() {
    let text = format!("mode = \"enforce\"\n{RULE_HEAD}when.parent = {{ identity = [\"nc\"], interactive = true }}\n");
    let rendered = errors(&text).to_string();
    assert!(rendered.contains("`identity` is only known for the executed file, not inside `parent`"), "{rendered}");
    assert!(rendered.contains("`interactive` applies to the exec as a whole, not inside `parent`"), "{rendered}");
}

#[test]
fn empty_or_meaningless_conditions() {
    let rendered = errors(&format!("mode = \"enforce\"\n{RULE_HEAD}when = {{}}\n")).to_string();
    assert!(rendered.contains("it would match every exec"), "{rendered}");
    let rendered =
        errors(&format!("mode = \"enforce\"\n{RULE_HEAD}when.flags_any = [\"-lp\"]\nwhen.any_of = []\n")).to_string();
    assert!(rendered.contains("\"-lp\" is not a flag"), "{rendered}");
    assert!(rendered.contains("`any_of` must be a non-empty array"), "{rendered}");
}

#[test]
fn unreadable_file_names_the_path() {
    let error = Policy::load(std::path::Path::new("/nonexistent/policy.toml")).unwrap_err().to_string();
    assert!(error.starts_with("/nonexistent/policy.toml: cannot read the policy"), "{error}");
}
