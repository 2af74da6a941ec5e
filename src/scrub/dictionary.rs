//! Operator dictionaries: literal terms (customer names, code names) matched as whole words,
//! ignoring case, with one resumable aho-corasick search (see [`Search`]).

use aho_corasick::nfa::contiguous::{Builder as NFABuilder, NFA};
use aho_corasick::{AhoCorasickBuilder, MatchKind};

use super::detect::{Hay, NeedMore, Parse};
use super::search::Search;
use super::{Kind, PolicyError};

/// Longest dictionary term, in bytes. It bounds the hold-back a dictionary adds to a stream.
pub(crate) const MAX_TERM: usize = 256;

/// A compiled dictionary.
pub(crate) struct Dictionary {
    search: Search<NFA>,
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
        let all = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|_| PolicyError::DictionaryTooLarge)?;
        let anchored = NFABuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|_| PolicyError::DictionaryTooLarge)?;
        let search = Search::new(all, anchored).ok_or(PolicyError::DictionaryTooLarge)?;
        let dictionary = Dictionary { search };
        // A term that matches inside our own labels would make scrubbing not idempotent.
        for kind in Kind::ALL {
            for label in [
                format!("[{}]", kind.label()),
                format!("[{}_1]", kind.label()),
            ] {
                let hay = Hay::new(&label, true);
                let mut hit = false;
                dictionary.find(&hay, &mut 0, &mut |_, _| hit = true);
                if hit {
                    return Err(PolicyError::TermIsLabel);
                }
            }
        }
        Ok(dictionary)
    }

    /// Calls `hit(start, end)` for every term occurrence from `*pos` on that does not start
    /// inside a word, and moves `*pos` to the first position not decided yet (see [`Search`]).
    /// Whether the term also ends a word is [`Dictionary::right_edge`]'s answer.
    pub(crate) fn find(&self, h: &Hay<'_>, pos: &mut usize, hit: &mut dyn FnMut(usize, usize)) {
        self.search.find(h.b, pos, h.eof, &mut |start, end, _| {
            if !is_alphanumeric_at_end(h.text, start) {
                hit(start, end);
            }
        });
    }

    /// The parse of a term ending at `end`: a match unless a word goes on after it.
    pub(crate) fn right_edge(h: &Hay<'_>, end: usize) -> Parse {
        match h.text[end..].chars().next() {
            None if !h.eof => Err(NeedMore(None)),
            Some(c) if is_word_char(c) => Ok(None),
            _ => Ok(Some(end)),
        }
    }
}
