//! The proxy: one request in, scrubbed; one answer out, scrubbed.
//!
//! ```text
//! request ─▶ route::Endpoint ─▶ gateway key ─▶ policy (floor ⊕ headers)
//!         ─▶ body (bounded) ─▶ json::scrub_document ─▶ upstream (fallback before byte 1)
//! answer  ─▶ JSON: json::scrub_document (+ restore)   ─▶ client
//!         ─▶ SSE:  sse::Decoder ─▶ events::EventScrubber ─▶ sse::encode ─▶ client
//! ```
//!
//! JSON bodies are scrubbed on their bytes, without a tree; a document outside the strict subset
//! that path reads goes through a `serde_json::Value` and `json::scrub_value` instead.
//!
//! Fail closed: a body that is not a JSON object is a 400 and is not forwarded, nor is one
//! declared compressed (a 415); an upstream answer Lethe cannot read (compressed, not JSON,
//! too large) is a 502 and is not forwarded.
//!
//! Every request but `/healthz` and `/readyz` is measured by a [`meter::Meter`]: numbers and
//! closed-set tags only. An OpenAI chat or completions stream is sent upstream with
//! `stream_options.include_usage` so its tokens can be counted; when the client did not ask
//! for usage, the usage chunk is dropped on the way back.

pub mod body;
pub mod error;
pub mod events;
pub mod h1;
pub mod json;
pub mod meter;
pub mod policy;
pub mod pool;
pub mod privacy;
pub mod query;
pub mod route;
pub mod sse;
pub mod upstream;
pub mod usage;
mod words;

use std::borrow::Cow;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use crate::alloc::Wiped;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use self::body::{full, ProxyBody, SseBody};
use self::error::ProxyError;
use self::events::EventScrubber;
use self::meter::Meter;
use self::policy::{RequestPolicy, Scrubbers};
use self::pool::UpstreamBody;
use self::route::Endpoint;
use self::upstream::{strip_for_upstream, strip_hop_by_hop, Upstream};
use self::usage::{Prices, Usage};
use crate::config::{Config, Format, KeyHash};
use crate::metrics::{Attribution, Direction};
use crate::scrub::{Counts, PolicyError, Scrubbed, Scrubber, Vault};

/// Tag value of the `endpoint` tag for a path Lethe does not serve.
const UNKNOWN_ENDPOINT: &str = "unknown";

/// Everything a request needs, shared by all connections.
pub struct Proxy {
    config: Arc<Config>,
    upstream: Upstream,
    scrubbers: Scrubbers,
    ready: AtomicBool,
    prices: Prices,
    attribution: Attribution,
}

impl Proxy {
    /// Compiles the floor's scrubbers and builds the upstream client. Needs a Tokio runtime.
    pub fn new(config: Arc<Config>) -> Result<Proxy, PolicyError> {
        let named: Vec<String> = config
            .routes
            .iter()
            .flat_map(|r| r.models.iter().cloned())
            .collect();
        Ok(Proxy {
            scrubbers: Scrubbers::new(&config.floor)?,
            upstream: Upstream::new(&config),
            ready: AtomicBool::new(true),
            prices: Prices::new(&config.prices, &named),
            attribution: Attribution::new(&config.attribution, config.attribution_max_values),
            config,
        })
    }

    /// Records `error` on `meter` and answers it.
    fn refuse(&self, mut meter: Meter, error: ProxyError, format: Format) -> Response<ProxyBody> {
        meter.failed(error.into());
        meter.finish(error.status());
        error.response(format)
    }

    /// Marks the proxy as draining: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    /// Serves one request. Never fails: errors become provider-shaped JSON answers.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes>,
        B::Error: StdError + Send + Sync + 'static,
    {
        let errors_only = policy::errors_only(request.headers());
        let attribution = self.attribution.tags(request.headers());
        let Some(endpoint) = Endpoint::classify(request.uri().path()) else {
            let format = route::format_for_unknown(request.uri().path(), request.headers());
            let meter = Meter::start(UNKNOWN_ENDPOINT, errors_only, attribution);
            return self.refuse(meter, ProxyError::NotFound, format);
        };
        let mut meter = Meter::start(endpoint.as_str(), errors_only, attribution);
        let format = endpoint.format(request.headers());
        if request.method() != endpoint.method()
            && !(request.method() == Method::HEAD && endpoint.method() == Method::GET)
        {
            let mut response = self.refuse(meter, ProxyError::MethodNotAllowed, format);
            let allow = if endpoint.method() == Method::GET {
                "GET, HEAD"
            } else {
                "POST"
            };
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return response;
        }
        match endpoint {
            Endpoint::Healthz => return status_json(StatusCode::OK, "ok"),
            Endpoint::Readyz if self.ready.load(Ordering::Relaxed) => {
                return status_json(StatusCode::OK, "ready")
            }
            Endpoint::Readyz => return status_json(StatusCode::SERVICE_UNAVAILABLE, "draining"),
            Endpoint::ApiStatus => {
                meter.finish(StatusCode::OK);
                return privacy::status(crate::sandbox::state(), self.config.statsd.is_some());
            }
            _ => {}
        }
        let answered = match endpoint {
            Endpoint::PrivacyDelete | Endpoint::PrivacyExport => {
                self.privacy(endpoint, request).await
            }
            _ => self.forward(endpoint, format, request, &mut meter).await,
        };
        match answered {
            Ok(response) => {
                meter.finish(response.status());
                response
            }
            Err(e) => self.refuse(meter, e, format),
        }
    }

    /// The privacy endpoints: gateway authentication, a bounded body, a truthful answer.
    async fn privacy<B>(
        &self,
        endpoint: Endpoint,
        request: Request<B>,
    ) -> Result<Response<ProxyBody>, ProxyError>
    where
        B: Body<Data = Bytes>,
        B::Error: StdError + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let config = &*self.config;
        if !config.client_keys.is_empty() && !authorized(&parts.headers, &config.client_keys) {
            return Err(ProxyError::Unauthorized);
        }
        let raw = read_limited(body, &parts.headers, &config.server).await?;
        if endpoint == Endpoint::PrivacyDelete {
            privacy::delete(&raw)
        } else {
            privacy::export(&raw)
        }
    }

    async fn forward<B>(
        &self,
        endpoint: Endpoint,
        format: Format,
        request: Request<B>,
        meter: &mut Meter,
    ) -> Result<Response<ProxyBody>, ProxyError>
    where
        B: Body<Data = Bytes>,
        B::Error: StdError + Send + Sync + 'static,
    {
        let config = &*self.config;
        let (parts, body) = request.into_parts();
        if !config.client_keys.is_empty() && !authorized(&parts.headers, &config.client_keys) {
            return Err(ProxyError::Unauthorized);
        }
        let policy = RequestPolicy::from_headers(&config.floor, &parts.headers)?;
        let compile = |styles| {
            self.scrubbers
                .get(policy.kinds, styles)
                .map_err(|_| ProxyError::Malformed)
        };
        let (request_scrubber, answer_scrubber) =
            (compile(policy.styles)?, compile(policy.response_styles())?);
        let mut vault = Vault::new();
        let mut counts = Counts::default();
        let mut hide_usage = false;
        let (forward_body, model) = if endpoint.method() == Method::POST {
            let raw = read_limited(body, &parts.headers, &config.server).await?;
            // A chat or completions stream gets `stream_options.include_usage` added.
            let may_stream = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions);
            let document = if policy.scrub {
                json::scrub_document(
                    &raw,
                    &request_scrubber,
                    &mut vault,
                    &mut counts,
                    None,
                    may_stream,
                )
            } else {
                None
            };
            if let Some(document) = document {
                hide_usage = document.asked_for_usage;
                (Bytes::from(document.bytes), document.model)
            } else {
                let mut value: Value =
                    serde_json::from_slice(&raw).map_err(|_| ProxyError::Malformed)?;
                drop(raw);
                if !value.is_object() {
                    return Err(ProxyError::Malformed);
                }
                let model = value
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if policy.scrub {
                    json::scrub_value(&mut value, &request_scrubber, &mut vault, &mut counts);
                    if may_stream {
                        hide_usage = json::ask_for_usage(&mut value);
                    }
                }
                let bytes = serde_json::to_vec(&value).map_err(|_| ProxyError::Malformed)?;
                (Bytes::from(bytes), model)
            }
        } else {
            (Bytes::new(), None)
        };
        meter.set_model(|| self.prices.tag(model.as_deref()));
        let mut headers = parts.headers;
        strip_for_upstream(&mut headers);
        let root = PathAndQuery::from_static("/");
        let mut path_and_query = parts.uri.path_and_query().unwrap_or(&root);
        let scrubbed_query;
        if let (Some(raw_query), true) = (parts.uri.query(), policy.scrub) {
            if let Some(query) = query::scrub(raw_query, &request_scrubber, &mut vault, &mut counts)
                .map_err(|_| ProxyError::Malformed)?
            {
                scrubbed_query = PathAndQuery::try_from(format!("{}?{query}", parts.uri.path()))
                    .map_err(|_| ProxyError::Malformed)?;
                path_and_query = &scrubbed_query;
            }
        }
        if policy.scrub {
            scrub_headers(&mut headers, &request_scrubber, &mut vault, &mut counts);
        }
        meter.detected(Direction::Request, &counts);
        let chain = route::chain(config, endpoint, format, model.as_deref(), policy.hipaa)?;
        meter.set_route(&config.routes[chain[0]].name);
        let sent = meter.wait_started();
        let answer = self
            .upstream
            .send(&chain, &parts.method, path_and_query, headers, forward_body)
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                meter.upstream_waited(sent);
                return Err(e);
            }
        };
        meter.upstream_answered(sent);
        meter.set_route(&config.routes[answer.route].name);
        self.answer(
            endpoint,
            format,
            (answer_scrubber, policy.scrub),
            (vault, hide_usage),
            answer.response,
            meter,
        )
        .await
    }

    async fn answer(
        &self,
        endpoint: Endpoint,
        format: Format,
        (scrubber, scrub): (Scrubber, bool),
        (vault, hide_usage): (Vault, bool),
        response: Response<UpstreamBody>,
        meter: &mut Meter,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = response.into_parts();
        // Checked before the hop-by-hop headers go: a `Connection` header naming
        // `Content-Encoding` must not hide a compressed body.
        if !identity_encoded(&parts.headers) {
            return Err(ProxyError::Unscrubbable);
        }
        // Hop-by-hop headers and `Content-Length` go (the body sent is Lethe's), and so does
        // `Date`: hyper stamps the answer with Lethe's own clock, as nginx does with its own.
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::DATE);
        if scrub {
            let mut counts = Counts::default();
            scrub_headers(
                &mut parts.headers,
                &scrubber,
                &mut Vault::new(),
                &mut counts,
            );
            meter.detected(Direction::Response, &counts);
        }
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let media = b"text/event-stream";
                v.trim_start()
                    .as_bytes()
                    .get(..media.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(media))
            });
        if is_sse {
            let mut events = if scrub {
                EventScrubber::new(endpoint.api(), scrubber, vault)
            } else {
                EventScrubber::passthrough(endpoint.api(), scrubber)
            };
            if hide_usage {
                events.hide_usage();
            }
            let decoder = sse::Decoder::new(self.config.server.max_event_bytes);
            let body = SseBody::new(body, decoder, events, meter.for_stream(parts.status));
            return Ok(Response::from_parts(
                parts,
                http_body_util::BodyExt::boxed_unsync(body),
            ));
        }
        let reading = meter.wait_started();
        let bytes = read_answer(body, self.config.server.max_response_bytes).await?;
        meter.upstream_waited(reading);
        if bytes.is_empty() || !scrub {
            meter.usage(|| Usage::of_body(&bytes));
            return Ok(Response::from_parts(parts, full(bytes)));
        }
        let mut counts = Counts::default();
        if let Some(document) = json::scrub_document(
            &bytes,
            &scrubber,
            &mut Vault::new(),
            &mut counts,
            Some(&vault),
            false,
        ) {
            if let Some(member) = document.usage.clone() {
                meter.usage(|| Usage::of_member(&bytes[member]));
            }
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(Response::from_parts(parts, full(document.bytes)));
        }
        let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
            if parts.status.is_success() {
                return Err(ProxyError::Unscrubbable);
            }
            // An error page from a load balancer: keep the status, not the text.
            let mut generic = ProxyError::Unscrubbable.response(format);
            *generic.status_mut() = parts.status;
            return Ok(generic);
        };
        meter.usage(|| {
            let mut usage = Usage::default();
            usage.observe(&value);
            usage
        });
        json::scrub_value(&mut value, &scrubber, &mut Vault::new(), &mut counts);
        meter.detected(Direction::Response, &counts);
        if !vault.is_empty() {
            json::restore_value(&mut value, &vault);
        }
        let out = serde_json::to_vec(&value).map_err(|_| ProxyError::Unscrubbable)?;
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(Response::from_parts(parts, full(out)))
    }
}

/// Headers whose values are credentials for the next hop, passed or replaced as they are.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key"];

/// Scrubs header values like body text (a custom `x-user-email` header is text leaving the
/// box too). Credentials are left alone; a value that is not UTF-8 cannot be scrubbed, so it is
/// dropped. Every copy of a repeated header is kept, scrubbed. Headers that are not passed on
/// are removed before, not scrubbed.
fn scrub_headers(
    headers: &mut HeaderMap,
    scrubber: &Scrubber,
    vault: &mut Vault,
    counts: &mut Counts,
) {
    // The names whose values change, each with every value it keeps: empty, so allocation-free,
    // in the usual case where no value changes. The copies of one name come one after the other
    // in `iter`, so the last entry is the current name's once one of its values changed.
    let mut replaced: Vec<(HeaderName, Vec<HeaderValue>)> = Vec::new();
    let mut current: Option<&HeaderName> = None;
    let mut position = 0;
    for (name, value) in headers.iter() {
        if current == Some(name) {
            position += 1;
        } else {
            current = Some(name);
            position = 0;
        }
        if CREDENTIAL_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let scrubbed = std::str::from_utf8(value.as_bytes())
            .ok()
            .map(|text| scrubber.scrub_in(text, vault));
        let changing = replaced.last().is_some_and(|(n, _)| n == name);
        let new = match scrubbed {
            Some(Scrubbed {
                text: Cow::Borrowed(_),
                ..
            }) => {
                if changing {
                    if let Some((_, kept)) = replaced.last_mut() {
                        kept.push(value.clone());
                    }
                }
                continue;
            }
            Some(Scrubbed {
                text: Cow::Owned(new),
                counts: found,
            }) => {
                counts.add(&found);
                HeaderValue::try_from(new).ok()
            }
            // Not UTF-8: cannot be scrubbed, so dropped.
            None => None,
        };
        if !changing {
            // The copies before this one were left as they were.
            let kept = headers
                .get_all(name)
                .iter()
                .take(position)
                .cloned()
                .collect();
            replaced.push((name.clone(), kept));
        }
        if let Some((_, kept)) = replaced.last_mut() {
            kept.extend(new);
        }
    }
    for (name, values) in replaced {
        headers.remove(&name);
        for value in values {
            headers.append(name.clone(), value);
        }
    }
}

fn status_json(status: StatusCode, word: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{{\"status\":\"{word}\"}}")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Whether a body is sent as it is: no `Content-Encoding`, or only `identity` in every copy.
/// Every copy counts, so `identity` first cannot hide a `gzip` after it.
fn identity_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
        })
    })
}

/// Reads a request body up to `server.max_body_bytes`: 413 beyond, 400 if the client breaks
/// off, 408 if it pauses longer than `server.body_timeout`, 415 if it is declared compressed
/// (Lethe cannot scrub what it cannot read, and does not decompress bodies a client chose to
/// send small).
async fn read_limited<B>(
    body: B,
    headers: &HeaderMap,
    server: &crate::config::Server,
) -> Result<Wiped<Vec<u8>>, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: StdError + Send + Sync + 'static,
{
    let (limit, pause) = (server.max_body_bytes, server.body_timeout);
    if !identity_encoded(headers) {
        return Err(ProxyError::EncodedBody);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::TooLarge);
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
    let mut out = Wiped::new(Vec::with_capacity(capacity));
    let mut body = std::pin::pin!(Limited::new(body, limit));
    loop {
        // A frame already there (a small body usually came with the head) needs no timer.
        let ready = std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await;
        let next = match ready {
            Poll::Ready(frame) => Ok(frame),
            Poll::Pending => tokio::time::timeout(pause, body.frame()).await,
        };
        match next {
            Err(_) => return Err(ProxyError::BodyTimeout),
            Ok(None) => return Ok(out),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ProxyError::TooLarge)
            }
            Ok(Some(Err(_))) => return Err(ProxyError::Malformed),
        }
    }
}

/// Reads an upstream answer whole: 502 beyond `limit` bytes or if it breaks off. An answer that
/// came in one frame (the usual JSON answer) is kept as it came rather than copied.
async fn read_answer(body: UpstreamBody, limit: usize) -> Result<Bytes, ProxyError> {
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ProxyError::Unscrubbable)?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(ProxyError::Unscrubbable);
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut both = BytesMut::with_capacity(total);
                both.extend_from_slice(&first);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

/// Whether the request carries one of the gateway's client keys, compared by SHA-256 digest in
/// constant time over every configured key.
///
/// Every copy of `Authorization` (a `Bearer` token) and `x-api-key` is a credential, and each
/// one must be a client key: a request cannot pass with one good copy and an unknown other.
fn authorized(headers: &HeaderMap, keys: &[KeyHash]) -> bool {
    let bearer = headers.get_all(header::AUTHORIZATION).iter().map(|v| {
        v.to_str().ok().and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    });
    let api_key = headers.get_all("x-api-key").iter().map(|v| v.to_str().ok());
    let mut presented = 0usize;
    for credential in bearer.chain(api_key) {
        presented += 1;
        if !credential.is_some_and(|c| is_client_key(c, keys)) {
            return false;
        }
    }
    presented > 0
}

/// Whether `presented` is one of `keys`, looking at every key whatever the answer.
fn is_client_key(presented: &str, keys: &[KeyHash]) -> bool {
    let digest = ring::digest::digest(&ring::digest::SHA256, presented.trim().as_bytes());
    let mut found = 0u8;
    for key in keys {
        let diff = key
            .0
            .iter()
            .zip(digest.as_ref())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found |= u8::from(diff == 0);
    }
    found == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> KeyHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        KeyHash(digest.as_ref().try_into().expect("32 bytes"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    /// `scrub_headers` as it was first written: a list of values for every name.
    fn scrub_headers_naive(
        headers: &mut HeaderMap,
        scrubber: &Scrubber,
        vault: &mut Vault,
        counts: &mut Counts,
    ) {
        let mut replaced: Vec<(HeaderName, Vec<HeaderValue>)> = Vec::new();
        for name in headers.keys() {
            if CREDENTIAL_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let mut changed = false;
            let mut values = Vec::new();
            for value in headers.get_all(name) {
                let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                    changed = true;
                    continue;
                };
                let scrubbed = scrubber.scrub_in(text, vault);
                match scrubbed.text {
                    Cow::Owned(new) => {
                        counts.add(&scrubbed.counts);
                        changed = true;
                        values.extend(HeaderValue::try_from(new).ok());
                    }
                    Cow::Borrowed(_) => values.push(value.clone()),
                }
            }
            if changed {
                replaced.push((name.clone(), values));
            }
        }
        for (name, values) in replaced {
            headers.remove(&name);
            for value in values {
                headers.append(name.clone(), value);
            }
        }
    }

    #[test]
    fn header_scrubbing_matches_the_naive_version() {
        use crate::scrub::{Policy, Style};
        let email = "jane.doe@example.com";
        let mut values = [
            HeaderValue::from_static("plain"),
            HeaderValue::from_static(email),
            HeaderValue::from_bytes(b"caf\xc3\xa9 jane.doe@example.com").unwrap(),
            HeaderValue::from_bytes(b"\xff not UTF-8").unwrap(),
        ];
        let mut seed = 0x5eed_1e7e_u64;
        for style in [Style::Label, Style::Placeholder] {
            let scrubber = Scrubber::new(&Policy::default().with_style(style)).unwrap();
            for round in 0..300 {
                let mut headers = HeaderMap::new();
                let fields = crate::xorshift(&mut seed) % 9;
                for _ in 0..fields {
                    let name = ["x-a", "x-b", "content-type", "authorization", "x-api-key"]
                        [(crate::xorshift(&mut seed) % 5) as usize];
                    let value = values[(crate::xorshift(&mut seed) % 4) as usize].clone();
                    headers.append(name, value);
                }
                values.rotate_left(round % 2);
                let (mut fast, mut naive) = (headers.clone(), headers);
                let (mut fast_vault, mut naive_vault) = (Vault::new(), Vault::new());
                let (mut fast_counts, mut naive_counts) = (Counts::default(), Counts::default());
                scrub_headers(&mut fast, &scrubber, &mut fast_vault, &mut fast_counts);
                scrub_headers_naive(&mut naive, &scrubber, &mut naive_vault, &mut naive_counts);
                assert_eq!(
                    fast.iter().collect::<Vec<_>>(),
                    naive.iter().collect::<Vec<_>>()
                );
                assert_eq!(fast_counts, naive_counts);
                assert_eq!(fast_vault.len(), naive_vault.len());
            }
        }
    }

    #[test]
    fn every_presented_credential_must_be_a_client_key() {
        let keys = [key("gw-one"), key("gw-two")];
        let pass = [
            vec![("authorization", "Bearer gw-one")],
            vec![("x-api-key", "gw-two")],
            vec![("authorization", "bearer gw-two"), ("x-api-key", "gw-one")],
            vec![("x-api-key", "gw-one"), ("x-api-key", "gw-two")],
        ];
        for case in pass {
            assert!(authorized(&headers(&case), &keys), "{case:?}");
        }
        let refuse = [
            vec![],
            vec![("authorization", "Bearer nope")],
            vec![("authorization", "Basic gw-one")],
            vec![
                ("authorization", "Bearer gw-one"),
                ("authorization", "Bearer nope"),
            ],
            vec![
                ("authorization", "Bearer nope"),
                ("authorization", "Bearer gw-one"),
            ],
            vec![("x-api-key", "gw-one"), ("x-api-key", "nope")],
            vec![("authorization", "Bearer gw-one"), ("x-api-key", "nope")],
        ];
        for case in refuse {
            assert!(!authorized(&headers(&case), &keys), "{case:?}");
        }
    }
}
