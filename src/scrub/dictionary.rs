//! Operator dictionaries: literal terms (customer names, code names) matched as whole words,
//! ignoring case, with one aho-corasick pass.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::detect::{Hay, NeedMore};
use super::{Kind, PolicyError};

/// Longest dictionary term, in bytes. It bounds the hold-back a dictionary adds to a stream.
pub(crate) const MAX_TERM: usize = 256;

/// A compiled dictionary.
pub(crate) struct Dictionary {
    automaton: AhoCorasick,
    /// Every pattern, ASCII-lowercased and sorted: answers "could the tail still become a term?".
    sorted: Vec<Vec<u8>>,
    max_len: usize,
}

/// Characters that continue a word: a term next to one is part of a longer word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_alphanumeric_at_end(text: &str, end: usize) -> bool {
    text[..end].chars().next_back().is_some_and(is_word_char)
}

impl Dictionary {
    pub(crate) fn new(terms: &[String]) -> Result<Dictionary, PolicyError> {
        let mut patterns: Vec<String> = Vec::with_capacity(terms.len() * 3);
        for term in terms {
            let term = term.trim();
            // Terms open and close with a letter or digit, so whole-word matching sees the same
            // edges before and after neighbours are scrubbed.
            let edges_ok = term.chars().next().is_some_and(char::is_alphanumeric)
                && term.chars().next_back().is_some_and(char::is_alphanumeric);
            if term.len() > MAX_TERM || !edges_ok {
                return Err(PolicyError::BadTerm { max: MAX_TERM });
            }
            for variant in [term.to_owned(), term.to_lowercase(), term.to_uppercase()] {
                if variant.len() <= MAX_TERM && !patterns.contains(&variant) {
                    patterns.push(variant);
                }
            }
        }
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|_| PolicyError::DictionaryTooLarge)?;
        let mut sorted: Vec<Vec<u8>> = patterns
            .iter()
            .map(|p| p.as_bytes().to_ascii_lowercase())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let max_len = sorted.iter().map(Vec::len).max().unwrap_or(0);
        let dictionary = Dictionary {
            automaton,
            sorted,
            max_len,
        };
        // A term that matches inside our own labels would make scrubbing not idempotent.
        for kind in Kind::ALL {
            for label in [
                format!("[{}]", kind.label()),
                format!("[{}_1]", kind.label()),
            ] {
                let hay = Hay::new(&label, true);
                let mut hit = false;
                dictionary.collect(&hay, 0, &mut |_, _, _| hit = true);
                if hit {
                    return Err(PolicyError::TermIsLabel);
                }
            }
        }
        Ok(dictionary)
    }

    /// Reports every whole-word term occurrence starting at or after `from`.
    pub(crate) fn collect(
        &self,
        h: &Hay<'_>,
        from: usize,
        add: &mut dyn FnMut(usize, Kind, Result<Option<usize>, NeedMore>),
    ) {
        for m in self.automaton.find_iter(&h.b[from..]) {
            let (start, end) = (from + m.start(), from + m.end());
            if is_alphanumeric_at_end(h.text, start) {
                continue;
            }
            let parse = match h.text[end..].chars().next() {
                None if !h.eof => Err(NeedMore),
                Some(c) if is_word_char(c) => Ok(None),
                _ => Ok(Some(end)),
            };
            add(start, Kind::Dictionary, parse);
        }
    }

    /// Start of the shortest tail of `text` (at or after `from`) that may still grow into a term,
    /// or `text.len()`.
    pub(crate) fn partial_tail(&self, text: &str, from: usize) -> usize {
        let len = text.len();
        let lo = from.max(len.saturating_sub(self.max_len.saturating_sub(1)));
        let mut lower = [0u8; MAX_TERM];
        for p in lo..len {
            if !text.is_char_boundary(p) || is_alphanumeric_at_end(text, p) {
                continue;
            }
            let tail = &text.as_bytes()[p..];
            let lower = &mut lower[..tail.len()];
            lower.copy_from_slice(tail);
            lower.make_ascii_lowercase();
            let i = self.sorted.partition_point(|t| t.as_slice() < &*lower);
            if self.sorted.get(i).is_some_and(|t| t.starts_with(lower)) {
                return p;
            }
        }
        len
    }
}
