//! OpenAI wire formats: chat completions, legacy completions, responses, embeddings, models.

use std::cell::{Cell, RefCell};

use serde_json::Value;

use crate::json::J;
use crate::wire::{
    content_text, include_usage, json_bytes, model_of, next_id, now_secs, split_chars, sse_data,
    sse_done, sse_event, tokens, wants_stream, Reply, Template, NUM_SLOT, TEXT_SLOT,
};
use crate::Rendered;

/// Id of the tool call in chat answers made with `x-mock-tool-call`.
const CALL_ID: &str = "call_mock";

/// Number of choices asked for (`n`), kept within reason.
fn choices_of(req: &Value) -> u64 {
    req.get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 128)
}

fn usage(prompt: u64, completion: u64) -> J<'static> {
    obj! {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
}

/// One streamed chat choice, in its own single-element `choices` array.
fn choice<'a>(index: J<'a>, delta: J<'a>, finish: J<'a>) -> J<'a> {
    arr![obj! { "index": index, "delta": delta, "logprobs": J::Null, "finish_reason": finish }]
}

/// The text of a message's `content`, empty if it has none.
fn message_text(message: &Value) -> String {
    message.get("content").map(content_text).unwrap_or_default()
}

/// Chat completions: the last message's text and the character count of all messages.
pub(crate) fn chat_input(req: &Value) -> (String, usize) {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return (String::new(), 0);
    };
    let chars = messages
        .iter()
        .map(|m| message_text(m).chars().count())
        .sum();
    let last = messages.last().map(message_text).unwrap_or_default();
    (last, chars)
}

/// `POST /v1/chat/completions`.
pub(crate) fn chat(req: &Value, reply: &Reply, prompt_chars: usize) -> Rendered {
    let id = next_id("chatcmpl-");
    let created = now_secs();
    let model = model_of(req, "gpt-4o-mini");
    let n = choices_of(req);
    let arguments = reply.tool_call.as_ref().map(|_| reply.tool_arguments());
    let produced = arguments.as_deref().unwrap_or(&reply.text);
    let prompt_tokens = tokens(prompt_chars);
    let completion_tokens = tokens(produced.chars().count()) * n;
    let finish = if reply.tool_call.is_some() {
        "tool_calls"
    } else {
        "stop"
    };

    if !wants_stream(req) {
        let message = match (&reply.tool_call, reply.refusal) {
            (Some(name), _) => obj! {
                "role": "assistant",
                "content": J::Null,
                "tool_calls": arr![obj! {
                    "id": CALL_ID,
                    "type": "function",
                    "function": obj! { "name": name, "arguments": produced },
                }],
                "refusal": J::Null,
                "annotations": arr![],
            },
            (None, true) => obj! {
                "role": "assistant",
                "content": J::Null,
                "refusal": &reply.text,
                "annotations": arr![],
            },
            (None, false) => obj! {
                "role": "assistant",
                "content": &reply.text,
                "refusal": J::Null,
                "annotations": arr![],
            },
        };
        let choices: Vec<J> = (0..n)
            .map(|i| {
                obj! {
                    "index": i,
                    "message": message.clone(),
                    "logprobs": J::Null,
                    "finish_reason": finish,
                }
            })
            .collect();
        let body = obj! {
            "id": &id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
            "system_fingerprint": J::Null,
        };
        return Rendered::json(json_bytes(&body));
    }

    let with_usage = include_usage(req);
    let envelope = |choices: J<'static>| -> J {
        let mut v = obj! {
            "id": &id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": J::Null,
            "choices": choices,
        };
        if with_usage {
            if let J::Obj(entries) = &mut v {
                entries.push(("usage", J::Null));
            }
        }
        v
    };
    let chunk = |choices: J<'static>| sse_data(&envelope(choices));

    let deltas = split_chars(produced, reply.delta_chars);
    let mut events = Vec::with_capacity((deltas.len() + 2) * n as usize + 2);
    let first = match (&reply.tool_call, reply.refusal) {
        (Some(name), _) => obj! {
            "role": "assistant",
            "content": J::Null,
            "tool_calls": arr![obj! {
                "index": 0_u64,
                "id": CALL_ID,
                "type": "function",
                "function": obj! { "name": name.clone(), "arguments": "" },
            }],
        },
        (None, true) => obj! { "role": "assistant", "content": J::Null, "refusal": "" },
        (None, false) => obj! { "role": "assistant", "content": "" },
    };
    for i in 0..n {
        events.push(chunk(choice(J::U(i), first.clone(), J::Null)));
    }
    let delta = match (&reply.tool_call, reply.refusal) {
        (Some(_), _) => obj! {
            "tool_calls": arr![obj! {
                "index": 0_u64,
                "function": obj! { "arguments": TEXT_SLOT },
            }],
        },
        (None, true) => obj! { "refusal": TEXT_SLOT },
        (None, false) => obj! { "content": TEXT_SLOT },
    };
    let template = Template::new(None, &envelope(choice(J::from(NUM_SLOT), delta, J::Null)));
    for d in deltas {
        for i in 0..n {
            events.push(template.render(d, i));
        }
    }
    for i in 0..n {
        events.push(chunk(choice(J::U(i), obj! {}, J::from(finish))));
    }
    if with_usage {
        events.push(sse_data(&obj! {
            "id": &id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": J::Null,
            "choices": arr![],
            "usage": usage(prompt_tokens, completion_tokens),
        }));
    }
    events.push(sse_done());
    Rendered::sse(events)
}

/// Legacy completions: the prompt (last one if several) and the characters of all prompts.
pub(crate) fn completion_input(req: &Value) -> (String, usize) {
    match req.get("prompt") {
        Some(Value::String(s)) => (s.clone(), s.chars().count()),
        Some(Value::Array(items)) => {
            let strings: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            let chars = strings.iter().map(|s| s.chars().count()).sum();
            (
                strings.last().copied().unwrap_or_default().to_owned(),
                chars,
            )
        }
        _ => (String::new(), 0),
    }
}

/// `POST /v1/completions`.
pub(crate) fn completions(req: &Value, reply: &Reply, prompt_chars: usize) -> Rendered {
    let id = next_id("cmpl-");
    let created = now_secs();
    let model = model_of(req, "gpt-3.5-turbo-instruct");
    let n = choices_of(req);
    let prompt_tokens = tokens(prompt_chars);
    let completion_tokens = tokens(reply.text.chars().count()) * n;

    if !wants_stream(req) {
        let choices: Vec<J> = (0..n)
            .map(|i| {
                obj! {
                    "text": &reply.text,
                    "index": i,
                    "logprobs": J::Null,
                    "finish_reason": "stop",
                }
            })
            .collect();
        let body = obj! {
            "id": &id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": J::Null,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
        };
        return Rendered::json(json_bytes(&body));
    }

    let with_usage = include_usage(req);
    let chunk = |i: J<'static>, text: &'static str, finish: J<'static>| -> J {
        let mut v = obj! {
            "id": &id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": J::Null,
            "choices": arr![obj! {
                "text": text,
                "index": i,
                "logprobs": J::Null,
                "finish_reason": finish,
            }],
        };
        if with_usage {
            if let J::Obj(entries) = &mut v {
                entries.push(("usage", J::Null));
            }
        }
        v
    };
    let deltas = reply.deltas();
    let mut events = Vec::with_capacity((deltas.len() + 1) * n as usize + 2);
    let template = Template::new(None, &chunk(J::from(NUM_SLOT), TEXT_SLOT, J::Null));
    for d in deltas {
        for i in 0..n {
            events.push(template.render(d, i));
        }
    }
    for i in 0..n {
        events.push(sse_data(&chunk(J::U(i), "", J::from("stop"))));
    }
    if with_usage {
        events.push(sse_data(&obj! {
            "id": &id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": J::Null,
            "choices": arr![],
            "usage": usage(prompt_tokens, completion_tokens),
        }));
    }
    events.push(sse_done());
    Rendered::sse(events)
}

/// The text of one Responses input item: its `content` (string or parts) or its own `text`.
fn item_text(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        _ => match item.get("content") {
            Some(content) => content_text(content),
            None => item
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
    }
}

/// Responses: `input` string or the last input item's text, and the characters of all input.
pub(crate) fn responses_input(req: &Value) -> (String, usize) {
    let instructions = req
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count());
    match req.get("input") {
        Some(Value::String(s)) => (s.clone(), s.chars().count() + instructions),
        Some(Value::Array(items)) => {
            let chars: usize = items.iter().map(|i| item_text(i).chars().count()).sum();
            let last = items.last().map(item_text).unwrap_or_default();
            (last, chars + instructions)
        }
        _ => (String::new(), instructions),
    }
}

/// `POST /v1/responses`.
pub(crate) fn responses(req: &Value, reply: &Reply, prompt_chars: usize) -> Rendered {
    // Everything here is owned: the pieces are reused across events.
    let id = next_id("resp_");
    let item_id = next_id("msg_");
    let created = now_secs();
    let model = model_of(req, "gpt-4o-mini").to_owned();
    let input_tokens = tokens(prompt_chars);
    let output_tokens = tokens(reply.text.chars().count());
    let instructions: J<'static> = req
        .get("instructions")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into();

    let part = |text: &str| -> J<'static> {
        obj! { "type": "output_text", "annotations": arr![], "text": text.to_owned() }
    };
    let item = |status: &'static str, content: J<'static>| -> J<'static> {
        obj! {
            "id": item_id.clone(),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }
    };
    let response = |status: &'static str, output: J<'static>, usage: J<'static>| -> J<'static> {
        obj! {
            "id": id.clone(),
            "object": "response",
            "created_at": created,
            "status": status,
            "error": J::Null,
            "incomplete_details": J::Null,
            "instructions": instructions.clone(),
            "model": model.clone(),
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": J::Null,
            "usage": usage,
        }
    };
    let done_item = item("completed", arr![part(&reply.text)]);
    let usage = obj! {
        "input_tokens": input_tokens,
        "input_tokens_details": obj! { "cached_tokens": 0_u64 },
        "output_tokens": output_tokens,
        "output_tokens_details": obj! { "reasoning_tokens": 0_u64 },
        "total_tokens": input_tokens + output_tokens,
    };

    if !wants_stream(req) {
        let body = response("completed", arr![done_item], usage);
        return Rendered::json(json_bytes(&body));
    }

    let deltas = reply.deltas();
    let events = Vec::with_capacity(deltas.len() + 8);
    // Both closures need the event list and the sequence number: they share them in cells.
    let events = RefCell::new(events);
    let seq = Cell::new(0_u64);
    let push = |name: &'static str, fields: Vec<(&'static str, J<'static>)>| {
        let mut entries = Vec::with_capacity(fields.len() + 2);
        entries.push(("type", J::from(name)));
        entries.extend(fields);
        entries.push(("sequence_number", J::from(seq.get())));
        seq.set(seq.get() + 1);
        events.borrow_mut().push(sse_event(name, &J::Obj(entries)));
    };
    let push_rendered = |template: &Template, text: &str| {
        events.borrow_mut().push(template.render(text, seq.get()));
        seq.set(seq.get() + 1);
    };
    let text_fields = |extra: (&'static str, J<'static>)| {
        vec![
            ("item_id", J::from(item_id.clone())),
            ("output_index", J::U(0)),
            ("content_index", J::U(0)),
            extra,
        ]
    };
    let in_progress = response("in_progress", arr![], J::Null);
    push("response.created", vec![("response", in_progress.clone())]);
    push("response.in_progress", vec![("response", in_progress)]);
    push(
        "response.output_item.added",
        vec![
            ("output_index", J::U(0)),
            ("item", item("in_progress", arr![])),
        ],
    );
    push(
        "response.content_part.added",
        text_fields(("part", part(""))),
    );
    let mut fields = text_fields(("delta", J::from(TEXT_SLOT)));
    fields.push(("logprobs", arr![]));
    fields.insert(0, ("type", J::from("response.output_text.delta")));
    fields.push(("sequence_number", J::from(NUM_SLOT)));
    let template = Template::new(Some("response.output_text.delta"), &J::Obj(fields));
    for d in deltas {
        push_rendered(&template, d);
    }
    let mut fields = text_fields(("text", J::from(reply.text.clone())));
    fields.push(("logprobs", arr![]));
    push("response.output_text.done", fields);
    push(
        "response.content_part.done",
        text_fields(("part", part(&reply.text))),
    );
    push(
        "response.output_item.done",
        vec![("output_index", J::U(0)), ("item", done_item.clone())],
    );
    push(
        "response.completed",
        vec![("response", response("completed", arr![done_item], usage))],
    );
    Rendered::sse(events.into_inner())
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Eight deterministic floats of unit length derived from the input.
fn embedding_of(input: &Value) -> Vec<J<'static>> {
    let text = match input {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let raw: Vec<f64> = (0..8_u64)
        .map(|k| {
            let h = fnv1a(text.as_bytes(), k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            (h >> 11) as f64 / (1_u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| J::F((x / norm) as f32)).collect()
}

/// `POST /v1/embeddings`: one vector per input string (or token array).
pub(crate) fn embeddings(req: &Value) -> Rendered {
    let inputs: Vec<&Value> = match req.get("input") {
        // An array of strings or of token arrays holds several inputs; of numbers, one.
        Some(Value::Array(items)) if items.iter().any(|i| !i.is_number()) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let chars: usize = inputs
        .iter()
        .map(|i| {
            i.as_str()
                .map_or_else(|| i.to_string().len(), |s| s.chars().count())
        })
        .sum();
    let data: Vec<J> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            obj! { "object": "embedding", "index": i, "embedding": embedding_of(input) }
        })
        .collect();
    let prompt_tokens = tokens(chars);
    let body = obj! {
        "object": "list",
        "data": data,
        "model": model_of(req, "text-embedding-3-small"),
        "usage": obj! { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    };
    Rendered::json(json_bytes(&body))
}

/// `GET /v1/models`.
pub(crate) fn models() -> Rendered {
    let models = [
        ("gpt-4o-mini", 1_721_172_741_u64),
        ("gpt-4o", 1_715_367_049),
        ("gpt-3.5-turbo-instruct", 1_692_901_427),
        ("text-embedding-3-small", 1_705_948_997),
    ];
    let data: Vec<J> = models
        .iter()
        .map(|&(id, created)| {
            obj! { "id": id, "object": "model", "created": created, "owned_by": "system" }
        })
        .collect();
    Rendered::json(json_bytes(&obj! { "object": "list", "data": data }))
}
