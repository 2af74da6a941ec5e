//! Token usage, model tags and cost: numbers read from the provider's `usage`, never text.
//!
//! # Design
//! [`Usage::observe`] reads the usage object wherever a provider puts it: OpenAI chat,
//! completions and embeddings (`usage.prompt_tokens` / `completion_tokens`), Responses
//! (`usage` or `response.usage`: `input_tokens` / `output_tokens`), Anthropic (`usage` or
//! `message.usage`, with cache reads and writes counted as input). Streams report usage more than
//! once (Anthropic's `message_start` and cumulative `message_delta`), so each field keeps its
//! largest value.
//!
//! [`Prices`] maps a model to USD per million input and output tokens: the operator's
//! `[prices]` first, then the built-in table of well-known models. A model matches a name
//! exactly, or by the longest name followed by `-` (`gpt-4o-2024-08-06` is priced as `gpt-4o`,
//! `gpt-4o-mini-2024-07-18` as `gpt-4o-mini`). The matched name is also the `model` tag, so a
//! tag value is always a name from the config or the table, never the client's string.
//!
//! # Limitations
//! Prices change; the table is a convenience, and `[prices]` overrides it. Cached-input and batch
//! discounts are not modelled: cost is input × input price + output × output price.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::metrics::OTHER;

/// Tokens of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input (prompt) tokens, cache reads and writes included.
    pub input: u64,
    /// Output (completion) tokens, reasoning included.
    pub output: u64,
}

impl Usage {
    /// Merges the usage carried by `value` (a JSON answer or one streamed event), if any.
    /// Returns whether it carried one.
    pub fn observe(&mut self, value: &Value) -> bool {
        let usage = value
            .get("usage")
            .filter(|u| u.is_object())
            .or_else(|| value.get("response").and_then(|r| r.get("usage")))
            .or_else(|| value.get("message").and_then(|m| m.get("usage")))
            .filter(|u| u.is_object());
        let Some(usage) = usage else {
            return false;
        };
        self.observe_usage(usage);
        true
    }

    /// Merges a `usage` object itself (the value of a `usage` member).
    pub fn observe_usage(&mut self, usage: &Value) {
        let mut counts = [0; Field::COUNTED];
        for (k, name) in Field::NAMES.iter().enumerate() {
            counts[k] = usage.get(*name).and_then(Value::as_u64).unwrap_or(0);
        }
        self.merge(&counts);
    }

    /// Merges the counts of the [`Field`]s, in order.
    fn merge(&mut self, n: &[u64; Field::COUNTED]) {
        let input = n[0]
            .saturating_add(n[1])
            .saturating_add(n[2])
            .saturating_add(n[3]);
        let output = n[4].saturating_add(n[5]);
        self.input = self.input.max(input);
        self.output = self.output.max(output);
    }

    /// The usage a JSON answer body reports at its top level (every provider puts it there in
    /// a non-streamed answer). Reads only that member: the rest is skipped, not built.
    pub fn of_body(body: &[u8]) -> Usage {
        #[derive(serde::Deserialize)]
        struct Carrier {
            #[serde(default)]
            usage: Option<Value>,
        }
        if memchr::memmem::find(body, b"\"usage\"").is_none() {
            return Usage::default();
        }
        match serde_json::from_slice::<Carrier>(body) {
            Ok(Carrier { usage: Some(u) }) => Usage::of_object(u),
            _ => Usage::default(),
        }
    }

    /// The usage in the value of a body's top-level `usage` member, given alone (the body
    /// scrubber finds where it is, so the body is not read twice).
    pub fn of_member(member: &[u8]) -> Usage {
        serde_json::from_slice::<Counted>(member).map_or_else(|_| Usage::default(), |c| c.0)
    }

    fn of_object(usage: Value) -> Usage {
        let mut found = Usage::default();
        if usage.is_object() {
            found.observe_usage(&usage);
        }
        found
    }

    /// Input + output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// Whether no token was reported.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

/// The members of a `usage` object that count tokens: four of input, two of output.
enum Field {
    Counted(usize),
    Other,
}

impl Field {
    const COUNTED: usize = 6;
    const NAMES: [&'static str; Field::COUNTED] = [
        "prompt_tokens",
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "completion_tokens",
        "output_tokens",
    ];
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
                Ok(Field::NAMES
                    .iter()
                    .position(|n| *n == name)
                    .map_or(Field::Other, Field::Counted))
            }
        }
        d.deserialize_identifier(Name)
    }
}

/// A token count: a JSON value read as [`Value::as_u64`] reads it, anything else counting 0.
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        d.deserialize_any(Counter).map(|n| Count(n.unwrap_or(0)))
    }
}

/// The value of a `usage` member read straight from its text, without building a tree: what
/// [`Usage::observe_usage`] reads from the parsed value, and nothing for anything but an object.
struct Counted(Usage);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counted, D::Error> {
        d.deserialize_map(UsageObject)
    }
}

/// Visits a count: `Some` for an unsigned integer, `None` for any other value (skipped whole).
struct Counter;

impl<'de> Visitor<'de> for Counter {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token count")
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<u64>, E> {
        Ok(Some(n))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<u64>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Visits a `usage` member. Anything but an object is refused, which [`Usage::of_member`]
/// reads as no usage, as it reads a tree that is not an object.
struct UsageObject;

impl<'de> Visitor<'de> for UsageObject {
    type Value = Counted;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a usage object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counted, A::Error> {
        // A member given twice counts once, with its last value, as in the parsed tree.
        let mut counts = [0; Field::COUNTED];
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Counted(k) => counts[k] = map.next_value::<Count>()?.0,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mut usage = Usage::default();
        usage.merge(&counts);
        Ok(Counted(usage))
    }
}

/// USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

impl Price {
    /// The cost of `usage` in micro-dollars, rounded: USD per million tokens is micro-dollars
    /// per token.
    pub fn micro_usd(&self, usage: &Usage) -> u64 {
        let cost = usage.input as f64 * self.input + usage.output as f64 * self.output;
        if cost.is_finite() && cost > 0.0 {
            cost.round() as u64
        } else {
            0
        }
    }
}

/// Built-in prices, USD per million (input, output) tokens, from the providers' public lists.
pub const BUILT_IN_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4-turbo", 10.0, 30.0),
    ("gpt-3.5-turbo", 0.5, 1.5),
    ("o1", 15.0, 60.0),
    ("o1-mini", 1.1, 4.4),
    ("o1-pro", 150.0, 600.0),
    ("o3", 2.0, 8.0),
    ("o3-mini", 1.1, 4.4),
    ("o3-pro", 20.0, 80.0),
    ("o4-mini", 1.1, 4.4),
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-opus", 15.0, 75.0),
    ("claude-3-haiku", 0.25, 1.25),
];

/// Prices and the model names that may appear as tags.
#[derive(Clone, Debug)]
pub struct Prices {
    /// The operator's prices, then the built-in ones.
    priced: Vec<(Arc<str>, Price)>,
    /// Names the operator wrote in a route's `models` (without wildcards).
    named: HashSet<Arc<str>>,
}

impl Prices {
    /// The operator's `overrides` on top of the built-in table; `named` are further model names
    /// the config mentions (route model lists), allowed as tags without a price.
    pub fn new(overrides: &[(String, Price)], named: &[String]) -> Prices {
        let mut priced: Vec<(Arc<str>, Price)> = overrides
            .iter()
            .map(|(name, price)| (Arc::from(name.as_str()), *price))
            .collect();
        priced.extend(
            BUILT_IN_PRICES
                .iter()
                .map(|&(name, input, output)| (Arc::from(name), Price { input, output })),
        );
        let named = named
            .iter()
            .filter(|m| crate::config::model_name_ok(m))
            .map(|m| Arc::from(m.as_str()))
            .collect();
        Prices { priced, named }
    }

    /// The price-table entry for `model`: an exact name, else the longest name followed by `-`.
    pub fn lookup(&self, model: &str) -> Option<(&Arc<str>, Price)> {
        if let Some((name, price)) = self.priced.iter().find(|(n, _)| &**n == model) {
            return Some((name, *price));
        }
        self.priced
            .iter()
            .filter(|(name, _)| {
                model
                    .strip_prefix(&**name)
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(name, price)| (name, *price))
    }

    /// The `model` tag for a request naming `model` (a name from the config or the table, else
    /// `other`; `none` without a model) and its price (see [`Prices::lookup`]), from one search
    /// of the table.
    pub fn tag(&self, model: Option<&str>) -> (Arc<str>, Option<Price>) {
        let Some(model) = model else {
            return (Arc::from(crate::metrics::NO_ROUTE), None);
        };
        let found = self.lookup(model);
        let price = found.map(|(_, price)| price);
        if let Some(name) = self.named.get(model) {
            return (name.clone(), price);
        }
        match found {
            Some((name, _)) => (name.clone(), price),
            None => (Arc::from(OTHER), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_from_every_provider_shape() {
        let mut u = Usage::default();
        assert!(u.observe(
            &json!({"usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
        ));
        assert_eq!((u.input, u.output, u.total()), (12, 5, 17));
        let mut u = Usage::default();
        assert!(!u.observe(&json!({"choices": [], "usage": null})));
        u.observe(&json!({"type": "message_start", "message": {"usage": {"input_tokens": 20, "cache_read_input_tokens": 4, "output_tokens": 1}}}));
        u.observe(&json!({"type": "message_delta", "usage": {"output_tokens": 9}}));
        assert_eq!((u.input, u.output), (24, 9));
        let mut u = Usage::default();
        u.observe(&json!({"type": "response.completed", "response": {"usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}}));
        assert_eq!(u.total(), 7);
    }

    /// Read from its text, a `usage` member counts what the parsed tree counts.
    #[test]
    fn usage_member_read_like_the_tree() {
        let members = [
            r#"{"prompt_tokens": 200, "completion_tokens": 150, "total_tokens": 350}"#,
            r#"{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":[1,{"a":2}]},"completion_tokens":3}"#,
            r#"{"input_tokens": 20, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 7, "output_tokens": 1}"#,
            r#"{"input_tokens": 5, "input_tokens": 8, "output_tokens": -3, "completion_tokens": 2.0}"#,
            r#"{"output_tokens": "7", "input_tokens": null, "completion_tokens": true, "prompt_tokens": [3]}"#,
            r#"{"\u0069nput_tokens": 6, "output_tokens": 18446744073709551615, "completion_tokens": 1}"#,
            r#"{"prompt_tokens": 18446744073709551615, "input_tokens": 18446744073709551615}"#,
            r#"{"prompt_tokens": 1e3, "output_tokens": 12345678901234567890}"#,
            r#"{}"#,
            r#"[{"prompt_tokens": 3}]"#,
            r#"null"#,
            r#"42"#,
            r#""prompt_tokens""#,
            r#"{"prompt_tokens": 3"#,
            r#"{"prompt_tokens": 3} trailing"#,
        ];
        for member in members {
            let tree = serde_json::from_slice::<Value>(member.as_bytes())
                .map_or_else(|_| Usage::default(), Usage::of_object);
            assert_eq!(Usage::of_member(member.as_bytes()), tree, "{member}");
        }
        let u = Usage::of_member(members[2].as_bytes());
        assert_eq!((u.input, u.output), (31, 1), "the test reads something");
    }

    #[test]
    fn prices_match_exactly_or_by_longest_dated_prefix() {
        let p = Prices::new(
            &[(
                "gpt-4o".to_owned(),
                Price {
                    input: 1.0,
                    output: 2.0,
                },
            )],
            &["my-model".to_owned(), "gpt-*".to_owned()],
        );
        assert_eq!(p.lookup("gpt-4o").unwrap().1.input, 1.0, "override first");
        assert_eq!(
            &**p.lookup("gpt-4o-mini-2024-07-18").unwrap().0,
            "gpt-4o-mini"
        );
        assert_eq!(
            &**p.lookup("claude-sonnet-4-5-20250929").unwrap().0,
            "claude-sonnet-4-5"
        );
        assert!(p.lookup("o10").is_none());
        assert_eq!(&*p.tag(Some("my-model")).0, "my-model");
        assert_eq!(&*p.tag(Some("jane.doe@example.com")).0, "other");
        assert_eq!(&*p.tag(Some("gpt-*")).0, "other");
        assert_eq!(&*p.tag(None).0, "none");
        let (tag, price) = p.tag(Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(&*tag, "gpt-4o-mini");
        assert_eq!(price, p.lookup("gpt-4o-mini").map(|(_, price)| price));
        let cost = Price {
            input: 2.5,
            output: 10.0,
        }
        .micro_usd(&Usage {
            input: 1000,
            output: 100,
        });
        assert_eq!(cost, 3500, "1000 × $2.50/M + 100 × $10/M = $0.0035");
    }
}
