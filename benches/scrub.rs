//! Throughput of the scrubbing engine on about 1 MiB of text per benchmark.
//!
//! * `clean_prose`: English prose without PII (the common case: nothing to do).
//! * `pii_dense`: prose with roughly one entity per 100 bytes, cycling through every kind.
//! * `code_json`: source code and JSON payloads, full of digits that are not PII.
//! * `stream_4byte/*`: the prose and the PII-dense text fed as 4-byte deltas to a stream.
//!
//! Every input is built here from a fixed seed, so runs compare like with like. Run with
//! `cargo bench --bench scrub`; targets on one core: prose ≥ 1 GB/s, PII-dense ≥ 200 MB/s,
//! 4-byte streaming ≥ 100 MB/s.
//!
//! For instruction counts, which a busy machine does not blur, the bench binary also runs one
//! case `N` times without criterion (`count CASE N`, CASE one of `clean_prose`, `pii_dense`,
//! `code_json`, `stream_clean_prose`, `stream_pii_dense`):
//!
//! ```sh
//! cargo bench --bench scrub --no-run   # prints the binary's path
//! valgrind --tool=callgrind target/release/deps/scrub-HASH count pii_dense 10
//! ```
//!
//! Subtract a run with `N = 0` (building the inputs) and divide by `N`.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lethe::scrub::{Kind, Policy, Scrubber, Vault};

/// Size of every generated input, give or take one paragraph.
const TARGET_LEN: usize = 1 << 20;
/// Bytes per streamed delta (rounded up to the next character boundary).
const DELTA: usize = 4;

/// A small deterministic generator (SplitMix64): the inputs must not change between runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `n` characters drawn from `alphabet`.
    fn chars(&mut self, alphabet: &[u8], n: usize, out: &mut String) {
        for _ in 0..n {
            out.push(char::from(self.pick(alphabet)));
        }
    }

    /// `n` decimal digits.
    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b'0' + self.below(10) as u8).collect()
    }
}

const DIGITS: &[u8] = b"0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";

/// Sentences of a typical assistant answer: no digit, no `@`, a little non-ASCII.
const SENTENCES: &[&str] = &[
    "Great question — let me walk you through it step by step.",
    "The short answer is that it depends on how your data is structured and who needs to read it.",
    "First, make sure the service account has permission to read from the bucket.",
    "If you are seeing a timeout, the most likely cause is a slow upstream dependency rather than your own code.",
    "In practice, most teams start with a simple queue and only reach for a stream processor when they outgrow it.",
    "Here is a quick summary of the trade-offs, followed by a recommendation.",
    "Caching helps, but it also introduces a second source of truth that can drift out of date.",
    "You can think of the scheduler as a loop that repeatedly picks the next runnable task.",
    "Note that the configuration file is read once at startup, so changes require a restart.",
    "The café on the corner uses the same approach: orders go on a board and baristas pull from it.",
    "A naïve implementation would lock the whole table; a better one locks only the rows it touches.",
    "That said, premature optimisation is rarely worth the extra complexity.",
    "Let’s look at why the test fails only on the continuous integration server.",
    "The error message is misleading: the file exists, but the process cannot open it.",
    "When in doubt, measure first and change one thing at a time.",
    "Security reviews should happen before launch, not after the first incident.",
    "This pattern is sometimes called “retry with exponential back-off and jitter.”",
    "Keep the public interface small; it is much easier to add than to take away.",
    "Documentation is part of the product, so treat it with the same care as the code.",
    "Finally, remember to rotate credentials regularly and to revoke the ones you no longer use.",
    "Would you like me to expand on any of these points, or draft an example?",
    "The migration can run online, although it will be slower while traffic is high.",
    "Avoid storing large blobs in the database; keep a reference to object storage instead.",
    "Each request carries a trace identifier, which makes debugging across services far easier.",
    "On the other hand, a monolith is simpler to deploy and to reason about early on.",
    "Pay attention to time zones: store timestamps in universal time and convert at the edge.",
    "Your intuition is right, and the profiler confirms it: most of the time goes into parsing.",
    "Consider whether the feature is needed at all before deciding how to build it.",
];

const HEADINGS: &[&str] = &[
    "## Overview",
    "## Why this happens",
    "### Recommended approach",
    "### Things to watch out for",
    "## Next steps",
];

/// English prose with no PII at all, in paragraphs, bullets and headings.
fn clean_prose(rng: &mut Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 1024);
    while out.len() < len {
        match rng.below(10) {
            0 => {
                out.push_str(rng.pick(HEADINGS));
                out.push_str("\n\n");
            }
            1 => {
                for _ in 0..2 + rng.below(3) {
                    out.push_str("- ");
                    out.push_str(rng.pick(SENTENCES));
                    out.push('\n');
                }
                out.push('\n');
            }
            _ => {
                for k in 0..3 + rng.below(5) {
                    if k > 0 {
                        out.push(' ');
                    }
                    out.push_str(rng.pick(SENTENCES));
                }
                out.push_str("\n\n");
            }
        }
    }
    out
}

/// Appends the Luhn check digit that makes `digits` valid.
fn luhn_complete(digits: &mut Vec<u8>) {
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        let d = u32::from(c - b'0');
        sum += if i % 2 == 0 {
            let x = d * 2;
            if x > 9 {
                x - 9
            } else {
                x
            }
        } else {
            d
        };
    }
    digits.push(b'0' + ((10 - sum % 10) % 10) as u8);
}

/// A valid card number of 16 digits (Visa or Mastercard) or 15 (American Express).
fn card_digits(rng: &mut Rng) -> Vec<u8> {
    let (mut d, len) = match rng.below(3) {
        0 => (b"4".to_vec(), 16),
        1 => (vec![b'5', b'1' + rng.below(5) as u8], 16),
        _ => (vec![b'3', rng.pick(b"47")], 15),
    };
    let rest = rng.digits(len - 1 - d.len());
    d.extend_from_slice(&rest);
    luhn_complete(&mut d);
    d
}

/// Writes `digits` in groups of `sizes` joined by `sep`.
fn grouped(digits: &[u8], sizes: &[usize], sep: char, out: &mut String) {
    let mut at = 0;
    for (i, &n) in sizes.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.extend(digits[at..at + n].iter().map(|&c| char::from(c)));
        at += n;
    }
}

/// A valid IBAN: `country`, computed check digits, then `bban`, grouped by four or compact.
fn iban(country: &str, bban: &str, spaced: bool, out: &mut String) {
    // Mod-97 of BBAN + country + "00", letters as 10..=35.
    let rem = bban
        .bytes()
        .chain(country.bytes())
        .chain(*b"00")
        .fold(0u32, |rem, c| match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            _ => (rem * 100 + u32::from(c - b'A') + 10) % 97,
        });
    let compact = format!("{country}{:02}{bban}", 98 - rem);
    if spaced {
        for (i, chunk) in compact.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.extend(chunk.iter().map(|&c| char::from(c)));
        }
    } else {
        out.push_str(&compact);
    }
}

/// Unpadded base64url of `bytes`.
fn base64url(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for k in 0..=chunk.len() {
            out.push(char::from(B64URL[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
}

const FIRST: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
const LAST: &[&str] = &["smith", "jones", "nguyen", "garcia", "muller", "rossi"];
const DOMAINS: &[&str] = &["example.com", "mail.example.org", "corp.example.net"];

/// One sensitive entity of kind number `k` (cycling over every kind), with a lead-in.
fn entity(rng: &mut Rng, k: usize, out: &mut String) {
    match k % 14 {
        0 => {
            out.push_str("Card on file: ");
            let d = card_digits(rng);
            let sizes: &[usize] = if d.len() == 15 {
                &[4, 6, 5]
            } else {
                &[4, 4, 4, 4]
            };
            grouped(&d, sizes, rng.pick(&[' ', '-']), out);
        }
        1 => {
            out.push_str("the card number ");
            out.extend(card_digits(rng).into_iter().map(char::from));
        }
        2 => {
            out.push_str("write to ");
            out.push_str(rng.pick(FIRST));
            out.push('.');
            out.push_str(rng.pick(LAST));
            out.push_str(&rng.below(100).to_string());
            out.push('@');
            out.push_str(rng.pick(DOMAINS));
        }
        3 => {
            // NANP: area and exchange start with 2-9, area not N11.
            let area = 200 + rng.below(700);
            let area = if area % 100 == 11 { area + 1 } else { area };
            let exch = 200 + rng.below(800);
            let line = rng.below(10_000);
            let s = match rng.below(3) {
                0 => format!("call ({area}) {exch}-{line:04}"),
                1 => format!("phone {area}-{exch}-{line:04}"),
                _ => format!("reach them on +1 {area} {exch} {line:04}"),
            };
            out.push_str(&s);
        }
        4 => {
            let s = format!(
                "UK office +44 20 {} {}",
                7000 + rng.below(3000),
                1000 + rng.below(9000)
            );
            out.push_str(&s);
        }
        5 => {
            let area = 1 + rng.below(665);
            let s = format!(
                "SSN {area:03}-{:02}-{:04}",
                1 + rng.below(99),
                1 + rng.below(9999)
            );
            out.push_str(&s);
        }
        6 => {
            let s = format!(
                "the host at {}.{}.{}.{}",
                10 + rng.below(240),
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            );
            out.push_str(&s);
        }
        7 => {
            let s = format!(
                "the server at 2001:db8:{:x}::{:x}:{}",
                rng.below(0xffff),
                rng.below(0xffff),
                1 + rng.below(9999)
            );
            out.push_str(&s);
        }
        8 => {
            out.push_str("pay into ");
            let bban: String = rng.digits(18).into_iter().map(char::from).collect();
            iban("DE", &bban, rng.below(2) == 0, out);
        }
        9 => {
            out.push_str("account ");
            let mut bban = String::from(rng.pick(&["NWBK", "BARC", "MIDL"]));
            bban.extend(rng.digits(14).into_iter().map(char::from));
            iban("GB", &bban, rng.below(2) == 0, out);
        }
        10 => {
            out.push_str("export ANTHROPIC_API_KEY=sk-ant-api03-");
            rng.chars(B64URL, 80, out);
        }
        11 => {
            out.push_str("token ghp_");
            rng.chars(ALNUM, 36, out);
        }
        12 => {
            out.push_str("aws_access_key_id = AKIA");
            rng.chars(UPPER_ALNUM, 16, out);
        }
        _ => {
            out.push_str("Authorization: Bearer ");
            base64url(br#"{"alg":"HS256","typ":"JWT"}"#, out);
            out.push('.');
            let claims = format!(
                r#"{{"sub":"{}","name":"{} {}","iat":{}}}"#,
                rng.below(1_000_000),
                rng.pick(FIRST),
                rng.pick(LAST),
                1_700_000_000 + rng.below(50_000_000)
            );
            base64url(claims.as_bytes(), out);
            out.push('.');
            rng.chars(B64URL, 43, out);
        }
    }
}

/// Short connecting phrases, so that entities land about every 100 bytes.
const FILLERS: &[&str] = &[
    "Thanks, I have updated the record.",
    "Please double-check the details below.",
    "The customer asked us to confirm this.",
    "As discussed on the call yesterday,",
    "For the audit trail, note that",
    "Here is what the ticket says:",
];

/// Prose with about one entity per 100 bytes, cycling through every kind.
fn pii_dense(rng: &mut Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 1024);
    let mut k = 0;
    while out.len() < len {
        out.push_str(rng.pick(FILLERS));
        out.push(' ');
        entity(rng, k, &mut out);
        k += 1;
        out.push_str(if k % 5 == 0 { ".\n\n" } else { ". " });
    }
    out
}

const WORDS: &[&str] = &[
    "user", "order", "item", "price", "total", "status", "session", "config",
];

/// Rust and Python snippets and JSON API payloads: numbers, ids, hashes, timestamps, URLs.
fn code_json(rng: &mut Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 4096);
    while out.len() < len {
        let w = rng.pick(WORDS);
        let s = match rng.below(4) {
            0 => format!(
                r#"{{
  "id": {id},
  "uuid": "{u1:08x}-{u2:04x}-4{u3:03x}-a{u4:03x}-{u5:012x}",
  "{w}_count": {count},
  "amount": {amount}.{cents:02},
  "currency": "EUR",
  "created_at": "2024-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z",
  "url": "https://api.example.com/v2/{w}s/{id}?page={page}&limit=50",
  "tags": ["alpha", "beta", "v1.{minor}.{patch}"],
  "ratio": 0.{ratio},
  "active": true,
  "parent": null
}}
"#,
                id = rng.below(10_000_000),
                u1 = rng.next() as u32,
                u2 = rng.below(0x10000),
                u3 = rng.below(0x1000),
                u4 = rng.below(0x1000),
                u5 = rng.next() & 0xffff_ffff_ffff,
                count = rng.below(1000),
                amount = rng.below(100_000),
                cents = rng.below(100),
                mo = 1 + rng.below(12),
                d = 1 + rng.below(28),
                h = rng.below(24),
                mi = rng.below(60),
                s = rng.below(60),
                ms = rng.below(1000),
                page = 1 + rng.below(40),
                minor = rng.below(30),
                patch = rng.below(10),
                ratio = rng.below(100_000),
            ),
            1 => format!(
                r#"fn {w}_checksum(data: &[u8]) -> u32 {{
    let mut h: u32 = 0x{seed:08x};
    for (i, b) in data.iter().enumerate() {{
        h = h.wrapping_mul({mul}).wrapping_add(u32::from(*b) ^ (i as u32 & 0xff));
    }}
    h % {modulus}
}}

"#,
                seed = rng.next() as u32,
                mul = 16_777_000 + rng.below(1000),
                modulus = 1_000_000_007 - rng.below(100),
            ),
            2 => format!(
                r#"def fetch_{w}(client, {w}_id: int, retries: int = {retries}) -> dict:
    """Fetch one {w}; see https://docs.example.com/api/{w}s#get."""
    url = f"https://api.example.com/v1/{w}s/{{{w}_id}}"
    for attempt in range(retries):
        resp = client.get(url, timeout={timeout}.{tf})
        if resp.status_code == 200:
            return resp.json()
        time.sleep(0.{backoff} * 2 ** attempt)
    raise RuntimeError(f"gave up after {{retries}} attempts (last status {{resp.status_code}})")

"#,
                retries = 2 + rng.below(5),
                timeout = 1 + rng.below(30),
                tf = rng.below(10),
                backoff = 1 + rng.below(9),
            ),
            _ => {
                let mut commit = String::new();
                rng.chars(HEX, 40, &mut commit);
                let mut digits = String::new();
                rng.chars(DIGITS, 6, &mut digits);
                format!(
                    "[{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}] INFO worker-{worker} processed \
                     {n} {w}s in {ms} ms (p99 {p99}.{p99f} ms, commit {commit}, batch #{digits})\n",
                    y = 2020 + rng.below(6),
                    mo = 1 + rng.below(12),
                    d = 1 + rng.below(28),
                    h = rng.below(24),
                    mi = rng.below(60),
                    s = rng.below(60),
                    worker = rng.below(64),
                    n = rng.below(5000),
                    ms = rng.below(2000),
                    p99 = rng.below(500),
                    p99f = rng.below(10),
                )
            }
        };
        out.push_str(&s);
    }
    out
}

/// `text` cut every [`DELTA`] bytes, each cut moved forward to a character boundary.
fn deltas(text: &str) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(text.len() / DELTA + 1);
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + DELTA).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&text[at..end]);
        at = end;
    }
    pieces
}

fn inputs() -> (String, String, String) {
    let mut rng = Rng(0x6C65_7468_6521);
    let prose = clean_prose(&mut rng, TARGET_LEN);
    let dense = pii_dense(&mut rng, TARGET_LEN);
    let code = code_json(&mut rng, TARGET_LEN);
    (prose, dense, code)
}

/// The inputs must measure what their names say: prose has nothing to mask, the dense text has
/// every kind at about one entity per 100 bytes.
fn check_inputs(scrubber: &Scrubber, prose: &str, dense: &str) {
    let counts = scrubber.scrub(prose).counts;
    assert_eq!(counts.total(), 0, "clean_prose has detections: {counts:?}");
    let counts = scrubber.scrub(dense).counts;
    for kind in Kind::ALL {
        if !matches!(kind, Kind::PrivateKey | Kind::Dictionary) {
            assert!(counts.get(kind) > 0, "pii_dense has no {kind}: {counts:?}");
        }
    }
    let per_entity = dense.len() / counts.total().max(1) as usize;
    assert!(
        (60..=140).contains(&per_entity),
        "pii_dense has one detection per {per_entity} bytes: {counts:?}"
    );
}

fn bench(c: &mut Criterion) {
    let scrubber = match Scrubber::new(&Policy::default()) {
        Ok(s) => s,
        Err(e) => panic!("the default policy does not compile: {e}"),
    };
    let (prose, dense, code) = inputs();
    check_inputs(&scrubber, &prose, &dense);

    let mut group = c.benchmark_group("scrub");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));

    for (name, text) in [
        ("clean_prose", &prose),
        ("pii_dense", &dense),
        ("code_json", &code),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| scrubber.scrub(black_box(text.as_str())).counts)
        });
    }

    for (name, text) in [("clean_prose", &prose), ("pii_dense", &dense)] {
        let pieces = deltas(text);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("stream_4byte", name),
            &pieces,
            |b, pieces| b.iter(|| stream(&scrubber, pieces)),
        );
    }
    group.finish();
}

/// Feeds `pieces` to a new stream; the number of bytes released.
fn stream(scrubber: &Scrubber, pieces: &[&str]) -> usize {
    let mut vault = Vault::new();
    let mut stream = scrubber.stream();
    let mut released = 0;
    for &delta in pieces {
        released += stream.push(black_box(delta), &mut vault).len();
    }
    released += stream.finish(&mut vault).len();
    black_box(released)
}

/// `count CASE N`: one case, `N` times, for an instruction counter.
fn count(case: &str, n: usize) {
    let scrubber = Scrubber::new(&Policy::default()).unwrap();
    let (prose, dense, code) = inputs();
    let (text, streamed) = match case {
        "clean_prose" => (&prose, false),
        "pii_dense" => (&dense, false),
        "code_json" => (&code, false),
        "stream_clean_prose" => (&prose, true),
        "stream_pii_dense" => (&dense, true),
        _ => panic!("unknown case {case}"),
    };
    let pieces = deltas(text);
    for _ in 0..n {
        if streamed {
            stream(&scrubber, &pieces);
        } else {
            black_box(scrubber.scrub(black_box(text.as_str())).counts);
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, case, n] = &args[..] {
        if mode == "count" {
            return count(case, n.parse().expect("a count"));
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
