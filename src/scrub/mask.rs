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
#[derive(Default)]
pub struct Vault {
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
        self.values.iter().map(Vec::len).sum()
    }

    /// Whether the vault holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of `value` as a `kind` placeholder, assigning the next one if it is new.
    pub fn number(&mut self, kind: Kind, value: &str) -> u32 {
        let key = (kind, Value(Zeroizing::new(value.to_owned())));
        if let Some(&n) = self.numbers.get(&key) {
            return n;
        }
        let values = &mut self.values[kind as usize];
        values.push(Zeroizing::new(value.to_owned()));
        let n = u32::try_from(values.len()).unwrap_or(u32::MAX);
        self.numbers.insert(key, n);
        n
    }

    /// Numbers a private-key block by its header; the body arrives through [`Vault::extend_block`].
    /// Blocks are never shared: two keys may have the same header.
    fn open_block(&mut self, kind: Kind, header: &str) -> u32 {
        let values = &mut self.values[kind as usize];
        values.push(Zeroizing::new(header.to_owned()));
        self.open_block = Some(values.len() - 1);
        u32::try_from(values.len()).unwrap_or(u32::MAX)
    }

    fn extend_block(&mut self, text: &str) {
        if let Some(i) = self.open_block {
            if let Some(value) = self.values[Kind::PrivateKey as usize].get_mut(i) {
                value.push_str(text);
            }
        }
    }

    /// The original behind placeholder `n` of `kind`.
    pub fn get(&self, kind: Kind, n: u32) -> Option<&str> {
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        self.values[kind as usize].get(i).map(|v| v.as_str())
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
        Style::Mask | Style::Label => {
            out.push('[');
            out.push_str(kind.label());
            out.push(']');
        }
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
    if original.is_ascii() {
        // The common case (a card number), byte by byte.
        let b = original.as_bytes();
        let total = b.iter().filter(|c| c.is_ascii_alphanumeric()).count();
        let mut hide = if total >= KEEP_LAST_MIN {
            total - KEEP_LAST
        } else {
            total
        };
        out.reserve(b.len());
        out.extend(b.iter().map(|&c| {
            if hide > 0 && c.is_ascii_alphanumeric() {
                hide -= 1;
                '*'
            } else {
                char::from(c)
            }
        }));
        return;
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
