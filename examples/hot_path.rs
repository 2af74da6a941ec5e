//! The proxy's per-request work without the network, for instruction counts:
//!
//! ```sh
//! cargo build --release --example hot_path
//! valgrind --tool=callgrind target/release/examples/hot_path stream 100
//! ```
//!
//! `stream N` feeds N recorded OpenAI chat streams (a ~320-character reply with PII in
//! 4-character deltas, about 90 events) through the SSE decoder and the event scrubber;
//! `messages N` does the same with an Anthropic stream; `chat N` does N non-streamed round trips
//! (a ~1 KB request with PII parsed, scrubbed and serialized, then the echoed answer likewise).
//! Divide the instruction counts by N (and by the events per stream) after subtracting a run
//! with N = 0.

// A benchmark driver: a wrong argument is a crash.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use lethe::proxy::events::{Api, EventScrubber};
use lethe::proxy::json;
use lethe::proxy::sse::{Decoder, Item};
use lethe::scrub::{Counts, Policy, Scrubber, Vault};
use serde_json::{json, Value};

const PROMPT: &str = "Hi, I ordered a walnut desk lamp from your shop last Tuesday (order 88412) and it arrived with a cracked shade and a loose switch. I would like a replacement rather than a refund if you still have the lamp in stock, otherwise a refund to the original payment method is fine. You can reach me at jane.doe@example.com or on my mobile (415) 555-0132 during the day. I paid with my card 4111 1111 1111 1111. Please tell me whether I need to send the broken lamp back first, and if so, whether you will email me a prepaid return label. Thanks a lot for your help!";
const SYSTEM: &str = "You are a friendly support assistant for an online furniture shop. Answer briefly, be polite, never invent order details and ask for missing information when you need it.";
const REPLY: &str = "Thanks Jane, I am sorry about the lamp! I found order 88412 and a replacement ships tomorrow. A prepaid return label goes to jane.doe@example.com today, and our courier may call you at (415) 555-0132 to pick up the broken one. Nothing will be charged again to the card 4111 1111 1111 1111. Anything else I can do for you?";

fn deltas() -> Vec<String> {
    let chars: Vec<char> = REPLY.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

fn sse(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(name) = event {
        out.push_str(&format!("event: {name}\n"));
    }
    out.push_str(&format!("data: {data}\n\n"));
}

fn chat_stream() -> String {
    let chunk = |choice: Value| {
        json!({"id": "chatcmpl-mock-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": "gpt-4o-mini", "system_fingerprint": null, "choices": [choice]})
    };
    let mut out = String::new();
    sse(
        &mut out,
        None,
        &chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}),
        ),
    );
    for d in deltas() {
        sse(
            &mut out,
            None,
            &chunk(
                json!({"index": 0, "delta": {"content": d}, "logprobs": null, "finish_reason": null}),
            ),
        );
    }
    sse(
        &mut out,
        None,
        &chunk(json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})),
    );
    out.push_str("data: [DONE]\n\n");
    out
}

fn messages_stream() -> String {
    let mut out = String::new();
    sse(
        &mut out,
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                "model": "claude", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    );
    sse(
        &mut out,
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    for d in deltas() {
        sse(
            &mut out,
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}),
        );
    }
    sse(
        &mut out,
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    );
    sse(
        &mut out,
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    );
    out
}

fn stream(api: Api, recorded: &str, scrubber: &Scrubber, n: usize) {
    for _ in 0..n {
        let mut events = EventScrubber::new(api, scrubber.clone(), Vault::new());
        let mut decoder = Decoder::new(1 << 20);
        let mut out = Vec::new();
        // The way the upstream delivers a burst: reads of up to 16 KiB.
        for read in recorded.as_bytes().chunks(16 * 1024) {
            decoder.push(read);
            // As the stream body does: room for the scrubbed events of this read.
            out.reserve(read.len() + read.len() / 4);
            while let Ok(Some(item)) = decoder.next() {
                if let Item::Event(mut event) = item {
                    events.on_event(&mut event, &mut out);
                    decoder.recycle(event);
                }
            }
        }
        decoder.finish().unwrap();
        events.on_end(&mut out);
        black_box(&out);
    }
}

fn chat(scrubber: &Scrubber, n: usize) {
    let request = json!({"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 400,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]})
    .to_string();
    let answer = json!({"id": "chatcmpl-mock-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": PROMPT},
        "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 150, "total_tokens": 350}, "system_fingerprint": null})
    .to_string();
    // As the proxy does it: the tree-less path, the tree for what it declines.
    let scrub = |raw: &str, vault: &mut Vault, counts: &mut Counts, request: bool| {
        let document = json::scrub_document(raw.as_bytes(), scrubber, vault, counts, None, request);
        if let Some(document) = document {
            return document.bytes;
        }
        let mut value: Value = serde_json::from_slice(raw.as_bytes()).unwrap();
        json::scrub_value(&mut value, scrubber, vault, counts);
        serde_json::to_vec(&value).unwrap()
    };
    for _ in 0..n {
        let mut counts = Counts::default();
        black_box(scrub(&request, &mut Vault::new(), &mut counts, true));
        black_box(scrub(&answer, &mut Vault::new(), &mut counts, false));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().expect("stream, messages or chat");
    let n: usize = args.next().map_or(1, |n| n.parse().expect("a count"));
    let scrubber = Scrubber::new(&Policy::default()).unwrap();
    match what.as_str() {
        "stream" => stream(Api::Chat, &chat_stream(), &scrubber, n),
        "messages" => stream(Api::Messages, &messages_stream(), &scrubber, n),
        "chat" => chat(&scrubber, n),
        _ => panic!("stream, messages or chat"),
    }
}
