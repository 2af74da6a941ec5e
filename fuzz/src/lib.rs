//! Helpers shared by the fuzz targets: how an input chooses its cut points.
//!
//! An input is `[n, len_1, …, len_k, payload…]` with `k = n % 8 + 1`: the payload is cut into
//! pieces of `len_1`, `len_2`, … bytes, cycling. A length of zero makes an empty delta.

use std::ops::Range;
use std::sync::OnceLock;

use lethe::scrub::{Policy, Scrubber, Style};

/// The scrubber for `style` (`None`: the default policy), compiled once per process.
pub fn scrubber(style: Option<Style>) -> &'static Scrubber {
    static DEFAULT: OnceLock<Scrubber> = OnceLock::new();
    static PLACEHOLDER: OnceLock<Scrubber> = OnceLock::new();
    let (cell, policy) = match style {
        Some(Style::Placeholder) => (
            &PLACEHOLDER,
            Policy::default().with_style(Style::Placeholder),
        ),
        _ => (&DEFAULT, Policy::default()),
    };
    cell.get_or_init(|| match Scrubber::new(&policy) {
        Ok(s) => s,
        Err(e) => panic!("policy does not compile: {e}"),
    })
}

/// Splits `data` into its delta lengths and its payload; `None` if it is too short.
pub fn split(data: &[u8]) -> Option<(Vec<usize>, &[u8])> {
    let (&n, rest) = data.split_first()?;
    let k = usize::from(n % 8) + 1;
    if rest.len() < k {
        return None;
    }
    let (lens, payload) = rest.split_at(k);
    let mut lens: Vec<usize> = lens.iter().map(|&l| usize::from(l)).collect();
    if lens.iter().all(|&l| l == 0) {
        lens = vec![1];
    }
    Some((lens, payload))
}

/// Ranges covering `0..len` in order, of the given lengths (cycling), each end moved forward
/// until `boundary` accepts it.
pub fn cuts(len: usize, lens: &[usize], boundary: impl Fn(usize) -> bool) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for &l in lens.iter().cycle() {
        if at >= len {
            break;
        }
        let mut end = (at + l).min(len);
        while !boundary(end) {
            end += 1;
        }
        out.push(at..end);
        at = end;
    }
    out
}

/// `text` cut into deltas on character boundaries.
pub fn str_pieces<'a>(text: &'a str, lens: &[usize]) -> Vec<&'a str> {
    cuts(text.len(), lens, |i| text.is_char_boundary(i))
        .into_iter()
        .map(|r| &text[r])
        .collect()
}

/// `bytes` cut at arbitrary byte positions.
pub fn byte_pieces<'a>(bytes: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
    cuts(bytes.len(), lens, |_| true)
        .into_iter()
        .map(|r| &bytes[r])
        .collect()
}
