//! Response bodies: whole (scrubbed JSON, errors) or a scrubbed SSE stream.
//!
//! [`SseBody`] wraps the upstream body and does the streaming work as the client reads: each
//! upstream read is decoded into events, each event scrubbed and re-encoded, and the result sent
//! as soon as the upstream has nothing more ready. Nothing is buffered beyond what the upstream
//! has already delivered (at most 64 KiB of output per frame), one partial event and the
//! scrubbers' hold-back; nothing is ever held for time. When the client goes away hyper drops
//! the body, which drops the upstream body and so cancels the upstream request.
//!
//! The body also owns the stream's [`StreamMeter`]: it times the work done on upstream data
//! (never the waits), notes the first text and the hold-back, and records the stream when it
//! ends, fails or is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use super::events::EventScrubber;
use super::meter::{StreamEnd, StreamMeter};
use super::pool::UpstreamBody;
use super::sse::{self, Decoder, Item};

/// Output gathered from ready upstream data before a frame is handed to the client.
const COALESCE_MAX: usize = 64 * 1024;

/// Turns given back to the scheduler before scrubbed output is sent, see [`SseBody`].
type Turn = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every response body Lethe sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body sent in one piece.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// A scrubbed SSE stream over an upstream body.
pub struct SseBody {
    upstream: UpstreamBody,
    decoder: Decoder,
    events: EventScrubber,
    done: bool,
    meter: StreamMeter,
    /// Scrubbed output not yet handed to the client, and the turn it is waiting out.
    pending: Vec<u8>,
    turn: Option<Turn>,
}

impl SseBody {
    /// Streams `upstream` through `events`, recording into `meter`.
    pub fn new(
        upstream: UpstreamBody,
        decoder: Decoder,
        events: EventScrubber,
        meter: StreamMeter,
    ) -> SseBody {
        SseBody {
            upstream,
            decoder,
            events,
            done: false,
            meter,
            pending: Vec::new(),
            turn: None,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> bool {
        loop {
            match self.decoder.next() {
                Ok(Some(Item::Event(mut event))) => {
                    self.events.on_event(&mut event, out);
                    self.decoder.recycle(event);
                    // An event that could not be read has ended the stream.
                    if self.events.failed() {
                        return false;
                    }
                }
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

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        // A turn given back to the scheduler ends first.
        if let Some(turn) = this.turn.as_mut() {
            if turn.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.turn = None;
        }
        let mut out = std::mem::take(&mut this.pending);
        let mut delivered = false;
        // Everything the upstream has already delivered is processed before a frame goes out,
        // so a burst of events costs one write, not one per event. An HTTP/1.1 body reads its
        // own socket (see `pool`), so "nothing ready" means the socket has nothing. An HTTP/2
        // body is fed by its connection's task, so "nothing ready" right after data may only
        // mean that task has not run yet: the body then gives the scheduler a turn before
        // sending. Measured with tokio's multi-threaded scheduler on one core when HTTP/1.1
        // bodies were fed the same way: after one `yield_now` the next chunk of a burst had
        // arrived on no event, after two on every event; a turn is therefore two.
        // Nothing waits for time: a turn that brings nothing sends what is scrubbed at once.
        while !this.done && out.len() < COALESCE_MAX {
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending if out.is_empty() => return Poll::Pending,
                Poll::Pending if delivered && this.upstream.fed_by_another_task() => {
                    this.pending = out;
                    let mut turn: Turn = Box::pin(async {
                        tokio::task::yield_now().await;
                        tokio::task::yield_now().await;
                    });
                    // The first poll of a yield always schedules the task again and pends.
                    let _ = turn.as_mut().poll(cx);
                    this.turn = Some(turn);
                    return Poll::Pending;
                }
                Poll::Pending => break,
                Poll::Ready(Some(Ok(frame))) => {
                    delivered = true;
                    let work = this.meter.work_started();
                    if let Ok(data) = frame.into_data() {
                        this.decoder.push(&data);
                        // Scrubbed events are about as long as the provider's: room for them
                        // now, so that `out` is not grown (and the old copy wiped) event by
                        // event.
                        sse::reserve(&mut out, data.len() + data.len() / 4);
                        if !this.drain(&mut out) {
                            this.done = true;
                            this.meter.end(&this.events, StreamEnd::Failed);
                        }
                    }
                    this.meter.work_done(work);
                    this.meter.observe(&this.events);
                }
                Poll::Ready(Some(Err(_))) => {
                    this.events.on_error(&mut out);
                    this.done = true;
                    this.meter.end(&this.events, StreamEnd::Failed);
                }
                Poll::Ready(None) => {
                    let work = this.meter.work_started();
                    let clean = this.drain(&mut out) && this.decoder.finish().is_ok();
                    if clean {
                        this.events.on_end(&mut out);
                    } else {
                        this.events.on_error(&mut out);
                    }
                    this.done = true;
                    this.meter.work_done(work);
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
        self.done && self.pending.is_empty()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        // A no-op when the stream already ended; otherwise the client went away.
        self.meter.end(&self.events, StreamEnd::ClientClosed);
    }
}
