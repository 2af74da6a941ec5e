//! Lethe as a systemd service: socket activation (`LISTEN_FDS`) and notifications
//! (`NOTIFY_SOCKET`: `READY=1`, `WATCHDOG=1`, `STOPPING=1`), without systemd.
//!
//! The test binds the listener itself and hands it to a shell as its standard input; the shell
//! moves it to fd 3, sets `LISTEN_PID` to its own pid and execs `lethe serve`, which keeps that
//! pid: what systemd does, with no unsafe code in the test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::tempfile_path::TempPath;

/// Starts `lethe serve` through `sh` with `env`, the listener (if any) as fd 3; returns the
/// child and the address from its start-up line.
fn spawn(listener: Option<TcpListener>, upstream: &str, env: &[(&str, &str)]) -> (Child, String) {
    let script = r#"exec 3<&0 0</dev/null
if [ -n "$ACTIVATE" ]; then export LISTEN_FDS=1 LISTEN_PID=$$; fi
unset ACTIVATE
exec "$0" serve --listen 127.0.0.1:0 --openai-upstream "$1" --anthropic-upstream "$1""#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_lethe"))
        .arg(upstream)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match listener {
        Some(listener) => {
            cmd.stdin(Stdio::from(OwnedFd::from(listener)))
                .env("ACTIVATE", "1");
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn sh");
    let addr = support::serving_addr(child.stderr.take().unwrap());
    (child, addr)
}

/// Notifications received until `until` is seen (or 10 s pass).
fn messages_until(socket: &UnixDatagram, until: &str, seen: &mut Vec<String>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while !seen.iter().any(|m| m.lines().any(|l| l == until)) {
        assert!(
            Instant::now() < deadline,
            "no {until} among {seen:?} within 10 s"
        );
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "lethe did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_on_the_socket_systemd_passes_and_notifies_ready_watchdog_and_stopping() {
    let mock = support::mock(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let passed = listener.local_addr().unwrap().to_string();
    let notify_path = TempPath::new("lethe-notify", "sock");
    let notify = UnixDatagram::bind(&notify_path.0).unwrap();
    let (mut child, addr) = spawn(
        Some(listener),
        &format!("http://{}", mock.addr),
        &[
            ("NOTIFY_SOCKET", notify_path.0.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    assert_eq!(addr, passed, "lethe serves the passed socket, not --listen");

    let mut seen = Vec::new();
    messages_until(&notify, "READY=1", &mut seen);
    let reply = support::post(
        &addr,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-test")],
        &json!({"model": "m", "messages": [{"role": "user", "content": "mail jane@example.com"}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("[EMAIL]"));
    messages_until(&notify, "WATCHDOG=1", &mut seen);

    let status = terminate(&mut child);
    messages_until(&notify, "STOPPING=1", &mut seen);
    assert!(status.success(), "exit status {status}");
    let ready = seen.iter().position(|m| m.starts_with("READY=1")).unwrap();
    let stopping = seen
        .iter()
        .position(|m| m.starts_with("STOPPING=1"))
        .unwrap();
    assert!(ready < stopping, "{seen:?}");
}

#[test]
fn notifies_an_abstract_socket_and_binds_its_own_listener_without_listen_fds() {
    let mock = support::mock(&[]);
    let name = format!("lethe-test-notify-{}", std::process::id());
    let notify = {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&address).unwrap()
    };
    let (mut child, addr) = spawn(
        None,
        &format!("http://{}", mock.addr),
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
    );
    let mut seen = Vec::new();
    messages_until(&notify, "READY=1", &mut seen);
    assert_eq!(
        support::request(&addr, "GET", "/healthz", &[], b"").status,
        200
    );
    assert!(
        !seen.iter().any(|m| m.contains("WATCHDOG=1")),
        "no watchdog without WATCHDOG_USEC: {seen:?}"
    );
    assert!(terminate(&mut child).success());
    messages_until(&notify, "STOPPING=1", &mut seen);
}

#[test]
fn an_unreachable_notify_socket_stops_the_start() {
    let missing = TempPath::new("lethe-notify-missing", "sock");
    let out = Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &missing.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "lethe: cannot connect to NOTIFY_SOCKET\n"
    );
}
