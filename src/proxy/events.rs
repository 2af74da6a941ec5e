//! Scrubbing a streamed answer event by event, sans I/O.
//!
//! # Design
//! Each text that a provider streams in pieces (a choice's `content`, a tool call's
//! `arguments`, a legacy `function_call.arguments`, an `audio.transcript`, a Responses
//! `*.delta`, an Anthropic block's `text_delta` / `input_json_delta` / `thinking_delta`) gets
//! its own [`StreamScrubber`], keyed by where it lives (choice, tool call,
//! output item, content block). Every incoming event is re-emitted at once, carrying the text
//! that is safe now; what a scrubber holds back is flushed in one extra delta event right before
//! the event that ends its choice or block (or in the event itself when that event carries text
//! for it). A value split across any number of events therefore never reaches the client
//! unscrubbed, and no stream is buffered whole: each scrubber holds at most
//! [`HOLD_BOUND`](crate::scrub::HOLD_BOUND) bytes.
//!
//! The common delta events (a chat chunk with one choice that does not end, a completions
//! `text`, a Responses `*.delta`, an Anthropic `content_block_delta`) are read by a strict
//! scanner instead of being parsed into a tree: the released text is spliced into the event's
//! own bytes. Every other event (usage, finish reasons, tool calls, block starts and stops)
//! goes through a `serde_json::Value`. Both give the same JSON; property tests check it.
//!
//! Everything else in an event is scrubbed one-shot like a JSON body ([`super::json`]):
//! unknown fields are covered by default. `logprobs` are replaced by `null` while scrubbing is
//! on: they spell the answer out token by token, past any scrubber. The SSE `event` and `id`
//! values are scrubbed one-shot too. An event whose data is not a JSON object (`[DONE]` aside)
//! ends the stream as an upstream failure does: scrubbed one event at a time, a value split
//! across two such events would pass. A lone surrogate escape is read as U+FFFD instead, so
//! that a provider cutting an emoji's pair across events does not end the stream.
//!
//! With placeholders, values the provider produces are labelled (see
//! [`RequestPolicy::response_styles`](super::policy::RequestPolicy::response_styles)) and then
//! the request's placeholders are put back, streamed, so the client reads its own values.
//!
//! A Responses flush event repeats the `item_id` and indexes of its text's delta events and
//! takes the sequence number after the last one sent; every later event's number is shifted
//! up by the flush events inserted so far, so numbers stay unique and increasing.
//!
//! When the upstream fails mid-stream, held text is dropped (it may be half a value) and the
//! stream ends with an error event in the provider's format.
//!
//! For metrics, the scrubber also notes the provider's token usage ([`EventScrubber::usage`])
//! and whether any text has streamed yet ([`EventScrubber::text_started`]). When Lethe asked an
//! OpenAI stream for usage the client did not ask for ([`EventScrubber::hide_usage`]), the
//! usage-only chunk is dropped and the `usage` field removed from the other chunks.

use crate::alloc::Wiped;
use serde_json::{json, Map, Value};

use super::json;
use super::sse::{self, Event};
use super::usage::Usage;
use crate::scrub::{Counts, Scrubber, StreamRestorer, StreamScrubber, Vault};

mod delta;

/// Which API's event grammar a stream follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI chat completions.
    Chat,
    /// OpenAI legacy completions.
    Completions,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
}

/// Where a streamed text lives: two indexes and a field name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    /// Choice, output item or content block.
    outer: u64,
    /// Tool call + 1 (0 for the choice's own fields), content part or summary part.
    inner: u64,
    /// The field (`content`, `arguments`), Responses event prefix or Anthropic delta type.
    field: Box<str>,
}

struct Text {
    key: Key,
    scrub: StreamScrubber,
    restore: StreamRestorer,
    /// Responses: the `item_id` and index members of the text's first delta event, which its
    /// flush event repeats (empty for the other APIs).
    envelope: Map<String, Value>,
}

/// Scrubs the events of one streamed response.
pub struct EventScrubber {
    api: Api,
    scrubber: Scrubber,
    /// The request's placeholders, put back into the answer.
    vault: Vault,
    /// Response-side scrubbing never numbers placeholders; this stays empty.
    scratch: Vault,
    texts: Vec<Text>,
    counts: Counts,
    /// Top-level fields of the last chat/completions chunk, for synthesized chunks.
    template: Map<String, Value>,
    /// The template's `id` (kept apart: the fast path compares it on every chunk).
    template_id: Option<Value>,
    /// The last Responses `sequence_number` sent to the client.
    ///
    /// A flush event Lethe inserts takes the number after the last one sent, and every later
    /// event's number is shifted up by the flush events inserted so far ([`Self::inserted`]):
    /// the client sees the provider's order, unique and increasing, as the provider sent it.
    sequence: u64,
    /// Flush events inserted into a Responses stream so far.
    inserted: u64,
    /// The Responses stream numbers its events: flush events are numbered too.
    numbered: bool,
    failed: bool,
    /// `false`: the client may switch scrubbing off; events are re-encoded unchanged.
    active: bool,
    /// Token usage reported so far.
    usage: Usage,
    /// Drop the usage chunk: Lethe asked for it, the client did not.
    hide_usage: bool,
    /// Some text delta has streamed.
    text_started: bool,
    /// Reused for delta strings that arrive with JSON escapes.
    unescaped: Wiped<String>,
    /// The last fast event's envelope (see [`delta`]).
    envelope: Option<delta::Envelope>,
}

impl EventScrubber {
    /// A scrubber for one response of `api`. `scrubber` must not use placeholders;
    /// `vault` holds the request's placeholders (empty when it used none).
    pub fn new(api: Api, scrubber: Scrubber, vault: Vault) -> EventScrubber {
        EventScrubber {
            api,
            scrubber,
            vault,
            scratch: Vault::new(),
            texts: Vec::new(),
            counts: Counts::default(),
            template: Map::new(),
            template_id: None,
            sequence: 0,
            inserted: 0,
            numbered: false,
            failed: false,
            active: true,
            usage: Usage::default(),
            hide_usage: false,
            text_started: false,
            unescaped: Wiped::new(String::new()),
            envelope: None,
        }
    }

    /// Re-encodes events unchanged (scrubbing switched off by an allowed header). Upstream
    /// failures still end the stream with an error event.
    pub fn passthrough(api: Api, scrubber: Scrubber) -> EventScrubber {
        EventScrubber {
            active: false,
            ..EventScrubber::new(api, scrubber, Vault::new())
        }
    }

    /// Detections so far (one-shot fields and released stream text).
    pub fn counts(&self) -> Counts {
        let mut counts = self.counts;
        for t in &self.texts {
            counts.add(&t.scrub.counts());
        }
        counts
    }

    /// Drops the usage-only chunk of an OpenAI stream, and `usage` from the other chunks: Lethe
    /// asked for usage, the client did not.
    pub fn hide_usage(&mut self) {
        self.hide_usage = true;
    }

    /// Token usage the provider reported so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether any text delta has come from the provider yet.
    pub fn text_started(&self) -> bool {
        self.text_started
    }

    /// Bytes held back across all open texts.
    pub fn held_back(&self) -> usize {
        self.texts.iter().map(|t| t.scrub.held_back()).sum()
    }

    /// Scrubs one event and appends what to send (it and any flush before it) to `out`.
    ///
    /// The event's `event` and `id` values are scrubbed one-shot in place: they are copied to
    /// the client, and a provider may put anything there. An event whose data Lethe cannot read
    /// ends the stream (see [`EventScrubber::failed`]).
    pub fn on_event(&mut self, event: &mut Event, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if self.active {
            for field in [&mut event.event, &mut event.id].into_iter().flatten() {
                self.one_shot_str(field);
            }
        }
        let event = &*event;
        if !self.active {
            if memchr::memmem::find(event.data.as_bytes(), b"\"usage\"").is_some() {
                if let Ok(mut value) = serde_json::from_str::<Value>(&event.data) {
                    if self.note_usage(&mut value) {
                        return;
                    }
                }
            }
            sse::encode(event, out);
            return;
        }
        let data: &str = &event.data;
        if data.trim() == "[DONE]" {
            self.envelope = None;
            self.flush_all(out);
            sse::encode(event, out);
            return;
        }
        if !self.fast_event(event, out) && !self.drop_usage_chunk(data) {
            self.general_event(event, out);
        }
    }

    /// The usage-only chunk of an OpenAI stream that Lethe asked for and the client did not
    /// ([`EventScrubber::hide_usage`]): notes its usage and returns `true`, for the chunk is
    /// dropped. Only `choices` and `usage` are read, the rest skipped unbuilt; anything else (a
    /// choice, a repeated member, no usage object) returns `false` for the general path, which
    /// decides the same way on the whole tree.
    fn drop_usage_chunk(&mut self, data: &str) -> bool {
        #[derive(serde::Deserialize)]
        struct Carrier {
            choices: Option<Vec<serde::de::IgnoredAny>>,
            usage: Option<Value>,
        }
        if !self.hide_usage
            || !matches!(self.api, Api::Chat | Api::Completions)
            || memchr::memmem::find(data.as_bytes(), b"\"usage\"").is_none()
        {
            return false;
        }
        let Ok(Carrier {
            choices: Some(choices),
            usage: Some(usage),
        }) = serde_json::from_str(data)
        else {
            return false;
        };
        if !choices.is_empty() || !usage.is_object() {
            return false;
        }
        // As the general path does with every event it takes.
        self.envelope = None;
        self.usage.observe_usage(&usage);
        true
    }

    /// Whether the stream has ended with an error event: the upstream failed, or sent an event
    /// Lethe could not read. Nothing more is sent.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Scrubs any event through a JSON tree (see [`Self::on_event`]).
    ///
    /// Data that is not a JSON object (every event of the four grammars is one, `[DONE]` aside)
    /// ends the stream with the error event of [`Self::on_error`]: its text cannot be matched
    /// to a stream scrubber, and scrubbed one event at a time a value split across two such
    /// events would pass. A lone surrogate escape is read as U+FFFD (see
    /// [`json::replace_lone_surrogates`]), so that its text is scrubbed with the rest.
    fn general_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        // The general path may renew the chunk template, on which fast plans depend.
        self.envelope = None;
        let data: &str = &event.data;
        let parsed = serde_json::from_str::<Value>(data).or_else(|e| {
            json::replace_lone_surrogates(data)
                .map_or(Err(e), |repaired| serde_json::from_str::<Value>(&repaired))
        });
        let Some(mut value) = parsed.ok().filter(Value::is_object) else {
            self.on_error(out);
            return;
        };
        if self.note_usage(&mut value) {
            return;
        }
        let mut before: Vec<(Option<String>, Value)> = Vec::new();
        match self.api {
            Api::Chat | Api::Completions => self.chat_chunk(&mut value, &mut before),
            Api::Responses => self.responses_event(&mut value, &mut before),
            Api::Messages => self.messages_event(&mut value, &mut before),
        }
        for (name, v) in before {
            emit_value(name.as_deref(), &v, out);
        }
        emit(event, Wiped::new(value.to_string()), out);
    }

    /// Notes the usage `value` carries; with [`EventScrubber::hide_usage`], removes it (also
    /// the `"usage": null` of the other chunks), and returns `true` when the event is the
    /// usage-only chunk, which is then not sent.
    fn note_usage(&mut self, value: &mut Value) -> bool {
        let carried = self.usage.observe(value);
        if !self.hide_usage || !matches!(self.api, Api::Chat | Api::Completions) {
            return false;
        }
        let Some(obj) = value.as_object_mut() else {
            return false;
        };
        obj.remove("usage");
        carried
            && obj
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
    }

    /// The upstream ended cleanly: flush whatever is still held.
    pub fn on_end(&mut self, out: &mut Vec<u8>) {
        if !self.failed {
            self.flush_all(out);
        }
    }

    /// The upstream failed mid-stream: drop held text and end with an error event.
    pub fn on_error(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.texts.clear();
        let message = "the upstream stream failed; the answer is incomplete";
        let (name, value) = match self.api {
            Api::Chat | Api::Completions => (
                None,
                json!({"error": {"message": message, "type": "server_error", "param": null, "code": "upstream_stream_failed"}}),
            ),
            Api::Responses => (
                Some("error"),
                json!({"type": "error", "code": "upstream_stream_failed", "message": message, "param": null,
                       "sequence_number": self.sequence + 1,
                       "error": {"type": "server_error", "message": message}}),
            ),
            Api::Messages => (
                Some("error"),
                json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ),
        };
        emit_value(name, &value, out);
    }

    /// Scrubs every field of `map` but those in `skip` and structural ones.
    fn one_shot_except(&mut self, map: &mut Map<String, Value>, skip: &[&str]) {
        for (key, value) in map.iter_mut() {
            let structural = value.is_string() && json::is_structural(key);
            if !structural && !skip.contains(&key.as_str()) {
                self.one_shot(value);
            }
        }
    }

    fn one_shot_str(&mut self, s: &mut String) {
        json::scrub_string(s, &self.scrubber, &mut self.scratch, &mut self.counts);
        if !self.vault.is_empty() {
            json::restore_string(s, &self.vault);
        }
    }

    fn one_shot(&mut self, value: &mut Value) {
        json::scrub_value(value, &self.scrubber, &mut self.scratch, &mut self.counts);
        if !self.vault.is_empty() {
            json::restore_value(value, &self.vault);
        }
    }

    fn push(&mut self, key: Key, delta: &str) -> String {
        let i = self.open_text(key.outer, key.inner, &key.field);
        self.text_started |= !delta.is_empty();
        let text = &mut self.texts[i];
        let released = text.scrub.push(delta, &mut self.scratch);
        if self.vault.is_empty() {
            released.to_owned()
        } else {
            text.restore.push(released, &self.vault).to_owned()
        }
    }

    /// Finishes and removes every text matching `pred`, returning (key, rest) pairs.
    fn finish_where(&mut self, pred: impl Fn(&Key) -> bool) -> Vec<(Key, String)> {
        let mut rests = Vec::new();
        let mut i = 0;
        while i < self.texts.len() {
            if !pred(&self.texts[i].key) {
                i += 1;
                continue;
            }
            let mut text = self.texts.swap_remove(i);
            let mut rest = String::from(text.scrub.finish(&mut self.scratch));
            self.counts.add(&text.scrub.counts());
            if !self.vault.is_empty() {
                let mut restored = String::from(text.restore.push(&rest, &self.vault));
                restored.push_str(text.restore.finish(&self.vault));
                rest = restored;
            }
            rests.push((text.key, rest));
        }
        rests.sort_by_key(|(key, _)| (key.outer, key.inner));
        rests
    }

    fn flush_all(&mut self, out: &mut Vec<u8>) {
        let mut before = Vec::new();
        if self.api == Api::Responses {
            self.flush_responses(|_| true, &mut before);
        }
        let rests = self.finish_where(|_| true);
        match self.api {
            Api::Chat | Api::Completions => {
                let mut outers: Vec<u64> = rests.iter().map(|(k, _)| k.outer).collect();
                outers.dedup();
                for outer in outers {
                    let mine: Vec<_> = rests
                        .iter()
                        .filter(|(k, _)| k.outer == outer)
                        .cloned()
                        .collect();
                    if let Some(chunk) = self.synthetic_chunk(outer, &mine) {
                        before.push((None, chunk));
                    }
                }
            }
            // Flushed above, with their envelopes.
            Api::Responses => {}
            Api::Messages => {
                for (key, rest) in rests {
                    if let Some(v) = synthetic_block_delta(&key, rest) {
                        before.push((Some("content_block_delta".to_owned()), v));
                    }
                }
            }
        }
        for (name, v) in before {
            emit_value(name.as_deref(), &v, out);
        }
    }

    // ---- OpenAI chat completions and completions -------------------------------------------

    fn chat_chunk(&mut self, value: &mut Value, before: &mut Vec<(Option<String>, Value)>) {
        let Some(obj) = value.as_object_mut() else {
            self.one_shot(value);
            return;
        };
        self.one_shot_except(obj, &["choices"]);
        // Synthesized chunks copy the stream's top-level fields; they only change with `id`.
        if self.template.is_empty() || self.template_id.as_ref() != obj.get("id") {
            self.template_id = obj.get("id").cloned();
            self.template = obj
                .iter()
                .filter(|(k, _)| *k != "choices" && *k != "usage")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        match obj.get_mut("choices") {
            Some(Value::Array(list)) => {
                for choice in list.iter_mut() {
                    if let Some(chunk) = self.chat_choice(choice) {
                        before.push((None, chunk));
                    }
                }
            }
            Some(other) => self.one_shot(other),
            None => {}
        }
    }

    /// Scrubs one choice in place; returns a chunk to send before this one when the choice
    /// ends with text still held that this chunk does not carry.
    fn chat_choice(&mut self, choice: &mut Value) -> Option<Value> {
        let Some(c) = choice.as_object_mut() else {
            self.one_shot(choice);
            return None;
        };
        let outer = c.get("index").and_then(Value::as_u64).unwrap_or(0);
        let ends = c.get("finish_reason").is_some_and(|f| !f.is_null());
        if let Some(lp) = c.get_mut("logprobs") {
            *lp = Value::Null;
        }
        let mut carried: Vec<Key> = Vec::new();
        for (name, field) in c.iter_mut() {
            match (name.as_str(), field) {
                ("index" | "finish_reason" | "logprobs", _) => {}
                ("delta", Value::Object(delta)) => self.chat_delta(outer, delta, &mut carried),
                ("text", Value::String(s)) if self.api == Api::Completions => {
                    let key = Key {
                        outer,
                        inner: 0,
                        field: "text".into(),
                    };
                    *s = self.push(key.clone(), s);
                    carried.push(key);
                }
                (_, other) => self.one_shot(other),
            }
        }
        if !ends {
            return None;
        }
        let rests = self.finish_where(|k| k.outer == outer);
        let mut elsewhere = Vec::new();
        for (key, rest) in rests {
            if carried.contains(&key) {
                if let Some(slot) = chat_slot(c, &key) {
                    slot.push_str(&rest);
                    continue;
                }
            }
            elsewhere.push((key, rest));
        }
        self.synthetic_chunk(outer, &elsewhere)
    }

    fn chat_delta(&mut self, outer: u64, delta: &mut Map<String, Value>, carried: &mut Vec<Key>) {
        for (name, field) in delta.iter_mut() {
            match (name.as_str(), field) {
                ("role", _) => {}
                ("tool_calls", Value::Array(calls)) => {
                    for call in calls.iter_mut() {
                        self.tool_call(outer, call, carried);
                    }
                }
                (parent, Value::Object(object)) if nested_field(parent).is_some() => {
                    self.chat_nested(outer, parent, object, carried);
                }
                (_, Value::String(s)) => {
                    let key = Key {
                        outer,
                        inner: 0,
                        field: name.as_str().into(),
                    };
                    *s = self.push(key.clone(), s);
                    carried.push(key);
                }
                (_, other) => self.one_shot(other),
            }
        }
    }

    /// An object in a delta with one streamed string (see [`NESTED`]): that string goes to its
    /// choice's stream under the key `parent.child`; the rest is scrubbed one-shot.
    fn chat_nested(
        &mut self,
        outer: u64,
        parent: &str,
        object: &mut Map<String, Value>,
        carried: &mut Vec<Key>,
    ) {
        let Some((child, field)) = nested_field(parent) else {
            return;
        };
        let text = match object.remove(child) {
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                object.insert(child.to_owned(), other);
                None
            }
            None => None,
        };
        self.one_shot_except(object, &[]);
        let Some(text) = text else {
            return;
        };
        let key = Key {
            outer,
            inner: 0,
            field: field.into(),
        };
        let released = self.push(key.clone(), &text);
        carried.push(key);
        object.insert(child.to_owned(), Value::String(released));
    }

    fn tool_call(&mut self, outer: u64, call: &mut Value, carried: &mut Vec<Key>) {
        let tool = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let arguments = call
            .get_mut("function")
            .and_then(|f| f.as_object_mut())
            .and_then(|f| f.remove("arguments"));
        self.one_shot(call);
        let Some(arguments) = arguments else {
            return;
        };
        let arguments = match arguments {
            Value::String(s) => {
                let key = Key {
                    outer,
                    inner: tool + 1,
                    field: "arguments".into(),
                };
                let released = self.push(key.clone(), &s);
                carried.push(key);
                Value::String(released)
            }
            mut other => {
                self.one_shot(&mut other);
                other
            }
        };
        if let Some(Value::Object(f)) = call.get_mut("function") {
            f.insert("arguments".to_owned(), arguments);
        }
    }

    fn synthetic_chunk(&self, outer: u64, rests: &[(Key, String)]) -> Option<Value> {
        let rests: Vec<_> = rests.iter().filter(|(_, r)| !r.is_empty()).collect();
        if rests.is_empty() {
            return None;
        }
        let mut choice = Map::new();
        choice.insert("index".to_owned(), json!(outer));
        if self.api == Api::Completions {
            let text: String = rests.iter().map(|(_, r)| r.as_str()).collect();
            choice.insert("text".to_owned(), Value::String(text));
            choice.insert("logprobs".to_owned(), Value::Null);
        } else {
            let mut delta = Map::new();
            let mut calls = Vec::new();
            for (key, rest) in rests {
                if key.inner == 0 {
                    let rest = Value::String(rest.clone());
                    match NESTED.iter().find(|(_, _, field)| *field == &*key.field) {
                        Some((parent, child, _)) => {
                            let object = delta
                                .entry(*parent)
                                .or_insert_with(|| Value::Object(Map::new()));
                            if let Value::Object(object) = object {
                                object.insert((*child).to_owned(), rest);
                            }
                        }
                        None => {
                            delta.insert(key.field.to_string(), rest);
                        }
                    }
                } else {
                    calls.push(json!({"index": key.inner - 1, "function": {"arguments": rest}}));
                }
            }
            if !calls.is_empty() {
                delta.insert("tool_calls".to_owned(), Value::Array(calls));
            }
            choice.insert("delta".to_owned(), Value::Object(delta));
            choice.insert("logprobs".to_owned(), Value::Null);
        }
        choice.insert("finish_reason".to_owned(), Value::Null);
        let mut chunk = self.template.clone();
        if chunk.is_empty() {
            let object = match self.api {
                Api::Completions => "text_completion",
                _ => "chat.completion.chunk",
            };
            chunk.insert("object".to_owned(), json!(object));
        }
        chunk.insert(
            "choices".to_owned(),
            Value::Array(vec![Value::Object(choice)]),
        );
        if chunk.contains_key("usage") || self.template.contains_key("usage") {
            chunk.insert("usage".to_owned(), Value::Null);
        }
        Some(Value::Object(chunk))
    }

    // ---- OpenAI Responses -------------------------------------------------------------------

    fn responses_event(&mut self, value: &mut Value, before: &mut Vec<(Option<String>, Value)>) {
        let number = value.get("sequence_number").and_then(Value::as_u64);
        self.numbered |= number.is_some();
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if let Some(prefix) = kind.strip_suffix(".delta") {
            if let Some(Value::String(delta)) = value.get("delta") {
                let key = response_key(value, prefix);
                let delta = delta.clone();
                let released = self.push(key.clone(), &delta);
                self.note_envelope(&key, value);
                if let Some(obj) = value.as_object_mut() {
                    self.one_shot_except(obj, &["delta"]);
                    obj.insert("delta".to_owned(), Value::String(released));
                }
                self.renumber(value, number);
                return;
            }
        } else if let Some(prefix) = kind.strip_suffix(".done") {
            let key = response_key(value, prefix);
            self.flush_responses(|k| *k == key, before);
        } else if kind == "response.completed"
            || kind == "response.incomplete"
            || kind == "response.failed"
        {
            self.flush_responses(|_| true, before);
        }
        self.one_shot(value);
        self.renumber(value, number);
    }

    /// Notes the envelope of a text's first delta event (see [`Text::envelope`]).
    fn note_envelope(&mut self, key: &Key, value: &Value) {
        let Some(text) = self.texts.iter_mut().find(|t| t.key == *key) else {
            return;
        };
        if !text.envelope.is_empty() {
            return;
        }
        for name in ["item_id", "output_index", "content_index", "summary_index"] {
            if let Some(member) = value.get(name).filter(|v| v.is_string() || v.is_u64()) {
                text.envelope.insert(name.to_owned(), member.clone());
            }
        }
    }

    /// Gives a Responses event the number it has on the client's side (see [`Self::sequence`]).
    fn renumber(&mut self, value: &mut Value, number: Option<u64>) {
        let Some(n) = number else {
            return;
        };
        self.sequence = n.saturating_add(self.inserted);
        if self.inserted > 0 {
            if let Some(obj) = value.as_object_mut() {
                obj.insert("sequence_number".to_owned(), json!(self.sequence));
            }
        }
    }

    /// Finishes the Responses texts matching `pred`, each held rest in a flush event of its own.
    fn flush_responses(
        &mut self,
        pred: impl Fn(&Key) -> bool,
        before: &mut Vec<(Option<String>, Value)>,
    ) {
        let envelopes: Vec<(Key, Map<String, Value>)> = self
            .texts
            .iter()
            .filter(|t| pred(&t.key))
            .map(|t| (t.key.clone(), t.envelope.clone()))
            .collect();
        for (key, rest) in self.finish_where(pred) {
            if rest.is_empty() {
                continue;
            }
            let envelope = envelopes
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            let v = self.synthetic_response_delta(&key, rest, envelope);
            before.push((Some(format!("{}.delta", key.field)), v));
        }
    }

    /// A `*.delta` event carrying a text's held rest: the envelope of the text's own delta
    /// events (its `item_id` and indexes), and the next sequence number when the stream has
    /// them (see [`Self::sequence`]).
    fn synthetic_response_delta(
        &mut self,
        key: &Key,
        rest: String,
        envelope: Map<String, Value>,
    ) -> Value {
        let mut v = Map::new();
        v.insert("type".to_owned(), json!(format!("{}.delta", key.field)));
        if envelope.is_empty() {
            v.insert("output_index".to_owned(), json!(key.outer));
        }
        v.extend(envelope);
        v.insert("delta".to_owned(), Value::String(rest));
        if self.numbered {
            self.inserted += 1;
            self.sequence = self.sequence.saturating_add(1);
            v.insert("sequence_number".to_owned(), json!(self.sequence));
        }
        Value::Object(v)
    }

    // ---- Anthropic Messages -----------------------------------------------------------------

    fn messages_event(&mut self, value: &mut Value, before: &mut Vec<(Option<String>, Value)>) {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_start" => {
                if let Some(obj) = value.as_object_mut() {
                    self.one_shot_except(obj, &["content_block"]);
                }
                if let Some(Value::Object(block)) = value.get_mut("content_block") {
                    self.one_shot_except(block, &["text", "thinking"]);
                    for (field, delta_type) in
                        [("text", "text_delta"), ("thinking", "thinking_delta")]
                    {
                        if let Some(Value::String(s)) = block.get_mut(field) {
                            let key = Key {
                                outer: index,
                                inner: 0,
                                field: delta_type.into(),
                            };
                            let pushed = std::mem::take(s);
                            *s = self.push(key, &pushed);
                        }
                    }
                }
                return;
            }
            "content_block_delta" => {
                let delta_type = value
                    .get("delta")
                    .and_then(|d| d.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                if let Some(field) = delta_field(&delta_type) {
                    if let Some(Value::String(s)) = value.get("delta").and_then(|d| d.get(field)) {
                        let key = Key {
                            outer: index,
                            inner: 0,
                            field: delta_type.as_str().into(),
                        };
                        let s = s.clone();
                        let released = self.push(key, &s);
                        if let Some(Value::Object(delta)) = value.get_mut("delta") {
                            delta.insert(field.to_owned(), Value::String(released));
                        }
                        return;
                    }
                }
            }
            "content_block_stop" => {
                for (key, rest) in self.finish_where(|k| k.outer == index) {
                    if let Some(v) = synthetic_block_delta(&key, rest) {
                        before.push((Some("content_block_delta".to_owned()), v));
                    }
                }
            }
            // The message ends: `message_delta` says how, before `message_stop`. A block the
            // provider never stopped is flushed before whichever comes first.
            "message_delta" | "message_stop" => {
                for (key, rest) in self.finish_where(|_| true) {
                    if let Some(v) = synthetic_block_delta(&key, rest) {
                        before.push((Some("content_block_delta".to_owned()), v));
                    }
                }
            }
            _ => {}
        }
        self.one_shot(value);
    }
}

fn response_key(value: &Value, prefix: &str) -> Key {
    let outer = value
        .get("output_index")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let inner = value
        .get("content_index")
        .or_else(|| value.get("summary_index"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Key {
        outer,
        inner,
        field: prefix.into(),
    }
}

fn delta_field(delta_type: &str) -> Option<&'static str> {
    match delta_type {
        "text_delta" => Some("text"),
        "input_json_delta" => Some("partial_json"),
        "thinking_delta" => Some("thinking"),
        _ => None,
    }
}

fn synthetic_block_delta(key: &Key, rest: String) -> Option<Value> {
    if rest.is_empty() {
        return None;
    }
    let field = delta_field(&key.field)?;
    let mut delta = Map::new();
    delta.insert("type".to_owned(), json!(&*key.field));
    delta.insert(field.to_owned(), Value::String(rest));
    Some(json!({"type": "content_block_delta", "index": key.outer, "delta": delta}))
}

/// Streamed strings one level down in a chat delta: (object, its streamed member, the key's
/// field). Legacy function calling streams `function_call.arguments` as tool calls stream
/// theirs; audio answers stream `audio.transcript`. The other members (a name, an id, base64
/// audio) are not text that continues across events and are scrubbed one-shot.
const NESTED: &[(&str, &str, &str)] = &[
    ("function_call", "arguments", "function_call.arguments"),
    ("audio", "transcript", "audio.transcript"),
];

/// The streamed member of the delta object `parent` and its key's field, if it has one.
fn nested_field(parent: &str) -> Option<(&'static str, &'static str)> {
    NESTED
        .iter()
        .find(|(p, _, _)| *p == parent)
        .map(|(_, child, field)| (*child, *field))
}

/// The string slot in a choice that `key` streams into.
fn chat_slot<'v>(choice: &'v mut Map<String, Value>, key: &Key) -> Option<&'v mut String> {
    let slot = if key.inner == 0 {
        if choice.get("delta").is_some_and(Value::is_object) {
            let delta = choice.get_mut("delta")?;
            match NESTED.iter().find(|(_, _, field)| *field == &*key.field) {
                Some((parent, child, _)) => delta.get_mut(*parent)?.get_mut(*child),
                None => delta.get_mut(&*key.field),
            }
        } else {
            choice.get_mut(&*key.field)
        }
    } else {
        let calls = choice
            .get_mut("delta")?
            .get_mut("tool_calls")?
            .as_array_mut()?;
        calls
            .iter_mut()
            .find(|c| c.get("index").and_then(Value::as_u64) == Some(key.inner - 1))?
            .get_mut("function")?
            .get_mut("arguments")
    };
    match slot {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn emit(original: &Event, data: Wiped<String>, out: &mut Vec<u8>) {
    let event = Event {
        event: original.event.clone(),
        data,
        id: original.id.clone(),
        retry: original.retry,
    };
    sse::encode(&event, out);
}

fn emit_value(name: Option<&str>, value: &Value, out: &mut Vec<u8>) {
    let event = Event {
        event: name.map(str::to_owned),
        data: Wiped::new(value.to_string()),
        id: None,
        retry: None,
    };
    sse::encode(&event, out);
}

#[cfg(test)]
mod tests {
    //! The audit's stream scenarios, event by event: each value split across events must come
    //! out scrubbed, in events a client can read.
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use crate::proxy::sse::{Decoder, Item};
    use crate::scrub::Policy;

    /// Feeds `events` (name, data) through a fresh scrubber, the way the stream body does, and
    /// decodes what the client gets; `true` when the stream was ended with an error event.
    fn run(api: Api, events: &[(Option<&str>, &str)]) -> (Vec<(Option<String>, String)>, bool) {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let mut scrub = EventScrubber::new(api, scrubber, Vault::new());
        let mut out = Vec::new();
        for (name, data) in events {
            let mut event = Event::new(Wiped::new((*data).to_owned()));
            event.event = name.map(str::to_owned);
            scrub.on_event(&mut event, &mut out);
            if scrub.failed() {
                break;
            }
        }
        scrub.on_end(&mut out);
        let mut decoder = Decoder::new(usize::MAX);
        decoder.push(&out);
        let mut items = Vec::new();
        while let Some(item) = decoder.next().unwrap() {
            if let Item::Event(e) = item {
                items.push((e.event.clone(), e.data.to_string()));
            }
        }
        decoder.finish().unwrap();
        (items, scrub.failed())
    }

    fn json_of(items: &[(Option<String>, String)]) -> Vec<Value> {
        items
            .iter()
            .filter(|(_, d)| d != "[DONE]")
            .map(|(_, d)| serde_json::from_str(d).expect("every event is JSON"))
            .collect()
    }

    /// The strings at `path` (a JSON pointer) of every event, joined.
    fn joined(events: &[Value], path: &str) -> String {
        events
            .iter()
            .filter_map(|e| e.pointer(path).and_then(Value::as_str))
            .collect()
    }

    fn chat(delta: Value) -> String {
        json!({"id": "c", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
    }

    fn chat_end() -> String {
        json!({"id": "c", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        .to_string()
    }

    #[test]
    fn legacy_function_call_arguments_and_audio_transcripts_are_streamed() {
        let events = [
            chat(json!({"role": "assistant", "function_call": {"name": "send", "arguments": ""}})),
            chat(json!({"function_call": {"arguments": "{\"to\":\"jane.doe"}})),
            chat(json!({"function_call": {"arguments": "@example.com\"}"}})),
            chat(json!({"audio": {"id": "a", "transcript": "mail jane.doe"}})),
            chat(json!({"audio": {"transcript": "@example.com"}})),
            chat(json!({"audio": {"transcript": " and john.roe"}})),
            chat_end(),
            "[DONE]".to_owned(),
        ];
        let events: Vec<_> = events.iter().map(|d| (None, d.as_str())).collect();
        let (items, failed) = run(Api::Chat, &events);
        assert!(!failed);
        let all = json_of(&items);
        let arguments = joined(&all, "/choices/0/delta/function_call/arguments");
        assert_eq!(arguments, "{\"to\":\"[EMAIL]\"}");
        let transcript = joined(&all, "/choices/0/delta/audio/transcript");
        assert_eq!(transcript, "mail [EMAIL] and john.roe");
        // The held rest ("john.roe") went out before the chunk that ends the choice.
        let last = &all[all.len() - 1];
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            all[all.len() - 2]["choices"][0]["delta"]["audio"]["transcript"],
            "john.roe"
        );
    }

    #[test]
    fn a_lone_surrogate_is_read_as_a_replacement_character_and_scrubbed_in_its_stream() {
        let lone = r#"{"choices":[{"index":0,"delta":{"content":"hi \ud83d x jane.doe"},"finish_reason":null}]}"#;
        let lead = r#"{"choices":[{"index":0,"delta":{"content":"\ude00@example.com "},"finish_reason":null}]}"#;
        let next = chat(json!({"content": "@example.com bye"}));
        let pair = r#"{"choices":[{"index":0,"delta":{"content":" \ud83d\ude00 C:\\ude00@example.com"},"finish_reason":null}]}"#;
        let end = chat_end();
        let events = [
            (None, lone),
            (None, next.as_str()),
            (None, lead),
            (None, pair),
            (None, end.as_str()),
        ];
        let (items, failed) = run(Api::Chat, &events);
        assert!(!failed);
        let text = joined(&json_of(&items), "/choices/0/delta/content");
        assert_eq!(
            text,
            "hi \u{FFFD} x [EMAIL] bye\u{FFFD}@example.com  \u{1F600} C:\\[EMAIL]"
        );

        let lone = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi \ud83d x jane.doe"}}"#;
        let next = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"@example.com bye"}}"#;
        let stop = r#"{"type":"content_block_stop","index":0}"#;
        let name = Some("content_block_delta");
        let (items, _) = run(
            Api::Messages,
            &[
                (name, lone),
                (name, next),
                (Some("content_block_stop"), stop),
            ],
        );
        assert_eq!(
            joined(&json_of(&items), "/delta/text"),
            "hi \u{FFFD} x [EMAIL] bye"
        );
    }

    #[test]
    fn data_that_is_not_a_json_object_ends_the_stream_with_the_error_event() {
        let first = chat(json!({"content": "mail "}));
        for bad in [
            r#"{"choices":[{"index":0,"delta":{"content":"mail jane.doe"}} x"#,
            r#""mail jane.doe""#,
            r#"["jane.doe"]"#,
            r#"{"choices":[{"index":0,"delta":{"content":"jane.doe\x"}}]}"#,
        ] {
            let also = r#"{"choices":[{"index":0,"delta":{"content":"@example.com"}} x"#;
            let (items, failed) = run(
                Api::Chat,
                &[(None, first.as_str()), (None, bad), (None, also)],
            );
            assert!(failed, "{bad}");
            let (_, last) = items.last().unwrap();
            assert!(last.contains("upstream_stream_failed"), "{bad}: {last}");
            let all: String = items.iter().map(|(_, d)| d.as_str()).collect();
            assert!(!all.contains("jane.doe"), "{bad}: {all}");
            assert!(!all.contains("example.com"), "{bad}: {all}");
        }
        let (items, failed) = run(
            Api::Messages,
            &[(
                Some("content_block_delta"),
                "{\"type\":\"content_block_delta\"} x",
            )],
        );
        assert!(failed);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0.as_deref(), Some("error"));
    }

    #[test]
    fn event_names_and_ids_are_scrubbed() {
        let data = chat(json!({"content": "hi"}));
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let mut scrub = EventScrubber::new(Api::Chat, scrubber, Vault::new());
        let mut out = Vec::new();
        for _ in 0..2 {
            let mut event = Event::new(Wiped::new(data.clone()));
            event.event = Some("jane.doe@example.com".into());
            event.id = Some("4111 1111 1111 1111".into());
            scrub.on_event(&mut event, &mut out);
        }
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("jane.doe"), "{out}");
        assert!(!out.contains("4111 1111"), "{out}");
        assert!(out.contains("event: [EMAIL]\n"), "{out}");
    }

    #[test]
    fn responses_flush_events_repeat_their_envelope_and_keep_numbers_unique() {
        let mut events: Vec<Value> = vec![
            json!({"type": "response.created", "response": {"id": "r"}}),
            json!({"type": "response.output_text.delta", "item_id": "i", "output_index": 0, "content_index": 0, "delta": "mail jane.doe"}),
            json!({"type": "response.output_text.delta", "item_id": "i", "output_index": 0, "content_index": 0, "delta": "@example.com ok"}),
            json!({"type": "response.output_text.done", "item_id": "i", "output_index": 0, "content_index": 0, "text": "x"}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "f", "output_index": 1, "delta": "{\"to\":\"john.roe"}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "f", "output_index": 1, "delta": "@example.org\"}"}),
            json!({"type": "response.refusal.delta", "item_id": "q", "output_index": 3, "content_index": 0, "delta": "no alice"}),
            json!({"type": "response.refusal.delta", "item_id": "q", "output_index": 3, "content_index": 0, "delta": "@example.io"}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "s", "output_index": 4, "summary_index": 2, "delta": "bob"}),
            json!({"type": "response.function_call_arguments.done", "item_id": "f", "output_index": 1, "arguments": "x"}),
            json!({"type": "response.completed", "response": {"id": "r"}}),
        ];
        for numbered in [true, false] {
            if numbered {
                for (n, e) in events.iter_mut().enumerate() {
                    e["sequence_number"] = json!(n);
                }
            } else {
                for e in events.iter_mut() {
                    e.as_object_mut().unwrap().remove("sequence_number");
                }
            }
            let data: Vec<String> = events.iter().map(Value::to_string).collect();
            let input: Vec<_> = events
                .iter()
                .zip(&data)
                .map(|(e, d)| (e["type"].as_str(), d.as_str()))
                .collect();
            let (items, failed) = run(Api::Responses, &input);
            assert!(!failed);
            let out = json_of(&items);
            for ((name, _), e) in items.iter().zip(&out) {
                assert_eq!(name.as_deref(), e["type"].as_str(), "{e}");
            }
            let text = |kind: &str| -> String {
                out.iter()
                    .filter(|e| e["type"] == kind)
                    .filter_map(|e| e["delta"].as_str())
                    .collect()
            };
            assert_eq!(text("response.output_text.delta"), "mail [EMAIL] ok");
            assert_eq!(
                text("response.function_call_arguments.delta"),
                "{\"to\":\"[EMAIL]\"}"
            );
            assert_eq!(text("response.refusal.delta"), "no [EMAIL]");
            assert_eq!(text("response.reasoning_summary_text.delta"), "bob");
            for e in out.iter().filter(|e| e.get("delta").is_some()) {
                let original = events.iter().find(|o| o["type"] == e["type"]).unwrap();
                for member in ["item_id", "output_index", "content_index", "summary_index"] {
                    assert_eq!(e.get(member), original.get(member), "{member}: {e}");
                }
            }
            let numbers: Vec<Option<u64>> =
                out.iter().map(|e| e["sequence_number"].as_u64()).collect();
            if numbered {
                let numbers: Vec<u64> = numbers.into_iter().map(Option::unwrap).collect();
                let expected: Vec<u64> = (0..numbers.len() as u64).collect();
                assert_eq!(numbers, expected);
                assert!(out.len() > events.len(), "flush events were inserted");
            } else {
                assert!(numbers.iter().all(Option::is_none), "{numbers:?}");
            }
        }
    }

    #[test]
    fn anthropic_held_text_goes_out_before_message_delta_without_a_block_stop() {
        let start =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        let one = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"mail jane.doe"}}"#;
        let two = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"@example.com"}}"#;
        let delta = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#;
        let stop = r#"{"type":"message_stop"}"#;
        let (items, _) = run(
            Api::Messages,
            &[
                (Some("content_block_start"), start),
                (Some("content_block_delta"), one),
                (Some("content_block_delta"), two),
                (Some("message_delta"), delta),
                (Some("message_stop"), stop),
            ],
        );
        let names: Vec<_> = items.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
        assert_eq!(
            names[names.len() - 3..],
            ["content_block_delta", "message_delta", "message_stop"]
        );
        assert_eq!(joined(&json_of(&items), "/delta/text"), "mail [EMAIL]");
    }
}
