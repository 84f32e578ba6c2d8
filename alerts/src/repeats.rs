//! De-duplication with counts. An alert that repeats one written within the repeat window
//! (the same decision by the same rule for the same executable, arguments and parent in
//! the same container: Datadog's de-duplication, by arguments and parent path) is counted
//! instead of written. When the window ends, one summary record says how many times it
//! repeated and when. A shell trying each PATH entry, or a crash loop, yields two records
//! rather than hundreds, and nothing is lost. Decisions are never de-duplicated: every
//! exec is still decided and blocked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use execguard_policy::{DecisionRecord, ExecEvent};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::record::{self, Repeats};

/// What makes two alerts the same: SHA-256 over the fields as a JSON array. JSON quotes
/// and delimits every field, so `["a b"]` and `["a", "b"]` differ; SHA-256 is specified
/// (std's DefaultHasher is not, and may change between Rust releases) and no collision
/// can make a new alert pass for a repeat.
type RepeatKey = [u8; 32];

fn repeat_key(event: &ExecEvent, decision: &DecisionRecord) -> RepeatKey {
    let fields = (
        event.container.as_ref().and_then(|c| c.id.as_deref()),
        decision.decision,
        decision.rule.as_ref().map(|r| r.id.as_str()),
        &event.process.executable,
        &event.process.args,
        event.process.parent.as_ref().and_then(|p| p.executable.as_deref()),
    );
    // Strings, options and an enum of unit variants: serialising them cannot fail.
    let json = serde_json::to_vec(&fields).unwrap_or_default();
    Sha256::digest(json).into()
}

/// Alerts remembered at most. Each holds its record (a few KiB) for the summary; past
/// this, the oldest windows are closed early (their summaries written) rather than the
/// shim's memory grown by a flood of distinct alerts.
const MAX_REMEMBERED: usize = 1024;

struct Seen {
    since: Instant,
    first_seen: SystemTime,
    last_seen: SystemTime,
    count: u64,
    record: Arc<Value>,
}

impl Seen {
    fn summary(&self) -> Option<Value> {
        let repeats = Repeats {
            count: self.count,
            first_seen: record::timestamp(self.first_seen),
            last_seen: record::timestamp(self.last_seen),
        };
        (self.count > 0).then(|| record::summary(&self.record, &repeats))
    }
}

pub(crate) struct Deduplicator {
    window: Duration,
    seen: HashMap<RepeatKey, Seen>,
}

/// What to do with an alert.
pub(crate) enum Admitted {
    /// Write it (the record is built by the caller, then given to [`Deduplicator::remember`]).
    First(RepeatKey),
    /// Counted as a repeat.
    Repeat,
}

impl Deduplicator {
    /// A zero window writes every alert.
    pub(crate) fn new(window: Duration) -> Self {
        Deduplicator { window, seen: HashMap::new() }
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Counts `event` as a repeat if one like it was written within the window.
    pub(crate) fn admit(
        &mut self,
        event: &ExecEvent,
        decision: &DecisionRecord,
        at: SystemTime,
        now: Instant,
    ) -> Admitted {
        let key = repeat_key(event, decision);
        match self.seen.get_mut(&key) {
            Some(seen) if now.saturating_duration_since(seen.since) < self.window => {
                seen.count += 1;
                seen.last_seen = at;
                Admitted::Repeat
            }
            _ => Admitted::First(key),
        }
    }

    /// Remembers a record written for `key`; returns the summaries of windows this closes
    /// (the previous one of the same key, and the oldest ones when memory is full).
    pub(crate) fn remember(&mut self, key: RepeatKey, record: Arc<Value>, at: SystemTime, now: Instant) -> Vec<Value> {
        if self.window.is_zero() {
            return Vec::new();
        }
        let mut summaries: Vec<Value> = self.seen.remove(&key).and_then(|seen| seen.summary()).into_iter().collect();
        if self.seen.len() >= MAX_REMEMBERED {
            summaries.extend(self.expire(now));
        }
        if self.seen.len() >= MAX_REMEMBERED {
            let mut oldest: Vec<(RepeatKey, Instant)> = self.seen.iter().map(|(k, s)| (*k, s.since)).collect();
            oldest.sort_by_key(|(_, since)| *since);
            for (key, _) in oldest.into_iter().take(MAX_REMEMBERED / 4) {
                summaries.extend(self.seen.remove(&key).and_then(|seen| seen.summary()));
            }
        }
        self.seen.insert(key, Seen { since: now, first_seen: at, last_seen: at, count: 0, record });
        summaries
    }

    /// Closes the windows that ended by `now`: the summaries of those that had repeats.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Value> {
        let window = self.window;
        let mut summaries = Vec::new();
        self.seen.retain(|_, seen| {
            let open = now.saturating_duration_since(seen.since) < window;
            if !open {
                summaries.extend(seen.summary());
            }
            open
        });
        summaries
    }

    /// Closes every window (at exit, or when the window changes).
    pub(crate) fn close_all(&mut self) -> Vec<Value> {
        self.seen.drain().filter_map(|(_, seen)| seen.summary()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::alert;

    /// The key is a specified function of the record, the same in every build and on
    /// every node: SHA-256 of this JSON text (the hex is `sha256sum`'s over it).
    #[test]
    fn the_repeat_key_is_sha256_of_the_fields() {
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc"]}}"#);
        // [null,"block","falco.launch_suspicious_network_tool","/usr/bin/nc.openbsd",["nc"],null]
        assert_eq!(nc.record.rule.as_ref().map(|r| r.id.as_str()), Some("falco.launch_suspicious_network_tool"));
        let hex: String = repeat_key(&nc.event, &nc.record).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ce7d4916c38b17285c2048d7ceca6a4e58076ed687910f9d2e93d827a0e98345");
    }

    fn first(dedup: &mut Deduplicator, a: &crate::Alert, at: Instant) -> Option<RepeatKey> {
        match dedup.admit(&a.event, &a.record, a.at, at) {
            Admitted::First(key) => Some(key),
            Admitted::Repeat => None,
        }
    }

    #[test]
    fn repeats_are_counted_and_summarised_when_the_window_ends() {
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","10.0.0.1","4444"]}}"#);
        let mut other_args = nc.clone();
        other_args.event.process.args.push("-v".into());
        let mut split_args = nc.clone();
        split_args.event.process.args = vec!["nc 10.0.0.1".into(), "4444".into()];
        let start = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut dedup = Deduplicator::new(hour);
        let key = first(&mut dedup, &nc, start).expect("the first is written");
        let record = Arc::new(record::build(&nc, "h"));
        assert!(dedup.remember(key, record.clone(), nc.at, start).is_empty());
        let mut later = nc.clone();
        for minute in 1..=3 {
            later.at = nc.at + Duration::from_secs(60 * minute);
            assert!(first(&mut dedup, &later, start + Duration::from_secs(60 * minute)).is_none(), "a repeat");
        }
        assert!(first(&mut dedup, &other_args, start).is_some(), "other arguments are another alert");
        assert!(first(&mut dedup, &split_args, start).is_some(), "arguments are delimited");
        assert!(dedup.expire(start + Duration::from_secs(3599)).is_empty(), "the window is still open");
        let summaries = dedup.expire(start + hour);
        assert_eq!(summaries.len(), 1);
        let repeats = &summaries[0]["execguard"]["repeats"];
        assert_eq!(repeats["count"], 3);
        assert_eq!(repeats["first_seen"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(repeats["last_seen"], "1970-01-01T00:03:00.000000Z");
        assert_eq!(summaries[0]["rule"], record["rule"]);
        assert!(first(&mut dedup, &nc, start + hour).is_some(), "after the window it is written again");
    }

    #[test]
    fn an_alert_without_repeats_has_no_summary_and_a_zero_window_writes_all() {
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc"]}}"#);
        let start = Instant::now();
        let mut dedup = Deduplicator::new(Duration::from_secs(60));
        let key = first(&mut dedup, &nc, start).unwrap();
        dedup.remember(key, Arc::new(record::build(&nc, "h")), nc.at, start);
        assert!(dedup.expire(start + Duration::from_secs(61)).is_empty());
        let mut everything = Deduplicator::new(Duration::ZERO);
        for _ in 0..2 {
            let key = first(&mut everything, &nc, start).expect("every one is written");
            assert!(everything.remember(key, Arc::new(record::build(&nc, "h")), nc.at, start).is_empty());
        }
    }

    #[test]
    fn a_flood_of_distinct_alerts_closes_the_oldest_windows_early() {
        let start = Instant::now();
        let mut dedup = Deduplicator::new(Duration::from_secs(3600));
        let mut summaries = Vec::new();
        let nc = alert(r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc"]}}"#);
        for n in 0..(MAX_REMEMBERED + 10) {
            let mut a = nc.clone();
            a.event.process.args.push(n.to_string());
            let at = start + Duration::from_millis(n as u64);
            let key = first(&mut dedup, &a, at).unwrap();
            summaries.extend(dedup.remember(key, Arc::new(record::build(&a, "h")), a.at, at));
            assert!(first(&mut dedup, &a, at).is_none());
        }
        assert!(dedup.seen.len() <= MAX_REMEMBERED);
        assert_eq!(summaries.len() + dedup.close_all().len(), MAX_REMEMBERED + 10, "every repeat is summarised");
    }
}
