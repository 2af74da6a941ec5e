//! The scrubbing engine: finds PII and secrets in text and masks them, one-shot or streamed.
//!
//! # Design
//!
//! A [`Scrubber`] is compiled once from a [`Policy`] (which types, which masking style, which
//! operator dictionary) and shared read-only. Scanning is trigger driven: one vectorisable pass
//! looks for digits and `@`, one aho-corasick pass looks for secret prefixes (`sk-ant-`, `ghp_`,
//! `eyJ`, `-----BEGIN`, …) and, when configured, one for dictionary terms. Most prose has no
//! trigger at all and costs those passes only. Every trigger hands a few bytes to a small parser
//! that either confirms a candidate with its validator (Luhn, mod-97, SSN ranges, NANP, IP octets,
//! JWT header, key formats), rejects it, or says it needs to see more text.
//!
//! Overlapping candidates are resolved leftmost-first, then longest, so a result never depends on
//! the order in which detectors ran.
//!
//! # Invariants (checked by property tests and the fuzz target)
//!
//! * **Chunk invariance**: for every text and every way of cutting it into deltas, the
//!   concatenated output of [`StreamScrubber`] equals the output of [`Scrubber::scrub`].
//! * **Idempotence**: for the `mask` and `label` styles, scrubbing scrubbed text changes nothing
//!   when detected values stand apart (whitespace or punctuation between them); values glued
//!   into one token may resolve differently once a neighbour has become a label.
//! * **Bounded hold-back**: a stream holds back at most [`HOLD_BOUND`] bytes that it has not yet
//!   released, and only when they may still become part of a match. Text is never released on a
//!   timer, only when the text after it decides it.
//!
//! # Limitations
//!
//! Personal names, postal addresses and free-form identifiers are only found through an operator
//! dictionary. IPv6 addresses are found when they contain at least one decimal digit. Text inside
//! images or audio is out of reach. Dictionary matching folds ASCII case and the whole-term upper
//! and lower case forms; it does not implement full Unicode case folding.

mod detect;
mod dictionary;
mod mask;
mod restore;
mod search;
mod secrets;
mod stream;
pub(crate) mod validate;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

pub use mask::Vault;
pub use restore::{restore, StreamRestorer};
pub use stream::{StreamScrubber, Utf8Input};

use detect::Engine;

/// Most bytes a [`StreamScrubber`] or [`StreamRestorer`] ever holds back unreleased.
///
/// The longest finite pattern is a JWT, capped at 16 KiB; a candidate may also start up to 64
/// bytes (an e-mail local part) before the byte that triggered it. A private-key
/// block is not held: it is dropped as it streams, from its `BEGIN` line to its `END` line.
pub const HOLD_BOUND: usize = detect::JWT_MAX + detect::MAX_BACKTRACK + 64;

/// A type of sensitive data the scrubber recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Payment card numbers in issuer ranges, passing Luhn.
    CreditCard,
    /// US social security numbers.
    Ssn,
    /// E-mail addresses.
    Email,
    /// Telephone numbers (NANP and international `+CC`).
    Phone,
    /// IPv4 and IPv6 addresses.
    IpAddress,
    /// International bank account numbers, passing mod-97.
    Iban,
    /// Provider API keys and tokens with a well-known, exact format.
    ApiKey,
    /// JSON web tokens.
    Jwt,
    /// PEM private-key blocks.
    PrivateKey,
    /// Terms from the operator's dictionary.
    Dictionary,
}

impl Kind {
    /// Number of kinds.
    pub const COUNT: usize = 10;

    /// Every kind, in declaration order.
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::CreditCard,
        Kind::Ssn,
        Kind::Email,
        Kind::Phone,
        Kind::IpAddress,
        Kind::Iban,
        Kind::ApiKey,
        Kind::Jwt,
        Kind::PrivateKey,
        Kind::Dictionary,
    ];

    /// The snake_case name used in configuration, headers and metric tags.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::CreditCard => "credit_card",
            Kind::Ssn => "ssn",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::IpAddress => "ip_address",
            Kind::Iban => "iban",
            Kind::ApiKey => "api_key",
            Kind::Jwt => "jwt",
            Kind::PrivateKey => "private_key",
            Kind::Dictionary => "dictionary",
        }
    }

    /// The word inside a typed label (`[EMAIL]`) or a placeholder (`[EMAIL_1]`).
    pub const fn label(self) -> &'static str {
        match self {
            Kind::CreditCard => "CREDIT_CARD",
            Kind::Ssn => "SSN",
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::IpAddress => "IP_ADDRESS",
            Kind::Iban => "IBAN",
            Kind::ApiKey => "API_KEY",
            Kind::Jwt => "JWT",
            Kind::PrivateKey => "PRIVATE_KEY",
            Kind::Dictionary => "TERM",
        }
    }

    /// Parses a name as written by [`Kind::name`], ignoring ASCII case and surrounding blanks.
    pub fn from_name(name: &str) -> Option<Kind> {
        let name = name.trim();
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Position in [`Kind::ALL`], for per-kind arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The style used when the policy does not say otherwise: cards keep their last four digits,
    /// everything else becomes a typed label.
    pub const fn default_style(self) -> Style {
        match self {
            Kind::CreditCard => Style::Mask,
            _ => Style::Label,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Kind`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u16);

impl KindSet {
    /// No kind at all.
    pub const EMPTY: KindSet = KindSet(0);
    /// Every kind.
    pub const ALL: KindSet = KindSet((1 << Kind::COUNT) - 1);

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind as u16) != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= 1 << kind as u16;
    }

    /// The union of both sets.
    pub const fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// Parses a comma-separated list of kind names (`credit_card,email`); `all` means every kind.
    pub fn parse_list(list: &str) -> Result<KindSet, PolicyError> {
        let mut set = KindSet::EMPTY;
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("all") {
                set = KindSet::ALL;
            } else {
                set.insert(Kind::from_name(item).ok_or(PolicyError::UnknownKind)?);
            }
        }
        Ok(set)
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut set = KindSet::EMPTY;
        iter.into_iter().for_each(|k| set.insert(k));
        set
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How a detected value is written in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Style {
    /// Every letter and digit but the last four becomes `*`; separators stay
    /// (`****-****-****-1111`). Values with fewer than ten letters and digits are masked whole.
    Mask,
    /// A typed label: `[EMAIL]`.
    Label,
    /// A numbered placeholder (`[EMAIL_1]`) that a [`Vault`] can turn back into the original.
    Placeholder,
}

impl Style {
    /// Parses `mask`, `label` or `placeholder`, ignoring ASCII case.
    pub fn parse(name: &str) -> Option<Style> {
        match name.trim().to_ascii_lowercase().as_str() {
            "mask" => Some(Style::Mask),
            "label" => Some(Style::Label),
            "placeholder" => Some(Style::Placeholder),
            _ => None,
        }
    }

    /// The name accepted by [`Style::parse`].
    pub const fn name(self) -> &'static str {
        match self {
            Style::Mask => "mask",
            Style::Label => "label",
            Style::Placeholder => "placeholder",
        }
    }
}

/// Why a policy could not be compiled. Messages never include a dictionary term.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A name in a type list is not a known kind.
    #[error("unknown PII type (expected one of credit_card, ssn, email, phone, ip_address, iban, api_key, jwt, private_key, dictionary)")]
    UnknownKind,
    /// A dictionary term is empty, longer than the limit, or does not start and end with a
    /// letter or digit.
    #[error("a dictionary term is empty, longer than {max} bytes, or does not start and end with a letter or digit")]
    BadTerm {
        /// The longest term accepted, in bytes.
        max: usize,
    },
    /// A dictionary term would match the scrubber's own labels, breaking idempotence.
    #[error("a dictionary term collides with a label word such as EMAIL or TERM")]
    TermIsLabel,
    /// The dictionary automaton could not be built.
    #[error("the dictionary is too large to compile")]
    DictionaryTooLarge,
    /// The detectors could not be compiled.
    #[error("the detectors could not be compiled")]
    Build,
}

/// What to detect and how to mask it. Build it, then compile it once with [`Scrubber::new`].
#[derive(Clone)]
pub struct Policy {
    enabled: KindSet,
    styles: [Style; Kind::COUNT],
    terms: Vec<String>,
}

impl Default for Policy {
    /// Every kind on, cards masked, everything else labelled, no dictionary.
    fn default() -> Self {
        Policy {
            enabled: KindSet::ALL,
            styles: Kind::ALL.map(Kind::default_style),
            terms: Vec::new(),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("enabled", &self.enabled)
            .field("styles", &self.styles)
            .field("terms", &self.terms.len())
            .finish()
    }
}

impl Policy {
    /// Detect only `kinds`.
    pub fn with_kinds(mut self, kinds: KindSet) -> Self {
        self.enabled = kinds;
        self
    }

    /// Use `style` for every kind.
    pub fn with_style(mut self, style: Style) -> Self {
        self.styles = [style; Kind::COUNT];
        self
    }

    /// Use `style` for `kind`.
    pub fn with_kind_style(mut self, kind: Kind, style: Style) -> Self {
        self.styles[kind.index()] = style;
        self
    }

    /// Adds operator dictionary terms, matched as whole words ignoring case.
    pub fn with_terms<I, S>(mut self, terms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.terms.extend(terms.into_iter().map(Into::into));
        self
    }

    /// The kinds this policy detects.
    pub fn kinds(&self) -> KindSet {
        self.enabled
    }

    /// The style used for `kind`.
    pub fn style(&self, kind: Kind) -> Style {
        self.styles[kind.index()]
    }
}

/// Detections per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts([u32; Kind::COUNT]);

impl Counts {
    /// Detections of `kind`.
    pub fn get(&self, kind: Kind) -> u32 {
        self.0[kind.index()]
    }

    /// Total detections.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// Kinds with at least one detection, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (Kind, u32)> + '_ {
        Kind::ALL
            .into_iter()
            .map(|k| (k, self.get(k)))
            .filter(|(_, n)| *n > 0)
    }

    /// Adds every count of `other`.
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    fn bump(&mut self, kind: Kind) {
        let n = &mut self.0[kind.index()];
        *n = n.saturating_add(1);
    }
}

/// The result of a one-shot scrub.
#[derive(Debug)]
pub struct Scrubbed<'a> {
    /// The scrubbed text, borrowed from the input when nothing matched.
    pub text: Cow<'a, str>,
    /// What was found.
    pub counts: Counts,
}

/// One detection: its kind and its byte range in the scanned text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// Where, as a byte range of the input.
    pub range: Range<usize>,
}

/// A compiled policy, built once. Cloning is cheap (a reference count): every clone and every
/// stream shares the compiled automata. `Send + Sync`.
#[derive(Clone)]
pub struct Scrubber {
    inner: Arc<Compiled>,
}

struct Compiled {
    engine: Engine,
    styles: [Style; Kind::COUNT],
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("kinds", &self.inner.engine.kinds())
            .field("styles", &self.inner.styles)
            .finish_non_exhaustive()
    }
}

impl Scrubber {
    /// Compiles `policy`.
    pub fn new(policy: &Policy) -> Result<Scrubber, PolicyError> {
        Ok(Scrubber {
            inner: Arc::new(Compiled {
                engine: Engine::new(policy.enabled, &policy.terms)?,
                styles: policy.styles,
            }),
        })
    }

    /// The kinds this scrubber detects.
    pub fn kinds(&self) -> KindSet {
        self.inner.engine.kinds()
    }

    /// The style this scrubber uses for `kind`.
    pub fn style(&self, kind: Kind) -> Style {
        self.inner.styles[kind.index()]
    }

    /// Whether the policy has dictionary terms (which may be any word).
    pub fn has_dictionary(&self) -> bool {
        self.inner.engine.has_dictionary()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Scrubs `text` in one go. Placeholders, if the policy uses them, are numbered within this
    /// call only; use [`Scrubber::scrub_in`] to share numbering and restore them later.
    pub fn scrub<'a>(&self, text: &'a str) -> Scrubbed<'a> {
        self.scrub_in(text, &mut Vault::new())
    }

    /// Scrubs `text` in one go, numbering placeholders in `vault`.
    pub fn scrub_in<'a>(&self, text: &'a str, vault: &mut Vault) -> Scrubbed<'a> {
        let mut counts = Counts::default();
        if self.engine().finds_nothing(text) {
            return Scrubbed {
                text: Cow::Borrowed(text),
                counts,
            };
        }
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut state = detect::ScanState::default();
        let end = self.engine().scan(text, 0, true, &mut state, &mut |piece| {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[copied..piece.range.start]);
            copied = piece.range.end;
            match piece.replace {
                Some(kind) => {
                    counts.bump(kind);
                    mask::write(kind, self.style(kind), &text[piece.range], vault, buf);
                }
                None => mask::dropped(self.style(Kind::PrivateKey), &text[piece.range], vault),
            }
        });
        debug_assert_eq!(end, text.len());
        let text = match out {
            None => Cow::Borrowed(text),
            Some(mut buf) => {
                buf.push_str(&text[copied..]);
                Cow::Owned(buf)
            }
        };
        Scrubbed { text, counts }
    }

    /// Where the detections in `text` are, without masking anything. A private-key block is
    /// reported as one finding from its `BEGIN` line to the end of its `END` line.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut found: Vec<Finding> = Vec::new();
        let mut state = detect::ScanState::default();
        self.engine()
            .scan(
                text,
                0,
                true,
                &mut state,
                &mut |piece| match (piece.replace, found.last_mut()) {
                    (Some(kind), _) => found.push(Finding {
                        kind,
                        range: piece.range,
                    }),
                    (None, Some(last)) if last.range.end == piece.range.start => {
                        last.range.end = piece.range.end;
                    }
                    (None, _) => {}
                },
            );
        found
    }

    /// Starts a stream: feed it deltas with [`StreamScrubber::push`].
    pub fn stream(&self) -> StreamScrubber {
        StreamScrubber::new(self.clone())
    }
}

#[cfg(test)]
mod tests;
