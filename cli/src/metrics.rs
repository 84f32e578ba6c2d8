//! `execguard metrics`: the node's execguard counters, merged from the `.prom` file each
//! pod's shim keeps (shim/src/metrics.rs), as one Prometheus text exposition: each
//! family's HELP and TYPE once, then its samples from every file. Node_exporter's textfile
//! collector merges the same files itself; this is for a person or a script on the node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One metric family: its HELP and TYPE lines and its samples, in the order read.
#[derive(Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<String>,
}

/// The `.prom` files of `dir`, merged. An empty directory gives an empty text.
pub fn merged(dir: &Path) -> Result<String, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "{}: {e} (the shims write there when a supervised pod runs; `--dir` picks another place)",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "prom"))
        .collect();
    files.sort();
    let mut texts = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push(text),
            // A shim that exited between the listing and the read.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("{}: {error}", file.display())),
        }
    }
    Ok(merge(texts.iter().map(String::as_str)))
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` samples
/// belong to the family its TYPE line names.
fn family_of<'a>(sample_name: &'a str, families: &HashMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample_name.strip_suffix(suffix) {
            if families.get(base).is_some_and(|f| f.kind.as_deref() == Some("histogram")) {
                return base;
            }
        }
    }
    sample_name
}

/// What a line of the text format is.
enum Line<'a> {
    Help,
    Type(&'a str),
    Sample,
}

fn merge<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: HashMap<String, Family> = HashMap::new();
    for text in texts {
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let (name, kind) = if let Some(rest) = line.strip_prefix("# HELP ") {
                (rest.split_whitespace().next().unwrap_or_default(), Line::Help)
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                (words.next().unwrap_or_default(), Line::Type(words.next().unwrap_or_default()))
            } else if line.starts_with('#') {
                continue;
            } else {
                (family_of(line.split(['{', ' ']).next().unwrap_or_default(), &families), Line::Sample)
            };
            if !families.contains_key(name) {
                order.push(name.to_string());
            }
            let family = families.entry(name.to_string()).or_default();
            match kind {
                Line::Help => {
                    family.help.get_or_insert_with(|| line.to_string());
                }
                Line::Type(kind) => {
                    family.kind.get_or_insert_with(|| kind.to_string());
                }
                Line::Sample => family.samples.push(line.to_string()),
            }
        }
    }
    let mut out = String::new();
    for name in order {
        let family = &families[&name];
        for line in family.help.iter().chain(&family.kind.as_ref().map(|k| format!("# TYPE {name} {k}"))) {
            out.push_str(line);
            out.push('\n');
        }
        for sample in &family.samples {
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_several_pods_are_merged() {
        let pod = |name: &str, n: u32| {
            format!(
                "# HELP execguard_execs_inspected_total Execs.\n# TYPE execguard_execs_inspected_total counter\n\
                 execguard_execs_inspected_total{{pod=\"{name}\"}} {n}\n\
                 # HELP execguard_decision_duration_seconds D.\n# TYPE execguard_decision_duration_seconds histogram\n\
                 execguard_decision_duration_seconds_bucket{{pod=\"{name}\",le=\"+Inf\"}} {n}\n\
                 execguard_decision_duration_seconds_count{{pod=\"{name}\"}} {n}\n"
            )
        };
        let (web, cart) = (pod("web", 3), pod("cart", 5));
        let text = merge([web.as_str(), cart.as_str()].into_iter());
        assert_eq!(
            text,
            "# HELP execguard_execs_inspected_total Execs.\n# TYPE execguard_execs_inspected_total counter\n\
             execguard_execs_inspected_total{pod=\"web\"} 3\nexecguard_execs_inspected_total{pod=\"cart\"} 5\n\
             # HELP execguard_decision_duration_seconds D.\n# TYPE execguard_decision_duration_seconds histogram\n\
             execguard_decision_duration_seconds_bucket{pod=\"web\",le=\"+Inf\"} 3\n\
             execguard_decision_duration_seconds_count{pod=\"web\"} 3\n\
             execguard_decision_duration_seconds_bucket{pod=\"cart\",le=\"+Inf\"} 5\n\
             execguard_decision_duration_seconds_count{pod=\"cart\"} 5\n"
        );
    }

    #[test]
    fn a_missing_directory_says_how_to_pick_another() {
        let error = merged(Path::new("/nonexistent/execguard-metrics")).unwrap_err();
        assert!(error.contains("--dir"), "{error}");
    }
}
