//! The execguard rule engine: exec events in, decisions out.
//!
//! Every exec in every guarded container asks [`Policy::decide`] one question: allow, alert
//! or block? The engine is pure: it knows nothing of processes, the kernel or containerd,
//! and does no I/O but reading a policy file. The supervisor fills an [`ExecEvent`], the
//! engine answers with a [`Decision`] that names its rule, and [`Policy::record`] turns the
//! decision into the explained JSON record that alerts carry.
//!
//! # Precedence
//! 1. A rule matches when its `when` conditions hold and none of its own exceptions does
//!    (an exception removes its rule only).
//! 2. Of the matching rules, the strongest action wins (block > alert > allow); between
//!    equal actions the higher severity, then the rule written first.
//! 3. A global exception that holds turns the decision into allow, whatever matched.
//! 4. In monitor mode a block becomes an alert (the record says it would have blocked).
//! 5. No rule: allow.
//!
//! Decisions on the allow path do not allocate; see `benches/decide.rs` for the speed.

mod condition;
pub mod destination;
pub mod event;
mod index;
mod load;
pub mod name;
mod pattern;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use condition::{ConditionSet, Subject};
pub use condition::{Needs, ProcessView};
pub use event::ExecEvent;
use index::{NameIndex, RuleMask};
pub use load::{PolicyError, PolicyErrors};
/// The policy's string patterns (equality, glob, `re:`), for tools that select by rule id
/// in the same language the policy file is written in (`execguard alerts --rule`).
pub use pattern::Pattern;
use pattern::PatternSet;

/// The default policy, embedded so that a shim without a policy file still protects.
pub const DEFAULT_POLICY: &str = include_str!("../../config/policy.toml");
/// How the embedded default policy names itself in errors and logs.
pub const DEFAULT_POLICY_ORIGIN: &str = "<embedded default policy>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Alert,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Blocks become alerts: nothing fails, everything a block would stop is reported.
    Monitor,
    Enforce,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "monitor" => Ok(Mode::Monitor),
            "enforce" => Ok(Mode::Enforce),
            _ => Err(format!("unknown mode {text:?}: use \"monitor\" or \"enforce\"")),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    name: String,
    description: String,
    reference: Option<String>,
    severity: Severity,
    action: Action,
    when: ConditionSet,
    exceptions: Vec<Exception>,
}

#[derive(Debug, Clone)]
struct Exception {
    name: String,
    when: ConditionSet,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    mode: Mode,
    rules: Vec<Rule>,
    /// Rule indexes, strongest first: the first one that matches wins.
    precedence: Vec<usize>,
    index: NameIndex,
    exceptions: Vec<Exception>,
    tool_names: Arc<[Box<str>]>,
    script_readers: PatternSet,
}

/// Why nothing matched although a rule's conditions held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Excepted {
    /// (rule, exception of that rule)
    ByRule(usize, usize),
    /// (rule, global exception)
    Globally(usize, usize),
}

/// The answer for one exec. Small and `Copy`: the explanation is rendered from it only
/// when someone reads it ([`Policy::record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    rule: Option<usize>,
    excepted: Option<Excepted>,
    /// Monitor mode turned this rule's block into an alert.
    downgraded: bool,
}

/// The rule a decision names, as alerts (ECS `rule.*`) and `policy eval` print it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub id: String,
    pub name: String,
    pub severity: Severity,
    #[serde(default)]
    pub description: String,
    /// The family of rules it belongs to: the part of its id before the first dot
    /// (`falco`, `datadog`, `elastic`, `execguard` in the default policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
    /// Where the rule it was taken from is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl RuleSummary {
    fn of(rule: &Rule) -> RuleSummary {
        RuleSummary {
            id: rule.id.clone(),
            name: rule.name.clone(),
            severity: rule.severity,
            description: rule.description.clone(),
            ruleset: rule.id.split_once('.').map(|(ruleset, _)| ruleset.to_string()),
            reference: rule.reference.clone(),
        }
    }
}

/// The outcome of [`Policy::first_look`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLook {
    /// The rules that may match need nothing beyond the event: this is the decision.
    Decided(Decision),
    /// Read these, then [`Policy::decide`].
    Needs(Needs),
}

/// What [`Policy::survey`] found for one exec.
struct Survey {
    candidates: RuleMask,
    needs: Needs,
    /// The candidates that need nothing and hold; only meaningful when `needs` is empty.
    holding: RuleMask,
}

/// A decision explained: `{"decision":..,"rule":{..}|null,"reason":".."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub decision: Action,
    pub rule: Option<RuleSummary>,
    pub reason: String,
}

impl Policy {
    /// Compiles a policy from TOML text; `origin` (usually the file's path) prefixes errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyErrors> {
        let compiled = load::compile(text, origin)?;
        let mut precedence: Vec<usize> = (0..compiled.rules.len()).collect();
        precedence.sort_by_key(|&i| {
            let rule = &compiled.rules[i];
            (std::cmp::Reverse(rule.action), std::cmp::Reverse(rule.severity), i)
        });
        let index = NameIndex::build(compiled.rules.iter().map(|rule| &rule.when));
        let mut names = BTreeSet::new();
        compiled.rules.iter().for_each(|rule| rule.when.literal_names(&mut names));
        names.extend(["busybox", "toybox"]);
        let tool_names = names.into_iter().map(Box::from).collect();
        let mut readers = Vec::new();
        compiled.rules.iter().for_each(|rule| rule.when.script_readers(&mut readers));
        let script_readers = PatternSet::new(readers);
        Ok(Policy {
            mode: compiled.mode,
            rules: compiled.rules,
            precedence,
            index,
            exceptions: compiled.exceptions,
            tool_names,
            script_readers,
        })
    }

    /// Reads and compiles a policy file.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyErrors> {
        Policy::load_with_text(path).map(|(policy, _)| policy)
    }

    /// [`Policy::load`], also returning the text it compiled (to keep a copy of it).
    pub fn load_with_text(path: &std::path::Path) -> Result<(Policy, String), PolicyErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyErrors::io(&origin, &e))?;
        Policy::parse(&text, &origin).map(|policy| (policy, text))
    }

    /// The embedded default policy. Its validity is checked by the test suite, so an error
    /// here means a broken build, reported rather than panicked on.
    pub fn embedded() -> Result<Policy, PolicyErrors> {
        Policy::parse(DEFAULT_POLICY, DEFAULT_POLICY_ORIGIN)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The same rules in another mode (`--mode`, a pod annotation); `None` keeps the
    /// policy's own.
    pub fn with_mode(mut self, mode: impl Into<Option<Mode>>) -> Policy {
        if let Some(mode) = mode.into() {
            self.mode = mode;
        }
        self
    }

    /// Every name a rule matches literally, and the multi-call binaries (busybox, toybox),
    /// whose applets the rules name: the files the supervisor learns to recognise under
    /// any name or copy. Shared, so that a supervisor can tell when a reloaded policy
    /// brings other names.
    pub fn tool_names(&self) -> &Arc<[Box<str>]> {
        &self.tool_names
    }

    /// Whether the rules read this program's first argument as the script it runs (`sh
    /// /tmp/x.sh`): the programs named next to a `script` condition. The supervisor carries
    /// a script's writable location down the lineage for them.
    pub fn reads_script(&self, name: &str) -> bool {
        self.script_readers.is_match(name)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// What the rules that may match this exec (judging by its tool name) need beyond the
    /// executable, argv and file facts. The supervisor reads only that before deciding,
    /// and everything else only for an exec it alerts on or blocks.
    pub fn needs(&self, event: &ExecEvent) -> Needs {
        self.survey(&Subject::of(event)).needs
    }

    /// Decides one exec. Allocates nothing unless a rule needs to make a relative script
    /// path absolute.
    pub fn decide(&self, event: &ExecEvent) -> Decision {
        let subject = Subject::of(event);
        let candidates = self.index.candidates(subject.process.name());
        self.decide_among(&subject, candidates, |_, rule| rule.when.holds(&subject))
    }

    /// [`Policy::needs`] and, when the rules need nothing more, [`Policy::decide`] on the
    /// same pass: the conditions of every rule that may match are checked once (issue
    /// #16: the supervisor checked them twice for every ordinary exec).
    pub fn first_look(&self, event: &ExecEvent) -> FirstLook {
        let subject = Subject::of(event);
        let survey = self.survey(&subject);
        if survey.needs != Needs::default() {
            return FirstLook::Needs(survey.needs);
        }
        let holds = |index, rule: &Rule| survey.holding.get(index).unwrap_or_else(|| rule.when.holds(&subject));
        FirstLook::Decided(self.decide_among(&subject, survey.candidates, holds))
    }

    /// What the candidate rules need, and which of those that need nothing hold.
    fn survey(&self, subject: &Subject) -> Survey {
        let candidates = self.index.candidates(subject.process.name());
        let mut survey = Survey { candidates, needs: Needs::default(), holding: RuleMask::default() };
        for (index, rule) in self.rules.iter().enumerate().filter(|(index, _)| candidates.contains(*index)) {
            let rule_needs = rule.when.needs_for(subject);
            let holds = rule_needs == Needs::default() && rule.when.holds(subject);
            if holds {
                survey.holding.insert(index);
            }
            if rule_needs != Needs::default() || holds {
                let with_exceptions =
                    rule.exceptions.iter().fold(rule_needs, |n, e| n.union(e.when.needs_for(subject)));
                survey.needs = survey.needs.union(with_exceptions);
            }
        }
        survey
    }

    /// The strongest candidate rule whose conditions `holds`, with the exceptions applied.
    fn decide_among(&self, subject: &Subject, candidates: RuleMask, holds: impl Fn(usize, &Rule) -> bool) -> Decision {
        let mut excepted = None;
        for &index in &self.precedence {
            if !candidates.contains(index) {
                continue;
            }
            let Some(rule) = self.rules.get(index) else { continue };
            if !holds(index, rule) {
                continue;
            }
            if let Some(x) = rule.exceptions.iter().position(|e| e.when.holds(subject)) {
                excepted.get_or_insert(Excepted::ByRule(index, x));
                continue;
            }
            if let Some(g) = self.exceptions.iter().position(|e| e.when.holds(subject)) {
                let excepted = Some(Excepted::Globally(index, g));
                return Decision { action: Action::Allow, rule: None, excepted, downgraded: false };
            }
            let downgraded = self.mode == Mode::Monitor && rule.action == Action::Block;
            let action = if downgraded { Action::Alert } else { rule.action };
            return Decision { action, rule: Some(index), excepted: None, downgraded };
        }
        Decision { action: Action::Allow, rule: None, excepted, downgraded: false }
    }

    /// The decision with its rule and a reason a responder can read.
    pub fn record(&self, event: &ExecEvent, decision: &Decision) -> DecisionRecord {
        let subject = Subject::of(event);
        let rule = decision.rule.and_then(|i| self.rules.get(i));
        let reason = match (rule, decision.excepted) {
            (Some(rule), _) => {
                let mut why = Vec::new();
                rule.when.explain(&subject, &mut why);
                let mut reason = format!("{}: {}", rule.description, why.join("; "));
                if decision.downgraded {
                    reason.push_str(" (monitor mode: enforce mode would block)");
                }
                reason
            }
            (None, Some(Excepted::ByRule(r, x))) => {
                let (id, exception) = self.rules.get(r).map_or(("?", "?"), |rule| {
                    (rule.id.as_str(), rule.exceptions.get(x).map_or("?", |e| e.name.as_str()))
                });
                format!("no rule applies: {id} matched but its exception {exception:?} holds")
            }
            (None, Some(Excepted::Globally(r, g))) => {
                let id = self.rules.get(r).map_or("?", |rule| rule.id.as_str());
                let exception = self.exceptions.get(g).map_or("?", |e| e.name.as_str());
                format!("no rule applies: {id} matched but the global exception {exception:?} holds")
            }
            (None, None) => "no rule matched".to_string(),
        };
        DecisionRecord { decision: decision.action, rule: rule.map(RuleSummary::of), reason }
    }
}
