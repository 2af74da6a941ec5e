//! Resumable leftmost-longest search for literal patterns: secret prefixes and dictionary terms.
//!
//! # Design
//!
//! Both searches report exactly the matches that one aho-corasick leftmost-longest search without
//! overlaps would report over the whole text, but they work on a window that may still grow: a
//! match is reported once no more text can change it, and a later call goes on from where the
//! last one stopped, so a stream looks at each byte about once.
//!
//! A long stretch of new text goes through the SIMD-prefiltered searcher, whose matches are final
//! when they start at least one pattern length before the end of the window. What follows is fed
//! to an automaton byte by byte:
//!
//! * [`PrefixSearch`] keeps an unanchored DFA's state from one call to the next, at a few
//!   instructions per byte. It does not tell where an undecided match may start; secret
//!   prefixes do not need it, since a stream holds back the characters they are made of anyway.
//! * [`Search`] decides one start position at a time with an anchored walk (a leftmost-longest
//!   search without overlaps takes, from left to right, the longest pattern at each position and
//!   skips past it), and stops at the first position that is not decided: a stream holds back
//!   from there.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, Anchored, Input};

/// Stretches at least this long go through the prefiltered searcher; its start-up costs more
/// than feeding a few bytes to an automaton.
const PREFILTER_MIN: usize = 64;

/// Reports the matches of `all` from `p` that start early enough in `hay` to be final, and
/// returns the first position not decided that way. Out of line: callers feed most bytes to an
/// automaton in a tight loop, which the searcher's set-up would only crowd.
#[inline(never)]
fn prefiltered(
    all: &AhoCorasick,
    longest: usize,
    hay: &[u8],
    mut p: usize,
    eof: bool,
    hit: &mut impl FnMut(usize, usize, usize),
) -> usize {
    let len = hay.len();
    // A match that starts before `safe` has all its bytes in the window, and so does any longer
    // one at the same start: it is final.
    let safe = if eof {
        len
    } else {
        (len + 1).saturating_sub(longest)
    };
    if safe <= p {
        return p;
    }
    for m in all.find_iter(Input::new(hay).range(p..len)) {
        if m.start() >= safe {
            break;
        }
        hit(m.start(), m.end(), m.pattern().as_usize());
        p = m.end();
    }
    p.max(safe)
}

/// Where a [`PrefixSearch`] stands in its window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cursor {
    /// Next byte to feed.
    pos: usize,
    /// The automaton's state after the bytes before `pos`; `None` is the start state.
    state: Option<StateID>,
    /// The longest match seen since the start state, `(start, end, pattern)`: final once the
    /// automaton dies or the text ends.
    found: Option<(usize, usize, usize)>,
}

impl Cursor {
    /// A cursor that starts afresh at `at`.
    pub(crate) fn at(at: usize) -> Cursor {
        Cursor {
            pos: at,
            state: None,
            found: None,
        }
    }

    /// Shifts positions after the first `cut` bytes of the window were discarded.
    pub(crate) fn shift(&mut self, cut: usize) {
        self.pos = self.pos.saturating_sub(cut);
        if let Some((start, end, _)) = &mut self.found {
            *start = start.saturating_sub(cut);
            *end = end.saturating_sub(cut);
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
}

/// A search that keeps its automaton's state between calls.
pub(crate) struct PrefixSearch {
    /// Unanchored, leftmost-longest, with the SIMD prefilter.
    all: AhoCorasick,
    /// The same patterns in the same order: unanchored, leftmost-longest.
    dfa: DFA,
    start: StateID,
    longest: usize,
    /// The id the caller gave each pattern, by its place in the automata.
    ids: Vec<usize>,
}

impl PrefixSearch {
    pub(crate) fn new(all: AhoCorasick, dfa: DFA, ids: Vec<usize>) -> Option<PrefixSearch> {
        let start = dfa.start_state(Anchored::No).ok()?;
        let longest = dfa.max_pattern_len();
        Some(PrefixSearch {
            all,
            dfa,
            start,
            longest,
            ids,
        })
    }

    /// Calls `hit(start, end, id)` for every match that is final from `cursor` on, in order, with
    /// the id the caller gave the pattern, and moves `cursor` past the bytes it has seen.
    #[inline(always)]
    pub(crate) fn find(
        &self,
        hay: &[u8],
        cursor: &mut Cursor,
        eof: bool,
        hit: &mut impl FnMut(usize, usize, usize),
    ) {
        // The common case of a stream: no match in flight and a few new bytes, none of which
        // ends a pattern.
        let len = hay.len();
        if !eof && len - cursor.pos.min(len) < PREFILTER_MIN && self.pass_quietly(hay, cursor) {
            return;
        }
        self.find_all(hay, cursor, eof, &mut |start, end, pattern| {
            hit(start, end, self.ids[pattern])
        });
    }

    /// Feeds `hay` from `cursor` on when no match is in flight and no pattern ends in it: `true`
    /// with `cursor` moved to the end, or `false` with `cursor` as it was (call
    /// [`PrefixSearch::find`]).
    #[inline(always)]
    pub(crate) fn pass_quietly(&self, hay: &[u8], cursor: &mut Cursor) -> bool {
        if cursor.found.is_some() {
            return false;
        }
        let dfa = &self.dfa;
        let mut sid = cursor.state.unwrap_or(self.start);
        for &c in hay.get(cursor.pos..).unwrap_or_default() {
            sid = dfa.next_state(Anchored::No, sid, c);
            if dfa.is_special(sid) {
                return false;
            }
        }
        cursor.pos = hay.len();
        cursor.state = Some(sid);
        true
    }

    /// [`PrefixSearch::find`] in general.
    #[inline(never)]
    fn find_all(
        &self,
        hay: &[u8],
        cursor: &mut Cursor,
        eof: bool,
        hit: &mut impl FnMut(usize, usize, usize),
    ) {
        let len = hay.len();
        let dfa = &self.dfa;
        let mut i = cursor.pos;
        let mut found = cursor.found;
        let mut sid = cursor.state.unwrap_or(self.start);
        loop {
            // Nothing in flight and a long stretch ahead: leave it to the prefiltered searcher.
            if sid == self.start && found.is_none() && len.saturating_sub(i) >= PREFILTER_MIN {
                i = prefiltered(&self.all, self.longest, hay, i, eof, hit);
            }
            let mut special = false;
            while i < len {
                sid = dfa.next_state(Anchored::No, sid, hay[i]);
                i += 1;
                if dfa.is_special(sid) {
                    special = true;
                    break;
                }
            }
            if special {
                if dfa.is_dead(sid) {
                    // Leftmost-longest: the automaton dies only after a match, which is now the
                    // longest one; the search goes on right after it.
                    if let Some((start, end, pattern)) = found.take() {
                        hit(start, end, pattern);
                        i = end;
                    }
                    sid = self.start;
                } else if dfa.is_match(sid) {
                    let pattern = dfa.match_pattern(sid, 0);
                    found = Some((i - dfa.pattern_len(pattern), i, pattern.as_usize()));
                }
                continue;
            }
            match found {
                Some((start, end, pattern)) if eof => {
                    hit(start, end, pattern);
                    found = None;
                    i = end;
                    sid = self.start;
                }
                _ => break,
            }
        }
        *cursor = Cursor {
            pos: i,
            state: Some(sid),
            found,
        };
    }
}

/// A search that decides one start position at a time and knows the first one undecided.
pub(crate) struct Search<A> {
    /// Unanchored, leftmost-longest, with the SIMD prefilter.
    all: AhoCorasick,
    /// The same patterns in the same order: anchored, leftmost-longest.
    anchored: A,
    start: StateID,
    longest: usize,
}

impl<A: Automaton> Search<A> {
    pub(crate) fn new(all: AhoCorasick, anchored: A) -> Option<Search<A>> {
        let start = anchored.start_state(Anchored::Yes).ok()?;
        let longest = anchored.max_pattern_len();
        Some(Search {
            all,
            anchored,
            start,
            longest,
        })
    }

    /// Calls `hit(start, end, pattern)` for every match that starts at or after `*pos`, in order,
    /// and moves `*pos` to the first position not decided yet: the end of `hay` when `eof`.
    pub(crate) fn find(
        &self,
        hay: &[u8],
        pos: &mut usize,
        eof: bool,
        hit: &mut impl FnMut(usize, usize, usize),
    ) {
        let len = hay.len();
        let mut p = *pos;
        if len.saturating_sub(p) >= PREFILTER_MIN {
            p = prefiltered(&self.all, self.longest, hay, p, eof, hit);
        }
        while p < len {
            match self.longest_at(hay, p, eof) {
                Some(Some((end, pattern))) => {
                    hit(p, end, pattern);
                    p = end;
                }
                Some(None) => p += 1,
                None => break,
            }
        }
        *pos = p;
    }

    /// End and id of the longest pattern at `p`: `Some(None)` for none, `None` while the window
    /// ends inside what may still become one.
    fn longest_at(&self, hay: &[u8], p: usize, eof: bool) -> Option<Option<(usize, usize)>> {
        let a = &self.anchored;
        let mut sid = self.start;
        let mut found = None;
        for (i, &c) in hay.get(p..).unwrap_or_default().iter().enumerate() {
            sid = a.next_state(Anchored::Yes, sid, c);
            if a.is_special(sid) {
                if a.is_dead(sid) {
                    return Some(found);
                }
                if a.is_match(sid) {
                    found = Some((p + i + 1, a.match_pattern(sid, 0).as_usize()));
                }
            }
        }
        eof.then_some(found)
    }
}
