//! An alert sink that POSTs each record to an HTTP endpoint: a log collector that takes the
//! ECS record as it is, or falcosidekick, which takes Falco's own JSON output and forwards
//! it to its many outputs (Slack, Loki, Elasticsearch, Alertmanager, ...). Speaking Falco's
//! format means a cluster that already runs Falco and falcosidekick gets execguard's blocks
//! beside Falco's alerts, routed by the same priorities and rules, with nothing to install.
//!
//! Not here: queueing and counting failures. The dispatcher runs every sink on its own
//! thread with its own bounded queue, so this sink blocks while it sends; what it must
//! guarantee is a bound. Each record gets at most `(retries + 1) × timeout_ms` however the
//! endpoint fails (refusing, hanging, or answering 503 slowly), after which the error goes
//! back to the dispatcher and the next record is tried. Only failures that may pass are
//! retried: connection errors, timeouts, 5xx and 429. Any other answer (400 for a body the
//! endpoint cannot read, 401, 404) would be the same on every attempt.

use std::io::{self, Read};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Sink;
use ureq::http::{StatusCode, Uri};
use ureq::Agent;

/// What the endpoint is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpFormat {
    /// The alert record as every other sink writes it.
    #[default]
    Ecs,
    /// Falco's JSON output, as falcosidekick reads it on its `/` endpoint.
    Falco,
}

impl HttpFormat {
    fn as_str(self) -> &'static str {
        match self {
            HttpFormat::Ecs => "ecs",
            HttpFormat::Falco => "falco",
        }
    }
}

/// One HTTP sink, as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where records are POSTed: `http://` or `https://`. User and password in the URL
    /// (`https://user:password@host/`) are sent as basic authentication and never logged.
    pub url: String,
    #[serde(default)]
    pub format: HttpFormat,
    /// How long one attempt may take, from connecting to reading the answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts after the first, for failures that may pass.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_retries() -> u32 {
    2
}

/// Upper bounds on the configuration. A record holds its sink's queue for up to
/// `(retries + 1) × timeout_ms`, 11 minutes at these bounds; past them the queue behind a
/// dead endpoint would stand still, and the deadline arithmetic could overflow.
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_RETRIES: u32 = 10;

/// The wait before the first retry, doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How much of an answer's body is read: enough for an error message such as
/// falcosidekick's "Please send a valid request body", and for the connection to be reused
/// after the usual short answer.
const ANSWER_READ_LIMIT: u64 = 1024;

/// POSTs each record as JSON to one endpoint, retrying within a per-record time bound.
pub struct HttpSink {
    name: String,
    uri: Uri,
    format: HttpFormat,
    agent: Agent,
    timeout: Duration,
    retries: u32,
}

impl HttpSink {
    pub fn new(config: &HttpConfig) -> Result<HttpSink, String> {
        let uri = parse_url(&config.url)?;
        if !(1..=MAX_TIMEOUT_MS).contains(&config.timeout_ms) {
            return Err(format!(
                "timeout_ms = {}: use 1 to {MAX_TIMEOUT_MS} (milliseconds for one attempt, {} by default)",
                config.timeout_ms,
                default_timeout_ms()
            ));
        }
        if config.retries > MAX_RETRIES {
            return Err(format!(
                "retries = {}: use 0 to {MAX_RETRIES} (attempts after the first, {} by default); \
                 each record waits for up to (retries + 1) × timeout_ms",
                config.retries,
                default_retries()
            ));
        }
        let agent = Agent::config_builder()
            // Every status is an answer to classify (retry 503, not 400), not an error.
            .http_status_as_error(false)
            // A redirect would turn the POST into a GET or, for 307/308, fail in ureq: the
            // 3xx is reported so that the URL can be corrected to where it points.
            .max_redirects(0)
            .user_agent(concat!("execguard/", env!("CARGO_PKG_VERSION")))
            // The proxy stays ureq's default, read from HTTP_PROXY/HTTPS_PROXY/NO_PROXY in
            // the environment the shim inherits from containerd, as other node tools do.
            .build()
            .into();
        Ok(HttpSink {
            name: format!("http:{} {}", config.format.as_str(), redact_userinfo(&config.url, &uri)),
            uri,
            format: config.format,
            agent,
            timeout: Duration::from_millis(config.timeout_ms),
            retries: config.retries,
        })
    }

    /// Sends one body, retrying what may pass, within `(retries + 1) × timeout`: each
    /// attempt gets the configured timeout or what is left of that budget, whichever is
    /// less, and backoff sleeps come out of the same budget. An endpoint that never answers
    /// so gets every attempt in full; one that answers 503 slowly gets fewer.
    fn post(&self, body: &[u8]) -> io::Result<()> {
        let attempts = self.retries + 1;
        // At most 60 s × 11 (checked in `new`): no overflow.
        let deadline = Instant::now() + self.timeout * attempts;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match self.attempt(body, self.timeout.min(left)) {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if !failure.retry || attempt == attempts {
                return Err(self.error(failure, attempt));
            }
            // Backoff spaces out quick failures; a timeout has already waited its share.
            let wait = if failure.kind == io::ErrorKind::TimedOut { Duration::ZERO } else { backoff };
            if deadline.saturating_duration_since(Instant::now()) <= wait {
                return Err(self.error(failure, attempt));
            }
            tracing::debug!(sink = %self.name, attempt, failure = %failure.what, "alert not delivered, retrying");
            thread::sleep(wait);
            backoff *= 2;
            attempt += 1;
        }
    }

    fn attempt(&self, body: &[u8], timeout: Duration) -> Result<(), Failure> {
        let sent = self
            .agent
            .post(self.uri.clone())
            .content_type("application/json")
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(error) => return Err(Failure::from_ureq(error, timeout)),
        };
        let status = answer.status();
        // Read errors after the status are ignored: a 2xx was delivered whatever follows,
        // and for an error status the status says enough.
        let mut text = Vec::new();
        let _ = answer.body_mut().as_reader().take(ANSWER_READ_LIMIT).read_to_end(&mut text);
        if status.is_success() {
            return Ok(());
        }
        Err(Failure::from_status(status, &text))
    }

    fn error(&self, failure: Failure, attempts: u32) -> io::Error {
        let tries = if attempts == 1 { "1 attempt".to_string() } else { format!("{attempts} attempts") };
        io::Error::new(failure.kind, format!("{}: {} ({tries}); {}", self.name, failure.what, failure.advice))
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, record: &Value) -> io::Result<()> {
        let body = match self.format {
            HttpFormat::Ecs => serde_json::to_vec(record),
            HttpFormat::Falco => serde_json::to_vec(&FalcoPayload::from_record(record)),
        }
        .map_err(io::Error::other)?;
        self.post(&body)
    }
}

/// Checks the URL once, so that a typo is a configuration error rather than one failure
/// per alert.
fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|error| {
        format!("url {url:?} is not a URL ({error}): use http://HOST:PORT/PATH, e.g. http://falcosidekick:2801/")
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "url {url:?}: use an http:// or https:// URL, e.g. http://falcosidekick:2801/ (https is checked against the public web roots)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("url {url:?} names no host: use http://HOST:PORT/PATH, e.g. http://falcosidekick:2801/"));
    }
    Ok(uri)
}

/// The URL as configured, with any user and password replaced by `***`: the sink's name
/// goes into logs and metrics.
fn redact_userinfo(url: &str, uri: &Uri) -> String {
    let Some(authority) = uri.authority().map(|a| a.as_str()) else {
        return url.to_string();
    };
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    format!("{scheme}://***@{}{path}", &authority[at + 1..])
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug)]
struct Failure {
    kind: io::ErrorKind,
    retry: bool,
    what: String,
    advice: &'static str,
}

const UNREACHABLE: &str = "check that the endpoint is up and reachable from this node";

impl Failure {
    fn from_ureq(error: ureq::Error, timeout: Duration) -> Failure {
        let unreachable = |kind, what| Failure { kind, retry: true, what, advice: UNREACHABLE };
        match error {
            ureq::Error::Timeout(_) => {
                unreachable(io::ErrorKind::TimedOut, format!("no answer within {} ms", timeout.as_millis()))
            }
            ureq::Error::Io(error) => unreachable(error.kind(), error.to_string()),
            // DNS may not know a service that is still starting.
            ureq::Error::HostNotFound => unreachable(io::ErrorKind::NotFound, "host not found".to_string()),
            ureq::Error::ConnectionFailed => {
                unreachable(io::ErrorKind::ConnectionRefused, "connection failed".to_string())
            }
            ureq::Error::Protocol(error) => Failure {
                kind: io::ErrorKind::InvalidData,
                retry: false,
                what: format!("the answer is not HTTP ({error})"),
                advice: "check the URL's scheme (http:// or https://) and port",
            },
            error @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_)) => Failure {
                kind: io::ErrorKind::InvalidData,
                retry: false,
                what: format!("TLS failed ({error})"),
                advice: "an https endpoint needs a certificate from a public CA for the URL's host name",
            },
            error => Failure {
                kind: io::ErrorKind::Other,
                retry: false,
                what: error.to_string(),
                advice: "check the url of this sink",
            },
        }
    }

    fn from_status(status: StatusCode, text: &[u8]) -> Failure {
        let text = String::from_utf8_lossy(text);
        let text = text.trim();
        let what = if text.is_empty() {
            format!("the endpoint answered {status}")
        } else {
            format!("the endpoint answered {status}: {}", one_line(text))
        };
        let (retry, advice) = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            (true, "the endpoint is failing or overloaded")
        } else if status.is_redirection() {
            (false, "set url to where the endpoint redirects")
        } else {
            (false, "the endpoint refused the record: check the url and that format (ecs or falco) is what it reads")
        };
        Failure { kind: io::ErrorKind::Other, retry, what, advice }
    }
}

/// Falco's JSON output, field for field as falcosidekick decodes it into its
/// `types.FalcoPayload` (types/types.go). Its `uuid` is left out: falcosidekick assigns one
/// to every event it accepts. It rejects an event with 400 unless `priority` is one of
/// Falco's, `rule` is not empty, `time` is an RFC 3339 time and `output_fields` is not
/// empty (`FalcoPayload.Check`), so each of those always has a value here.
#[derive(Debug, Serialize)]
struct FalcoPayload<'r> {
    output: String,
    priority: &'static str,
    rule: &'r str,
    time: String,
    output_fields: Map<String, Value>,
    source: &'static str,
    tags: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'r str>,
}

impl<'r> FalcoPayload<'r> {
    fn from_record(record: &'r Value) -> FalcoPayload<'r> {
        let text = |pointer| record.pointer(pointer).and_then(Value::as_str);
        let number = |pointer| record.pointer(pointer).and_then(Value::as_u64);
        let blocked = text("/decision") == Some("block");
        let rule_id = text("/rule/id");
        let action = text("/event/action");
        let priority = falco_priority(text("/rule/severity"), blocked);
        // A record without a readable @timestamp (AlertRecord always writes one) is stamped
        // now rather than sent with no time, which falcosidekick would refuse.
        let at = text("/@timestamp").and_then(|t| humantime::parse_rfc3339(t).ok()).unwrap_or_else(SystemTime::now);
        // Falco's own form, to the nanosecond: 2024-05-01T06:11:07.123456789Z.
        let time = humantime::format_rfc3339_nanos(at).to_string();

        let process = text("/process/name").or_else(|| text("/process/executable").map(basename));
        let parent = text("/process/parent/name").or_else(|| text("/process/parent/executable").map(basename));
        let cmdline = joined(record.pointer("/process/args"));
        let parent_cmdline = joined(record.pointer("/process/parent/args"));
        let image = text("/container/image/name");

        let mut fields = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                fields.insert(key.to_string(), value);
            }
        };
        let string = |value: Option<&str>| value.map(|v| Value::String(v.to_string()));
        put("container.id", string(text("/container/id")));
        put("container.name", string(text("/container/name")));
        put("container.image.repository", string(image.map(|i| image_reference(i).0)));
        put("container.image.tag", string(image.and_then(|i| image_reference(i).1)));
        put("k8s.ns.name", string(text("/orchestrator/namespace")));
        put("k8s.pod.name", string(text("/orchestrator/resource/name")));
        put("proc.name", string(process));
        put("proc.exepath", string(text("/process/executable")));
        put("proc.cmdline", cmdline.clone().map(Value::String));
        put("proc.pid", number("/process/pid").map(Value::from));
        put("proc.pname", string(parent));
        put("proc.pcmdline", parent_cmdline.map(Value::String));
        put("proc.ppid", number("/process/parent/pid").map(Value::from));
        put("evt.type", string(Some("execve")));
        put("execguard.decision", string(text("/decision")));
        put("execguard.rule.id", string(rule_id));
        put("host.name", string(text("/host/name")));

        // 06:11:07.123456789: Critical execguard blocked nc (rule falco.netcat_rce) container=web ...
        // falcosidekick's output_format option rewrites only lines that start like Falco's:
        // a clock with a fraction, a colon, the priority.
        let mut output = format!(
            "{}: {priority} execguard {} {}",
            time.get(11..29).unwrap_or_default(),
            if blocked { "blocked" } else { "alerted" },
            process.unwrap_or("?"),
        );
        match (rule_id, action, text("/reason")) {
            (Some(rule), _, _) => output.push_str(&format!(" (rule {rule})")),
            // Without a rule (an exec race, an exec the supervisor could not decide) the
            // reason is all that says what happened.
            (None, Some(action), Some(reason)) => output.push_str(&format!(" ({action}: {reason})")),
            (None, Some(what), None) | (None, None, Some(what)) => output.push_str(&format!(" ({what})")),
            (None, None, None) => {}
        }
        let pod = match (text("/orchestrator/namespace"), text("/orchestrator/resource/name")) {
            (Some(namespace), Some(pod)) => Some(format!("{namespace}/{pod}")),
            (None, pod) => pod.map(str::to_string),
            (Some(_), None) => None,
        };
        let labelled = [
            ("container", text("/container/name").or(text("/container/id")).map(str::to_string)),
            ("pod", pod),
            ("cmdline", cmdline),
            ("parent", parent.map(str::to_string)),
        ];
        for (label, value) in labelled {
            if let Some(value) = value {
                output.push_str(&format!(" {label}={value}"));
            }
        }

        let mut tags = vec!["execguard", "process"];
        tags.extend(text("/rule/ruleset"));
        tags.push(if blocked { "block" } else { "alert" });

        FalcoPayload {
            output: one_line(&output),
            priority,
            rule: text("/rule/name").or(action).unwrap_or("execguard"),
            time,
            output_fields: fields,
            source: "execguard",
            tags,
            hostname: text("/host/name"),
        }
    }
}

/// Falco's priority for a rule's severity; without a rule, by what was done.
fn falco_priority(severity: Option<&str>, blocked: bool) -> &'static str {
    match severity {
        Some("critical") => "Critical",
        Some("high") => "Error",
        Some("medium") => "Warning",
        Some("low") => "Notice",
        _ if blocked => "Error",
        _ => "Warning",
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Arguments joined by spaces, as Falco's proc.cmdline shows them; none for no arguments.
fn joined(args: Option<&Value>) -> Option<String> {
    let args: Vec<&str> = args?.as_array()?.iter().filter_map(Value::as_str).collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// An image reference split as Falco splits it into container.image.repository and
/// container.image.tag: `registry:5000/nginx:1.27` is `registry:5000/nginx` and `1.27` (a
/// colon is a tag's only after the last slash); a digest (`@sha256:...`) is not a tag.
fn image_reference(image: &str) -> (&str, Option<&str>) {
    let name = image.split_once('@').map_or(image, |(name, _digest)| name);
    let last_part = name.rfind('/').map_or(0, |slash| slash + 1);
    match name[last_part..].rfind(':') {
        Some(colon) => (&name[..last_part + colon], Some(&name[last_part + colon + 1..])),
        None => (name, None),
    }
}

/// Control characters escaped: the output is one line for a person to read, and an argument
/// must not be able to start a fake second line in a chat message or a log.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(url: &str) -> HttpConfig {
        HttpConfig { url: url.to_string(), format: HttpFormat::Falco, timeout_ms: 2000, retries: 2 }
    }

    #[test]
    fn config_defaults_to_ecs_two_seconds_and_two_retries() {
        let parsed: HttpConfig = serde_json::from_value(json!({"url": "http://collector:8080/alerts"})).unwrap();
        let expected = HttpConfig {
            url: "http://collector:8080/alerts".into(),
            format: HttpFormat::Ecs,
            timeout_ms: 2000,
            retries: 2,
        };
        assert_eq!(parsed, expected);
        let falco: HttpConfig = serde_json::from_value(json!({"url": "http://s:2801/", "format": "falco"})).unwrap();
        assert_eq!(falco.format, HttpFormat::Falco);
    }

    /// Each row: a configuration, and what its error must say.
    #[test]
    fn bad_configurations_are_refused_with_what_to_use() {
        let rows: &[(Value, &str)] = &[
            (json!({"url": "http://s/", "timeout": 5}), "unknown field `timeout`"),
            (json!({"url": "http://s/", "format": "syslog"}), "unknown variant `syslog`, expected `ecs` or `falco`"),
            (json!({"format": "falco"}), "missing field `url`"),
        ];
        for (row, wanted) in rows {
            let error = serde_json::from_value::<HttpConfig>(row.clone()).unwrap_err().to_string();
            assert!(error.contains(wanted), "{row}: {error}");
        }
        let rows = [
            (config("ftp://s/"), "use an http:// or https:// URL"),
            (config("falcosidekick:2801"), "use an http:// or https:// URL"),
            (config("http://"), "is not a URL"),
            (config("http:///alerts"), "is not a URL"),
            (config("http://s p/"), "is not a URL"),
            (HttpConfig { timeout_ms: 0, ..config("http://s/") }, "timeout_ms = 0: use 1 to 60000"),
            (HttpConfig { timeout_ms: 60_001, ..config("http://s/") }, "timeout_ms = 60001: use 1 to 60000"),
            (HttpConfig { retries: 11, ..config("http://s/") }, "retries = 11: use 0 to 10"),
        ];
        for (row, wanted) in rows {
            let error = HttpSink::new(&row).err().unwrap_or_else(|| panic!("{row:?} was accepted"));
            assert!(error.contains(wanted), "{row:?}: {error}");
        }
        assert!(HttpSink::new(&HttpConfig { timeout_ms: 1, retries: 10, ..config("HTTPS://s:443") }).is_ok());
    }

    #[test]
    fn the_name_never_shows_a_password() {
        let sink = HttpSink::new(&config("https://alerts:s3cret@sidekick.falco:2801/x?y=1")).unwrap();
        assert_eq!(sink.name(), "http:falco https://***@sidekick.falco:2801/x?y=1");
        let plain = HttpSink::new(&HttpConfig { format: HttpFormat::Ecs, ..config("http://h:80") }).unwrap();
        assert_eq!(plain.name(), "http:ecs http://h:80");
    }

    /// falcosidekick answers 400 unless priority, rule, time and output_fields are set
    /// (`FalcoPayload.Check`): even a record with nothing in it must pass.
    #[test]
    fn an_empty_record_still_passes_falcosidekicks_check() {
        let record = json!({});
        let payload = serde_json::to_value(FalcoPayload::from_record(&record)).unwrap();
        assert_eq!(payload["priority"], "Warning");
        assert_eq!(payload["rule"], "execguard");
        assert_eq!(payload["output_fields"], json!({"evt.type": "execve"}));
        let time = payload["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        assert!(payload.get("hostname").is_none());
    }

    /// Each row: rule severity (none for no rule), decision, Falco priority.
    #[test]
    fn priorities_follow_the_rule_then_the_decision() {
        let rows = [
            (Some("critical"), "block", "Critical"),
            (Some("high"), "alert", "Error"),
            (Some("medium"), "block", "Warning"),
            (Some("low"), "block", "Notice"),
            // No rule: a block is an error someone should look at, an alert a warning.
            (None, "block", "Error"),
            (None, "alert", "Warning"),
        ];
        for (severity, decision, wanted) in rows {
            let rule = severity.map(|s| json!({"id": "r", "name": "R", "severity": s}));
            let record = json!({"decision": decision, "rule": rule});
            let payload = FalcoPayload::from_record(&record);
            assert_eq!(payload.priority, wanted, "{severity:?} {decision}");
            assert!(payload.output.starts_with(&format!("{}: {wanted} ", &payload.time[11..29])));
        }
    }

    #[test]
    fn without_a_rule_the_action_names_the_event_and_the_reason_explains_it() {
        let record = json!({
            "@timestamp": "2024-05-01T06:11:07.123Z",
            "event": {"action": "exec-race"},
            "rule": null,
            "decision": "block",
            "reason": "the file changed between the check and the exec",
            "process": {"executable": "/tmp/x", "args": [], "pid": null},
            "container": {"id": "c0ffee", "name": null},
        });
        let payload = FalcoPayload::from_record(&record);
        assert_eq!(payload.rule, "exec-race");
        assert_eq!(payload.time, "2024-05-01T06:11:07.123000000Z");
        assert_eq!(
            payload.output,
            "06:11:07.123000000: Error execguard blocked x (exec-race: the file changed between the check and the exec) container=c0ffee"
        );
        let fields = json!({
            "container.id": "c0ffee", "proc.name": "x", "proc.exepath": "/tmp/x",
            "evt.type": "execve", "execguard.decision": "block",
        });
        assert_eq!(Value::Object(payload.output_fields), fields, "null and empty fields are left out");
        assert_eq!(payload.tags, ["execguard", "process", "block"]);
    }

    #[test]
    fn an_argument_cannot_start_a_second_output_line() {
        let record = json!({"decision": "alert", "process": {"executable": "/bin/sh", "args": ["sh", "-c", "id\n06:00:00.0: Notice all is well\u{1b}[2J"]}});
        let payload = FalcoPayload::from_record(&record);
        assert!(!payload.output.chars().any(char::is_control), "{}", payload.output);
        assert!(
            payload.output.ends_with(r"cmdline=sh -c id\n06:00:00.0: Notice all is well\u{1b}[2J"),
            "{}",
            payload.output
        );
        assert_eq!(payload.output_fields["proc.cmdline"], "sh -c id\n06:00:00.0: Notice all is well\u{1b}[2J");
    }

    /// Each row: an image reference, Falco's repository and tag.
    #[test]
    fn image_references_split_into_repository_and_tag() {
        let rows = [
            ("nginx", "nginx", None),
            ("nginx:1.27", "nginx", Some("1.27")),
            ("registry:5000/shop/web", "registry:5000/shop/web", None),
            ("registry:5000/shop/web:1.4", "registry:5000/shop/web", Some("1.4")),
            ("nginx@sha256:0123", "nginx", None),
            ("nginx:1.27@sha256:0123", "nginx", Some("1.27")),
            ("", "", None),
        ];
        for (image, repository, tag) in rows {
            assert_eq!(image_reference(image), (repository, tag), "{image}");
        }
    }
}
