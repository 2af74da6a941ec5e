//! Candidate detection and resolution: the part of the scrubber that decides what is sensitive.
//!
//! # Design
//!
//! [`Engine::scan`] looks at a window of text that may not be complete yet (`eof == false`).
//! Triggers (a digit run, an `@`, a secret prefix, a dictionary term) start small parsers. A parser
//! reads through [`Hay`], which answers "need more" instead of guessing when it is asked for a byte
//! past the end of a window that may still grow. So every answer a parser gives is final: it is the
//! one it would give with the whole text in hand.
//!
//! A scan then resolves candidates leftmost-first, longest-first, and stops at the *frontier*: the
//! first position that is either the start of an undecided candidate or a byte that a trigger still
//! to come could reach back to (the tail of a word that may yet meet `@`, two letters that may yet
//! open an IBAN, a partial secret prefix or dictionary term). Everything before the frontier is
//! decided for good; this is what makes streamed output equal one-shot output.
//!
//! # Incremental scanning
//!
//! A stream scans the same window again and again as it grows, so a scan keeps in [`ScanState`]
//! what it has decided, and the next scan of the grown window looks only at what is new:
//!
//! * the trigger pass resumes where the last one ended, and the secret-prefix and dictionary
//!   searches resume at their first undecided position (see [`Search`](super::search::Search));
//! * decided candidates wait, sorted, until the frontier passes them;
//! * a parser that asked for more text is asked again with the same trigger, but not while it
//!   stopped inside a run of one class of bytes (a token body, a digit group) and the new bytes
//!   only extend that run: it would ask again (see [`Wait`]). A stream asks the parser that
//!   holds its frontier before it scans, and leaves the scan out while that parser asks for more
//!   (see [`ScanState::may_skip`]);
//! * a short digit run that reaches the end of the window starts no parser yet: they would all
//!   ask for more text. The trigger pass stops at it and goes on from it next time.
//!
//! Every trigger is still seen once, in the same order as in a one-shot scan, and the answers of
//! parsers do not depend on where a window ends; so a scan in steps finds what one scan finds.
//!
//! # Limits
//!
//! A parser reads back at most [`MAX_BACKTRACK`] bytes from its trigger and forward at most the
//! longest finite pattern ([`JWT_MAX`]). A PEM private key is the exception: from its `BEGIN` line
//! the scan drops text until the matching `END` line, however long, holding back only enough bytes
//! to recognise an `END` line that is cut in two.

use std::cmp::Reverse;
use std::ops::Range;

use super::dictionary::Dictionary;
use super::search::{Cursor, PrefixSearch};
use super::secrets::{self, Body, SecretFormat};
use super::validate;
use super::{Kind, KindSet, PolicyError};

/// Longest distance from a trigger back to the start of its candidate (an e-mail local part).
pub(crate) const MAX_BACKTRACK: usize = 64;
/// Bytes of already released text a stream keeps for the left context of the next candidates.
pub(crate) const CONTEXT: usize = 256;
/// Longest JWT masked as one; the longest finite pattern.
pub(crate) const JWT_MAX: usize = 16 * 1024;
/// Longest e-mail local part (RFC 5321).
const LOCAL_MAX: usize = 64;
/// Longest e-mail domain (RFC 1035).
const DOMAIN_MAX: usize = 253;
/// How far back a context word ("ssn", "phone", "version") may stand.
const CONTEXT_WINDOW: usize = 40;
/// How far back the key before an IPv6 address is read (see [`keyed`]).
const KEY_MAX: usize = 32;
/// Longest textual IPv6 address (with an embedded IPv4 address).
const IPV6_MAX: usize = 45;
/// New text up to this long is looked at byte by byte rather than by the vectorised passes.
const SHORT: usize = 32;
/// Texts this short are tested for a quick "nothing to find" (see [`Engine::finds_nothing`]).
const FEW_BYTES: usize = 64;
/// Longest digit run at the end of an unfinished window whose parsers wait for the next scan;
/// longer than any run a parser reads before it answers.
const OPEN_RUN_MAX: usize = 24;

/// Byte classes, as bit flags in [`CLASS`].
const DIGIT: u8 = 1;
const ALPHA: u8 = 2;
const HEX: u8 = 4;
/// Characters of an e-mail local part.
const LOCAL: u8 = 8;
/// Characters a trigger still to come may reach back over (see [`Engine::scan`]), including
/// every byte of a non-ASCII character.
const HOLD: u8 = 16;
/// Base64url, the alphabet of JWT segments and most tokens.
const B64URL: u8 = 32;
/// Digits and `@`: the bytes the trigger pass looks for.
const TRIGGER: u8 = 64;
/// Word characters: letters, digits and `_`.
const WORD: u8 = 128;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut f = 0;
        if c.is_ascii_digit() {
            f |= DIGIT | HEX | LOCAL | HOLD | B64URL;
        }
        if c.is_ascii_alphabetic() {
            f |= ALPHA | LOCAL | HOLD | B64URL;
        }
        if c.is_ascii_hexdigit() {
            f |= HEX;
        }
        if matches!(c, b'.' | b'_' | b'%' | b'+' | b'-') {
            f |= LOCAL | HOLD;
        }
        if matches!(c, b'_' | b'-') {
            f |= B64URL;
        }
        // `'` may stand inside an e-mail local part (see [`email`]).
        if matches!(c, b':' | b'(' | b'\'') {
            f |= HOLD;
        }
        if c.is_ascii_digit() || c == b'@' {
            f |= TRIGGER;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            f |= WORD;
        }
        // Non-ASCII letters may belong to an e-mail local part.
        if !c.is_ascii() {
            f |= HOLD;
        }
        t[i] = f;
        i += 1;
    }
    t
};

#[inline]
fn is(c: u8, class: u8) -> bool {
    CLASS[c as usize] & class != 0
}

#[inline]
fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// Letters, digits and `_`: one table lookup, as the edges of every value ask it.
#[inline]
fn is_word(c: u8) -> bool {
    is(c, WORD)
}

/// A class of bytes that [`Hay::run`] reads through.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Class {
    Digit,
    /// Base64url: the segments of a JWT.
    B64Url,
    /// The body of a secret format.
    Body(Body),
    /// A domain label: letters, digits and `-`.
    Label,
    /// What an IPv6 address is written with: hex digits, `:` and `.`.
    Ipv6,
    /// A PEM label: upper-case letters, digits and blanks.
    PemLabel,
}

impl Class {
    #[inline(always)]
    fn has(self, c: u8) -> bool {
        match self {
            Class::Digit => is_digit(c),
            Class::B64Url => is(c, B64URL),
            Class::Body(body) => body.contains(c),
            Class::Label => is(c, DIGIT | ALPHA) || c == b'-',
            Class::Ipv6 => is(c, HEX) || c == b':' || c == b'.',
            Class::PemLabel => c.is_ascii_uppercase() || is_digit(c) || c == b' ',
        }
    }
}

/// A candidate match: `kind` at `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: Kind,
    /// Taken only right after a match that ends one byte before it (see [`continues_group`]).
    pub(crate) after_group: bool,
}

impl Candidate {
    /// Resolution order: leftmost first, then longest, then by kind, so that the result never
    /// depends on the order in which detectors ran.
    #[inline]
    fn key(&self) -> (usize, Reverse<usize>, Kind) {
        (self.start, Reverse(self.end), self.kind)
    }
}

/// What a scan hands its sink: a range to replace with a masked `kind`, or (for the body of a
/// private key) a range to drop. Ranges come in order and never overlap.
pub(crate) struct Piece {
    pub(crate) range: Range<usize>,
    pub(crate) replace: Option<Kind>,
}

/// A parser, named so that it can be run again on a longer window.
#[derive(Clone, Copy, Debug)]
enum Parser {
    Card,
    Ssn,
    Phone,
    Ipv4,
    Ipv6,
    Iban,
    Email,
    /// A secret format, by its index in [`secrets::FORMATS`].
    Secret(usize),
    /// A dictionary term, by its end.
    Term(usize),
}

impl Parser {
    fn kind(self) -> Kind {
        match self {
            Parser::Card => Kind::CreditCard,
            Parser::Ssn => Kind::Ssn,
            Parser::Phone => Kind::Phone,
            Parser::Ipv4 | Parser::Ipv6 => Kind::IpAddress,
            Parser::Iban => Kind::Iban,
            Parser::Email => Kind::Email,
            Parser::Secret(i) => secrets::FORMATS[i].kind,
            Parser::Term(_) => Kind::Dictionary,
        }
    }
}

/// A parser that asked for more text: its trigger `at`, the start of the candidate it would give,
/// and when running it again is worth it.
#[derive(Clone, Copy, Debug)]
struct Pending {
    start: usize,
    at: usize,
    parser: Parser,
    /// Length of the window it last answered on; `wait` is about the bytes from there.
    asked: usize,
    wait: Option<Wait>,
    /// Its answer on the current window, with the candidate's start, when a stream asked it
    /// before the scan (see [`ScanState::still_blocked`]).
    answer: Option<(usize, Parse)>,
}

impl Pending {
    /// Runs the parser again on the window `h`: the candidate's start and the answer. Only a
    /// phone number's start may move, once the window tells whether `(` opens its area code.
    fn ask(&self, h: &Hay<'_>) -> (usize, Parse) {
        let parse = match self.parser {
            Parser::Phone => return phone(h, self.at),
            Parser::Card => card(h, self.at),
            Parser::Ssn => ssn(h, self.at),
            Parser::Ipv4 => ipv4(h, self.at),
            Parser::Ipv6 => ipv6(h, self.start),
            Parser::Iban => iban(h, self.at),
            Parser::Email => domain(h, self.at + 1),
            Parser::Secret(format) => secret(h, self.at, &secrets::FORMATS[format]),
            Parser::Term(end) => Dictionary::right_edge(h, end),
        };
        (self.start, parse)
    }
}

/// What a scan carries from one window to the next. Positions are offsets in the window.
#[derive(Debug, Default)]
pub(crate) struct ScanState {
    /// End of the last masked or dropped range; no candidate may start before it.
    pub(crate) last_end: usize,
    /// Inside a private-key block: drop text until its `END` line.
    pub(crate) in_private_key: bool,
    /// Length of the window at the end of the last scan: bytes from there on are new.
    seen: usize,
    /// The classes of the new bytes that a stream skipped (see [`ScanState::may_skip`]), or-ed.
    unscanned: u8,
    /// Where the trigger pass goes on.
    trigger: usize,
    /// Where the secret-prefix search stands.
    secret: Cursor,
    /// First position not decided by the dictionary search.
    term: usize,
    /// Start of the run of bytes at the end of the window that a trigger may reach back over.
    hold: usize,
    /// Where the digits of an IPv6 address lead back to.
    ipv6: Ipv6Walk,
    /// Decided candidates that the frontier has not passed, in resolution order.
    found: Vec<Candidate>,
    /// Parsers that asked for more text.
    pending: Vec<Pending>,
    /// The pending parser that lets a stream skip scans (see [`ScanState::may_skip`]), while
    /// every byte after the window it last answered on has kept it waiting.
    blocker: Option<usize>,
    /// Secret prefixes (start, format) and dictionary terms (start, end) of the current scan,
    /// merged into the trigger pass in text order.
    secret_hits: Vec<(usize, usize)>,
    term_hits: Vec<(usize, usize)>,
}

impl ScanState {
    /// Shifts positions after the first `cut` bytes of the window were discarded. Every position
    /// still in use is at or after the first byte not released, which is after `cut`.
    pub(crate) fn shift(&mut self, cut: usize) {
        let at = |p: &mut usize| *p = p.saturating_sub(cut);
        at(&mut self.last_end);
        at(&mut self.seen);
        at(&mut self.trigger);
        self.secret.shift(cut);
        at(&mut self.term);
        at(&mut self.hold);
        self.ipv6.last = self.ipv6.last.and_then(|p| p.checked_sub(cut));
        at(&mut self.ipv6.lo);
        at(&mut self.ipv6.hi);
        for c in &mut self.found {
            at(&mut c.start);
            at(&mut c.end);
        }
        for p in &mut self.pending {
            at(&mut p.start);
            at(&mut p.at);
            at(&mut p.asked);
            if let Parser::Term(end) = &mut p.parser {
                at(end);
            }
            if let Some(w) = &mut p.wait {
                at(&mut w.last);
            }
        }
    }

    /// Whether a stream may skip the scan of its window `text`, grown by its last `added` bytes,
    /// when it has released everything before `released`: the scan would release nothing and
    /// decide nothing that the next scan, which catches up from where the last one stopped,
    /// cannot decide as well. Two cases:
    ///
    /// * a short tail of bytes that a trigger may still reach back over: nothing in it can be
    ///   released, and a candidate that would end in it would also start in it;
    /// * a parser whose candidate starts at `released` asks for more text again, and so holds
    ///   the frontier. While it reads a run (see [`Wait`]) that the new bytes only extend, it is
    ///   not even asked.
    ///
    /// `hold` is kept up to date over skipped bytes, so the first case stays exact.
    #[inline]
    pub(crate) fn may_skip(&mut self, text: &str, released: usize, delta: Delta) -> bool {
        if self.in_private_key {
            return false;
        }
        let b = text.as_bytes();
        let len = b.len();
        if len - released <= MAX_BACKTRACK && self.hold <= released && delta.hold_end == 0 {
            // The waiting parser, if any, has not seen these bytes.
            self.blocker = None;
            self.unscanned |= delta.classes;
            return true;
        }
        !self.pending.is_empty() && self.still_blocked(text, released, &b[len - delta.len..])
    }

    /// The second case of [`ScanState::may_skip`].
    #[inline(never)]
    fn still_blocked(&mut self, text: &str, released: usize, new: &[u8]) -> bool {
        let b = text.as_bytes();
        let len = b.len();
        let (k, unchecked) = match self.blocker {
            Some(k) => (Some(k), new),
            None => {
                let waiting = |p: &Pending| p.start <= released && p.wait.is_some();
                match self.pending.iter().position(waiting) {
                    Some(k) => (Some(k), &b[self.seen.max(self.pending[k].asked).min(len)..]),
                    None => (None, new),
                }
            }
        };
        if let Some(w) = k.and_then(|k| self.pending.get(k)).and_then(|p| p.wait) {
            if len <= w.last && unchecked.iter().all(|&c| w.class.has(c) && may_hold(c)) {
                self.blocker = k;
                return true;
            }
        }
        self.blocker = None;
        // Ask the parser that holds the frontier; one that overlaps a masked range is left to
        // the scan, which drops it.
        let holds = |p: &Pending| p.start == released && released >= self.last_end;
        let Some(k) = self.pending.iter().position(holds) else {
            return false;
        };
        let p = &mut self.pending[k];
        match p.ask(&Hay::new(text, false)) {
            (start, Err(NeedMore(wait))) => {
                p.start = start;
                p.wait = wait;
                p.asked = len;
                if wait.is_some() {
                    self.blocker = Some(k);
                }
                if let Some(j) = new.iter().rposition(|&c| !may_hold(c)) {
                    self.hold = len - new.len() + j + 1;
                }
                true
            }
            answer => {
                p.answer = Some(answer);
                false
            }
        }
    }

    /// Starts the searches afresh at `at`, after a private-key block.
    fn restart(&mut self, at: usize) {
        self.trigger = at;
        self.secret = Cursor::at(at);
        self.term = at;
        self.ipv6 = Ipv6Walk::default();
        self.found.clear();
        self.pending.clear();
    }
}

/// The walks back from the digits of an IPv6 address (see [`ipv6_start`]), remembered so that
/// a run of hex digits with many digit runs in it (a token) is walked once.
#[derive(Clone, Copy, Debug, Default)]
struct Ipv6Walk {
    /// Start of the last address parsed: the digits of one address parse it once.
    last: Option<usize>,
    /// `lo..hi` is made of hex digits and `:`, and a walk back stops at `lo`.
    lo: usize,
    hi: usize,
}

impl Ipv6Walk {
    /// [`ipv6_start`] of the digit at `t`, from what earlier walks saw when they can tell.
    // Always inlined: the trigger loop calls it for most digits of a token or an address.
    #[inline(always)]
    fn start(&mut self, b: &[u8], t: usize) -> usize {
        let (lo, hi) = (self.lo, self.hi);
        let s = if hi <= t && t - lo < IPV6_MAX && b[hi..t].iter().all(|&c| ipv6_char(c)) {
            lo
        } else {
            let s = ipv6_start(b, t);
            if s == 0 || !ipv6_char(b[s - 1]) {
                self.lo = s;
            } else {
                // Stopped by the length limit: nothing to remember.
                self.lo = t;
            }
            s
        };
        self.hi = t + 1;
        s
    }
}

/// When a parser that asked for more text will ask again: while the window ends at or before
/// `last` and every byte after the end it saw is in `class`. It was reading a run of that class
/// up to the end of the window; the run only grows, and so it reaches the end again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    class: Class,
    last: usize,
}

/// A parser asked for a byte past the end of a window that may still grow; `Some` when it was
/// reading a run (see [`Wait`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NeedMore(pub(crate) Option<Wait>);

/// A parser's answer: the end of a match, no match, or not yet.
pub(crate) type Parse = Result<Option<usize>, NeedMore>;

/// A window of text for parsers: reading past its end is an answer only at end of input.
pub(crate) struct Hay<'a> {
    pub(crate) text: &'a str,
    pub(crate) b: &'a [u8],
    pub(crate) eof: bool,
}

impl<'a> Hay<'a> {
    pub(crate) fn new(text: &'a str, eof: bool) -> Hay<'a> {
        Hay {
            text,
            b: text.as_bytes(),
            eof,
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Result<Option<u8>, NeedMore> {
        match self.b.get(i) {
            Some(&c) => Ok(Some(c)),
            None if self.eof => Ok(None),
            None => Err(NeedMore(None)),
        }
    }

    #[inline]
    fn prev(&self, i: usize) -> Option<u8> {
        i.checked_sub(1).and_then(|j| self.b.get(j).copied())
    }

    /// End of the run of bytes in `class` from `i`, reading at most `max + 1` bytes; a result
    /// further than `max` from `i` means the run is too long.
    #[inline(always)]
    fn run(&self, i: usize, max: usize, class: Class) -> Result<usize, NeedMore> {
        let b = self.b;
        let stop = i.saturating_add(max).saturating_add(1).min(b.len());
        let j = match class {
            // Token bodies and JWT segments run for tens or hundreds of bytes.
            Class::B64Url | Class::Body(Body::Base64Url) => {
                i + alnum_run::<true, true, false>(&b[i..stop])
            }
            Class::Body(Body::Alnum) => i + alnum_run::<false, false, false>(&b[i..stop]),
            Class::Body(Body::Word) => i + alnum_run::<false, true, false>(&b[i..stop]),
            Class::Body(Body::AlnumDash) => i + alnum_run::<true, false, false>(&b[i..stop]),
            Class::Body(Body::Dotted) => i + alnum_run::<true, true, true>(&b[i..stop]),
            _ => {
                let mut j = i;
                while j < stop && class.has(b[j]) {
                    j += 1;
                }
                j
            }
        };
        if j >= b.len() && j - i <= max && !self.eof {
            return Err(NeedMore(Some(Wait {
                class,
                last: i + max,
            })));
        }
        Ok(j)
    }

    /// Whether the bytes from `i` are `lit`, ignoring ASCII case.
    fn lit(&self, i: usize, lit: &[u8]) -> Result<bool, NeedMore> {
        for (k, &want) in lit.iter().enumerate() {
            match self.get(i + k)? {
                Some(c) if c.eq_ignore_ascii_case(&want) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Whether one of `words` (lowercase, possibly several words) ends right before `i`,
    /// skipping blanks, quotes and `:#=.-` between (`"ssn": "…"`), and up to two linking words
    /// ("is", "no.": `social security number is …`, `Social Security No. …`), ignoring case.
    fn context_word(&self, i: usize, words: &Words) -> bool {
        let lo = i.saturating_sub(CONTEXT_WINDOW);
        let skip_gap = |mut j: usize| {
            while j > lo
                && matches!(
                    self.b[j - 1],
                    b' ' | b'\t' | b':' | b'#' | b'=' | b'.' | b'-' | b'"' | b'\''
                )
            {
                j -= 1;
            }
            j
        };
        let mut j = skip_gap(i);
        for round in 0..=LINKS_MAX {
            let before = &self.b[lo..j];
            let ends_in = |w: &[u8]| {
                before.len() >= w.len()
                    && before[before.len() - w.len()..].eq_ignore_ascii_case(w)
                    && !self
                        .prev(j - w.len())
                        .is_some_and(|c| c.is_ascii_alphabetic())
            };
            let last = before.last().copied();
            // Only words that end in the letter before `j` are compared: the test is implied by
            // `ends_in` and rules out most words at the cost of one byte compare.
            let last_lower = last.map(|c| c.to_ascii_lowercase());
            let ends_like = |w: &&[u8]| w.last().copied() == last_lower && ends_in(w);
            if words.may_end(last) && words.list.iter().any(&ends_like) {
                return true;
            }
            if !LINKS.may_end(last) {
                return false;
            }
            match LINKS.list.iter().find(|w| ends_like(w)) {
                Some(w) if round < LINKS_MAX => j = skip_gap(j - w.len()),
                _ => return false,
            }
        }
        false
    }
}

/// A list of context words, with the letters they end in: most bytes before a number end none
/// of them, and one test of the last byte tells.
struct Words {
    list: &'static [&'static [u8]],
    /// Bit `c - b'a'` for each last letter `c`.
    ends: u32,
}

impl Words {
    /// Every word is lowercase and ends in a letter (checked when the constant is built).
    const fn new(list: &'static [&'static [u8]]) -> Words {
        let mut ends = 0;
        let mut k = 0;
        while k < list.len() {
            let w = list[k];
            assert!(!w.is_empty() && w[w.len() - 1].is_ascii_lowercase());
            ends |= 1 << (w[w.len() - 1] - b'a');
            k += 1;
        }
        Words { list, ends }
    }

    /// Whether a word may end in `c`, in either case.
    #[inline]
    fn may_end(&self, c: Option<u8>) -> bool {
        c.is_some_and(|c| {
            c.is_ascii_alphabetic() && self.ends & 1 << (c.to_ascii_lowercase() - b'a') != 0
        })
    }
}

/// Words that may stand between a context word and its number, at most [`LINKS_MAX`] of them.
const LINKS: Words = Words::new(&[
    b"is", b"was", b"no", b"nr", b"num", b"number", b"of", b"reads",
]);
const LINKS_MAX: usize = 2;

/// Whether `c`, seen across a joiner (`-`, `.`, `/`), glues a number into a larger token
/// (`INV-4111…`, `v1.2.3.4`). `]` and `*` count too: they end labels and masks, so scrubbed
/// text is judged like the text it replaced (idempotence).
fn glues(c: u8) -> bool {
    is(c, DIGIT | ALPHA) || c == b']' || c == b'*'
}

/// Left edge of a number: not glued to a word, and not the second group of a longer number.
fn num_left_ok(h: &Hay<'_>, t: usize) -> bool {
    let Some(p) = h.prev(t) else { return true };
    let pp = t.checked_sub(2).map(|i| h.b[i]);
    match p {
        _ if is_word(p) || p == b'@' => false,
        b'-' | b'.' | b'/' => !pp.is_some_and(glues),
        _ => true,
    }
}

/// Whether the space-grouped number at `t` continues a digit group before it
/// (`1234 5678 9012 3456 7890`: a card cannot start at `5678`). Such a candidate is taken only
/// when that group ends a match already taken (`+1 415 555 0132 4111 1111 1111 1111`), so that
/// the answer is the same before and after the match is masked.
fn continues_group(b: &[u8], t: usize) -> bool {
    let run = b[t..].iter().take(7).take_while(|c| is_digit(**c)).count();
    if run > 6 || b.get(t + run) != Some(&b' ') || t < 2 || b[t - 1] != b' ' {
        return false;
    }
    let end = t - 1;
    let mut s = end;
    while s > 0 && end - s <= 6 && is_digit(b[s - 1]) {
        s -= 1;
    }
    (3..=6).contains(&(end - s))
        && !(s > 0 && matches!(b[s - 1], b'0'..=b'9' | b'*' | b'-' | b'.' | b'/'))
}

/// Right edge of a number: not glued to a word or, across a joiner, to a further number.
fn num_right_ok(h: &Hay<'_>, e: usize) -> Result<bool, NeedMore> {
    Ok(match h.get(e)? {
        None => true,
        Some(c) if is_word(c) || c == b'@' => false,
        Some(b'-' | b'.' | b'/') => !h
            .get(e + 1)?
            .is_some_and(|c| is_digit(c) || c == b'[' || c == b'*'),
        Some(_) => true,
    })
}

/// Right edge of a card number or an SSN: that of a number, but a `/` ends it, before an expiry
/// date (`4111 1111 1111 1111/12/27`) or a note. Phone numbers keep the stricter edge: the mask
/// style shows their last digits, which could open a number of their own across the `/`.
fn value_right_ok(h: &Hay<'_>, e: usize) -> Result<bool, NeedMore> {
    if h.get(e)? == Some(b'/') {
        return Ok(true);
    }
    num_right_ok(h, e)
}

fn digits_of(b: &[u8], range: Range<usize>, out: &mut [u8], n: &mut usize) -> bool {
    for &c in &b[range] {
        if *n >= out.len() {
            return false;
        }
        out[*n] = c;
        *n += 1;
    }
    true
}

fn card(h: &Hay<'_>, t: usize) -> Parse {
    if !num_left_ok(h, t) {
        return Ok(None);
    }
    let b = h.b;
    let e = h.run(t, 19, Class::Digit)?;
    let valid = |d: &[u8]| validate::card_brand_ok(d) && validate::luhn(d);
    match e - t {
        12..=19 => {
            let ok = valid(&b[t..e]) && value_right_ok(h, e)?;
            return Ok(ok.then_some(e));
        }
        4 => {}
        _ => return Ok(None),
    }
    let sep = match h.get(e)? {
        Some(c @ (b' ' | b'-')) => c,
        _ => return Ok(None),
    };
    let mut digits = [0u8; 19];
    let mut n = 0;
    digits_of(b, t..e, &mut digits, &mut n);
    // A further group of at most six digits would make this part of a longer number; a longer
    // run after the separator is a number of its own.
    let next_group = |end: usize| -> Result<Option<usize>, NeedMore> {
        if h.get(end)? != Some(sep) || !h.get(end + 1)?.is_some_and(is_digit) {
            return Ok(None);
        }
        let g = h.run(end + 1, 6, Class::Digit)?;
        let group = g - end - 1;
        // So would a short group that opens a date (`… 1111 12/27`) or an area code
        // (`… 1111 415/555-0132`); a group of four or more that a `/` ends is the card's last
        // (`… 1111/12/27`), and no value opens with such a group and a `/`.
        let other_grouping = match h.get(g)? {
            Some(b'/') if group >= 4 => false,
            Some(c @ (b'-' | b'.' | b'/' | b':')) if c != sep => {
                h.get(g + 1)?.is_some_and(|c| c.is_ascii_alphanumeric())
            }
            _ => false,
        };
        Ok((group <= 6 && !other_grouping).then_some(g))
    };
    let mut end = e;
    let mut groups = 1;
    while let Some(g) = next_group(end)? {
        if !digits_of(b, end + 1..g, &mut digits, &mut n) {
            return Ok(None);
        }
        groups += 1;
        let short = g - end - 1 < 3;
        end = g;
        // A group of one or two digits closes the number, whatever follows. [`continues_group`]
        // agrees: it never sees a group after such a short one as a continuation. Were the next
        // group allowed to reject this number, the number would be found once that group, a
        // value of its own, had been masked, and scrubbing would not be idempotent.
        if short {
            break;
        }
    }
    let ok =
        groups >= 3 && (12..=19).contains(&n) && valid(&digits[..n]) && value_right_ok(h, end)?;
    Ok(ok.then_some(end))
}

const SSN_WORDS: Words =
    Words::new(&[b"ssn", b"ss", b"social security", b"social security number"]);

fn ssn(h: &Hay<'_>, t: usize) -> Parse {
    if !num_left_ok(h, t) {
        return Ok(None);
    }
    let b = h.b;
    let num = |r: Range<usize>| b[r].iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
    let e = h.run(t, 9, Class::Digit)?;
    let (area, group, serial, end) = match e - t {
        3 => {
            let sep = match h.get(e)? {
                Some(c @ (b'-' | b' ')) => c,
                _ => return Ok(None),
            };
            let g = h.run(e + 1, 2, Class::Digit)?;
            if g - e - 1 != 2 || h.get(g)? != Some(sep) {
                return Ok(None);
            }
            let s = h.run(g + 1, 4, Class::Digit)?;
            if s - g - 1 != 4 || (h.get(s)? == Some(sep) && h.get(s + 1)?.is_some_and(is_digit)) {
                return Ok(None);
            }
            (num(t..e), num(e + 1..g), num(g + 1..s), s)
        }
        9 if h.context_word(t, &SSN_WORDS) => (num(t..t + 3), num(t + 3..t + 5), num(t + 5..e), e),
        _ => return Ok(None),
    };
    let ok = u8::try_from(group).is_ok_and(|g| validate::ssn_ok(area, g, serial))
        && value_right_ok(h, end)?;
    Ok(ok.then_some(end))
}

const PHONE_WORDS: Words = Words::new(&[
    b"phone",
    b"tel",
    b"telephone",
    b"mobile",
    b"cell",
    b"call",
    b"fax",
    b"sms",
    b"whatsapp",
    b"ph",
    b"mob",
]);

/// Start and parse of a phone number whose first digit is at `t`.
fn phone(h: &Hay<'_>, t: usize) -> (usize, Parse) {
    match h.prev(t) {
        // A number opening with `+` or `(` carries its own left edge: what stands before it
        // does not matter (and may be a label after scrubbing).
        Some(b'+') => (t - 1, international(h, t)),
        // An area code in parentheses; any other number in parentheses, `(415 555 0132)`, is
        // read from its first digit.
        Some(b'(') => match h.get(t + 3) {
            Err(_) => (t - 1, Err(NeedMore(None))),
            Ok(Some(b')')) => (t - 1, nanp(h, t - 1, || false)),
            Ok(_) => plain_phone(h, t),
        },
        _ => plain_phone(h, t),
    }
}

/// [`phone`] of a number that opens with its first digit at `t`.
fn plain_phone(h: &Hay<'_>, t: usize) -> (usize, Parse) {
    if !num_left_ok(h, t) {
        return (t, Ok(None));
    }
    // A trunk "1" before a separated number: 1-800-555-0199, 1 (800) 555-0199.
    match trunk(h, t) {
        Ok(true) => (t, nanp(h, t + 2, || false)),
        Ok(false) => (t, nanp(h, t, || h.context_word(t, &PHONE_WORDS))),
        Err(e) => (t, Err(e)),
    }
}

fn trunk(h: &Hay<'_>, t: usize) -> Result<bool, NeedMore> {
    Ok(h.get(t)? == Some(b'1')
        && matches!(h.get(t + 1)?, Some(b'-' | b' ' | b'.'))
        && h.get(t + 2)?.is_some_and(|c| is_digit(c) || c == b'('))
}

/// A North American number from `i` (area code, possibly in parentheses), with its extension.
fn nanp(h: &Hay<'_>, i: usize, allow_bare: impl Fn() -> bool) -> Parse {
    let b = h.b;
    let mut d = [0u8; 10];
    let mut n = 0;
    let mut j = i;
    let sep1;
    if h.get(j)? == Some(b'(') {
        let e = h.run(j + 1, 3, Class::Digit)?;
        if e - j - 1 != 3 || h.get(e)? != Some(b')') {
            return Ok(None);
        }
        digits_of(b, j + 1..e, &mut d, &mut n);
        j = e + 1;
        if matches!(h.get(j)?, Some(b' ' | b'-' | b'.')) {
            j += 1;
        }
        sep1 = None;
    } else {
        let e = h.run(j, 10, Class::Digit)?;
        match e - j {
            3 => {}
            10 if allow_bare() => {
                digits_of(b, j..e, &mut d, &mut n);
                return finish_nanp(h, &d, e);
            }
            _ => return Ok(None),
        }
        digits_of(b, j..e, &mut d, &mut n);
        sep1 = match h.get(e)? {
            Some(s @ (b'-' | b'.' | b' ')) => Some(s),
            // `415/555-0132`: the slash sets the area code apart, like parentheses.
            Some(b'/') => None,
            _ => return Ok(None),
        };
        j = e + 1;
    }
    let e = h.run(j, 3, Class::Digit)?;
    if e - j != 3 {
        return Ok(None);
    }
    digits_of(b, j..e, &mut d, &mut n);
    let sep2 = h.get(e)?;
    let consistent = match sep1 {
        Some(s) => sep2 == Some(s),
        None => matches!(sep2, Some(b'-' | b'.' | b' ')),
    };
    if !consistent {
        return Ok(None);
    }
    let l = h.run(e + 1, 4, Class::Digit)?;
    if l - e - 1 != 4 {
        return Ok(None);
    }
    digits_of(b, e + 1..l, &mut d, &mut n);
    finish_nanp(h, &d, l)
}

fn finish_nanp(h: &Hay<'_>, d: &[u8; 10], end: usize) -> Parse {
    if !validate::nanp_ok(d) {
        return Ok(None);
    }
    with_extension(h, end)
}

/// End of a phone number ending at `end`, with its extension when one follows cleanly.
fn with_extension(h: &Hay<'_>, end: usize) -> Parse {
    let ext = extension(h, end)?;
    if ext != end && num_right_ok(h, ext)? {
        return Ok(Some(ext));
    }
    Ok(num_right_ok(h, end)?.then_some(end))
}

/// End of an extension (` ext. 123`, ` x123`, ` #12`) after a number ending at `j`, or `j`.
/// The last digits of a second line (`415-555-0132/0133`) count as one too.
fn extension(h: &Hay<'_>, j: usize) -> Result<usize, NeedMore> {
    let mut k = j;
    let slash = h.get(k)? == Some(b'/');
    let (k, widest) = if slash {
        (k + 1, 4)
    } else {
        if matches!(h.get(k)?, Some(b' ' | b',')) {
            k += 1;
        }
        let word_len = if h.lit(k, b"extension")? {
            9
        } else if h.lit(k, b"ext")? {
            3
        } else if matches!(h.get(k)?, Some(b'x' | b'X' | b'#')) {
            1
        } else {
            return Ok(j);
        };
        k += word_len;
        if matches!(h.get(k)?, Some(b'.')) {
            k += 1;
        }
        if matches!(h.get(k)?, Some(b' ' | b':')) {
            k += 1;
        }
        (k, 6)
    };
    let e = h.run(k, widest, Class::Digit)?;
    // Digits that go on with `:` and more hex digits open an address or a time
    // (`ext. 2001:db8::1`), not an extension. Taking them would hide that value until the mask
    // style, which keeps the last digits, showed it to a second pass.
    let colon_glued = h.get(e)? == Some(b':') && h.get(e + 1)?.is_some_and(|c| is(c, HEX));
    // Nor do digits that a further group follows (`ext 4111 1111 1111 1111`): they may open a
    // number of their own, which the mask style, keeping the extension's digits, would show.
    // A phone refused for that after a `/` is refused whole, so a mask there (`[`, `*`) counts
    // as the digits it hides: the answer is the same before and after they are masked.
    let grouped = matches!(h.get(e)?, Some(b' ' | b'-' | b'.'))
        && h.get(e + 1)?
            .is_some_and(|c| is_digit(c) || (slash && matches!(c, b'[' | b'*')));
    Ok(
        if (1..=widest).contains(&(e - k)) && !colon_glued && !grouped {
            e
        } else {
            j
        },
    )
}

/// An international number after its `+`, first digit at `t`.
fn international(h: &Hay<'_>, t: usize) -> Parse {
    let b = h.b;
    let first = h.run(t, 15, Class::Digit)?;
    if first - t > 15 {
        return Ok(None);
    }
    let Some(cc) = validate::country_calling_code(&b[t..first]) else {
        return Ok(None);
    };
    if cc == 1 && b[t] == b'1' {
        let mut j = t + 1;
        if first == j && matches!(h.get(j)?, Some(b' ' | b'-' | b'.')) {
            j += 1;
        }
        return nanp(h, j, || true);
    }
    // Groups are set apart by blanks, then dashes, as countries write them (`+81 3-1234-5678`,
    // `+7 495 123-45-67`), or by dots throughout. The number is the longest run of groups that
    // ends cleanly, so "+44 20 7946 0958 10.0.0.1" is a phone followed by an address.
    let joins = |last: Option<u8>, c: u8| match last {
        None => true,
        Some(b'.') => c == b'.',
        Some(b' ') => c != b'.',
        Some(_) => c == b'-',
    };
    let mut ends = [(0usize, 0usize); 16];
    let mut groups = 0;
    ends[0] = (first, first - t);
    let mut sep = None;
    loop {
        let (end, digits) = ends[groups];
        let c = match h.get(end)? {
            Some(c @ (b' ' | b'-' | b'.')) if joins(sep, c) => c,
            _ => break,
        };
        let mut k = end + 1;
        if h.lit(k, b"(0)")? {
            k += 3;
            if h.get(k)? == Some(c) {
                k += 1;
            }
        }
        if !h.get(k)?.is_some_and(is_digit) {
            break;
        }
        let g = h.run(k, 14, Class::Digit)?;
        if digits + (g - k) > 15 || groups + 1 == ends.len() {
            break;
        }
        sep = Some(c);
        groups += 1;
        ends[groups] = (g, digits + (g - k));
    }
    for &(end, digits) in ends[..=groups].iter().rev() {
        if digits < 7 || digits - cc < 4 {
            break;
        }
        // A group that goes on with `:` opens a time or an address (`… 2001:db8::1`).
        if h.get(end)? == Some(b':') {
            continue;
        }
        if let Some(end) = with_extension(h, end)? {
            return Ok(Some(end));
        }
    }
    Ok(None)
}

const VERSION_WORDS: Words = Words::new(&[
    b"version",
    b"ver",
    b"v",
    b"release",
    b"build",
    b"firmware",
    b"section",
    b"sect",
    b"chapter",
    b"rev",
    b"revision",
    b"oid",
]);

/// Left edge of an IPv4 address: not glued to a word, nor across `.` to a larger token
/// (`1.10.0.0.1`), nor across `/` to a word (`Chrome/120.0.6099.71`). After `@`
/// (`root@10.0.0.5`), `-` (`host-10.0.0.5`, the end of a range) or a number and `/` (a mask,
/// `10.0.0.0/255.0.0.0`) it stands on its own.
#[inline]
fn ipv4_left_ok(h: &Hay<'_>, t: usize) -> bool {
    let Some(p) = h.prev(t) else { return true };
    let pp = h.prev(t - 1);
    !(is_word(p)
        || p == b'.' && pp.is_some_and(glues)
        || p == b'/' && pp.is_some_and(|c| glues(c) && !is_digit(c)))
}

/// Right edge of an IPv4 address ending at `e`: that of a number, but a prefix length or mask
/// (`/24`, `/255.255.255.0`) or the rest of a range (`-10.0.0.255`) may follow.
fn ipv4_right_ok(h: &Hay<'_>, e: usize) -> Result<bool, NeedMore> {
    if matches!(h.get(e)?, Some(b'/' | b'-')) && h.get(e + 1)?.is_some_and(is_digit) {
        return Ok(true);
    }
    num_right_ok(h, e)
}

fn ipv4(h: &Hay<'_>, t: usize) -> Parse {
    if !ipv4_left_ok(h, t) {
        return Ok(None);
    }
    let parse = ipv4_body(h, t)?;
    Ok(parse.filter(|_| !h.context_word(t, &VERSION_WORDS)))
}

fn ipv4_body(h: &Hay<'_>, t: usize) -> Parse {
    let mut j = t;
    for octet in 0..4 {
        let e = h.run(j, 3, Class::Digit)?;
        if validate::ipv4_octet(&h.b[j..e]).is_none() {
            return Ok(None);
        }
        if octet < 3 {
            if h.get(e)? != Some(b'.') {
                return Ok(None);
            }
            j = e + 1;
        } else {
            j = e;
        }
    }
    Ok(ipv4_right_ok(h, j)?.then_some(j))
}

/// What the start of an IPv6 address is walked back over.
#[inline]
fn ipv6_char(c: u8) -> bool {
    is(c, HEX) || c == b':'
}

/// Start of the IPv6 address that the digit at `t` may belong to: back over hex digits and `:`.
fn ipv6_start(b: &[u8], t: usize) -> usize {
    let mut s = t;
    while s > 0 && t - s < IPV6_MAX && ipv6_char(b[s - 1]) {
        s -= 1;
    }
    s
}

/// Where the IPv6 address that the digit at `t` may belong to starts when the walk back to `s`
/// (see [`ipv6_start`]) went into a key glued to it by one `:` (`ip:fe80::1`,
/// `value:2001:db8::1`, and `ip:::1` for an address that opens with `::`): right after that
/// colon. `None` when there is no such key. Two colons do not glue a key (`Foo::1`): the address
/// is `::1`.
// Always inlined: the trigger loop asks it for most digits in a hex token, and most are told
// by the first two tests.
#[inline(always)]
fn after_key(b: &[u8], s: usize, t: usize) -> Option<usize> {
    let colon = if b[s] == b':' {
        // The walk stopped at the colon: the key ends in a word byte that is not a hex digit.
        s
    } else if s > 0 && is_word(b[s - 1]) && !ipv6_char(b[s - 1]) {
        // The walk went back over the hex letters at the end of the key (`value`).
        s + b[s..t].iter().position(|&c| c == b':')?
    } else {
        return None;
    };
    let start = colon + 1;
    let keyed = match b.get(start) {
        _ if start > t => false,
        Some(b':') => keyed_before_colons(b, start),
        _ => keyed(b, start),
    };
    keyed.then_some(start)
}

/// [`keyed`] for an address that opens with `::` (`ip:::1`), which only that key's colon may
/// stand before. Rare, and kept out of the trigger loop.
#[cold]
#[inline(never)]
fn keyed_before_colons(b: &[u8], start: usize) -> bool {
    b.get(start + 1) == Some(&b':') && keyed(b, start)
}

/// Whether a key stands right before `s`: a word of letters and `_` (with at most two digits
/// at its end, `ipv6`) that has a letter no address group has, then one `:`. Tokens such as
/// `zz12ab34:2001:db8::1` are not keys.
#[inline]
fn keyed(b: &[u8], s: usize) -> bool {
    if s < 2 || b[s - 1] != b':' {
        return false;
    }
    // Looked at over a bounded stretch, which a stream keeps as left context.
    let lo = (s - 1).saturating_sub(KEY_MAX);
    let mut i = s - 1;
    let digits_end = i;
    while i > lo && digits_end - i < 2 && is_digit(b[i - 1]) {
        i -= 1;
    }
    let letters_end = i;
    let mut not_hex = false;
    while i > lo && (b[i - 1].is_ascii_alphabetic() || b[i - 1] == b'_') {
        not_hex |= !is(b[i - 1], HEX);
        i -= 1;
    }
    i < letters_end && not_hex && !(i > 0 && is_word(b[i - 1]))
}

/// Whether what starts at `s` (see [`ipv6_start`]) is glued to a word or an address before it.
/// A key (see [`after_key`]) does not glue.
#[inline]
fn ipv6_glued(h: &Hay<'_>, s: usize) -> bool {
    match h.prev(s) {
        _ if h.b[s] == b':' => false,
        Some(b':') if keyed(h.b, s) => false,
        Some(c) => is_word(c) || matches!(c, b':' | b'.'),
        None => false,
    }
}

/// An IPv6 address from `s` (see [`ipv6_start`]), not glued to a word or an address before it.
fn ipv6(h: &Hay<'_>, s: usize) -> Parse {
    if ipv6_glued(h, s) {
        return Ok(None);
    }
    let b = h.b;
    let e = h.run(s, IPV6_MAX, Class::Ipv6)?;
    if e - s > IPV6_MAX || !b[s..e].contains(&b':') {
        return Ok(None);
    }
    let mut end = e;
    while end > s {
        if validate::ipv6_ok(&b[s..end]) {
            let glued = h.get(end)?.is_some_and(|c| is_word(c) || c == b':');
            return Ok((!glued).then_some(end));
        }
        // A sentence may end right after the address: "reach fe80::1."
        if end == e && matches!(b[end - 1], b'.' | b':') {
            end -= 1;
        } else {
            return Ok(None);
        }
    }
    Ok(None)
}

fn iban(h: &Hay<'_>, t: usize) -> Parse {
    let b = h.b;
    let s = t - 2;
    let country = [b[s].to_ascii_uppercase(), b[s + 1].to_ascii_uppercase()];
    let Some(len) = validate::iban_length(country) else {
        return Ok(None);
    };
    let len = usize::from(len);
    let mut compact = [0u8; 34];
    let mut n = 0;
    let mut j = s;
    let mut sep = None;
    while n < len {
        match h.get(j)? {
            Some(c) if is(c, DIGIT | ALPHA) && n < compact.len() => {
                compact[n] = c;
                n += 1;
                j += 1;
            }
            Some(c @ (b' ' | b'-')) if n % 4 == 0 && n > 0 && sep.is_none_or(|s| s == c) => {
                sep = Some(c);
                j += 1;
            }
            _ => return Ok(None),
        }
    }
    if !compact[2..4].iter().all(|c| is_digit(*c)) {
        return Ok(None);
    }
    let glued = h.get(j)?.is_some_and(is_word);
    Ok((!glued && validate::iban_mod97(&compact[..n])).then_some(j))
}

/// Start and parse of an e-mail address around the `@` at `a`.
#[inline(never)]
fn email(h: &Hay<'_>, a: usize) -> (usize, Parse) {
    // Local parts may hold non-ASCII letters (RFC 6531): walk back by characters.
    let mut s = a;
    for (i, c) in h.text[..a].char_indices().rev() {
        let local = if c == '\'' {
            // Between two letters or digits only (`o'brien@`), never a quote around the address.
            let alnum = |j: usize| h.b.get(j).is_some_and(u8::is_ascii_alphanumeric);
            i > 0 && alnum(i + 1) && alnum(i - 1)
        } else if c.is_ascii() {
            is(c as u8, LOCAL)
        } else {
            c.is_alphanumeric()
        };
        if !local {
            break;
        }
        if a - i > LOCAL_MAX {
            return (i, Ok(None));
        }
        s = i;
    }
    let local = &h.b[s..a];
    if local.is_empty()
        || local[0] == b'.'
        || local[local.len() - 1] == b'.'
        || local.windows(2).any(|w| w == b"..")
    {
        return (s, Ok(None));
    }
    (s, domain(h, a + 1))
}

fn domain(h: &Hay<'_>, i: usize) -> Parse {
    let label_char = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let mut j = i;
    let mut labels = 0;
    let mut last = i..i;
    loop {
        let e = h.run(j, 63, Class::Label)?;
        let label = &h.b[j..e];
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return Ok(None);
        }
        let scale = label.len() >= 2
            && label.ends_with(b"x")
            && label[..label.len() - 1].iter().all(|c| is_digit(*c));
        let leading_digits = h.b[i..j].iter().all(|c| is_digit(*c) || *c == b'.');
        if scale && leading_digits {
            // Retina asset names: icon@2x.png, sprite@1.5x.png.
            return Ok(None);
        }
        labels += 1;
        last = j..e;
        if e - i > DOMAIN_MAX {
            return Ok(None);
        }
        if h.get(e)? == Some(b'.') && h.get(e + 1)?.is_some_and(label_char) {
            j = e + 1;
        } else {
            j = e;
            break;
        }
    }
    // An address glued to more local-part characters would let a second address reach back
    // into this one; neither is taken.
    let glued = match h.get(j)? {
        Some(b'_' | b'%' | b'+') => true,
        Some(c) if !c.is_ascii() => h.text[j..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric),
        _ => false,
    };
    if glued {
        return Ok(None);
    }
    let tld = &h.b[last];
    let tld_ok =
        tld.len() >= 2 && (tld.iter().all(u8::is_ascii_alphabetic) || tld.starts_with(b"xn--"));
    Ok((labels >= 2 && tld_ok).then_some(j))
}

fn jwt(h: &Hay<'_>, p: usize) -> Parse {
    let head = h.run(p, 512, Class::B64Url)?;
    if head - p > 512 || h.get(head)? != Some(b'.') || !validate::jwt_header_ok(&h.b[p..head]) {
        return Ok(None);
    }
    let body = h.run(head + 1, JWT_MAX, Class::B64Url)?;
    if body == head + 1 {
        return Ok(None);
    }
    if body - p >= JWT_MAX {
        return Ok(Some(p + JWT_MAX));
    }
    if h.get(body)? != Some(b'.') {
        return Ok(None);
    }
    let sig = h.run(body + 1, JWT_MAX - (body + 1 - p), Class::B64Url)?;
    Ok(Some(sig.min(p + JWT_MAX)))
}

/// A PEM private-key header line from `p` (`-----BEGIN … PRIVATE KEY-----`).
fn pem_header(h: &Hay<'_>, p: usize) -> Parse {
    let start = p + b"-----BEGIN".len();
    if h.get(start)? != Some(b' ') {
        return Ok(None);
    }
    let label_end = h.run(start + 1, 48, Class::PemLabel)?;
    let label = &h.b[start + 1..label_end];
    let private = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
    Ok((private && h.lit(label_end, b"-----")?).then(|| label_end + 5))
}

/// End of the `END … PRIVATE KEY-----` line that closes a private-key block, searching from `i`.
/// `Err(NeedMore)` carries nothing: the caller holds back the unfinished `-----END` line.
fn pem_footer(h: &Hay<'_>, i: usize) -> Result<Option<Range<usize>>, usize> {
    let finder = memchr::memmem::Finder::new(b"-----END ");
    let mut from = i;
    while let Some(off) = finder.find(&h.b[from..]) {
        let at = from + off;
        let start = at + b"-----END ".len();
        let scan = h.run(start, 48, Class::PemLabel);
        let close = scan.and_then(|e| Ok((e, h.lit(e, b"-----")?)));
        match close {
            Err(_) => return Err(at),
            Ok((e, true)) if h.b[start..e].windows(11).any(|w| w == b"PRIVATE KEY") => {
                return Ok(Some(at..e + 5));
            }
            Ok(_) => from = start,
        }
    }
    Ok(None)
}

/// The compiled detectors of one policy.
pub(crate) struct Engine {
    kinds: KindSet,
    /// Secret prefixes of the enabled kinds.
    secrets: Option<PrefixSearch>,
    dictionary: Option<Dictionary>,
}

/// Where a scan puts what its parsers answer.
struct Found<'s> {
    found: &'s mut Vec<Candidate>,
    pending: &'s mut Vec<Pending>,
    /// A candidate starting before it overlaps text already masked or released: it can never
    /// be chosen, so it must not hold anything back either.
    floor: usize,
    /// At least the furthest end of a candidate in `found` (see [`Engine::on_secret`]).
    reach: usize,
}

impl Found<'_> {
    #[inline(always)]
    fn add(&mut self, b: &[u8], start: usize, at: usize, parser: Parser, parse: Parse) {
        if start < self.floor {
            return;
        }
        match parse {
            Ok(Some(end)) => {
                self.reach = self.reach.max(end);
                let after_group = match parser {
                    Parser::Card | Parser::Ssn => continues_group(b, at),
                    Parser::Phone => start == at && continues_group(b, at),
                    _ => false,
                };
                insert(
                    self.found,
                    Candidate {
                        start,
                        end,
                        kind: parser.kind(),
                        after_group,
                    },
                );
            }
            Ok(None) => {}
            Err(NeedMore(wait)) => self.pending.push(Pending {
                start,
                at,
                parser,
                asked: b.len(),
                wait,
                answer: None,
            }),
        }
    }
}

/// Inserts `c` into `found`, kept in resolution order. Candidates arrive nearly in order (a
/// candidate starts at most [`MAX_BACKTRACK`] bytes before its trigger), so this is a short move.
#[inline(never)]
fn insert(found: &mut Vec<Candidate>, c: Candidate) {
    let key = c.key();
    let mut i = found.len();
    found.push(c);
    while i > 0 && found[i - 1].key() > key {
        found[i] = found[i - 1];
        i -= 1;
    }
    found[i] = c;
}

impl Engine {
    pub(crate) fn new(kinds: KindSet, terms: &[String]) -> Result<Engine, PolicyError> {
        let wanted = [Kind::ApiKey, Kind::Jwt, Kind::PrivateKey];
        let secrets = match wanted.iter().any(|k| kinds.contains(*k)) {
            true => Some(secrets::search(kinds).ok_or(PolicyError::Build)?),
            false => None,
        };
        let dictionary = match kinds.contains(Kind::Dictionary) && !terms.is_empty() {
            true => Some(Dictionary::new(terms)?),
            false => None,
        };
        Ok(Engine {
            kinds,
            secrets,
            dictionary,
        })
    }

    pub(crate) fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Scans `text[from..]` and reports masked and dropped ranges to `sink`, in order.
    ///
    /// Returns the frontier: every byte before it is decided, the rest must be scanned again
    /// once more text has arrived (`eof == false`). With `eof` the frontier is `text.len()`.
    /// `text[..from]` is left context only. `state` carries what is decided from one call to the
    /// next, over the same text grown at its end (a fresh state for a new text).
    pub(crate) fn scan(
        &self,
        text: &str,
        from: usize,
        eof: bool,
        state: &mut ScanState,
        sink: &mut dyn FnMut(Piece),
    ) -> usize {
        let h = Hay::new(text, eof);
        if !state.in_private_key {
            match self.step(&h, from, state, sink) {
                Ok(frontier) => return frontier,
                Err(key_from) => return self.scan_keys(&h, key_from, state, sink),
            }
        }
        self.scan_keys(&h, from, state, sink)
    }

    /// Whether there are dictionary terms to find.
    pub(crate) fn has_dictionary(&self) -> bool {
        self.dictionary.is_some()
    }

    /// Whether a one-shot scan of `text` would find nothing, told without scanning: there is no
    /// dictionary, no trigger (digit or `@`), and no secret prefix, or no run of
    /// [`secrets::SHORTEST`] bytes a secret could span. Only short texts are looked at: object
    /// keys, ids, header values. A long one mostly has a digit somewhere, and the scan tells as
    /// cheaply.
    #[inline]
    pub(crate) fn finds_nothing(&self, text: &str) -> bool {
        let b = text.as_bytes();
        if self.dictionary.is_some() || b.len() > FEW_BYTES {
            return false;
        }
        let (mut run, mut longest) = (0, 0);
        for &c in b {
            if is(c, TRIGGER) {
                return false;
            }
            run = if Body::Dotted.contains(c) { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        // Snake-case keys (`finish_reason`) are long runs: the prefix automaton tells.
        longest < secrets::SHORTEST
            || self
                .secrets
                .as_ref()
                .is_none_or(|search| search.pass_quietly(b, &mut Cursor::at(0)))
    }

    /// [`Engine::scan`] for the common push of a stream, done cheaply: nothing pending or found,
    /// no dictionary, and a short stretch of new text without a trigger or a secret prefix. Its
    /// frontier, or `None` (with `state` as it was) when the general scan is needed.
    #[inline(always)]
    pub(crate) fn quick_scan(
        &self,
        text: &str,
        from: usize,
        state: &mut ScanState,
        delta: Delta,
    ) -> Option<usize> {
        let b = text.as_bytes();
        let len = b.len();
        let seen = state.seen;
        if state.in_private_key
            || !state.pending.is_empty()
            || !state.found.is_empty()
            || self.dictionary.is_some()
            || state.trigger != seen
            || seen < from
            || len - seen > SHORT
        {
            return None;
        }
        // The new bytes before the delta were skipped by the first case of `may_skip`: all may be
        // held, so they do not move `hold`, and only their classes are left to look at.
        if (state.unscanned | delta.classes) & TRIGGER != 0 {
            return None;
        }
        if let Some(search) = &self.secrets {
            if !search.pass_quietly(b, &mut state.secret) {
                return None;
            }
        }
        let hold = match delta.hold_end {
            0 => state.hold,
            end => len - delta.len + end,
        };
        state.hold = hold;
        state.seen = len;
        state.unscanned = 0;
        state.trigger = len;
        Some(self.held_from(&Hay::new(text, false), from, hold))
    }

    /// [`Engine::scan`] from inside a private-key block: drops it, then scans what follows, over
    /// and over while more blocks open. Kept apart from the common case, which has no such loop.
    #[cold]
    #[inline(never)]
    fn scan_keys(
        &self,
        h: &Hay<'_>,
        mut from: usize,
        state: &mut ScanState,
        sink: &mut dyn FnMut(Piece),
    ) -> usize {
        loop {
            match drop_key_block(h, from, state, sink) {
                Ok(after) => from = after,
                Err(frontier) => return frontier,
            }
            match self.step(h, from, state, sink) {
                Ok(frontier) => return frontier,
                Err(key_from) => from = key_from,
            }
        }
    }

    /// One round of a scan outside private-key blocks: `Ok` with the frontier, or `Err` with the
    /// end of a private-key header just taken.
    #[inline(always)]
    fn step(
        &self,
        h: &Hay<'_>,
        from: usize,
        state: &mut ScanState,
        sink: &mut dyn FnMut(Piece),
    ) -> Result<usize, usize> {
        self.collect(h, from, state);
        let frontier = if h.eof {
            h.b.len()
        } else {
            self.frontier(h, from, state)
        };
        if state.found.is_empty() {
            return Ok(frontier.max(from));
        }
        let pos = resolve(frontier, from, state, sink)?;
        Ok(frontier.max(pos))
    }

    /// First position that a trigger still to come could reach back to, given the start `hold`
    /// of the run of bytes at the end that may be held.
    #[inline]
    fn held_from(&self, h: &Hay<'_>, from: usize, hold: usize) -> usize {
        let floor = from.max(h.b.len().saturating_sub(MAX_BACKTRACK));
        floor_char_boundary(h.text, hold.max(floor))
    }

    /// First position that is undecided or that a trigger still to come could reach back to.
    fn frontier(&self, h: &Hay<'_>, from: usize, state: &ScanState) -> usize {
        let mut frontier = self.held_from(h, from, state.hold);
        for p in &state.pending {
            frontier = frontier.min(p.start);
        }
        // An undecided secret prefix needs nothing here: it is made of characters that `hold`
        // covers already (checked by a test of the format table).
        if self.dictionary.is_some() {
            frontier = frontier.min(state.term);
        }
        // A digit run left for the next scan (see [`Engine::triggers`]): its candidates start at
        // most an IPv6 address's length before it.
        if state.trigger < h.b.len() {
            let reach = state.trigger.saturating_sub(IPV6_MAX);
            frontier = frontier.min(floor_char_boundary(h.text, reach));
        }
        frontier
    }

    /// Runs the parsers that have something new to read, then the triggers in the new text.
    fn collect(&self, h: &Hay<'_>, from: usize, state: &mut ScanState) {
        state.blocker = None;
        let b = h.b;
        let len = b.len();
        let seen = state.seen.min(len);
        let i = state.trigger.max(from);
        let mut first_trigger = None;
        if i == seen && len - seen <= SHORT {
            // A stream's delta: one pass for both the held tail and the first trigger.
            for (k, &c) in b[seen..].iter().enumerate() {
                let class = CLASS[usize::from(c)];
                if class & HOLD == 0 {
                    state.hold = seen + k + 1;
                }
                if class & TRIGGER != 0 && first_trigger.is_none() {
                    first_trigger = Some(seen + k);
                }
            }
        } else {
            if let Some(k) = b[seen..].iter().rposition(|&c| !may_hold(c)) {
                state.hold = seen + k + 1;
            }
            first_trigger = next_trigger(b, i);
        }
        let floor = from.max(state.last_end);
        if !state.pending.is_empty() {
            let lazy_from = self.held_from(h, from, state.hold);
            self.retry(h, seen, floor, lazy_from, state);
        }
        state.secret_hits.clear();
        if let Some(search) = &self.secrets {
            let hits = &mut state.secret_hits;
            if state.secret.pos() < from {
                state.secret = Cursor::at(from);
            }
            search.find(b, &mut state.secret, h.eof, &mut |start, _, format| {
                hits.push((start, format));
            });
        }
        state.term_hits.clear();
        if let Some(d) = &self.dictionary {
            let hits = &mut state.term_hits;
            state.term = state.term.max(from);
            d.find(h, &mut state.term, &mut |start, end| {
                hits.push((start, end))
            });
        }
        state.trigger = if let Some(t) = first_trigger {
            self.triggers(h, t, floor, state)
        } else if !state.secret_hits.is_empty() || !state.term_hits.is_empty() {
            self.triggers(h, len, floor, state)
        } else {
            len
        };
        state.seen = len;
        state.unscanned = 0;
    }

    /// Runs the parsers of the triggers from `first` on (the first digit or `@`, or the end), with
    /// the secret and dictionary hits of this scan merged in: in text order, the candidates stay
    /// nearly sorted. Returns where the trigger pass goes on: the end of the window, or a short
    /// digit run that reaches the end of an unfinished window.
    ///
    /// Such a run is left for the next scan, with nothing after it: its parsers would all ask
    /// for more text, and a stream cut every few bytes would start and retry them on every push
    /// that lands in a number. Their answers do not depend on when they are asked, and the
    /// frontier stays before the earliest candidate the run may start (see
    /// [`Engine::frontier`]), so the output is the same; the run is at most [`OPEN_RUN_MAX`]
    /// digits, so the bytes held back stay within [`HOLD_BOUND`](super::HOLD_BOUND).
    #[inline(never)]
    fn triggers(&self, h: &Hay<'_>, first: usize, floor: usize, state: &mut ScanState) -> usize {
        let b = h.b;
        let len = b.len();
        let reach = state.found.iter().map(|c| c.end).max().unwrap_or(0);
        let mut out = Found {
            found: &mut state.found,
            pending: &mut state.pending,
            floor,
            reach,
        };
        // The body of a secret just taken, whose digits need no parser (see
        // [`Engine::on_secret`]).
        let mut skip = 0..0;
        let (mut secret_hits, mut term_hits) = (&state.secret_hits[..], &state.term_hits[..]);
        // Where the first secret or dictionary hit not yet merged in starts: one test per
        // trigger instead of a look at both lists.
        let first_hit = |secrets: &[(usize, usize)], terms: &[(usize, usize)]| {
            let start = |hits: &[(usize, usize)]| hits.first().map_or(usize::MAX, |h| h.0);
            start(secrets).min(start(terms))
        };
        let mut next_hit = first_hit(secret_hits, term_hits);
        let mut map = TriggerMap::at(b, first);
        let mut next = Some(first).filter(|&t| t < len);
        while let Some(t) = next {
            if next_hit < t {
                while let Some((&(p, format), rest)) = secret_hits.split_first() {
                    if p >= t {
                        break;
                    }
                    if let Some(body) = self.on_secret(h, p, format, &mut out) {
                        skip = body;
                    }
                    secret_hits = rest;
                }
                while let Some((&(start, end), rest)) = term_hits.split_first() {
                    if start >= t {
                        break;
                    }
                    let parse = Dictionary::right_edge(h, end);
                    out.add(b, start, start, Parser::Term(end), parse);
                    term_hits = rest;
                }
                next_hit = first_hit(secret_hits, term_hits);
            }
            if skip.contains(&t) {
                next = map.next(skip.end);
                continue;
            }
            let mut i = t + 1;
            if b[t] == b'@' {
                if self.kinds.contains(Kind::Email) {
                    let (s, parse) = email(h, t);
                    out.add(b, s, t, Parser::Email, parse);
                }
            } else {
                // No secret prefix starts with a digit, so none is left after a run that ends the
                // window; a dictionary term may be.
                if !h.eof
                    && len - t <= OPEN_RUN_MAX
                    && b[t..].iter().all(|&c| is_digit(c))
                    && secret_hits.is_empty()
                    && term_hits.is_empty()
                {
                    return t;
                }
                // Only the first digit of a run starts a number. One glued to a word (inside a
                // token) cannot start a card, SSN, phone or IPv4 address: only an IPv6 address,
                // if the word character is a hex digit, or an IBAN.
                match t.checked_sub(1).map(|p| b[p]) {
                    Some(p) if is_digit(p) => {}
                    Some(p) if is_word(p) => {
                        if ipv6_char(p) {
                            self.on_ipv6(h, t, &mut state.ipv6, &mut out);
                        }
                        self.on_iban(h, t, &mut out);
                        if !ipv6_char(p) {
                            i = glued_run_end(h, i);
                        }
                    }
                    _ => i = self.on_digit(h, t, &mut state.ipv6, &mut out),
                }
                while i < len && is_digit(b[i]) {
                    i += 1;
                }
            }
            next = map.next(i);
        }
        for &(p, format) in secret_hits {
            let _ = self.on_secret(h, p, format, &mut out);
        }
        for &(start, end) in term_hits {
            let parse = Dictionary::right_edge(h, end);
            out.add(b, start, start, Parser::Term(end), parse);
        }
        len
    }

    /// Runs again the parsers that asked for more text, but for those that would only ask again.
    // Out of line, like the parsers below: a scan of a few plain bytes stays small.
    #[inline(never)]
    ///
    /// A parser whose candidate would start at or after `lazy_from` (where the frontier stands at
    /// the latest) is not asked yet: its answer could not release anything.
    fn retry(
        &self,
        h: &Hay<'_>,
        seen: usize,
        floor: usize,
        lazy_from: usize,
        state: &mut ScanState,
    ) {
        let b = h.b;
        let mut k = 0;
        while k < state.pending.len() {
            let p = state.pending[k];
            if p.start < floor {
                state.pending.swap_remove(k);
                continue;
            }
            let (start, parse) = match p.answer {
                Some(answer) => answer,
                None => {
                    let new = &b[seen.max(p.asked)..];
                    let waiting = p.wait.is_some_and(|w| {
                        !h.eof && b.len() <= w.last && new.iter().all(|&c| w.class.has(c))
                    });
                    if waiting {
                        k += 1;
                        continue;
                    }
                    if !h.eof && p.start >= lazy_from {
                        // Its answer cannot move the frontier yet: ask later, with all the new
                        // bytes.
                        state.pending[k].wait = None;
                        k += 1;
                        continue;
                    }
                    let (start, parse) = p.ask(h);
                    if let Err(NeedMore(wait)) = parse {
                        let q = &mut state.pending[k];
                        q.start = start;
                        q.wait = wait;
                        q.asked = b.len();
                        k += 1;
                        continue;
                    }
                    (start, parse)
                }
            };
            state.pending.swap_remove(k);
            let mut out = Found {
                found: &mut state.found,
                pending: &mut state.pending,
                floor,
                reach: 0,
            };
            out.add(b, start, p.at, p.parser, parse);
        }
    }

    /// Parses the secret whose prefix is at `p`. Returns the range of its body when the
    /// triggers in it may be passed over: nothing they would start could ever be chosen.
    ///
    /// That holds when the secret is a candidate `p..end`, no candidate found so far reaches
    /// past `p` and no parser waits for more text. A candidate started by a trigger in the body
    /// (a digit: a body holds no `@`) starts after `p`: an IBAN two bytes before its digit, past
    /// a prefix of three bytes or more; an IPv6 address after the byte of the prefix that no
    /// address holds; every other value at its trigger. A candidate found later that starts
    /// before `p` comes from a trigger after the body, as the prefix holds no digit, and so
    /// ends after the body. So when the secret is not chosen, what is chosen instead covers
    /// the whole body, and in either case no candidate that starts in it is chosen.
    fn on_secret(
        &self,
        h: &Hay<'_>,
        p: usize,
        format: usize,
        out: &mut Found<'_>,
    ) -> Option<Range<usize>> {
        let f = &secrets::FORMATS[format];
        if f.kind != Kind::PrivateKey && h.prev(p).is_some_and(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let clear = p >= out.floor && out.reach <= p && out.pending.is_empty();
        let parse = secret(h, p, f);
        out.add(h.b, p, p, Parser::Secret(format), parse);
        match parse {
            Ok(Some(end)) if clear && opaque_prefix(f) => Some(p + f.prefix.len()..end),
            _ => None,
        }
    }

    fn on_digit(&self, h: &Hay<'_>, t: usize, walk: &mut Ipv6Walk, out: &mut Found<'_>) -> usize {
        let k = self.kinds;
        let b = h.b;
        if Shape::starts_nothing(b, t) {
            // In percent-encoded text the escapes that follow start nothing either.
            return match t.checked_sub(1) {
                Some(p) if b[p] == b'%' => escapes_end(b, p).max(t + 1),
                _ => t + 1,
            };
        }
        let shape = Shape::of(h, t);
        if k.contains(Kind::CreditCard) && shape.card() {
            out.add(b, t, t, Parser::Card, card(h, t));
        }
        if k.contains(Kind::Ssn) && shape.ssn() {
            out.add(b, t, t, Parser::Ssn, ssn(h, t));
        }
        if k.contains(Kind::Phone) && shape.phone() {
            let (s, parse) = phone(h, t);
            out.add(b, s, t, Parser::Phone, parse);
        }
        if k.contains(Kind::IpAddress) {
            if shape.ipv4(h, t) {
                out.add(b, t, t, Parser::Ipv4, ipv4(h, t));
            }
            if shape.ipv6() {
                self.on_ipv6(h, t, walk, out);
            }
        }
        self.on_iban(h, t, out);
        // The shape has read the run already; the trigger loop goes on from its end.
        t + shape.run
    }

    /// The IPv6 address the digit at `t` may belong to, parsed once per address.
    // Always inlined, like [`Ipv6Walk::start`]: the trigger loop calls it for most digits.
    #[inline(always)]
    fn on_ipv6(&self, h: &Hay<'_>, t: usize, walk: &mut Ipv6Walk, out: &mut Found<'_>) {
        if !self.kinds.contains(Kind::IpAddress) {
            return;
        }
        let s = walk.start(h.b, t);
        let s = after_key(h.b, s, t).unwrap_or(s);
        // Inside a token the address is glued to a word: no need to call the parser.
        if walk.last != Some(s) {
            walk.last = Some(s);
            if !ipv6_glued(h, s) {
                out.add(h.b, s, t, Parser::Ipv6, ipv6(h, s));
            }
        }
    }

    /// An IBAN opens with two letters at the start of a word, then the digit at `t`.
    // Always inlined: the trigger loop calls it for every digit that starts a run.
    #[inline(always)]
    fn on_iban(&self, h: &Hay<'_>, t: usize, out: &mut Found<'_>) {
        let b = h.b;
        if self.kinds.contains(Kind::Iban)
            && t >= 2
            && b[t - 1].is_ascii_alphabetic()
            && b[t - 2].is_ascii_alphabetic()
            && !h.prev(t - 2).is_some_and(is_word)
        {
            out.add(b, t - 2, t, Parser::Iban, iban(h, t));
        }
    }
}

/// The shape of the digit run at `t`, which picks the parsers worth running: one left out would
/// answer "no match" whatever follows. A run that reaches the end of an unfinished window may
/// still take any length.
struct Shape {
    /// Digits in the run, counting at most 20.
    run: usize,
    next: Option<u8>,
    prev: Option<u8>,
    open: bool,
    first: u8,
    /// The left edge of a number (see [`num_left_ok`]).
    left_ok: bool,
}

impl Shape {
    #[inline(always)]
    fn of(h: &Hay<'_>, t: usize) -> Shape {
        let b = h.b;
        let mut run = 0;
        while run < 20 && b.get(t + run).is_some_and(|&c| is_digit(c)) {
            run += 1;
        }
        let next = b.get(t + run).copied();
        Shape {
            run,
            next,
            prev: h.prev(t),
            open: next.is_none() && !h.eof,
            first: b[t],
            left_ok: num_left_ok(h, t),
        }
    }

    /// Whether the run at `t` (after a byte that is neither a digit nor a word character) is
    /// one or two digits between bytes no number goes through, so that every test below fails
    /// or, for an IPv6 address, its parser finds nothing: a card, an SSN and an area code need
    /// three digits or more, a trunk prefix is a lone `1`, an IPv4 address needs a `.` after its
    /// first octet, an IPv6 address a `:` in the hex token the run starts (letters `A`–`F` may
    /// follow the digits, as in `%6E`), a phone opened by `+` or `(` that byte before it, and a
    /// token at the end of an unfinished window may still grow. Text such as `%5B%6E%20` or
    /// `at 5 pm` then costs a few tests per run instead of the whole shape.
    #[inline(always)]
    fn starts_nothing(b: &[u8], t: usize) -> bool {
        let run = if b.get(t + 1).is_some_and(|&c| is_digit(c)) {
            2
        } else {
            1
        };
        let (Some(&next), prev) = (b.get(t + run), t.checked_sub(1).map(|p| b[p])) else {
            return false;
        };
        // A third digit is a hex digit too.
        let goes_on = |c: u8| c == b'.' || ipv6_char(c);
        let opens = |c: u8| matches!(c, b'+' | b'(') || ipv6_char(c);
        if prev.is_some_and(opens) || (run == 1 && b[t] == b'1') {
            return false;
        }
        if !goes_on(next) {
            return true;
        }
        if is_digit(next) || !is(next, HEX) {
            return false;
        }
        // Letters of the hex token, looked at for a few bytes: a longer one takes the shape.
        let mut end = t + run + 1;
        while let Some(&c) = b.get(end) {
            if is_digit(c) || !is(c, HEX) || end == t + 4 {
                return !goes_on(c);
            }
            end += 1;
        }
        false
    }

    fn card(&self) -> bool {
        // Every issuer range starts with 2 to 6.
        self.left_ok
            && matches!(self.first, b'2'..=b'6')
            && (self.open
                || self.run >= 12
                || (self.run == 4 && matches!(self.next, Some(b' ' | b'-'))))
    }

    fn ssn(&self) -> bool {
        self.left_ok
            && (self.open
                || self.run == 9
                || (self.run == 3 && matches!(self.next, Some(b' ' | b'-'))))
    }

    fn phone(&self) -> bool {
        // `+` and `(` carry their own left edge (see [`phone`]). A North American area code
        // starts with 2 to 9; a trunk prefix is a lone 1.
        let opened = matches!(self.prev, Some(b'+' | b'('));
        let area = matches!(self.first, b'2'..=b'9');
        let trunk = self.first == b'1';
        opened
            || (self.left_ok
                && (area || trunk)
                && (self.open || (area && matches!(self.run, 3 | 10)) || (trunk && self.run == 1)))
    }

    fn ipv4(&self, h: &Hay<'_>, t: usize) -> bool {
        (self.open || (self.run <= 3 && self.next == Some(b'.'))) && ipv4_left_ok(h, t)
    }

    fn ipv6(&self) -> bool {
        let near = |c: Option<u8>| c.is_some_and(|c| c == b':' || is(c, HEX));
        self.open || near(self.prev) || near(self.next)
    }
}

/// Hands `sink` the candidates that start before `frontier`, leftmost first, each unless it
/// overlaps one taken before it. `Ok` with the end of the last one taken; `Err` with the end of
/// a private-key header, after which the block is to be dropped.
#[inline(never)]
fn resolve(
    frontier: usize,
    from: usize,
    state: &mut ScanState,
    sink: &mut dyn FnMut(Piece),
) -> Result<usize, usize> {
    let mut pos = from;
    let mut done = 0;
    for c in &state.found {
        if c.start >= frontier {
            break;
        }
        done += 1;
        if c.start < pos.max(state.last_end) || (c.after_group && state.last_end + 1 != c.start) {
            continue;
        }
        sink(Piece {
            range: c.start..c.end,
            replace: Some(c.kind),
        });
        pos = c.end;
        state.last_end = c.end;
        if c.kind == Kind::PrivateKey {
            // What was found after the header lies inside the block, or is found again once
            // the block has ended.
            state.found.clear();
            state.pending.clear();
            state.in_private_key = true;
            return Err(pos);
        }
    }
    state.found.drain(..done);
    Ok(pos)
}

/// Drops the private-key block that goes on at `from`: `Ok` with the end of its `END` line, or
/// `Err` with the frontier when the block goes on past the window.
#[cold]
#[inline(never)]
fn drop_key_block(
    h: &Hay<'_>,
    from: usize,
    state: &mut ScanState,
    sink: &mut dyn FnMut(Piece),
) -> Result<usize, usize> {
    let len = h.b.len();
    match pem_footer(h, from) {
        Ok(Some(footer)) => {
            sink(Piece {
                range: from..footer.end,
                replace: None,
            });
            state.last_end = footer.end;
            state.in_private_key = false;
            state.restart(footer.end);
            Ok(footer.end)
        }
        Ok(None) | Err(_) if h.eof => {
            sink(Piece {
                range: from..len,
                replace: None,
            });
            state.last_end = len;
            Err(len)
        }
        found => {
            // Keep enough to recognise an END line cut in two; drop the rest.
            let keep_from = match found {
                Err(at) => at,
                _ => floor_char_boundary(h.text, len.saturating_sub(8)),
            };
            let keep_from = keep_from.max(from);
            if keep_from > from {
                sink(Piece {
                    range: from..keep_from,
                    replace: None,
                });
                state.last_end = keep_from;
            }
            Err(keep_from)
        }
    }
}

/// The parse of the secret format `f` whose prefix is at `p`.
fn secret(h: &Hay<'_>, p: usize, f: &SecretFormat) -> Parse {
    match f.kind {
        Kind::Jwt => jwt(h, p),
        Kind::PrivateKey => pem_header(h, p),
        _ => token(h, p, f),
    }
}

/// A key of a well-known format: its prefix at `p`, then its body.
fn token(h: &Hay<'_>, p: usize, f: &SecretFormat) -> Parse {
    let body = p + f.prefix.len();
    if f.digit_first && !h.get(body)?.is_some_and(is_digit) {
        return Ok(None);
    }
    let e = h.run(body, f.max, Class::Body(f.body))?;
    let n = e - body;
    let glued = h.get(e)?.is_some_and(|c| c.is_ascii_alphanumeric());
    Ok((!glued && (f.min..=f.max).contains(&n)).then_some(e))
}

/// Whether the prefix of `f` holds no digit and a byte that no IPv6 address holds, and is not
/// that of a private key (see [`Engine::on_secret`]).
fn opaque_prefix(f: &SecretFormat) -> bool {
    let prefix = f.prefix.as_bytes();
    f.kind != Kind::PrivateKey
        && prefix.len() >= 3
        && !prefix.iter().any(|&c| is_digit(c))
        && prefix.iter().any(|&c| !ipv6_char(c))
}

/// What the bytes a stream has just added are made of: looked at once, for both
/// [`ScanState::may_skip`] and [`Engine::quick_scan`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delta {
    len: usize,
    /// The classes of its bytes, or-ed.
    classes: u8,
    /// One past its last byte that [`may_hold`] rejects, from its start; 0 when there is none.
    hold_end: usize,
}

impl Delta {
    #[inline(always)]
    pub(crate) fn of(new: &[u8]) -> Delta {
        let mut classes = 0;
        let mut hold_end = 0;
        for (k, &c) in new.iter().enumerate() {
            let class = CLASS[usize::from(c)];
            classes |= class;
            if class & HOLD == 0 {
                hold_end = k + 1;
            }
        }
        Delta {
            len: new.len(),
            classes,
            hold_end,
        }
    }
}

/// Whether a stream may have to hold `c` back at its tail (see [`Engine::scan`]).
#[inline]
pub(crate) fn may_hold(c: u8) -> bool {
    is(c, HOLD)
}

/// The end of the percent escapes (`%6E%6B%20`) from `p`, a `%`, that start nothing: no
/// trigger in them needs a look. Each escape is a hex token of two between `%` and a byte that
/// is neither a hex digit, `:` nor `.`, so its digits start nothing ([`Shape::starts_nothing`]
/// for a digit after the `%`; for one after a letter, no IBAN as no two letters lead to it, and
/// no IPv6 address as the token holds no `:`). A lone `1` (`%1F`) and an escape whose next
/// byte is not in the window yet are left to the trigger pass.
#[inline]
fn escapes_end(b: &[u8], mut p: usize) -> usize {
    while let [b'%', x, y, after, ..] = b[p..] {
        let trunk = x == b'1' && !is_digit(y);
        if !is(x, HEX) || !is(y, HEX) || trunk || after == b'.' || ipv6_char(after) {
            break;
        }
        p += 3;
    }
    p
}

/// Where the trigger pass goes on after the digit run from `i - 1`, glued to a letter that is
/// not a hex digit (or to `_`): the end of the run, or the end of its word when no later digit
/// run of the word starts anything.
///
/// Such a run has a word character before it, so it may only start an IPv6 address or an IBAN
/// (see [`Engine::triggers`]). An IBAN needs the two letters before the run to open the word,
/// and they do not: the glued run stands before them. The walk back of an address
/// ([`ipv6_start`]) stops at the letter before the glued run at the latest, a word character
/// that glues the address ([`ipv6_glued`]), and whatever [`Ipv6Walk`] remembers, the start it
/// gives is glued too. So these runs would only move the walk's state, which the next digit
/// after the word does not read when a byte that cannot be part of an address (not `:`) ends
/// the word. A word that reaches the end of an unfinished window is not skipped: the window
/// may grow it.
#[inline(always)]
fn glued_run_end(h: &Hay<'_>, i: usize) -> usize {
    let b = h.b;
    let mut e = i;
    while e < b.len() && is_digit(b[e]) {
        e += 1;
    }
    if !b.get(e).is_some_and(|&c| is(c, WORD)) {
        return e;
    }
    let w = e + alnum_run::<false, true, false>(&b[e..]);
    match b.get(w) {
        Some(&c) if c != b':' => w,
        None if h.eof => w,
        _ => e,
    }
}

/// Length of the run of ASCII letters and digits at the start of `b`, with `-`, `_` and `.` as
/// asked: word characters, base64url, the alphabets of token bodies. Eight bytes at a time.
#[inline(always)]
fn alnum_run<const DASH: bool, const UNDERSCORE: bool, const DOT: bool>(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const CASE: u64 = 0x2020_2020_2020_2020;
    // The high bit of every byte in `lo..=hi`, for bytes below 0x80: adding `0x80 - lo` sets it
    // from `lo` on, adding `0x7f - hi` from past `hi` on, and neither carries into the next byte.
    let within = |v: u64, lo: u8, hi: u8| {
        let from_lo = v + ONES * u64::from(0x80 - lo);
        let past_hi = v + ONES * u64::from(0x7f - hi);
        from_lo & !past_hi & HIGHS
    };
    let mut n = 0;
    while let Some(bytes) = b.get(n..n + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        let x = u64::from_le_bytes(word);
        let low = x & !HIGHS;
        // Setting 0x20 folds upper-case letters onto lower-case ones, and nothing else onto them.
        let mut inside = within(low, b'0', b'9') | within(low | CASE, b'a', b'z');
        if DASH {
            inside |= within(low, b'-', b'-');
        }
        if UNDERSCORE {
            inside |= within(low, b'_', b'_');
        }
        if DOT {
            inside |= within(low, b'.', b'.');
        }
        // Bytes of non-ASCII characters are outside.
        let outside = !inside & HIGHS | x & HIGHS;
        if outside != 0 {
            return n + (outside.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    let class = |c: u8| {
        c.is_ascii_alphanumeric()
            || (DASH && c == b'-')
            || (UNDERSCORE && c == b'_')
            || (DOT && c == b'.')
    };
    n + b[n..].iter().take_while(|&&c| class(c)).count()
}

/// Position of the next digit or `@` at or after `from`.
///
/// The next 32 bytes are tested eight at a time (dense text has a trigger every few words).
/// After them, the 32-byte blocks are written so the compiler vectorises them: prose without a
/// trigger costs one compare-and-or per byte.
#[inline]
fn next_trigger(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    let word_at = |i: usize| -> Option<u64> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(rest.get(i..i + 8)?);
        Some(trigger_bytes(u64::from_le_bytes(bytes)))
    };
    let found = |i: usize, triggers: u64| Some(from + i + (triggers.trailing_zeros() / 8) as usize);
    let mut i = 0;
    while i < 32 {
        match word_at(i) {
            Some(0) => i += 8,
            Some(triggers) => return found(i, triggers),
            None => break,
        }
    }
    if i == 32 {
        for block in rest[i..].chunks_exact(32) {
            let hit = block.iter().fold(false, |acc, &c| {
                acc | (c.wrapping_sub(b'0') < 10) | (c == b'@')
            });
            if hit {
                break;
            }
            i += 32;
        }
        while let Some(triggers) = word_at(i) {
            if triggers != 0 {
                return found(i, triggers);
            }
            i += 8;
        }
    }
    rest[i..]
        .iter()
        .position(|&c| is(c, TRIGGER))
        .map(|p| from + i + p)
}

/// The triggers of a text for the trigger loop, found 64 bytes at a time: in dense text (a
/// card's groups, an address's octets, the digits of a token) the loop asks for the next one
/// every few bytes, and a bit mask answers without looking at a byte again.
struct TriggerMap<'a> {
    b: &'a [u8],
    /// Bit `k` is set when `b[base + k]` is a digit or `@`.
    base: usize,
    bits: u64,
}

impl<'a> TriggerMap<'a> {
    /// The map of the block from `at`.
    fn at(b: &'a [u8], at: usize) -> TriggerMap<'a> {
        let bits = b.get(at..).map_or(0, trigger_bits);
        TriggerMap { b, base: at, bits }
    }

    /// Position of the next trigger at or after `from`, which is at or after the position the
    /// map was made at and never goes back.
    #[inline(always)]
    fn next(&mut self, mut from: usize) -> Option<usize> {
        loop {
            let off = from.wrapping_sub(self.base);
            if off < 64 {
                let bits = self.bits >> off;
                if bits != 0 {
                    return Some(from + bits.trailing_zeros() as usize);
                }
                from = self.base + 64;
            }
            if from >= self.b.len() {
                return None;
            }
            let mut bits = trigger_bits(&self.b[from..]);
            if bits == 0 && from + 64 < self.b.len() {
                // A long stretch without a trigger (prose between values): the block search
                // gets through it faster.
                from = next_trigger(self.b, from + 64)?;
                bits = trigger_bits(&self.b[from..]);
            }
            self.base = from;
            self.bits = bits;
        }
    }
}

/// Bit `k` set for every digit or `@` among the first 64 bytes of `b`.
#[inline]
fn trigger_bits(b: &[u8]) -> u64 {
    let word = |w: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        trigger_bits8(u64::from_le_bytes(bytes))
    };
    let mut bits = 0;
    if let Some(block) = b.get(..64) {
        for (k, w) in block.chunks_exact(8).enumerate() {
            bits |= word(w) << (8 * k);
        }
        return bits;
    }
    let mut words = b.chunks_exact(8);
    let mut k = 0;
    for w in &mut words {
        bits |= word(w) << k;
        k += 8;
    }
    for (j, &c) in words.remainder().iter().enumerate() {
        bits |= u64::from(is(c, TRIGGER)) << (k + j);
    }
    bits
}

/// Bit `k` set for every byte `k` of `x` (eight bytes, little-endian) that is a digit or `@`;
/// exact for every byte, unlike [`trigger_bytes`].
#[inline(always)]
fn trigger_bits8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOWS: u64 = !HIGHS;
    // A byte is below `n` (at most 0x80) when its high bit is clear and its low seven bits plus
    // `0x80 - n` do not reach it; no sum carries into the next byte.
    let below = |v: u64, n: u64| !(((v & LOWS) + ONES * (0x80 - n)) | v) & HIGHS;
    let hits = below(x ^ (ONES * u64::from(b'0')), 10) | below(x ^ (ONES * u64::from(b'@')), 1);
    // Gathers the high bit of byte `k` into bit `k`.
    ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The high bit of every byte of `x` (eight bytes, little-endian) that is a digit or `@`, exact
/// for the lowest one: a false bit can only stand above a true one, where a borrow reached.
#[inline(always)]
fn trigger_bytes(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bytes below `n`, lowest first: a byte at or above `n` neither borrows nor shows.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS;
    below(x ^ (ONES * u64::from(b'0')), 10) | below(x ^ (ONES * u64::from(b'@')), 1)
}

pub(crate) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight-bytes-at-a-time runs end where a byte-by-byte walk ends, for every alphabet.
    #[test]
    fn alnum_runs_agree_with_a_plain_walk() {
        const BYTES: &[u8] = b"09AZaz@[`{/:-_. \x00\x7f\x80\xc3\xa9\xff";
        fn plain(b: &[u8], extra: &[u8]) -> usize {
            b.iter()
                .take_while(|c| c.is_ascii_alphanumeric() || extra.contains(c))
                .count()
        }
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            crate::xorshift(&mut rng);
            let len = (rng % 40) as usize;
            let inside = 1 + (rng >> 8) % 30;
            let b: Vec<u8> = (0..len)
                .map(|k| {
                    let r = rng.rotate_left(k as u32 * 5) ^ (k as u64).wrapping_mul(0x9E37_79B9);
                    if r % inside == 0 {
                        BYTES[(r >> 16) as usize % BYTES.len()]
                    } else {
                        BYTES[(r >> 16) as usize % 6]
                    }
                })
                .collect();
            assert_eq!(
                alnum_run::<false, false, false>(&b),
                plain(&b, b""),
                "{b:?}"
            );
            assert_eq!(
                alnum_run::<true, false, false>(&b),
                plain(&b, b"-"),
                "{b:?}"
            );
            assert_eq!(
                alnum_run::<false, true, false>(&b),
                plain(&b, b"_"),
                "{b:?}"
            );
            assert_eq!(
                alnum_run::<true, true, false>(&b),
                plain(&b, b"-_"),
                "{b:?}"
            );
            assert_eq!(
                alnum_run::<true, true, true>(&b),
                plain(&b, b"-_."),
                "{b:?}"
            );
        }
        for c in 0..=255u8 {
            let b = [b'a', b'a', b'a', c, b'a', b'a', b'a', b'a', b'a'];
            assert_eq!(alnum_run::<true, true, true>(&b), plain(&b, b"-_."), "{c}");
            assert_eq!(alnum_run::<false, true, false>(&b), plain(&b, b"_"), "{c}");
        }
    }

    /// A random text of fewer than `max_len` bytes of `bytes`, whose first three (the triggers)
    /// come once in every 1 to `max_density` bytes; `rng` is advanced once.
    fn trigger_text(rng: &mut u64, bytes: &[u8], max_len: u64, max_density: u64) -> Vec<u8> {
        crate::xorshift(rng);
        let seed = *rng;
        let len = (seed % max_len) as usize;
        let density = 1 + (seed >> 8) % max_density;
        (0..len)
            .map(|k| {
                let r = seed.rotate_left(k as u32 * 7) ^ (k as u64).wrapping_mul(0x2545_F491);
                if r % density == 0 {
                    bytes[(r >> 16) as usize % 3]
                } else {
                    bytes[3 + (r >> 16) as usize % (bytes.len() - 3)]
                }
            })
            .collect()
    }

    /// The word-at-a-time and block searches find what a byte-by-byte search finds.
    #[test]
    fn next_trigger_agrees_with_a_plain_search() {
        const BYTES: &[u8] = b"09@/:;?A`az \xc3\xa9-";
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let b = trigger_text(&mut rng, BYTES, 90, 40);
            let len = b.len();
            for from in 0..=len {
                let plain = (from..len).find(|&i| b[i].is_ascii_digit() || b[i] == b'@');
                assert_eq!(next_trigger(&b, from), plain, "{b:?} from {from}");
            }
        }
    }

    /// The trigger map finds what a byte-by-byte search finds, from every position on.
    #[test]
    fn trigger_map_agrees_with_a_plain_search() {
        const BYTES: &[u8] = b"09@/:;?A`az \xc3\xa9-\x80\xff\x00";
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..5_000 {
            let b = trigger_text(&mut rng, BYTES, 300, 80);
            let len = b.len();
            let step = 1 + (rng >> 20) as usize % 5;
            let mut map = TriggerMap::at(&b, 0);
            for from in (0..=len).step_by(step) {
                let plain = (from..len).find(|&i| b[i].is_ascii_digit() || b[i] == b'@');
                assert_eq!(map.next(from), plain, "{b:?} from {from}");
            }
        }
        for c in 0..=255u8 {
            for k in 0..8 {
                let mut w = [b'a'; 8];
                w[k] = c;
                let want = u64::from(c.is_ascii_digit() || c == b'@') << k;
                assert_eq!(trigger_bits8(u64::from_le_bytes(w)), want, "{c} at {k}");
            }
        }
    }

    #[test]
    fn a_run_that_starts_nothing_passes_no_shape_test() {
        const BYTES: &[u8] = b"0123456789%+(:.-aEfBc g1x";
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut skipped = 0;
        for _ in 0..50_000 {
            crate::xorshift(&mut rng);
            let len = 1 + (rng % 8) as usize;
            let b: Vec<u8> = (0..len)
                .map(|k| BYTES[(rng >> (5 * k)) as usize % BYTES.len()])
                .collect();
            let text = std::str::from_utf8(&b).unwrap();
            for eof in [false, true] {
                let h = Hay::new(text, eof);
                for t in 0..len {
                    let starts_run = b[t].is_ascii_digit() && !h.prev(t).is_some_and(is_word);
                    if !starts_run || !Shape::starts_nothing(&b, t) {
                        continue;
                    }
                    skipped += 1;
                    let shape = Shape::of(&h, t);
                    assert!(
                        !(shape.card() || shape.ssn() || shape.phone() || shape.ipv4(&h, t)),
                        "{text:?} at {t}"
                    );
                    if shape.ipv6() {
                        let s = ipv6_start(&b, t);
                        assert!(matches!(ipv6(&h, s), Ok(None)), "{text:?} at {t}");
                    }
                }
            }
        }
        assert!(skipped > 10_000, "the case is exercised: {skipped}");
    }

    /// Every digit the trigger pass skips with [`escapes_end`] would have started nothing.
    #[test]
    fn percent_escapes_skipped_start_nothing() {
        const BYTES: &[u8] = b"%0123456789aEfBcx:.+( 1";
        const HEX_BYTES: &[u8] = b"0123456789aEfBc1";
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut skipped = 0;
        for _ in 0..50_000 {
            crate::xorshift(&mut rng);
            let len = 1 + (rng % 12) as usize;
            let mut b = Vec::with_capacity(3 * len);
            for _ in 0..len {
                crate::xorshift(&mut rng);
                if rng % 2 == 0 {
                    let pick = |k: u64| HEX_BYTES[(rng >> k) as usize % HEX_BYTES.len()];
                    b.extend([b'%', pick(9), pick(17)]);
                } else {
                    b.push(BYTES[(rng >> 7) as usize % BYTES.len()]);
                }
            }
            let len = b.len();
            let text = std::str::from_utf8(&b).unwrap();
            let h = Hay::new(text, false);
            for p in (0..len).filter(|&p| b[p] == b'%') {
                for t in p + 1..escapes_end(&b, p) {
                    let starts_run = b[t].is_ascii_digit() && !b[t - 1].is_ascii_digit();
                    if !starts_run {
                        continue;
                    }
                    skipped += 1;
                    if b[t - 1] == b'%' {
                        assert!(Shape::starts_nothing(&b, t), "{text:?} at {t}");
                    } else {
                        // After a letter: an IBAN needs two, an IPv6 address a `:`.
                        assert!(!b[t - 2].is_ascii_alphabetic(), "{text:?} at {t}");
                        let s = ipv6_start(&b, t);
                        assert!(matches!(ipv6(&h, s), Ok(None)), "{text:?} at {t}");
                    }
                }
            }
        }
        assert!(skipped > 5_000, "the case is exercised: {skipped}");
    }
}
