//! Nothing of what passed through Lethe stays in its memory or reaches its output.
//!
//! 200 chat requests, each with a unique canary word the scrubber leaves alone, go through a
//! real `lethe serve` to the mock provider, which echoes it back: one-shot and keep-alive
//! connections, streamed and not, OpenAI and Anthropic formats. Once the clients have closed
//! their connections and the upstream pool has dropped its idle ones, every readable mapping of
//! the process is read through `/proc/PID/mem`: no copy of any canary may be left. Lethe runs with
//! `RUST_LOG=trace` and `RUST_BACKTRACE=full`, and its stdout and stderr must not hold a canary
//! either: besides the start-up line it prints nothing.
//!
//! Reading another process's memory needs root or ptrace rights over it (the suite runs as
//! root). `LETHE_SCAN_BIN=/path/to/lethe` scans another build instead, to measure what a plain
//! allocator leaves behind; the test prints what it found before it asserts.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::tempfile_path::TempPath;

/// Every canary starts with this; random lowercase letters follow.
const PREFIX: &[u8] = b"zqcanary";
const SUFFIX_LEN: usize = 12;
/// Idle pooled upstream connections are closed after this (set in the test's config).
const POOL_IDLE_MS: u64 = 200;

/// Canary words: letters only, so no detector (numbers, emails, keys) touches them.
struct Canaries {
    state: u64,
    made: Vec<String>,
}

impl Canaries {
    fn new() -> Canaries {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ u64::from(std::process::id());
        Canaries {
            state: seed | 1,
            made: Vec::new(),
        }
    }

    fn next(&mut self) -> String {
        let mut word = String::from_utf8(PREFIX.to_vec()).unwrap();
        for _ in 0..SUFFIX_LEN {
            // xorshift64
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            word.push(char::from(b'a' + (self.state % 26) as u8));
        }
        self.made.push(word.clone());
        word
    }
}

/// One request: format, streamed or not, and its canary.
fn body(anthropic: bool, stream: bool, canary: &str) -> (&'static str, String) {
    let text = format!("please remember the word {canary} for later");
    if anthropic {
        let body = json!({"model": "claude-test", "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": text}]});
        ("/v1/messages", body.to_string())
    } else {
        let body = json!({"model": "gpt-test", "stream": stream,
            "messages": [{"role": "user", "content": text}]});
        ("/v1/chat/completions", body.to_string())
    }
}

/// The answer's text: the message of a JSON answer, or the deltas of a stream joined.
fn answer_text(body: &[u8], stream: bool) -> String {
    let text = String::from_utf8_lossy(body);
    if !stream {
        return text.into_owned();
    }
    let mut joined = String::new();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        for piece in [
            &event["choices"][0]["delta"]["content"],
            &event["delta"]["text"],
        ] {
            if let Some(s) = piece.as_str() {
                joined.push_str(s);
            }
        }
    }
    joined
}

/// Sends one request on `stream` (keep-alive) and reads its response whole.
fn exchange(
    stream: &mut BufReader<TcpStream>,
    addr: &str,
    path: &str,
    body: &str,
    close: bool,
) -> (u16, Vec<u8>) {
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: {connection}\r\n\
         content-type: application/json\r\nauthorization: Bearer sk-test\r\n\
         x-api-key: sk-test\r\nanthropic-version: 2023-06-01\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let socket = stream.get_mut();
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(body.as_bytes()).unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        stream.read_line(&mut line).unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = Some(value.parse::<usize>().unwrap());
        } else if name == "transfer-encoding" && value.contains("chunked") {
            chunked = true;
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        stream.read_exact(&mut out).unwrap();
    } else {
        stream.read_to_end(&mut out).unwrap();
    }
    (status, out)
}

fn connect(addr: &str) -> BufReader<TcpStream> {
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    BufReader::new(socket)
}

/// Copies of canaries in every readable mapping of `pid`: (copies, distinct canaries).
fn scan(pid: u32, canaries: &[String]) -> (usize, usize) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = File::open(format!("/proc/{pid}/mem"))
        .expect("reading the process's memory needs root or ptrace rights over it");
    let finder = memchr::memmem::Finder::new(PREFIX);
    let mut found: Vec<Vec<u8>> = Vec::new();
    const CHUNK: u64 = 1 << 20;
    let overlap = (PREFIX.len() + SUFFIX_LEN) as u64;
    let mut buf = vec![0u8; (CHUNK + overlap) as usize];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = fields.nth(3).unwrap_or("");
        if !perms.starts_with('r') || name == "[vvar]" || name == "[vsyscall]" {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut at = start;
        while at < end {
            let len = (end - at).min(CHUNK + overlap) as usize;
            let Ok(n) = mem.read_at(&mut buf[..len], at) else {
                at += CHUNK;
                continue;
            };
            let window = &buf[..n];
            for hit in finder.find_iter(window) {
                // A hit in the overlap is counted by the next chunk.
                if (hit as u64) < CHUNK || at + CHUNK >= end {
                    let tail = &window[hit..(hit + PREFIX.len() + SUFFIX_LEN).min(n)];
                    found.push(tail.to_vec());
                }
            }
            at += CHUNK;
        }
    }
    let mut distinct: Vec<&String> = canaries
        .iter()
        .filter(|c| found.iter().any(|f| f.as_slice() == c.as_bytes()))
        .collect();
    distinct.dedup();
    (found.len(), distinct.len())
}

struct Lethe {
    child: Child,
    addr: String,
    stdout: TempPath,
    stderr: TempPath,
    _config: TempPath,
}

impl Drop for Lethe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_lethe(mock: &support::Proc) -> Lethe {
    let binary =
        std::env::var_os("LETHE_SCAN_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_lethe").into());
    let config = TempPath::new("lethe-memory", "toml");
    std::fs::write(
        &config.0,
        format!("[upstream]\npool_idle_timeout_ms = {POOL_IDLE_MS}\n"),
    )
    .unwrap();
    let stdout = TempPath::new("lethe-memory-stdout", "txt");
    let stderr = TempPath::new("lethe-memory-stderr", "txt");
    let upstream = format!("http://{}", mock.addr);
    let child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config.0)
        .args([
            "--openai-upstream",
            &upstream,
            "--anthropic-upstream",
            &upstream,
        ])
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "full")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout.0).unwrap())
        .stderr(File::create(&stderr.0).unwrap())
        .spawn()
        .expect("spawn lethe");
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let text = std::fs::read_to_string(&stderr.0).unwrap_or_default();
        if let Some(rest) = text.strip_prefix("lethe: serving on http://") {
            if let Some((addr, _)) = rest.split_once('\n') {
                break addr.to_owned();
            }
        }
        assert!(Instant::now() < deadline, "lethe did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    Lethe {
        child,
        addr,
        stdout,
        stderr,
        _config: config,
    }
}

#[test]
fn no_copy_of_any_request_or_answer_stays_in_memory_or_reaches_the_output() {
    let mock = support::mock(&[]);
    let mut lethe = start_lethe(&mock);
    let addr = lethe.addr.clone();
    let mut canaries = Canaries::new();
    let check = |status: u16, answer: &[u8], stream: bool, canary: &str| {
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(answer));
        let text = answer_text(answer, stream);
        assert!(text.contains(canary), "the answer lacks the echo: {text}");
    };
    // 100 requests on connections of their own.
    for i in 0..100 {
        let (anthropic, stream) = (i % 4 >= 2, i % 2 == 1);
        let canary = canaries.next();
        let (path, body) = body(anthropic, stream, &canary);
        let (status, answer) = exchange(&mut connect(&addr), &addr, path, &body, true);
        check(status, &answer, stream, &canary);
    }
    // 100 more on 10 keep-alive connections, used in turns.
    let mut kept: Vec<BufReader<TcpStream>> = (0..10).map(|_| connect(&addr)).collect();
    for i in 0..100 {
        let (anthropic, stream) = (i % 3 == 0, i % 2 == 0);
        let canary = canaries.next();
        let (path, body) = body(anthropic, stream, &canary);
        let (status, answer) = exchange(&mut kept[i % 10], &addr, path, &body, false);
        check(status, &answer, stream, &canary);
    }
    drop(kept);
    assert_eq!(canaries.made.len(), 200);

    // Closed client connections end at once; the upstream pool drops its idle connections
    // after POOL_IDLE_MS (checked on an interval of about the same length).
    std::thread::sleep(Duration::from_millis(POOL_IDLE_MS * 5 + 1000));
    let pid = lethe.child.id();
    let (copies, distinct) = scan(pid, &canaries.made);
    eprintln!(
        "memory scan of lethe (pid {pid}): {copies} copies of {distinct} of the 200 canaries"
    );

    // Drain and exit, then read everything the process printed.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lethe.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stdout = std::fs::read(&lethe.stdout.0).unwrap();
    let stderr = std::fs::read(&lethe.stderr.0).unwrap();
    let finder = memchr::memmem::Finder::new(PREFIX);
    assert!(
        finder.find(&stdout).is_none() && finder.find(&stderr).is_none(),
        "a canary reached the output"
    );
    assert!(
        stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&stderr),
        format!("lethe: serving on http://{addr}\n"),
        "stderr holds only the start-up line"
    );
    assert_eq!(copies, 0, "canaries left in lethe's memory");
}
