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
use http::{Method, Request, Response, Uri};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::ExposeSecret;

use super::error::ProxyError;
use super::policy::PRIVACY_HEADERS;
use super::pool::{Pool, UpstreamBody};
use crate::config::{Config, Format, ProviderKey, Route};
use crate::dns::Resolver;
use crate::metrics::ATTRIBUTION_HEADER_PREFIX;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), plus those Lethe
/// sets itself.
const NOT_FORWARDED: [HeaderName; 18] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::CONTENT_LENGTH,
    header::ACCEPT_ENCODING,
    header::EXPECT,
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-real-ip"),
];

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
            || PRIVACY_HEADERS.contains(name)
            || name.as_str().starts_with(ATTRIBUTION_HEADER_PREFIX)
    });
}

/// Removes hop-by-hop headers and those `also` names, in one pass over the headers present.
fn strip(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    if headers.is_empty() {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    // One pass over the (few) headers present, not one lookup per name that might be.
    let unwanted: Vec<HeaderName> = headers
        .keys()
        .filter(|name| NOT_FORWARDED.contains(name) || named.contains(name) || also(name))
        .cloned()
        .collect();
    for name in unwanted {
        headers.remove(name);
    }
}

/// The client side shared by every request.
pub struct Upstream {
    pool: Arc<Pool>,
    first_byte_timeout: Duration,
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
        }
    }

    /// Sends the request to `chain[0]`, falling back along `chain` before the first byte.
    /// `client_headers` went through [`strip_for_upstream`].
    pub async fn send(
        &self,
        config: &Config,
        chain: &[usize],
        method: &Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, ProxyError> {
        let mut last = ProxyError::UpstreamUnreachable;
        for (attempt, &index) in chain.iter().enumerate() {
            let route = &config.routes[index];
            let is_last = attempt + 1 == chain.len();
            let request = build(route, method, path_and_query, client_headers, body.clone())?;
            match tokio::time::timeout(self.first_byte_timeout, self.pool.send(request)).await {
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

fn build(
    route: &Route,
    method: &Method,
    path_and_query: &str,
    client_headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Bytes>, ProxyError> {
    let base = &route.base_url;
    let prefix = base.path().trim_end_matches('/');
    let uri = Uri::builder()
        .scheme(
            base.scheme()
                .cloned()
                .ok_or(ProxyError::UpstreamUnreachable)?,
        )
        .authority(
            base.authority()
                .cloned()
                .ok_or(ProxyError::UpstreamUnreachable)?,
        )
        .path_and_query(format!("{prefix}{path_and_query}"))
        .build()
        .map_err(|_| ProxyError::Malformed)?;
    let mut headers = client_headers.clone();
    if let ProviderKey::Secret(key) = &route.key {
        headers.remove(header::AUTHORIZATION);
        headers.remove("x-api-key");
        let (name, value) = match route.format {
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
    } else {
        for name in [header::AUTHORIZATION, HeaderName::from_static("x-api-key")] {
            if let Some(v) = headers.get_mut(&name) {
                v.set_sensitive(true);
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
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}
