//! One request's metrics: timings, tokens, cost and detections, recorded once when it ends.
//!
//! # Design
//! [`Proxy::handle`](super::Proxy::handle) starts a [`Meter`]; forwarding fills in the route,
//! the model tag, the upstream's time to first byte and every other wait on the upstream; the
//! answer adds tokens and detections. A JSON answer is recorded when `handle` returns it; a
//! stream hands a copy to its body ([`StreamMeter`]), which records when the stream ends, fails
//! or is dropped by the client. Every value is a number or a tag from a closed set (see
//! [`crate::metrics`]); a meter holds no text.
//!
//! `X-Logging-Level: error` limits a request to the [`ERRORS`] counter.
//!
//! Without a recorder (no `[statsd]`) nothing is recorded, so a meter reads no clock, reads
//! no usage and allocates nothing: its timings are `None`.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::events::EventScrubber;
use super::usage::{Price, Usage};
use crate::metrics::{
    self, config_tag, count, tag, timing, Direction, ErrorKind, StatusClass, Tags, COST_MICRO_USD,
    DETECTIONS, ERRORS, HELD_BACK_BYTES, OVERHEAD_US, REQUESTS, REQUEST_DURATION,
    STREAM_TOKENS_PER_SECOND, STREAM_TTFT, TOKENS_INPUT, TOKENS_OUTPUT, TOKENS_TOTAL,
    UPSTREAM_TTFB,
};
use crate::scrub::Counts;

/// The tag value before a route or model is known, shared rather than allocated per request.
static NO_ROUTE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(metrics::NO_ROUTE));

/// The time now, when metrics are on.
fn clock() -> Option<Instant> {
    metrics::enabled().then(Instant::now)
}

/// The time since `start`; zero without a clock.
fn since(start: Option<Instant>) -> Duration {
    start.map_or(Duration::ZERO, |start| start.elapsed())
}

/// What one request has measured so far.
#[derive(Clone)]
pub struct Meter {
    /// When the request came in (`None` when metrics are off, as are all times below).
    start: Option<Instant>,
    endpoint: &'static str,
    route: Arc<str>,
    model: Arc<str>,
    price: Option<Price>,
    attribution: Tags,
    errors_only: bool,
    /// Time from sending upstream to the response headers.
    ttfb: Option<Duration>,
    /// Every wait on the upstream (headers and body).
    upstream_wait: Duration,
    error: Option<ErrorKind>,
    usage: Usage,
    request_counts: Counts,
    response_counts: Counts,
    /// A stream took over the recording.
    handed_off: bool,
}

impl Meter {
    /// Starts measuring a request to `endpoint` (its tag value).
    pub fn start(endpoint: &'static str, errors_only: bool, attribution: Tags) -> Meter {
        Meter {
            start: clock(),
            endpoint,
            route: NO_ROUTE.clone(),
            model: NO_ROUTE.clone(),
            price: None,
            attribution,
            errors_only,
            ttfb: None,
            upstream_wait: Duration::ZERO,
            error: None,
            usage: Usage::default(),
            request_counts: Counts::default(),
            response_counts: Counts::default(),
            handed_off: false,
        }
    }

    /// The model tag and its price, if the table has one, read by `read` only when metrics
    /// are on.
    pub fn set_model(&mut self, read: impl FnOnce() -> (Arc<str>, Option<Price>)) {
        if metrics::enabled() {
            (self.model, self.price) = read();
        }
    }

    /// The route that answered (its configured name).
    pub fn set_route(&mut self, name: &str) {
        if metrics::enabled() {
            self.route = Arc::from(name);
        }
    }

    /// Starts a wait on the upstream: pass the result to [`Meter::upstream_answered`] or
    /// [`Meter::upstream_waited`].
    pub fn wait_started(&self) -> Option<Instant> {
        clock()
    }

    /// The upstream answered with headers: the wait begun at `sent` was its time to first byte.
    pub fn upstream_answered(&mut self, sent: Option<Instant>) {
        let ttfb = since(sent);
        self.ttfb = sent.map(|_| ttfb);
        self.upstream_wait += ttfb;
    }

    /// A wait on the upstream begun at `started` has ended.
    pub fn upstream_waited(&mut self, started: Option<Instant>) {
        self.upstream_wait += since(started);
    }

    /// Detections on the way out (request) or back (response), kept only when metrics are on.
    pub fn detected(&mut self, direction: Direction, counts: &Counts) {
        if !metrics::enabled() {
            return;
        }
        match direction {
            Direction::Request => self.request_counts.add(counts),
            Direction::Response => self.response_counts.add(counts),
        }
    }

    /// The usage of a JSON answer, read by `read` only when metrics are on.
    pub fn usage(&mut self, read: impl FnOnce() -> Usage) {
        if metrics::enabled() {
            self.usage = read();
        }
    }

    /// The request failed with `kind` (recorded when it finishes).
    pub fn failed(&mut self, kind: ErrorKind) {
        self.error = Some(kind);
    }

    /// Hands the recording to a stream.
    pub fn for_stream(&mut self, status: StatusCode) -> StreamMeter {
        self.handed_off = true;
        let mut meter = self.clone();
        meter.handed_off = false;
        metrics::STREAMS.up();
        StreamMeter {
            overhead_before: since(self.start).saturating_sub(self.upstream_wait),
            meter,
            status,
            busy: Duration::ZERO,
            first_text: None,
            held_peak: 0,
            ended: false,
        }
    }

    /// Records a request answered with `status` (unless a stream took over).
    pub fn finish(self, status: StatusCode) {
        if self.handed_off {
            return;
        }
        let overhead = since(self.start).saturating_sub(self.upstream_wait);
        self.record(status, overhead, None);
    }

    fn route_endpoint(&self) -> Tags {
        vec![
            config_tag("route", &self.route),
            tag("endpoint", self.endpoint),
        ]
    }

    fn with_model(&self, attribution: bool) -> Tags {
        let mut tags = self.route_endpoint();
        tags.push(config_tag("model", &self.model));
        if attribution {
            tags.extend(self.attribution.iter().cloned());
        }
        tags
    }

    fn record(&self, status: StatusCode, overhead: Duration, stream: Option<&StreamMeter>) {
        if !metrics::enabled() {
            return;
        }
        let error = self.error.or_else(|| ErrorKind::of_upstream(status));
        if let Some(kind) = error {
            let mut tags = vec![tag("kind", kind.as_str())];
            tags.extend(self.route_endpoint());
            count(ERRORS, 1, tags);
        }
        if self.errors_only {
            return;
        }
        let class = StatusClass::of(status).as_str();
        let mut tags = self.with_model(true);
        tags.insert(2, tag("status", class));
        count(REQUESTS, 1, tags);
        let mut tags = self.route_endpoint();
        tags.push(tag("status", class));
        timing(REQUEST_DURATION, millis(since(self.start)), tags);
        if let Some(ttfb) = self.ttfb {
            timing(UPSTREAM_TTFB, millis(ttfb), self.route_endpoint());
        }
        timing(OVERHEAD_US, micros(overhead), self.route_endpoint());
        for (direction, counts) in [
            (Direction::Request, &self.request_counts),
            (Direction::Response, &self.response_counts),
        ] {
            for (kind, n) in counts.iter() {
                count(
                    DETECTIONS,
                    u64::from(n),
                    vec![
                        tag("type", kind.name()),
                        tag("direction", direction.as_str()),
                    ],
                );
            }
        }
        if !self.usage.is_empty() {
            count(TOKENS_INPUT, self.usage.input, self.with_model(true));
            count(TOKENS_OUTPUT, self.usage.output, self.with_model(true));
            count(TOKENS_TOTAL, self.usage.total(), self.with_model(true));
            if let Some(price) = self.price {
                count(
                    COST_MICRO_USD,
                    price.micro_usd(&self.usage),
                    self.with_model(true),
                );
            }
        }
        if let Some(stream) = stream {
            timing(
                HELD_BACK_BYTES,
                stream.held_peak as u64,
                self.route_endpoint(),
            );
            if let (Some(first), Some(start)) = (stream.first_text, self.start) {
                timing(
                    STREAM_TTFT,
                    millis(first.duration_since(start)),
                    self.with_model(false),
                );
                let generating = first.elapsed().as_secs_f64();
                if self.usage.output > 0 && generating > 0.0 {
                    let rate = (self.usage.output as f64 / generating).round() as u64;
                    timing(STREAM_TOKENS_PER_SECOND, rate, self.with_model(false));
                }
            }
        }
    }
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream finished cleanly.
    Complete,
    /// The upstream broke off or sent what cannot be decoded.
    Failed,
    /// The client went away first.
    ClientClosed,
}

/// A stream's share of the recording, owned by its body.
pub struct StreamMeter {
    meter: Meter,
    status: StatusCode,
    /// Lethe's time before the stream started (upstream waits excluded).
    overhead_before: Duration,
    /// Time spent decoding, scrubbing and re-encoding events.
    busy: Duration,
    first_text: Option<Instant>,
    held_peak: usize,
    ended: bool,
}

impl StreamMeter {
    /// Starts timing work on upstream data; `None` (no clock read) when metrics are off.
    pub fn work_started(&self) -> Option<Instant> {
        clock()
    }

    /// Work on upstream data (not waiting for it) that began at `started` has ended.
    pub fn work_done(&mut self, started: Option<Instant>) {
        self.busy += since(started);
    }

    /// Looks at the scrubber after a batch of events: first text, hold-back.
    pub fn observe(&mut self, events: &EventScrubber) {
        if !metrics::enabled() {
            return;
        }
        if self.first_text.is_none() && events.text_started() {
            self.first_text = Some(Instant::now());
        }
        self.held_peak = self.held_peak.max(events.held_back());
    }

    /// Records the stream, once.
    pub fn end(&mut self, events: &EventScrubber, how: StreamEnd) {
        if self.ended {
            return;
        }
        self.ended = true;
        metrics::STREAMS.down();
        self.observe(events);
        let mut meter = self.meter.clone();
        meter.usage = events.usage();
        meter.detected(Direction::Response, &events.counts());
        match how {
            StreamEnd::Complete => {}
            StreamEnd::Failed => meter.error = Some(ErrorKind::StreamFailed),
            StreamEnd::ClientClosed => meter.error = Some(ErrorKind::ClientClosed),
        }
        let overhead = self.overhead_before + self.busy;
        meter.record(self.status, overhead, Some(self));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
