//! Shared test harness: real processes on 127.0.0.1 and a minimal blocking HTTP/1.1 client.

#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the mock provider on a free port.
pub fn mock(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lethe-mock-provider"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mock provider");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("mock port line")
        .to_owned();
    Proc { child, addr }
}

/// Starts `lethe serve` on a free port with `args` (and a config file with `config`, if any).
pub fn lethe(
    config: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Proc, Option<tempfile_path::TempPath>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lethe"));
    cmd.arg("serve").arg("--listen").arg("127.0.0.1:0");
    let file = config.map(|text| {
        let path = tempfile_path::TempPath::new("lethe-test", "toml");
        std::fs::write(&path.0, text).unwrap();
        cmd.arg("--config").arg(&path.0);
        path
    });
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lethe");
    let addr = serving_addr(child.stderr.take().unwrap());
    (Proc { child, addr }, file)
}

/// Reads Lethe's start-up line (`lethe: serving on SCHEME://ADDR`) from its stderr and returns
/// the address.
pub fn serving_addr(stderr: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("lethe: serving on ")
        .and_then(|url| url.split_once("://"))
        .map(|(_, addr)| addr.to_owned())
        .unwrap_or_else(|| panic!("unexpected start-up line: {line}"))
}

/// Starts Lethe in front of `mock` for both formats.
pub fn lethe_for(mock: &Proc) -> Proc {
    let upstream = format!("http://{}", mock.addr);
    lethe(
        None,
        &[
            "--openai-upstream",
            &upstream,
            "--anthropic-upstream",
            &upstream,
        ],
        &[],
    )
    .0
}

pub mod tempfile_path {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A file path removed on drop.
    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn new(stem: &str, ext: &str) -> TempPath {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            TempPath(std::env::temp_dir().join(format!("{stem}-{}-{n}.{ext}", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    /// SSE events as (event name, data).
    pub fn events(&self) -> Vec<(Option<String>, String)> {
        let text = self.text();
        let mut out = Vec::new();
        for block in text.split("\n\n") {
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if !data.is_empty() {
                out.push((name, data.join("\n")));
            }
        }
        out
    }
}

/// Sends one request on a fresh connection and reads the whole response.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    let mut has_type = false;
    for (k, v) in headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() && !has_type {
        head.push_str("content-type: application/json\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

/// POSTs JSON.
pub fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Reply {
    request(addr, "POST", path, headers, body.to_string().as_bytes())
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            break;
        };
        if size == 0 || data.len() < eol + 2 + size {
            out.extend_from_slice(&data[(eol + 2).min(data.len())..data.len().min(eol + 2 + size)]);
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// The requests the mock provider received, oldest first.
pub fn seen(mock: &Proc) -> Vec<serde_json::Value> {
    let reply = request(&mock.addr, "GET", "/__mock/requests", &[], b"");
    match reply.json() {
        serde_json::Value::Array(items) => items,
        other => panic!("unexpected recording: {other}"),
    }
}

/// Forgets what the mock received.
pub fn forget(mock: &Proc) {
    request(&mock.addr, "DELETE", "/__mock/requests", &[], b"");
}
