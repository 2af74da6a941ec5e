//! The common delta events, scrubbed without building a JSON tree.
//!
//! # Design
//! Most events of a stream carry one small piece of text in a fixed envelope: an OpenAI chat
//! chunk with one choice and `delta.content`, a completions `text`, a Responses `*.delta`, an
//! Anthropic `content_block_delta`. Parsing each into a [`serde_json::Value`], scrubbing every
//! string and serializing it again costs far more than the scrubbing itself, so these events
//! take a narrower road: a strict scanner checks that the data is exactly one of these shapes,
//! the delta strings are pushed into their [`StreamScrubber`](crate::scrub::StreamScrubber)s
//! and the released text is spliced, JSON-escaped, into the original bytes.
//!
//! Within one stream the envelope rarely changes: a provider repeats the same id, model and
//! index around each new piece of text. The bytes around the one delta string of the last fast
//! event are kept as an [`Envelope`]; a next event that has the same bytes around a well-formed
//! string gets the same plan without a scan (only the new string is checked).
//!
//! # Equivalence with the general path
//! The result is the JSON the general path ([`EventScrubber`]'s `Value` path) would produce:
//! the same streams get the same deltas in the same order, and every other string is one the
//! general path would leave as it is (a structural field, or a string that scrubs and restores
//! to itself; anything else goes the general way). Only the spelling may differ: whitespace,
//! escapes and numbers are kept as the provider wrote them. Property tests compare both paths.
//!
//! # Limits
//! The scanner accepts a strict subset of JSON, one that `serde_json` reads the same way:
//! no line breaks between tokens, keys without escapes and unique within their object,
//! integers of at most 18 digits, no lone surrogates, nested values only where the shape
//! expects them (other fields hold scalars, `[]` or `{}`). Anything else (a usage object, a
//! finish reason, a tool call, several choices, logprobs) is not a fast event: the scanner
//! declines before any scrubber has seen a byte, and the general path takes the event.

use std::borrow::Cow;
use std::ops::Range;

use crate::alloc::Wiped;

use super::{emit_value, Api, EventScrubber, Text};
use crate::proxy::json::{self, escape_into, put, unescape};
use crate::proxy::sse::{self, Event};
use crate::scrub::{restore, StreamRestorer};

/// Delta strings one event may carry on this path.
const MAX_DELTAS: usize = 4;

/// Keys one object may have on this path (more: the general path).
const MAX_KEYS: usize = 16;

/// Longest integer accepted (fits `u64` and an `f64`-free parse).
const MAX_DIGITS: usize = 18;

/// A string literal in the event's data.
#[derive(Clone, Copy)]
struct Str<'a> {
    /// What stands between the quotes, escapes and all.
    raw: &'a str,
    /// Where `raw` starts in the data.
    start: usize,
    /// `raw` contains a backslash.
    escaped: bool,
}

impl<'a> Str<'a> {
    fn span(&self) -> Range<usize> {
        self.start..self.start + self.raw.len()
    }

    /// The string's value, unescaped into `buf` when it has escapes.
    fn value<'b>(&self, buf: &'b mut Wiped<String>) -> &'b str
    where
        'a: 'b,
    {
        if !self.escaped {
            return self.raw;
        }
        buf.clear();
        sse::reserve_str(buf, self.raw.len());
        unescape(self.raw, Some(buf));
        buf.as_str()
    }

    /// The value when it has no escapes (keys, enums): `None` otherwise.
    fn plain(&self) -> Option<&'a str> {
        (!self.escaped).then_some(self.raw)
    }
}

/// A value the scanner accepts in a field it does not look into.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(Str<'a>),
    /// An integer: its value when it is not negative.
    Int(Option<u64>),
    Null,
    /// `true`, `false`, `[]` or `{}`: nothing to scrub.
    Inert,
}

/// A cursor over an event's data.
struct Scan<'a> {
    text: &'a str,
    at: usize,
    /// Where the opening quote of the key [`Scan::object`] last read is.
    key_at: usize,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Scan<'a> {
        Scan {
            text,
            at: 0,
            key_at: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skips spaces and tabs; a line break sends the event the general way (SSE would split it).
    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Only blanks remain.
    fn end(&mut self) -> Option<()> {
        self.space();
        (self.at == self.text.len()).then_some(())
    }

    fn string(&mut self) -> Option<Str<'a>> {
        self.eat(b'"')?;
        let start = self.at;
        let (end, escaped) = json::string_end(self.text.as_bytes(), start)?;
        let raw = self.text.get(start..end)?;
        self.at = end + 1;
        if escaped {
            unescape(raw, None)?;
        }
        Some(Str {
            raw,
            start,
            escaped,
        })
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        self.space();
        let rest = &self.text.as_bytes()[self.at..];
        let word = |w: &[u8]| rest.starts_with(w);
        let (value, len) = match *rest.first()? {
            b'"' => return self.string().map(Scalar::Str),
            b'-' | b'0'..=b'9' => return self.integer(),
            b'n' if word(b"null") => (Scalar::Null, 4),
            b't' if word(b"true") => (Scalar::Inert, 4),
            b'f' if word(b"false") => (Scalar::Inert, 5),
            b'[' | b'{' => {
                let close = if rest[0] == b'[' { b']' } else { b'}' };
                self.at += 1;
                self.eat(close)?;
                return Some(Scalar::Inert);
            }
            _ => return None,
        };
        self.at += len;
        Some(value)
    }

    fn integer(&mut self) -> Option<Scalar<'a>> {
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let digits = self.text.as_bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.text[self.at..self.at + digits];
        if digits == 0 || digits > MAX_DIGITS || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        self.at += digits;
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let n: u64 = text.parse().ok()?;
        Some(Scalar::Int((!negative).then_some(n)))
    }

    /// Walks an object, calling `field` with each key and the cursor on its value; keys must be
    /// plain and unique.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(());
        }
        let mut seen: [&str; MAX_KEYS] = [""; MAX_KEYS];
        let mut count = 0;
        loop {
            self.space();
            self.key_at = self.at;
            let key = self.string()?.plain()?;
            if count == MAX_KEYS || seen[..count].contains(&key) {
                return None;
            }
            seen[count] = key;
            count += 1;
            self.eat(b':')?;
            field(self, key)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The span of the member whose value just ended, with the comma that joins it to a
    /// neighbour, so that cutting it leaves a well-formed object.
    fn member_span(&self) -> Range<usize> {
        let bytes = self.text.as_bytes();
        let before = bytes[..self.key_at]
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'));
        match before {
            Some(comma) if bytes[comma] == b',' => comma..self.at,
            _ => {
                let after = self.at
                    + bytes[self.at..]
                        .iter()
                        .take_while(|b| matches!(b, b' ' | b'\t'))
                        .count();
                let end = if bytes.get(after) == Some(&b',') {
                    after + 1
                } else {
                    self.at
                };
                self.key_at..end
            }
        }
    }

    /// An array of exactly one element, read by `element`.
    fn single(&mut self, element: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        element(self)?;
        self.eat(b']')
    }
}

/// One delta string of an event and the stream it belongs to.
#[derive(Clone, Copy)]
struct Delta<'a> {
    outer: u64,
    inner: u64,
    field: &'a str,
    text: Str<'a>,
}

/// What the scanner found in a fast event.
#[derive(Default)]
struct Plan<'a> {
    deltas: [Option<Delta<'a>>; MAX_DELTAS],
    /// A Responses `sequence_number`.
    sequence: Option<u64>,
    /// A `"usage": null` member to leave out (see [`EventScrubber::hide_usage`]).
    cut: Option<Range<usize>>,
    /// The chat choice this chunk ends (a `finish_reason` with no text beside it): its held
    /// text goes out in a chunk of its own just before.
    ends: Option<u64>,
}

impl<'a> Plan<'a> {
    fn add(&mut self, delta: Delta<'a>) -> Option<()> {
        let slot = self.deltas.iter_mut().find(|d| d.is_none())?;
        *slot = Some(delta);
        Some(())
    }
}

/// The bytes around the one delta string of a fast event, and where that delta goes.
///
/// A plan depends only on the event's data and on state that only the general path changes
/// (the chunk template), so the general path drops the envelope; so does any event the fast
/// path declines.
pub(super) struct Envelope {
    /// The data before the delta string's inside, then the data after it.
    bytes: Wiped<Vec<u8>>,
    /// How many of `bytes` come before the delta.
    prefix: usize,
    /// A `"usage": null` member to leave out, as a range of `bytes` (see [`Plan::cut`]).
    cut: Option<Range<usize>>,
    outer: u64,
    inner: u64,
    field: Box<str>,
}

impl Envelope {
    /// The envelope of `data` if `plan` has one delta and nothing else to do.
    fn of(data: &str, plan: &Plan<'_>) -> Option<Envelope> {
        if plan.sequence.is_some() {
            return None;
        }
        let mut deltas = plan.deltas.iter().flatten();
        let delta = deltas.next()?;
        if deltas.next().is_some() {
            return None;
        }
        let span = delta.text.span();
        // A member of the top-level object: wholly before or wholly after the delta.
        let cut = match plan.cut.clone() {
            None => None,
            Some(c) if c.end <= span.start => Some(c),
            Some(c) if c.start >= span.end => Some(c.start - span.len()..c.end - span.len()),
            Some(_) => return None,
        };
        let data = data.as_bytes();
        let mut bytes = Wiped::new(Vec::with_capacity(data.len() - span.len()));
        bytes.extend_from_slice(&data[..span.start]);
        bytes.extend_from_slice(&data[span.end..]);
        Some(Envelope {
            bytes,
            prefix: span.start,
            cut,
            outer: delta.outer,
            inner: delta.inner,
            field: delta.field.into(),
        })
    }

    /// The delta string of `data` if `data` is this envelope around a well-formed string (as
    /// [`Scan::string`] would accept it).
    fn fits<'a>(&self, data: &'a str) -> Option<Str<'a>> {
        let bytes = data.as_bytes();
        let (prefix, suffix) = self.bytes.split_at(self.prefix);
        let end = bytes.len().checked_sub(suffix.len())?;
        if end < prefix.len() || !bytes.starts_with(prefix) || !bytes.ends_with(suffix) {
            return None;
        }
        let (close, escaped) = json::string_end(bytes, prefix.len())?;
        if close != end {
            return None;
        }
        let raw = data.get(prefix.len()..end)?;
        if escaped {
            unescape(raw, None)?;
        }
        Some(Str {
            raw,
            start: prefix.len(),
            escaped,
        })
    }
}

impl EventScrubber {
    /// Scrubs `event` on the fast path if it has one of the common shapes; `false` (and
    /// nothing done) otherwise.
    pub(super) fn fast_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        let data: &str = &event.data;
        if let Some(envelope) = self.envelope.take() {
            if let Some(text) = envelope.fits(data) {
                let delta = Delta {
                    outer: envelope.outer,
                    inner: envelope.inner,
                    field: &envelope.field,
                    text,
                };
                // The data is the envelope's bytes around the delta.
                let (head, tail) = envelope.bytes.split_at(envelope.prefix);
                let cut = envelope.cut.clone();
                sse::encode_single_line(event, data.len(), out, |out| {
                    let at = envelope.prefix;
                    match &cut {
                        Some(c) if c.start < at => {
                            put(out, &head[..c.start]);
                            put(out, &head[c.end..]);
                        }
                        _ => put(out, head),
                    }
                    self.push_escaped(&delta, out);
                    match &cut {
                        Some(c) if c.start >= at => {
                            put(out, &tail[..c.start - at]);
                            put(out, &tail[c.end - at..]);
                        }
                        _ => put(out, tail),
                    }
                });
                self.envelope = Some(envelope);
                return true;
            }
        }
        let plan = match self.api {
            Api::Chat | Api::Completions => self.chat_plan(data),
            Api::Responses => self.responses_plan(data),
            Api::Messages => messages_plan(data),
        };
        let Some(plan) = plan else {
            return false;
        };
        if self.api == Api::Responses && !self.responses_fast(&plan) {
            return false;
        }
        if let Some(n) = plan.sequence {
            self.numbered = true;
            self.sequence = n;
        }
        if let Some(outer) = plan.ends {
            let rests = self.finish_where(|key| key.outer == outer);
            if let Some(chunk) = self.synthetic_chunk(outer, &rests) {
                emit_value(None, &chunk, out);
            }
        }
        let envelope = Envelope::of(data, &plan);
        let data = data.as_bytes();
        sse::encode_single_line(event, data.len(), out, |out| {
            let mut copied = 0;
            let mut cut = plan.cut;
            for delta in plan.deltas.iter().flatten() {
                let span = delta.text.span();
                if let Some(c) = cut.take_if(|c| c.start < span.start) {
                    put(out, &data[copied..c.start]);
                    copied = c.end;
                }
                put(out, &data[copied..span.start]);
                copied = span.end;
                self.push_escaped(delta, out);
            }
            if let Some(c) = cut {
                put(out, &data[copied..c.start]);
                copied = c.end;
            }
            put(out, &data[copied..]);
        });
        self.envelope = envelope;
        true
    }

    /// Whether a Responses plan may be carried out here. The general path takes a text's first
    /// delta, which notes the envelope its flush event repeats, and every numbered event once
    /// a flush event has shifted the numbers (see [`EventScrubber::sequence`]).
    fn responses_fast(&self, plan: &Plan<'_>) -> bool {
        if self.inserted > 0 && plan.sequence.is_some() {
            return false;
        }
        plan.deltas.iter().flatten().all(|d| {
            self.texts.iter().any(|t| {
                t.key.outer == d.outer && t.key.inner == d.inner && *t.key.field == *d.field
            })
        })
    }

    /// Pushes a delta into its stream and appends the released text, escaped, to `out`.
    fn push_escaped(&mut self, delta: &Delta<'_>, out: &mut Vec<u8>) {
        let i = self.open_text(delta.outer, delta.inner, delta.field);
        let EventScrubber {
            text_started,
            texts,
            scratch,
            vault,
            unescaped,
            ..
        } = self;
        let value = delta.text.value(unescaped);
        *text_started |= !value.is_empty();
        let Text { scrub, restore, .. } = &mut texts[i];
        let released = scrub.push(value, scratch);
        let released = if vault.is_empty() {
            released
        } else {
            restore.push(released, vault)
        };
        escape_into(released, out);
    }

    /// The index of the text at (`outer`, `inner`, `field`), opened if new.
    pub(super) fn open_text(&mut self, outer: u64, inner: u64, field: &str) -> usize {
        let found = self
            .texts
            .iter()
            .position(|t| t.key.outer == outer && t.key.inner == inner && *t.key.field == *field);
        found.unwrap_or_else(|| {
            self.texts.push(Text {
                key: super::Key {
                    outer,
                    inner,
                    field: field.into(),
                },
                scrub: self.scrubber.stream(),
                restore: StreamRestorer::new(),
                envelope: serde_json::Map::new(),
            });
            self.texts.len() - 1
        })
    }

    /// Whether the general path would leave the string under `key` as it is.
    fn unchanged(&mut self, key: &str, s: Str<'_>, structural: bool) -> Option<()> {
        if structural && json::is_structural(key) {
            return Some(());
        }
        let value = s.value(&mut self.unescaped);
        let same = matches!(
            self.scrubber.scrub_in(value, &mut self.scratch).text,
            Cow::Borrowed(_)
        ) && matches!(restore(value, &self.vault), Cow::Borrowed(_));
        same.then_some(())
    }

    /// A field the general path scrubs one-shot: it must come out the same.
    fn one_shot_scalar(&mut self, scan: &mut Scan<'_>, key: &str) -> Option<()> {
        match scan.scalar()? {
            Scalar::Str(s) => self.unchanged(key, s, true),
            Scalar::Int(_) | Scalar::Null | Scalar::Inert => Some(()),
        }
    }

    /// An OpenAI chat or completions chunk with one choice that does not end.
    fn chat_plan<'a>(&mut self, data: &'a str) -> Option<Plan<'a>> {
        let mut plan = Plan::default();
        let mut id = None;
        let mut choice_seen = false;
        let mut others = 0;
        // The members a template would copy, in order: their keys and where their values are.
        let mut members: [(&str, Range<usize>); MAX_KEYS] = std::array::from_fn(|_| ("", 0..0));
        let mut scan = Scan::new(data);
        scan.object(|scan, key| match key {
            "choices" => scan.single(|scan| {
                choice_seen = true;
                self.chat_choice_plan(scan, &mut plan)
            }),
            "usage" => {
                matches!(scan.scalar()?, Scalar::Null).then_some(())?;
                if self.hide_usage {
                    plan.cut = Some(scan.member_span());
                }
                Some(())
            }
            "id" => {
                let start = scan.at;
                match scan.scalar()? {
                    Scalar::Str(s) => {
                        id = Some(s.plain()?);
                        members[others] = (key, start..scan.at);
                        others += 1;
                        Some(())
                    }
                    _ => None,
                }
            }
            _ => {
                let start = scan.at;
                self.one_shot_scalar(scan, key)?;
                members[others] = (key, start..scan.at);
                others += 1;
                Some(())
            }
        })?;
        scan.end()?;
        if !choice_seen {
            return None;
        }
        // Synthesized chunks copy the template, which the general path renews when it is empty
        // or `id` changes: a first chunk builds it here from the same members, and only a
        // renewal that changes nothing may be skipped.
        let template_holds = if self.template.is_empty() {
            others == 0 || self.renew_template(data, &members[..others])
        } else {
            match (&self.template_id, id) {
                (Some(serde_json::Value::String(t)), Some(id)) => t == id,
                (None, None) => true,
                _ => false,
            }
        };
        template_holds.then_some(plan)
    }

    /// Builds the chunk template from the top-level `members` (values unchanged by scrubbing)
    /// of a chunk whose plan is otherwise made, as the general path would from its tree.
    fn renew_template(&mut self, data: &str, members: &[(&str, Range<usize>)]) -> bool {
        let mut template = serde_json::Map::new();
        for (key, span) in members {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&data[span.clone()]) else {
                return false;
            };
            template.insert((*key).to_owned(), value);
        }
        self.template_id = template.get("id").cloned();
        self.template = template;
        true
    }

    fn chat_choice_plan<'a>(&mut self, scan: &mut Scan<'a>, plan: &mut Plan<'a>) -> Option<()> {
        let mut outer = 0;
        let mut found: [Option<(&'a str, Str<'a>)>; MAX_DELTAS] = [None; MAX_DELTAS];
        let mut n = 0;
        let mut keep = |field: &'a str, s: Str<'a>| -> Option<()> {
            *found.get_mut(n)? = Some((field, s));
            n += 1;
            Some(())
        };
        let completions = self.api == Api::Completions;
        let mut ends = false;
        scan.object(|scan, key| match key {
            "index" => match scan.scalar()? {
                Scalar::Int(Some(i)) => {
                    outer = i;
                    Some(())
                }
                _ => None,
            },
            "finish_reason" => match scan.scalar()? {
                Scalar::Null => Some(()),
                Scalar::Str(_) => {
                    ends = true;
                    Some(())
                }
                _ => None,
            },
            "logprobs" => matches!(scan.scalar()?, Scalar::Null).then_some(()),
            "delta" => scan.object(|scan, name| match (name, scan.scalar()?) {
                ("role", _) => Some(()),
                (_, Scalar::Str(s)) => keep(name, s),
                (_, Scalar::Int(_) | Scalar::Null | Scalar::Inert) => Some(()),
            }),
            "text" if completions => match scan.scalar()? {
                Scalar::Str(s) => keep("text", s),
                _ => Some(()),
            },
            _ => self.one_shot_scalar(scan, key),
        })?;
        if ends {
            // Text beside the end would take the held rest of its stream: the general path's.
            (n == 0).then_some(())?;
            plan.ends = Some(outer);
        }
        for (field, text) in found.into_iter().flatten() {
            plan.add(Delta {
                outer,
                inner: 0,
                field,
                text,
            })?;
        }
        Some(())
    }

    /// A Responses `*.delta` event with a string `delta`.
    fn responses_plan<'a>(&mut self, data: &'a str) -> Option<Plan<'a>> {
        let mut kind = None;
        let mut text = None;
        let (mut outer, mut content, mut summary, mut sequence) = (None, None, None, None);
        let mut scan = Scan::new(data);
        scan.object(|scan, key| {
            let value = scan.scalar()?;
            let int = |slot: &mut Option<u64>| match value {
                Scalar::Int(Some(n)) => {
                    *slot = Some(n);
                    Some(())
                }
                _ => None,
            };
            match (key, value) {
                ("type", Scalar::Str(s)) => {
                    kind = Some(s.plain()?);
                    Some(())
                }
                ("delta", Scalar::Str(s)) => {
                    text = Some(s);
                    Some(())
                }
                ("output_index", _) => int(&mut outer),
                ("content_index", _) => int(&mut content),
                ("summary_index", _) => int(&mut summary),
                ("sequence_number", Scalar::Int(n)) => {
                    sequence = n;
                    Some(())
                }
                ("type" | "delta" | "sequence_number", _) => None,
                (_, Scalar::Str(s)) => self.unchanged(key, s, true),
                (_, Scalar::Int(_) | Scalar::Null | Scalar::Inert) => Some(()),
            }
        })?;
        scan.end()?;
        let field = kind?.strip_suffix(".delta")?;
        let mut plan = Plan {
            sequence,
            ..Plan::default()
        };
        plan.add(Delta {
            outer: outer.unwrap_or(0),
            inner: content.or(summary).unwrap_or(0),
            field,
            text: text?,
        })?;
        Some(plan)
    }
}

/// An Anthropic `content_block_delta` with a text, JSON or thinking delta.
fn messages_plan(data: &str) -> Option<Plan<'_>> {
    let mut kind = None;
    let mut index = 0;
    let mut delta_type = None;
    let mut strings: [Option<(&str, Str<'_>)>; 2] = [None; 2];
    let mut scan = Scan::new(data);
    scan.object(|scan, key| match key {
        "delta" => scan.object(|scan, name| match (name, scan.scalar()?) {
            ("type", Scalar::Str(s)) => {
                delta_type = Some(s.plain()?);
                Some(())
            }
            ("text" | "partial_json" | "thinking", Scalar::Str(s)) => {
                let slot = strings.iter_mut().find(|s| s.is_none())?;
                *slot = Some((name, s));
                Some(())
            }
            _ => Some(()),
        }),
        "type" => match scan.scalar()? {
            Scalar::Str(s) => {
                kind = Some(s.plain()?);
                Some(())
            }
            _ => None,
        },
        "index" => match scan.scalar()? {
            Scalar::Int(Some(i)) => {
                index = i;
                Some(())
            }
            _ => None,
        },
        _ => scan.scalar().map(|_| ()),
    })?;
    scan.end()?;
    if kind? != "content_block_delta" {
        return None;
    }
    let delta_type = delta_type?;
    let field = super::delta_field(delta_type)?;
    let (_, text) = strings
        .into_iter()
        .flatten()
        .find(|(name, _)| *name == field)?;
    let mut plan = Plan::default();
    plan.add(Delta {
        outer: index,
        inner: 0,
        field: delta_type,
        text,
    })?;
    Some(plan)
}

#[cfg(test)]
mod tests {
    //! The fast path against the general one: same events in, same JSON out.
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::proxy::sse::{Decoder, Item};
    use crate::scrub::{Policy, Scrubber, Style, Vault};

    const PIECES: &[&str] = &[
        "4111 1111 ",
        "1111 1111",
        "jane.doe",
        "@example.com",
        "415-555-",
        "0132",
        " call ",
        "[EMAIL_1]",
        "[EMAIL_",
        "1] ",
        "\"quoted\"",
        "back\\slash",
        "line\nbreak\r\t",
        "\u{1}\u{1f}\u{7f}",
        "é✓𝄞",
        "\u{2028}/",
        "",
        "plain words ",
    ];

    /// JSON as a provider might spell it: optionally every non-ASCII character and `/` escaped,
    /// optionally with blanks between tokens.
    fn render(value: &Value, ascii: bool, spaced: bool, out: &mut String) {
        let sep = if spaced { " " } else { "" };
        match value {
            Value::String(s) if ascii => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '/' => out.push_str("\\/"),
                        c if c.is_ascii() => {
                            let one = serde_json::to_string(&c.to_string()).unwrap();
                            out.push_str(&one[1..one.len() - 1]);
                        }
                        c => {
                            let mut units = [0u16; 2];
                            for unit in c.encode_utf16(&mut units) {
                                out.push_str(&format!("\\u{unit:04X}"));
                            }
                        }
                    }
                }
                out.push('"');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("{sep}{}{sep}:{sep}", Value::from(k.as_str())));
                    render(v, ascii, spaced, out);
                }
                out.push_str(sep);
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(sep);
                    render(v, ascii, spaced, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }

    fn chat_chunk(text: &str, variant: u8, api: Api) -> (Option<&'static str>, Value) {
        let choice = match (api, variant % 4) {
            (Api::Completions, _) => {
                json!({"text": text, "index": 0, "logprobs": null, "finish_reason": null})
            }
            (_, 0) => {
                json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null})
            }
            (_, 1) => json!({"delta": {"role": "assistant", "content": text}, "index": 1}),
            (_, 2) => json!({"index": 0, "delta": {"refusal": text, "content": null}}),
            _ => {
                json!({"index": 0, "delta": {"content": text}, "finish_reason": null, "extra": text})
            }
        };
        let mut chunk = if variant & 16 != 0 {
            json!({"choices": [choice]})
        } else {
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": "gpt-4o", "system_fingerprint": null, "choices": [choice]})
        };
        if variant & 4 != 0 {
            chunk["obfuscation"] = json!(text);
        }
        if variant & 8 != 0 {
            chunk["usage"] = Value::Null;
        }
        (None, chunk)
    }

    fn events_for(api: Api, texts: &[(String, u8)]) -> Vec<(Option<&'static str>, Value)> {
        let mut events = Vec::new();
        match api {
            Api::Chat | Api::Completions => {
                for (text, variant) in texts {
                    events.push(chat_chunk(text, *variant, api));
                }
                let end = if api == Api::Chat {
                    json!({"index": 0, "delta": {}, "finish_reason": "stop"})
                } else {
                    json!({"index": 0, "text": "", "finish_reason": "stop"})
                };
                events.push((
                    None,
                    json!({"id": "chatcmpl-1", "object": "x", "choices": [end]}),
                ));
            }
            Api::Responses => {
                for (n, (text, variant)) in texts.iter().enumerate() {
                    let kind = if variant % 2 == 0 {
                        "response.output_text.delta"
                    } else {
                        "response.reasoning_summary_text.delta"
                    };
                    let mut v = json!({"type": kind, "sequence_number": n, "item_id": "msg_1",
                        "output_index": 0, "content_index": variant % 3, "delta": text, "logprobs": []});
                    if variant & 4 != 0 {
                        v["obfuscation"] = json!(text);
                    }
                    events.push((Some("delta"), v));
                }
                events.push((
                    Some("response.completed"),
                    json!({"type": "response.completed", "sequence_number": 999, "response": {"id": "r"}}),
                ));
            }
            Api::Messages => {
                for (text, variant) in texts {
                    let (kind, field) = match variant % 3 {
                        0 => ("text_delta", "text"),
                        1 => ("input_json_delta", "partial_json"),
                        _ => ("thinking_delta", "thinking"),
                    };
                    let mut delta = serde_json::Map::new();
                    delta.insert("type".into(), json!(kind));
                    delta.insert(field.into(), json!(text));
                    events.push((
                        Some("content_block_delta"),
                        json!({"type": "content_block_delta", "index": variant % 2, "delta": delta}),
                    ));
                }
                for index in 0..2 {
                    events.push((
                        Some("content_block_stop"),
                        json!({"type": "content_block_stop", "index": index}),
                    ));
                }
            }
        }
        events
    }

    fn scrubber_leaves(text: &str) -> bool {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        matches!(scrubber.scrub(text).text, Cow::Borrowed(_)) && !text.contains('[')
    }

    fn decoded(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
        let mut decoder = Decoder::new(usize::MAX);
        decoder.push(bytes);
        let mut items = Vec::new();
        while let Some(item) = decoder.next().unwrap() {
            if let Item::Event(e) = item {
                items.push((e.event.clone(), serde_json::from_str(&e.data).unwrap()));
            }
        }
        decoder.finish().unwrap();
        items
    }

    fn api() -> impl Strategy<Value = Api> {
        prop::sample::select(vec![
            Api::Chat,
            Api::Completions,
            Api::Responses,
            Api::Messages,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn fast_and_general_paths_agree(
            api in api(),
            texts in prop::collection::vec(
                (prop::collection::vec(prop::sample::select(PIECES), 0..3), 0u8..32),
                0..24,
            ),
            ascii in any::<bool>(),
            spaced in any::<bool>(),
            placeholders in any::<bool>(),
            hide_usage in any::<bool>(),
            uniform in any::<bool>(),
        ) {
            // `uniform`: one envelope for the whole stream, as providers send it (the envelope
            // shortcut then takes every delta event after the first).
            let first = texts.first().map_or(0, |(_, v)| *v);
            let texts: Vec<(String, u8)> = texts
                .into_iter()
                .map(|(p, v)| (p.concat(), if uniform { first } else { v }))
                .collect();
            let scrubber = Scrubber::new(&Policy::default()).unwrap();
            let vault = || {
                let mut vault = Vault::new();
                if placeholders {
                    let request = Scrubber::new(&Policy::default().with_style(Style::Placeholder)).unwrap();
                    let _ = request.scrub_in("jane.doe@example.com", &mut vault);
                }
                vault
            };
            let mut fast = EventScrubber::new(api, scrubber.clone(), vault());
            let mut general = EventScrubber::new(api, scrubber, vault());
            if hide_usage {
                fast.hide_usage();
                general.hide_usage();
            }
            let (mut fast_out, mut general_out) = (Vec::new(), Vec::new());
            let mut took_fast = 0;
            for (name, value) in events_for(api, &texts) {
                let mut data = String::new();
                render(&value, ascii, spaced, &mut data);
                let mut event = Event::new(Wiped::new(data));
                event.event = name.map(str::to_owned);
                let before = fast_out.len();
                if fast.fast_event(&event, &mut fast_out) {
                    took_fast += 1;
                } else {
                    prop_assert_eq!(fast_out.len(), before);
                    fast.on_event(&mut event, &mut fast_out);
                }
                general.general_event(&event, &mut general_out);
            }
            fast.on_end(&mut fast_out);
            general.on_end(&mut general_out);
            prop_assert_eq!(decoded(&fast_out), decoded(&general_out));
            prop_assert_eq!(fast.counts(), general.counts());
            // Every delta event after the first is fast unless another field has PII in it;
            // in Responses, every delta after the first of its text (which notes the envelope
            // of the text's flush event).
            let mut general_ones = 1;
            if api == Api::Responses {
                let mut keys: Vec<(u8, u8)> = texts.iter().map(|(_, v)| (v % 2, v % 3)).collect();
                keys.sort_unstable();
                keys.dedup();
                general_ones = keys.len().max(1);
            }
            let envelope = texts.first().map_or(0, |(_, v)| v & 16);
            let clean = texts.iter().all(|(t, v)| {
                v & 16 == envelope
                    && (*v & 4 == 0 && (*v % 4 != 3 || api == Api::Completions) || scrubber_leaves(t))
            });
            if clean {
                prop_assert!(took_fast + general_ones >= texts.len());
            }
        }
    }

    #[test]
    fn hidden_usage_is_cut_wherever_it_stands() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let first = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#;
        for (data, want) in [
            (
                r#"{"usage":null,"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
            ),
            (
                r#"{"id":"c", "usage" : null ,"choices":[{"index":0,"delta":{"content":"b"}}]}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
            ),
            (
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}],"usage":null}"#,
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
            ),
        ] {
            let event = |data: &str| Event::new(Wiped::new(data.into()));
            let mut hiding = EventScrubber::new(Api::Chat, scrubber.clone(), Vault::new());
            let mut plain = EventScrubber::new(Api::Chat, scrubber.clone(), Vault::new());
            hiding.hide_usage();
            let (mut got, mut expected) = (Vec::new(), Vec::new());
            hiding.on_event(&mut event(first), &mut got);
            plain.on_event(&mut event(first), &mut expected);
            assert!(hiding.fast_event(&event(data), &mut got), "{data}");
            plain.general_event(&event(want), &mut expected);
            // The same envelope again: cut by the envelope shortcut.
            let (again, want) = (
                data.replace("\"b\"", "\"cd\""),
                want.replace("\"b\"", "\"cd\""),
            );
            assert!(hiding.fast_event(&event(&again), &mut got), "{again}");
            plain.general_event(&event(&want), &mut expected);
            assert_eq!(decoded(&got), decoded(&expected), "{data}");
        }
    }

    #[test]
    fn shapes_outside_the_fast_path_are_declined() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let mut chat = EventScrubber::new(Api::Chat, scrubber.clone(), Vault::new());
        let mut out = Vec::new();
        let first = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#;
        chat.on_event(&mut Event::new(Wiped::new(first.into())), &mut out);
        for data in [
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"total_tokens":3}}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[]}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"\ud800"}}]}"#,
            r#"{"id":"c","choices":[{"index":0.0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","created":1e3,"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","note":"mail jane.doe@example.com","choices":[{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"d","choices":[{"index":0,"delta":{"content":"a"}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]} x"#,
            "{\"id\":\"c\",\n\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}",
        ]
        .into_iter()
        .skip(1)
        {
            let event = Event::new(Wiped::new(data.into()));
            assert!(!chat.fast_event(&event, &mut out), "{data}");
        }
        let event = Event::new(Wiped::new(first.into()));
        assert!(chat.fast_event(&event, &mut out));
    }

    #[test]
    fn a_hidden_usage_chunk_is_noted_and_dropped_as_the_general_path_would() {
        use crate::proxy::usage::Usage;
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let first = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#;
        let usage = r#""usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}"#;
        for (data, dropped) in [
            (format!(r#"{{"id":"c","choices":[],{usage}}}"#), true),
            (format!(r#"{{{usage},"choices":[] ,"id":"c"}}"#), true),
            // A choice, no choices, a usage that is not an object, a repeated member: the
            // general path decides.
            (
                format!(r#"{{"id":"c","choices":[{{"index":0,"delta":{{}}}}],{usage}}}"#),
                false,
            ),
            (format!(r#"{{"id":"c",{usage}}}"#), false),
            (r#"{"id":"c","choices":[],"usage":7}"#.to_owned(), false),
            (
                format!(r#"{{"id":"c","choices":[],"choices":[],{usage}}}"#),
                true,
            ),
        ] {
            let event = |data: &str| Event::new(Wiped::new(data.into()));
            let mut quick = EventScrubber::new(Api::Chat, scrubber.clone(), Vault::new());
            let mut general = EventScrubber::new(Api::Chat, scrubber.clone(), Vault::new());
            quick.hide_usage();
            general.hide_usage();
            let (mut got, mut expected) = (Vec::new(), Vec::new());
            quick.on_event(&mut event(first), &mut got);
            general.on_event(&mut event(first), &mut expected);
            let (before_got, before_expected) = (got.len(), expected.len());
            quick.on_event(&mut event(&data), &mut got);
            general.general_event(&event(&data), &mut expected);
            assert_eq!(decoded(&got), decoded(&expected), "{data}");
            assert_eq!(quick.usage(), general.usage(), "{data}");
            assert_eq!(got.len() == before_got, dropped, "{data}");
            assert_eq!(expected.len() == before_expected, dropped, "{data}");
            if dropped {
                assert_eq!(
                    quick.usage(),
                    Usage {
                        input: 5,
                        output: 7
                    }
                );
            }
        }
    }
}
