//! `execguard policy eval`: the dry run. Events in, one explained decision per event out.
//!
//! The input is JSON lines of exec events, the same JSON that alerts carry, so what really
//! ran in a cluster can be replayed against a new or stricter policy before it is
//! enforced. A malformed line does not stop the run: it yields an error line naming its
//! line number, and the caller turns "some lines were malformed" into a non-zero exit.

use std::io::{self, BufRead, Write};

use execguard_policy::{ExecEvent, Policy};
use serde::Serialize;

/// What one run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EvalSummary {
    pub decided: usize,
    pub malformed: usize,
}

/// The line printed in place of a decision when an input line is not an event.
#[derive(Serialize)]
struct MalformedLine<'a> {
    line: usize,
    error: &'a str,
}

/// Decides every event of `input` and writes one JSON line per non-blank input line.
pub fn eval_lines(policy: &Policy, mut input: impl BufRead, mut output: impl Write) -> io::Result<EvalSummary> {
    let mut summary = EvalSummary::default();
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        buffer.clear();
        if input.read_until(b'\n', &mut buffer)? == 0 {
            break;
        }
        number += 1;
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = match serde_json::from_slice::<ExecEvent>(&buffer) {
            Ok(event) => {
                summary.decided += 1;
                serde_json::to_string(&policy.record(&event, &policy.decide(&event)))
            }
            Err(error) => {
                summary.malformed += 1;
                let error = format!("line {number}: not an exec event: {error}");
                serde_json::to_string(&MalformedLine { line: number, error: &error })
            }
        };
        writeln!(output, "{}", line.map_err(io::Error::other)?)?;
    }
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_reported_and_evaluation_goes_on() {
        let policy = Policy::embedded().unwrap();
        let input = concat!(
            r#"{"process":{"executable":"/usr/bin/nc.openbsd","args":["nc","-lp","4444"]}}"#,
            "\n\n{not json\n",
            r#"{"process":{"executable":"/bin/ls"}}"#,
            "\n",
            r#"{"process":{"executable":"/bin/ls","args":["ls"]}}"#,
        );
        let mut out = Vec::new();
        let summary = eval_lines(&policy, input.as_bytes(), &mut out).unwrap();
        assert_eq!(summary, EvalSummary { decided: 2, malformed: 2 });
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["decision"], "block");
        assert_eq!(lines[1]["line"], 3);
        assert_eq!(lines[2]["line"], 4);
        assert!(lines[2]["error"].as_str().unwrap().contains("args"));
        assert_eq!(lines[3]["decision"], "allow");
        assert_eq!(lines[3]["rule"], serde_json::Value::Null);
    }
}
