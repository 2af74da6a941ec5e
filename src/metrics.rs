//! Metric names, tags and the StatsD exporter: the only thing Lethe emits about traffic.
//!
//! # Design
//! Every metric name is a constant below and every tag value comes from a closed set (an enum
//! with `as_str`) or from the operator's config (route names, model names the operator or the
//! built-in price table knows, allowed attribution values). Nothing a client writes reaches a
//! metric unless it equals one of those values or passes the attribution check
//! (`[a-z0-9_.-]{1,64}`, a capped number of distinct values per key).
//!
//! The exporter is `metrics-exporter-statsd` over cadence: each metric line is formatted on the
//! request's thread and pushed into a bounded queue ([`QUEUE_SIZE`] lines); one worker thread
//! writes the lines into a [`BUFFER_SIZE`]-byte buffer and sends it as one UDP datagram when it
//! is full; a second thread flushes a partly filled buffer every [`FLUSH_INTERVAL`]. The UDP
//! socket is non-blocking and connected to nothing: a StatsD that is dead, absent or slow costs
//! dropped lines, never a blocked request, and memory stays bounded by the queue and the buffer.
//! The socket, the threads and the address (resolved once) all exist before [`install`]
//! returns, so nothing is opened or resolved later.
//!
//! Timers are StatsD `ms` lines carrying whole numbers; the unit of each is in its name's
//! documentation (milliseconds unless the name ends in `_us`). Distributions that are not
//! durations (tokens per second, held-back bytes) are sent as timers too, so StatsD computes
//! their percentiles. Gauges are absolute values (StatsD has no increment for gauges).
//!
//! # Limitations
//! - UDP may drop lines under load; counters are then low, never high.
//! - With `tags = false` tags are not sent at all: plain StatsD then sees totals only.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink, SinkStats};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics::{SetRecorderError, Unit};
use metrics_exporter_statsd::StatsdBuilder;

use crate::proxy::error::ProxyError;

/// Counter: requests answered. Tags: `route`, `endpoint`, `status`, `model`, attribution.
pub const REQUESTS: &str = "requests";
/// Timer (ms): from the request's arrival to the last byte of its answer. Tags: `route`,
/// `endpoint`, `status`.
pub const REQUEST_DURATION: &str = "request_duration";
/// Timer (ms): from sending the request upstream to the provider's response headers,
/// fallbacks included. Tags: `route`, `endpoint`.
pub const UPSTREAM_TTFB: &str = "upstream_ttfb";
/// Timer (µs): time spent in Lethe itself (reading, scrubbing, forwarding, re-encoding), with
/// every wait on the upstream left out. Tags: `route`, `endpoint`.
pub const OVERHEAD_US: &str = "overhead_us";
/// Timer (ms): from the request's arrival to the first streamed text delta. Tags: `route`,
/// `endpoint`, `model`.
pub const STREAM_TTFT: &str = "stream_ttft";
/// Timer (tokens per second, whole): output tokens over the time from the first streamed text
/// delta to the end of the stream. Tags: `route`, `endpoint`, `model`.
pub const STREAM_TOKENS_PER_SECOND: &str = "stream_tokens_per_second";
/// Counter: input (prompt) tokens, from the provider's usage. Tags: `route`, `endpoint`,
/// `model`, attribution.
pub const TOKENS_INPUT: &str = "tokens_input";
/// Counter: output (completion) tokens. Tags as [`TOKENS_INPUT`].
pub const TOKENS_OUTPUT: &str = "tokens_output";
/// Counter: input + output tokens. Tags as [`TOKENS_INPUT`].
pub const TOKENS_TOTAL: &str = "tokens_total";
/// Counter (micro-dollars, USD × 10⁶, rounded per request): what the tokens cost at the price
/// table's rates. Tags as [`TOKENS_INPUT`].
pub const COST_MICRO_USD: &str = "cost_micro_usd";
/// Counter: values scrubbed. Tags: `type` (the detector), `direction`.
pub const DETECTIONS: &str = "detections";
/// Timer (bytes): the most text a stream held back at once, recorded when it ends. Tags:
/// `route`, `endpoint`.
pub const HELD_BACK_BYTES: &str = "held_back_bytes";
/// Gauge: client connections open.
pub const CONNECTIONS_ACTIVE: &str = "connections_active";
/// Gauge: streamed answers in flight.
pub const STREAMS_ACTIVE: &str = "streams_active";
/// Counter: failed requests and streams. Tags: `kind`, `route`, `endpoint`.
pub const ERRORS: &str = "errors";

/// Every metric name (the README's table and the dashboard are checked against it).
pub const ALL: [&str; 15] = [
    REQUESTS,
    REQUEST_DURATION,
    UPSTREAM_TTFB,
    OVERHEAD_US,
    STREAM_TTFT,
    STREAM_TOKENS_PER_SECOND,
    TOKENS_INPUT,
    TOKENS_OUTPUT,
    TOKENS_TOTAL,
    COST_MICRO_USD,
    DETECTIONS,
    HELD_BACK_BYTES,
    CONNECTIONS_ACTIVE,
    STREAMS_ACTIVE,
    ERRORS,
];

/// Tag keys Lethe sets itself; attribution keys may not reuse them.
pub const RESERVED_TAG_KEYS: [&str; 7] = [
    "route",
    "endpoint",
    "status",
    "model",
    "kind",
    "type",
    "direction",
];

/// Tag value for a request no route served, a model the config does not name, or an
/// attribution value over the cap.
pub const OTHER: &str = "other";
/// Tag value for `route` when the request never reached routing.
pub const NO_ROUTE: &str = "none";

/// Lines queued for the sender thread; beyond this, new lines are dropped.
pub const QUEUE_SIZE: usize = 8192;
/// Bytes per UDP datagram (fits a 1500-byte MTU with headers).
pub const BUFFER_SIZE: usize = 1432;
/// How often a partly filled datagram is sent anyway.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// The status class of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    /// 1xx and 2xx.
    Success,
    /// 3xx.
    Redirect,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
}

impl StatusClass {
    /// The class of `status`.
    pub fn of(status: http::StatusCode) -> StatusClass {
        match status.as_u16() {
            0..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirect,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

/// Which way scrubbed text was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to provider.
    Request,
    /// Provider to client.
    Response,
}

impl Direction {
    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// Why a request or stream failed, as the `kind` tag of [`ERRORS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body or a privacy header is not valid (Lethe's 400 or 415, or the provider's
    /// 400/404/422).
    InvalidRequest,
    /// Gateway or provider authentication failed (401).
    Auth,
    /// Refused by policy (Lethe's or the provider's 403).
    Forbidden,
    /// Unknown endpoint.
    NotFound,
    /// No route serves the model.
    ModelNotFound,
    /// Wrong method for the endpoint.
    MethodNotAllowed,
    /// The body is over a limit (Lethe's or the provider's 413).
    TooLarge,
    /// The provider rate-limited the request (429).
    RateLimit,
    /// The upstream did not answer in time (or answered 408/504).
    Timeout,
    /// The upstream could not be reached.
    UpstreamUnreachable,
    /// The provider answered another 4xx.
    Upstream4xx,
    /// The provider answered 5xx.
    Upstream5xx,
    /// The upstream answer could not be scrubbed and was not forwarded.
    UpstreamUnscrubbable,
    /// A stream broke off after it had started.
    StreamFailed,
    /// The client went away before its stream ended.
    ClientClosed,
    /// The client paused sending its request body for longer than `server.body_timeout_ms`.
    ClientTimeout,
}

impl ErrorKind {
    /// The tag value (for Lethe's own errors, the same word as the error's `code`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Auth => "auth",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::RateLimit => "rate_limit",
            ErrorKind::Timeout => "timeout",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::Upstream4xx => "upstream_4xx",
            ErrorKind::Upstream5xx => "upstream_5xx",
            ErrorKind::UpstreamUnscrubbable => "upstream_unscrubbable",
            ErrorKind::StreamFailed => "stream_failed",
            ErrorKind::ClientClosed => "client_closed",
            ErrorKind::ClientTimeout => "client_timeout",
        }
    }

    /// The kind of an error status the provider answered with, `None` for a success.
    pub fn of_upstream(status: http::StatusCode) -> Option<ErrorKind> {
        Some(match status.as_u16() {
            0..=399 => return None,
            401 => ErrorKind::Auth,
            403 => ErrorKind::Forbidden,
            400 | 404 | 422 => ErrorKind::InvalidRequest,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::TooLarge,
            429 => ErrorKind::RateLimit,
            400..=499 => ErrorKind::Upstream4xx,
            _ => ErrorKind::Upstream5xx,
        })
    }
}

impl From<ProxyError> for ErrorKind {
    fn from(e: ProxyError) -> ErrorKind {
        match e {
            ProxyError::Malformed | ProxyError::BadPrivacyHeader | ProxyError::EncodedBody => {
                ErrorKind::InvalidRequest
            }
            ProxyError::Unauthorized => ErrorKind::Auth,
            ProxyError::Forbidden => ErrorKind::Forbidden,
            ProxyError::NotFound => ErrorKind::NotFound,
            ProxyError::NoRoute => ErrorKind::ModelNotFound,
            ProxyError::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            ProxyError::TooLarge => ErrorKind::TooLarge,
            ProxyError::BodyTimeout => ErrorKind::ClientTimeout,
            ProxyError::UpstreamUnreachable => ErrorKind::UpstreamUnreachable,
            ProxyError::UpstreamTimeout => ErrorKind::Timeout,
            ProxyError::Unscrubbable => ErrorKind::UpstreamUnscrubbable,
        }
    }
}

/// Where metrics go: the validated `[statsd]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsdSettings {
    /// The StatsD daemon, resolved once at start-up.
    pub address: SocketAddr,
    /// Prefix of every name (`lethe` → `lethe.requests`).
    pub prefix: String,
    /// Whether tags are sent, DogStatsD style (`|#route:openai`).
    pub tags: bool,
    /// Tags added to every line (with `tags` on).
    pub global_tags: Vec<(String, String)>,
}

/// Why the exporter could not start. Carries no address or value.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The UDP socket could not be created.
    #[error("cannot create the StatsD socket")]
    Socket,
    /// Another recorder is already installed.
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
    /// A thread could not be started.
    #[error("cannot start the StatsD threads")]
    Thread,
}

/// A sink shared between the queue's sender thread and the flusher thread.
#[derive(Clone)]
struct SharedSink(Arc<BufferedUdpMetricSink>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        self.0.emit(metric)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }

    fn stats(&self) -> SinkStats {
        self.0.stats()
    }
}

/// Creates the UDP socket and the sender and flusher threads, and installs the global recorder.
/// Call once, at start-up, before the sandbox locks.
pub fn install(settings: &StatsdSettings) -> Result<(), ExporterError> {
    let local: SocketAddr = if settings.address.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).map_err(|_| ExporterError::Socket)?;
    socket
        .set_nonblocking(true)
        .map_err(|_| ExporterError::Socket)?;
    let udp = BufferedUdpMetricSink::with_capacity(settings.address, socket, BUFFER_SIZE)
        .map_err(|_| ExporterError::Socket)?;
    let shared = SharedSink(Arc::new(udp));
    let flusher = shared.clone();
    std::thread::Builder::new()
        .name("lethe-statsd-flush".to_owned())
        .spawn(move || loop {
            std::thread::sleep(FLUSH_INTERVAL);
            let _ = flusher.flush();
        })
        .map_err(|_| ExporterError::Thread)?;
    let queue = QueuingMetricSink::with_capacity(shared, QUEUE_SIZE);
    let mut builder = StatsdBuilder::from("", 0)
        .with_sink(queue)
        .histogram_is_timer();
    if settings.tags {
        for (key, value) in &settings.global_tags {
            builder = builder.with_default_tag(key, value);
        }
    }
    let recorder = builder
        .build(Some(&settings.prefix))
        .map_err(|_| ExporterError::Socket)?;
    let installed = if settings.tags {
        metrics::set_global_recorder(recorder).map_err(|_: SetRecorderError<_>| ())
    } else {
        metrics::set_global_recorder(Untagged(recorder)).map_err(|_: SetRecorderError<_>| ())
    };
    installed.map_err(|_| ExporterError::AlreadyInstalled)?;
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Set once [`install`] succeeded.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether metrics go anywhere. Without a recorder every metric is a no-op, so a request's
/// meter skips building its lines altogether.
pub fn enabled() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// A recorder that drops every tag: for a plain StatsD that does not read DogStatsD tags.
struct Untagged<R>(R);

impl<R: Recorder> Recorder for Untagged<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0
            .register_counter(&Key::from_name(key.name_shared()), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0
            .register_gauge(&Key::from_name(key.name_shared()), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0
            .register_histogram(&Key::from_name(key.name_shared()), metadata)
    }
}

/// Tags of one metric line.
pub type Tags = Vec<Label>;

/// A tag whose value comes from a closed set.
pub fn tag(key: &'static str, value: &'static str) -> Label {
    Label::from_static_parts(key, value)
}

/// A tag whose value comes from the config (or passed the attribution check).
pub fn config_tag(key: &'static str, value: &Arc<str>) -> Label {
    Label::new(key, value.to_string())
}

/// Adds `n` to a counter.
pub fn count(name: &'static str, n: u64, tags: Tags) {
    if n > 0 {
        metrics::counter!(name, tags).increment(n);
    }
}

/// Records a timer line with the whole number `value` (see each name for its unit).
pub fn timing(name: &'static str, value: u64, tags: Tags) {
    // The exporter sends histograms as `ms` timers and takes seconds, truncated to whole
    // milliseconds: hand it `value` milliseconds, plus half a millisecond against rounding.
    metrics::histogram!(name, tags).record((value as f64 + 0.5) / 1000.0);
}

/// A gauge kept as an atomic here (StatsD gauges are absolute) and sent on every change.
pub struct LiveGauge {
    name: &'static str,
    value: AtomicI64,
}

impl LiveGauge {
    const fn new(name: &'static str) -> LiveGauge {
        LiveGauge {
            name,
            value: AtomicI64::new(0),
        }
    }

    /// One more.
    pub fn up(&self) {
        let now = self.value.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(self.name).set(now as f64);
    }

    /// One fewer.
    pub fn down(&self) {
        let now = self.value.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(self.name).set(now as f64);
    }
}

/// Client connections open ([`CONNECTIONS_ACTIVE`]).
pub static CONNECTIONS: LiveGauge = LiveGauge::new(CONNECTIONS_ACTIVE);
/// Streams in flight ([`STREAMS_ACTIVE`]).
pub static STREAMS: LiveGauge = LiveGauge::new(STREAMS_ACTIVE);

/// Whether `value` may be an attribution tag value: `[a-z0-9_.-]{1,64}`.
pub fn valid_tag_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The attribution tags the operator allows, read from `X-Lethe-Tag-<key>` request headers.
///
/// Each key keeps at most `max_values` distinct values for the process's lifetime; later new
/// values, and values failing [`valid_tag_value`], become [`OTHER`].
pub struct Attribution {
    keys: Vec<AttributionKey>,
    max_values: usize,
}

struct AttributionKey {
    key: &'static str,
    header: http::HeaderName,
    seen: Mutex<HashSet<Arc<str>>>,
}

/// Prefix of the request headers that carry attribution tags.
pub const ATTRIBUTION_HEADER_PREFIX: &str = "x-lethe-tag-";

impl Attribution {
    /// Allows `keys` (already validated: `[a-z0-9_]{1,32}`, not reserved) with `max_values`
    /// distinct values each. Keys live as long as the process.
    pub fn new(keys: &[String], max_values: usize) -> Attribution {
        let keys = keys
            .iter()
            .filter_map(|k| {
                let header =
                    http::HeaderName::try_from(format!("{ATTRIBUTION_HEADER_PREFIX}{k}")).ok()?;
                let key: &'static str = Box::leak(k.clone().into_boxed_str());
                Some(AttributionKey {
                    key,
                    header,
                    seen: Mutex::new(HashSet::new()),
                })
            })
            .collect();
        Attribution { keys, max_values }
    }

    /// The tags for a request with `headers`.
    pub fn tags(&self, headers: &http::HeaderMap) -> Tags {
        let mut tags = Vec::new();
        for k in &self.keys {
            let Some(value) = headers.get(&k.header).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let value = value.trim();
            if !valid_tag_value(value) {
                tags.push(tag(k.key, OTHER));
                continue;
            }
            let mut seen = k.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(known) = seen.get(value) {
                tags.push(config_tag(k.key, known));
            } else if seen.len() < self.max_values {
                let known: Arc<str> = Arc::from(value);
                seen.insert(known.clone());
                tags.push(config_tag(k.key, &known));
            } else {
                tags.push(tag(k.key, OTHER));
            }
        }
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lethe_error_kinds_match_the_error_codes() {
        for e in [
            ProxyError::Malformed,
            ProxyError::BadPrivacyHeader,
            ProxyError::Unauthorized,
            ProxyError::Forbidden,
            ProxyError::NotFound,
            ProxyError::NoRoute,
            ProxyError::MethodNotAllowed,
            ProxyError::TooLarge,
            ProxyError::EncodedBody,
            ProxyError::UpstreamUnreachable,
            ProxyError::UpstreamTimeout,
            ProxyError::Unscrubbable,
        ] {
            assert_eq!(ErrorKind::from(e).as_str(), e.kind());
        }
        let kind = |n: u16| ErrorKind::of_upstream(http::StatusCode::from_u16(n).unwrap());
        assert_eq!(kind(200), None);
        assert_eq!(kind(429), Some(ErrorKind::RateLimit));
        assert_eq!(kind(503), Some(ErrorKind::Upstream5xx));
        assert_eq!(kind(529), Some(ErrorKind::Upstream5xx));
        assert_eq!(kind(418), Some(ErrorKind::Upstream4xx));
    }

    #[test]
    fn attribution_checks_values_and_caps_them() {
        let a = Attribution::new(&["team".to_owned()], 2);
        let tags = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert("x-lethe-tag-team", http::HeaderValue::from_static(v));
            h.insert("x-lethe-tag-user", http::HeaderValue::from_static("jane"));
            a.tags(&h)
                .iter()
                .map(|l| format!("{}:{}", l.key(), l.value()))
                .collect::<Vec<_>>()
        };
        assert_eq!(tags("search"), ["team:search"]);
        assert_eq!(tags("Jane Doe"), ["team:other"]);
        assert_eq!(tags("billing"), ["team:billing"]);
        assert_eq!(tags("third"), ["team:other"], "capped");
        assert_eq!(tags("search"), ["team:search"], "known values stay");
        assert!(!valid_tag_value(&"a".repeat(65)));
    }
}
