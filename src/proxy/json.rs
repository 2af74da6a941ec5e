//! Where text lives in a JSON body: everywhere.
//!
//! # Design
//! Lethe fails closed: every string value in a request or response body, at any depth, is
//! scrubbed, and so is every object key. Structural fields ([`STRUCTURAL`]: model names, roles,
//! types, ids, enums) are scrubbed too: one holds nothing a detector finds and passes unchanged,
//! and their names are no guarantee, since a client's own `metadata` may use `status` or `id`
//! for anything. The one exception is an opaque provider token ([`OPAQUE`]: a thinking block's
//! `signature`, `encrypted_content`) that reads as one, base64 of some length: the provider
//! checks it byte for byte, and a chance match inside it would break the conversation. A field
//! a provider adds tomorrow is scrubbed by default.
//!
//! Streamed events (see `events`) leave structural fields of the provider's envelope alone: they
//! are the provider's own, and the per-event cost counts there.
//!
//! Numbers, booleans and nulls are left alone. Key order is kept (providers render tool
//! schemas into the prompt in the order they receive them).
//!
//! Two ways to do it: on a [`Value`] ([`scrub_value`], [`restore_value`]), or on the bytes of a
//! whole document ([`scrub_document`]), which copies the document and rewrites only the strings
//! that change, without building a tree. The second is the proxy's first choice; it declines
//! documents outside a strict subset of JSON (see [`scrub_document`]), which then take the
//! first.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::sse;
use super::words::is_wire_word;
use crate::scrub::{restore, Counts, Scrubber, Vault};

/// Nesting accepted by [`scrub_document`] (`serde_json` stops at 128).
const MAX_DEPTH: usize = 64;

/// Keys one object may have in [`scrub_document`] (uniqueness is checked pairwise).
const MAX_KEYS: usize = 64;

/// Keys whose string values are identifiers, enums or opaque tokens, never user text.
pub const STRUCTURAL: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "object",
    "tool_call_id",
    "call_id",
    "item_id",
    "previous_response_id",
    "finish_reason",
    "stop_reason",
    "status",
    "signature",
    "encrypted_content",
    "system_fingerprint",
    "service_tier",
    "reasoning_effort",
    "encoding_format",
    "media_type",
    "detail",
    "tool_choice",
];

/// Whether `key`'s string value is left as it is in a streamed event's envelope.
pub fn is_structural(key: &str) -> bool {
    STRUCTURAL.contains(&key)
}

/// Keys whose values are opaque provider tokens, checked byte for byte by the provider.
pub const OPAQUE: &[&str] = &["signature", "encrypted_content"];

/// Shortest value of an [`OPAQUE`] key that is taken for a token.
const OPAQUE_MIN: usize = 32;

/// Whether the string value `raw` (as written in the document) of `key` is an opaque token,
/// left as it is: the key is one of [`OPAQUE`] and the value reads as base64, at least
/// [`OPAQUE_MIN`] bytes with no blank, `@` or escape. A client's `signature` with a name and a
/// phone number in it is text, and scrubbed.
fn is_opaque(key: &str, raw: &str) -> bool {
    let base64 =
        |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-');
    OPAQUE.contains(&key) && raw.len() >= OPAQUE_MIN && raw.as_bytes().iter().all(base64)
}

/// Scrubs every string in `value` but opaque provider tokens (see [`OPAQUE`]), and every object key,
/// in place.
pub fn scrub_value(value: &mut Value, scrubber: &Scrubber, vault: &mut Vault, counts: &mut Counts) {
    match value {
        Value::String(s) => scrub_string(s, scrubber, vault, counts),
        Value::Array(items) => {
            for item in items {
                scrub_value(item, scrubber, vault, counts);
            }
        }
        Value::Object(map) => scrub_object(map, scrubber, vault, counts),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Scrubs an object's keys and values (see [`scrub_value`]).
pub fn scrub_object(
    map: &mut Map<String, Value>,
    scrubber: &Scrubber,
    vault: &mut Vault,
    counts: &mut Counts,
) {
    let keys_change = map
        .keys()
        .any(|k| matches!(scrubber.scrub(k).text, std::borrow::Cow::Owned(_)));
    if keys_change {
        let old = std::mem::take(map);
        for (key, value) in old {
            let scrubbed = scrubber.scrub_in(&key, vault);
            counts.add(&scrubbed.counts);
            map.insert(unique_key(map, scrubbed.text.into_owned()), value);
        }
    }
    for (key, value) in map.iter_mut() {
        match value {
            Value::String(v) if is_opaque(key, v) => {}
            _ => scrub_value(value, scrubber, vault, counts),
        }
    }
}

/// `key`, or, when `map` has it already (two keys that scrub to the same label), `key #2`,
/// `key #3`, …: every member reaches the provider.
fn unique_key(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    let mut n = 2u64;
    loop {
        let candidate = format!("{key} #{n}");
        if !map.contains_key(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Scrubs one string in place; leaves it untouched when nothing matched.
pub fn scrub_string(s: &mut String, scrubber: &Scrubber, vault: &mut Vault, counts: &mut Counts) {
    let scrubbed = scrubber.scrub_in(s, vault);
    counts.add(&scrubbed.counts);
    if let std::borrow::Cow::Owned(new) = scrubbed.text {
        crate::alloc::Wipe::wipe(s);
        *s = new;
    }
}

/// Puts the originals back for every placeholder in `value`'s strings and keys.
pub fn restore_value(value: &mut Value, vault: &Vault) {
    match value {
        Value::String(s) => restore_string(s, vault),
        Value::Array(items) => items.iter_mut().for_each(|v| restore_value(v, vault)),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('[')) {
                let old = std::mem::take(map);
                for (key, value) in old {
                    map.insert(restore(&key, vault).into_owned(), value);
                }
            }
            map.values_mut().for_each(|v| restore_value(v, vault));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Restores placeholders in one string in place.
pub fn restore_string(s: &mut String, vault: &Vault) {
    if let std::borrow::Cow::Owned(new) = restore(s, vault) {
        *s = new;
    }
}

/// A document scrubbed by [`scrub_document`].
pub struct Document {
    /// The scrubbed document.
    pub bytes: Vec<u8>,
    /// The top-level `model` string, if any.
    pub model: Option<String>,
    /// Where the value of the top-level `usage` member is in the input, if there is one.
    pub usage: Option<std::ops::Range<usize>>,
    /// Whether `stream_options.include_usage` was added (see [`ask_for_usage`]).
    pub asked_for_usage: bool,
}

/// Adds `stream_options.include_usage: true` to a streamed request (`"stream": true`) that
/// does not ask for usage itself, so that the stream ends with a usage chunk for the meter;
/// `true` when it was added, and the usage chunk is then Lethe's to drop.
pub fn ask_for_usage(body: &mut Value) -> bool {
    if body.get("stream") != Some(&Value::Bool(true)) {
        return false;
    }
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    let options = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(options) = options.as_object_mut() else {
        return false;
    };
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return false;
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    true
}

/// What [`ask_for_usage`] appends to a top-level object without `stream_options`.
const ASK_FOR_USAGE: &[u8] = br#","stream_options":{"include_usage":true}"#;

/// Scrubs a JSON object document the way [`scrub_value`] (then, with `originals`,
/// [`restore_value`]) would, without parsing it into a tree: the document is copied and only
/// the strings that change are rewritten. Whitespace, escapes and numbers are kept as they
/// were sent; the result reads as the same JSON the tree path would produce.
///
/// `None`, with nothing scrubbed or counted, when the document is not an object in a strict
/// subset of JSON that `serde_json` reads the same way: keys without escapes, unique within
/// their object, at most 64 keys per object, nesting up to 64 levels, integers up to
/// 200 digits and other numbers of ordinary size, no lone surrogates; also when a key would
/// change. The caller then takes the tree path, which also decides whether it is JSON at all.
pub fn scrub_document(
    raw: &[u8],
    scrubber: &Scrubber,
    vault: &mut Vault,
    counts: &mut Counts,
    originals: Option<&Vault>,
    ask_usage: bool,
) -> Option<Document> {
    let put_back = |s: &str| -> Option<String> {
        match restore(s, originals?) {
            Cow::Owned(r) => Some(r),
            Cow::Borrowed(_) => None,
        }
    };
    let text = std::str::from_utf8(raw).ok()?;
    let mut walk = Walk {
        text,
        at: 0,
        // Room for a string every 32 bytes and a few levels of keys, so that a chat request or
        // answer is read without growing (and, through the allocator, wiping) either list.
        strings: Vec::with_capacity(8 + raw.len() / 32),
        keys: Vec::with_capacity(32),
        model: None,
        usage: None,
        stream: false,
        stream_options: false,
        skip_wire_words: !scrubber.has_dictionary(),
    };
    walk.space();
    if walk.peek()? != b'{' {
        return None;
    }
    walk.value(0, None)?;
    let close = walk.at - 1;
    walk.space();
    if walk.at != text.len() {
        return None;
    }
    let Walk {
        strings,
        model,
        usage,
        stream,
        stream_options,
        ..
    } = walk;
    let asked_for_usage = ask_usage && stream;
    if asked_for_usage && stream_options {
        // Rare: the tree merges the member into the client's own options.
        return None;
    }
    // Keys first: a key that would change declines the document before anything is numbered
    // (in `vault`; the keys number theirs in a scratch vault).
    // Most documents have no key left to look at (see `words`): the scratch vault is made on
    // demand.
    let mut scratch = None;
    for s in strings.iter().filter(|s| s.role == Role::Key) {
        let key = &text[s.span.clone()];
        let scratch = scratch.get_or_insert_with(Vault::new);
        let same = matches!(scrubber.scrub_in(key, scratch).text, Cow::Borrowed(_))
            && put_back(key).is_none();
        if !same {
            return None;
        }
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8);
    let mut copied = 0;
    let mut unescaped = crate::alloc::Wiped::new(String::new());
    for s in strings.iter().filter(|s| s.role != Role::Key) {
        let value: &str = if s.escaped {
            unescaped.clear();
            unescape(&text[s.span.clone()], Some(&mut unescaped));
            &unescaped
        } else {
            &text[s.span.clone()]
        };
        let scrubbed = if s.role == Role::Text {
            let scrubbed = scrubber.scrub_in(value, vault);
            counts.add(&scrubbed.counts);
            scrubbed.text
        } else {
            Cow::Borrowed(value)
        };
        let changed = match scrubbed {
            Cow::Borrowed(v) => put_back(v),
            Cow::Owned(mut v) => {
                if let Some(r) = put_back(&v) {
                    crate::alloc::Wipe::wipe(&mut v);
                    v = r;
                }
                Some(v)
            }
        };
        if let Some(mut new) = changed {
            put(&mut out, &raw[copied..s.span.start]);
            escape_into(&new, &mut out);
            crate::alloc::Wipe::wipe(&mut new);
            copied = s.span.end;
        }
    }
    if asked_for_usage {
        // The object has a `stream` member, so the added one follows a comma.
        put(&mut out, &raw[copied..close]);
        put(&mut out, ASK_FOR_USAGE);
        copied = close;
    }
    put(&mut out, &raw[copied..]);
    Some(Document {
        bytes: out,
        model,
        usage,
        asked_for_usage,
    })
}

/// What a string is in a document.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    /// An opaque token (see [`is_opaque`]): left as it is.
    Opaque,
    /// Any other string value: scrubbed.
    Text,
}

struct Found {
    /// Between the quotes.
    span: std::ops::Range<usize>,
    escaped: bool,
    role: Role,
}

/// The strict reader behind [`scrub_document`].
struct Walk<'a> {
    text: &'a str,
    at: usize,
    strings: Vec<Found>,
    /// Keys of the objects being read, innermost last (to check uniqueness).
    keys: Vec<&'a str>,
    model: Option<String>,
    usage: Option<std::ops::Range<usize>>,
    /// The top-level `stream` member is `true`.
    stream: bool,
    /// The top-level object has a `stream_options` member.
    stream_options: bool,
    /// Leave the wire format's own words alone (see [`super::words`]): no scrubber without a
    /// dictionary changes one.
    skip_wire_words: bool,
}

impl<'a> Walk<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string literal: its inside and whether it has escapes.
    fn string(&mut self) -> Option<(std::ops::Range<usize>, bool)> {
        let start = self.at + 1;
        let (end, escaped) = string_end(self.text.as_bytes(), start)?;
        let span = start..end;
        self.at = end + 1;
        if escaped {
            unescape(self.text.get(span.clone())?, None)?;
        }
        Some((span, escaped))
    }

    fn number(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        self.at += usize::from(bytes[self.at] == b'-');
        let digits = |at: usize| {
            bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let int = digits(self.at);
        if int == 0 || (int > 1 && bytes[self.at] == b'0') {
            return None;
        }
        self.at += int;
        let mut plain = true;
        if self.peek() == Some(b'.') {
            let frac = digits(self.at + 1);
            if frac == 0 {
                return None;
            }
            self.at += 1 + frac;
            plain = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            let exp = digits(self.at);
            // Keeps the value inside `f64`'s range, as `serde_json` requires.
            if exp == 0 || exp > 2 {
                return None;
            }
            self.at += exp;
            plain = false;
        }
        // Integers are copied as they were sent, however long: the tree path would turn one
        // beyond 64 bits into a float and lose its last digits (an id, a seed). 200 digits stay
        // inside `f64`'s range, which `serde_json` requires of the documents it reads.
        (int <= 200 && (plain || self.at - start <= 41)).then_some(())
    }

    /// Reads one value; `key`: the key it is the value of, if any.
    fn value(&mut self, depth: usize, key: Option<&str>) -> Option<()> {
        self.space();
        match self.peek()? {
            b'"' => {
                let (span, escaped) = self.string()?;
                if !escaped && self.skip_wire_words && is_wire_word(&self.text[span.clone()]) {
                    return Some(());
                }
                let opaque =
                    !escaped && key.is_some_and(|k| is_opaque(k, &self.text[span.clone()]));
                let role = if opaque { Role::Opaque } else { Role::Text };
                self.strings.push(Found {
                    span,
                    escaped,
                    role,
                });
            }
            b'{' => self.object(depth + 1)?,
            b'[' => {
                if depth + 1 > MAX_DEPTH {
                    return None;
                }
                self.at += 1;
                self.space();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1, None)?;
                    self.space();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number()?,
            _ => {
                let rest = &self.text.as_bytes()[self.at..];
                let len = [&b"null"[..], b"true", b"false"]
                    .iter()
                    .find(|w| rest.starts_with(w))?
                    .len();
                self.at += len;
            }
        }
        Some(())
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let base = self.keys.len();
        loop {
            self.space();
            if self.peek()? != b'"' {
                return None;
            }
            let (span, escaped) = self.string()?;
            let key = &self.text[span.clone()];
            if escaped || self.keys.len() - base == MAX_KEYS || self.keys[base..].contains(&key) {
                return None;
            }
            self.keys.push(key);
            if !(self.skip_wire_words && is_wire_word(key)) {
                self.strings.push(Found {
                    span,
                    escaped: false,
                    role: Role::Key,
                });
            }
            self.space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            if depth == 1 && key == "model" {
                self.space();
                if self.peek() == Some(b'"') {
                    let start = self.at + 1;
                    self.value(depth, Some(key))?;
                    // Between the quotes.
                    let raw = &self.text[start..self.at - 1];
                    let mut model = crate::alloc::Wiped::new(String::new());
                    unescape(raw, Some(&mut model))?;
                    self.model = Some(model.to_string());
                } else {
                    self.value(depth, Some(key))?;
                }
            } else if depth == 1 && key == "stream" {
                self.space();
                self.stream = self.text.as_bytes()[self.at..].starts_with(b"true");
                self.value(depth, None)?;
            } else if depth == 1 && key == "usage" {
                self.space();
                let start = self.at;
                self.value(depth, Some(key))?;
                self.usage = Some(start..self.at);
            } else {
                self.stream_options |= depth == 1 && key == "stream_options";
                self.value(depth, Some(key))?;
            }
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    self.keys.truncate(base);
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Checks JSON string escapes (`out: None`) or decodes them into `out`. `None`: not a string
/// `serde_json` would read (a bad escape or a lone surrogate).
pub(crate) fn unescape(raw: &str, mut out: Option<&mut crate::alloc::Wiped<String>>) -> Option<()> {
    let bytes = raw.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[at..]) {
        let slash = at + found;
        if let Some(out) = out.as_deref_mut() {
            sse::reserve_str(out, slash - copied + 4);
            out.push_str(&raw[copied..slash]);
        }
        let (c, len) = match *bytes.get(slash + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let high = hex4(bytes.get(slash + 2..slash + 6)?)?;
                if (0xD800..0xDC00).contains(&high) {
                    if bytes.get(slash + 6..slash + 8)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(bytes.get(slash + 8..slash + 12)?)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    (char::from_u32(code)?, 12)
                } else {
                    (char::from_u32(high)?, 6)
                }
            }
            _ => return None,
        };
        if let Some(out) = out.as_deref_mut() {
            out.push(c);
        }
        at = slash + len;
        copied = at;
    }
    if let Some(out) = out {
        sse::reserve_str(out, raw.len() - copied);
        out.push_str(&raw[copied..]);
    }
    Some(())
}

/// `data` with every lone UTF-16 surrogate escape (`\ud83d` without its pair) replaced by
/// `\ufffd`, as a lossy UTF-8 decoder replaces an invalid sequence; `None` when there is none.
///
/// `serde_json` refuses a lone surrogate, and a provider may cut an emoji's pair across two
/// events. Replacing it lets the event be read and its text go through its stream scrubber like
/// any other, instead of ending the stream. Escapes are read in order, so `\\ude00` (an
/// escaped backslash, then letters) is left alone; outside strings JSON has no backslash.
pub(crate) fn replace_lone_surrogates(data: &str) -> Option<crate::alloc::Wiped<String>> {
    let bytes = data.as_bytes();
    let mut out: Option<crate::alloc::Wiped<String>> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let slash = at + found;
        if bytes.get(slash + 1) != Some(&b'u') {
            at = slash + 2;
            continue;
        }
        let unit = bytes.get(slash + 2..slash + 6).and_then(hex4);
        let paired = |unit: Option<u32>| {
            unit.is_some_and(|high| (0xD800..0xDC00).contains(&high))
                && bytes.get(slash + 6..slash + 8) == Some(&b"\\u"[..])
                && bytes
                    .get(slash + 8..slash + 12)
                    .and_then(hex4)
                    .is_some_and(|low| (0xDC00..0xE000).contains(&low))
        };
        match unit {
            Some(_) if paired(unit) => at = slash + 12,
            Some(0xD800..0xE000) => {
                let text = out.get_or_insert_with(|| {
                    crate::alloc::Wiped::new(String::with_capacity(data.len()))
                });
                text.push_str(&data[copied..slash]);
                text.push_str("\\ufffd");
                at = slash + 6;
                copied = at;
            }
            _ => at = slash + 2,
        }
    }
    let mut text = out?;
    text.push_str(&data[copied..]);
    Some(text)
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
}

/// Reads a string literal's inside from `from` (just past the opening quote): where its closing
/// quote is and whether it has escapes. `None` if it does not end or holds a control character
/// (which `serde_json` refuses); escapes themselves are not checked here.
pub(crate) fn string_end(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut at = from;
    let mut escaped = false;
    loop {
        // Most strings of an API body are short keys, ids and deltas: eight bytes at a time up
        // to the first that matters, then byte by byte (only the last few bytes of the input
        // are read that way). Past 32 plain bytes the string is likely long (a prompt), and
        // vector searches take over.
        let mut words = 0;
        while let Some(word) = bytes.get(at..at + 8) {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(word);
            let found = notable(u64::from_le_bytes(eight));
            if found != 0 {
                at += (found.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
            words += 1;
            if words == 4 {
                return long_string_end(bytes, at, escaped);
            }
        }
        // A word that matters holds a byte that stops this loop (or the input ends first).
        loop {
            match *bytes.get(at)? {
                b'"' => return Some((at, escaped)),
                b'\\' => {
                    // The escaped byte is checked like the others; the escape itself is not.
                    if *bytes.get(at + 1)? < 0x20 {
                        return None;
                    }
                    escaped = true;
                    at += 2;
                    break;
                }
                0..0x20 => return None,
                _ => at += 1,
            }
        }
    }
}

/// [`string_end`] from `at` on, for long strings: the bytes before `at` are known plain.
fn long_string_end(bytes: &[u8], mut at: usize, mut escaped: bool) -> Option<(usize, bool)> {
    let checked = at;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at] == b'"' {
            break;
        }
        escaped = true;
        at += 2;
    }
    (!has_control(&bytes[checked..at])).then_some((at, escaped))
}

/// The quotes, backslashes and control characters among the eight bytes of `word` (read
/// little-endian): the high bit of each such byte is set. The classic "has a zero byte" and
/// "has a byte below n" tests: zero exactly when there is none, and the lowest bit set is
/// exact (a borrow may also mark bytes above a marked one, never below).
fn notable(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    below(quote, 1) | below(backslash, 1) | below(word, 0x20)
}

/// Whether `bytes` holds a control character (which a JSON string must escape). A branch-free
/// fold, which the compiler turns into vector code.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |seen, &b| seen | (b < 0x20))
}

/// Appends `bytes` to `out`, growing it the wiping way.
pub(crate) fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    sse::reserve(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends `text` as the inside of a JSON string literal, escaped the way `serde_json` does.
pub(crate) fn escape_into(text: &str, out: &mut Vec<u8>) {
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let bytes = text.as_bytes();
    if memchr::memchr2(b'"', b'\\', bytes).is_none() && !has_control(bytes) {
        put(out, bytes);
        return;
    }
    let first = bytes.iter().position(|&b| needs(b)).unwrap_or(bytes.len());
    // At most six bytes per escaped byte (`\u00XX`).
    sse::reserve(out, bytes.len() + 5 * (bytes.len() - first));
    out.extend_from_slice(&bytes[..first]);
    for &b in &bytes[first..] {
        if !needs(b) {
            out.push(b);
            continue;
        }
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{Policy, Style};
    use serde_json::json;

    #[test]
    fn keys_that_scrub_alike_keep_every_member() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let mut v = json!({"metadata": {"a@b.io": 1, "c@d.io": 2, "[EMAIL]": 3, "x": 4}});
        let mut counts = Counts::default();
        scrub_value(&mut v, &scrubber, &mut Vault::new(), &mut counts);
        assert_eq!(
            v["metadata"],
            json!({"[EMAIL]": 1, "[EMAIL] #2": 2, "[EMAIL] #3": 3, "x": 4})
        );
        assert_eq!(counts.total(), 2);
    }

    #[test]
    fn every_string_but_structural_fields_is_scrubbed() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let mut v = json!({
            "model": "gpt-4o-mini-4111111111111111",
            "messages": [
                {"role": "user", "content": "mail a@b.io"},
                {"role": "user", "content": [{"type": "text", "text": "ssn 123-45-6789"}]}
            ],
            "metadata": {"bob@example.com": "x"},
            "n": 4111111111111111u64,
            "new_field_tomorrow": {"deep": ["call 415-555-0132"]}
        });
        let mut counts = Counts::default();
        scrub_value(&mut v, &scrubber, &mut Vault::new(), &mut counts);
        assert_eq!(v["model"], "gpt-4o-mini-4111111111111111");
        assert_eq!(v["messages"][0]["content"], "mail [EMAIL]");
        assert_eq!(v["messages"][1]["content"][0]["text"], "ssn [SSN]");
        assert!(v["metadata"].get("[EMAIL]").is_some());
        assert_eq!(v["n"], 4111111111111111u64);
        assert_eq!(v["new_field_tomorrow"]["deep"][0], "call [PHONE]");
        assert_eq!(counts.total(), 4);
        let order: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            order,
            ["model", "messages", "metadata", "n", "new_field_tomorrow"]
        );
    }

    #[test]
    fn structural_names_in_client_objects_are_scrubbed_and_opaque_tokens_kept() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let signature =
            "EqQBCkYIBBgCIkB3c2lnbmF0dXJlIDQxMTEgMTExMSAxMTExIDExMTE=+/AKIAIOSFODNN7EXAMPLE";
        let body = json!({
            "model": "gpt-4o",
            "metadata": {"status": "jane@example.com", "id": "415-555-0132", "type": "user"},
            "messages": [{"role": "assistant", "content": [
                {"type": "thinking", "thinking": "ok", "signature": signature},
                {"type": "text", "text": "hi", "signature": "call 415-555-0132"}
            ]}]
        });
        let raw = serde_json::to_vec(&body).unwrap();
        let mut v = body.clone();
        scrub_value(&mut v, &scrubber, &mut Vault::new(), &mut Counts::default());
        let mut vault = Vault::new();
        let doc = scrub_document(
            &raw,
            &scrubber,
            &mut vault,
            &mut Counts::default(),
            None,
            false,
        )
        .expect("a plain document");
        let from_doc: Value = serde_json::from_slice(&doc.bytes).unwrap();
        for v in [v, from_doc] {
            assert_eq!(v["model"], "gpt-4o");
            assert_eq!(v["metadata"]["status"], "[EMAIL]");
            assert_eq!(v["metadata"]["id"], "[PHONE]");
            assert_eq!(v["metadata"]["type"], "user");
            assert_eq!(v["messages"][0]["role"], "assistant");
            assert_eq!(v["messages"][0]["content"][0]["signature"], signature);
            assert_eq!(v["messages"][0]["content"][1]["signature"], "call [PHONE]");
        }
    }

    #[test]
    fn placeholders_round_trip() {
        let scrubber = Scrubber::new(&Policy::default().with_style(Style::Placeholder)).unwrap();
        let mut vault = Vault::new();
        let mut v = json!({"content": "write to a@b.io and a@b.io"});
        scrub_value(&mut v, &scrubber, &mut vault, &mut Counts::default());
        assert_eq!(v["content"], "write to [EMAIL_1] and [EMAIL_1]");
        let mut answer = json!({"choices": [{"message": {"content": "Sent to [EMAIL_1]."}}]});
        restore_value(&mut answer, &vault);
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "Sent to a@b.io."
        );
    }

    /// `string_end` against the definition: the first unescaped quote, any control byte
    /// (escaped or not) before it refuses the string.
    #[test]
    fn string_end_finds_the_closing_quote_at_every_offset() {
        fn reference(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
            let mut at = from;
            let mut escaped = false;
            loop {
                match *bytes.get(at)? {
                    b'"' => return Some((at, escaped)),
                    b'\\' => {
                        escaped = true;
                        if *bytes.get(at + 1)? < 0x20 {
                            return None;
                        }
                        at += 2;
                    }
                    0..0x20 => return None,
                    _ => at += 1,
                }
            }
        }
        let alphabet: &[u8] = b"a\"\\\x00\x1f \x7f\xc3\xa9\xff";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            crate::xorshift(&mut seed);
            let len = (seed % 100) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    let pick = (seed >> (i % 48)) as usize;
                    // Mostly plain bytes, so that the eight-at-a-time loop and the long-string
                    // search run too.
                    if pick % 9 == 0 {
                        alphabet[pick / 9 % alphabet.len()]
                    } else {
                        b'a' + (pick % 26) as u8
                    }
                })
                .collect();
            for from in 0..=bytes.len() {
                assert_eq!(
                    string_end(&bytes, from),
                    reference(&bytes, from),
                    "{bytes:?} {from}"
                );
            }
        }
    }
}

#[cfg(test)]
mod document {
    //! [`scrub_document`] against the tree path: same document in, same JSON out.
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::scrub::{Policy, Style};

    const PIECES: &[&str] = &[
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "call 415-555-0132 ",
        "[EMAIL_1]",
        "\"q\"\\",
        "\n\t\u{1}",
        "é𝄞\u{2028}/",
        "plain ",
        // Words of the wire format (see `words`), left alone unless a dictionary has them.
        "assistant",
        "stop",
        "",
    ];

    const KEYS: &[&str] = &[
        "model", "role", "content", "id", "text", "messages", "n", "x y",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..3).prop_map(|p| p.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<u32>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(
                    |entries| Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect()
                    )
                ),
            ]
        })
    }

    /// JSON as a client might spell it: maybe every non-ASCII character and `/` escaped, maybe
    /// pretty.
    fn spell(value: &Value, ascii: bool, pretty: bool) -> String {
        let plain = if pretty {
            serde_json::to_string_pretty(value).unwrap()
        } else {
            value.to_string()
        };
        if !ascii {
            return plain;
        }
        let mut out = String::new();
        for c in plain.chars() {
            match c {
                '/' => out.push_str("\\/"),
                c if c.is_ascii() => out.push(c),
                c => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out
    }

    fn originals(placeholders: bool) -> Vault {
        let mut vault = Vault::new();
        if placeholders {
            let request = Scrubber::new(&Policy::default().with_style(Style::Placeholder)).unwrap();
            let _ = request.scrub_in("jane.doe@example.com", &mut vault);
        }
        vault
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn document_and_tree_agree(
            entries in prop::collection::vec((prop::sample::select(KEYS), value()), 0..6),
            ascii in any::<bool>(),
            pretty in any::<bool>(),
            style in prop::sample::select(vec![Style::Label, Style::Placeholder]),
            placeholders in any::<bool>(),
            stream in prop::option::of(prop_oneof![Just(Value::Bool(true)), value()]),
            stream_options in prop::option::of(value()),
            ask_usage in any::<bool>(),
            dictionary in any::<bool>(),
        ) {
            let mut value = Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            for (key, member) in [("stream", stream), ("stream_options", stream_options)] {
                if let Some(member) = member {
                    value.as_object_mut().unwrap().insert(key.to_owned(), member);
                }
            }
            let raw = spell(&value, ascii, pretty);
            let mut policy = Policy::default().with_style(style);
            if dictionary {
                policy = policy.with_terms(["assistant"]);
            }
            let scrubber = Scrubber::new(&policy).unwrap();
            let originals = originals(placeholders);

            let (mut vault, mut counts) = (Vault::new(), Counts::default());
            let document = scrub_document(raw.as_bytes(), &scrubber, &mut vault, &mut counts, Some(&originals), ask_usage);
            let (mut tree_vault, mut tree_counts) = (Vault::new(), Counts::default());
            let mut tree: Value = serde_json::from_str(&raw).unwrap();
            scrub_value(&mut tree, &scrubber, &mut tree_vault, &mut tree_counts);
            if !originals.is_empty() {
                restore_value(&mut tree, &originals);
            }
            let asked = ask_usage && ask_for_usage(&mut tree);
            let merged = ask_usage
                && value.get("stream") == Some(&Value::Bool(true))
                && value.get("stream_options").is_some();
            let Some(document) = document else {
                prop_assert!(merged, "a plain document takes the fast path");
                return Ok(());
            };
            prop_assert!(!merged);
            prop_assert_eq!(document.asked_for_usage, asked);
            let got: Value = serde_json::from_slice(&document.bytes).unwrap();
            prop_assert_eq!(got, tree);
            prop_assert_eq!(counts, tree_counts);
            prop_assert_eq!(document.model.as_deref(), value.get("model").and_then(Value::as_str));
            if style == Style::Placeholder {
                prop_assert_eq!(restore("[EMAIL_1] [CARD_1]", &vault), restore("[EMAIL_1] [CARD_1]", &tree_vault));
            }
        }
    }

    #[test]
    fn documents_outside_the_subset_are_declined() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        for raw in [
            r#"["not an object"]"#,
            r#"{"a":1,"a":2}"#,
            r#"{"jane.doe@example.com":1}"#,
            r#"{"a\u0062":1}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":1e400}"#,
            r#"{"a":1234567890123456789012345678901234567890.5}"#,
            r#"{"a":01}"#,
            r#"{"a":1} x"#,
            r#"{"a":"tab	inside"}"#,
            r#"{"a":[1,]}"#,
            "{\"a\":1",
        ] {
            let mut counts = Counts::default();
            let got = scrub_document(
                raw.as_bytes(),
                &scrubber,
                &mut Vault::new(),
                &mut counts,
                None,
                false,
            );
            assert!(got.is_none(), "{raw}");
            assert_eq!(counts.total(), 0);
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        assert!(scrub_document(
            deep.as_bytes(),
            &scrubber,
            &mut Vault::new(),
            &mut Counts::default(),
            None,
            false
        )
        .is_none());
        let doc = scrub_document(
            br#"{ "model" : "m\u0031", "x": [ "mail jane.doe@example.com" , -0.5e-3 ], "seed": -123456789012345678901234567890 }"#,
            &scrubber,
            &mut Vault::new(),
            &mut Counts::default(),
            None,
            false,
        )
        .unwrap();
        assert_eq!(doc.model.as_deref(), Some("m1"));
        assert_eq!(
            String::from_utf8(doc.bytes).unwrap(),
            r#"{ "model" : "m\u0031", "x": [ "mail [EMAIL]" , -0.5e-3 ], "seed": -123456789012345678901234567890 }"#,
            "an integer beyond 64 bits keeps every digit"
        );
    }

    #[test]
    fn the_top_level_usage_member_is_found_and_nested_ones_are_not() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let raw = br#"{"choices":[{"message":{"usage":{"x":1}}}],"usage": {"prompt_tokens":3,"completion_tokens":4} ,"id":"a"}"#;
        let doc = scrub_document(
            raw,
            &scrubber,
            &mut Vault::new(),
            &mut Counts::default(),
            None,
            false,
        )
        .unwrap();
        let span = doc.usage.unwrap();
        assert_eq!(
            &raw[span.clone()],
            br#"{"prompt_tokens":3,"completion_tokens":4}"#
        );
        let usage = crate::proxy::usage::Usage::of_member(&raw[span]);
        assert_eq!(usage, crate::proxy::usage::Usage::of_body(raw));
        assert_eq!((usage.input, usage.output), (3, 4));
        let none = scrub_document(
            br#"{"a":{"usage":{"prompt_tokens":3}}}"#,
            &scrubber,
            &mut Vault::new(),
            &mut Counts::default(),
            None,
            false,
        )
        .unwrap();
        assert!(none.usage.is_none());
    }
}
