//! Streaming: scrub text that arrives in deltas, releasing each byte as soon as it is decided.
//!
//! # Design
//!
//! A [`StreamScrubber`] keeps one buffer: up to [`CONTEXT`] bytes already released (left context
//! for the next candidates) followed by the bytes held back. Each [`StreamScrubber::push`] appends
//! the delta and scans again; the scan state remembers what earlier scans decided, so a push
//! looks only at its own bytes and at the parsers still waiting for text (see the `detect`
//! module), and releases everything before the scan's frontier. Released context is discarded
//! in blocks, so a push costs amortised O(delta). Text released unchanged is handed out from
//! the buffer itself; only a push that masks something builds its output apart.
//!
//! The output of a stream, concatenated, is byte for byte the output of [`Scrubber::scrub`] on
//! the concatenated input, whatever the cut points; what is held back never exceeds
//! [`HOLD_BOUND`](super::HOLD_BOUND) bytes. Both buffers are wiped when the stream is dropped.

use zeroize::Zeroizing;

use super::detect::{floor_char_boundary, Delta, ScanState, CONTEXT};
use super::{mask, Counts, Kind, Scrubber, Vault};

/// Released bytes kept before the buffer is compacted (amortises the move).
const COMPACT_AT: usize = 8 * 1024;

/// A scrubber for one stream of text (one choice, one content block).
pub struct StreamScrubber {
    scrubber: Scrubber,
    buf: Zeroizing<String>,
    /// `buf[..released]` has been released; the rest is held back.
    released: usize,
    state: ScanState,
    out: Zeroizing<String>,
    counts: Counts,
    finished: bool,
}

impl std::fmt::Debug for StreamScrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScrubber")
            .field("held_back", &self.held_back())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl StreamScrubber {
    pub(crate) fn new(scrubber: Scrubber) -> StreamScrubber {
        StreamScrubber {
            scrubber,
            buf: Zeroizing::new(String::new()),
            released: 0,
            state: ScanState::default(),
            out: Zeroizing::new(String::new()),
            counts: Counts::default(),
            finished: false,
        }
    }

    /// Adds `delta` and returns the text that is safe to release now (possibly empty).
    ///
    /// Placeholders, if the policy uses them, are numbered in `vault`.
    // Inlined into the caller: most pushes end at the skip, and the scan is out of line.
    #[inline]
    pub fn push(&mut self, delta: &str, vault: &mut Vault) -> &str {
        if self.finished {
            return "";
        }
        if self.released > COMPACT_AT + CONTEXT {
            self.compact();
        }
        self.buf.push_str(delta);
        let delta = Delta::of(delta.as_bytes());
        // A scan that could release nothing is left to the next push (see `may_skip`).
        if self.state.may_skip(&self.buf, self.released, delta) {
            return "";
        }
        self.scan(delta, vault)
    }

    /// Discards released text but the context the next candidates may need.
    #[cold]
    #[inline(never)]
    fn compact(&mut self) {
        let cut = floor_char_boundary(&self.buf, self.released - CONTEXT);
        self.buf.replace_range(..cut, "");
        self.released -= cut;
        self.state.shift(cut);
    }

    /// The scan of a push that may release something.
    #[inline(never)]
    fn scan(&mut self, delta: Delta, vault: &mut Vault) -> &str {
        let start = self.released;
        let quick = self
            .scrubber
            .engine()
            .quick_scan(&self.buf, start, &mut self.state, delta);
        if let Some(frontier) = quick {
            self.released = frontier;
            return &self.buf[start..frontier];
        }
        self.advance(false, vault)
    }

    /// Ends the stream and returns everything still held back, scrubbed.
    pub fn finish(&mut self, vault: &mut Vault) -> &str {
        if self.finished {
            return "";
        }
        self.finished = true;
        self.advance(true, vault)
    }

    /// Bytes received but not yet released.
    pub fn held_back(&self) -> usize {
        self.buf.len() - self.released
    }

    /// Detections released so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The general scan of a push that the quick scan could not do, and of the end of the stream.
    #[inline(never)]
    fn advance(&mut self, eof: bool, vault: &mut Vault) -> &str {
        let Self {
            scrubber,
            buf,
            released,
            state,
            out,
            counts,
            ..
        } = self;
        let text: &str = buf;
        let start = *released;
        let mut copied = start;
        let mut masked = false;
        let frontier = scrubber
            .engine()
            .scan(text, start, eof, state, &mut |piece| {
                if !masked {
                    masked = true;
                    out.clear();
                }
                out.push_str(&text[copied..piece.range.start]);
                copied = piece.range.end;
                match piece.replace {
                    Some(kind) => {
                        counts.bump(kind);
                        mask::write(kind, scrubber.style(kind), &text[piece.range], vault, out);
                    }
                    None => {
                        mask::dropped(scrubber.style(Kind::PrivateKey), &text[piece.range], vault)
                    }
                }
            });
        *released = frontier.max(copied);
        if !masked {
            return &buf[start..*released];
        }
        if frontier > copied {
            out.push_str(&text[copied..frontier]);
        }
        out
    }
}

/// Turns a byte stream into `&str` deltas, carrying a character cut between two reads.
#[derive(Default)]
pub struct Utf8Input {
    carry: Zeroizing<Vec<u8>>,
}

/// The input is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input is not valid UTF-8")]
pub struct InvalidUtf8;

impl Utf8Input {
    /// A decoder with nothing carried.
    pub fn new() -> Utf8Input {
        Utf8Input::default()
    }

    /// Decodes `bytes` after whatever was carried, calling `f` with the complete characters.
    pub fn feed(&mut self, bytes: &[u8], f: &mut dyn FnMut(&str)) -> Result<(), InvalidUtf8> {
        let mut input = bytes;
        if let Some(&lead) = self.carry.first() {
            let width = match lead {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return Err(InvalidUtf8),
            };
            let need = width - self.carry.len();
            if input.len() < need {
                self.carry.extend_from_slice(input);
                return std::str::from_utf8(&self.carry).map(|_| ()).or_else(|e| {
                    if e.error_len().is_some() {
                        Err(InvalidUtf8)
                    } else {
                        Ok(())
                    }
                });
            }
            self.carry.extend_from_slice(&input[..need]);
            f(std::str::from_utf8(&self.carry).map_err(|_| InvalidUtf8)?);
            self.carry.clear();
            input = &input[need..];
        }
        let (text, rest) = match std::str::from_utf8(input) {
            Ok(s) => (s, &[][..]),
            Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
            Err(e) => {
                let (good, rest) = input.split_at(e.valid_up_to());
                (std::str::from_utf8(good).map_err(|_| InvalidUtf8)?, rest)
            }
        };
        if !text.is_empty() {
            f(text);
        }
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    /// Ends the input: an error if a character was left incomplete.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            self.carry.clear();
            Err(InvalidUtf8)
        }
    }
}
