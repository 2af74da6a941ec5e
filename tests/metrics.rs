//! Metrics end to end: `lethe serve --statsd` sends to a real UDP socket on 127.0.0.1, and every
//! line is checked for its name, type and tags, and for the absence of any byte of content.
//! Also: the privacy endpoints, and that the README and the dashboard name only real metrics.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{lethe, mock, post, request, seen, Proc};

const EMAIL: &str = "jane.doe@example.com";
const SECRET_MODEL: &str = "jane-private-model";
const PROMPT_WORD: &str = "nightingale";

/// One StatsD line: `name:value|type|#k:v,…`.
#[derive(Clone, Debug)]
struct Line {
    name: String,
    value: f64,
    kind: String,
    tags: BTreeMap<String, String>,
}

impl Line {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

fn parse_line(text: &str) -> Line {
    let (metric, tags) = match text.split_once("|#") {
        Some((m, t)) => (m, t),
        None => (text, ""),
    };
    let (name, rest) = metric.split_once(':').expect("name:value");
    let (value, kind) = rest.split_once('|').expect("value|type");
    let tags = tags
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (k, v) = t.split_once(':').expect("tag k:v");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    Line {
        name: name.to_owned(),
        value: value.parse().expect("numeric value"),
        kind: kind.to_owned(),
        tags,
    }
}

/// A StatsD stand-in: a UDP socket that keeps every datagram.
struct Statsd {
    socket: UdpSocket,
    raw: Vec<u8>,
}

impl Statsd {
    fn new() -> Statsd {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Statsd {
            socket,
            raw: Vec::new(),
        }
    }

    fn addr(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// Lines received until `done` holds for them (or 5 s pass), then a little longer.
    fn lines_until(&mut self, done: impl Fn(&[Line]) -> bool) -> Vec<Line> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = Vec::new();
        let mut buf = [0u8; 65536];
        let mut settled: Option<Instant> = None;
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.raw.extend_from_slice(&buf[..n]);
                self.raw.push(b'\n');
                let text = std::str::from_utf8(&buf[..n]).expect("UTF-8 datagram");
                lines.extend(text.lines().filter(|l| !l.is_empty()).map(parse_line));
            }
            if settled.is_none() && done(&lines) {
                settled = Some(Instant::now());
            }
            if settled.is_some_and(|t| t.elapsed() > Duration::from_millis(1200))
                || Instant::now() > deadline
            {
                return lines;
            }
        }
    }
}

fn has(lines: &[Line], name: &str) -> bool {
    lines.iter().any(|l| l.name == name)
}

fn find<'a>(lines: &'a [Line], name: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l.name == name).collect()
}

fn one<'a>(lines: &'a [Line], name: &str) -> &'a Line {
    let found = find(lines, name);
    assert_eq!(found.len(), 1, "{name}: {lines:#?}");
    found[0]
}

fn start(
    config: &str,
    statsd: &Statsd,
    m: &Proc,
) -> (Proc, Option<support::tempfile_path::TempPath>) {
    let upstream = format!("http://{}", m.addr);
    lethe(
        Some(config),
        &[
            "--openai-upstream",
            &upstream,
            "--anthropic-upstream",
            &upstream,
            "--statsd",
            &statsd.addr(),
        ],
        &[],
    )
}

const CONFIG: &str = r#"
[statsd]
prefix = "lethe"
global_tags = { env = "test" }
attribution = ["team"]
attribution_max_values = 2

[prices."house-model"]
input = 1000.0
output = 2000.0

[[route]]
name = "oai"
format = "openai"
base_url = "http://127.0.0.1:9"
key = "passthrough"
models = ["house-model", "gpt-*"]

[[route]]
name = "claude"
format = "anthropic"
base_url = "http://127.0.0.1:9"
key = "passthrough"
"#;

fn chat(stream: bool) -> Value {
    json!({
        "model": "house-model",
        "stream": stream,
        "messages": [{"role": "user", "content": format!("{PROMPT_WORD}: write to {EMAIL}")}]
    })
}

#[test]
fn requests_streams_failures_and_refusals_are_measured_without_content() {
    let mut statsd = Statsd::new();
    let m = mock(&[]);
    let (l, _file) = start(CONFIG, &statsd, &m);
    let common = [
        ("x-lethe-tag-team", "search"),
        ("x-log-user-id", "jane-user-42"),
        ("x-log-session-id", "session-jane-7"),
    ];

    // An ordinary JSON request.
    let reply = post(&l.addr, "/v1/chat/completions", &common, &chat(false));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let lines = statsd.lines_until(|l| has(l, "lethe.cost_micro_usd"));
    let requests = one(&lines, "lethe.requests");
    assert_eq!(requests.kind, "c");
    assert_eq!(requests.value, 1.0);
    for (k, v) in [
        ("route", "oai"),
        ("endpoint", "chat_completions"),
        ("status", "2xx"),
        ("model", "house-model"),
        ("team", "search"),
        ("env", "test"),
    ] {
        assert_eq!(requests.tag(k), Some(v), "{requests:?}");
    }
    for name in [
        "lethe.request_duration",
        "lethe.upstream_ttfb",
        "lethe.overhead_us",
    ] {
        let line = one(&lines, name);
        assert_eq!(line.kind, "ms", "{line:?}");
        assert_eq!(line.tag("route"), Some("oai"));
    }
    let detections = one(&lines, "lethe.detections");
    assert_eq!(
        (detections.tag("type"), detections.tag("direction")),
        (Some("email"), Some("request"))
    );
    let input = one(&lines, "lethe.tokens_input").value;
    let output = one(&lines, "lethe.tokens_output").value;
    assert!(input > 0.0 && output > 0.0);
    assert_eq!(one(&lines, "lethe.tokens_total").value, input + output);
    let cost = one(&lines, "lethe.cost_micro_usd");
    assert_eq!(cost.value, input * 1000.0 + output * 2000.0, "µUSD");
    assert_eq!(cost.tag("team"), Some("search"));
    assert!(!has(&lines, "lethe.errors"));
    assert!(find(&lines, "lethe.connections_active")
        .iter()
        .all(|g| g.kind == "g"));

    // A stream whose client did not ask for usage: Lethe asks, counts, and drops the chunk.
    let reply = post(&l.addr, "/v1/chat/completions", &common, &chat(true));
    assert_eq!(reply.status, 200);
    let events = reply.events();
    assert!(
        events.iter().all(|(_, data)| !data.contains("usage")),
        "the client did not ask for usage: {events:?}"
    );
    let upstream_saw = seen(&m).pop().unwrap();
    let body: Value = serde_json::from_str(upstream_saw["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["stream_options"]["include_usage"], true);
    let lines = statsd.lines_until(|l| has(l, "lethe.stream_tokens_per_second"));
    assert_eq!(one(&lines, "lethe.requests").tag("status"), Some("2xx"));
    for name in [
        "lethe.stream_ttft",
        "lethe.stream_tokens_per_second",
        "lethe.held_back_bytes",
    ] {
        assert_eq!(one(&lines, name).kind, "ms", "{name}");
    }
    assert_eq!(
        one(&lines, "lethe.stream_ttft").tag("model"),
        Some("house-model")
    );
    assert!(one(&lines, "lethe.tokens_output").value > 0.0);
    let streams: Vec<f64> = find(&lines, "lethe.streams_active")
        .iter()
        .map(|g| g.value)
        .collect();
    assert_eq!(streams, [1.0, 0.0]);

    // A client that asks for usage gets it.
    let mut asked = chat(true);
    asked["stream_options"] = json!({"include_usage": true});
    let reply = post(&l.addr, "/v1/chat/completions", &[], &asked);
    assert!(reply
        .events()
        .iter()
        .any(|(_, data)| data.contains("\"usage\":{")));
    let lines = statsd.lines_until(|l| has(l, "lethe.stream_tokens_per_second"));
    assert!(one(&lines, "lethe.tokens_total").value > 0.0);

    // An Anthropic stream carries usage in its own events.
    let reply = post(
        &l.addr,
        "/v1/messages",
        &[],
        &json!({"model": "claude-sonnet-4-5-20250929", "stream": true, "max_tokens": 10,
                "messages": [{"role": "user", "content": PROMPT_WORD}]}),
    );
    assert_eq!(reply.status, 200);
    let lines = statsd.lines_until(|l| has(l, "lethe.cost_micro_usd"));
    let tokens = one(&lines, "lethe.tokens_input");
    assert_eq!(
        tokens.tag("model"),
        Some("claude-sonnet-4-5"),
        "dated names price as their family"
    );
    assert_eq!(tokens.tag("route"), Some("claude"));

    // Failures: the provider's rate limit and 5xx, a stream that breaks off.
    for (status, kind) in [("429", "rate_limit"), ("503", "upstream_5xx")] {
        let reply = post(
            &l.addr,
            "/v1/chat/completions",
            &[("x-mock-status", status)],
            &chat(false),
        );
        assert_eq!(reply.status.to_string(), status);
        let lines = statsd.lines_until(|l| has(l, "lethe.errors"));
        let error = one(&lines, "lethe.errors");
        assert_eq!(error.tag("kind"), Some(kind));
        assert_eq!(error.kind, "c");
        assert!(one(&lines, "lethe.requests")
            .tag("status")
            .unwrap()
            .starts_with(&status[..1]));
    }
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-mock-fail-after-bytes", "400")],
        &chat(true),
    );
    assert_eq!(reply.status, 200);
    let lines = statsd.lines_until(|l| has(l, "lethe.errors"));
    assert_eq!(
        one(&lines, "lethe.errors").tag("kind"),
        Some("stream_failed")
    );

    // Refusals: malformed, unknown path, no route for the model, a body over the limit.
    let reply = request(&l.addr, "POST", "/v1/chat/completions", &[], b"{not json");
    assert_eq!(reply.status, 400);
    let lines = statsd.lines_until(|l| has(l, "lethe.errors"));
    assert_eq!(
        one(&lines, "lethe.errors").tag("kind"),
        Some("invalid_request")
    );
    assert_eq!(one(&lines, "lethe.requests").tag("status"), Some("4xx"));
    let reply = request(&l.addr, "GET", "/v1/jane/files", &[], b"");
    assert_eq!(reply.status, 404);
    let lines = statsd.lines_until(|l| has(l, "lethe.errors"));
    let error = one(&lines, "lethe.errors");
    assert_eq!(
        (error.tag("kind"), error.tag("endpoint"), error.tag("route")),
        (Some("not_found"), Some("unknown"), Some("none"))
    );
    let mut other = chat(false);
    other["model"] = json!(SECRET_MODEL);
    let reply = post(&l.addr, "/v1/chat/completions", &[], &other);
    assert_eq!(reply.status, 404);
    let lines = statsd.lines_until(|l| has(l, "lethe.errors"));
    assert_eq!(
        one(&lines, "lethe.errors").tag("kind"),
        Some("model_not_found")
    );
    assert_eq!(one(&lines, "lethe.requests").tag("model"), Some("other"));

    // Attribution: a value that fails the check, and one over the cap, become `other`.
    for (value, want) in [
        ("Jane Doe", "other"),
        ("billing", "billing"),
        ("third", "other"),
    ] {
        let reply = post(
            &l.addr,
            "/v1/chat/completions",
            &[("x-lethe-tag-team", value)],
            &chat(false),
        );
        assert_eq!(reply.status, 200);
        let lines = statsd.lines_until(|l| has(l, "lethe.cost_micro_usd"));
        assert_eq!(
            one(&lines, "lethe.requests").tag("team"),
            Some(want),
            "{value}"
        );
    }
    let last = seen(&m).pop().unwrap();
    assert!(
        !last["headers"].to_string().contains("x-lethe-tag"),
        "attribution headers are not forwarded"
    );

    // X-Logging-Level: error keeps a request to the error counter.
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-logging-level", "error")],
        &chat(false),
    );
    assert_eq!(reply.status, 200);
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-logging-level", "error"), ("x-mock-status", "429")],
        &chat(false),
    );
    assert_eq!(reply.status, 429);
    let lines = statsd.lines_until(|l| has(l, "lethe.errors"));
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.name.as_str())
        .filter(|n| !n.ends_with("_active"))
        .collect();
    assert_eq!(names, ["lethe.errors"], "{lines:#?}");

    // No datagram carried a byte of content or a person's identifier.
    let everything = String::from_utf8(statsd.raw.clone()).unwrap();
    for needle in [
        EMAIL,
        "jane",
        "Jane",
        PROMPT_WORD,
        "echo",
        "write to",
        SECRET_MODEL,
        "session",
        "user-42",
        "files",
    ] {
        assert!(
            !everything.contains(needle),
            "a metric carries {needle:?}: {everything}"
        );
    }
    let metric_names: Vec<String> = lethe::metrics::ALL
        .iter()
        .map(|n| format!("lethe.{n}"))
        .collect();
    for line in everything.lines().filter(|l| !l.is_empty()) {
        let parsed = parse_line(line);
        assert!(metric_names.contains(&parsed.name), "unknown name: {line}");
        for (k, v) in &parsed.tags {
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.:/@-".contains(&b)),
                "tag {k}:{v}"
            );
        }
    }
}

#[test]
fn untagged_statsd_and_a_dead_statsd_change_nothing_for_clients() {
    let mut statsd = Statsd::new();
    let m = mock(&[]);
    let config = "[statsd]\ntags = false\nprefix = \"edge.lethe\"\n";
    let (l, _file) = start(config, &statsd, &m);
    let reply = post(&l.addr, "/v1/chat/completions", &[], &chat(false));
    assert_eq!(reply.status, 200);
    let lines = statsd.lines_until(|l| has(l, "edge.lethe.requests"));
    assert!(lines.iter().all(|l| l.tags.is_empty()), "{lines:?}");
    assert!(has(&lines, "edge.lethe.tokens_total"));
    drop(l);

    // Nobody listens on this port: every datagram is refused, no request waits for it.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let upstream = format!("http://{}", m.addr);
    let (l, _) = lethe(
        None,
        &["--openai-upstream", &upstream, "--statsd", &dead_addr],
        &[],
    );
    let started = Instant::now();
    for _ in 0..50 {
        let reply = post(&l.addr, "/v1/chat/completions", &[], &chat(true));
        assert_eq!(reply.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn privacy_endpoints_answer_truthfully_that_nothing_is_stored() {
    let m = mock(&[]);
    let l = support::lethe_for(&m);
    let status = request(&l.addr, "GET", "/api/status", &[], b"");
    assert_eq!(status.status, 200);
    let v = status.json();
    assert_eq!(v["zero_log"], true);
    assert_eq!(v["request_log_default_enabled"], false);
    assert_eq!(v["request_log_default_retention_days"], 0);
    assert_eq!(v["request_log_max_retention_days"], 0);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    for key in ["seccomp", "landlock_abi", "dumpable", "memory_locked"] {
        assert!(v["sandbox"].get(key).is_some(), "sandbox.{key}: {v}");
    }
    let body = json!({"user_id": EMAIL, "delete_type": "all"});
    let reply = post(&l.addr, "/v1/privacy/delete", &[], &body);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["records_deleted"], 0);
    assert!(!reply.text().contains("jane"));
    let reply = post(
        &l.addr,
        "/v1/privacy/export",
        &[],
        &json!({"user_id": EMAIL, "format": "json", "include_logs": true}),
    );
    assert_eq!(reply.json()["records"], json!([]));
    assert_eq!(reply.json()["logs"], json!([]));
    let reply = post(
        &l.addr,
        "/v1/privacy/export",
        &[],
        &json!({"user_id": EMAIL, "format": "csv"}),
    );
    assert!(reply.headers["content-type"].starts_with("text/csv"));
    assert_eq!(reply.text().lines().count(), 1, "a header row only");
    let reply = post(
        &l.addr,
        "/v1/privacy/export",
        &[],
        &json!({"format": "xml"}),
    );
    assert_eq!(reply.status, 400);
    let reply = request(&l.addr, "GET", "/v1/privacy/delete", &[], b"");
    assert_eq!(reply.status, 405);
    assert!(seen(&m).is_empty(), "nothing reached the provider");
}

/// Metric names a document mentions: `lethe.NAME` or `stats…lethe.NAME…`.
fn names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("lethe.") {
        let rest = &text[i + "lethe.".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn readme_and_dashboard_name_every_metric_and_only_real_ones() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    for name in lethe::metrics::ALL {
        assert!(
            readme.contains(&format!("| `lethe.{name}` |")),
            "README's metrics table lacks lethe.{name}"
        );
    }
    let dashboard =
        std::fs::read_to_string(format!("{root}/dashboards/lethe-grafana.json")).unwrap();
    let v: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = v["panels"].as_array().expect("panels");
    assert!(panels.len() >= 7);
    let mut used = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(names_in(target["target"].as_str().unwrap_or_default()));
        }
    }
    for name in &used {
        assert!(
            lethe::metrics::ALL.contains(&name.as_str()),
            "the dashboard queries lethe.{name}, which Lethe does not send"
        );
    }
    for name in [
        "requests",
        "request_duration",
        "overhead_us",
        "tokens_total",
        "cost_micro_usd",
        "detections",
        "errors",
    ] {
        assert!(used.iter().any(|u| u == name), "no panel shows {name}");
    }
}
