//! The response body: a queue of pre-rendered events, released under the timing controls.
//!
//! Without controls every event is handed to hyper at once (fast path for benchmarks). The
//! controls slice events into pieces, pause between them (a pause is what makes hyper flush, so
//! every piece becomes its own write) and can end the body with an error, which makes hyper drop
//! the connection (HTTP/1.1) or reset the stream (HTTP/2) before the body is complete.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// How long a failing body waits before it errors, so what was sent so far gets flushed first.
const FLUSH_GRACE: Duration = Duration::from_millis(5);

/// Timing controls taken from the request headers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pacing {
    /// Largest piece handed to hyper at once (`x-mock-write-bytes`).
    pub write_bytes: Option<usize>,
    /// Pause between pieces (`x-mock-write-delay-us`).
    pub write_delay: Option<Duration>,
    /// Pause between events (`x-mock-event-delay-ms`).
    pub event_delay: Option<Duration>,
    /// Abort once this many body bytes went out (`x-mock-fail-after-bytes`).
    pub fail_after: Option<u64>,
}

/// The error a deliberately aborted body ends with.
#[derive(Debug)]
pub(crate) struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock provider aborted the response on purpose")
    }
}

impl std::error::Error for Aborted {}

/// What to do before the next piece.
enum Pause {
    None,
    /// Return `Pending` once (after waking ourselves) so hyper flushes what it holds.
    Yield,
    Sleep(Pin<Box<Sleep>>),
}

/// A response body made of events, paced by [`Pacing`].
pub(crate) struct MockBody {
    events: VecDeque<Bytes>,
    current: Bytes,
    exact_len: Option<u64>,
    sent: u64,
    any_sent: bool,
    pacing: Pacing,
    pause: Pause,
    failing: bool,
}

impl MockBody {
    /// A body of one or more events; `exact` sets a content-length (non-streamed bodies).
    pub(crate) fn new(events: Vec<Bytes>, exact: bool, pacing: Pacing) -> Self {
        let exact_len = exact.then(|| events.iter().map(|e| e.len() as u64).sum());
        Self {
            events: events.into(),
            current: Bytes::new(),
            exact_len,
            sent: 0,
            any_sent: false,
            pacing,
            // With write controls, let the headers go out on their own before the first piece.
            pause: if pacing.write_bytes.is_some() || pacing.write_delay.is_some() {
                Pause::Yield
            } else {
                Pause::None
            },
            failing: false,
        }
    }

    /// Whether the configured failure point has been reached.
    fn fail_due(&self) -> bool {
        self.failing
            || self
                .pacing
                .fail_after
                .is_some_and(|limit| self.sent >= limit)
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let this = self.get_mut();
        loop {
            match &mut this.pause {
                Pause::None => {}
                Pause::Yield => {
                    this.pause = Pause::None;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Pause::Sleep(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.pause = Pause::None;
                }
            }
            if this.failing {
                return Poll::Ready(Some(Err(Aborted)));
            }
            if this.fail_due() {
                this.failing = true;
                this.pause = Pause::Sleep(Box::pin(tokio::time::sleep(FLUSH_GRACE)));
                continue;
            }
            if this.current.is_empty() {
                let Some(next) = this.events.pop_front() else {
                    return Poll::Ready(None);
                };
                this.current = next;
                if let (true, Some(delay)) = (this.any_sent, this.pacing.event_delay) {
                    this.pause = Pause::Sleep(Box::pin(tokio::time::sleep(delay)));
                }
                continue;
            }
            let mut n = this.current.len();
            if let Some(w) = this.pacing.write_bytes {
                n = n.min(w.max(1));
            }
            if let Some(limit) = this.pacing.fail_after {
                n = n.min(usize::try_from(limit - this.sent).unwrap_or(usize::MAX));
            }
            let piece = this.current.split_to(n);
            this.sent += n as u64;
            this.any_sent = true;
            if this.pacing.write_bytes.is_some() || this.pacing.write_delay.is_some() {
                this.pause = match this.pacing.write_delay {
                    Some(d) if !d.is_zero() => Pause::Sleep(Box::pin(tokio::time::sleep(d))),
                    _ => Pause::Yield,
                };
            }
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_empty() && self.current.is_empty() && !self.fail_due()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(len) => SizeHint::with_exact(len - self.sent),
            None => SizeHint::default(),
        }
    }
}
