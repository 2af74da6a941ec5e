//! Scrubbing a streamed answer event by event, sans I/O.
//!
//! # Design
//! Each text that a provider streams in pieces (a choice's `content`, a tool call's
//! `arguments`, a Responses `*.delta`, an Anthropic block's `text_delta` / `input_json_delta` /
//! `thinking_delta`) gets its own [`StreamScrubber`], keyed by where it lives (choice, tool call,
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
//! on: they spell the answer out token by token, past any scrubber. An event whose data is not
//! JSON is scrubbed as plain text.
//!
//! With placeholders, values the provider produces are labelled (see
//! [`RequestPolicy::response_styles`](super::policy::RequestPolicy::response_styles)) and then
//! the request's placeholders are put back, streamed, so the client reads its own values.
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
    /// Last Responses `sequence_number` seen.
    sequence: u64,
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
    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
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

    /// Scrubs any event through a JSON tree (see [`Self::on_event`]).
    fn general_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        // The general path may renew the chunk template, on which fast plans depend.
        self.envelope = None;
        let data: &str = &event.data;
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            let mut text = String::from(data);
            json::scrub_string(
                &mut text,
                &self.scrubber,
                &mut self.scratch,
                &mut self.counts,
            );
            json::restore_string(&mut text, &self.vault);
            emit(event, Wiped::new(text), out);
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
        let rests = self.finish_where(|_| true);
        let mut before = Vec::new();
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
            Api::Responses => {
                for (key, rest) in rests {
                    if let Some(v) = self.synthetic_response_delta(&key, rest, None) {
                        before.push((Some(format!("{}.delta", key.field)), v));
                    }
                }
            }
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
                    delta.insert(key.field.to_string(), Value::String(rest.clone()));
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
        if let Some(n) = value.get("sequence_number").and_then(Value::as_u64) {
            self.sequence = n;
        }
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if let Some(prefix) = kind.strip_suffix(".delta") {
            if let Some(Value::String(delta)) = value.get("delta") {
                let key = response_key(value, prefix);
                let delta = delta.clone();
                let released = self.push(key, &delta);
                if let Some(obj) = value.as_object_mut() {
                    self.one_shot_except(obj, &["delta"]);
                    obj.insert("delta".to_owned(), Value::String(released));
                }
                return;
            }
        } else if let Some(prefix) = kind.strip_suffix(".done") {
            let key = response_key(value, prefix);
            let rests = self.finish_where(|k| *k == key);
            for (key, rest) in rests {
                let sequence = value.get("sequence_number").cloned();
                if let Some(v) = self.synthetic_response_delta(&key, rest, sequence) {
                    let item = value.get("item_id").cloned();
                    let mut v = v;
                    if let (Some(item), Some(obj)) = (item, v.as_object_mut()) {
                        obj.insert("item_id".to_owned(), item);
                    }
                    before.push((Some(format!("{prefix}.delta")), v));
                }
            }
        } else if kind == "response.completed"
            || kind == "response.incomplete"
            || kind == "response.failed"
        {
            let rests = self.finish_where(|_| true);
            for (key, rest) in rests {
                if let Some(v) = self.synthetic_response_delta(&key, rest, None) {
                    before.push((Some(format!("{}.delta", key.field)), v));
                }
            }
        }
        self.one_shot(value);
    }

    fn synthetic_response_delta(
        &self,
        key: &Key,
        rest: String,
        sequence: Option<Value>,
    ) -> Option<Value> {
        if rest.is_empty() {
            return None;
        }
        let mut v = json!({
            "type": format!("{}.delta", key.field),
            "output_index": key.outer,
            "delta": rest,
            "sequence_number": sequence.unwrap_or(json!(self.sequence)),
        });
        if let Some(obj) = v.as_object_mut() {
            let inner_name = if key.field.contains("summary") {
                "summary_index"
            } else {
                "content_index"
            };
            obj.insert(inner_name.to_owned(), json!(key.inner));
        }
        Some(v)
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
            "message_stop" => {
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

/// The string slot in a choice that `key` streams into.
fn chat_slot<'v>(choice: &'v mut Map<String, Value>, key: &Key) -> Option<&'v mut String> {
    let slot = if key.inner == 0 {
        if choice.get("delta").is_some_and(Value::is_object) {
            choice.get_mut("delta")?.get_mut(&*key.field)
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
