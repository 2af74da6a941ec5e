//! Helpers shared by the wire formats: reply settings, SSE framing, ids, token counts, text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;

/// What to answer with, decided from the request and its control headers.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The full reply text (`x-mock-reply`, or the echo).
    pub text: String,
    /// Characters per streamed delta (`x-mock-delta-chars`).
    pub delta_chars: usize,
    /// Answer with a call of this tool instead of text (`x-mock-tool-call`).
    pub tool_call: Option<String>,
    /// Answer with a refusal instead of content (`x-mock-refusal`, chat only).
    pub refusal: bool,
}

impl Reply {
    /// The reply text cut into deltas of `delta_chars` characters.
    pub(crate) fn deltas(&self) -> Vec<&str> {
        split_chars(&self.text, self.delta_chars)
    }

    /// The tool-call arguments: the JSON object `{"text": REPLY}`.
    pub(crate) fn tool_arguments(&self) -> String {
        serde_json::to_string(&obj! { "text": &self.text }).unwrap_or_default()
    }
}

/// Cuts `text` into pieces of `n` characters (the last may be shorter); `n` of 0 counts as 1.
pub(crate) fn split_chars(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let mut out = Vec::with_capacity(text.len() / n + 1);
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == n {
            out.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Serializes a value as compact JSON.
pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// One `data: JSON` SSE event.
pub(crate) fn sse_data<T: Serialize>(value: &T) -> Bytes {
    let mut buf = BytesMut::with_capacity(256).writer();
    buf.get_mut().put_slice(b"data: ");
    let _ = serde_json::to_writer(&mut buf, value);
    let mut buf = buf.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// One `event: NAME` + `data: JSON` SSE event.
pub(crate) fn sse_event<T: Serialize>(name: &str, value: &T) -> Bytes {
    let mut buf = BytesMut::with_capacity(256).writer();
    buf.get_mut().put_slice(b"event: ");
    buf.get_mut().put_slice(name.as_bytes());
    buf.get_mut().put_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut buf, value);
    let mut buf = buf.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// The final `data: [DONE]` of OpenAI streams.
pub(crate) fn sse_done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// A fresh id with the given prefix (`chatcmpl-`, `msg_`, ...), unique within the process.
pub(crate) fn next_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}mock{n:016x}")
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A deterministic token estimate: one token per four characters, rounded up.
pub(crate) fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The text of a message `content`: a string, or the concatenated `text` of its parts.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The `model` of the request, or `default`.
pub(crate) fn model_of<'a>(req: &'a Value, default: &'a str) -> &'a str {
    req.get("model").and_then(Value::as_str).unwrap_or(default)
}

/// Whether the request asks for a stream.
pub(crate) fn wants_stream(req: &Value) -> bool {
    req.get("stream").and_then(Value::as_bool) == Some(true)
}

/// Whether an OpenAI request sets `stream_options.include_usage`.
pub(crate) fn include_usage(req: &Value) -> bool {
    req.pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Decodes `%XX` escapes to bytes, then reads the bytes as UTF-8 (lossily); other bytes pass.
pub(crate) fn percent_decode(raw: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Placeholder for the string that changes from one event to the next (see [`Template`]).
pub(crate) const TEXT_SLOT: &str = "\u{0}mock-text-slot\u{0}";
/// Placeholder for the number that changes from one event to the next (see [`Template`]).
pub(crate) const NUM_SLOT: &str = "\u{0}mock-num-slot\u{0}";

/// An SSE event rendered once with placeholders, then filled in per delta: stream deltas differ
/// only in their text (and perhaps an index or sequence number), so only that is serialized.
pub(crate) struct Template {
    pieces: Vec<Vec<u8>>,
    /// For each gap between pieces: whether it takes the text (else the number).
    text_slots: Vec<bool>,
    len: usize,
}

impl Template {
    /// Renders `value` (as `event: NAME` + `data:` if `event` is set, else `data:` alone) and
    /// cuts it at every [`TEXT_SLOT`] and [`NUM_SLOT`] string.
    pub(crate) fn new<T: Serialize>(event: Option<&str>, value: &T) -> Self {
        let whole = match event {
            Some(name) => sse_event(name, value),
            None => sse_data(value),
        };
        let text = serde_json::to_vec(TEXT_SLOT).unwrap_or_default();
        let num = serde_json::to_vec(NUM_SLOT).unwrap_or_default();
        let mut pieces = Vec::new();
        let mut text_slots = Vec::new();
        let mut rest: &[u8] = &whole;
        loop {
            let next = [(&text, true), (&num, false)]
                .into_iter()
                .filter_map(|(pat, is_text)| find(rest, pat).map(|at| (at, pat.len(), is_text)))
                .min();
            let Some((at, len, is_text)) = next else {
                pieces.push(rest.to_vec());
                break;
            };
            pieces.push(rest[..at].to_vec());
            text_slots.push(is_text);
            rest = &rest[at + len..];
        }
        let len = pieces.iter().map(Vec::len).sum();
        Self {
            pieces,
            text_slots,
            len,
        }
    }

    /// The event with `text` (JSON-escaped) and `num` filled in.
    pub(crate) fn render(&self, text: &str, num: u64) -> Bytes {
        let mut out = Vec::with_capacity(self.len + text.len() + 16);
        for (i, piece) in self.pieces.iter().enumerate() {
            out.extend_from_slice(piece);
            match self.text_slots.get(i) {
                Some(true) => {
                    let _ = serde_json::to_writer(&mut out, text);
                }
                Some(false) => out.extend_from_slice(num.to_string().as_bytes()),
                None => {}
            }
        }
        Bytes::from(out)
    }
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
