//! Streaming equals one-shot for every cut, the default policy is idempotent on values that stand
//! apart, and a stream never
//! holds back more than `HOLD_BOUND` bytes.
#![no_main]

use lethe::scrub::{Vault, HOLD_BOUND};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((lens, payload)) = lethe_fuzz::split(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let s = lethe_fuzz::scrubber(None);
    let whole = s.scrub(text);

    let mut vault = Vault::new();
    let mut stream = s.stream();
    let mut out = String::new();
    for delta in lethe_fuzz::str_pieces(text, &lens) {
        out.push_str(stream.push(delta, &mut vault));
        assert!(
            stream.held_back() <= HOLD_BOUND,
            "held back {}",
            stream.held_back()
        );
    }
    out.push_str(stream.finish(&mut vault));
    assert_eq!(out, whole.text, "stream output differs from one-shot");
    assert_eq!(stream.counts(), whole.counts, "stream counts differ");

    // Idempotence is promised for values that stand apart (see `lethe::scrub`): check it when
    // every finding has whitespace or an end of text on both sides.
    let apart = s.find(text).iter().all(|f| {
        let before = text[..f.range.start].chars().next_back();
        let after = text[f.range.end..].chars().next();
        [before, after]
            .iter()
            .all(|c| c.is_none_or(char::is_whitespace))
    });
    if apart {
        let again = s.scrub(&whole.text);
        assert_eq!(again.text, whole.text, "scrubbing is not idempotent");
    }
});
