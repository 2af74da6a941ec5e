//! Ordered JSON: objects keep their keys in the order written, as the real APIs send them
//! (`serde_json::Value` sorts them). Also cheaper to build than `Value`: keys are not allocated.

use std::borrow::Cow;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// An ordered JSON object: `obj! { "key": value, ... }`, values converted with `J::from`.
macro_rules! obj {
    ($($k:tt : $v:expr),* $(,)?) => {
        $crate::json::J::Obj(vec![$(($k, $crate::json::J::from($v))),*])
    };
}

/// An ordered JSON array: `arr![value, ...]`, values converted with `J::from`.
macro_rules! arr {
    ($($v:expr),* $(,)?) => {
        $crate::json::J::Arr(vec![$($crate::json::J::from($v)),*])
    };
}

/// A JSON value whose objects keep their keys in the order written, as the real APIs send them.
#[derive(Debug, Clone)]
pub(crate) enum J<'a> {
    Null,
    Bool(bool),
    U(u64),
    F(f32),
    S(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    Obj(Vec<(&'a str, J<'a>)>),
    /// A borrowed `serde_json::Value`, passed through as is.
    V(&'a serde_json::Value),
}

impl Serialize for J<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::U(n) => s.serialize_u64(*n),
            J::F(f) => s.serialize_f32(*f),
            J::S(text) => s.serialize_str(text),
            J::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            J::Obj(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            J::V(value) => value.serialize(s),
        }
    }
}

impl<'a> From<&'a str> for J<'a> {
    fn from(s: &'a str) -> Self {
        J::S(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for J<'a> {
    fn from(s: &'a String) -> Self {
        J::S(Cow::Borrowed(s))
    }
}

impl From<String> for J<'_> {
    fn from(s: String) -> Self {
        J::S(Cow::Owned(s))
    }
}

impl<'a> From<&'a serde_json::Value> for J<'a> {
    fn from(v: &'a serde_json::Value) -> Self {
        J::V(v)
    }
}

impl From<u64> for J<'_> {
    fn from(n: u64) -> Self {
        J::U(n)
    }
}

impl From<usize> for J<'_> {
    fn from(n: usize) -> Self {
        J::U(n as u64)
    }
}

impl From<bool> for J<'_> {
    fn from(b: bool) -> Self {
        J::Bool(b)
    }
}

impl From<f32> for J<'_> {
    fn from(f: f32) -> Self {
        J::F(f)
    }
}

impl<'a> From<Vec<J<'a>>> for J<'a> {
    fn from(items: Vec<J<'a>>) -> Self {
        J::Arr(items)
    }
}

impl<'a, T: Into<J<'a>>> From<Option<T>> for J<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(J::Null, Into::into)
    }
}
