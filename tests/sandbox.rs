//! The sandbox as a running `lethe serve` shows it: every thread under seccomp with
//! no_new_privs, no file syscall under traffic (strace), `lethe sandbox-check` green, names
//! resolved after lockdown. Needs Linux with seccomp; the strace test needs strace (installed
//! by scripts/setup-sandbox-tests) and ptrace rights.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{lethe, lethe_for, mock, post, Proc};

/// One plain and one streamed chat completion, and an Anthropic stream, through `l`.
fn traffic(l: &Proc) {
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "mail jane.doe@example.com"}]});
    let reply = post(&l.addr, "/v1/chat/completions", &[], &chat);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("[EMAIL]"), "{}", reply.text());
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let reply = post(&l.addr, "/v1/chat/completions", &[], &streamed);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.events().len() > 2, "{}", reply.text());
    let messages = json!({"model": "m", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]});
    let reply = post(
        &l.addr,
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        &messages,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// `/proc/PID/task/*/status` of every thread.
fn thread_status(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("status")).ok())
        .collect()
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim_start_matches(':').trim())
}

#[test]
fn every_thread_is_under_seccomp_with_no_new_privs_and_no_core_dumps() {
    let m = mock(&[]);
    let l = lethe_for(&m);
    traffic(&l);
    let pid = l.child.id();
    let threads = thread_status(pid);
    assert!(threads.len() > 1, "a multi-threaded runtime");
    for status in &threads {
        let name = field(status, "Name").unwrap_or("?");
        assert_eq!(field(status, "Seccomp"), Some("2"), "thread {name}");
        assert_eq!(field(status, "NoNewPrivs"), Some("1"), "thread {name}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    for name in ["Max core file size", "Max file size"] {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        let values: Vec<&str> = line[name.len()..].split_whitespace().take(2).collect();
        assert_eq!(values, ["0", "0"], "{line}");
    }
    // Still serving after all that.
    traffic(&l);
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until every thread of `pid` is traced.
fn wait_traced(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let threads = thread_status(pid);
        if threads
            .iter()
            .all(|s| field(s, "TracerPid").is_some_and(|t| t != "0"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("strace did not attach to every thread");
}

#[test]
fn no_file_syscall_under_traffic_after_lockdown() {
    if !strace_available() {
        eprintln!(
            "\n!!! SKIPPED no_file_syscall_under_traffic_after_lockdown: strace is not installed \
             (scripts/setup-sandbox-tests installs it) !!!\n"
        );
        return;
    }
    let m = mock(&[]);
    let l = lethe_for(&m);
    traffic(&l);
    let pid = l.child.id();
    let out = support::tempfile_path::TempPath::new("lethe-strace", "txt");
    // Every syscall that takes a path or starts a program, and accept4 to prove tracing works.
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=%file,accept4,clone,clone3,fork,vfork",
        ])
        .arg("-o")
        .arg(&out.0)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_traced(pid);
    for _ in 0..3 {
        traffic(&l);
    }
    let tracer = rustix::process::Pid::from_raw(strace.id() as i32).unwrap();
    rustix::process::kill_process(tracer, rustix::process::Signal::INT).unwrap();
    strace.wait().unwrap();
    let trace = std::fs::read_to_string(&out.0).unwrap();
    let calls: Vec<&str> = trace
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, call)| call).trim_start())
        .filter(|call| !call.starts_with("---") && !call.starts_with("+++"))
        .collect();
    assert!(
        calls.iter().any(|c| c.starts_with("accept4(")),
        "strace saw no accept4: {trace}"
    );
    let others: Vec<&&str> = calls
        .iter()
        .filter(|c| !c.starts_with("accept4(") && !c.starts_with("<... accept4 resumed>"))
        .collect();
    assert!(others.is_empty(), "file or process syscalls: {others:#?}");
}

fn sandbox_check(config: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lethe"));
    cmd.arg("sandbox-check");
    if let Some(path) = config {
        cmd.arg("--config").arg(path);
    }
    let output = cmd.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn assert_every_check_blocked(ok: bool, out: &str, how: &str) {
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let (summary, checks) = lines.split_last().unwrap();
    for what in [
        "open a file for writing",
        "open a file for reading",
        "execute a program",
        "start a process",
        "open a raw IP socket",
        "map executable memory",
        "make writable memory executable",
    ] {
        let line = checks
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line for {what}: {out}"));
        assert!(
            line.starts_with("blocked  ") && line.contains(how),
            "{line}"
        );
    }
    assert_eq!(
        summary
            .split_once(" blocked")
            .map(|(n, _)| n.to_owned())
            .unwrap(),
        format!("{0} of {0}", checks.len()),
        "{out}"
    );
}

#[test]
fn sandbox_check_blocks_every_forbidden_operation() {
    let (ok, out) = sandbox_check(None);
    assert_every_check_blocked(ok, &out, "(killed by seccomp)");
}

#[test]
fn sandbox_check_with_the_errno_action_sees_every_call_refused() {
    let config = support::tempfile_path::TempPath::new("lethe-errno", "toml");
    std::fs::write(&config.0, "[sandbox]\nseccomp_action = \"errno\"\n").unwrap();
    let (ok, out) = sandbox_check(Some(&config.0));
    assert_every_check_blocked(ok, &out, "(refused)");
}

#[test]
fn sandbox_check_reports_what_the_log_action_allows() {
    let config = support::tempfile_path::TempPath::new("lethe-log", "toml");
    std::fs::write(&config.0, "[sandbox]\nseccomp_action = \"log\"\n").unwrap();
    let (ok, out) = sandbox_check(Some(&config.0));
    assert!(!ok, "the log action blocks nothing by itself: {out}");
    assert!(out.contains("ALLOWED  map executable memory"), "{out}");
}

#[test]
fn an_upstream_host_name_resolves_after_lockdown() {
    let m = mock(&[]);
    let port = m.addr.rsplit_once(':').unwrap().1;
    let config = format!(
        "[[route]]\nname = \"o\"\nformat = \"openai\"\nbase_url = \"http://localhost:{port}\"\nkey = \"passthrough\"\n"
    );
    let (l, _file) = lethe(Some(&config), &[], &[]);
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&l.addr, "/v1/chat/completions", &[], &chat);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn lock_memory_locks_pages() {
    let m = mock(&[]);
    let config = format!(
        "[sandbox]\nlock_memory = true\n[[route]]\nname = \"o\"\nformat = \"openai\"\nbase_url = \"http://{}\"\nkey = \"passthrough\"\n",
        m.addr
    );
    if !rustix::process::geteuid().is_root() {
        eprintln!("\n!!! SKIPPED lock_memory test: needs root (CAP_IPC_LOCK) !!!\n");
        return;
    }
    let (l, _file) = lethe(Some(&config), &[], &[]);
    traffic_plain(&l);
    let status = std::fs::read_to_string(format!("/proc/{}/status", l.child.id())).unwrap();
    let locked = field(&status, "VmLck").unwrap();
    assert_ne!(locked, "0 kB", "VmLck: {locked}");
}

fn traffic_plain(l: &Proc) {
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&l.addr, "/v1/chat/completions", &[], &chat);
    assert_eq!(reply.status, 200, "{}", reply.text());
}
