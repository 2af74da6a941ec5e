//! Putting originals back: placeholders (`[EMAIL_1]`) in a response become the values the vault
//! holds for them. Placeholders the vault does not know are left as they are.
//!
//! Placeholders are not secret and not escaped: a placeholder-shaped string that the client wrote
//! itself (`[EMAIL_1]`) is restored like one the scrubber wrote, to a value of the same request.
//!
//! The streaming restorer holds back at most one unfinished placeholder at the tail
//! ([`MAX_PLACEHOLDER`] bytes).

use std::borrow::Cow;

use zeroize::Zeroizing;

use super::{Kind, Vault};

/// Longest placeholder: `[PRIVATE_KEY_4294967295]`.
pub const MAX_PLACEHOLDER: usize = 1 + 11 + 1 + 10 + 1;

/// Parses a placeholder at the start of `s` (which starts with `[`): its kind, number and length.
/// `Err(())` means `s` ends while it may still become one.
fn placeholder(s: &[u8]) -> Result<Option<(Kind, u32, usize)>, ()> {
    let name_end = match s[1..]
        .iter()
        .position(|c| !(c.is_ascii_uppercase() || *c == b'_'))
    {
        Some(p) => 1 + p,
        None => {
            return if s.len() < MAX_PLACEHOLDER {
                Err(())
            } else {
                Ok(None)
            }
        }
    };
    let digits_end = match s[name_end..].iter().position(|c| !c.is_ascii_digit()) {
        Some(p) => name_end + p,
        None => {
            return if s.len() < MAX_PLACEHOLDER {
                Err(())
            } else {
                Ok(None)
            }
        }
    };
    if s[digits_end] != b']' || digits_end == name_end || name_end < 3 || s[name_end - 1] != b'_' {
        return Ok(None);
    }
    let label = &s[1..name_end - 1];
    let Some(kind) = Kind::ALL
        .into_iter()
        .find(|k| k.label().as_bytes() == label)
    else {
        return Ok(None);
    };
    let number = std::str::from_utf8(&s[name_end..digits_end])
        .ok()
        .and_then(|d| d.parse().ok());
    Ok(number.map(|n| (kind, n, digits_end + 1)))
}

/// Replaces known placeholders in `text`; `eof == false` stops before an unfinished one.
/// Returns how many bytes of `text` were consumed.
fn restore_into(text: &str, vault: &Vault, eof: bool, out: &mut String) -> usize {
    let b = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'[', &b[i..]) {
        let at = i + off;
        match placeholder(&b[at..]) {
            Ok(Some((kind, n, len))) => {
                if let Some(value) = vault.get(kind, n) {
                    out.push_str(&text[copied..at]);
                    out.push_str(value);
                    copied = at + len;
                }
                i = at + len;
            }
            Ok(None) => i = at + 1,
            Err(()) if eof => i = at + 1,
            Err(()) => {
                out.push_str(&text[copied..at]);
                return at;
            }
        }
    }
    out.push_str(&text[copied..]);
    text.len()
}

/// Replaces every placeholder of `vault` in `text` by its original.
pub fn restore<'a>(text: &'a str, vault: &Vault) -> Cow<'a, str> {
    if vault.is_empty() || !text.contains('[') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    restore_into(text, vault, true, &mut out);
    Cow::Owned(out)
}

/// Restores placeholders in a stream of deltas; a placeholder cut between deltas is held back.
#[derive(Default)]
pub struct StreamRestorer {
    held: Zeroizing<String>,
    out: Zeroizing<String>,
}

impl StreamRestorer {
    /// A restorer holding nothing.
    pub fn new() -> StreamRestorer {
        StreamRestorer::default()
    }

    /// Adds `delta` and returns the restored text that can be released now.
    pub fn push(&mut self, delta: &str, vault: &Vault) -> &str {
        self.run(delta, vault, false)
    }

    /// Ends the stream and returns what was held back.
    pub fn finish(&mut self, vault: &Vault) -> &str {
        self.run("", vault, true)
    }

    fn run(&mut self, delta: &str, vault: &Vault, eof: bool) -> &str {
        self.out.clear();
        self.held.push_str(delta);
        let used = restore_into(&self.held, vault, eof, &mut self.out);
        self.held.replace_range(..used, "");
        &self.out
    }
}
