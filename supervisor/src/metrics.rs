//! What the supervisor counts, for Prometheus: execs and sockets inspected, decisions by
//! action and rule, exec races the socket gate caught, fail actions, and how long each
//! decision took. Counting is a relaxed atomic add on the hot path; only alerts and
//! blocks, which are rare, take a lock to count by rule.
//!
//! [`Metrics::render`] writes the Prometheus text exposition format (version 0.0.4).
//! The caller adds the labels that say whose counts they are (one shim serves one pod).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use execguard_alerts::{SinkCounts, QUEUE_SINK};
use execguard_policy::Action;

/// Upper bounds of the latency histogram's buckets, in seconds: from a decision that
/// needed no /proc read (tens of microseconds) to the default 2 s deadline and past it.
const LATENCY_BUCKETS: [f64; 14] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.1, 0.5, 2.0, 5.0];

/// Why a fail action answered an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCause {
    /// No decision within the deadline (the watchdog answered).
    Deadline,
    /// The supervisor could not establish what would run.
    Undecidable,
    /// Every receiver was stuck in a stalled inspection: answered without one.
    Overload,
}

#[derive(Default)]
pub struct Metrics {
    execs: AtomicU64,
    sockets: AtomicU64,
    allowed: AtomicU64,
    /// Alerts and blocks, by action and rule id ("" when no rule decided).
    flagged: Mutex<BTreeMap<(&'static str, String), u64>>,
    races: AtomicU64,
    fail_deadline: AtomicU64,
    fail_undecidable: AtomicU64,
    fail_overload: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_nanos: AtomicU64,
}

fn action_label(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Alert => "alert",
        Action::Block => "block",
    }
}

impl Metrics {
    pub fn inspected_exec(&self) {
        self.execs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn inspected_socket(&self) {
        self.sockets.fetch_add(1, Ordering::Relaxed);
    }

    /// A decision answered to the kernel, `rule` the id of the rule that made it.
    pub fn decided(&self, action: Action, rule: Option<&str>, took: Duration) {
        if action == Action::Allow {
            self.allowed.fetch_add(1, Ordering::Relaxed);
        } else {
            let key = (action_label(action), rule.unwrap_or_default().to_string());
            *self.flagged.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
        }
        let seconds = took.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn exec_race(&self) {
        self.races.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fail_action(&self, cause: FailCause) {
        match cause {
            FailCause::Deadline => &self.fail_deadline,
            FailCause::Undecidable => &self.fail_undecidable,
            FailCause::Overload => &self.fail_overload,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The counts in Prometheus text format, with the alert sinks' `sinks`. `labels`
    /// (e.g. `pod="shop/web"`, already escaped with [`label_value`]) go on every sample;
    /// empty for none.
    pub fn render(&self, labels: &str, sinks: &[SinkCounts]) -> String {
        let mut out = String::new();
        let with = |extra: &str| match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (extra, value) in samples {
                let _ = writeln!(out, "{name}{} {value}", with(extra));
            }
        };
        counter(
            "execguard_execs_inspected_total",
            "Execs the supervisor inspected.",
            &[(String::new(), load(&self.execs))],
        );
        counter(
            "execguard_sockets_inspected_total",
            "Network sockets the socket gate inspected.",
            &[(String::new(), load(&self.sockets))],
        );
        let mut decisions = vec![(r#"action="allow",rule="""#.to_string(), load(&self.allowed))];
        let flagged = self.flagged.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        decisions.extend(
            flagged
                .into_iter()
                .map(|((action, rule), n)| (format!(r#"action="{action}",rule="{}""#, label_value(&rule)), n)),
        );
        counter("execguard_decisions_total", "Decisions answered, by action and rule.", &decisions);
        counter(
            "execguard_exec_races_total",
            "Processes the socket gate caught running something else than their exec was decided on.",
            &[(String::new(), load(&self.races))],
        );
        counter(
            "execguard_fail_actions_total",
            "Execs answered by the fail action, by cause.",
            &[
                (r#"cause="deadline""#.to_string(), load(&self.fail_deadline)),
                (r#"cause="undecidable""#.to_string(), load(&self.fail_undecidable)),
                (r#"cause="overload""#.to_string(), load(&self.fail_overload)),
            ],
        );
        // The dispatcher's queue only drops; it writes nothing of its own.
        let per_sink = |count: fn(&SinkCounts) -> u64, with_queue: bool| -> Vec<(String, u64)> {
            let sinks = sinks.iter().filter(|s| with_queue || s.sink != QUEUE_SINK);
            sinks.map(|s| (format!(r#"sink="{}""#, label_value(&s.sink)), count(s))).collect()
        };
        counter(
            "execguard_alerts_dropped_total",
            "Alert records dropped because a queue was full, by sink (\"queue\": before any sink).",
            &per_sink(|s| s.dropped, true),
        );
        counter("execguard_alerts_written_total", "Alert records a sink delivered.", &per_sink(|s| s.written, false));
        counter(
            "execguard_alerts_failed_total",
            "Alert records a sink could not deliver.",
            &per_sink(|s| s.failed, false),
        );
        let name = "execguard_decision_duration_seconds";
        let _ = writeln!(out, "# HELP {name} From receiving a notification to answering it.\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(bucket);
            let _ = writeln!(out, "{name}_bucket{} {cumulative}", with(&format!(r#"le="{bound}""#)));
        }
        let count = load(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{} {count}", with(r#"le="+Inf""#));
        let _ = writeln!(out, "{name}_sum{} {}", with(""), load(&self.latency_nanos) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{} {count}", with(""));
        out
    }
}

/// A label value escaped for the text format (backslash, double quote, newline).
pub fn label_value(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_sequence_renders_its_counts() {
        let metrics = Metrics::default();
        for _ in 0..3 {
            metrics.inspected_exec();
            metrics.decided(Action::Allow, None, Duration::from_micros(30));
        }
        metrics.inspected_exec();
        metrics.decided(Action::Block, Some("datadog.netcat_shell"), Duration::from_millis(3));
        metrics.inspected_socket();
        metrics.exec_race();
        metrics.decided(Action::Block, None, Duration::from_micros(40));
        metrics.fail_action(FailCause::Deadline);
        let sinks = [
            SinkCounts { sink: QUEUE_SINK.into(), dropped: 2, ..SinkCounts::default() },
            SinkCounts { sink: "file".into(), written: 7, dropped: 1, failed: 3 },
        ];
        let text = metrics.render(r#"pod="shop/web""#, &sinks);
        for line in [
            r#"execguard_execs_inspected_total{pod="shop/web"} 4"#,
            r#"execguard_sockets_inspected_total{pod="shop/web"} 1"#,
            r#"execguard_decisions_total{pod="shop/web",action="allow",rule=""} 3"#,
            r#"execguard_decisions_total{pod="shop/web",action="block",rule=""} 1"#,
            r#"execguard_decisions_total{pod="shop/web",action="block",rule="datadog.netcat_shell"} 1"#,
            r#"execguard_exec_races_total{pod="shop/web"} 1"#,
            r#"execguard_fail_actions_total{pod="shop/web",cause="deadline"} 1"#,
            r#"execguard_fail_actions_total{pod="shop/web",cause="undecidable"} 0"#,
            r#"execguard_decision_duration_seconds_bucket{pod="shop/web",le="0.000025"} 0"#,
            r#"execguard_decision_duration_seconds_bucket{pod="shop/web",le="0.00005"} 4"#,
            r#"execguard_decision_duration_seconds_bucket{pod="shop/web",le="0.0025"} 4"#,
            r#"execguard_decision_duration_seconds_bucket{pod="shop/web",le="0.005"} 5"#,
            r#"execguard_decision_duration_seconds_bucket{pod="shop/web",le="+Inf"} 5"#,
            r#"execguard_decision_duration_seconds_count{pod="shop/web"} 5"#,
            r#"execguard_alerts_dropped_total{pod="shop/web",sink="queue"} 2"#,
            r#"execguard_alerts_dropped_total{pod="shop/web",sink="file"} 1"#,
            r#"execguard_alerts_written_total{pod="shop/web",sink="file"} 7"#,
            r#"execguard_alerts_failed_total{pod="shop/web",sink="file"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in:\n{text}");
        }
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(r#"execguard_decision_duration_seconds_sum{pod="shop/web"} "#))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 0.00313).abs() < 1e-9, "{sum}");
        assert!(text.contains("# TYPE execguard_decision_duration_seconds histogram"));
        assert!(!text.contains(r#"written_total{pod="shop/web",sink="queue"}"#), "the queue writes nothing");
    }

    #[test]
    fn labels_are_escaped_and_optional() {
        assert_eq!(label_value("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        let text = Metrics::default().render("", &[]);
        assert!(text.lines().any(|l| l == "execguard_execs_inspected_total 0"), "{text}");
        assert!(text.lines().any(|l| l == r#"execguard_decision_duration_seconds_bucket{le="+Inf"} 0"#), "{text}");
    }
}
