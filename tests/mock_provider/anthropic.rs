//! Anthropic wire format: `POST /v1/messages`, streamed and not.

use serde_json::Value;

use crate::json::J;
use crate::wire::{
    content_text, json_bytes, model_of, next_id, split_chars, sse_event, tokens, wants_stream,
    Reply, Template, TEXT_SLOT,
};
use crate::Rendered;

/// Signature attached to thinking blocks.
const SIGNATURE: &str = "bW9jay10aGlua2luZy1zaWduYXR1cmU=";

/// Id of the tool-use block made with `x-mock-tool-call`.
const TOOL_ID: &str = "toolu_mock";

/// Messages: the last message's text and the characters of the system prompt and all messages.
pub(crate) fn messages_input(req: &Value) -> (String, usize) {
    let system = req
        .get("system")
        .map_or(0, |s| content_text(s).chars().count());
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return (String::new(), system);
    };
    let chars: usize = messages
        .iter()
        .map(|m| {
            content_text(m.get("content").unwrap_or(&Value::Null))
                .chars()
                .count()
        })
        .sum();
    let last = messages
        .last()
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    (last, chars + system)
}

/// One content block of the answer.
enum Block {
    Thinking(String),
    Text(String),
    ToolUse { name: String, input: String },
}

/// `POST /v1/messages`.
pub(crate) fn messages(req: &Value, reply: &Reply, prompt_chars: usize) -> Rendered {
    let id = next_id("msg_");
    let model = model_of(req, "claude-sonnet-4-5");
    let mut blocks = Vec::with_capacity(2);
    let thinking = req.get("thinking").filter(|t| t.is_object());
    if thinking.is_some_and(|t| t.get("type").and_then(Value::as_str) != Some("disabled")) {
        blocks.push(Block::Thinking(format!("thinking: {}", reply.text)));
    }
    match &reply.tool_call {
        Some(name) => blocks.push(Block::ToolUse {
            name: name.clone(),
            input: reply.tool_arguments(),
        }),
        None => blocks.push(Block::Text(reply.text.clone())),
    }
    let stop_reason = if reply.tool_call.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let input_tokens = tokens(prompt_chars);
    let output_tokens: u64 = blocks
        .iter()
        .map(|b| match b {
            Block::Thinking(t) | Block::Text(t) => tokens(t.chars().count()),
            Block::ToolUse { input, .. } => tokens(input.chars().count()),
        })
        .sum();

    if !wants_stream(req) {
        let content: Vec<J> = blocks
            .iter()
            .map(|b| match b {
                Block::Thinking(t) => {
                    obj! { "type": "thinking", "thinking": t, "signature": SIGNATURE }
                }
                Block::Text(t) => obj! { "type": "text", "text": t },
                Block::ToolUse { name, .. } => obj! {
                    "type": "tool_use",
                    "id": TOOL_ID,
                    "name": name,
                    "input": obj! { "text": &reply.text },
                },
            })
            .collect();
        let body = obj! {
            "id": &id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": J::Null,
            "usage": obj! { "input_tokens": input_tokens, "output_tokens": output_tokens },
        };
        return Rendered::json(json_bytes(&body));
    }

    let mut events = Vec::with_capacity(reply.text.len() / reply.delta_chars.max(1) * 2 + 12);
    events.push(sse_event(
        "message_start",
        &obj! {
            "type": "message_start",
            "message": obj! {
                "id": &id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": arr![],
                "stop_reason": J::Null,
                "stop_sequence": J::Null,
                "usage": obj! { "input_tokens": input_tokens, "output_tokens": 1_u64 },
            },
        },
    ));
    for (index, block) in blocks.iter().enumerate() {
        let (start, pieces, delta_type, field) = match block {
            Block::Thinking(t) => (
                obj! { "type": "thinking", "thinking": "", "signature": "" },
                split_chars(t, reply.delta_chars),
                "thinking_delta",
                "thinking",
            ),
            Block::Text(t) => (
                obj! { "type": "text", "text": "" },
                split_chars(t, reply.delta_chars),
                "text_delta",
                "text",
            ),
            Block::ToolUse { name, input } => (
                obj! { "type": "tool_use", "id": TOOL_ID, "name": name, "input": obj! {} },
                split_chars(input, reply.delta_chars),
                "input_json_delta",
                "partial_json",
            ),
        };
        events.push(sse_event(
            "content_block_start",
            &obj! { "type": "content_block_start", "index": index, "content_block": start },
        ));
        if index == 0 {
            events.push(sse_event("ping", &obj! { "type": "ping" }));
        }
        let template = Template::new(
            Some("content_block_delta"),
            &obj! {
                "type": "content_block_delta",
                "index": index,
                "delta": obj! { "type": delta_type, field: TEXT_SLOT },
            },
        );
        for piece in pieces {
            events.push(template.render(piece, 0));
        }
        if matches!(block, Block::Thinking(_)) {
            events.push(sse_event(
                "content_block_delta",
                &obj! {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": obj! { "type": "signature_delta", "signature": SIGNATURE },
                },
            ));
        }
        events.push(sse_event(
            "content_block_stop",
            &obj! { "type": "content_block_stop", "index": index },
        ));
    }
    events.push(sse_event(
        "message_delta",
        &obj! {
            "type": "message_delta",
            "delta": obj! { "stop_reason": stop_reason, "stop_sequence": J::Null },
            "usage": obj! { "output_tokens": output_tokens },
        },
    ));
    events.push(sse_event("message_stop", &obj! { "type": "message_stop" }));
    Rendered::sse(events)
}
