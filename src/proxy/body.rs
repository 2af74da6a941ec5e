//! Response bodies: whole (scrubbed JSON, errors) or a scrubbed SSE stream.
//!
//! [`SseBody`] wraps the upstream body and does the streaming work as the client reads: each
//! upstream read is decoded into events, each event scrubbed and re-encoded, and the result sent
//! at once. Nothing is buffered beyond one event plus the scrubbers' hold-back. When the client
//! goes away hyper drops the body, which drops the upstream body and so cancels the upstream
//! request.
//!
//! The body also owns the stream's [`StreamMeter`]: it times the work done on upstream data
//! (never the waits), notes the first text and the hold-back, and records the stream when it
//! ends, fails or is dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use super::events::EventScrubber;
use super::meter::{StreamEnd, StreamMeter};
use super::sse::{Decoder, Item};

/// Output gathered from ready upstream data before a frame is handed to the client.
const COALESCE_MAX: usize = 64 * 1024;

/// Every response body Lethe sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body sent in one piece.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// A scrubbed SSE stream over an upstream body `B`.
pub struct SseBody<B> {
    upstream: B,
    decoder: Decoder,
    events: EventScrubber,
    done: bool,
    meter: StreamMeter,
}

impl<B> SseBody<B> {
    /// Streams `upstream` through `events`, recording into `meter`.
    pub fn new(
        upstream: B,
        decoder: Decoder,
        events: EventScrubber,
        meter: StreamMeter,
    ) -> SseBody<B> {
        SseBody {
            upstream,
            decoder,
            events,
            done: false,
            meter,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> bool {
        loop {
            match self.decoder.next() {
                Ok(Some(Item::Event(event))) => self.events.on_event(event, out),
                Ok(Some(Item::Comment)) => {}
                Ok(None) => return true,
                Err(_) => {
                    self.events.on_error(out);
                    return false;
                }
            }
        }
    }
}

impl<B> Body for SseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let mut out = Vec::new();
        // Everything the upstream has already delivered is processed before a frame goes out,
        // so a burst of events costs one write, not one per event. Nothing waits for more: as
        // soon as the upstream has nothing ready, what is scrubbed is sent.
        while !this.done && out.len() < COALESCE_MAX {
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending if out.is_empty() => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(Some(Ok(frame))) => {
                    let work = Instant::now();
                    if let Ok(data) = frame.into_data() {
                        this.decoder.push(&data);
                        if !this.drain(&mut out) {
                            this.done = true;
                            this.meter.end(&this.events, StreamEnd::Failed);
                        }
                    }
                    this.meter.busy(work.elapsed());
                    this.meter.observe(&this.events);
                }
                Poll::Ready(Some(Err(_))) => {
                    this.events.on_error(&mut out);
                    this.done = true;
                    this.meter.end(&this.events, StreamEnd::Failed);
                }
                Poll::Ready(None) => {
                    let work = Instant::now();
                    let clean = this.drain(&mut out) && this.decoder.finish().is_ok();
                    if clean {
                        this.events.on_end(&mut out);
                    } else {
                        this.events.on_error(&mut out);
                    }
                    this.done = true;
                    this.meter.busy(work.elapsed());
                    let how = if clean {
                        StreamEnd::Complete
                    } else {
                        StreamEnd::Failed
                    };
                    this.meter.end(&this.events, how);
                }
            }
        }
        if out.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl<B> Drop for SseBody<B> {
    fn drop(&mut self) {
        // A no-op when the stream already ended; otherwise the client went away.
        self.meter.end(&self.events, StreamEnd::ClientClosed);
    }
}
