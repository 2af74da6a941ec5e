//! The words of the providers' wire formats: object keys (`messages`, `finish_reason`) and
//! enum values (`assistant`, `chat.completion`, `end_turn`) that fill most of the strings of a
//! request or an answer.
//!
//! No detector finds anything in one of them: none has a digit or an `@`, and none starts a
//! secret. Scrubbing one is work with a known result, so [`super::json::scrub_document`] leaves
//! them as they are when the scrubber has no operator dictionary (a dictionary term may be any
//! word). A test scrubs every word under every type to keep that true.
//!
//! The lookup is a hash table built at compile time: one hash of a word's length and three of
//! its bytes, then one comparison on average.

/// The words. Lower case, ASCII letters, `_` and `.` only (a test checks).
const WORDS: &[&str] = &[
    // Keys of requests.
    "messages",
    "model",
    "role",
    "content",
    "name",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stream",
    "stream_options",
    "include_usage",
    "stop",
    "stop_sequences",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "function",
    "functions",
    "function_call",
    "description",
    "parameters",
    "properties",
    "required",
    "strict",
    "response_format",
    "json_schema",
    "schema",
    "type",
    "tool_calls",
    "tool_call_id",
    "id",
    "arguments",
    "text",
    "image_url",
    "url",
    "detail",
    "metadata",
    "store",
    "service_tier",
    "reasoning_effort",
    "reasoning",
    "effort",
    "summary",
    "modalities",
    "audio",
    "input",
    "encoding_format",
    "dimensions",
    "instructions",
    "previous_response_id",
    "prompt",
    "suffix",
    "echo",
    "best_of",
    "system",
    "thinking",
    "budget_tokens",
    "cache_control",
    "source",
    "media_type",
    "data",
    "tool_use_id",
    "is_error",
    "input_schema",
    "items",
    "enum",
    "format",
    "truncation",
    "include",
    "additionalProperties",
    // Keys of answers.
    "object",
    "created",
    "created_at",
    "choices",
    "index",
    "message",
    "delta",
    "refusal",
    "annotations",
    "finish_reason",
    "stop_reason",
    "stop_sequence",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "cached_tokens",
    "audio_tokens",
    "reasoning_tokens",
    "accepted_prediction_tokens",
    "rejected_prediction_tokens",
    "input_tokens",
    "output_tokens",
    "input_tokens_details",
    "output_tokens_details",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "system_fingerprint",
    "embedding",
    "status",
    "output",
    "output_text",
    "error",
    "incomplete_details",
    "code",
    "param",
    "signature",
    "call_id",
    "item_id",
    "output_index",
    "content_index",
    "sequence_number",
    // Enum values.
    "assistant",
    "developer",
    "tool",
    "chat.completion",
    "chat.completion.chunk",
    "text_completion",
    "list",
    "response",
    "length",
    "content_filter",
    "end_turn",
    "tool_use",
    "tool_result",
    "image",
    "input_text",
    "auto",
    "none",
    "any",
    "json_object",
    "completed",
    "in_progress",
    "incomplete",
    "failed",
    "low",
    "medium",
    "high",
    "default",
    "string",
    "number",
    "integer",
    "boolean",
    "array",
    "null",
    "float",
    "ephemeral",
    "enabled",
    "disabled",
    "redacted_thinking",
];

/// Slots of the table: a power of two, over twice the number of words.
const SLOTS: usize = 512;

/// Longest word; longer strings are not looked up.
const LONGEST: usize = {
    let mut longest = 0;
    let mut i = 0;
    while i < WORDS.len() {
        if WORDS[i].len() > longest {
            longest = WORDS[i].len();
        }
        i += 1;
    }
    longest
};

/// Where the probe for a non-empty `word` starts.
const fn slot(word: &[u8]) -> usize {
    let n = word.len();
    let h = (n as u32).wrapping_mul(0x9E37_79B9)
        ^ (word[0] as u32).wrapping_mul(0x85EB_CA6B)
        ^ (word[n / 2] as u32).wrapping_mul(0xC2B2_AE35)
        ^ (word[n - 1] as u32).wrapping_mul(0x27D4_EB2F);
    (h.wrapping_mul(0x9E37_79B9) >> (32 - SLOTS.trailing_zeros())) as usize
}

/// Open addressing with linear probing; `""` marks a free slot.
static TABLE: [&str; SLOTS] = {
    assert!(WORDS.len() * 2 < SLOTS);
    let mut table = [""; SLOTS];
    let mut i = 0;
    while i < WORDS.len() {
        let mut at = slot(WORDS[i].as_bytes());
        while !table[at].is_empty() {
            at = (at + 1) % SLOTS;
        }
        table[at] = WORDS[i];
        i += 1;
    }
    table
};

/// Whether `s` is one of the wire format's words (exactly, case included).
#[inline]
pub(crate) fn is_wire_word(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > LONGEST {
        return false;
    }
    let mut at = slot(b);
    loop {
        let word = TABLE[at];
        if word.is_empty() {
            return false;
        }
        if word.len() == b.len() && same(word.as_bytes(), b) {
            return true;
        }
        at = (at + 1) % SLOTS;
    }
}

/// `a == b` for two slices of the same length, in a few word loads rather than a call to
/// `memcmp` (the words are short).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    fn eight(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    }
    fn four(s: &[u8], at: usize) -> u32 {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_le_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        // Whole words, then the last eight bytes (which may overlap the words before).
        let mut at = 0;
        while at + 8 < n {
            if eight(a, at) != eight(b, at) {
                return false;
            }
            at += 8;
        }
        eight(a, n - 8) == eight(b, n - 8)
    } else if n >= 4 {
        four(a, 0) == four(b, 0) && four(a, n - 4) == four(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::scrub::{Kind, KindSet, Policy, Scrubber};

    #[test]
    fn same_is_slice_equality() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            crate::xorshift(&mut seed);
            let n = (seed % 30) as usize;
            let a: Vec<u8> = (0..n)
                .map(|i| b'a' + ((seed >> (i % 40)) % 3) as u8)
                .collect();
            let mut b = a.clone();
            if seed % 2 == 0 && n > 0 {
                let at = (seed >> 8) as usize % n;
                b[at] ^= 1 << ((seed >> 20) % 8);
            }
            assert_eq!(same(&a, &b), a == b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn every_word_is_found_and_near_misses_are_not() {
        for (i, w) in WORDS.iter().enumerate() {
            assert!(is_wire_word(w), "{w}");
            assert!(!WORDS[..i].contains(w), "{w} twice");
            assert!(
                w.bytes()
                    .all(|c| c.is_ascii_lowercase() || matches!(c, b'_' | b'.'))
                    || *w == "additionalProperties",
                "{w}"
            );
            for miss in [
                format!("{w}s"),
                format!("x{w}"),
                w[1..].to_string(),
                w[..w.len() - 1].to_string(),
                w.to_ascii_uppercase(),
                format!("{w} "),
            ] {
                if !WORDS.contains(&miss.as_str()) {
                    assert!(!is_wire_word(&miss), "{miss}");
                }
            }
        }
        for other in [
            "",
            "x",
            "Messages",
            "gpt-4o",
            "jane@example.com",
            "\u{e9}t\u{e9}",
        ] {
            assert!(!is_wire_word(other), "{other}");
        }
        assert!(!is_wire_word(&"a".repeat(LONGEST + 1)));
    }

    /// The reason the words may be skipped: no type, alone or with all the others, finds
    /// anything in one.
    #[test]
    fn no_type_finds_anything_in_a_word() {
        let mut policies = vec![Policy::default()];
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Dictionary) {
            let mut one = KindSet::default();
            one.insert(kind);
            policies.push(Policy::default().with_kinds(one));
        }
        for policy in &policies {
            let scrubber = Scrubber::new(policy).unwrap();
            for w in WORDS {
                let scrubbed = scrubber.scrub(w);
                assert!(
                    matches!(scrubbed.text, std::borrow::Cow::Borrowed(_))
                        && scrubbed.counts.total() == 0,
                    "{w} under {:?}",
                    policy.kinds()
                );
                assert!(scrubber.find(w).is_empty(), "{w}");
            }
        }
    }
}
