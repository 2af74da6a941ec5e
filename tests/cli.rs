//! `lethe scrub`, run as a process: what it prints, how it fails, and that it writes as it reads.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `lethe scrub ARGS` with all three standard streams piped.
fn spawn_scrub(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("scrub")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `lethe scrub ARGS` with `input` on stdin, to the end.
fn scrub(args: &[&str], input: &[u8]) -> Output {
    let mut child = spawn_scrub(args);
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: a large input would fill the pipe while the output is unread.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn the_readme_example_prints_what_it_promises() {
    let out = scrub(&[], b"card 4111 1111 1111 1111, a@b.io\n");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "card **** **** **** 1111, [EMAIL]\n");
    assert!(out.stderr.is_empty());
}

#[test]
fn types_and_styles_are_chosen_by_flag() {
    let input =
        b"card 4111 1111 1111 1111, mail jane.doe@example.com, again jane.doe@example.com\n";
    let out = scrub(&["--types", "email"], input);
    assert_eq!(
        text(&out.stdout),
        "card 4111 1111 1111 1111, mail [EMAIL], again [EMAIL]\n"
    );
    let out = scrub(&["--style", "placeholder"], input);
    assert_eq!(
        text(&out.stdout),
        "card [CREDIT_CARD_1], mail [EMAIL_1], again [EMAIL_1]\n",
        "the same value gets the same placeholder"
    );
    let out = scrub(&["--style", "label", "--types", "credit_card,email"], input);
    assert_eq!(
        text(&out.stdout),
        "card [CREDIT_CARD], mail [EMAIL], again [EMAIL]\n"
    );
    let out = scrub(&["--types", "all", "--style", "mask"], b"ssn 123-45-6789\n");
    assert!(out.status.success());
    // Fewer than ten digits: masked whole (the README's masking table).
    assert_eq!(text(&out.stdout), "ssn ***-**-****\n");
}

#[test]
fn lines_and_text_without_findings_pass_byte_for_byte() {
    let input = "first line\r\n\n  indented, no PII here: v1.2.3 at 10:30 \u{e9}t\u{e9} \u{1f600}\nlast line without newline, mail a@b.io";
    let out = scrub(&[], input.as_bytes());
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        input.replace("a@b.io", "[EMAIL]"),
        "every line ending and character kept"
    );
    let out = scrub(&[], b"");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_and_bad_flags_get_one_line_and_a_non_zero_exit() {
    // Invalid UTF-8 after some text: the error names no content.
    let out = scrub(&[], b"mail jane.doe@example.com \xff\xfe secret tail\n");
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), "lethe: input is not valid UTF-8\n");
    assert!(!text(&out.stdout).contains("jane.doe"));
    // A character cut at the very end of the input.
    let out = scrub(&[], "caf\u{e9}".as_bytes().split_last().unwrap().1);
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), "lethe: input is not valid UTF-8\n");
    for args in [
        &["--style", "shout"][..],
        &["--types", "credit_card,nonsense"],
        &["--no-such-flag"],
        &["--dictionary", "/nonexistent/terms.txt"],
    ] {
        let out = scrub(args, b"a@b.io\n");
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("lethe: "), "{err:?}");
        assert!(!err.contains("a@b.io"));
        assert!(!text(&out.stdout).contains("a@b.io"));
    }
}

#[test]
fn a_dictionary_file_adds_whole_word_terms() {
    let dir = std::env::temp_dir().join(format!("lethe-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let terms = dir.join("terms.txt");
    std::fs::write(&terms, "Project Nightjar\n\n  Acme Corp  \n").unwrap();
    let out = scrub(
        &["--dictionary", terms.to_str().unwrap()],
        b"project nightjar for ACME CORP, not acme corporation\n",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "[TERM] for [TERM], not acme corporation\n"
    );
}

/// Output follows each read: a line comes out while stdin is still open, and a value cut
/// between two writes is masked whole.
#[test]
fn it_writes_as_it_reads() {
    let mut child = spawn_scrub(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let wait_for = |want: &str, got: &mut Vec<u8>| {
        while !text(got).ends_with(want) {
            let chunk = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no output yet; have {:?}", text(got)));
            got.extend_from_slice(&chunk);
        }
    };
    stdin.write_all(b"first: mail jane.doe@exa").unwrap();
    stdin.flush().unwrap();
    wait_for("first: mail ", &mut got);
    stdin.write_all(b"mple.com\nsecond line\n").unwrap();
    stdin.flush().unwrap();
    wait_for("second line\n", &mut got);
    assert_eq!(text(&got), "first: mail [EMAIL]\nsecond line\n");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
