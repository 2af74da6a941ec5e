//! Server-Sent Events: a sans-I/O decoder and encoder (no async, no I/O).
//!
//! [`Decoder`] implements the WHATWG HTML "event stream interpretation" on bytes as they arrive
//! from the network: [`Decoder::push`] appends whatever was received, [`Decoder::next`] hands out
//! complete [`Item`]s, [`Decoder::finish`] says whether the stream stopped between events.
//! [`encode`] and [`encode_comment`] write events back out.
//!
//! # What the decoder guarantees
//!
//! * **Spec-exact lines**: a line ends in `\n`, `\r\n` or a lone `\r`, including a `\r` that ends
//!   one push and a `\n` that starts the next. One leading UTF-8 byte-order mark is ignored. A
//!   line `name: value` loses one space after the colon; a line without a colon is a field with
//!   an empty value; `data` values are joined with `\n`; a blank line dispatches the event.
//! * **Chunk invariance**: the items handed out, and the error if any, are the same whatever the
//!   cuts between pushes (inside a UTF-8 character, between `\r` and `\n`, one byte at a time).
//! * **Bounded memory**: the bytes held for the pending event (its incomplete line plus the
//!   `data`, `event` and `id` values kept so far) never exceed `max_event_bytes` once
//!   [`Decoder::next`] has returned `Ok(None)`; a line or an event that would go beyond is
//!   [`SseError::TooLarge`]. Every line is measured raw, terminator excluded, comments and
//!   unknown fields included. Besides that the decoder only holds what was pushed since the last
//!   drain.
//! * **Wiping**: every buffer that held stream bytes is [`Wiped`]; a buffer that must grow
//!   moves to a new allocation and wipes the old one, so no copy is left behind in freed memory.
//!   [`Event`] wipes its `event` and `id` when dropped, and its `data` is [`Wiped`]; a
//!   recycled event's `data` buffer is wiped before it takes the next event's.
//! * **Fail closed**: after an error the decoder wipes what it held and every later call returns
//!   the same error. No error carries stream content.
//! * **Linear work**: line ends are found with `memchr`, each byte searched once; a line is not
//!   copied, only the values kept are (once, into the event that needs them).
//!
//! # What it discards
//!
//! Comments (`: ping`) are reported as [`Item::Comment`] without their text. Unknown fields, an
//! `id` containing NUL, a `retry` that is not all ASCII digits (a value too large for `u64` is
//! saturated) and an `event:` with an empty value (the `message` type) are dropped. An event with
//! no `data` line is not dispatched: its type is forgotten, as the spec says, while an `id` or
//! `retry` it carried is kept and reported with the next dispatched event (see [`Event::id`]).
//!
//! # What it does not do
//!
//! * It does not replace invalid UTF-8 by U+FFFD as the spec does: an invalid `data`, `event` or
//!   `id` value is [`SseError::InvalidUtf8`] (comments and unknown fields are not checked).
//! * An unterminated final event, which the spec silently discards, is reported by
//!   [`Decoder::finish`] as [`SseError::Truncated`], so that a cut upstream is never passed on
//!   as a complete answer.
//! * It does not interpret `data` (JSON or otherwise), keep reconnection state or do any I/O.
//!
//! # Encoding
//!
//! [`encode`] writes `event`, one `data` line per line of data, `id`, `retry` and a blank line.
//! Decoding what it wrote gives the event back, except that line breaks inside `data` (`\r\n`,
//! `\r`, `\n`) all come back as `\n`: SSE has no way to carry a `\r` inside a value. `event` and
//! `id` are written up to their first line break (a decoded value has none) and an `id`
//! containing NUL is left out, as the decoder would ignore it.

use std::fmt;

use crate::alloc::{Wipe, Wiped};
use memchr::{memchr, memchr2, memchr2_iter};

/// The UTF-8 byte-order mark, ignored once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why an event stream was refused. The messages are static: they never carry stream content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or a pending event is larger than the decoder's limit.
    #[error("event stream event exceeds the size limit")]
    TooLarge,
    /// A `data`, `event` or `id` value is not valid UTF-8.
    #[error("event stream field is not valid UTF-8")]
    InvalidUtf8,
    /// The stream ended inside an event (or with items not taken from the decoder).
    #[error("event stream ended inside an event")]
    Truncated,
}

/// One dispatched event.
///
/// `event` and `id` are wiped when the event is dropped; `data` is wiped by [`Wiped`].
/// The [`Debug`] output shows sizes only, never content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The event type; `None` for the default type, `message`.
    pub event: Option<String>,
    /// The `data` lines, joined with `\n` (empty for a lone `data:` line).
    pub data: Wiped<String>,
    /// The last `id` field seen since the previous dispatched event, if any.
    ///
    /// The spec's last-event-ID buffer persists from event to event; reporting only changes
    /// (including one made by a block without data) means a client fed the re-encoded stream
    /// holds the same last event ID at every dispatch.
    pub id: Option<String>,
    /// The last valid `retry` field seen since the previous dispatched event, in milliseconds.
    pub retry: Option<u64>,
}

impl Event {
    /// A `message` event carrying `data`, with no `id` or `retry`.
    pub fn new(data: Wiped<String>) -> Event {
        Event {
            event: None,
            data,
            id: None,
            retry: None,
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        wipe(&mut self.event);
        wipe(&mut self.id);
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event_len", &self.event.as_ref().map(String::len))
            .field("data_len", &self.data.len())
            .field("id_len", &self.id.as_ref().map(String::len))
            .field("retry", &self.retry)
            .finish()
    }
}

/// What the decoder hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(Event),
    /// A comment line (`: ping`), reported without its text.
    Comment,
}

/// Where the decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Failed(SseError),
    Finished,
}

/// The event being assembled from field lines.
#[derive(Default)]
struct Pending {
    fields: Event,
    /// A `data` line was seen (`data:` alone makes an event with empty data).
    has_data: bool,
    /// A field line was seen since the last blank line.
    open: bool,
}

impl Pending {
    /// Bytes of values kept, counted against the limit.
    fn stored(&self) -> usize {
        self.fields.data.len()
            + self.fields.event.as_ref().map_or(0, String::len)
            + self.fields.id.as_ref().map_or(0, String::len)
    }

    /// Interprets one line (terminator and byte-order mark removed).
    fn line(&mut self, line: &[u8]) -> Result<Option<Item>, SseError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let (name, value) = match memchr(b':', line) {
            Some(0) => return Ok(Some(Item::Comment)),
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        self.open = true;
        match name {
            b"data" => {
                let value = utf8(value)?;
                let data = &mut self.fields.data;
                if self.has_data {
                    reserve_str(data, value.len() + 1);
                    data.push('\n');
                } else {
                    reserve_str(data, value.len());
                    self.has_data = true;
                }
                data.push_str(value);
            }
            b"event" => {
                let value = utf8(value)?;
                wipe(&mut self.fields.event);
                if !value.is_empty() {
                    self.fields.event = Some(value.to_owned());
                }
            }
            b"id" if memchr(0, value).is_none() => {
                let value = utf8(value)?;
                wipe(&mut self.fields.id);
                self.fields.id = Some(value.to_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.fields.retry = Some(value.iter().fold(0u64, |n, &d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                }));
            }
            // Unknown fields, an `id` with NUL, a `retry` that is not a number.
            _ => {}
        }
        Ok(None)
    }

    /// A blank line: the event if it has data; otherwise its type is forgotten and its `id` and
    /// `retry` wait for the next event.
    fn dispatch(&mut self) -> Option<Item> {
        self.open = false;
        if !self.has_data {
            wipe(&mut self.fields.event);
            return None;
        }
        self.has_data = false;
        Some(Item::Event(std::mem::take(&mut self.fields)))
    }
}

/// Decodes an SSE byte stream (WHATWG HTML "event stream interpretation").
///
/// ```
/// use lethe::proxy::sse::{Decoder, Item};
///
/// let mut decoder = Decoder::new(64 * 1024);
/// decoder.push(b"event: delta\r\ndata: hel");
/// decoder.push(b"lo\r\n\r\n: ping\n\n");
/// let Ok(Some(Item::Event(event))) = decoder.next() else { panic!() };
/// assert_eq!((event.event.as_deref(), event.data.as_str()), (Some("delta"), "hello"));
/// assert_eq!(decoder.next(), Ok(Some(Item::Comment)));
/// assert_eq!(decoder.next(), Ok(None));
/// assert_eq!(decoder.finish(), Ok(()));
/// ```
pub struct Decoder {
    max: usize,
    /// Received bytes; `buf[..start]` has been interpreted.
    buf: Wiped<Vec<u8>>,
    start: usize,
    /// `buf[start..scan]` holds no line break: the next search starts at `scan`.
    scan: usize,
    /// The last line ended in `\r` at the end of `buf`: a `\n` next belongs to it.
    skip_lf: bool,
    /// No line has been interpreted yet (a byte-order mark may lead the first).
    first_line: bool,
    pending: Pending,
    state: State,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("max_event_bytes", &self.max)
            .field("buffered", &self.buffered())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder that refuses a pending event (incomplete line included) above
    /// `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Decoder {
        Decoder {
            max: max_event_bytes,
            buf: Wiped::new(Vec::new()),
            start: 0,
            scan: 0,
            skip_lf: false,
            first_line: true,
            pending: Pending::default(),
            state: State::Live,
        }
    }

    /// Appends bytes received from the network (any split, including mid-UTF-8 and mid-CRLF).
    ///
    /// Nothing is interpreted until [`Decoder::next`]; after an error or [`Decoder::finish`] the
    /// bytes are dropped.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.state != State::Live || bytes.is_empty() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            let len = self.buf.len() - self.start;
            self.buf.truncate(len);
            self.scan -= self.start;
            self.start = 0;
        }
        reserve(&mut self.buf, bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// Takes back a dispatched event once the caller is done with it, so that the next event's
    /// `data` reuses its buffer instead of a new allocation. The bytes are wiped first.
    pub fn recycle(&mut self, mut event: Event) {
        let data = &mut self.pending.fields.data;
        // Never over the next event's data, should it have begun.
        if data.is_empty() && data.capacity() < event.data.capacity() {
            event.data.wipe();
            std::mem::swap(data, &mut event.data);
        }
    }

    /// Next complete item, if any; `Ok(None)` when more bytes are needed.
    ///
    /// After an error the decoder is spent: it has wiped its buffers and returns the same error
    /// from then on.
    // Not an `Iterator`: "no item yet" and "no item ever" differ, and errors are sticky.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Item>, SseError> {
        match self.state {
            State::Live => {}
            State::Failed(e) => return Err(e),
            State::Finished => return Ok(None),
        }
        let step = self.step();
        if let Err(e) = step {
            self.fail(e);
        }
        step
    }

    /// The stream ended: `Ok(())` if it stopped between events.
    ///
    /// Call it once [`Decoder::next`] has returned `Ok(None)`. It returns
    /// [`SseError::Truncated`] if bytes remain that are not a complete line, if field lines were
    /// received after the last blank line (an event cut short: the spec would discard it
    /// silently) or if complete lines were left untaken. A trailing comment line is not a
    /// truncation. Either way the decoder wipes its buffers and is spent.
    pub fn finish(&mut self) -> Result<(), SseError> {
        match self.state {
            State::Live => {}
            State::Failed(e) => return Err(e),
            State::Finished => return Ok(()),
        }
        if self.start < self.buf.len() || self.pending.open {
            self.fail(SseError::Truncated);
            return Err(SseError::Truncated);
        }
        self.clear();
        self.state = State::Finished;
        Ok(())
    }

    /// Bytes held for the pending event: received and not yet interpreted, plus the values
    /// kept. At most `max_event_bytes` whenever [`Decoder::next`] has just returned `Ok(None)`.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start + self.pending.stored()
    }

    /// Interprets lines until one makes an item or none is complete.
    fn step(&mut self) -> Result<Option<Item>, SseError> {
        loop {
            if self.skip_lf && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                    self.scan = self.start;
                }
                self.skip_lf = false;
            }
            let room = self.max.saturating_sub(self.pending.stored());
            let Some(found) = memchr2(b'\n', b'\r', &self.buf[self.scan..]) else {
                self.scan = self.buf.len();
                if self.buf.len() - self.start > room {
                    return Err(SseError::TooLarge);
                }
                return Ok(None);
            };
            let end = self.scan + found;
            let mut next = end + 1;
            if self.buf[end] == b'\r' {
                match self.buf.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let mut line = &self.buf[self.start..end];
            self.start = next;
            self.scan = next;
            if line.len() > room {
                return Err(SseError::TooLarge);
            }
            if self.first_line {
                self.first_line = false;
                line = line.strip_prefix(BOM).unwrap_or(line);
            }
            if let Some(item) = self.pending.line(line)? {
                return Ok(Some(item));
            }
        }
    }

    /// Records `e`, wipes everything held.
    fn fail(&mut self, e: SseError) {
        self.clear();
        self.state = State::Failed(e);
    }

    /// Wipes and frees the buffers.
    fn clear(&mut self) {
        self.buf = Wiped::new(Vec::new());
        self.start = 0;
        self.scan = 0;
        self.pending = Pending::default();
    }
}

/// Writes `event`: `event: X`, one `data: ` line per line of data, `id: `, `retry: `, a blank
/// line. See the [module documentation](self) for what a decoder gets back.
///
/// If `out` must grow, its old allocation is wiped.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    let data = event.data.as_bytes();
    let lines = memchr2_iter(b'\n', b'\r', data).count() + 1;
    let head = encode_head(event, data.len() + 7 * lines, out);
    let mut rest = data;
    while let Some(at) = memchr2(b'\n', b'\r', rest) {
        field(out, b"data", &rest[..at]);
        let crlf = rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n');
        rest = &rest[at + 1 + usize::from(crlf)..];
    }
    field(out, b"data", rest);
    encode_tail(event, head, out);
}

/// The `id` an encoded event carries (a decoded value has no line break and no NUL).
fn encoded_id(event: &Event) -> Option<&[u8]> {
    event
        .id
        .as_deref()
        .map(first_line)
        .filter(|id| memchr(0, id).is_none())
}

/// Writes `event`'s type line and makes room for `data_bound` bytes of `data` lines and the
/// rest; returns what [`encode_tail`] needs.
fn encode_head<'e>(event: &'e Event, data_bound: usize, out: &mut Vec<u8>) -> Option<&'e [u8]> {
    let name = event
        .event
        .as_deref()
        .map(first_line)
        .filter(|name| !name.is_empty());
    let id = encoded_id(event);
    // `event: X\n`, the data lines, `id: X\n`, `retry: N\n` (N up to 20 digits), `\n`.
    let bound =
        name.map_or(0, |n| n.len() + 8) + data_bound + id.map_or(0, |i| i.len() + 5) + 28 + 1;
    reserve(out, bound);
    if let Some(name) = name {
        field(out, b"event", name);
    }
    id
}

/// Writes `id`, `retry` and the blank line that ends the event.
fn encode_tail(event: &Event, id: Option<&[u8]>, out: &mut Vec<u8>) {
    if let Some(id) = id {
        field(out, b"id", id);
    }
    if let Some(retry) = event.retry {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = retry;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        field(out, b"retry", &digits[at..]);
    }
    out.push(b'\n');
}

/// Writes `event` with one `data` line that `write` appends to `out`, in place of the event's
/// own data. `write` must add no line break; `data_len` is the size it expects to write (a
/// hint: `out` grows as needed, wiping what it leaves).
pub(crate) fn encode_single_line(
    event: &Event,
    data_len: usize,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let head = encode_head(event, data_len + 7, out);
    out.extend_from_slice(b"data: ");
    write(out);
    // `\n`, `id: X\n`, `retry: N\n`, `\n`, whatever `write` took.
    reserve(out, 1 + head.map_or(0, |i| i.len() + 5) + 28 + 1);
    out.push(b'\n');
    encode_tail(event, head, out);
}

/// Writes a keep-alive comment, `:\n\n`.
pub fn encode_comment(out: &mut Vec<u8>) {
    reserve(out, 3);
    out.extend_from_slice(b":\n\n");
}

/// `name: value\n`, or `name:\n` for an empty value.
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.push(b':');
    if !value.is_empty() {
        out.push(b' ');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// `s` up to its first line break.
fn first_line(s: &str) -> &[u8] {
    let s = s.as_bytes();
    &s[..memchr2(b'\n', b'\r', s).unwrap_or(s.len())]
}

fn utf8(value: &[u8]) -> Result<&str, SseError> {
    std::str::from_utf8(value).map_err(|_| SseError::InvalidUtf8)
}

fn wipe(s: &mut Option<String>) {
    if let Some(s) = s {
        s.wipe();
    }
    *s = None;
}

/// Room for `additional` more bytes; growing moves to a new allocation and wipes the old one.
pub(crate) fn reserve(buf: &mut Vec<u8>, additional: usize) {
    let need = buf.len().saturating_add(additional);
    if need <= buf.capacity() {
        return;
    }
    let mut grown = Vec::with_capacity(need.max(buf.capacity().saturating_mul(2)));
    grown.extend_from_slice(buf);
    std::mem::replace(buf, grown).wipe();
}

/// [`reserve`] for a string.
pub(crate) fn reserve_str(s: &mut String, additional: usize) {
    let need = s.len().saturating_add(additional);
    if need <= s.capacity() {
        return;
    }
    let mut grown = String::with_capacity(need.max(s.capacity().saturating_mul(2)));
    grown.push_str(s);
    std::mem::replace(s, grown).wipe();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item as plain values, to compare and print in tests.
    type Plain = Option<(Option<String>, String, Option<String>, Option<u64>)>;

    fn plain(item: &Item) -> Plain {
        match item {
            Item::Comment => None,
            Item::Event(e) => Some((e.event.clone(), e.data.to_string(), e.id.clone(), e.retry)),
        }
    }

    /// Decodes `pieces` pushed one by one, draining after each and recycling every event: the
    /// items, then the error or the result of `finish`.
    fn decode(pieces: &[&[u8]], max: usize) -> (Vec<Plain>, Result<(), SseError>) {
        let mut d = Decoder::new(max);
        let mut items = Vec::new();
        for piece in pieces {
            d.push(piece);
            loop {
                match d.next() {
                    Ok(Some(item)) => {
                        items.push(plain(&item));
                        if let Item::Event(e) = item {
                            d.recycle(e);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return (items, Err(e)),
                }
            }
            assert!(d.buffered() <= max, "buffered {} > {max}", d.buffered());
        }
        (items, d.finish())
    }

    /// Decodes `input` in one push, byte by byte and cut at every point; all must agree.
    fn decode_all_ways(input: &[u8], max: usize) -> (Vec<Plain>, Result<(), SseError>) {
        let whole = decode(&[input], max);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(&bytes, max), whole, "byte by byte");
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode(&[a, b], max), whole, "cut at {cut}");
        }
        whole
    }

    fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> Plain {
        Some((
            event.map(str::to_owned),
            data.to_owned(),
            id.map(str::to_owned),
            retry,
        ))
    }

    fn data(d: &str) -> Plain {
        ev(None, d, None, None)
    }

    const C: Plain = None;

    #[test]
    fn spec_cases() {
        let cases: &[(&str, &[u8], Vec<Plain>)] = &[
            ("simple", b"data: hello\n\n", vec![data("hello")]),
            (
                "crlf",
                b"event: a\r\ndata: x\r\n\r\n",
                vec![ev(Some("a"), "x", None, None)],
            ),
            ("lone cr", b"data: x\rdata: y\r\r", vec![data("x\ny")]),
            (
                "mixed endings",
                b"data: a\r\n\ndata: b\n\rdata: c\r\r\n",
                vec![data("a"), data("b"), data("c")],
            ),
            (
                "cr then lf is one break",
                b"data: a\r\n\r\n",
                vec![data("a")],
            ),
            ("lf then cr is two", b"data: a\n\r", vec![data("a")]),
            ("bom", b"\xEF\xBB\xBFdata: x\n\n", vec![data("x")]),
            (
                "bom alone on its line",
                b"\xEF\xBB\xBF\ndata: x\n\n",
                vec![data("x")],
            ),
            (
                "bom only once",
                b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n",
                vec![],
            ),
            (
                "bom later is content",
                b"data: \xEF\xBB\xBFx\n\n",
                vec![data("\u{FEFF}x")],
            ),
            (
                "multi-line data",
                b"data: a\ndata: b\ndata:\n\n",
                vec![data("a\nb\n")],
            ),
            ("comment", b": ping\n\n", vec![C]),
            ("bare comment", b":\n", vec![C]),
            (
                "comment inside an event",
                b"data: a\n: c\ndata: b\n\n",
                vec![C, data("a\nb")],
            ),
            ("no space after colon", b"data:x\n\n", vec![data("x")]),
            (
                "only one space stripped",
                b"data:  x \n\n",
                vec![data(" x ")],
            ),
            ("tab is not stripped", b"data:\tx\n\n", vec![data("\tx")]),
            ("colon in value", b"data: a: b\n\n", vec![data("a: b")]),
            ("unknown field", b"foo: bar\ndata: x\n\n", vec![data("x")]),
            ("unknown field alone", b"foo\n\n", vec![]),
            ("names are case-sensitive", b"Data: x\n\n", vec![]),
            ("space before colon", b"data : x\n\n", vec![]),
            ("field without colon", b"data\n\n", vec![data("")]),
            (
                "two fields without colon",
                b"data\ndata\n\n",
                vec![data("\n")],
            ),
            ("empty data", b"data:\n\n", vec![data("")]),
            ("empty data with space", b"data: \n\n", vec![data("")]),
            (
                "retry",
                b"retry: 1000\ndata: x\n\n",
                vec![ev(None, "x", None, Some(1000))],
            ),
            (
                "retry not digits",
                b"retry: 10a\ndata: x\n\n",
                vec![data("x")],
            ),
            ("retry empty", b"retry:\ndata: x\n\n", vec![data("x")]),
            ("retry negative", b"retry: -1\ndata: x\n\n", vec![data("x")]),
            ("retry spaced", b"retry:  5\ndata: x\n\n", vec![data("x")]),
            (
                "retry saturates",
                b"retry: 99999999999999999999999\ndata: x\n\n",
                vec![ev(None, "x", None, Some(u64::MAX))],
            ),
            (
                "retry leading zeros",
                b"retry: 007\ndata: x\n\n",
                vec![ev(None, "x", None, Some(7))],
            ),
            ("no data, no event", b"event: x\nid: 1\n\n", vec![]),
            (
                "event type does not outlive a block without data",
                b"event: a\n\ndata: b\n\n",
                vec![data("b")],
            ),
            (
                "id and retry carry to the next event",
                b"id: 1\nretry: 5\n\ndata: x\n\ndata: y\n\n",
                vec![ev(None, "x", Some("1"), Some(5)), data("y")],
            ),
            (
                "id with nul ignored",
                b"id: a\0b\ndata: x\n\n",
                vec![data("x")],
            ),
            (
                "id with nul keeps the previous id",
                b"id: 1\nid: \0\ndata: x\n\n",
                vec![ev(None, "x", Some("1"), None)],
            ),
            (
                "empty id",
                b"id\ndata: x\n\n",
                vec![ev(None, "x", Some(""), None)],
            ),
            (
                "empty event is message",
                b"event:\ndata: x\n\n",
                vec![data("x")],
            ),
            (
                "last event wins",
                b"event:a\nevent:b\ndata:x\n\n",
                vec![ev(Some("b"), "x", None, None)],
            ),
            (
                "event, id, retry",
                b"event: delta\nid: 7\nretry: 3\ndata: {}\n\n",
                vec![ev(Some("delta"), "{}", Some("7"), Some(3))],
            ),
            ("blank lines only", b"\n\r\n\r\n\n", vec![]),
            (
                "multi-byte text",
                "data: héllo ✓ 𝄞\n\n".as_bytes(),
                vec![data("héllo ✓ 𝄞")],
            ),
            (
                "two events",
                b"data:x\n\nid: 5\ndata:y\n\n",
                vec![data("x"), ev(None, "y", Some("5"), None)],
            ),
            ("nul in data is kept", b"data: a\0b\n\n", vec![data("a\0b")]),
            ("invalid utf-8 in a comment", b": \xff\n\n", vec![C]),
            ("invalid utf-8 in an unknown field", b"x: \xff\n\n", vec![]),
            ("empty stream", b"", vec![]),
        ];
        for (name, input, expected) in cases {
            let (items, end) = decode_all_ways(input, 1 << 16);
            assert_eq!(&items, expected, "{name}");
            assert_eq!(end, Ok(()), "{name}");
        }
    }

    #[test]
    fn cr_at_the_end_of_a_push() {
        let mut d = Decoder::new(1024);
        d.push(b"data: a\r");
        assert_eq!(d.next(), Ok(None));
        d.push(b"\ndata: b\r\n\r");
        let Ok(Some(item)) = d.next() else {
            panic!("no event")
        };
        assert_eq!(plain(&item), data("a\nb"));
        d.push(b"\n");
        assert_eq!(d.next(), Ok(None));
        d.push(b"\rdata: c\r");
        assert_eq!(d.next(), Ok(None));
        d.push(b"\r");
        let Ok(Some(item)) = d.next() else {
            panic!("no event")
        };
        assert_eq!(plain(&item), data("c"));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn utf8_split_across_pushes() {
        let input = "data: é✓𝄞\n\n".as_bytes();
        for cut in 6..input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode(&[a, b], 64), (vec![data("é✓𝄞")], Ok(())));
        }
    }

    #[test]
    fn invalid_utf8() {
        for input in [
            &b"data: \xff\n\n"[..],
            b"event: \xc3\ndata: x\n\n",
            b"id: \xed\xa0\x80\ndata: x\n\n",
            b"data: ok\ndata: \xc3(\n\n",
        ] {
            assert_eq!(
                decode_all_ways(input, 1024),
                (vec![], Err(SseError::InvalidUtf8))
            );
        }
        // Items before the bad line are handed out first.
        assert_eq!(
            decode_all_ways(b"data: a\n\ndata: \x80\n\n", 1024),
            (vec![data("a")], Err(SseError::InvalidUtf8))
        );
    }

    #[test]
    fn too_large() {
        // A complete line over the limit.
        assert_eq!(
            decode_all_ways(b"data: 0123456789\n\n", 10),
            (vec![], Err(SseError::TooLarge))
        );
        // Exactly at the limit: `data: 0123` is 10 bytes.
        assert_eq!(
            decode_all_ways(b"data: 0123\n\n", 10),
            (vec![data("0123")], Ok(()))
        );
        // An incomplete line over the limit is refused before its end arrives.
        let mut d = Decoder::new(10);
        d.push(b"data: 01234");
        assert_eq!(d.next(), Err(SseError::TooLarge));
        assert_eq!(d.buffered(), 0, "wiped on error");
        // Accumulated data: 13 + 7 kept = 20 fits, the third line does not.
        let input = b"data: 0123456\ndata: 0123456\ndata: 0\n\n";
        assert_eq!(
            decode_all_ways(input, 20),
            (vec![], Err(SseError::TooLarge))
        );
        assert_eq!(
            decode_all_ways(&input[..28], 20),
            (vec![], Err(SseError::Truncated))
        );
        // Comments and unknown fields count too.
        assert_eq!(
            decode_all_ways(b": 0123456789\n", 10),
            (vec![], Err(SseError::TooLarge))
        );
        assert_eq!(
            decode_all_ways(b"x: 0123456789\n", 10),
            (vec![], Err(SseError::TooLarge))
        );
        // The budget is per event: it starts again after a dispatch.
        let input = b"data: 0123\n\ndata: 4567\n\n";
        assert_eq!(
            decode_all_ways(input, 10),
            (vec![data("0123"), data("4567")], Ok(()))
        );
        // Earlier events are handed out before the error.
        assert_eq!(
            decode_all_ways(b"data: a\n\ndata: 0123456789\n", 10),
            (vec![data("a")], Err(SseError::TooLarge))
        );
        // A zero limit still passes blank lines.
        assert_eq!(decode_all_ways(b"\n\r\n", 0), (vec![], Ok(())));
    }

    #[test]
    fn failed_decoder_stays_failed() {
        let mut d = Decoder::new(8);
        d.push(b"data: 0123456789\n\n");
        assert_eq!(d.next(), Err(SseError::TooLarge));
        d.push(b"data: x\n\n");
        assert_eq!(d.next(), Err(SseError::TooLarge));
        assert_eq!(d.finish(), Err(SseError::TooLarge));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn truncated() {
        let cases: &[(&[u8], Result<(), SseError>)] = &[
            (b"", Ok(())),
            (b"data: x\n\n", Ok(())),
            (b"data: x\r\r", Ok(())),
            (b"data: x\r\n\r", Ok(())),
            (b": ping\n", Ok(())),
            (b"data: x\n\n: ping\n", Ok(())),
            (b"data: x", Err(SseError::Truncated)),
            (b"data: x\n", Err(SseError::Truncated)),
            (b"data: x\r", Err(SseError::Truncated)),
            (b"data: x\n\ndata: y\n", Err(SseError::Truncated)),
            (b"event: x\n", Err(SseError::Truncated)),
            (b"foo\n", Err(SseError::Truncated)),
            (b": ping", Err(SseError::Truncated)),
            (b"\xEF\xBB", Err(SseError::Truncated)),
        ];
        for (input, expected) in cases {
            assert_eq!(decode_all_ways(input, 1024).1, *expected, "{input:?}");
        }
        // Lines not taken with `next` count as unfinished.
        let mut d = Decoder::new(1024);
        d.push(b"data: x\n\n");
        assert_eq!(d.finish(), Err(SseError::Truncated));
        assert_eq!(d.next(), Err(SseError::Truncated));
        // A finished decoder is spent.
        let mut d = Decoder::new(1024);
        assert_eq!(d.finish(), Ok(()));
        d.push(b"data: x\n\n");
        assert_eq!(d.next(), Ok(None));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn encode_format() {
        let event = Event {
            event: Some("delta".into()),
            data: Wiped::new("a\nb".into()),
            id: Some("7".into()),
            retry: Some(10),
        };
        let mut out = Vec::new();
        encode(&event, &mut out);
        assert_eq!(out, b"event: delta\ndata: a\ndata: b\nid: 7\nretry: 10\n\n");

        let mut out = Vec::new();
        encode(&Event::new(Wiped::new(String::new())), &mut out);
        assert_eq!(out, b"data:\n\n");

        let mut out = Vec::new();
        encode_comment(&mut out);
        assert_eq!(out, b":\n\n");

        // Values that cannot be written as they are.
        let event = Event {
            event: Some("a\nevent: b".into()),
            data: Wiped::new("x\r\ny\rz\n".into()),
            id: Some("1\0".into()),
            retry: Some(0),
        };
        let mut out = Vec::new();
        encode(&event, &mut out);
        assert_eq!(
            out,
            b"event: a\ndata: x\ndata: y\ndata: z\ndata:\nretry: 0\n\n"
        );
        let event = Event {
            event: Some("\r".into()),
            data: Wiped::new(" x".into()),
            id: Some(String::new()),
            retry: Some(u64::MAX),
        };
        let mut out = b"kept".to_vec();
        encode(&event, &mut out);
        assert_eq!(out, b"keptdata:  x\nid:\nretry: 18446744073709551615\n\n");
    }

    #[test]
    fn round_trip() {
        let events = [
            ev(None, "hello", None, None),
            ev(
                Some("message_delta"),
                "{\"a\":1}\n{\"b\":2}",
                Some("42"),
                Some(1500),
            ),
            ev(None, "", Some(""), None),
            ev(None, "\n\n", None, Some(0)),
            ev(Some(" spaced"), "  two spaces", Some(" id"), None),
            ev(
                Some("ü"),
                ": not a comment\ndata: not a field",
                None,
                Some(u64::MAX),
            ),
        ];
        let mut out = Vec::new();
        for e in &events {
            let Some((event, data, id, retry)) = e.clone() else {
                continue;
            };
            encode(
                &Event {
                    event,
                    data: Wiped::new(data),
                    id,
                    retry,
                },
                &mut out,
            );
            encode_comment(&mut out);
        }
        let expected: Vec<Plain> = events.iter().flat_map(|e| [e.clone(), C]).collect();
        assert_eq!(decode_all_ways(&out, 1024), (expected, Ok(())));
        // `\r` in data comes back as `\n`.
        let mut out = Vec::new();
        encode(&Event::new(Wiped::new("a\r\nb\rc".into())), &mut out);
        assert_eq!(decode(&[&out], 64), (vec![data("a\nb\nc")], Ok(())));
    }

    #[test]
    fn nothing_leaks_through_debug_or_errors() {
        let event = Event {
            event: Some("secret-type".into()),
            data: Wiped::new("secret-data".into()),
            id: Some("secret-id".into()),
            retry: None,
        };
        let shown = format!("{:?} {:?}", event, Item::Event(event.clone()));
        assert!(!shown.contains("secret"), "{shown}");
        let mut d = Decoder::new(1024);
        d.push(b"data: secret");
        let shown = format!("{d:?}");
        assert!(!shown.contains("secret"), "{shown}");
        for e in [
            SseError::TooLarge,
            SseError::InvalidUtf8,
            SseError::Truncated,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn buffer_is_compacted() {
        // Many events pushed in small pieces: what is held stays bounded by the limit.
        let mut d = Decoder::new(64);
        let mut n = 0;
        for _ in 0..1000 {
            for piece in [&b"data: 012"[..], b"3456789\n", b"\n"] {
                d.push(piece);
                while let Ok(Some(_)) = d.next() {
                    n += 1;
                }
                assert!(d.buffered() <= 64);
                assert!(d.buf.capacity() <= 64, "{}", d.buf.capacity());
            }
        }
        assert_eq!(n, 1000);
        assert_eq!(d.finish(), Ok(()));
    }
}
