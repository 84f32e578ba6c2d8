//! Conditions: the compiled form of a rule's `when` table and of an exception.
//!
//! A [`ConditionSet`] holds when every one of its tests holds; `any_of` gives "or", and
//! exceptions and the `*_none` tests give "not". The same tests serve the exec'ing process
//! and, inside `parent` and `ancestor`, the processes above it, so that a condition means
//! one thing wherever it is written. A test that needs a field the event does not have
//! does not hold: the engine never guesses.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::destination::{all_hosts, all_loopback, destinations, Destination};
use crate::event::ExecEvent;
use crate::name::{basename, invocation, script, Invocation};
use crate::pattern::{Origin, Pattern, PatternSet};

/// A flag as getopt sees it: `-e` (possibly inside a cluster such as `-lvp`) or `--exec`.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    Short(u8),
    Long(Box<str>),
}

impl Flag {
    /// Parses `-x` or `--word`.
    pub fn parse(text: &str) -> Result<Flag, String> {
        if let Some(word) = text.strip_prefix("--") {
            if !word.is_empty() && !word.contains('=') {
                return Ok(Flag::Long(word.into()));
            }
        } else if let [b'-', letter] = text.as_bytes() {
            if letter.is_ascii_alphanumeric() {
                return Ok(Flag::Short(*letter));
            }
        }
        Err(format!("{text:?} is not a flag: write one letter after '-' (\"-e\") or a word after '--' (\"--exec\")"))
    }

    /// The argument that carries this flag, if any. Short flags count inside clusters up to
    /// the first character that is not a letter or digit (`-lvp4444`, `-e/bin/sh`). Long
    /// flags count when abbreviated, as getopt_long accepts (`--sh-exe` is `--sh-exec`), and
    /// with a value (`--exec=/bin/sh`). Parsing stops at `--`, as getopt's does.
    fn find_in<'e>(&self, args: &'e [String]) -> Option<&'e str> {
        for arg in args {
            if arg == "--" {
                return None;
            }
            let found = match (self, arg.strip_prefix("--")) {
                (Flag::Long(flag), Some(word)) => {
                    let word = word.split('=').next().unwrap_or(word);
                    !word.is_empty() && flag.starts_with(word)
                }
                (Flag::Short(letter), None) => arg
                    .strip_prefix('-')
                    .is_some_and(|cluster| cluster.bytes().take_while(u8::is_ascii_alphanumeric).any(|b| b == *letter)),
                _ => false,
            };
            if found {
                return Some(arg);
            }
        }
        None
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flag::Short(letter) => write!(f, "-{}", *letter as char),
            Flag::Long(word) => write!(f, "--{word}"),
        }
    }
}

/// The parts of an event that cost the supervisor extra reads of /proc. It reads them
/// only when a rule that may match the exec needs them (see `Policy::needs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// `process.parent`.
    pub parent: bool,
    /// `execguard.ancestors` (and so the parent too).
    pub ancestors: bool,
    /// `process.interactive`.
    pub interactive: bool,
    /// `process.working_directory`, to make a relative script path absolute.
    pub working_directory: bool,
    /// `execguard.writable_lineage`.
    pub writable_lineage: bool,
}

impl Needs {
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            parent: self.parent || other.parent,
            ancestors: self.ancestors || other.ancestors,
            interactive: self.interactive || other.interactive,
            working_directory: self.working_directory || other.working_directory,
            writable_lineage: self.writable_lineage || other.writable_lineage,
        }
    }
}

/// One test. The first group applies to any process; the second to the event as a whole
/// and is only allowed at the top of a rule or exception.
#[derive(Debug, Clone)]
pub enum Test {
    Executable(PatternSet),
    Name(PatternSet),
    Identity(PatternSet),
    ArgsAny(PatternSet),
    ArgsNone(PatternSet),
    ArgCommandsAny(PatternSet),
    ArgCommandsNone(PatternSet),
    FlagsAny(Vec<Flag>),
    FlagsAll(Vec<Flag>),
    ArgsSequence(Vec<PatternSet>),
    Script(PatternSet),
    DestinationLoopback(bool),
    DestinationHosts(PatternSet),
    AnyOf(Vec<ConditionSet>),

    Interactive(bool),
    WritableLocation(bool),
    InImage(bool),
    Fileless(bool),
    ArgsTruncated(bool),
    WritableLineage(bool),
    ContainerId(PatternSet),
    ContainerName(PatternSet),
    Image(PatternSet),
    Namespace(PatternSet),
    Pod(PatternSet),
    Parent(ConditionSet),
    Ancestor(ConditionSet),
}

impl Test {
    /// Cheap tests run first so that most events are let go after one or two comparisons.
    fn cost(&self) -> u8 {
        match self {
            Test::Interactive(_) | Test::WritableLocation(_) | Test::InImage(_) | Test::Fileless(_) => 0,
            Test::ArgsTruncated(_) => 0,
            Test::WritableLineage(_) => 4,
            Test::Name(_) | Test::Identity(_) => 1,
            Test::Executable(_) | Test::ContainerId(_) | Test::ContainerName(_) | Test::Image(_) => 2,
            Test::Namespace(_) | Test::Pod(_) => 2,
            Test::FlagsAny(_) | Test::FlagsAll(_) | Test::ArgsAny(_) | Test::ArgsNone(_) => 3,
            Test::ArgCommandsAny(_) | Test::ArgCommandsNone(_) | Test::ArgsSequence(_) | Test::Script(_) => 3,
            Test::DestinationLoopback(_) | Test::DestinationHosts(_) => 3,
            Test::Parent(_) => 4,
            Test::Ancestor(_) | Test::AnyOf(_) => 5,
        }
    }
}

/// Tests that must all hold.
#[derive(Debug, Clone, Default)]
pub struct ConditionSet {
    tests: Vec<Test>,
}

/// How the engine sees one process: the exec'ing one or one above it.
#[derive(Debug, Clone, Copy)]
pub struct ProcessView<'e> {
    executable: Option<&'e str>,
    identity: Option<&'e str>,
    name: Option<&'e str>,
    args: &'e [String],
    working_directory: Option<&'e str>,
}

impl<'e> ProcessView<'e> {
    fn new(
        executable: Option<&'e str>,
        name_hint: Option<&'e str>,
        identity: Option<&'e str>,
        argv: &'e [String],
        working_directory: Option<&'e str>,
    ) -> Self {
        let (name, args) = match executable.or(name_hint) {
            Some(file) => {
                let Invocation { name, args } = invocation(file, identity, argv);
                (Some(name), args)
            }
            None => (identity, argv.get(1..).unwrap_or(&[])),
        };
        ProcessView { executable, identity, name, args, working_directory }
    }

    /// The exec'ing process of `event`.
    pub fn of_event(event: &'e ExecEvent) -> Self {
        let p = &event.process;
        let identity = event.execguard.file.identity.as_deref();
        let working_directory = p.working_directory.as_deref();
        // The supervisor knows better than argv: `ldd` (the loader lists the program's
        // libraries, nothing of it runs), or the applet toybox reaches through argv[0]'s
        // symlinks.
        let known_name = match (event.execguard.loader_lists_only, event.execguard.applet.as_deref()) {
            (true, _) => Some(identity.unwrap_or_else(|| basename(&p.executable))),
            (false, applet) => applet,
        };
        if let Some(name) = known_name {
            let args = p.args.get(1..).unwrap_or(&[]);
            return ProcessView {
                executable: Some(&p.executable),
                identity,
                name: Some(name),
                args,
                working_directory,
            };
        }
        ProcessView::new(Some(&p.executable), None, identity, &p.args, working_directory)
    }

    pub fn name(&self) -> Option<&'e str> {
        self.name
    }

    /// The parent, then each ancestor up the tree.
    fn lineage(event: &'e ExecEvent) -> impl Iterator<Item = ProcessView<'e>> {
        let parent = event.process.parent.as_ref().map(|p| {
            ProcessView::new(p.executable.as_deref(), p.name.as_deref(), None, &p.args, p.working_directory.as_deref())
        });
        let ancestors =
            event.execguard.ancestors.iter().map(|a| {
                ProcessView::new(a.executable.as_deref(), None, None, &a.args, a.working_directory.as_deref())
            });
        parent.into_iter().chain(ancestors)
    }

    /// The script path, made absolute with the working directory when it is relative and
    /// the directory is known.
    fn script(&self) -> Option<Cow<'e, str>> {
        let path = script(self.args)?;
        match self.working_directory {
            Some(dir) if !path.starts_with('/') => {
                let path = path.strip_prefix("./").unwrap_or(path);
                Some(Cow::Owned(format!("{}/{}", dir.trim_end_matches('/'), path)))
            }
            _ => Some(Cow::Borrowed(path)),
        }
    }

    /// A process above the exec'ing one (its parent or an ancestor) as the engine will see
    /// it, before its working directory is known.
    pub fn of_ancestor(executable: Option<&'e str>, argv: &'e [String]) -> Self {
        ProcessView::new(executable, None, None, argv, None)
    }

    /// Whether the script path needs the working directory to be made absolute.
    pub fn script_is_relative(&self) -> bool {
        self.working_directory.is_none() && script(self.args).is_some_and(|path| !path.starts_with('/'))
    }

    fn label(&self) -> &'e str {
        self.executable.or(self.name).unwrap_or("?")
    }
}

/// What a condition set is checked against: a process, plus the whole event when the set
/// sits at the top of a rule.
#[derive(Clone, Copy)]
pub struct Subject<'e> {
    pub process: ProcessView<'e>,
    pub event: Option<&'e ExecEvent>,
}

impl<'e> Subject<'e> {
    /// The exec'ing process of `event`, with the event.
    pub fn of(event: &'e ExecEvent) -> Subject<'e> {
        Subject { process: ProcessView::of_event(event), event: Some(event) }
    }
}

/// An argument read as a command name: itself, or its last component when it is a path.
fn as_command(arg: &str) -> &str {
    basename(arg)
}

fn sequence_at(patterns: &[PatternSet], args: &[String]) -> Option<usize> {
    if patterns.is_empty() {
        return None;
    }
    args.windows(patterns.len())
        .position(|window| window.iter().zip(patterns).all(|(arg, pattern)| pattern.is_match(arg)))
}

fn find_arg<'e>(set: &PatternSet, args: &'e [String], map: fn(&str) -> &str) -> Option<(&'e str, Origin)> {
    args.iter().find_map(|arg| set.find(map(arg)).map(|origin| (arg.as_str(), origin.clone())))
}

fn flag_matches(flags: &[Flag], args: &[String], all: bool) -> bool {
    if all {
        flags.iter().all(|f| f.find_in(args).is_some())
    } else {
        flags.iter().any(|f| f.find_in(args).is_some())
    }
}

fn opt_bool(value: Option<bool>, wanted: bool) -> bool {
    value == Some(wanted)
}

fn opt_match(set: &PatternSet, value: Option<&str>) -> bool {
    value.is_some_and(|v| set.is_match(v))
}

impl Test {
    /// What checking this test on `process` would read beyond what it has.
    fn needs(&self, process: &ProcessView) -> Needs {
        match self {
            Test::Parent(_) => Needs { parent: true, ..Needs::default() },
            Test::Ancestor(_) => Needs { parent: true, ancestors: true, ..Needs::default() },
            Test::Interactive(_) => Needs { interactive: true, ..Needs::default() },
            Test::WritableLineage(_) => Needs { writable_lineage: true, ..Needs::default() },
            // The directory only makes a relative script path absolute: `sh -c CMD` and
            // `sh /abs/script` are decided without it (a readlink of /proc/PID/cwd less).
            Test::Script(_) if process.script_is_relative() => Needs { working_directory: true, ..Needs::default() },
            _ => Needs::default(),
        }
    }
}

impl ConditionSet {
    /// What checking this set on `subject` would read beyond what the event has: nothing
    /// when a test that needs nothing already fails (the set cannot hold whatever /proc
    /// says), else the union of what the other tests need.
    pub fn needs_for(&self, subject: &Subject) -> Needs {
        let mut needs = Needs::default();
        for test in &self.tests {
            let test_needs = match test {
                Test::AnyOf(sets) => sets.iter().fold(Needs::default(), |n, set| n.union(set.needs_for(subject))),
                _ => test.needs(&subject.process),
            };
            if test_needs != Needs::default() {
                needs = needs.union(test_needs);
            } else if !test.holds(subject) {
                return Needs::default();
            }
        }
        needs
    }

    pub fn new(mut tests: Vec<Test>) -> ConditionSet {
        tests.sort_by_key(Test::cost);
        ConditionSet { tests }
    }

    /// The set's own name test, which the rule index uses as a prefilter.
    pub fn name_test(&self) -> Option<&PatternSet> {
        self.tests.iter().find_map(|test| match test {
            Test::Name(set) => Some(set),
            _ => None,
        })
    }

    /// The name patterns of every set (this one and those inside it) that also tests
    /// `script`: the programs whose first argument the rules read as the script they run.
    pub fn script_readers(&self, out: &mut Vec<Pattern>) {
        let tests_script = self.tests.iter().any(|test| matches!(test, Test::Script(_)));
        for test in &self.tests {
            match test {
                Test::Name(set) if tests_script => out.extend(set.patterns().cloned()),
                Test::AnyOf(sets) => sets.iter().for_each(|set| set.script_readers(out)),
                Test::Parent(set) | Test::Ancestor(set) => set.script_readers(out),
                _ => {}
            }
        }
    }

    /// The literal names that this set's name tests accept, its own and its `any_of`
    /// alternatives': the tools an exec that the set matches can be.
    pub fn literal_names<'s>(&'s self, out: &mut BTreeSet<&'s str>) {
        for test in &self.tests {
            match test {
                Test::Name(set) => out.extend(set.patterns().filter_map(|pattern| pattern.literal())),
                Test::AnyOf(sets) => sets.iter().for_each(|set| set.literal_names(out)),
                _ => {}
            }
        }
    }

    pub fn holds(&self, subject: &Subject) -> bool {
        self.tests.iter().all(|test| test.holds(subject))
    }

    /// Phrases that say why the set holds; call only when it does.
    pub fn explain(&self, subject: &Subject, out: &mut Vec<String>) {
        for test in &self.tests {
            test.explain(subject, out);
        }
    }
}

impl Test {
    fn holds(&self, subject: &Subject) -> bool {
        let p = &subject.process;
        let file = subject.event.map(|e| &e.execguard.file);
        let container = subject.event.and_then(|e| e.container.as_ref());
        let orchestrator = subject.event.and_then(|e| e.orchestrator.as_ref());
        match self {
            Test::Executable(set) => opt_match(set, p.executable),
            Test::Name(set) => opt_match(set, p.name),
            Test::Identity(set) => opt_match(set, p.identity),
            Test::ArgsAny(set) => p.args.iter().any(|a| set.is_match(a)),
            Test::ArgsNone(set) => !p.args.iter().any(|a| set.is_match(a)),
            Test::ArgCommandsAny(set) => p.args.iter().any(|a| set.is_match(as_command(a))),
            Test::ArgCommandsNone(set) => !p.args.iter().any(|a| set.is_match(as_command(a))),
            Test::FlagsAny(flags) => flag_matches(flags, p.args, false),
            Test::FlagsAll(flags) => flag_matches(flags, p.args, true),
            Test::ArgsSequence(patterns) => sequence_at(patterns, p.args).is_some(),
            Test::Script(set) => p.script().is_some_and(|s| set.is_match(&s)),
            Test::DestinationLoopback(want) => p.name.and_then(|name| all_loopback(name, p.args)) == Some(*want),
            Test::DestinationHosts(set) => {
                p.name.is_some_and(|name| all_hosts(name, p.args, |host| set.is_match(host)))
            }
            Test::AnyOf(sets) => sets.iter().any(|set| set.holds(subject)),
            Test::Interactive(want) => subject.event.is_some_and(|e| opt_bool(e.process.interactive, *want)),
            Test::WritableLocation(want) => file.is_some_and(|f| opt_bool(f.writable_location, *want)),
            Test::InImage(want) => file.is_some_and(|f| opt_bool(f.in_image, *want)),
            Test::Fileless(want) => file.is_some_and(|f| opt_bool(f.fileless, *want)),
            Test::ArgsTruncated(want) => subject.event.is_some_and(|e| e.execguard.args_truncated == *want),
            Test::WritableLineage(want) => {
                subject.event.is_some_and(|e| e.execguard.writable_lineage.is_some() == *want)
            }
            Test::ContainerId(set) => opt_match(set, container.and_then(|c| c.id.as_deref())),
            Test::ContainerName(set) => opt_match(set, container.and_then(|c| c.name.as_deref())),
            Test::Image(set) => {
                opt_match(set, container.and_then(|c| c.image.as_ref()).and_then(|i| i.name.as_deref()))
            }
            Test::Namespace(set) => opt_match(set, orchestrator.and_then(|o| o.namespace.as_deref())),
            Test::Pod(set) => {
                opt_match(set, orchestrator.and_then(|o| o.resource.as_ref()).and_then(|r| r.name.as_deref()))
            }
            Test::Parent(set) => subject.event.is_some_and(|e| {
                ProcessView::lineage(e).next().is_some_and(|process| set.holds(&Subject { process, event: None }))
            }),
            Test::Ancestor(set) => subject
                .event
                .is_some_and(|e| ProcessView::lineage(e).any(|process| set.holds(&Subject { process, event: None }))),
        }
    }

    fn explain(&self, subject: &Subject, out: &mut Vec<String>) {
        let p = &subject.process;
        let event = subject.event;
        let matched =
            |what: &str, value: Option<&str>, set: &PatternSet| match value.and_then(|v| set.find(v).map(|o| (v, o))) {
                Some((value, origin)) => format!("{what} {value:?} matches {origin}"),
                None => format!("{what} matches"),
            };
        let phrase = match self {
            Test::Executable(set) => matched("executable", p.executable, set),
            Test::Name(set) => matched("name", p.name, set),
            Test::Identity(set) => matched("file identity", p.identity, set),
            Test::ArgsAny(set) => match find_arg(set, p.args, |a| a) {
                Some((arg, origin)) => format!("argument {arg:?} matches {origin}"),
                None => "an argument matches".into(),
            },
            Test::ArgCommandsAny(set) => match find_arg(set, p.args, as_command) {
                Some((arg, origin)) => format!("argument {arg:?} names command {origin}"),
                None => "an argument names a listed command".into(),
            },
            Test::ArgsNone(_) | Test::ArgCommandsNone(_) => return,
            Test::FlagsAny(flags) | Test::FlagsAll(flags) => {
                let found: Vec<String> = flags
                    .iter()
                    .filter_map(|f| f.find_in(p.args).map(|arg| format!("flag {f} (argument {arg:?})")))
                    .collect();
                found.join(", ")
            }
            Test::ArgsSequence(patterns) => {
                let at = sequence_at(patterns, p.args).unwrap_or(0);
                let words = p.args.get(at..at + patterns.len()).unwrap_or(&[]);
                format!("arguments {words:?} in sequence")
            }
            Test::Script(set) => {
                let script = p.script();
                matched("script", script.as_deref(), set)
            }
            Test::DestinationLoopback(_) | Test::DestinationHosts(_) => {
                let found = p.name.and_then(|name| destinations(name, p.args)).unwrap_or_default();
                let hosts: Vec<&str> = found.iter().map(|d| d.host().unwrap_or("(redirected by --resolve)")).collect();
                let loopback = !found.is_empty() && found.iter().all(Destination::is_loopback);
                let kind = if loopback { "all loopback" } else { "not all loopback" };
                format!("destinations {hosts:?} ({kind})")
            }
            Test::AnyOf(sets) => {
                if let Some(set) = sets.iter().find(|set| set.holds(subject)) {
                    set.explain(subject, out);
                }
                return;
            }
            Test::Interactive(want) => if *want { "interactive (has a terminal)" } else { "not interactive" }.into(),
            Test::WritableLocation(want) => format!("file in a writable location: {want}"),
            Test::InImage(want) => format!("file in the image: {want}"),
            Test::Fileless(want) => format!("fileless: {want}"),
            Test::ArgsTruncated(want) => format!("argument list cut at the inspection limit: {want}"),
            Test::WritableLineage(_) => match event.and_then(|e| e.execguard.writable_lineage.as_deref()) {
                Some(why) => format!("started from a writable location: {why}"),
                None => "not started from a writable location".into(),
            },
            Test::ContainerId(_) => "container id matches".into(),
            Test::ContainerName(_) => "container name matches".into(),
            Test::Image(_) => "image matches".into(),
            Test::Namespace(_) => "namespace matches".into(),
            Test::Pod(_) => "pod matches".into(),
            Test::Parent(set) | Test::Ancestor(set) => {
                let is_parent = matches!(self, Test::Parent(_));
                let Some(e) = event else { return };
                let holds =
                    |(_, process): &(usize, ProcessView)| set.holds(&Subject { process: *process, event: None });
                let mut lineage = ProcessView::lineage(e).enumerate();
                let found = if is_parent { lineage.next().filter(holds) } else { lineage.find(holds) };
                let Some((depth, process)) = found else { return };
                let mut inner = Vec::new();
                set.explain(&Subject { process, event: None }, &mut inner);
                let who = if depth == 0 { "parent" } else { "ancestor" };
                format!("{who} {}: {}", process.label(), inner.join(", "))
            }
        };
        out.push(phrase);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn short_flags_in_clusters_and_long_flags_abbreviated() {
        let e = Flag::Short(b'e');
        assert_eq!(e.find_in(&args(&["10.0.0.1", "4444", "-e", "/bin/sh"])), Some("-e"));
        assert_eq!(e.find_in(&args(&["-ve/bin/sh"])), Some("-ve/bin/sh"));
        assert_eq!(e.find_in(&args(&["-p4e"])), Some("-p4e"));
        assert_eq!(e.find_in(&args(&["-x/e"])), None);
        assert_eq!(e.find_in(&args(&["--", "-e"])), None);
        assert_eq!(e.find_in(&args(&["--exec"])), None);
        let exec = Flag::Long("sh-exec".into());
        assert_eq!(exec.find_in(&args(&["--sh-exe", "sh"])), Some("--sh-exe"));
        assert_eq!(exec.find_in(&args(&["--sh-exec=/bin/sh"])), Some("--sh-exec=/bin/sh"));
        assert_eq!(exec.find_in(&args(&["--ssl"])), None);
        assert_eq!(exec.find_in(&args(&["--"])), None);
    }

    #[test]
    fn flag_syntax() {
        assert_eq!(Flag::parse("-e"), Ok(Flag::Short(b'e')));
        assert_eq!(Flag::parse("--lua-exec"), Ok(Flag::Long("lua-exec".into())));
        assert!(Flag::parse("-lp").is_err());
        assert!(Flag::parse("e").is_err());
        assert!(Flag::parse("--").is_err());
    }
}
