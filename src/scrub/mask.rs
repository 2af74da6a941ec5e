//! Writing a detected value in its place: partial mask, typed label or reversible placeholder.
//!
//! Placeholders are numbered per kind within one [`Vault`]: the same value gets the same number,
//! so a model that sees `[EMAIL_1]` twice knows it is one address. The vault is the only place the
//! originals live; every copy is wiped when the vault is dropped.

use std::collections::HashMap;
use std::fmt::Write as _;

use zeroize::Zeroizing;

use super::{Kind, Style};

/// Values kept with fewer letters and digits than this are masked whole.
const KEEP_LAST_MIN: usize = 10;
/// Letters and digits kept at the end of a long masked value.
const KEEP_LAST: usize = 4;

/// A value held by the vault, wiped on drop, hashed by its text.
#[derive(PartialEq, Eq)]
struct Value(Zeroizing<String>);

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

/// The value map of reversible placeholders for one scope (one request). Wiped on drop.
///
/// Its maps are made with the first value: most requests use no placeholder, and an empty vault
/// then costs nothing to make or to drop.
#[derive(Default)]
pub struct Vault {
    stored: Option<Box<Stored>>,
}

/// What a vault holds once a value came.
#[derive(Default)]
struct Stored {
    numbers: HashMap<(Kind, Value), u32>,
    values: [Vec<Zeroizing<String>>; Kind::COUNT],
    /// The private-key block still streaming in, as an index into its kind's values.
    open_block: Option<usize>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("len", &self.len()).finish()
    }
}

impl Vault {
    /// An empty vault.
    pub fn new() -> Vault {
        Vault::default()
    }

    /// How many distinct values the vault holds.
    pub fn len(&self) -> usize {
        self.stored
            .as_ref()
            .map_or(0, |stored| stored.values.iter().map(Vec::len).sum())
    }

    /// Whether the vault holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn stored(&mut self) -> &mut Stored {
        self.stored.get_or_insert_with(Box::default)
    }

    /// The number of `value` as a `kind` placeholder, assigning the next one if it is new.
    pub fn number(&mut self, kind: Kind, value: &str) -> u32 {
        let stored = self.stored();
        let key = (kind, Value(Zeroizing::new(value.to_owned())));
        if let Some(&n) = stored.numbers.get(&key) {
            return n;
        }
        let values = &mut stored.values[kind as usize];
        values.push(Zeroizing::new(value.to_owned()));
        let n = u32::try_from(values.len()).unwrap_or(u32::MAX);
        stored.numbers.insert(key, n);
        n
    }

    /// Numbers a private-key block by its header; the body arrives through [`Vault::extend_block`].
    /// Blocks are never shared: two keys may have the same header.
    fn open_block(&mut self, kind: Kind, header: &str) -> u32 {
        let stored = self.stored();
        let values = &mut stored.values[kind as usize];
        values.push(Zeroizing::new(header.to_owned()));
        stored.open_block = Some(values.len() - 1);
        u32::try_from(values.len()).unwrap_or(u32::MAX)
    }

    fn extend_block(&mut self, text: &str) {
        let Some(stored) = self.stored.as_mut() else {
            return;
        };
        if let Some(i) = stored.open_block {
            if let Some(value) = stored.values[Kind::PrivateKey as usize].get_mut(i) {
                value.push_str(text);
            }
        }
    }

    /// The original behind placeholder `n` of `kind`.
    pub fn get(&self, kind: Kind, n: u32) -> Option<&str> {
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        self.stored.as_ref()?.values[kind as usize]
            .get(i)
            .map(|v| v.as_str())
    }
}

/// Appends the replacement of `original`, a detected `kind`, to `out`.
pub(crate) fn write(kind: Kind, style: Style, original: &str, vault: &mut Vault, out: &mut String) {
    match style {
        Style::Placeholder => {
            let n = match kind {
                Kind::PrivateKey => vault.open_block(kind, original),
                _ => vault.number(kind, original),
            };
            // Writing to a String cannot fail.
            let _ = write!(out, "[{}_{}]", kind.label(), n);
        }
        Style::Mask if kind != Kind::PrivateKey => mask(original, out),
        Style::Mask | Style::Label => out.push_str(bracketed(kind)),
    }
}

/// The typed label of `kind` in its brackets (`[EMAIL]`), written with one copy.
fn bracketed(kind: Kind) -> &'static str {
    match kind {
        Kind::CreditCard => "[CREDIT_CARD]",
        Kind::Ssn => "[SSN]",
        Kind::Email => "[EMAIL]",
        Kind::Phone => "[PHONE]",
        Kind::IpAddress => "[IP_ADDRESS]",
        Kind::Iban => "[IBAN]",
        Kind::ApiKey => "[API_KEY]",
        Kind::Jwt => "[JWT]",
        Kind::PrivateKey => "[PRIVATE_KEY]",
        Kind::Dictionary => "[TERM]",
    }
}

/// Records text dropped inside a private-key block, so a placeholder can restore the whole block.
pub(crate) fn dropped(style: Style, text: &str, vault: &mut Vault) {
    if style == Style::Placeholder {
        vault.extend_block(text);
    }
}

/// `****-****-****-1111`: letters and digits become `*` but for the last four of a long value.
fn mask(original: &str, out: &mut String) {
    /// Longest value masked in a buffer on the stack; a card number with separators fits.
    const SHORT: usize = 64;
    let b = original.as_bytes();
    if b.len() <= SHORT && original.is_ascii() {
        // The common case (a card number), byte by byte: `is_alphanumeric` on an ASCII `char`
        // is `is_ascii_alphanumeric`. Every letter and digit is hidden, then the last four shown
        // again if the value is long enough.
        let mut buf = [0u8; SHORT];
        let mut total = 0;
        for (slot, &c) in buf.iter_mut().zip(b) {
            let hide = c.is_ascii_alphanumeric();
            total += usize::from(hide);
            *slot = if hide { b'*' } else { c };
        }
        let masked = &mut buf[..b.len()];
        if total >= KEEP_LAST_MIN {
            let mut show = KEEP_LAST;
            for (slot, &c) in masked.iter_mut().zip(b).rev() {
                if show == 0 {
                    break;
                }
                if c.is_ascii_alphanumeric() {
                    *slot = c;
                    show -= 1;
                }
            }
        }
        // ASCII in, ASCII out: always `Ok`.
        if let Ok(masked) = std::str::from_utf8(masked) {
            out.push_str(masked);
            return;
        }
    }
    let total = original.chars().filter(|c| c.is_alphanumeric()).count();
    let keep_from = if total >= KEEP_LAST_MIN {
        total - KEEP_LAST
    } else {
        total
    };
    let mut seen = 0;
    for c in original.chars() {
        if c.is_alphanumeric() {
            out.push(if seen >= keep_from { c } else { '*' });
            seen += 1;
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_labels_are_the_labels_in_brackets() {
        for kind in Kind::ALL {
            assert_eq!(bracketed(kind), format!("[{}]", kind.label()));
        }
    }

    #[test]
    fn masks_ascii_and_unicode_alike() {
        let cases = [
            ("4111 1111 1111 1111", "**** **** **** 1111"),
            ("4111111111111111", "************1111"),
            ("123-45-6789", "***-**-****"),
            ("12345", "*****"),
            ("", ""),
            ("müller@example.de", "******@*****le.de"),
        ];
        for (original, want) in cases {
            let mut out = String::new();
            mask(original, &mut out);
            assert_eq!(out, want, "{original}");
        }
        let long = "a".repeat(100) + "-1234";
        let mut out = String::new();
        mask(&long, &mut out);
        assert_eq!(out, "*".repeat(100) + "-1234");
    }
}
