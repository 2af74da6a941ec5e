//! The panic hook prints one static line and nothing of the payload, for a panic on a thread
//! and for one inside a Tokio task (Tokio catches it and keeps the payload in a `JoinError`,
//! which nothing prints).
//!
//! The test runs itself again as a child process with the hook installed, so the child's
//! whole stderr can be checked.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

const CANARY: &str = "zqpaniccanary-4111-1111-1111-1111";
const CHILD: &str = "LETHE_PANIC_TEST_CHILD";

#[test]
fn panic_payloads_never_reach_stderr() {
    if std::env::var_os(CHILD).is_some() {
        panic_in_a_task_and_a_thread();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "panic_payloads_never_reach_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "full")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}{stderr}");
    assert!(!stdout.contains("zqpanic") && !stderr.contains("zqpanic"));
    assert!(!stderr.contains("panicked at"), "no location: {stderr}");
    assert_eq!(
        stderr.matches("lethe: internal error").count(),
        2,
        "one line per panic: {stderr}"
    );
}

fn panic_in_a_task_and_a_thread() {
    lethe::cli::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let joined = runtime.block_on(async { tokio::spawn(async { panic!("{CANARY}") }).await });
    assert!(joined.unwrap_err().is_panic());
    let joined = std::thread::spawn(|| panic!("{CANARY}")).join();
    assert!(joined.is_err());
}
