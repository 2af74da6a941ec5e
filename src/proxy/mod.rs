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
//! Fail closed: a body that is not a JSON object is a 400 and is not forwarded; an upstream
//! answer Lethe cannot read (compressed, not JSON, too large) is a 502 and is not forwarded.

pub mod body;
pub mod error;
pub mod events;
pub mod json;
pub mod policy;
pub mod route;
pub mod sse;
pub mod upstream;

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use zeroize::Zeroizing;

use self::body::{full, ProxyBody, SseBody};
use self::error::ProxyError;
use self::events::EventScrubber;
use self::policy::{RequestPolicy, Scrubbers};
use self::route::Endpoint;
use self::upstream::{strip_hop_by_hop, Upstream};
use crate::config::{Config, Format, KeyHash};
use crate::scrub::{Counts, PolicyError, Scrubber, Vault};

/// Everything a request needs, shared by all connections.
pub struct Proxy {
    config: Arc<Config>,
    upstream: Upstream,
    scrubbers: Scrubbers,
    ready: AtomicBool,
}

impl Proxy {
    /// Compiles the floor's scrubbers and builds the upstream client. Needs a Tokio runtime.
    pub fn new(config: Arc<Config>) -> Result<Proxy, PolicyError> {
        Ok(Proxy {
            scrubbers: Scrubbers::new(&config.floor)?,
            upstream: Upstream::new(&config),
            ready: AtomicBool::new(true),
            config,
        })
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
        let path = request.uri().path().to_owned();
        let Some(endpoint) = Endpoint::classify(&path) else {
            let format = route::format_for_unknown(&path, request.headers());
            return ProxyError::NotFound.response(format);
        };
        let format = endpoint.format(request.headers());
        if request.method() != endpoint.method()
            && !(request.method() == Method::HEAD && endpoint.method() == Method::GET)
        {
            let mut response = ProxyError::MethodNotAllowed.response(format);
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
            _ => {}
        }
        match self.forward(endpoint, format, request).await {
            Ok(response) => response,
            Err(e) => e.response(format),
        }
    }

    async fn forward<B>(
        &self,
        endpoint: Endpoint,
        format: Format,
        request: Request<B>,
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
        let (forward_body, model) = if endpoint.method() == Method::POST {
            let raw = read_limited(body, &parts.headers, config.server.max_body_bytes).await?;
            let document = if policy.scrub {
                json::scrub_document(&raw, &request_scrubber, &mut vault, &mut counts, None)
            } else {
                None
            };
            if let Some(document) = document {
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
                }
                let bytes = serde_json::to_vec(&value).map_err(|_| ProxyError::Malformed)?;
                (Bytes::from(bytes), model)
            }
        } else {
            (Bytes::new(), None)
        };
        let mut headers = parts.headers;
        if policy.scrub {
            scrub_headers(&mut headers, &request_scrubber, &mut vault, &mut counts);
        }
        let chain = route::chain(config, endpoint, format, model.as_deref(), policy.hipaa)?;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |pq| pq.as_str());
        let answer = self
            .upstream
            .send(
                config,
                &chain,
                &parts.method,
                path_and_query,
                &headers,
                forward_body,
            )
            .await?;
        self.answer(
            endpoint,
            format,
            (answer_scrubber, policy.scrub),
            vault,
            answer.response,
        )
        .await
    }

    async fn answer(
        &self,
        endpoint: Endpoint,
        format: Format,
        (scrubber, scrub): (Scrubber, bool),
        vault: Vault,
        response: Response<hyper::body::Incoming>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        if scrub {
            scrub_headers(
                &mut parts.headers,
                &scrubber,
                &mut Vault::new(),
                &mut Counts::default(),
            );
        }
        let encoded = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            return Err(ProxyError::Unscrubbable);
        }
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if is_sse {
            let events = if scrub {
                EventScrubber::new(endpoint.api(), scrubber, vault)
            } else {
                EventScrubber::passthrough(endpoint.api(), scrubber)
            };
            let decoder = sse::Decoder::new(self.config.server.max_event_bytes);
            let body = SseBody::new(body, decoder, events);
            return Ok(Response::from_parts(
                parts,
                http_body_util::BodyExt::boxed_unsync(body),
            ));
        }
        let bytes = Limited::new(body, self.config.server.max_response_bytes)
            .collect()
            .await
            .map_err(|_| ProxyError::Unscrubbable)?
            .to_bytes();
        if bytes.is_empty() || !scrub {
            return Ok(Response::from_parts(parts, full(bytes)));
        }
        let mut counts = Counts::default();
        if let Some(document) = json::scrub_document(
            &bytes,
            &scrubber,
            &mut Vault::new(),
            &mut counts,
            Some(&vault),
        ) {
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
        json::scrub_value(&mut value, &scrubber, &mut Vault::new(), &mut counts);
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
/// box too). Credentials are left alone; a value that is not UTF-8 cannot be scrubbed, so the
/// header is dropped.
fn scrub_headers(
    headers: &mut HeaderMap,
    scrubber: &Scrubber,
    vault: &mut Vault,
    counts: &mut Counts,
) {
    let mut replaced: Vec<(header::HeaderName, Option<HeaderValue>)> = Vec::new();
    for (name, value) in headers.iter() {
        if CREDENTIAL_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            replaced.push((name.clone(), None));
            continue;
        };
        let scrubbed = scrubber.scrub_in(text, vault);
        if let std::borrow::Cow::Owned(new) = scrubbed.text {
            counts.add(&scrubbed.counts);
            replaced.push((name.clone(), HeaderValue::try_from(new).ok()));
        }
    }
    for (name, value) in replaced {
        // Repeated headers collapse to the scrubbed last value; none of the providers' own
        // headers repeats.
        headers.remove(&name);
        if let Some(value) = value {
            headers.insert(name, value);
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

/// Reads a request body up to `limit` bytes: 413 beyond, 400 if the client breaks off.
async fn read_limited<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ProxyError>
where
    B: Body<Data = Bytes>,
    B::Error: StdError + Send + Sync + 'static,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(Zeroizing::new(collected.to_bytes().to_vec())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProxyError::TooLarge),
        Err(_) => Err(ProxyError::Malformed),
    }
}

/// Whether the request carries one of the gateway's client keys, compared by SHA-256 digest in
/// constant time over every configured key.
fn authorized(headers: &HeaderMap, keys: &[KeyHash]) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(presented) = presented else {
        return false;
    };
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
