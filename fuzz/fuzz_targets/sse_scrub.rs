//! Arbitrary text cut into stream deltas, wrapped in OpenAI chat chunks or Anthropic
//! `content_block_delta` events and passed through the event scrubber: the text the client
//! reassembles equals the one-shot scrub of the whole text, whatever the cuts.
#![no_main]

use lethe::proxy::events::{Api, EventScrubber};
use lethe::proxy::sse::{Decoder, Event, Item};
use lethe::scrub::Vault;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use lethe::alloc::Wiped;

fn event(name: Option<&str>, value: Value) -> Event {
    let mut e = Event::new(Wiped::new(value.to_string()));
    e.event = name.map(str::to_owned);
    e
}

fuzz_target!(|data: &[u8]| {
    let Some((lens, bytes)) = lethe_fuzz::split(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let scrubber = lethe_fuzz::scrubber(None);
    let api = if lens[0] % 2 == 0 {
        Api::Chat
    } else {
        Api::Messages
    };
    let mut events = EventScrubber::new(api, scrubber.clone(), Vault::new());
    let mut out = Vec::new();
    for piece in lethe_fuzz::str_pieces(text, &lens) {
        let mut e = match api {
            Api::Chat => event(
                None,
                json!({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]}),
            ),
            _ => event(
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ),
        };
        events.on_event(&mut e, &mut out);
    }
    let mut end = match api {
        Api::Chat => event(
            None,
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ),
        _ => event(
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
    };
    events.on_event(&mut end, &mut out);
    events.on_end(&mut out);

    let mut decoder = Decoder::new(usize::MAX);
    decoder.push(&out);
    let mut streamed = String::new();
    while let Ok(Some(item)) = decoder.next() {
        let Item::Event(e) = item else { continue };
        let v: Value = serde_json::from_str(&e.data).expect("the scrubber emits JSON");
        let piece = match api {
            Api::Chat => v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned),
            _ => v["delta"]["text"].as_str().map(str::to_owned),
        };
        streamed.push_str(piece.as_deref().unwrap_or(""));
    }
    assert!(decoder.finish().is_ok());
    assert!(
        streamed == scrubber.scrub(text).text,
        "streamed events differ from one-shot"
    );
});
