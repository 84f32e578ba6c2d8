//! A prefilter on the tool name: which rules can match an exec at all.
//!
//! Almost every rule starts with "the tool is one of these"; asking each rule in turn costs
//! one lookup per rule for every exec, and almost every exec is an ordinary command that no
//! rule wants. The index answers for all rules at once with one hash lookup and the few
//! name globs of the policy, so an allowed exec only runs the handful of rules that do not
//! test the name.

use std::collections::HashMap;

use crate::condition::ConditionSet;
use crate::pattern::Pattern;

/// The first rules the index covers; any further rule is always a candidate (correct,
/// merely slower).
const INDEXED_RULES: usize = 256;

/// A set of rule indexes below [`INDEXED_RULES`]. Fixed size, so it lives on the stack.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RuleMask([u64; INDEXED_RULES / 64]);

impl RuleMask {
    pub fn insert(&mut self, rule: usize) {
        if let Some(word) = self.0.get_mut(rule / 64) {
            *word |= 1 << (rule % 64);
        }
    }

    fn union(&mut self, other: &RuleMask) {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word |= other;
        }
    }

    /// Whether `rule` may match; rules beyond the index always may.
    pub fn contains(&self, rule: usize) -> bool {
        self.get(rule).unwrap_or(true)
    }

    /// Whether `rule` is in the set; None beyond the rules a mask can hold.
    pub fn get(&self, rule: usize) -> Option<bool> {
        self.0.get(rule / 64).map(|word| word & (1 << (rule % 64)) != 0)
    }
}

#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    literals: HashMap<Box<str>, RuleMask>,
    globs: Vec<(Pattern, RuleMask)>,
    /// Rules without a name test.
    always: RuleMask,
}

impl NameIndex {
    pub fn build<'r>(conditions: impl Iterator<Item = &'r ConditionSet>) -> NameIndex {
        let mut index = NameIndex::default();
        for (rule, when) in conditions.enumerate().take(INDEXED_RULES) {
            let Some(names) = when.name_test() else {
                index.always.insert(rule);
                continue;
            };
            for pattern in names.patterns() {
                match pattern.literal() {
                    Some(text) => index.literals.entry(text.into()).or_default().insert(rule),
                    None => match index.globs.iter_mut().find(|(p, _)| p.origin.text == pattern.origin.text) {
                        Some((_, mask)) => mask.insert(rule),
                        None => {
                            let mut mask = RuleMask::default();
                            mask.insert(rule);
                            index.globs.push((pattern.clone(), mask));
                        }
                    },
                }
            }
        }
        index
    }

    /// The rules that may match a process with this tool name.
    pub fn candidates(&self, name: Option<&str>) -> RuleMask {
        let mut mask = self.always;
        if let Some(name) = name {
            if let Some(rules) = self.literals.get(name) {
                mask.union(rules);
            }
            for (pattern, rules) in &self.globs {
                if pattern.is_match(name) {
                    mask.union(rules);
                }
            }
        }
        mask
    }
}
