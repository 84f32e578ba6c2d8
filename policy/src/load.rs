//! Reading a policy file: TOML in, a compiled policy or *every* error out.
//!
//! The schema is strict (an unknown key is an error, with the closest known key as a
//! hint) because a typo in a security policy must not silently turn a rule off. Errors
//! read `file:line:column: message` and most carry a hint that says what to write instead.
//! The document is walked by hand, not through serde, so that one run reports all the
//! problems of a file rather than the first.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::condition::{ConditionSet, Flag, Test};
use crate::pattern::{Pattern, PatternSet};
use crate::{Action, Exception, Mode, Rule, Severity};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;
/// The entries of each list as written, before `@references` are expanded.
type RawLists<'a> = HashMap<&'a str, Vec<(&'a str, Span)>>;

/// One problem in a policy file, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    pub origin: String,
    /// 1-based line and column; `None` when the file could not be read at all.
    pub position: Option<(usize, usize)>,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.origin, self.message)?,
            None => write!(f, "{}: {}", self.origin, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a policy file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    pub(crate) fn io(origin: &str, error: &std::io::Error) -> PolicyErrors {
        PolicyErrors(vec![PolicyError {
            origin: origin.to_string(),
            position: None,
            message: format!("cannot read the policy: {error}"),
            hint: Some("check the path, or leave the policy unset to use the embedded default".into()),
        }])
    }
}

impl std::fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

pub(crate) struct Compiled {
    pub mode: Mode,
    pub rules: Vec<Rule>,
    pub exceptions: Vec<Exception>,
}

const TOP_KEYS: &[&str] = &["mode", "lists", "exceptions", "rules"];
const RULE_KEYS: &[&str] = &["id", "name", "description", "reference", "severity", "action", "when", "exceptions"];
const EXCEPTION_KEYS: &[&str] = &["name", "when"];
const PROCESS_KEYS: &[&str] = &[
    "executable",
    "name",
    "identity",
    "args_any",
    "args_none",
    "arg_commands_any",
    "arg_commands_none",
    "flags_any",
    "flags_all",
    "args_sequence",
    "script",
    "destination_loopback",
    "destination_hosts",
    "any_of",
];
const EVENT_KEYS: &[&str] = &[
    "interactive",
    "writable_location",
    "in_image",
    "fileless",
    "args_truncated",
    "writable_lineage",
    "container_id",
    "container_name",
    "image",
    "namespace",
    "pod",
    "parent",
    "ancestor",
];

/// Where a condition set sits: at the top of a rule (the whole event), or inside `parent`
/// / `ancestor` (one process).
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Event,
    Lineage(&'static str),
}

pub(crate) fn compile(text: &str, origin: &str) -> Result<Compiled, PolicyErrors> {
    let mut loader = Loader { text, origin, errors: Vec::new(), lists: HashMap::new() };
    let compiled = match DeTable::parse(text) {
        Ok(document) => loader.document(document.get_ref()),
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            let message = error.message().trim().to_string();
            loader.error(span, format!("not valid TOML: {message}"), None);
            None
        }
    };
    match compiled {
        Some(compiled) if loader.errors.is_empty() => Ok(compiled),
        _ => Err(PolicyErrors(loader.errors)),
    }
}

struct Loader<'s> {
    text: &'s str,
    origin: &'s str,
    errors: Vec<PolicyError>,
    /// Lists by name, with every `@reference` inside them already expanded.
    lists: HashMap<String, Vec<Pattern>>,
}

fn entries<'a, 'i>(table: &'a DeTable<'i>) -> impl Iterator<Item = (&'a str, Span, &'a Value<'i>)> {
    table.iter().map(|(key, value)| (key.get_ref().as_ref(), key.span(), value))
}

fn get<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<&'a Value<'i>> {
    entries(table).find(|(key, _, _)| *key == name).map(|(_, _, value)| value)
}

fn kind(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known.iter().map(|k| (distance(key, k), *k)).filter(|(d, _)| *d <= 3).min().map(|(_, k)| k)
}

impl<'s> Loader<'s> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn error(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        let position = Some(self.position(span.start));
        self.errors.push(PolicyError { origin: self.origin.to_string(), position, message: message.into(), hint });
    }

    fn unknown_key(&mut self, key: &str, span: Span, known: &[&str], place: &str) {
        let hint = match closest(key, known) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("the keys of {place} are: {}", known.join(", ")),
        };
        self.error(span, format!("unknown key `{key}` in {place}"), Some(hint));
    }

    fn expect_table<'a, 'i>(&mut self, value: &'a Value<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.error(value.span(), format!("{what} must be a table, not {}", kind(other)), None);
                None
            }
        }
    }

    fn expect_str<'a>(&mut self, value: &'a Value, what: &str) -> Option<&'a str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            other => {
                self.error(value.span(), format!("{what} must be a string, not {}", kind(other)), None);
                None
            }
        }
    }

    fn expect_bool(&mut self, value: &Value, what: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let hint = Some(format!("write `{what} = true` or `{what} = false`"));
                self.error(value.span(), format!("`{what}` must be true or false, not {}", kind(other)), hint);
                None
            }
        }
    }

    /// A string, or an array of strings, each with its span.
    fn expect_strings<'a>(&mut self, value: &'a Value, what: &str) -> Option<Vec<(&'a str, Span)>> {
        match value.get_ref() {
            DeValue::String(text) => Some(vec![(text.as_ref(), value.span())]),
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    out.push((self.expect_str(item, &format!("each item of `{what}`"))?, item.span()));
                }
                Some(out)
            }
            other => {
                let hint = Some(format!("write `{what} = [\"...\", \"@list\"]`"));
                self.error(
                    value.span(),
                    format!("`{what}` must be a string or an array of strings, not {}", kind(other)),
                    hint,
                );
                None
            }
        }
    }

    fn required<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        span: &Span,
        key: &str,
        place: &str,
    ) -> Option<&'a Value<'i>> {
        let value = get(table, key);
        if value.is_none() {
            self.error(span.clone(), format!("{place} has no `{key}`"), Some(format!("add `{key} = ...` to {place}")));
        }
        value
    }

    fn document(&mut self, root: &DeTable) -> Option<Compiled> {
        for (key, span, _) in entries(root) {
            if !TOP_KEYS.contains(&key) {
                self.unknown_key(key, span, TOP_KEYS, "the policy");
            }
        }
        let mode = match get(root, "mode") {
            Some(value) => self.expect_str(value, "`mode`").and_then(|text| match text.parse() {
                Ok(mode) => Some(mode),
                Err(message) => {
                    self.error(value.span(), message, None);
                    None
                }
            }),
            None => {
                let hint = Some("add `mode = \"monitor\"` (report only) or `mode = \"enforce\"` (block)".into());
                self.error(0..0, "the policy has no `mode`", hint);
                None
            }
        };
        if let Some(lists) = get(root, "lists") {
            self.lists_table(lists);
        }
        let exceptions = match get(root, "exceptions") {
            Some(value) => self.exceptions(value, "global exception"),
            None => Vec::new(),
        };
        let rules = match get(root, "rules") {
            Some(value) => self.rules(value),
            None => Vec::new(),
        };
        Some(Compiled { mode: mode?, rules, exceptions })
    }

    fn lists_table(&mut self, value: &Value) {
        let Some(table) = self.expect_table(value, "`lists`") else { return };
        let mut raw: RawLists = HashMap::new();
        let mut order = Vec::new();
        for (name, _, items) in entries(table) {
            if let Some(items) = self.expect_strings(items, name) {
                raw.insert(name, items);
                order.push(name);
            }
        }
        for name in order {
            self.resolve_list(name, &raw, &mut Vec::new());
        }
    }

    /// Expands one list (and, first, the lists it references), reporting unknown names
    /// and cycles at the reference.
    fn resolve_list<'a>(&mut self, name: &'a str, raw: &RawLists<'a>, stack: &mut Vec<&'a str>) {
        if self.lists.contains_key(name) {
            return;
        }
        let Some(items) = raw.get(name) else { return };
        stack.push(name);
        let mut patterns = Vec::new();
        for (text, span) in items {
            match text.strip_prefix('@') {
                Some(inner) if stack.contains(&inner) => {
                    let hint = Some(format!("list `{inner}` includes `{name}` again: remove one of the references"));
                    self.error(span.clone(), format!("list `{name}` refers to itself through `@{inner}`"), hint);
                }
                Some(inner) if raw.contains_key(inner) => {
                    self.resolve_list(inner, raw, stack);
                    patterns.extend(self.lists.get(inner).into_iter().flatten().cloned());
                }
                Some(inner) => {
                    let known: Vec<&str> = raw.keys().copied().collect();
                    self.unknown_list(inner, span.clone(), &known);
                }
                None => match Pattern::parse(text, Some(name)) {
                    Ok(pattern) => patterns.push(pattern),
                    Err(message) => self.error(span.clone(), message, None),
                },
            }
        }
        stack.pop();
        self.lists.insert(name.to_string(), patterns);
    }

    fn unknown_list(&mut self, name: &str, span: Span, known: &[&str]) {
        let hint = match closest(name, known) {
            Some(k) => format!("did you mean `@{k}`?"),
            None => "define it under [lists], or write the text without '@'".to_string(),
        };
        self.error(span, format!("unknown list `@{name}`"), Some(hint));
    }

    fn patterns(&mut self, value: &Value, what: &str) -> Option<Vec<Pattern>> {
        let items = self.expect_strings(value, what)?;
        let mut patterns = Vec::new();
        let mut ok = true;
        for (text, span) in items {
            let parsed = match text.strip_prefix('@') {
                Some(list) => match self.lists.get(list) {
                    Some(listed) => Ok(listed.clone()),
                    None => {
                        let known: Vec<String> = self.lists.keys().cloned().collect();
                        let known: Vec<&str> = known.iter().map(String::as_str).collect();
                        self.unknown_list(list, span, &known);
                        ok = false;
                        continue;
                    }
                },
                None => Pattern::parse(text, None).map(|p| vec![p]),
            };
            match parsed {
                Ok(found) => patterns.extend(found),
                Err(message) => {
                    self.error(span, message, None);
                    ok = false;
                }
            }
        }
        ok.then_some(patterns)
    }

    fn pattern_set(&mut self, value: &Value, what: &str) -> Option<PatternSet> {
        self.patterns(value, what).map(PatternSet::new)
    }

    fn flags(&mut self, value: &Value, what: &str) -> Option<Vec<Flag>> {
        let items = self.expect_strings(value, what)?;
        let mut flags = Vec::new();
        for (text, span) in items {
            match Flag::parse(text) {
                Ok(flag) => flags.push(flag),
                Err(message) => self.error(
                    span,
                    message,
                    Some(format!("for a cluster such as -lp, write `{what} = [\"-l\", \"-p\"]`")),
                ),
            }
        }
        Some(flags)
    }

    fn sequence(&mut self, value: &Value) -> Option<Vec<PatternSet>> {
        let DeValue::Array(items) = value.get_ref() else {
            let hint = Some("write `args_sequence = [\"-e\", \"/bin/sh\"]`".into());
            self.error(value.span(), "`args_sequence` must be an array of patterns", hint);
            return None;
        };
        if items.is_empty() {
            self.error(
                value.span(),
                "`args_sequence` is empty",
                Some("list the arguments that must follow each other".into()),
            );
            return None;
        }
        items.iter().map(|item| self.pattern_set(item, "args_sequence")).collect()
    }

    fn condition_set(&mut self, value: &Value, scope: Scope) -> Option<ConditionSet> {
        let place = match scope {
            Scope::Event => "a `when` table",
            Scope::Lineage(which) => which,
        };
        let table = self.expect_table(value, place)?;
        let mut tests = Vec::new();
        let mut ok = true;
        for (key, span, value) in entries(table) {
            let test = match (key, scope) {
                ("executable", _) => self.pattern_set(value, key).map(Test::Executable),
                ("name", _) => self.pattern_set(value, key).map(Test::Name),
                ("identity", Scope::Event) => self.pattern_set(value, key).map(Test::Identity),
                ("identity", Scope::Lineage(which)) => {
                    let hint = Some("match the parent's `executable` or `name` instead".into());
                    self.error(
                        span,
                        format!("`identity` is only known for the executed file, not inside `{which}`"),
                        hint,
                    );
                    None
                }
                ("args_any", _) => self.pattern_set(value, key).map(Test::ArgsAny),
                ("args_none", _) => self.pattern_set(value, key).map(Test::ArgsNone),
                ("arg_commands_any", _) => self.pattern_set(value, key).map(Test::ArgCommandsAny),
                ("arg_commands_none", _) => self.pattern_set(value, key).map(Test::ArgCommandsNone),
                ("flags_any", _) => self.flags(value, key).map(Test::FlagsAny),
                ("flags_all", _) => self.flags(value, key).map(Test::FlagsAll),
                ("args_sequence", _) => self.sequence(value).map(Test::ArgsSequence),
                ("script", _) => self.pattern_set(value, key).map(Test::Script),
                ("destination_loopback", _) => self.expect_bool(value, key).map(Test::DestinationLoopback),
                ("destination_hosts", _) => self.pattern_set(value, key).map(Test::DestinationHosts),
                ("any_of", _) => self.any_of(value, scope).map(Test::AnyOf),
                ("interactive", Scope::Event) => self.expect_bool(value, key).map(Test::Interactive),
                ("writable_location", Scope::Event) => self.expect_bool(value, key).map(Test::WritableLocation),
                ("in_image", Scope::Event) => self.expect_bool(value, key).map(Test::InImage),
                ("fileless", Scope::Event) => self.expect_bool(value, key).map(Test::Fileless),
                ("args_truncated", Scope::Event) => self.expect_bool(value, key).map(Test::ArgsTruncated),
                ("writable_lineage", Scope::Event) => self.expect_bool(value, key).map(Test::WritableLineage),
                ("container_id", Scope::Event) => self.pattern_set(value, key).map(Test::ContainerId),
                ("container_name", Scope::Event) => self.pattern_set(value, key).map(Test::ContainerName),
                ("image", Scope::Event) => self.pattern_set(value, key).map(Test::Image),
                ("namespace", Scope::Event) => self.pattern_set(value, key).map(Test::Namespace),
                ("pod", Scope::Event) => self.pattern_set(value, key).map(Test::Pod),
                ("parent", Scope::Event) => self.condition_set(value, Scope::Lineage("parent")).map(Test::Parent),
                ("ancestor", Scope::Event) => self.condition_set(value, Scope::Lineage("ancestor")).map(Test::Ancestor),
                (key, Scope::Lineage(which)) if EVENT_KEYS.contains(&key) => {
                    let hint = Some(format!("move `{key}` out of `{which}`, to the rule's `when`"));
                    self.error(span, format!("`{key}` applies to the exec as a whole, not inside `{which}`"), hint);
                    None
                }
                (key, Scope::Event) => {
                    let known: Vec<&str> = PROCESS_KEYS.iter().chain(EVENT_KEYS).copied().collect();
                    self.unknown_key(key, span, &known, place);
                    None
                }
                (key, Scope::Lineage(_)) => {
                    self.unknown_key(key, span, PROCESS_KEYS, place);
                    None
                }
            };
            match test {
                Some(test) => tests.push(test),
                None => ok = false,
            }
        }
        if ok && tests.is_empty() {
            let hint = Some("add at least one condition, e.g. `name = [\"nc\"]`".into());
            self.error(value.span(), format!("{place} is empty: it would match every exec"), hint);
            return None;
        }
        ok.then(|| ConditionSet::new(tests))
    }

    fn any_of(&mut self, value: &Value, scope: Scope) -> Option<Vec<ConditionSet>> {
        let items = match value.get_ref() {
            DeValue::Array(items) if !items.is_empty() => items,
            _ => {
                let hint =
                    Some("write `any_of = [{ flags_all = [\"-l\", \"-p\"] }, { args_any = [\"/bin/sh\"] }]`".into());
                self.error(value.span(), "`any_of` must be a non-empty array of condition tables", hint);
                return None;
            }
        };
        let sets: Vec<Option<ConditionSet>> = items.iter().map(|item| self.condition_set(item, scope)).collect();
        sets.into_iter().collect()
    }

    fn array_of_tables<'a, 'i>(&mut self, value: &'a Value<'i>, what: &str) -> Vec<(&'a DeTable<'i>, Span)> {
        let DeValue::Array(items) = value.get_ref() else {
            let hint = Some(format!("write each one as a [[{what}]] table"));
            self.error(value.span(), format!("`{what}` must be an array of tables"), hint);
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.expect_table(item, &format!("each of `{what}`")).map(|t| (t, item.span())))
            .collect()
    }

    fn exceptions(&mut self, value: &Value, place: &str) -> Vec<Exception> {
        let mut exceptions = Vec::new();
        for (table, span) in self.array_of_tables(value, "exceptions") {
            for (key, key_span, _) in entries(table) {
                if !EXCEPTION_KEYS.contains(&key) {
                    self.unknown_key(key, key_span, EXCEPTION_KEYS, &format!("a {place}"));
                }
            }
            let name =
                self.required(table, &span, "name", &format!("a {place}")).and_then(|v| self.expect_str(v, "`name`"));
            let when = self
                .required(table, &span, "when", &format!("a {place}"))
                .and_then(|v| self.condition_set(v, Scope::Event));
            if let (Some(name), Some(when)) = (name, when) {
                exceptions.push(Exception { name: name.to_string(), when });
            }
        }
        exceptions
    }

    fn rules(&mut self, value: &Value) -> Vec<Rule> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
        for (table, span) in self.array_of_tables(value, "rules") {
            for (key, key_span, _) in entries(table) {
                if !RULE_KEYS.contains(&key) {
                    self.unknown_key(key, key_span, RULE_KEYS, "a rule");
                }
            }
            let id = self.required(table, &span, "id", "a rule").and_then(|v| {
                let id = self.expect_str(v, "`id`")?;
                let valid = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !valid {
                    let hint = Some("use letters, digits, '.', '_' and '-', e.g. \"acme.netcat_listener\"".into());
                    self.error(v.span(), format!("rule id {id:?} is not a valid id"), hint);
                    return None;
                }
                if let Some((line, column)) = seen.get(id) {
                    let hint = Some(format!("the first one is at line {line}, column {column}; ids must be unique"));
                    self.error(v.span(), format!("rule id {id:?} is used twice"), hint);
                    return None;
                }
                seen.insert(id.to_string(), self.position(v.span().start));
                Some(id)
            });
            let name = self.required(table, &span, "name", "a rule").and_then(|v| self.expect_str(v, "`name`"));
            let description =
                self.required(table, &span, "description", "a rule").and_then(|v| self.expect_str(v, "`description`"));
            let reference = get(table, "reference").and_then(|v| self.expect_str(v, "`reference`")).map(str::to_string);
            let severity = self.required(table, &span, "severity", "a rule").and_then(|v| self.severity(v));
            let action = self.required(table, &span, "action", "a rule").and_then(|v| self.action(v));
            let when = self.required(table, &span, "when", "a rule").and_then(|v| self.condition_set(v, Scope::Event));
            let exceptions = match get(table, "exceptions") {
                Some(v) => self.exceptions(v, "rule exception"),
                None => Vec::new(),
            };
            if let (Some(id), Some(name), Some(description), Some(severity), Some(action), Some(when)) =
                (id, name, description, severity, action, when)
            {
                rules.push(Rule {
                    id: id.to_string(),
                    name: name.to_string(),
                    description: description.to_string(),
                    reference,
                    severity,
                    action,
                    when,
                    exceptions,
                });
            }
        }
        rules
    }

    fn severity(&mut self, value: &Value) -> Option<Severity> {
        match self.expect_str(value, "`severity`")? {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            other => {
                let hint = Some("use \"low\", \"medium\", \"high\" or \"critical\"".into());
                self.error(value.span(), format!("unknown severity {other:?}"), hint);
                None
            }
        }
    }

    fn action(&mut self, value: &Value) -> Option<Action> {
        match self.expect_str(value, "`action`")? {
            "allow" => Some(Action::Allow),
            "alert" => Some(Action::Alert),
            "block" => Some(Action::Block),
            other => {
                let hint =
                    Some("use \"allow\", \"alert\" (allow and report) or \"block\" (the exec fails with EPERM)".into());
                self.error(value.span(), format!("unknown action {other:?}"), hint);
                None
            }
        }
    }
}
