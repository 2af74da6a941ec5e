//! Where text lives in a JSON body: everywhere, except a short list of structural fields.
//!
//! # Design
//! Lethe fails closed: every string value in a request or response, at any depth, is scrubbed,
//! and so is every object key. The exceptions are fields whose values are identifiers, enums or
//! opaque provider tokens ([`STRUCTURAL`]); scrubbing them could only break the request, and
//! they carry no user text. A field a provider adds tomorrow is therefore scrubbed by default.
//!
//! Numbers, booleans and nulls are left alone. Key order is kept (providers render tool
//! schemas into the prompt in the order they receive them).

use serde_json::{Map, Value};

use crate::scrub::{restore, Counts, Scrubber, Vault};

/// Keys whose string values are identifiers, enums or opaque tokens, never user text.
pub const STRUCTURAL: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "object",
    "tool_call_id",
    "call_id",
    "item_id",
    "previous_response_id",
    "finish_reason",
    "stop_reason",
    "status",
    "signature",
    "encrypted_content",
    "system_fingerprint",
    "service_tier",
    "reasoning_effort",
    "encoding_format",
    "media_type",
    "detail",
    "tool_choice",
];

/// Whether `key`'s string value is left as it is.
pub fn is_structural(key: &str) -> bool {
    STRUCTURAL.contains(&key)
}

/// Scrubs every non-structural string in `value` and every object key, in place.
pub fn scrub_value(value: &mut Value, scrubber: &Scrubber, vault: &mut Vault, counts: &mut Counts) {
    match value {
        Value::String(s) => scrub_string(s, scrubber, vault, counts),
        Value::Array(items) => {
            for item in items {
                scrub_value(item, scrubber, vault, counts);
            }
        }
        Value::Object(map) => scrub_object(map, scrubber, vault, counts),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Scrubs an object's keys and values (see [`scrub_value`]).
pub fn scrub_object(
    map: &mut Map<String, Value>,
    scrubber: &Scrubber,
    vault: &mut Vault,
    counts: &mut Counts,
) {
    let keys_change = map
        .keys()
        .any(|k| matches!(scrubber.scrub(k).text, std::borrow::Cow::Owned(_)));
    if keys_change {
        let old = std::mem::take(map);
        for (key, value) in old {
            let scrubbed = scrubber.scrub_in(&key, vault);
            counts.add(&scrubbed.counts);
            map.insert(scrubbed.text.into_owned(), value);
        }
    }
    for (key, value) in map.iter_mut() {
        match value {
            Value::String(_) if is_structural(key) => {}
            _ => scrub_value(value, scrubber, vault, counts),
        }
    }
}

/// Scrubs one string in place; leaves it untouched when nothing matched.
pub fn scrub_string(s: &mut String, scrubber: &Scrubber, vault: &mut Vault, counts: &mut Counts) {
    let scrubbed = scrubber.scrub_in(s, vault);
    counts.add(&scrubbed.counts);
    if let std::borrow::Cow::Owned(new) = scrubbed.text {
        zeroize::Zeroize::zeroize(s);
        *s = new;
    }
}

/// Puts the originals back for every placeholder in `value`'s strings and keys.
pub fn restore_value(value: &mut Value, vault: &Vault) {
    match value {
        Value::String(s) => restore_string(s, vault),
        Value::Array(items) => items.iter_mut().for_each(|v| restore_value(v, vault)),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('[')) {
                let old = std::mem::take(map);
                for (key, value) in old {
                    map.insert(restore(&key, vault).into_owned(), value);
                }
            }
            map.values_mut().for_each(|v| restore_value(v, vault));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Restores placeholders in one string in place.
pub fn restore_string(s: &mut String, vault: &Vault) {
    if let std::borrow::Cow::Owned(new) = restore(s, vault) {
        *s = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{Policy, Style};
    use serde_json::json;

    #[test]
    fn every_string_but_structural_fields_is_scrubbed() {
        let scrubber = Scrubber::new(&Policy::default()).unwrap();
        let mut v = json!({
            "model": "gpt-4o-mini-4111111111111111",
            "messages": [
                {"role": "user", "content": "mail a@b.io"},
                {"role": "user", "content": [{"type": "text", "text": "ssn 123-45-6789"}]}
            ],
            "metadata": {"bob@example.com": "x"},
            "n": 4111111111111111u64,
            "new_field_tomorrow": {"deep": ["call 415-555-0132"]}
        });
        let mut counts = Counts::default();
        scrub_value(&mut v, &scrubber, &mut Vault::new(), &mut counts);
        assert_eq!(v["model"], "gpt-4o-mini-4111111111111111");
        assert_eq!(v["messages"][0]["content"], "mail [EMAIL]");
        assert_eq!(v["messages"][1]["content"][0]["text"], "ssn [SSN]");
        assert!(v["metadata"].get("[EMAIL]").is_some());
        assert_eq!(v["n"], 4111111111111111u64);
        assert_eq!(v["new_field_tomorrow"]["deep"][0], "call [PHONE]");
        assert_eq!(counts.total(), 4);
        let order: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            order,
            ["model", "messages", "metadata", "n", "new_field_tomorrow"]
        );
    }

    #[test]
    fn placeholders_round_trip() {
        let scrubber = Scrubber::new(&Policy::default().with_style(Style::Placeholder)).unwrap();
        let mut vault = Vault::new();
        let mut v = json!({"content": "write to a@b.io and a@b.io"});
        scrub_value(&mut v, &scrubber, &mut vault, &mut Counts::default());
        assert_eq!(v["content"], "write to [EMAIL_1] and [EMAIL_1]");
        let mut answer = json!({"choices": [{"message": {"content": "Sent to [EMAIL_1]."}}]});
        restore_value(&mut answer, &vault);
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "Sent to a@b.io."
        );
    }
}
