//! Smoke test of the mock provider binary: it starts, prints its port, answers the wire formats
//! over raw HTTP/1.1, honours a few control headers and records what it received.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The running mock; killed when dropped.
struct Mock {
    child: Child,
    port: u16,
}

impl Mock {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lethe-mock-provider"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mock provider starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("port line");
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { child, port }
    }

    /// Sends one request (closing the connection after it) and returns the response head and
    /// its raw body (still chunked, if it was; bytes, as 1-byte chunks can split characters).
    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (String, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: mock\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).expect("request sent");
        let mut response = Vec::new();
        // An aborted response ends in a reset rather than a clean close: keep what arrived.
        let _ = stream.read_to_end(&mut response);
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("complete head");
        let body = response.split_off(split + 4);
        (String::from_utf8(response).expect("UTF-8 head"), body)
    }

    /// Like [`Mock::raw`], for responses whose body is UTF-8 as sent.
    fn text(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (String, String) {
        let (head, body) = self.raw(method, path, headers, body);
        (head, String::from_utf8(body).expect("UTF-8 body"))
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of an HTTP/1.1 response with chunked transfer encoding, de-chunked.
fn dechunk(body: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = std::str::from_utf8(&rest[..line]).expect("ASCII size");
        let size = usize::from_str_radix(size, 16).expect("hex chunk size");
        if size == 0 {
            return String::from_utf8(out).expect("UTF-8 body");
        }
        let data = &rest[line + 2..];
        out.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
}

#[test]
fn answers_records_and_breaks_on_request() {
    let mock = Mock::start();
    let chat = r#"{"model":"m-1","messages":[{"role":"user","content":"hi there"}]}"#;

    // Echo, non-streamed, with a content-length.
    let (head, body) = mock.text("POST", "/v1/chat/completions", &[], chat);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
    let length = format!("content-length: {}\r\n", body.len());
    assert!(head.contains(&length), "{head}");
    assert!(body.contains(r#""content":"echo: hi there""#), "{body}");
    assert!(body.contains(r#""model":"m-1""#), "{body}");

    // Anthropic stream, one byte per write: the events arrive whole and in order.
    let messages = r#"{"model":"c-1","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let (head, body) = mock.raw(
        "POST",
        "/v1/messages",
        &[
            ("x-mock-reply", "caf%C3%A9 ok"),
            ("x-mock-write-bytes", "1"),
        ],
        messages,
    );
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        body.starts_with(b"1\r\ne\r\n1\r\nv\r\n"),
        "one byte per chunk"
    );
    let events = dechunk(&body);
    let order: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        order,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert!(events.contains(r#""text":"café""#), "{events}");
    assert!(events.contains(r#""text":" ok""#), "{events}");

    // Failing after 10 bytes: exactly 10 body bytes in one chunk, and no terminating chunk.
    let stream_chat = r#"{"stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let (_, body) = mock.text(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-fail-after-bytes", "10")],
        stream_chat,
    );
    assert_eq!(body, "A\r\ndata: {\"id\r\n");

    // Provider-shaped errors.
    let status = [("x-mock-status", "529")];
    let (head, body) = mock.text("POST", "/v1/messages", &status, messages);
    assert!(head.starts_with("HTTP/1.1 529 "), "{head}");
    assert!(body.starts_with(r#"{"type":"error","error":{"type":"overloaded_error","#));
    let (head, body) = mock.text("GET", "/v1/nope", &[], "");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert!(body.contains(r#""type":"invalid_request_error""#), "{body}");

    // The recorder saw the requests above, headers lowercased, bodies as strings.
    let (_, body) = mock.text("GET", "/__mock/requests", &[], "");
    let recorded: serde_json::Value = serde_json::from_str(&body).expect("JSON list");
    let recorded = recorded.as_array().expect("array");
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[0]["method"], "POST");
    assert_eq!(recorded[0]["path"], "/v1/chat/completions");
    assert_eq!(recorded[0]["body"], chat);
    assert_eq!(recorded[1]["headers"]["x-mock-write-bytes"], "1");
    let (head, _) = mock.raw("DELETE", "/__mock/requests", &[], "");
    assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
    let (_, body) = mock.text("GET", "/__mock/requests", &[], "");
    assert_eq!(body, "[]");
}
