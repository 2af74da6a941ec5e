//! Query strings: scrubbed like header values before they leave the box.
//!
//! A query is read as the form encoding providers and SDKs use: `&`-separated `name=value`
//! pairs, percent escapes, `+` for a space. Each name and value is decoded and scrubbed; one
//! the scrubber changed is encoded again (every byte but `A-Z a-z 0-9 - . _ ~` as an escape, a
//! space as `%20`, which reads as a space whichever way the receiver decodes `+`), and one with
//! nothing found goes out byte for byte. So `?limit=20&after=msg_1` is forwarded untouched and
//! `?user=jane%40example.com` leaves as `?user=%5BEMAIL%5D`.
//!
//! Fail closed: a query that cannot be decoded (a broken escape, bytes that are not UTF-8)
//! cannot be scrubbed, so [`scrub`] refuses it and the request is answered 400.

use crate::alloc::Wiped;
use crate::scrub::{Counts, Scrubber, Vault};

/// The query cannot be decoded, so it cannot be scrubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable;

/// Scrubs `query` (without its `?`), numbering placeholders in `vault`. `None` when nothing
/// was found: the query goes out as it came.
pub fn scrub(
    query: &str,
    scrubber: &Scrubber,
    vault: &mut Vault,
    counts: &mut Counts,
) -> Result<Option<String>, Undecodable> {
    let mut out = String::new();
    let mut changed = false;
    let mut decoded = Wiped::new(String::new());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (pair, None),
        };
        for (j, part) in std::iter::once(name).chain(value).enumerate() {
            if j > 0 {
                out.push('=');
            }
            decode(part, &mut decoded)?;
            let scrubbed = scrubber.scrub_in(&decoded, vault);
            match scrubbed.text {
                std::borrow::Cow::Borrowed(_) => out.push_str(part),
                std::borrow::Cow::Owned(text) => {
                    let text = Wiped::new(text);
                    counts.add(&scrubbed.counts);
                    encode(&text, &mut out);
                    changed = true;
                }
            }
        }
    }
    Ok(changed.then_some(out))
}

/// Decodes one form-encoded component into `out`.
fn decode(part: &str, out: &mut String) -> Result<(), Undecodable> {
    out.clear();
    let bytes = part.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        out.push_str(part);
        return Ok(());
    }
    let mut raw = Wiped::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(Undecodable)?;
                let digit = |b: u8| char::from(b).to_digit(16).ok_or(Undecodable);
                let value = digit(hex[0])? * 16 + digit(hex[1])?;
                raw.push(u8::try_from(value).map_err(|_| Undecodable)?);
                i += 3;
            }
            b'+' => {
                raw.push(b' ');
                i += 1;
            }
            b => {
                raw.push(b);
                i += 1;
            }
        }
    }
    out.push_str(std::str::from_utf8(&raw).map_err(|_| Undecodable)?);
    Ok(())
}

/// Appends `text` percent-encoded: only unreserved bytes stay as they are.
fn encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{Kind, Policy, Style};

    fn run(query: &str, style: Style) -> Result<Option<String>, Undecodable> {
        let scrubber = Scrubber::new(&Policy::default().with_style(style)).expect("policy");
        let mut counts = Counts::default();
        scrub(query, &scrubber, &mut Vault::new(), &mut counts)
    }

    #[test]
    fn a_query_with_nothing_found_goes_out_as_it_came() {
        for query in [
            "",
            "limit=20&after=msg_01H",
            "beta=true",
            "api-version=2024-10-21",
            "a=%7E%20x+y&flag",
            "order=desc&&x=",
        ] {
            assert_eq!(run(query, Style::Label), Ok(None), "{query}");
        }
    }

    #[test]
    fn values_and_names_are_scrubbed_after_decoding() {
        let cases = [
            ("user=jane%40example.com", "user=%5BEMAIL%5D"),
            ("user=jane@example.com&limit=5", "user=%5BEMAIL%5D&limit=5"),
            ("jane@example.com", "%5BEMAIL%5D"),
            ("q=call+415-555-0132+now", "q=call%20%5BPHONE%5D%20now"),
            ("ssn=123-45-6789=x", "ssn=%5BSSN%5D%3Dx"),
            (
                "a=1&card=4111%201111%201111%201111",
                "a=1&card=%5BCREDIT_CARD%5D",
            ),
        ];
        for (query, want) in cases {
            assert_eq!(
                run(query, Style::Label),
                Ok(Some(want.to_owned())),
                "{query}"
            );
        }
    }

    #[test]
    fn placeholders_are_numbered_in_the_request_vault() {
        let scrubber =
            Scrubber::new(&Policy::default().with_style(Style::Placeholder)).expect("policy");
        let mut vault = Vault::new();
        let mut counts = Counts::default();
        let out = scrub("to=a%40b.io&cc=a@b.io", &scrubber, &mut vault, &mut counts)
            .expect("decodable")
            .expect("changed");
        assert_eq!(out, "to=%5BEMAIL_1%5D&cc=%5BEMAIL_1%5D");
        assert_eq!(counts.get(Kind::Email), 2);
        assert!(!vault.is_empty());
    }

    #[test]
    fn an_undecodable_query_is_refused() {
        for query in ["a=%", "a=%4", "a=%zz", "a=%FF", "x=%C3%28", "%E2%82=1"] {
            assert_eq!(run(query, Style::Label), Err(Undecodable), "{query}");
        }
    }
}
