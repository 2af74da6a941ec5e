//! The scrubber's contract, checked against its own one-shot output as the oracle:
//!
//! * chunk invariance: streamed output equals one-shot output for every way of cutting the
//!   input, including 1-byte cuts and cuts inside multi-byte characters (through `Utf8Input`);
//! * idempotence of the `mask` and `label` styles, for values separated from one another by
//!   whitespace or punctuation (values glued into one token may resolve differently once a
//!   neighbour has become a label);
//! * hold-back never above `HOLD_BOUND`;
//! * placeholders restore to the original text, one-shot and streamed.
//!
//! Inputs are built from fragments that stress the detectors: real entities, look-alikes, partial
//! prefixes, separators and non-ASCII text.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use lethe::scrub::{
    restore, Policy, Scrubber, StreamRestorer, Style, Utf8Input, Vault, HOLD_BOUND,
};
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "4111 1111 1111 1111",
    "4111111111111111",
    "3782-822463-10005",
    "4111 1111 1111 1112",
    "4111 111111 11111 1",
    "123-45-6789",
    "SSN 123456789",
    "a@b.io",
    "Jane.Doe+x@mail.example.com",
    "müller@example.de",
    "(415) 555-0132",
    "+1 415 555 0132",
    "+44 20 7946 0958",
    "415.555.0132 ext. 12",
    "phone 4155550132",
    "+81 3-1234-5678",
    "+7 495 123-45-67",
    "415/555-0132",
    "415-555-0132/0133",
    "(366-966-0150)",
    "social security number is 034585555",
    "no. ",
    "root@",
    "/24",
    "/",
    "/12/27",
    " 12/27",
    "ip:",
    "value:",
    "%eth0",
    "xoxb-",
    "o'brien@example.com",
    "'",
    "A3T0ABCDEFGHIJKLMNOP",
    "10.0.0.1",
    "2001:db8::1",
    "fe80::1",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "sk-proj-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN0123",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "-----BEGIN CERTIFICATE-----",
    "Acme Corp",
    "sk-",
    "eyJ",
    "@",
    "+",
    "(",
    ":",
    "::",
    "1",
    "42",
    "2024-01-15",
    "1.2.3.4.5",
    "550e8400-e29b-41d4-a716-446655440000",
    "version 1.2.3.4",
    "$1,299.99",
    " ",
    "  ",
    "\n",
    ", ",
    ". ",
    "-",
    "the ",
    "hello",
    "é",
    "日本",
    "🙂",
    "ext",
    "x",
    "[EMAIL_1]",
    "[",
];

/// Fragments glued together in any order: adversarial for chunk invariance.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|parts| parts.concat())
}

/// Like [`text`], without placeholder-shaped fragments: placeholders are not escaped, so text
/// that already holds one is restored too (documented in `restore`).
fn text_without_placeholders() -> impl Strategy<Value = String> {
    let fragments: Vec<&str> = FRAGMENTS
        .iter()
        .copied()
        .filter(|f| !f.contains('['))
        .collect();
    prop::collection::vec(prop::sample::select(fragments), 0..24).prop_map(|parts| parts.concat())
}

/// Fragments separated by whitespace or punctuation, as values stand in real text.
fn separated_text() -> impl Strategy<Value = String> {
    let part = (
        prop::sample::select(FRAGMENTS),
        prop::sample::select(&[" ", "\n", ", ", ". ", "; ", " (", ") ", ": "][..]),
    );
    prop::collection::vec(part, 0..24)
        .prop_map(|parts| parts.into_iter().flat_map(|(f, sep)| [f, sep]).collect())
}

/// Cut points as fractions of the length, sorted; the caller snaps them as it needs.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..10_000, 0..16).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn policy(style: Option<Style>) -> Policy {
    let policy = Policy::default().with_terms(["Acme Corp", "hello"]);
    match style {
        Some(style) => policy.with_style(style),
        None => policy,
    }
}

/// Streams `text` cut at `cuts` (snapped to char boundaries); asserts the hold-back bound.
fn stream_str(s: &Scrubber, text: &str, cuts: &[usize]) -> String {
    let mut vault = Vault::new();
    let mut stream = s.stream();
    let mut out = String::new();
    let mut at = 0;
    for &c in cuts {
        let mut end = (c * text.len() / 10_000).max(at);
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push_str(stream.push(&text[at..end], &mut vault));
        assert!(stream.held_back() <= HOLD_BOUND);
        at = end;
    }
    out.push_str(stream.push(&text[at..], &mut vault));
    out.push_str(stream.finish(&mut vault));
    out
}

/// Streams the bytes of `text` cut anywhere, through `Utf8Input`.
fn stream_bytes(s: &Scrubber, text: &str, cuts: &[usize]) -> String {
    let bytes = text.as_bytes();
    let mut vault = Vault::new();
    let mut stream = s.stream();
    let mut utf8 = Utf8Input::new();
    let mut out = String::new();
    let mut at = 0;
    for end in cuts
        .iter()
        .map(|c| c * bytes.len() / 10_000)
        .chain([bytes.len()])
    {
        let end = end.max(at);
        utf8.feed(&bytes[at..end], &mut |delta| {
            out.push_str(stream.push(delta, &mut vault))
        })
        .expect("valid UTF-8");
        at = end;
    }
    utf8.finish().expect("complete");
    out.push_str(stream.finish(&mut vault));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn streaming_equals_one_shot(text in text(), cuts in cuts(), style in prop::option::of(prop::sample::select(vec![Style::Mask, Style::Label, Style::Placeholder]))) {
        let s = Scrubber::new(&policy(style)).expect("compiles");
        let one_shot = s.scrub(&text).text.into_owned();
        prop_assert_eq!(&stream_str(&s, &text, &cuts), &one_shot);
        prop_assert_eq!(&stream_bytes(&s, &text, &cuts), &one_shot);
    }

    #[test]
    fn scrubbing_is_idempotent(text in separated_text(), style in prop::option::of(prop::sample::select(vec![Style::Mask, Style::Label]))) {
        let s = Scrubber::new(&policy(style)).expect("compiles");
        let once = s.scrub(&text).text.into_owned();
        let twice = s.scrub(&once).text.into_owned();
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn placeholders_restore_the_original(text in text_without_placeholders(), cuts in cuts()) {
        let s = Scrubber::new(&policy(Some(Style::Placeholder))).expect("compiles");
        let mut vault = Vault::new();
        let scrubbed = s.scrub_in(&text, &mut vault).text.into_owned();
        prop_assert_eq!(restore(&scrubbed, &vault), text.as_str());
        let mut restorer = StreamRestorer::new();
        let mut out = String::new();
        let mut at = 0;
        for &c in &cuts {
            let mut end = (c * scrubbed.len() / 10_000).max(at);
            while !scrubbed.is_char_boundary(end) {
                end += 1;
            }
            out.push_str(restorer.push(&scrubbed[at..end], &vault));
            at = end;
        }
        out.push_str(restorer.push(&scrubbed[at..], &vault));
        out.push_str(restorer.finish(&vault));
        prop_assert_eq!(out, text);
    }

    #[test]
    fn arbitrary_text_streams_like_one_shot(text in "\\PC{0,200}", cuts in cuts()) {
        let s = Scrubber::new(&policy(None)).expect("compiles");
        let one_shot = s.scrub(&text).text.into_owned();
        prop_assert_eq!(stream_bytes(&s, &text, &cuts), one_shot);
    }
}

/// Every fragment inside a sentence, streamed one byte at a time: the smallest possible deltas.
#[test]
fn one_byte_deltas() {
    let s = Scrubber::new(&policy(None)).expect("compiles");
    for fragment in FRAGMENTS {
        let text = format!("Note: «{fragment}», then {fragment}.\n{fragment}");
        let every_byte: Vec<usize> = (1..text.len()).map(|i| i * 10_000 / text.len()).collect();
        let one_shot = s.scrub(&text).text.into_owned();
        assert_eq!(stream_bytes(&s, &text, &every_byte), one_shot, "{text:?}");
    }
}

#[test]
fn long_streams_keep_hold_back_bounded() {
    let s = Scrubber::new(&Policy::default()).expect("compiles");
    let text = "x".repeat(100_000) + &"7".repeat(100_000) + &"a.b-c_".repeat(20_000);
    let out = stream_str(&s, &text, &(1..200).map(|i| i * 50).collect::<Vec<_>>());
    assert_eq!(out, text);
}
