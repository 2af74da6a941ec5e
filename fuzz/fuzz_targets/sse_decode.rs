//! Arbitrary bytes cut anywhere through the SSE decoder: no panic, the same items and end as
//! one push, never more held than the limit after draining, and decoded events re-encode to a
//! stream that decodes to the same items.
#![no_main]

use lethe::proxy::sse::{encode, encode_comment, Decoder, Item, SseError};
use libfuzzer_sys::fuzz_target;

/// Pushes `pieces`, draining after each: the items, then the error or the end.
fn decode(pieces: &[&[u8]], max: usize) -> (Vec<Item>, Result<(), SseError>) {
    let mut d = Decoder::new(max);
    let mut items = Vec::new();
    for piece in pieces {
        d.push(piece);
        loop {
            match d.next() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Err(e)),
            }
        }
        assert!(d.buffered() <= max, "held {} over {max}", d.buffered());
    }
    (items, d.finish())
}

fuzz_target!(|data: &[u8]| {
    let Some((lens, bytes)) = lethe_fuzz::split(data) else {
        return;
    };
    // The first cut length also picks the limit: small limits reach `TooLarge`.
    let max = if lens[0] % 2 == 0 { 1 << 20 } else { lens[0] };
    let whole = decode(&[bytes], max);
    let cut = decode(&lethe_fuzz::byte_pieces(bytes, &lens), max);
    assert!(cut == whole, "split decoding differs from one push");

    let mut out = Vec::new();
    for item in &whole.0 {
        match item {
            Item::Event(e) => encode(e, &mut out),
            Item::Comment => encode_comment(&mut out),
        }
    }
    let again = decode(&[&out], 1 << 20);
    assert!(
        again == (whole.0, Ok(())),
        "re-encoded events decode differently"
    );
});
