//! Labeled evaluation corpus for the scrubbing engine.
//!
//! This is an *independent* check of [`Scrubber::find`]: the cases below are built from the
//! written specification of each type, not from the detector code. It measures two things:
//!
//! * **Recall per type.** Every positive is a known entity embedded at a known byte range in a
//!   sentence. It is *detected* when a finding of the right kind covers exactly that range. A
//!   finding that overlaps it with another kind or another span is a *near miss* (counted
//!   separately so a span off by one byte is visible, but not counted as detected). No overlapping
//!   finding at all is a *miss*.
//! * **Look-alike rejection.** Every look-alike is a string that resembles sensitive data but is
//!   not (order numbers failing Luhn, UUIDs, versions, dates, ISBNs, invalid NANP numbers, …). It
//!   is *untouched* when no finding overlaps its byte range.
//!
//! Cases come from two sources: a deterministic generator (a splitmix64 PRNG with fixed seeds,
//! so every run sees the same corpus) that embeds random valid entities in varied sentence
//! templates, and hand-written tables of tricky cases, in which `«` and `»` mark the entity (the
//! markers are removed before scanning; a case without markers means the whole string).
//!
//! The test prints a per-type table and up to a few failing examples per type, then asserts
//! recall ≥ 99.5 % for every type and ≥ 99.5 % of look-alikes untouched. Run it with
//! `cargo test --release --test corpus -- --nocapture` to see the tables.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::ops::Range;

use lethe::scrub::{Finding, Kind, Policy, Scrubber};

/// Generated positives per type.
const POSITIVES_PER_KIND: usize = 400;
/// Generated look-alikes per category.
const LOOKALIKES_PER_CATEGORY: usize = 40;
/// Required recall, per type, and required share of untouched look-alikes.
const TARGET: f64 = 0.995;
/// Failing examples printed per row and outcome; `LETHE_CORPUS_SHOW=n` overrides it.
const SHOW: usize = 6;

fn show() -> usize {
    std::env::var("LETHE_CORPUS_SHOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SHOW)
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

/// splitmix64: tiny, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `pct` %.
    fn chance(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }

    fn digits(&mut self, n: usize) -> String {
        self.string(DIGITS, n)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

const DIGITS: &[u8] = b"0123456789";
const NONZERO: &[u8] = b"123456789";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const WORD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8], alphabet: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Checksums (written from their definitions)
// ---------------------------------------------------------------------------------------------

/// Luhn check over a digit string (check digit included).
fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// The digit that makes `body + digit` pass Luhn.
fn luhn_digit(body: &str) -> char {
    (b'0'..=b'9')
        .map(char::from)
        .find(|d| luhn_ok(&format!("{body}{d}")))
        .unwrap_or('0')
}

/// ISO 13616 remainder of `bban + country + check` (letters as 10..35).
fn iban_mod97(country: &str, check: &str, bban: &str) -> u32 {
    let mut rem: u32 = 0;
    for c in bban.chars().chain(country.chars()).chain(check.chars()) {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem
}

fn iban_valid(compact: &str) -> bool {
    compact.len() > 4 && iban_mod97(&compact[..2], &compact[2..4], &compact[4..]) == 1
}

// ---------------------------------------------------------------------------------------------
// Positive generators, one per type
// ---------------------------------------------------------------------------------------------

/// A generated entity, optionally with the context it needs (bare SSNs need a context word).
struct Sample {
    value: String,
    context: Option<(&'static str, &'static str)>,
}

impl From<String> for Sample {
    fn from(value: String) -> Sample {
        Sample {
            value,
            context: None,
        }
    }
}

/// A card brand: name, prefix ranges (inclusive, same number of digits) and lengths.
type Brand = (&'static str, &'static [(u32, u32)], &'static [usize]);

const CARD_BRANDS: &[Brand] = &[
    ("visa", &[(4, 4)], &[13, 16, 19]),
    ("mastercard", &[(51, 55), (2221, 2720)], &[16]),
    ("amex", &[(34, 34), (37, 37)], &[15]),
    ("discover", &[(6011, 6011), (644, 649), (65, 65)], &[16]),
    ("jcb", &[(3528, 3589)], &[16]),
    ("diners", &[(36, 36), (38, 38), (300, 305)], &[14]),
    ("unionpay", &[(62, 62)], &[16]),
    (
        "maestro",
        &[(50, 50), (56, 69)],
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
];

fn group(digits: &str, sizes: &[usize], sep: char) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (i, n) in sizes.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push_str(&digits[at..at + n]);
        at += n;
    }
    debug_assert_eq!(at, digits.len());
    out
}

fn gen_card(r: &mut Rng) -> Sample {
    let (_, prefixes, lengths) = *r.pick(CARD_BRANDS);
    let (lo, hi) = *r.pick(prefixes);
    let len = *r.pick(lengths);
    let mut body = r.range(u64::from(lo), u64::from(hi)).to_string();
    let rest = len - 1 - body.len();
    body.push_str(&r.digits(rest));
    let check = luhn_digit(&body);
    body.push(check);
    let layout: &[usize] = match len {
        16 => &[4, 4, 4, 4],
        15 if body.starts_with("34") || body.starts_with("37") => &[4, 6, 5],
        14 => &[4, 6, 4],
        19 => &[4, 4, 4, 4, 3],
        _ => &[],
    };
    if layout.is_empty() || r.chance(40) {
        body.into()
    } else {
        group(&body, layout, *r.pick(&[' ', '-'])).into()
    }
}

const SSN_CONTEXTS: &[(&str, &str)] = &[
    ("SSN ", ""),
    ("SSN ", " on file."),
    ("ssn: ", ""),
    ("SSN: ", ", verified"),
    ("social security number ", ""),
    ("Social Security Number: ", " (primary)"),
    ("{\"ssn\": \"", "\"}"),
    ("(SSN ", ")"),
];

fn gen_ssn(r: &mut Rng) -> Sample {
    let area = loop {
        let a = r.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    let groupn = r.range(1, 99);
    let serial = r.range(1, 9999);
    if r.chance(25) {
        Sample {
            value: format!("{area:03}{groupn:02}{serial:04}"),
            context: Some(*r.pick(SSN_CONTEXTS)),
        }
    } else {
        let sep = if r.chance(70) { '-' } else { ' ' };
        format!("{area:03}{sep}{groupn:02}{sep}{serial:04}").into()
    }
}

const TLDS: &[&str] = &[
    "com", "org", "net", "io", "de", "fr", "co.uk", "info", "dev", "app", "ch", "museum", "xyz",
    "com.au", "travel",
];

fn gen_email(r: &mut Rng) -> Sample {
    let local_chars: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut local = String::new();
    for i in 0..r.range(1, 3) {
        if i > 0 {
            local.push(*r.pick(&['.', '.', '_', '-']));
        }
        let n = r.range(1, 10) as usize;
        local.push_str(&r.string(local_chars, n));
    }
    if r.chance(20) {
        local.push('+');
        let n = r.range(1, 8) as usize;
        local.push_str(&r.string(local_chars, n));
    }
    let mut domain = String::new();
    for _ in 0..r.range(1, 3) {
        let n = r.range(2, 10) as usize;
        let mut label = r.string(local_chars, n);
        if n > 3 && r.chance(15) {
            label.insert(n / 2, '-');
        }
        domain.push_str(&label);
        domain.push('.');
    }
    let tld = r.pick(TLDS).to_string();
    domain.push_str(&tld);
    let email = format!("{local}@{domain}");
    match r.below(10) {
        0 => email.to_uppercase(),
        1 | 2 => email
            .chars()
            .map(|c| {
                if r.chance(40) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        _ => email,
    }
    .into()
}

/// A NANP area code: first digit 2–9, not N11.
fn nanp_area(r: &mut Rng) -> String {
    loop {
        let a = r.range(200, 999);
        if a % 100 != 11 {
            return a.to_string();
        }
    }
}

/// A NANP exchange: first digit 2–9 (and, like real NANP, not N11).
fn nanp_exchange(r: &mut Rng) -> String {
    nanp_area(r)
}

/// International numbers: `N` any digit, `M` 1–9. Separators are consistent per pattern.
const INTL_PATTERNS: &[&str] = &[
    "+44 20 7NNN NNNN",
    "+44 7MNN NNNNNN",
    "+44 161 NNN NNNN",
    "+49 30 MNNNNNNN",
    "+49 151 MNNNNNNN",
    "+49 89 MNNNNNN",
    "+33 M NN NN NN NN",
    "+33 6 NN NN NN NN",
    "+91 9NNNN NNNNN",
    "+91 8NNNN NNNNN",
    "+81-3-NNNN-NNNN",
    "+81 90 NNNN NNNN",
    "+61 2 NNNN NNNN",
    "+61 4NN NNN NNN",
    "+34 6NN NNN NNN",
    "+39 06 NNNN NNNN",
    "+39 3NN NNN NNNN",
    "+31 20 NNN NNNN",
    "+31 6 NNNN NNNN",
    "+41 44 NNN NN NN",
    "+46 8 NNN NNN NN",
    "+47 MNN NN NNN",
    "+45 MN NN NN NN",
    "+358 40 NNN NNNN",
    "+353 1 NNN NNNN",
    "+48 22 NNN NN NN",
    "+43 1 NNNNNNN",
    "+32 2 NNN NN NN",
    "+351 21 NNN NNNN",
    "+52 55 NNNN NNNN",
    "+86 138 NNNN NNNN",
    "+82-2-NNNN-NNNN",
    "+65 6NNN NNNN",
    "+27 21 NNN NNNN",
    "+971 4 NNN NNNN",
    "+7 495 NNN NN NN",
    "+55 11 9NNNN NNNN",
];

fn gen_phone(r: &mut Rng) -> Sample {
    if r.chance(40) {
        let pattern = *r.pick(INTL_PATTERNS);
        let mut s: String = pattern
            .chars()
            .map(|c| match c {
                'N' => *r.pick(DIGITS) as char,
                'M' => *r.pick(NONZERO) as char,
                c => c,
            })
            .collect();
        match r.below(10) {
            0 | 1 => s.retain(|c| c != ' ' && c != '-'),
            2 => s = s.replace(' ', "-"),
            _ => {}
        }
        return s.into();
    }
    let (a, e, l) = (nanp_area(r), nanp_exchange(r), r.digits(4));
    let mut s = match r.below(9) {
        0 => format!("({a}) {e}-{l}"),
        1 => format!("{a}-{e}-{l}"),
        2 => format!("{a}.{e}.{l}"),
        3 => format!("{a} {e} {l}"),
        4 => format!("+1 {a} {e} {l}"),
        5 => format!("+1-{a}-{e}-{l}"),
        6 => format!("+1{a}{e}{l}"),
        7 => {
            let a = r
                .pick(&["800", "888", "877", "866", "855", "844", "833"])
                .to_string();
            format!("1-{a}-{e}-{l}")
        }
        _ => format!("1-{a}-{e}-{l}"),
    };
    if r.chance(20) {
        let n = r.range(2, 4) as usize;
        let ext = r.string(DIGITS, n);
        s.push_str(if r.chance(50) { " ext. " } else { " x" });
        s.push_str(&ext);
    }
    s.into()
}

fn octet(r: &mut Rng) -> u64 {
    match r.below(10) {
        0..=3 => r.range(0, 9),
        4..=6 => r.range(10, 99),
        _ => r.range(100, 255),
    }
}

fn gen_ip(r: &mut Rng) -> Sample {
    if r.chance(55) {
        let first = match r.below(4) {
            0 => 10,
            1 => 192,
            _ => r.range(1, 255),
        };
        return format!("{first}.{}.{}.{}", octet(r), octet(r), octet(r)).into();
    }
    loop {
        let mut groups: Vec<u16> = (0..8)
            .map(|_| match r.below(10) {
                0..=2 => 0,
                3..=4 => r.range(1, 0xff) as u16,
                _ => r.range(0x100, 0xffff) as u16,
            })
            .collect();
        match r.below(4) {
            0 => groups[..2].copy_from_slice(&[0x2001, 0x0db8]),
            1 => {
                groups[..4].copy_from_slice(&[0xfe80, 0, 0, 0]);
            }
            2 => groups[..2].copy_from_slice(&[0x2a00, 0x1450]),
            _ => {}
        }
        let style = r.below(3);
        if style == 2 && !has_zero_run(&groups) {
            let at = r.below(7);
            let n = r.range(2, (8 - at) as u64) as usize;
            groups[at..at + n].iter_mut().for_each(|g| *g = 0);
        }
        let mut s = match style {
            0 => groups
                .iter()
                .map(|g| format!("{g:04x}"))
                .collect::<Vec<_>>()
                .join(":"),
            1 => groups
                .iter()
                .map(|g| format!("{g:x}"))
                .collect::<Vec<_>>()
                .join(":"),
            _ => compress_v6(&groups),
        };
        if r.chance(15) {
            s = s.to_uppercase();
        }
        if s.bytes().any(|c| c.is_ascii_digit()) {
            return s.into();
        }
    }
}

fn has_zero_run(groups: &[u16]) -> bool {
    groups.windows(2).any(|w| w == [0, 0])
}

/// RFC 5952 text form: the longest run (≥ 2) of zero groups becomes `::`.
fn compress_v6(groups: &[u16]) -> String {
    let (mut best, mut best_len, mut i) = (0, 0, 0);
    while i < groups.len() {
        if groups[i] == 0 {
            let start = i;
            while i < groups.len() && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(groups);
    }
    format!(
        "{}::{}",
        hex(&groups[..best]),
        hex(&groups[best + best_len..])
    )
}

/// IBAN countries: BBAN layout, `n` digit, `a` upper-case letter.
const IBAN_COUNTRIES: &[(&str, &str)] = &[
    ("DE", "nnnnnnnnnnnnnnnnnn"),
    ("GB", "aaaannnnnnnnnnnnnn"),
    ("FR", "nnnnnnnnnnnnnnnnnnnnnnn"),
    ("ES", "nnnnnnnnnnnnnnnnnnnn"),
    ("IT", "annnnnnnnnnnnnnnnnnnnnn"),
    ("NL", "aaaannnnnnnnnn"),
    ("CH", "nnnnnnnnnnnnnnnnn"),
    ("AT", "nnnnnnnnnnnnnnnn"),
    ("BE", "nnnnnnnnnnnn"),
    ("PL", "nnnnnnnnnnnnnnnnnnnnnnnn"),
    ("SE", "nnnnnnnnnnnnnnnnnnnn"),
    ("NO", "nnnnnnnnnnn"),
    ("DK", "nnnnnnnnnnnnnn"),
    ("FI", "nnnnnnnnnnnnnn"),
    ("PT", "nnnnnnnnnnnnnnnnnnnnn"),
    ("IE", "aaaannnnnnnnnnnnnn"),
];

fn gen_iban(r: &mut Rng) -> Sample {
    let (country, layout) = *r.pick(IBAN_COUNTRIES);
    let bban: String = layout
        .chars()
        .map(|c| match c {
            'a' => *r.pick(UPPER) as char,
            _ => *r.pick(DIGITS) as char,
        })
        .collect();
    let check = 98 - iban_mod97(country, "00", &bban);
    let compact = format!("{country}{check:02}{bban}");
    debug_assert!(iban_valid(&compact));
    if r.chance(50) {
        return compact.into();
    }
    let chunks: Vec<String> = compact
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    chunks.join(" ").into()
}

fn gen_api_key(r: &mut Rng) -> Sample {
    match r.below(9) {
        0 => {
            let n = r.range(48, 160) as usize;
            format!("sk-proj-{}", r.string(B64URL, n))
        }
        1 => format!("sk-{}", r.string(ALNUM, 48)),
        2 => format!("sk-ant-api03-{}", r.string(B64URL, 95)),
        3 => format!("AKIA{}", r.string(UPPER_ALNUM, 16)),
        4 => format!("ghp_{}", r.string(ALNUM, 36)),
        5 => format!("github_pat_{}", r.string(WORD, 82)),
        6 => {
            let (a, b) = (r.range(10, 13) as usize, r.range(10, 13) as usize);
            format!(
                "xoxb-{}-{}-{}",
                r.string(DIGITS, a),
                r.string(DIGITS, b),
                r.string(ALNUM, 24)
            )
        }
        7 => {
            let n = r.range(24, 99) as usize;
            format!("sk_live_{}", r.string(ALNUM, n))
        }
        _ => format!("AIza{}", r.string(B64URL, 35)),
    }
    .into()
}

const NAMES: &[&str] = &[
    "John Doe",
    "Jane Roe",
    "Max Mustermann",
    "Åsa Öberg",
    "Li Wei",
];

fn gen_jwt(r: &mut Rng) -> Sample {
    let alg = *r.pick(&["HS256", "RS256", "ES256"]);
    let sp = if r.chance(20) { " " } else { "" };
    let header = match r.below(4) {
        0 => format!("{{\"alg\":{sp}\"{alg}\",{sp}\"typ\":{sp}\"JWT\"}}"),
        1 => format!("{{\"typ\":{sp}\"JWT\",{sp}\"alg\":{sp}\"{alg}\"}}"),
        2 => format!(
            "{{\"alg\":{sp}\"{alg}\",{sp}\"kid\":{sp}\"{}\"}}",
            r.string(HEX, 16)
        ),
        _ => format!("{{\"alg\":{sp}\"{alg}\"}}"),
    };
    let payload = format!(
        "{{\"sub\":\"{}\",\"name\":\"{}\",\"iat\":{},\"exp\":{}}}",
        r.digits(10),
        r.pick(NAMES),
        r.range(1_500_000_000, 1_800_000_000),
        r.range(1_800_000_000, 1_900_000_000)
    );
    let sig_bytes = match alg {
        "HS256" => 32,
        "ES256" => 64,
        _ => 256,
    };
    let sig = r.bytes(sig_bytes);
    format!(
        "{}.{}.{}",
        base64(header.as_bytes(), B64URL, false),
        base64(payload.as_bytes(), B64URL, false),
        base64(&sig, B64URL, false)
    )
    .into()
}

fn gen_private_key(r: &mut Rng) -> Sample {
    let label = *r.pick(&["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""]);
    let n = r.range(100, 1700) as usize;
    let body = base64(&r.bytes(n), B64, true);
    let width = if label == "OPENSSH " { 70 } else { 64 };
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "-----BEGIN {label}PRIVATE KEY-----\n{}\n-----END {label}PRIVATE KEY-----",
        lines.join("\n")
    )
    .into()
}

/// A positive generator: type, generator, seed and the templates only this type uses.
type Generator = (
    Kind,
    fn(&mut Rng) -> Sample,
    u64,
    &'static [(&'static str, &'static str)],
);

const GENERATORS: &[Generator] = &[
    (
        Kind::CreditCard,
        gen_card,
        0xC0FF_EE01,
        &[
            ("Karte für Müller: ", " (gültig bis 12/27)"),
            ("Paid with ", " yesterday"),
        ],
    ),
    (
        Kind::Ssn,
        gen_ssn,
        0xC0FF_EE02,
        &[("Employee ID check: ", " ok")],
    ),
    (
        Kind::Email,
        gen_email,
        0xC0FF_EE03,
        &[
            ("mailto:", ""),
            ("Jane Doe <", ">"),
            ("Contact: ", "; thanks"),
        ],
    ),
    (
        Kind::Phone,
        gen_phone,
        0xC0FF_EE04,
        &[
            ("Call me at ", " tomorrow."),
            ("Tel.: ", ""),
            ("Rufen Sie ", " an."),
        ],
    ),
    (
        Kind::IpAddress,
        gen_ip,
        0xC0FF_EE05,
        &[("connection from ", " refused"), ("host=", " port=22")],
    ),
    (
        Kind::Iban,
        gen_iban,
        0xC0FF_EE06,
        &[("Bitte überweisen an ", " bis Freitag."), ("IBAN: ", "")],
    ),
    (
        Kind::ApiKey,
        gen_api_key,
        0xC0FF_EE07,
        &[
            ("Authorization: Bearer ", "\r\n"),
            ("export API_KEY=", "\n"),
            ("api_key = \"", "\""),
        ],
    ),
    (
        Kind::Jwt,
        gen_jwt,
        0xC0FF_EE08,
        &[("Authorization: Bearer ", "\r\n"), ("?token=", "&x=1")],
    ),
    (
        Kind::PrivateKey,
        gen_private_key,
        0xC0FF_EE09,
        &[("$ cat id_rsa\n", "\n$ "), ("key.pem:\n\n", "\n\n")],
    ),
];

/// Sentence templates shared by every type: `(before, after)`.
const TEMPLATES: &[(&str, &str)] = &[
    ("", ""),
    ("", " is what they sent."),
    ("The value was ", "."),
    ("card: ", ""),
    ("(see ", ")"),
    ("Use ", ", then continue."),
    ("He wrote \"", "\" twice."),
    ("'", "'"),
    ("{\"field\": \"", "\"}"),
    ("Items:\n- ", "\n- other\n"),
    ("ids: a, ", ", b"),
    ("first line\n", "\nsecond line"),
    ("Müller schrieb: ", " — danke."),
    ("連絡先：", "。"),
    ("\t", "\t"),
    ("<td>", "</td>"),
    ("value=", "&next=1"),
    ("> ", ""),
    ("`", "`"),
];

// ---------------------------------------------------------------------------------------------
// Hand-written positives: `«…»` marks the entity
// ---------------------------------------------------------------------------------------------

const TRICKY_POSITIVES: &[(Kind, &str)] = &[
    (Kind::CreditCard, "Visa test card «4111 1111 1111 1111»."),
    (Kind::CreditCard, "«4111-1111-1111-1111»"),
    (Kind::CreditCard, "mc «5555 5555 5555 4444», amex «378282246310005»"),
    (Kind::CreditCard, "Amex grouped: «3782 822463 10005»!"),
    (Kind::CreditCard, "Discover «6011 1111 1111 1117»"),
    (Kind::CreditCard, "Diners «3056 930902 5904»"),
    (Kind::CreditCard, "JCB «3530111333300000»"),
    (Kind::CreditCard, "UnionPay «6200000000000005»"),
    (Kind::CreditCard, "2-series mc «2223003122003222»"),
    (Kind::CreditCard, "Visa-13 «4222222222222»"),
    (Kind::CreditCard, "{\"pan\":\"«4111111111111111»\",\"exp\":\"12/27\"}"),
    (Kind::CreditCard, "Kartennummer für Müller: «4111 1111 1111 1111»"),
    (Kind::CreditCard, "«4111111111111111» exp 12/27 cvv 123"),
    (Kind::CreditCard, "cards: «4111111111111111», «5105105105105100»."),
    (Kind::CreditCard, "qty 2 «4111 1111 1111 1111»"),
    (Kind::CreditCard, "#1 «4111111111111111»"),
    (Kind::CreditCard, "amount 12 «378282246310005»"),
    (Kind::Ssn, "SSN: «123-45-6789»"),
    (Kind::Ssn, "applicant «772-12-3456» (new range)"),
    (Kind::Ssn, "«899-99-9999»"),
    (Kind::Ssn, "id «001-01-0001»."),
    (Kind::Ssn, "«123 45 6789»"),
    (Kind::Ssn, "step 3 «123-45-6789»"),
    (Kind::Ssn, "SSN «123456789»"),
    (Kind::Ssn, "ssn: «512345678»"),
    (Kind::Ssn, "social security number «123456789»"),
    (Kind::Ssn, "Social Security Number: «512345678»."),
    (Kind::Email, "«John.Doe+newsletter@Example.CO.UK»"),
    (Kind::Email, "short «a@b.io»."),
    (Kind::Email, "«first.last@sub.mail.example.com»."),
    (Kind::Email, "Jane <«x_y-z@foo-bar.org»>"),
    (Kind::Email, "mailto:«user123@domain.de»"),
    (Kind::Email, "«USER@EXAMPLE.COM», please"),
    (Kind::Email, "Müller schrieb an «mueller@beispiel.de»:"),
    (Kind::Email, "(«42@numbers.example.net»)"),
    (Kind::Phone, "«(415) 555-0132»"),
    (Kind::Phone, "«415-555-0132»"),
    (Kind::Phone, "«415.555.0132»"),
    (Kind::Phone, "«415 555 0132»"),
    (Kind::Phone, "«+1 415 555 0132»"),
    (Kind::Phone, "«+1-415-555-0132»"),
    (Kind::Phone, "«+14155550132»"),
    (Kind::Phone, "«1-800-555-0199»"),
    (Kind::Phone, "call «(415) 555-0132 ext. 123» now"),
    (Kind::Phone, "«415-555-0132 x123»."),
    (Kind::Phone, "«+44 20 7946 0958»"),
    (Kind::Phone, "«+49 30 12345678»"),
    (Kind::Phone, "«+33 1 23 45 67 89»"),
    (Kind::Phone, "«+91 98765 43210»"),
    (Kind::Phone, "«+81-3-1234-5678»"),
    (Kind::Phone, "«+61 2 9876 5432»"),
    (Kind::Phone, "room 12 «415-555-0132»"),
    (Kind::Phone, "Tel. «+41 44 668 18 00», Fax «+41 44 668 18 01»"),
    (Kind::IpAddress, "«192.168.0.1»"),
    (Kind::IpAddress, "listening on «127.0.0.1»:8080"),
    (Kind::IpAddress, "«255.255.255.255» broadcast"),
    (Kind::IpAddress, "«0.0.0.0»"),
    (Kind::IpAddress, "«2001:db8::1»"),
    (Kind::IpAddress, "«fe80::1ff:fe23:4567:890a»"),
    (Kind::IpAddress, "«2001:0db8:85a3:0000:0000:8a2e:0370:7334»"),
    (Kind::IpAddress, "loopback «::1»."),
    (Kind::IpAddress, "[«2001:db8::1»]:443"),
    (Kind::IpAddress, "mapped «::ffff:192.0.2.128»"),
    (Kind::IpAddress, "ip:«::1»"),
    (Kind::IpAddress, "addr:«::ffff:10.0.0.1» up"),
    (Kind::IpAddress, "ping «fe80::1»%eth0"),
    (Kind::IpAddress, "from «10.0.0.1», «10.0.0.2» and «10.0.0.3»."),
    (Kind::Iban, "«DE89 3704 0044 0532 0130 00»"),
    (Kind::Iban, "«GB82 WEST 1234 5698 7654 32»"),
    (Kind::Iban, "«FR14 2004 1010 0505 0001 3M02 606»"),
    (Kind::Iban, "IBAN «NL91ABNA0417164300»."),
    (Kind::Iban, "«CH93 0076 2011 6238 5295 7»"),
    (Kind::Iban, "«BE68 5390 0754 7034»"),
    (Kind::Iban, "«NO93 8601 1117 947»"),
    (Kind::Iban, "Konto: «AT611904300234573201»"),
    (Kind::Iban, "«PT50 0002 0123 1234 5678 9015 4»"),
    (Kind::Iban, "«DE89 3704 0044 0532 0130 00» is the account"),
    (Kind::ApiKey, "OPENAI_API_KEY=«sk-proj-PtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA_2O76UMFxFkM_R5Kj»"),
    (Kind::ApiKey, "«sk-hGAkWvj7FAc9QeWJKY40uvSwMFLZDe1f8rESQedUStPKR0Cs»"),
    (Kind::ApiKey, "x-api-key: «sk-ant-api03-XSc7Tvo_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWtGSU8po-799NksnRH9ucAAA»"),
    (Kind::ApiKey, "aws_access_key_id = «AKIAIOSFODNN7EXAMPLE»"),
    (Kind::ApiKey, "token: «ghp_88HxjSI6bWHtP3fS2qHx6kwXoIIXGvOoNZYW»."),
    (Kind::ApiKey, "«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»"),
    (Kind::ApiKey, "SLACK_TOKEN=\"«xoxb-220297299752-8820018263304-nsGpWLuqIA1id6Vw5DQL05HA»\""),
    (Kind::ApiKey, "stripe «sk_live_064GiIjHGb3CXlMaXZjljENU»,"),
    (Kind::ApiKey, "?key=«AIzaphP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jB»&q=x"),
    (Kind::Jwt, "Authorization: Bearer «eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c»"),
    (Kind::Jwt, "token «eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c». Done"),
    (Kind::PrivateKey, "«-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+LQmlQ\nYx2eqzDV+xeG8kx/sQFV18S5JhzGeIJNA72wSeukEPojtqUyX2J0CciPBh7eqclQ\n2zpAswIDAQAB\n-----END PRIVATE KEY-----»\n"),
    (Kind::PrivateKey, "crlf: «-----BEGIN RSA PRIVATE KEY-----\r\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\r\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\r\n-----END RSA PRIVATE KEY-----»\r\n"),
    (Kind::PrivateKey, "«-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----»"),
    (Kind::PrivateKey, "«-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDnjOx+V0vAqq3rGL4DlY0IB3mhAu3ENsOBBBqzpBFH5wAAAJhH5cj6R+XI\n-----END OPENSSH PRIVATE KEY-----»"),
    (Kind::PrivateKey, "  «-----BEGIN EC PRIVATE KEY-----\n  MHcCAQEEIIGlRHQ0eJ2JvS1kFf5dZ3e6gE9cI4wT+0eYQ3X2o1iVoAoGCCqGSM49\n  -----END EC PRIVATE KEY-----»"),
];

// ---------------------------------------------------------------------------------------------
// Look-alikes: generators by category, then a hand-written table
// ---------------------------------------------------------------------------------------------

/// Digits that fail Luhn.
fn gen_order_number(r: &mut Rng) -> String {
    let n = r.range(12, 19) as usize;
    loop {
        let s = format!("{}{}", *r.pick(NONZERO) as char, r.digits(n - 1));
        if !luhn_ok(&s) {
            return s;
        }
    }
}

/// A card-shaped number in a brand range, grouped like a card, failing Luhn.
fn gen_card_bad_luhn(r: &mut Rng) -> String {
    loop {
        let card: String = gen_card(r).value;
        let digits: String = card.chars().filter(char::is_ascii_digit).collect();
        let last = digits.as_bytes()[digits.len() - 1];
        let bumped = char::from(b'0' + (last - b'0' + 1 + r.below(8) as u8) % 10);
        let mut bad = card.clone();
        bad.pop();
        bad.push(bumped);
        let bad_digits: String = bad.chars().filter(char::is_ascii_digit).collect();
        if !luhn_ok(&bad_digits) {
            return bad;
        }
    }
}

/// A well-formed IBAN whose check digits are wrong.
fn gen_iban_bad_check(r: &mut Rng) -> String {
    let good = gen_iban(r).value;
    let compact: String = good.chars().filter(|c| *c != ' ').collect();
    let check: u32 = compact[2..4].parse().unwrap_or(2);
    let wrong = (check - 2 + 1 + r.below(95) as u32) % 97 + 2;
    let bad = format!("{}{wrong:02}{}", &good[..2], &good[4..]);
    let bad_compact: String = bad.chars().filter(|c| *c != ' ').collect();
    if iban_valid(&bad_compact) {
        return gen_iban_bad_check(r);
    }
    bad
}

fn gen_uuid(r: &mut Rng) -> String {
    let s = format!(
        "{}-{}-4{}-{}{}-{}",
        r.string(HEX, 8),
        r.string(HEX, 4),
        r.string(HEX, 3),
        *r.pick(b"89ab") as char,
        r.string(HEX, 3),
        r.string(HEX, 12)
    );
    if r.chance(20) {
        s.to_uppercase()
    } else {
        s
    }
}

fn gen_sha40(r: &mut Rng) -> String {
    r.string(HEX, 40)
}

fn gen_sha7(r: &mut Rng) -> String {
    format!("commit {}", r.string(HEX, 7))
}

fn gen_version(r: &mut Rng) -> String {
    let n = |r: &mut Rng| r.range(0, 30);
    match r.below(8) {
        0 => format!("{}.{}.{}", n(r), n(r), n(r)),
        1 => format!("v{}.{}.{}-beta", n(r), n(r), n(r)),
        2 => format!("v{}.{}.{}-rc.{}", n(r), n(r), n(r), n(r)),
        3 => format!(
            "version {}.{}.{}.{}",
            octet(r),
            octet(r),
            octet(r),
            octet(r)
        ),
        4 => format!(
            "Version: {}.{}.{}.{}",
            octet(r),
            octet(r),
            octet(r),
            octet(r)
        ),
        5 => format!("v{}.{}.{}.{}", octet(r), octet(r), octet(r), octet(r)),
        6 => format!(
            "Chrome/{}.0.{}.{}",
            r.range(90, 130),
            r.range(1000, 9999),
            r.range(10, 300)
        ),
        _ => format!(
            "Python {}.{}.{}",
            r.range(2, 3),
            r.range(0, 13),
            r.range(0, 20)
        ),
    }
}

fn date_parts(r: &mut Rng) -> (u64, u64, u64) {
    (r.range(1970, 2039), r.range(1, 12), r.range(1, 28))
}

fn gen_timestamp(r: &mut Rng) -> String {
    let (y, m, d) = date_parts(r);
    let (hh, mm, ss) = (r.range(0, 23), r.range(0, 59), r.range(0, 59));
    let tail = match r.below(4) {
        0 => "Z".to_string(),
        1 => format!(".{:03}Z", r.range(0, 999)),
        2 => format!("+{:02}:{}", r.range(0, 12), r.pick(&["00", "30"])),
        _ => format!("-{:02}:00", r.range(1, 11)),
    };
    match r.below(5) {
        0 => format!("{y}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
        1 => format!("{y}{m:02}{d:02}{hh:02}{mm:02}{ss:02}"),
        _ => format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{tail}"),
    }
}

fn gen_date(r: &mut Rng) -> String {
    let (y, m, d) = date_parts(r);
    match r.below(5) {
        0 => format!("{d:02}/{m:02}/{y}"),
        1 => format!("{y}.{m:02}.{d:02}"),
        2 => format!("{y}-{m:02}-{d:02}"),
        3 => format!("{m:02}/{d:02}/{y}"),
        _ => format!("{d:02}.{m:02}.{y}"),
    }
}

fn gen_time(r: &mut Rng) -> String {
    let (hh, mm, ss) = (r.range(0, 23), r.range(0, 59), r.range(0, 59));
    match r.below(3) {
        0 => format!("{hh:02}:{mm:02}:{ss:02}"),
        1 => format!("{hh:02}:{mm:02}"),
        _ => format!("{hh:02}:{mm:02}:{ss:02}.{:03}", r.range(0, 999)),
    }
}

fn gen_epoch_s(r: &mut Rng) -> String {
    r.range(1_000_000_000, 1_999_999_999).to_string()
}

fn gen_epoch_ms(r: &mut Rng) -> String {
    r.range(1_000_000_000_000, 1_999_999_999_999).to_string()
}

fn thousands(n: u64, sep: char) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

fn gen_price(r: &mut Rng) -> String {
    let whole = r.range(0, 99_999_999);
    let cents = r.range(0, 99);
    match r.below(7) {
        0 => format!("${}.{cents:02}", thousands(whole, ',')),
        1 => format!("€{}.{cents:02}", whole % 1000),
        2 => format!("{},{cents:02} €", thousands(whole, '.')),
        3 => format!("USD {}.{cents:02}", thousands(whole, ',')),
        4 => format!("£{}.{cents:02}", thousands(whole, ',')),
        5 => format!("{},{cents:02} €", thousands(whole, ' ')),
        _ => format!("CHF {}.–", thousands(whole, '\'')),
    }
}

fn gen_isbn(r: &mut Rng) -> String {
    if r.chance(50) {
        let body = format!("{}{}", r.pick(&["978", "979"]), r.digits(9));
        let sum: u32 = body
            .bytes()
            .enumerate()
            .map(|(i, c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        let isbn = format!("{body}{}", (10 - sum % 10) % 10);
        match r.below(3) {
            0 => isbn,
            1 => format!("ISBN {isbn}"),
            _ => format!(
                "ISBN {}-{}-{}-{}-{}",
                &isbn[..3],
                &isbn[3..4],
                &isbn[4..6],
                &isbn[6..12],
                &isbn[12..]
            ),
        }
    } else {
        let body = r.digits(9);
        let sum: u32 = body
            .bytes()
            .enumerate()
            .map(|(i, c)| u32::from(c - b'0') * (10 - i as u32))
            .sum();
        let check = match (11 - sum % 11) % 11 {
            10 => 'X',
            c => char::from_digit(c, 10).unwrap_or('0'),
        };
        match r.below(3) {
            0 => format!("ISBN {body}{check}"),
            1 => format!("ISBN-10: {body}{check}"),
            _ => format!("{}-{}-{}-{check}", &body[..1], &body[1..4], &body[4..]),
        }
    }
}

fn gen_gps(r: &mut Rng) -> String {
    let lat = r.range(0, 89_999_999) as f64 / 1e6;
    let lon = r.range(0, 179_999_999) as f64 / 1e6;
    let (sa, so) = (
        if r.chance(50) { "-" } else { "" },
        if r.chance(50) { "-" } else { "" },
    );
    let places = r.range(4, 6) as usize;
    match r.below(3) {
        0 => format!("{sa}{lat:.places$}, {so}{lon:.places$}"),
        1 => format!("({sa}{lat:.places$},{so}{lon:.places$})"),
        _ => format!("{lat:.4}° N, {lon:.4}° E"),
    }
}

fn gen_invoice(r: &mut Rng) -> String {
    match r.below(6) {
        0 => format!("INV-{}-{}", r.range(2000, 2030), r.digits(6)),
        1 => format!("PN-{}-{}", r.digits(4), r.digits(4)),
        2 => format!("SKU {}-{}-{}", r.digits(3), r.digits(4), r.digits(3)),
        3 => format!("PO-{}", r.digits(8)),
        4 => format!("1Z{}{}", r.string(UPPER_ALNUM, 8), r.digits(8)),
        _ => format!("Part No. {}-{}-{}", r.digits(4), r.digits(4), r.digits(2)),
    }
}

fn gen_port(r: &mut Rng) -> String {
    let port = r.range(1, 65535);
    match r.below(4) {
        0 => format!("localhost:{port}"),
        1 => format!("port {port}"),
        2 => format!("example.com:{port}"),
        _ => format!("http://db-{}.internal:{port}/", r.range(1, 9)),
    }
}

fn gen_invalid_phone(r: &mut Rng) -> String {
    let good_area = nanp_area(r);
    let good_exch = nanp_exchange(r);
    let (a, e) = match r.below(4) {
        0 => (format!("{}{}", r.range(0, 1), r.digits(2)), good_exch),
        1 => (format!("{}11", r.range(2, 9)), good_exch),
        2 => (good_area, format!("{}{}", r.range(0, 1), r.digits(2))),
        _ => ("123".to_string(), good_exch),
    };
    let l = r.digits(4);
    match r.below(4) {
        0 => format!("({a}) {e}-{l}"),
        1 => format!("{a}-{e}-{l}"),
        2 => format!("{a}.{e}.{l}"),
        _ => format!("{a} {e} {l}"),
    }
}

fn gen_invalid_ssn(r: &mut Rng) -> String {
    let (mut a, mut g, mut s) = (r.range(1, 899), r.range(1, 99), r.range(1, 9999));
    match r.below(5) {
        0 => a = 0,
        1 => a = 666,
        2 => a = r.range(900, 999),
        3 => g = 0,
        _ => s = 0,
    }
    format!("{a:03}-{g:02}-{s:04}")
}

fn gen_bare9(r: &mut Rng) -> String {
    format!("{}{}", *r.pick(NONZERO) as char, r.digits(8))
}

fn gen_bare10(r: &mut Rng) -> String {
    format!("{}{}", *r.pick(NONZERO) as char, r.digits(9))
}

fn gen_colour(r: &mut Rng) -> String {
    let n = *r.pick(&[3, 6, 8]);
    let s = format!("#{}", r.string(HEX, n));
    if r.chance(30) {
        s.to_uppercase()
    } else {
        s
    }
}

fn gen_mac(r: &mut Rng) -> String {
    let sep = if r.chance(70) { ":" } else { "-" };
    let s = (0..6)
        .map(|_| r.string(HEX, 2))
        .collect::<Vec<_>>()
        .join(sep);
    if r.chance(50) {
        s.to_uppercase()
    } else {
        s
    }
}

fn gen_fixed(list: &'static [&'static str]) -> impl Fn(&mut Rng) -> String {
    move |r| r.pick(list).to_string()
}

const RUST_PATHS: &[&str] = &[
    "std::io::Result",
    "crate::scrub::Kind",
    "core::fmt::Display",
    "u8::MAX",
    "i64::from",
    "f32::EPSILON",
    "f64::consts::PI",
    "std::collections::HashMap<u64, Vec<u8>>",
    "<T as Into<u128>>::into",
    "ab::cd::ef",
];

const NO_TLD_EMAILS: &[&str] = &[
    "user@localhost",
    "root@server01",
    "admin@intranet",
    "git@gitlab",
    "pi@raspberrypi",
];

const MENTIONS: &[&str] = &[
    "@octocat",
    "@alice-dev",
    "cc @bob_42",
    "@team/backend",
    "@here",
    "@2x",
];

const RETINA: &[&str] = &[
    "icon@2x.png",
    "logo@3x.jpg",
    "button@2x.webp",
    "sprite@1.5x.png",
    "hero@2x.avif",
];

const WORDS: &[&str] = &[
    "sk-learn",
    "scikit-learn",
    "task-force",
    "risk-free",
    "desk-top",
    "ask-me-anything-about-the-quarterly-results-and-the-roadmap",
    "sk-",
    "the sk- prefix",
    "ghp_",
    "AKIA",
    "xoxb",
    "eyJ",
    "-----BEGIN CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----",
    "BEGIN PRIVATE KEY",
];

type LookAlikeGen = Box<dyn Fn(&mut Rng) -> String>;

fn lookalike_generators() -> Vec<(&'static str, LookAlikeGen)> {
    vec![
        ("order_number", Box::new(gen_order_number)),
        ("card_bad_luhn", Box::new(gen_card_bad_luhn)),
        ("iban_bad_check", Box::new(gen_iban_bad_check)),
        ("uuid", Box::new(gen_uuid)),
        ("git_sha40", Box::new(gen_sha40)),
        ("git_sha7", Box::new(gen_sha7)),
        ("version", Box::new(gen_version)),
        ("timestamp", Box::new(gen_timestamp)),
        ("date", Box::new(gen_date)),
        ("time", Box::new(gen_time)),
        ("epoch_s", Box::new(gen_epoch_s)),
        ("epoch_ms", Box::new(gen_epoch_ms)),
        ("price", Box::new(gen_price)),
        ("isbn", Box::new(gen_isbn)),
        ("gps", Box::new(gen_gps)),
        ("invoice_part", Box::new(gen_invoice)),
        ("port", Box::new(gen_port)),
        ("phone_invalid", Box::new(gen_invalid_phone)),
        ("ssn_invalid", Box::new(gen_invalid_ssn)),
        ("bare_9_digits", Box::new(gen_bare9)),
        ("bare_10_digits", Box::new(gen_bare10)),
        ("hex_colour", Box::new(gen_colour)),
        ("mac", Box::new(gen_mac)),
        ("rust_path", Box::new(gen_fixed(RUST_PATHS))),
        ("email_no_tld", Box::new(gen_fixed(NO_TLD_EMAILS))),
        ("mention", Box::new(gen_fixed(MENTIONS))),
        ("retina_asset", Box::new(gen_fixed(RETINA))),
        ("words", Box::new(gen_fixed(WORDS))),
    ]
}

/// Neutral templates for look-alikes: no context word (ssn, phone, card, …) anywhere.
const LOOKALIKE_TEMPLATES: &[(&str, &str)] = &[
    ("", ""),
    ("See ", "."),
    ("(", ")"),
    ("{\"id\": \"", "\"}"),
    ("- ", "\n"),
    ("Müller schrieb: ", " — ok"),
    ("The value ", ", noted."),
    ("first line\n", "\nsecond line"),
    ("<td>", "</td>"),
];

/// Hand-written look-alikes; `«…»` marks the part that must stay untouched (default: all).
const TRICKY_LOOKALIKES: &[(&str, &str)] = &[
    ("order_number", "Order «4111 1111 1111 1112» (Luhn fails)"),
    ("order_number", "order #«123456789012» shipped"),
    ("uuid", "«550e8400-e29b-41d4-a716-446655440000»"),
    ("uuid", "request-id: «123e4567-e89b-12d3-a456-426614174000»"),
    (
        "git_sha40",
        "commit «9fceb02d0ae598e95dc970b74767f19372d61af8»",
    ),
    ("git_sha7", "fixed in «a1b2c3d»"),
    ("git_sha7", "fixed in «1234567»"),
    ("version", "«1.2.3»"),
    ("version", "«v2.14.0-beta»"),
    ("version", "Upgrade to «version 1.2.3.4» today"),
    (
        "version",
        "User-Agent: Mozilla/5.0 «Chrome/120.0.6099.109» Safari/537.36",
    ),
    ("timestamp", "«2024-01-15T10:30:00Z»"),
    ("timestamp", "at «2024-01-15T10:30:00+01:00»"),
    ("date", "«15/01/2024»"),
    ("date", "«2024.01.15»"),
    ("time", "«12:30:45»"),
    ("epoch_s", "created «1732291200»"),
    ("epoch_ms", "ts=«1732291200123»"),
    ("price", "«$1,299.99»"),
    ("price", "«€49.90»"),
    ("price", "«1.234,56» EUR"),
    ("isbn", "«978-3-16-148410-0»"),
    ("isbn", "«ISBN 0-306-40615-2»"),
    ("isbn", "«9780306406157»"),
    ("isbn", "«0306406152»"),
    ("gps", "«37.7749, -122.4194»"),
    ("invoice_part", "«INV-2024-000123»"),
    ("invoice_part", "«PN-4711-0815»"),
    ("invoice_part", "«SKU 123-4567-890»"),
    ("port", "«localhost:8080»"),
    ("port", "«port 5432»"),
    ("phone_invalid", "«(123) 555-0132»"),
    ("phone_invalid", "«911-555-0132»"),
    ("phone_invalid", "«411-555-0132»"),
    ("ssn_invalid", "«000-12-3456»"),
    ("ssn_invalid", "«666-12-3456»"),
    ("ssn_invalid", "«900-12-3456»"),
    ("bare_9_digits", "ticket «123456789»"),
    ("bare_10_digits", "reference «4155550132»"),
    ("hex_colour", "color: «#1a2b3c»;"),
    ("mac", "«00:1A:2B:3C:4D:5E»"),
    ("mac", "«00-1a-2b-3c-4d-5e»"),
    ("rust_path", "use «std::io::Result»;"),
    ("email_no_tld", "«user@localhost»"),
    ("mention", "thanks «@octocat»!"),
    ("retina_asset", "<img src=\"«icon@2x.png»\">"),
    ("words", "pip install «sk-learn»"),
    ("words", "the «task-force» met"),
];

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Text with the byte range of the entity (or look-alike) in it.
struct Case {
    text: String,
    span: Range<usize>,
}

fn embed(before: &str, value: &str, after: &str) -> Case {
    let text = format!("{before}{value}{after}");
    Case {
        span: before.len()..before.len() + value.len(),
        text,
    }
}

/// Removes the `«…»` markers; without markers the whole string is the span.
fn marked(s: &str) -> Vec<Case> {
    // A case may mark several entities: one case per marked span, all in the same text.
    let text: String = s.chars().filter(|c| *c != '«' && *c != '»').collect();
    let mut spans = Vec::new();
    let mut out_len = 0;
    let mut start = None;
    for c in s.chars() {
        match c {
            '«' => start = Some(out_len),
            '»' => spans.extend(start.take().map(|b| b..out_len)),
            c => out_len += c.len_utf8(),
        }
    }
    if spans.is_empty() {
        spans.push(0..text.len());
    }
    spans
        .into_iter()
        .map(|span| Case {
            text: text.clone(),
            span,
        })
        .collect()
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Counts and examples for one row of a table.
#[derive(Default)]
struct Row {
    total: usize,
    good: usize,
    near: usize,
    near_examples: Vec<String>,
    bad_examples: Vec<String>,
}

impl Row {
    fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.good as f64 / self.total as f64
        }
    }
}

fn describe(case: &Case, found: &[Finding]) -> String {
    let mut s = format!(
        "{:?} expected {:?} = {:?}; found",
        case.text,
        case.span,
        &case.text[case.span.clone()]
    );
    let hits: Vec<&Finding> = found
        .iter()
        .filter(|f| overlaps(&f.range, &case.span))
        .collect();
    if hits.is_empty() {
        s.push_str(" nothing");
    }
    for f in hits {
        let _ = write!(
            s,
            " {}@{:?}={:?}",
            f.kind,
            f.range,
            case.text
                .get(f.range.clone())
                .unwrap_or("<not a char boundary>")
        );
    }
    s
}

fn score_positive(scrubber: &Scrubber, kind: Kind, case: &Case, row: &mut Row) {
    let found = scrubber.find(&case.text);
    row.total += 1;
    if found.iter().any(|f| f.kind == kind && f.range == case.span) {
        row.good += 1;
    } else if found.iter().any(|f| overlaps(&f.range, &case.span)) {
        row.near += 1;
        if row.near_examples.len() < show() {
            row.near_examples.push(describe(case, &found));
        }
    } else if row.bad_examples.len() < show() {
        row.bad_examples.push(describe(case, &found));
    }
}

fn score_lookalike(scrubber: &Scrubber, case: &Case, row: &mut Row) {
    let found = scrubber.find(&case.text);
    row.total += 1;
    if found.iter().any(|f| overlaps(&f.range, &case.span)) {
        if row.bad_examples.len() < show() {
            row.bad_examples.push(describe(case, &found));
        }
    } else {
        row.good += 1;
    }
}

fn pct(x: f64) -> String {
    format!("{:6.2}%", 100.0 * x)
}

#[test]
fn corpus_is_well_formed() {
    // The hand-written cards and IBANs must themselves be valid, or the corpus is wrong.
    for (kind, s) in TRICKY_POSITIVES {
        for case in marked(s) {
            let v = &case.text[case.span.clone()];
            let compact: String = v.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            match kind {
                Kind::CreditCard => assert!(luhn_ok(&compact), "bad Luhn in corpus: {v}"),
                Kind::Iban => assert!(iban_valid(&compact), "bad IBAN in corpus: {v}"),
                _ => {}
            }
        }
    }
    let mut r = Rng::new(1);
    for _ in 0..1000 {
        let card: String = gen_card(&mut r)
            .value
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert!(luhn_ok(&card));
        let iban: String = gen_iban(&mut r)
            .value
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        assert!(iban_valid(&iban));
        assert!(!luhn_ok(&gen_order_number(&mut r)));
    }
    assert_eq!(
        compress_v6(&[0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        "2001:db8::1"
    );
    assert_eq!(compress_v6(&[0, 0, 0, 0, 0, 0, 0, 1]), "::1");
    assert_eq!(compress_v6(&[1, 0, 0, 0, 0, 0, 0, 0]), "1::");
    assert_eq!(base64(b"{\"alg\"", B64URL, false), "eyJhbGci");
}

#[test]
fn corpus() {
    let scrubber = match Scrubber::new(&Policy::default()) {
        Ok(s) => s,
        Err(e) => panic!("default policy must compile: {e}"),
    };

    // Positives.
    let mut rows: Vec<(Kind, Row)> = Vec::new();
    for &(kind, generate, seed, extra) in GENERATORS {
        let mut row = Row::default();
        let mut r = Rng::new(seed);
        for _ in 0..POSITIVES_PER_KIND {
            let sample = generate(&mut r);
            let (before, after) = match sample.context {
                Some(ctx) => ctx,
                None if r.chance(20) => *r.pick(extra),
                None => *r.pick(TEMPLATES),
            };
            score_positive(
                &scrubber,
                kind,
                &embed(before, &sample.value, after),
                &mut row,
            );
        }
        for (k, s) in TRICKY_POSITIVES.iter().filter(|(k, _)| *k == kind) {
            for case in marked(s) {
                score_positive(&scrubber, *k, &case, &mut row);
            }
        }
        rows.push((kind, row));
    }

    // Look-alikes.
    let mut looks: Vec<(&str, Row)> = Vec::new();
    let mut r = Rng::new(0x1007_A11E);
    for (category, generate) in lookalike_generators() {
        let mut row = Row::default();
        for _ in 0..LOOKALIKES_PER_CATEGORY {
            let value = generate(&mut r);
            let (before, after) = *r.pick(LOOKALIKE_TEMPLATES);
            score_lookalike(&scrubber, &embed(before, &value, after), &mut row);
        }
        for (_, s) in TRICKY_LOOKALIKES.iter().filter(|(c, _)| *c == category) {
            for case in marked(s) {
                score_lookalike(&scrubber, &case, &mut row);
            }
        }
        looks.push((category, row));
    }

    // Report.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<14} {:>6} {:>6} {:>8} {:>6} {:>6}",
        "type", "cases", "exact", "recall", "near", "missed"
    );
    for (kind, row) in &rows {
        let missed = row.total - row.good - row.near;
        let _ = writeln!(
            out,
            "{:<14} {:>6} {:>6} {:>8} {:>6} {:>6}",
            kind.name(),
            row.total,
            row.good,
            pct(row.rate()),
            row.near,
            missed
        );
    }
    let (mut lt, mut lg) = (0, 0);
    let _ = writeln!(
        out,
        "\n{:<16} {:>6} {:>9} {:>8}",
        "look-alike", "cases", "untouched", "rate"
    );
    for (category, row) in &looks {
        lt += row.total;
        lg += row.good;
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>9} {:>8}",
            category,
            row.total,
            row.good,
            pct(row.rate())
        );
    }
    let look_rate = lg as f64 / lt as f64;
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>9} {:>8}",
        "ALL",
        lt,
        lg,
        pct(look_rate)
    );

    let _ = writeln!(out, "\nExamples (at most {} per row and outcome):", show());
    for (kind, row) in &rows {
        for e in &row.near_examples {
            let _ = writeln!(out, "  [{kind} near] {e}");
        }
        for e in &row.bad_examples {
            let _ = writeln!(out, "  [{kind} missed] {e}");
        }
    }
    for (category, row) in &looks {
        for e in &row.bad_examples {
            let _ = writeln!(out, "  [look-alike {category} touched] {e}");
        }
    }
    println!("{out}");

    // Targets.
    let mut failures: Vec<String> = rows
        .iter()
        .filter(|(_, row)| row.rate() < TARGET)
        .map(|(kind, row)| format!("{kind} recall {}", pct(row.rate())))
        .collect();
    if look_rate < TARGET {
        failures.push(format!("look-alikes untouched {}", pct(look_rate)));
    }
    assert!(
        failures.is_empty(),
        "below the {} target: {}",
        pct(TARGET),
        failures.join(", ")
    );
}
