//! The upstream side: HTTP/1.1 and HTTP/2 over rustls through the connection [`Pool`], key
//! injection, timeouts and fallback.
//!
//! # Rules
//! - The provider key is injected from a `SecretString` into the header its format uses
//!   (`Authorization: Bearer` for OpenAI, `x-api-key` for Anthropic) and marked sensitive, so
//!   hyper's HPACK never indexes it. A passthrough route forwards the client's header instead.
//! - Privacy headers, hop-by-hop headers, `Host`, `Content-Length`, `Content-Encoding` and
//!   `Accept-Encoding` are never forwarded: the body sent is Lethe's own identity-encoded JSON,
//!   and Lethe asks for an identity-encoded answer because it must read it to scrub it.
//! - Fallback to the next route happens only before the first response byte: on a connect
//!   error, a first-byte timeout, a 429 or a 5xx. Once headers are in, the answer is final.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::{ExposeSecret, SecretString};

use super::error::ProxyError;
use super::policy::PRIVACY_HEADERS;
use super::pool::{Origin, Pool, UpstreamBody};
use crate::config::{Config, Format, ProviderKey, Route};
use crate::dns::Resolver;
use crate::metrics::ATTRIBUTION_HEADER_PREFIX;

/// Whether a header belongs to one connection, never forwarded (RFC 9110 §7.6.1), is one
/// Lethe sets itself, or is a cookie (either way: the APIs do not use them, and a provider's
/// cookie would let it tell the clients behind one gateway apart). A match on the name's text: one length switch and a compare or two per
/// header, where a list of `HeaderName`s cost a compare per entry.
fn not_forwarded(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "accept-encoding"
            | "expect"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-real-ip"
            | "cookie"
            | "set-cookie"
    )
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, |_| false);
}

/// Removes from a client's headers everything never forwarded upstream: hop-by-hop headers
/// (and those named in `Connection`), `Host`, `Content-Length`, the privacy headers, the
/// attribution headers (they are for Lethe's metrics) and `Content-Encoding` (the body sent is
/// the one Lethe writes). Done once per request, before the values left are scrubbed.
pub fn strip_for_upstream(headers: &mut HeaderMap) {
    strip(headers, |name| {
        name == header::CONTENT_ENCODING
            || (name.as_str().starts_with("x-")
                && (PRIVACY_HEADERS.contains(name)
                    || name.as_str().starts_with(ATTRIBUTION_HEADER_PREFIX)))
    });
}

/// Removes hop-by-hop headers and those `also` names, in one pass over the headers present.
fn strip(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    if headers.is_empty() {
        return;
    }
    // One pass over the (few) headers present, not one lookup per name that might be.
    let unwanted = |named: &[HeaderName]| -> Vec<HeaderName> {
        headers
            .keys()
            .filter(|name| not_forwarded(name) || named.contains(name) || also(name))
            .cloned()
            .collect()
    };
    let mut names = unwanted(&[]);
    // Names listed in `Connection` go too. `Connection` is itself never forwarded, so the
    // first pass tells whether there is one to read.
    if names.contains(&header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        names = unwanted(&named);
    }
    // Removed in map order: `HeaderMap::remove` moves the last field into the gap, so this
    // order decides the order of the fields forwarded.
    for name in names {
        headers.remove(name);
    }
}

/// The client side shared by every request.
pub struct Upstream {
    pool: Arc<Pool>,
    first_byte_timeout: Duration,
    /// What each of [`Config::routes`] sends to, by the same index.
    targets: Vec<Target>,
}

/// A route's side of every request, worked out once: where it goes and what key it carries.
struct Target {
    /// `None` when the base URL has no scheme or authority (the config rules that out).
    origin: Option<Origin>,
    /// The base URL's path without its trailing `/`, put before the client's path.
    prefix: String,
    key: Key,
}

/// The credential a route puts on a request.
enum Key {
    /// The provider key replaces the client's credentials, under the header of the route's
    /// wire format. The key stays a `SecretString`: its header value is made per request and
    /// freed (so wiped) with the request.
    Provider(Format, SecretString),
    /// The client's own credentials go through, marked sensitive.
    Passthrough,
}

impl Target {
    fn of(route: &Route) -> Target {
        let key = match &route.key {
            ProviderKey::Secret(key) => Key::Provider(route.format, key.clone()),
            ProviderKey::Passthrough => Key::Passthrough,
        };
        Target {
            origin: Origin::of(&route.base_url),
            prefix: route.base_url.path().trim_end_matches('/').to_owned(),
            key,
        }
    }
}

/// An upstream answer and the route that gave it.
pub struct Answer {
    /// Response head and body.
    pub response: Response<UpstreamBody>,
    /// Index of the route that answered.
    pub route: usize,
}

impl Upstream {
    /// Builds the client. TLS trusts the built-in Mozilla roots; names resolve through a
    /// [`Resolver`] configured now, from the system's resolver configuration, so no lookup reads
    /// a file later (see [`crate::dns`]). Call inside the runtime.
    pub fn new(config: &Config) -> Upstream {
        let mut http = HttpConnector::new_with_resolver(Resolver::from_system());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.upstream.connect_timeout));
        // rustls with the ring provider (the only one compiled in), the Mozilla roots and any
        // operator CA.
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        roots.add_parsable_certificates(config.upstream.extra_ca.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let builder = match tls {
            Ok(tls) => HttpsConnectorBuilder::new().with_tls_config(tls),
            // Unreachable with ring, which supports the safe defaults; keep a working client.
            Err(_) => HttpsConnectorBuilder::new().with_webpki_roots(),
        };
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let pool = Pool::new(
            connector,
            config.upstream.pool_max_idle_per_host,
            config.upstream.pool_idle_timeout,
        );
        Upstream {
            pool,
            first_byte_timeout: config.upstream.first_byte_timeout,
            targets: config.routes.iter().map(Target::of).collect(),
        }
    }

    /// Sends the request to `chain[0]` (indexes into the routes of the config this was built
    /// with), falling back along `chain` before the first byte. `client_headers` went through
    /// [`strip_for_upstream`].
    pub async fn send(
        &self,
        chain: &[usize],
        method: &Method,
        path_and_query: &PathAndQuery,
        mut client_headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answer, ProxyError> {
        let mut last = ProxyError::UpstreamUnreachable;
        for (attempt, &index) in chain.iter().enumerate() {
            let target = self
                .targets
                .get(index)
                .ok_or(ProxyError::UpstreamUnreachable)?;
            let is_last = attempt + 1 == chain.len();
            // The last attempt takes the client's headers; one that may fall back works on a
            // copy, since the next route may put other credentials on them.
            let headers = if is_last {
                std::mem::take(&mut client_headers)
            } else {
                client_headers.clone()
            };
            let (origin, request) = build(target, method, path_and_query, headers, body.clone())?;
            let sent = self.pool.send(origin, request);
            match tokio::time::timeout(self.first_byte_timeout, sent).await {
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry =
                        status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if retry && !is_last {
                        continue;
                    }
                    return Ok(Answer {
                        response,
                        route: index,
                    });
                }
                Ok(Err(_)) => last = ProxyError::UpstreamUnreachable,
                Err(_) => last = ProxyError::UpstreamTimeout,
            }
        }
        Err(last)
    }
}

/// The request for `target`: its origin, and the request with the path and query alone as URI.
fn build<'t>(
    target: &'t Target,
    method: &Method,
    path_and_query: &PathAndQuery,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<(&'t Origin, Request<Bytes>), ProxyError> {
    // A base URL without a path (the usual case) takes the client's path as it was parsed.
    let path_and_query = if target.prefix.is_empty() {
        path_and_query.clone()
    } else {
        PathAndQuery::try_from(format!("{}{path_and_query}", target.prefix))
            .map_err(|_| ProxyError::Malformed)?
    };
    let origin = target
        .origin
        .as_ref()
        .ok_or(ProxyError::UpstreamUnreachable)?;
    match &target.key {
        Key::Provider(format, key) => {
            headers.remove(header::AUTHORIZATION);
            headers.remove("x-api-key");
            let (name, value) = match format {
                Format::OpenAi => (
                    header::AUTHORIZATION,
                    format!("Bearer {}", key.expose_secret()),
                ),
                Format::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose_secret().to_owned(),
                ),
            };
            let mut value =
                HeaderValue::try_from(value).map_err(|_| ProxyError::UpstreamUnreachable)?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Key::Passthrough => {
            for name in [header::AUTHORIZATION, HeaderName::from_static("x-api-key")] {
                if let Some(v) = headers.get_mut(&name) {
                    v.set_sensitive(true);
                }
            }
        }
    }
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if !body.is_empty() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = Uri::from(path_and_query);
    *request.headers_mut() = headers;
    Ok((origin, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `strip_for_upstream` looks for privacy and attribution headers among names that start
    /// with `x-` only.
    #[test]
    fn privacy_and_attribution_headers_start_with_x() {
        assert!(PRIVACY_HEADERS.iter().all(|h| h.as_str().starts_with("x-")));
        assert!(ATTRIBUTION_HEADER_PREFIX.starts_with("x-"));
    }

    /// The fields left are in the order that removing each unwanted name, in map order, one
    /// by one gives them, however many go (more than fit on the stack too), with and without
    /// names listed in `Connection`.
    #[test]
    fn stripping_leaves_the_order_of_removals_in_map_order() {
        for listed in [false, true] {
            let mut headers = HeaderMap::new();
            for i in 0..12 {
                for (name, value) in [
                    (format!("x-drop-{i}"), "d"),
                    (format!("x-keep-{i}"), "k"),
                    ("host".to_owned(), "h"),
                ] {
                    let name = HeaderName::try_from(name).unwrap();
                    headers.append(name, HeaderValue::from_static(value));
                }
            }
            let drop = |name: &HeaderName| name.as_str().starts_with("x-drop-");
            if listed {
                let list: Vec<String> = (0..12).map(|i| format!("x-drop-{i}")).collect();
                let list = HeaderValue::try_from(list.join(", ")).unwrap();
                headers.append(header::CONNECTION, list);
            }
            let mut expected = headers.clone();
            let unwanted: Vec<HeaderName> = expected
                .keys()
                .filter(|name| not_forwarded(name) || drop(name))
                .cloned()
                .collect();
            for name in unwanted {
                expected.remove(name);
            }
            if listed {
                strip_hop_by_hop(&mut headers);
            } else {
                strip(&mut headers, drop);
            }
            let left: Vec<_> = headers.iter().collect();
            assert_eq!(left, expected.iter().collect::<Vec<_>>());
            assert_eq!(left.len(), 12);
        }
    }

    #[test]
    fn what_is_never_forwarded_goes_in_one_pass() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "h"),
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("content-encoding", "gzip"),
            ("connection", "keep-alive, x-drop"),
            ("keep-alive", "timeout=5"),
            ("x-drop", "1"),
            ("x-pii-types", "email"),
            ("x-lethe-tag-team", "a"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-custom", "kept"),
            ("authorization", "Bearer k"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_for_upstream(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type", "x-custom"]);
    }
}
