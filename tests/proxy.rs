//! The proxy end to end: `lethe serve` and the mock provider as real processes on 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::{forget, lethe, lethe_for, mock, post, request, seen};

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.doe@example.com";
const PHONE: &str = "415-555-0132";
const SSN: &str = "123-45-6789";

/// Every byte as `%XX`: Lethe scrubs header values too, so the reply the mock is told to give
/// must not look like PII on its way there.
fn encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Everything the mock provider received, as one string.
fn provider_saw(m: &support::Proc) -> String {
    seen(m).iter().map(Value::to_string).collect()
}

fn assert_clean(haystack: &str, what: &str) {
    for value in [
        CARD,
        EMAIL,
        PHONE,
        SSN,
        "4111111111111111",
        "jane.doe",
        "555-0132",
        "45-6789",
    ] {
        assert!(
            !haystack.contains(value),
            "{what} contains {value:?}: {haystack}"
        );
    }
}

#[test]
fn request_text_is_scrubbed_before_the_provider_sees_it() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": format!("customer {EMAIL}")},
            {"role": "user", "content": [{"type": "text", "text": format!("card {CARD}, ssn {SSN}")}]},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": format!("{{\"phone\":\"{PHONE}\"}}")}}]}
        ],
        "metadata": {"note": format!("call {PHONE}")}
    });
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-client")],
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let saw = provider_saw(&m);
    assert_clean(&saw, "provider request");
    assert!(
        saw.contains("[EMAIL]") && saw.contains("**** **** **** 1111") && saw.contains("[SSN]")
    );
    assert!(
        saw.contains("gpt-4o-mini") && saw.contains("call_1"),
        "structural fields kept"
    );
    let last = seen(&m).pop().unwrap();
    assert_eq!(
        last["headers"]["authorization"], "Bearer sk-client",
        "passthrough key"
    );
    assert_clean(&reply.text(), "client answer");
}

#[test]
fn every_streamed_api_scrubs_values_split_across_events_and_one_byte_writes() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let reply_text = format!("Reach {EMAIL} or {PHONE}; card {CARD}. Done.");
    let encoded_reply = encoded(&reply_text);
    let expected = "Reach [EMAIL] or [PHONE]; card **** **** **** 1111. Done.";
    type Case<'a> = (&'a str, Value, &'a [(&'a str, &'a str)]);
    let cases: [Case; 6] = [
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        ),
        (
            "/v1/completions",
            json!({"model": "m", "stream": true, "prompt": "hi"}),
            &[],
        ),
        (
            "/v1/responses",
            json!({"model": "m", "stream": true, "input": "hi"}),
            &[],
        ),
        (
            "/v1/messages",
            json!({"model": "m", "stream": true, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}], "tools": []}),
            &[("x-mock-tool-call", "lookup")],
        ),
        (
            "/v1/messages",
            json!({"model": "m", "stream": true, "max_tokens": 10, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        ),
    ];
    for (path, body, extra) in cases {
        for (delta_chars, write_bytes) in [("1", "1"), ("3", "7"), ("50", "4096")] {
            let mut headers = vec![
                ("x-mock-reply", encoded_reply.as_str()),
                ("x-mock-delta-chars", delta_chars),
                ("x-mock-write-bytes", write_bytes),
            ];
            headers.extend_from_slice(extra);
            let reply = post(&l.addr, path, &headers, &body);
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            assert_eq!(
                reply.headers.get("content-type").map(String::as_str),
                Some("text/event-stream")
            );
            let raw = reply.text();
            assert_clean(&raw, path);
            let text = streamed_text(path, &reply.events(), !extra.is_empty());
            let want = if extra.is_empty() {
                expected.to_owned()
            } else {
                // Tool arguments are JSON text: {"text": REPLY}.
                json!({"text": expected}).to_string()
            };
            assert!(
                text.contains(&want),
                "{path} ({delta_chars}/{write_bytes}): got {text:?}"
            );
        }
    }
}

/// Concatenates the streamed text of one answer.
fn streamed_text(path: &str, events: &[(Option<String>, String)], tool: bool) -> String {
    let mut text = String::new();
    for (name, data) in events {
        if data == "[DONE]" {
            continue;
        }
        let v: Value =
            serde_json::from_str(data).unwrap_or_else(|_| panic!("{path}: not JSON: {data}"));
        match path {
            "/v1/chat/completions" => {
                for c in v["choices"].as_array().into_iter().flatten() {
                    if tool {
                        for call in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                            text.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                        }
                    } else {
                        text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
                    }
                }
            }
            "/v1/completions" => {
                for c in v["choices"].as_array().into_iter().flatten() {
                    text.push_str(c["text"].as_str().unwrap_or(""));
                }
            }
            "/v1/responses" => {
                if name.as_deref() == Some("response.output_text.delta") {
                    text.push_str(v["delta"].as_str().unwrap());
                }
                if name.as_deref() == Some("response.completed") {
                    let full = v["response"]["output"][0]["content"][0]["text"]
                        .as_str()
                        .unwrap();
                    assert_eq!(
                        full, text,
                        "response.completed carries the same scrubbed text"
                    );
                }
            }
            _ => {
                if v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta" {
                    text.push_str(v["delta"]["text"].as_str().unwrap());
                }
            }
        }
    }
    text
}

#[test]
fn placeholders_hide_values_from_the_provider_and_come_back_to_the_client() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("mail {EMAIL} twice: {EMAIL}")}]});
    let headers = [("x-pii-masking", "placeholder")];
    let reply = post(&l.addr, "/v1/chat/completions", &headers, &body);
    assert_eq!(reply.status, 200);
    let saw = provider_saw(&m);
    assert!(saw.contains("mail [EMAIL_1] twice: [EMAIL_1]"), "{saw}");
    assert_clean(&saw, "provider request");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        format!("echo: mail {EMAIL} twice: {EMAIL}")
    );
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[
            ("x-pii-masking", "placeholder"),
            ("x-mock-delta-chars", "2"),
            ("x-mock-write-bytes", "3"),
        ],
        &stream_body,
    );
    let text = streamed_text("/v1/chat/completions", &reply.events(), false);
    assert_eq!(text, format!("echo: mail {EMAIL} twice: {EMAIL}"));
    // A value the provider produces itself is labelled, not restored.
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[
            ("x-pii-masking", "placeholder"),
            ("x-mock-reply", &encoded("from bob@corp.io to [EMAIL_1]")),
        ],
        &body,
    );
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        format!("from [EMAIL] to {EMAIL}")
    );
}

#[test]
fn privacy_and_hop_by_hop_headers_are_not_forwarded() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let headers = [
        ("x-pii-detection", "true"),
        ("x-pii-types", "email,ssn"),
        ("x-compliance-mode", "GDPR"),
        ("x-logging-level", "debug"),
        ("x-log-request", "true"),
        ("x-log-response", "true"),
        ("x-log-metadata", "true"),
        ("x-log-user-id", "user-42"),
        ("x-log-session-id", "session-42"),
        ("keep-alive", "timeout=5"),
        ("x-custom-drop", "1"),
        ("connection", "close, x-custom-drop"),
        ("openai-organization", "org-1"),
        ("cookie", "session=abc"),
    ];
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &headers,
        &json!({"model": "m", "messages": []}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let last = seen(&m).pop().unwrap();
    let sent: Vec<&String> = last["headers"].as_object().unwrap().keys().collect();
    for h in [
        "x-pii-detection",
        "x-pii-types",
        "x-compliance-mode",
        "x-logging-level",
        "x-log-request",
        "x-log-response",
        "x-log-metadata",
        "x-log-user-id",
        "x-log-session-id",
        "keep-alive",
        "x-custom-drop",
        "cookie",
    ] {
        assert!(
            !sent.iter().any(|s| s.as_str() == h),
            "{h} was forwarded: {sent:?}"
        );
    }
    assert_eq!(last["headers"]["openai-organization"], "org-1");
    assert_eq!(last["headers"]["accept-encoding"], "identity");
}

#[test]
fn the_floor_cannot_be_lowered_by_headers() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": format!("{EMAIL} {CARD}")}]});
    for headers in [
        vec![("x-pii-detection", "false")],
        vec![("x-pii-types", "ssn")],
        vec![("x-pii-masking", "off")],
        vec![("x-logging-level", "verbose"), ("x-log-request", "true")],
    ] {
        forget(&m);
        let reply = post(&l.addr, "/v1/chat/completions", &headers, &body);
        assert_eq!(reply.status, 200, "{headers:?}");
        assert_clean(&provider_saw(&m), "provider request");
    }
    // A weaker style than the floor's is ignored: the e-mail stays a label.
    forget(&m);
    post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-pii-masking", "mask")],
        &body,
    );
    assert!(provider_saw(&m).contains("[EMAIL]"));
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-compliance-mode", "SOMETHING")],
        &body,
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn lowering_works_only_when_the_operator_allows_it() {
    let m = mock(&[]);
    let config = format!(
        "[policy]\nallow_client_lower = true\n[[route]]\nname = \"o\"\nformat = \"openai\"\nbase_url = \"http://{}\"\nkey = \"passthrough\"\n",
        m.addr
    );
    let (l, _file) = lethe(Some(&config), &[], &[]);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": EMAIL}]});
    post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-pii-detection", "off")],
        &body,
    );
    assert!(provider_saw(&m).contains(EMAIL));
}

#[test]
fn hipaa_mode_only_uses_routes_with_a_baa() {
    let m = mock(&[]);
    let route = |name: &str, baa: bool, models: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\nformat = \"openai\"\nbase_url = \"http://{}\"\nmodels = [{models}]\nkey = \"passthrough\"\nhipaa_baa = {baa}\n",
            m.addr
        )
    };
    let config = route("plain", false, "\"gpt-*\"") + &route("covered", true, "\"claude-*\"");
    let (l, _file) = lethe(Some(&config), &[], &[]);
    let hipaa = [("x-compliance-mode", "HIPAA")];
    let gpt = json!({"model": "gpt-4o", "messages": []});
    let reply = post(&l.addr, "/v1/chat/completions", &hipaa, &gpt);
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "permission_error");
    assert_eq!(post(&l.addr, "/v1/chat/completions", &[], &gpt).status, 200);
    let claude = json!({"model": "claude-x", "messages": []});
    assert_eq!(
        post(&l.addr, "/v1/chat/completions", &hipaa, &claude).status,
        200
    );
    let none = json!({"model": "llama", "messages": []});
    assert_eq!(
        post(&l.addr, "/v1/chat/completions", &[], &none).status,
        404
    );
}

#[test]
fn repeated_privacy_headers_are_read_as_one_list() {
    let m = mock(&[]);
    let route = |name: &str, baa: bool, models: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\nformat = \"openai\"\nbase_url = \"http://{}\"\nmodels = [{models}]\nkey = \"passthrough\"\nhipaa_baa = {baa}\n",
            m.addr
        )
    };
    let config = "[policy]\ntypes = [\"email\"]\n".to_owned()
        + &route("plain", false, "\"gpt-*\"")
        + &route("covered", true, "\"claude-*\"");
    let (l, _file) = lethe(Some(&config), &[], &[]);
    let gpt = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": format!("ssn {SSN} card {CARD}")}]});
    // HIPAA in a second copy, or in a list, still keeps the request off a route without a BAA.
    for headers in [
        &[
            ("x-compliance-mode", "GDPR"),
            ("x-compliance-mode", "HIPAA"),
        ][..],
        &[("x-compliance-mode", "GDPR, HIPAA")],
    ] {
        forget(&m);
        let reply = post(&l.addr, "/v1/chat/completions", headers, &gpt);
        assert_eq!(reply.status, 403, "{headers:?}: {}", reply.text());
        assert!(seen(&m).is_empty(), "{headers:?} was forwarded");
    }
    let claude = json!({"model": "claude-x", "messages": []});
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[
            ("x-compliance-mode", "GDPR"),
            ("x-compliance-mode", "HIPAA"),
        ],
        &claude,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Types from every copy are scrubbed; no copy of a privacy header is forwarded.
    forget(&m);
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[
            ("x-pii-types", "email"),
            ("x-pii-types", "ssn"),
            ("x-pii-types", "credit_card"),
            ("x-log-request", "true"),
            ("x-log-request", "false"),
        ],
        &gpt,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let saw = provider_saw(&m);
    assert_clean(&saw, "provider request");
    assert!(saw.contains("[SSN]"), "{saw}");
    let last = seen(&m).pop().unwrap();
    for h in ["x-pii-types", "x-log-request"] {
        assert!(last["headers"].get(h).is_none(), "{h} was forwarded");
    }
    // An invalid copy, or two masking styles, are refused before anything is forwarded.
    for headers in [
        &[("x-pii-masking", "placeholder"), ("x-pii-masking", "bogus")][..],
        &[("x-pii-masking", "label"), ("x-pii-masking", "placeholder")],
    ] {
        forget(&m);
        let reply = post(&l.addr, "/v1/chat/completions", headers, &gpt);
        assert_eq!(reply.status, 400, "{headers:?}");
        assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
        assert!(seen(&m).is_empty(), "{headers:?} was forwarded");
    }
}

#[test]
fn compressed_request_bodies_are_refused_and_content_encoding_is_never_forwarded() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let body =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": EMAIL}]})
            .to_string();
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("/v1/chat/completions", &[("content-encoding", "br")]),
        ("/v1/messages", &[("content-encoding", "gzip")]),
        (
            "/v1/chat/completions",
            &[
                ("content-encoding", "identity"),
                ("content-encoding", "gzip"),
            ],
        ),
        (
            "/v1/chat/completions",
            &[("content-encoding", "identity, deflate")],
        ),
    ];
    for (path, headers) in cases {
        forget(&m);
        let reply = request(&l.addr, "POST", path, headers, body.as_bytes());
        assert_eq!(reply.status, 415, "{path} {headers:?}: {}", reply.text());
        let v = reply.json();
        if path == "/v1/messages" {
            assert_eq!(v["type"], "error", "Anthropic error shape");
        }
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(!reply.text().contains("jane"), "error echoes input");
        assert!(seen(&m).is_empty(), "{path} {headers:?} was forwarded");
    }
    // `identity` is no coding at all: served, and the header stays behind.
    forget(&m);
    let reply = request(
        &l.addr,
        "POST",
        "/v1/chat/completions",
        &[("content-encoding", "identity")],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let last = seen(&m).pop().unwrap();
    assert!(
        last["headers"].get("content-encoding").is_none(),
        "content-encoding was forwarded: {last}"
    );
    assert_clean(&last.to_string(), "provider request");
}

#[test]
fn operator_keys_gateway_keys_and_fallback() {
    let m = mock(&["--require-key", "sk-operator"]);
    // Port 9 on loopback: nothing listens, the connection is refused.
    let config = format!(
        r#"[auth]
client_key_sha256 = ["{}"]
[[route]]
name = "dead"
format = "openai"
base_url = "http://127.0.0.1:9"
key = {{ env = "LETHE_TEST_KEY" }}
fallback = ["live"]
[[route]]
name = "live"
format = "openai"
base_url = "http://{}"
key = {{ env = "LETHE_TEST_KEY" }}
[[route]]
name = "claude"
format = "anthropic"
base_url = "http://{}"
key = {{ env = "LETHE_TEST_KEY" }}
"#,
        sha256_hex("gw-client-key"),
        m.addr,
        m.addr
    );
    let (l, _file) = lethe(Some(&config), &[], &[("LETHE_TEST_KEY", "sk-operator")]);
    let body = json!({"model": "m", "messages": []});
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("authorization", "Bearer wrong")],
        &body,
    );
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    assert_eq!(
        post(&l.addr, "/v1/chat/completions", &[], &body).status,
        401
    );
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("authorization", "Bearer gw-client-key")],
        &body,
    );
    assert_eq!(
        reply.status,
        200,
        "fell back to the live route: {}",
        reply.text()
    );
    let last = seen(&m).pop().unwrap();
    assert_eq!(last["headers"]["authorization"], "Bearer sk-operator");
    let reply = post(
        &l.addr,
        "/v1/messages",
        &[
            ("x-api-key", "gw-client-key"),
            ("anthropic-version", "2023-06-01"),
        ],
        &json!({"model": "m", "max_tokens": 5, "messages": []}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let last = seen(&m).pop().unwrap();
    assert_eq!(last["headers"]["x-api-key"], "sk-operator");
    assert!(last["headers"].get("authorization").is_none());
}

fn sha256_hex(s: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn bad_input_gets_generic_provider_shaped_errors_and_is_not_forwarded() {
    let m = mock(&[]);
    let config = format!(
        "[server]\nmax_body_bytes = 2048\n[upstream]\nfirst_byte_timeout_ms = 300\n[[route]]\nname = \"o\"\nformat = \"openai\"\nbase_url = \"http://{0}\"\nkey = \"passthrough\"\n[[route]]\nname = \"a\"\nformat = \"anthropic\"\nbase_url = \"http://{0}\"\nkey = \"passthrough\"\n",
        m.addr
    );
    let (l, _file) = lethe(Some(&config), &[], &[]);
    let secret = format!("not json {EMAIL}");
    for (method, path, body, status, kind) in [
        (
            "POST",
            "/v1/chat/completions",
            secret.as_bytes().to_vec(),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b"[1,2]".to_vec(),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![b' '; 4096],
            413,
            "invalid_request_error",
        ),
        (
            "GET",
            "/v1/chat/completions",
            Vec::new(),
            405,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/files",
            secret.as_bytes().to_vec(),
            404,
            "invalid_request_error",
        ),
        (
            "GET",
            "/etc/passwd",
            Vec::new(),
            404,
            "invalid_request_error",
        ),
    ] {
        forget(&m);
        let reply = request(&l.addr, method, path, &[], &body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        let v = reply.json();
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(!reply.text().contains("jane"), "error echoes input");
        assert!(seen(&m).is_empty(), "{method} {path} was forwarded");
    }
    let reply = request(&l.addr, "POST", "/v1/messages", &[], b"{oops");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["type"], "error", "Anthropic error shape");
    // 504: the provider waits longer than first_byte_timeout_ms.
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-mock-delay-ms", "2000")],
        &json!({"model": "m"}),
    );
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["error"]["code"], "timeout");
    // Provider errors pass through with their status, scrubbed.
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &[("x-mock-status", "429")],
        &json!({"model": "m"}),
    );
    assert_eq!(reply.status, 429);
    // Lethe keeps serving.
    assert_eq!(request(&l.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn unreachable_upstream_is_a_502() {
    let (l, _) = lethe(None, &["--openai-upstream", "http://127.0.0.1:9"], &[]);
    let reply = post(&l.addr, "/v1/chat/completions", &[], &json!({"model": "m"}));
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"]["code"], "upstream_unreachable");
}

#[test]
fn a_stream_that_dies_midway_ends_with_an_error_event_and_no_held_text() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let reply_text = encoded(&format!("The number is {CARD} and more text after it"));
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": []}),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "stream": true, "max_tokens": 5, "messages": []}),
        ),
    ] {
        let whole = post(
            &l.addr,
            path,
            &[("x-mock-reply", &reply_text), ("x-mock-delta-chars", "2")],
            &body,
        );
        let provider_len = whole.body.len();
        // Cut the provider's stream at twenty points, before, inside and after the card's events.
        let mut errors = 0;
        for i in 1..20 {
            let cut = (provider_len * i / 20).to_string();
            let reply = post(
                &l.addr,
                path,
                &[
                    ("x-mock-reply", &reply_text),
                    ("x-mock-delta-chars", "2"),
                    ("x-mock-fail-after-bytes", &cut),
                ],
                &body,
            );
            let raw = reply.text();
            assert_clean(&raw, path);
            assert!(
                !raw.contains("4111 1") && !raw.contains("1111 1"),
                "{path}/{cut}: partial card leaked: {raw}"
            );
            let events = reply.events();
            let (_, last) = events.last().expect("some events");
            assert!(
                last.contains("the upstream stream failed"),
                "{path}/{cut}: {last}"
            );
            errors += 1;
        }
        assert_eq!(errors, 19);
    }
}

#[test]
fn health_models_and_version() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    assert_eq!(
        request(&l.addr, "GET", "/healthz", &[], b"").json()["status"],
        "ok"
    );
    assert_eq!(
        request(&l.addr, "GET", "/readyz", &[], b"").json()["status"],
        "ready"
    );
    let models = request(
        &l.addr,
        "GET",
        "/v1/models",
        &[("authorization", "Bearer k")],
        b"",
    );
    assert_eq!(models.status, 200);
    assert_eq!(models.json()["object"], "list");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("lethe 0."));
}

#[test]
fn check_config_explains_errors_by_key_name() {
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lethe.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let path = support::tempfile_path::TempPath::new("lethe-bad", "toml");
    std::fs::write(&path.0, "[policy]\ntypes = [\"email\", \"Jane Doe\"]\n").unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("check-config")
        .arg(&path.0)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("policy.types[1]") && !err.contains("Jane"),
        "{err}"
    );
    // Files the config names are read as `serve` reads them; a value is never echoed.
    let cases = [
        (
            "[server]\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
            "server.tls_cert",
        ),
        (
            "[policy]\ndictionary = \"/nonexistent/terms.txt\"\n",
            "policy.dictionary",
        ),
        (
            "[statsd]\nglobal_tags = { env = \"Prod Value\" }\n",
            "statsd.global_tags.env",
        ),
    ];
    for (text, key) in cases {
        std::fs::write(&path.0, text).unwrap();
        let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
            .arg("check-config")
            .arg(&path.0)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(key) && !err.contains("Prod"), "{text}: {err}");
    }
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("<FILE>") && err.lines().count() == 1, "{err}");
}

/// Established TCP connections whose local port is `port` (the server side), from the kernel.
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && cols.get(3) == Some(&"01")
        })
        .count()
}

/// Streams are passed on as the provider sends them: a slow provider's text reaches the client
/// event by event, long before the stream ends, although Lethe gathers what is already there.
#[test]
fn streamed_text_reaches_the_client_while_the_provider_is_still_sending() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let m = mock(&[]);
    let l = lethe_for(&m);
    let reply = encoded("Good morning to you all, here is a slow answer.");
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let mut client = std::net::TcpStream::connect(&l.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        client,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-mock-reply: {reply}\r\nx-mock-delta-chars: 8\r\nx-mock-event-delay-ms: 150\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut first_text = None;
    let mut buf = [0u8; 4096];
    while !seen.windows(12).any(|w| w == b"data: [DONE]") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        seen.extend_from_slice(&buf[..n]);
        if first_text.is_none() && seen.windows(4).any(|w| w == b"Good") {
            first_text = Some(start.elapsed());
        }
    }
    let done = start.elapsed();
    let first_text = first_text.expect("the text came through");
    // Eight events of text at 150 ms intervals: the first words must not wait for the rest.
    assert!(
        done - first_text >= Duration::from_millis(600),
        "first text at {first_text:?}, end at {done:?}: the stream was held back"
    );
}

#[test]
fn a_client_that_disconnects_cancels_its_upstream_request() {
    use std::io::{Read, Write};
    let m = mock(&[]);
    let l = lethe_for(&m);
    let mock_port: u16 = m.addr.rsplit(':').next().unwrap().parse().unwrap();
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x".repeat(400)}]}).to_string();
    let mut client = std::net::TcpStream::connect(&l.addr).unwrap();
    write!(
        client,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-mock-event-delay-ms: 50\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 256];
    let n = client.read(&mut first).unwrap();
    assert!(n > 0 && first.starts_with(b"HTTP/1.1 200"));
    assert_eq!(
        established_to(mock_port),
        1,
        "one upstream connection while streaming"
    );
    drop(client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while established_to(mock_port) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        established_to(mock_port),
        0,
        "the upstream request was cancelled"
    );
}

#[test]
fn tls_1_3_only_with_alpn_and_slow_clients_are_cut_off() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let (ca, cert, key, _ca_file) = test_pki();
    let config = format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nheader_timeout_ms = 300\n",
        cert.0.display(),
        key.0.display()
    );
    let (l, _file) = lethe(Some(&config), &[], &[]);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(client_config(&[&rustls::version::TLS13]), name.clone())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(&l.addr).unwrap());
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let conn =
        rustls::ClientConnection::new(client_config(&[&rustls::version::TLS12]), name).unwrap();
    let mut tls12 = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(&l.addr).unwrap());
    assert!(
        tls12
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .and_then(|()| tls12.flush())
            .is_err()
            || {
                let mut buf = Vec::new();
                tls12.read_to_end(&mut buf).is_err()
            },
        "a TLS 1.2 client must be refused"
    );

    // A client that never finishes its TLS handshake is disconnected after header_timeout_ms.
    let mut slow = std::net::TcpStream::connect(&l.addr).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn a_request_head_that_trickles_in_is_cut_off() {
    use std::io::{Read, Write};
    let (l, _file) = lethe(Some("[server]\nheader_timeout_ms = 300\n"), &[], &[]);
    let mut slow = std::net::TcpStream::connect(&l.addr).unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "connection held too long"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200"));
}

#[test]
fn a_request_body_that_stops_halfway_is_answered_408() {
    use std::io::{Read, Write};
    let m = mock(&[]);
    let upstream = format!("http://{}", m.addr);
    let (l, _file) = lethe(
        Some("[server]\nbody_timeout_ms = 300\nheader_timeout_ms = 5000\n"),
        &["--openai-upstream", &upstream],
        &[],
    );
    let mut slow = std::net::TcpStream::connect(&l.addr).unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":",
    )
    .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    let n = slow.read(&mut buf).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "connection held too long"
    );
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("client_timeout") && !answer.contains("model"),
        "{answer}"
    );
    assert!(seen(&m).is_empty(), "nothing forwarded");
}

/// A one-trick upstream on 127.0.0.1 that answers every request with `status`.
fn failing_upstream(status: u16) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = r#"{"error":{"message":"busy","type":"server_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Busy\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn fallback_on_429_and_5xx_but_the_last_route_s_answer_is_final() {
    let m = mock(&[]);
    for status in [429, 500, 503] {
        let dead = failing_upstream(status);
        // `solo` reaches the failing upstream through a route without fallback; any other
        // model goes to `busy`, which falls back to `live`.
        let config = format!(
            "[[route]]\nname = \"alone\"\nformat = \"openai\"\nmodels = [\"solo\"]\nbase_url = \"http://{dead}\"\nkey = \"passthrough\"\n\
             [[route]]\nname = \"busy\"\nformat = \"openai\"\nbase_url = \"http://{dead}\"\nkey = \"passthrough\"\nfallback = [\"live\"]\n\
             [[route]]\nname = \"live\"\nformat = \"openai\"\nbase_url = \"http://{}\"\nkey = \"passthrough\"\n",
            m.addr
        );
        let (l, _file) = lethe(Some(&config), &[], &[]);
        let reply = post(
            &l.addr,
            "/v1/chat/completions",
            &[],
            &json!({"model": "m", "messages": []}),
        );
        assert_eq!(reply.status, 200, "{status}: fell back: {}", reply.text());
        let reply = post(
            &l.addr,
            "/v1/chat/completions",
            &[],
            &json!({"model": "solo", "messages": []}),
        );
        assert_eq!(
            reply.status, status,
            "no fallback left: the provider's status stands"
        );
    }
}

#[test]
fn header_values_are_scrubbed_too_but_credentials_pass() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let headers = [
        ("x-customer", EMAIL),
        ("x-card", CARD),
        ("x-note", "first"),
        ("x-note", PHONE),
        (
            "authorization",
            "Bearer sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
        ),
    ];
    let reply = post(
        &l.addr,
        "/v1/chat/completions",
        &headers,
        &json!({"model": "m", "messages": []}),
    );
    assert_eq!(reply.status, 200);
    let last = seen(&m).pop().unwrap();
    assert_eq!(last["headers"]["x-customer"], "[EMAIL]");
    assert_eq!(last["headers"]["x-card"], "**** **** **** 1111");
    assert_eq!(
        last["headers"]["x-note"], "first, [PHONE]",
        "every copy kept"
    );
    assert_eq!(
        last["headers"]["authorization"],
        "Bearer sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
    );
}

#[test]
fn query_strings_are_scrubbed_and_undecodable_ones_refused() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    let body = json!({"model": "m", "messages": []});
    let auth = [("authorization", "Bearer sk-client")];
    let reply = post(
        &l.addr,
        "/v1/chat/completions?user=jane.doe%40example.com&limit=20&card=4111+1111+1111+1111",
        &auth,
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let last = seen(&m).pop().unwrap();
    assert_eq!(
        last["query"],
        "user=%5BEMAIL%5D&limit=20&card=%2A%2A%2A%2A%20%2A%2A%2A%2A%20%2A%2A%2A%2A%201111"
    );
    let reply = request(
        &l.addr,
        "GET",
        "/v1/models?after=jane.doe@example.com",
        &auth,
        b"",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(seen(&m).pop().unwrap()["query"], "after=%5BEMAIL%5D");
    let reply = request(&l.addr, "GET", "/v1/models?limit=20&order=desc", &auth, b"");
    assert_eq!(reply.status, 200);
    assert_eq!(seen(&m).pop().unwrap()["query"], "limit=20&order=desc");
    forget(&m);
    for path in ["/v1/chat/completions?q=%zz", "/v1/chat/completions?q=%FF"] {
        let reply = post(&l.addr, path, &auth, &body);
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    }
    assert!(
        seen(&m).is_empty(),
        "an undecodable query is never forwarded"
    );
}

/// A throwaway CA and a leaf for `localhost` / 127.0.0.1 signed by it: (CA, leaf PEM file, key
/// PEM file, CA PEM file).
fn test_pki() -> (
    rcgen::Certificate,
    support::tempfile_path::TempPath,
    support::tempfile_path::TempPath,
    support::tempfile_path::TempPath,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let cert = support::tempfile_path::TempPath::new("lethe-cert", "pem");
    let key = support::tempfile_path::TempPath::new("lethe-key", "pem");
    let ca_file = support::tempfile_path::TempPath::new("lethe-ca", "pem");
    std::fs::write(&cert.0, leaf.pem()).unwrap();
    std::fs::write(&key.0, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_file.0, ca.pem()).unwrap();
    (ca, cert, key, ca_file)
}

#[test]
fn upstream_tls_with_an_operator_ca() {
    let m = mock(&[]);
    let (_ca, cert, key, ca_file) = test_pki();
    // The back Lethe serves TLS 1.3 in front of the mock; the front one trusts the test CA.
    let back_config = format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.0.display(),
        key.0.display()
    );
    let upstream = format!("http://{}", m.addr);
    let (back, _f1) = lethe(Some(&back_config), &["--openai-upstream", &upstream], &[]);
    let back_url = format!(
        "https://localhost:{}",
        back.addr.rsplit(':').next().unwrap()
    );
    let (front, _f2) = lethe(
        Some(&format!(
            "[upstream]\nextra_ca = \"{}\"\n",
            ca_file.0.display()
        )),
        &["--openai-upstream", &back_url],
        &[],
    );
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": format!("hi {EMAIL}")}]});
    let reply = post(&front.addr, "/v1/chat/completions", &[], &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "echo: hi [EMAIL]"
    );
    // Without the CA the same upstream is refused: its certificate is not trusted.
    let (untrusting, _) = lethe(None, &["--openai-upstream", &back_url], &[]);
    assert_eq!(
        post(&untrusting.addr, "/v1/chat/completions", &[], &body).status,
        502
    );
}

#[test]
fn held_text_is_flushed_in_one_extra_delta_right_before_the_event_that_ends_its_block() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    // The reply ends in a phone number: its digits stay held until the stream says the
    // choice or block is over.
    let reply = encoded(&format!("call {PHONE}"));
    let headers = [
        ("x-mock-reply", reply.as_str()),
        ("x-mock-delta-chars", "1"),
    ];
    let chat = post(
        &l.addr,
        "/v1/chat/completions",
        &headers,
        &json!({"model": "m", "stream": true, "messages": []}),
    );
    let events: Vec<Value> = chat
        .events()
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let finish = events
        .iter()
        .position(|e| e["choices"][0]["finish_reason"] == "stop")
        .unwrap();
    assert_eq!(
        events[finish - 1]["choices"][0]["delta"]["content"],
        "[PHONE]"
    );
    assert_eq!(
        events[finish - 1]["choices"][0]["finish_reason"],
        Value::Null
    );
    let before: String = events[..finish - 1]
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        before, "call ",
        "nothing of the number left before the flush"
    );

    let messages = post(
        &l.addr,
        "/v1/messages",
        &headers,
        &json!({"model": "m", "stream": true, "max_tokens": 5, "messages": []}),
    );
    let events = messages.events();
    let stop = events
        .iter()
        .position(|(name, _)| name.as_deref() == Some("content_block_stop"))
        .unwrap();
    let (name, data) = &events[stop - 1];
    assert_eq!(name.as_deref(), Some("content_block_delta"));
    let flushed: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        flushed["delta"],
        json!({"type": "text_delta", "text": "[PHONE]"})
    );
}

/// What a bare provider sends for one request: the bytes, and whether it then closes the
/// connection without saying so.
type Script = dyn Fn(usize, bool) -> (Vec<u8>, bool) + Send + Sync;

/// A bare HTTP/1.1 provider on 127.0.0.1 that counts the connections it accepts, and Lethe in
/// front of it. `script` gets the request's number (from 0, over all connections) and whether
/// it asked for a stream, and says what to answer.
fn raw_provider(
    script: Box<Script>,
) -> (
    support::Proc,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let served = Arc::new(AtomicUsize::new(0));
    let script: Arc<Script> = Arc::from(script);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let (served, script) = (served.clone(), script.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let streamed = String::from_utf8_lossy(&body).contains("\"stream\":true");
                    let (answer, close) = script(served.fetch_add(1, Ordering::SeqCst), streamed);
                    if writer.write_all(&answer).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    let upstream = format!("http://{addr}");
    let (l, _) = lethe(None, &["--openai-upstream", &upstream], &[]);
    (l, accepted)
}

/// The SSE events of a short chat stream saying "one two three", then `[DONE]`.
fn three_events() -> Vec<String> {
    let mut events: Vec<String> = ["one ", "two ", "three"]
        .iter()
        .map(|word| {
            format!(
                "data: {}\n\n",
                json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]})
            )
        })
        .collect();
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// A small chat completion saying "fine".
fn fine_json() -> String {
    json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}]}).to_string()
}

/// `raw_provider` answering every request with [`fine_json`], or with [`three_events`] chunked
/// one event per chunk when the request asks for a stream; with `close_after_answer` it closes
/// each connection right after its answer (as a provider whose keep-alive timer ran out while
/// the connection sat idle).
fn counting_provider(
    close_after_answer: bool,
) -> (
    support::Proc,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    raw_provider(Box::new(move |_, streamed| {
        let answer = if streamed {
            let chunks: String = three_events()
                .iter()
                .map(|event| format!("{:x}\r\n{event}\r\n", event.len()))
                .collect();
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{chunks}0\r\n\r\n")
        } else {
            let json = fine_json();
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}", json.len())
        };
        (answer.into_bytes(), close_after_answer)
    }))
}

#[test]
fn a_provider_s_cookies_do_not_reach_the_client() {
    let (l, _) = raw_provider(Box::new(|_, _| {
        let json = fine_json();
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nset-cookie: __cf_bm=abc; path=/\r\nx-request-id: req_1\r\ncontent-length: {}\r\n\r\n{json}", json.len());
        (answer.into_bytes(), false)
    }));
    let reply = chat_through(&l, false);
    assert!(
        !reply.headers.contains_key("set-cookie"),
        "{:?}",
        reply.headers
    );
    assert_eq!(
        reply.headers.get("x-request-id").map(String::as_str),
        Some("req_1")
    );
}

/// A chat request through `l`, which must succeed.
fn chat_through(l: &support::Proc, stream: bool) -> support::Reply {
    let body =
        json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&l.addr, "/v1/chat/completions", &[], &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
}

#[test]
fn upstream_connections_are_reused_once_their_answer_was_read_to_the_end() {
    use std::sync::atomic::Ordering;
    let (l, accepted) = counting_provider(false);
    for stream in [false, true, false, true, true, false] {
        let reply = chat_through(&l, stream);
        if stream {
            assert!(reply.text().contains("three"), "{}", reply.text());
            assert!(reply.text().contains("[DONE]"), "{}", reply.text());
        } else {
            assert_eq!(reply.json()["choices"][0]["message"]["content"], "fine");
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection served every request"
    );
}

#[test]
fn an_idle_connection_the_provider_closed_is_not_used_again() {
    use std::sync::atomic::Ordering;
    let (l, accepted) = counting_provider(true);
    for stream in [false, true, false, true] {
        chat_through(&l, stream);
        // The provider's close reaches Lethe while the connection sits idle.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "a new connection for every request"
    );
}

#[test]
fn upstream_http1_framing_is_read_strictly() {
    use std::sync::atomic::Ordering;
    let json = fine_json();
    let sse = three_events().concat();
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n";
    // (what the provider sends, whether it closes, what the client must get, whether the
    // connection may serve the next request)
    let cases: Vec<(String, bool, Option<&str>, bool)> = vec![
        // An interim answer first.
        (format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{json}", json.len()), false, Some("fine"), true),
        // HTTP/1.0, no length: the body runs to the close.
        (format!("HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{json}"), true, Some("fine"), false),
        // Every event in one chunk, with an extension and trailers.
        (format!("{head}transfer-encoding: chunked\r\n\r\n{:x};ext=1\r\n{sse}\r\n0\r\nx-t: 1\r\n\r\n", sse.len()), false, Some("one two three"), true),
        // Chunks cut across events; a length beside the coding forbids reuse.
        (format!("{head}content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n7\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n", &sse[..7], sse.len() - 7, &sse[7..]), false, Some("one two three"), false),
        // Asked to close.
        (format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{json}", json.len()), true, Some("fine"), false),
        // A body shorter than its length, a broken head, a broken chunk: 502, never the text.
        (format!("HTTP/1.1 200 OK\r\ncontent-length: 900\r\n\r\n{json}"), true, None, false),
        (format!("HTTP/1.1 200 OK\r\nbad header\r\ncontent-length: {}\r\n\r\n{json}", json.len()), true, None, false),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_owned(), true, None, false),
    ];
    let script: Vec<(Vec<u8>, bool)> = cases
        .iter()
        .map(|(wire, close, ..)| (wire.clone().into_bytes(), *close))
        .collect();
    let (l, accepted) = raw_provider(Box::new(move |n, _| script[n].clone()));
    let mut connections = 1;
    for (i, (_, _, want, reused)) in cases.iter().enumerate() {
        let stream = want.is_some_and(|w| w.contains("three"));
        let body = json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let reply = post(&l.addr, "/v1/chat/completions", &[], &body);
        match want {
            Some(text) if stream => {
                assert_eq!(reply.status, 200, "case {i}");
                let said: String = reply
                    .text()
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .filter_map(|data| serde_json::from_str::<Value>(data).ok())
                    .filter_map(|v| {
                        v["choices"][0]["delta"]["content"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect();
                assert_eq!(said, *text, "case {i}");
                assert!(reply.text().contains("[DONE]"), "case {i}");
            }
            Some(text) => {
                assert_eq!(reply.status, 200, "case {i}: {}", reply.text());
                assert_eq!(
                    reply.json()["choices"][0]["message"]["content"],
                    *text,
                    "case {i}"
                );
            }
            None => {
                assert_eq!(reply.status, 502, "case {i}");
                assert!(!reply.text().contains("fine"), "case {i}");
            }
        }
        // Give a close time to reach Lethe, then count the connections used so far.
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(accepted.load(Ordering::SeqCst), connections, "case {i}");
        if !reused {
            connections += 1;
        }
    }
}

/// A `raw_provider` answering every request with the SSE `events` as they are, one chunk each.
fn sse_provider(events: Vec<String>) -> support::Proc {
    raw_provider(Box::new(move |_, _| {
        let chunks: String = events
            .iter()
            .map(|event| format!("{:x}\r\n{event}\r\n", event.len()))
            .collect();
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{chunks}0\r\n\r\n");
        (answer.into_bytes(), false)
    }))
    .0
}

fn chat_event(delta: &str) -> String {
    format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":null}}]}}\n\n")
}

#[test]
fn values_split_across_odd_stream_events_never_reach_the_client() {
    let end = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    let done = "data: [DONE]\n\n";
    // (events, what the client must read in the deltas, whether the stream must fail)
    let cases: Vec<(Vec<String>, &str, bool)> = vec![
        // Legacy function calling and audio transcripts.
        (
            vec![
                chat_event(r#"{"function_call":{"name":"send","arguments":"{\"to\":\"jane.doe"}}"#),
                chat_event(r#"{"function_call":{"arguments":"@example.com\"}"}}"#),
                chat_event(r#"{"audio":{"transcript":"mail jane.doe"}}"#),
                chat_event(r#"{"audio":{"transcript":"@example.com"}}"#),
                end.into(),
                done.into(),
            ],
            "{\"to\":\"[EMAIL]\"}mail [EMAIL]",
            false,
        ),
        // A lone surrogate, then the rest of the address; and one before an address.
        (
            vec![
                chat_event(r#"{"content":"hi \ud83d x jane.doe"}"#),
                chat_event(r#"{"content":"@example.com "}"#),
                chat_event(r#"{"content":"\ude00@example.com"}"#),
                end.into(),
                done.into(),
            ],
            "hi \u{FFFD} x [EMAIL] \u{FFFD}@example.com",
            false,
        ),
        // Malformed events: the stream ends with the error event, nothing of them passes.
        (
            vec![
                chat_event(r#"{"content":"mail "}"#),
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"jane.doe\"}} x\n\n"
                    .into(),
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"@example.com\"}} x\n\n"
                    .into(),
                end.into(),
                done.into(),
            ],
            "mail ",
            true,
        ),
        // `event:` and `id:` values.
        (
            vec![
                format!(
                    "event: {EMAIL}\nid: {EMAIL}\n{}",
                    chat_event(r#"{"content":"hi"}"#)
                ),
                end.into(),
                done.into(),
            ],
            "hi",
            false,
        ),
    ];
    for (i, (events, want, fails)) in cases.into_iter().enumerate() {
        let l = sse_provider(events);
        let body =
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let reply = post(&l.addr, "/v1/chat/completions", &[], &body);
        assert_eq!(reply.status, 200, "case {i}");
        let raw = reply.text();
        assert_clean(&raw, &format!("case {i}"));
        let events: Vec<Value> = reply
            .events()
            .iter()
            .filter(|(_, d)| d != "[DONE]")
            .map(|(_, d)| serde_json::from_str(d).unwrap_or_else(|_| panic!("case {i}: {d}")))
            .collect();
        let said: String = events
            .iter()
            .flat_map(|e| {
                let delta = &e["choices"][0]["delta"];
                [
                    delta["content"].as_str(),
                    delta["function_call"]["arguments"].as_str(),
                    delta["audio"]["transcript"].as_str(),
                ]
            })
            .flatten()
            .collect();
        assert_eq!(said, want, "case {i}: {raw}");
        let failed = events
            .last()
            .is_some_and(|e| e["error"]["code"] == "upstream_stream_failed");
        assert_eq!(failed, fails, "case {i}: {raw}");
    }
}
