//! The one place where failures become HTTP responses.
//!
//! Every error body is generic, static text in the provider's own error shape, so SDKs raise
//! their usual exceptions. No body ever echoes the request: not a field name, not a value.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::body::{full, ProxyBody};
use crate::config::Format;

/// Why Lethe answered a request itself instead of forwarding the provider's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The body is not JSON, or a field has the wrong shape.
    #[error("the request body is not a valid JSON request")]
    Malformed,
    /// A privacy header has a value Lethe does not support.
    #[error("unsupported value in a privacy header")]
    BadPrivacyHeader,
    /// Gateway authentication failed.
    #[error("invalid or missing API key for this gateway")]
    Unauthorized,
    /// The request is refused by policy (HIPAA mode on a route without a BAA).
    #[error("this request is not allowed by the gateway's compliance policy")]
    Forbidden,
    /// No such endpoint.
    #[error("unknown endpoint")]
    NotFound,
    /// No route serves the requested model.
    #[error("no upstream route serves this model")]
    NoRoute,
    /// The endpoint exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The body is over the configured limit.
    #[error("the request body is too large")]
    TooLarge,
    /// The client paused sending its body for longer than the gateway waits.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The body has a `Content-Encoding` other than `identity`: Lethe scrubs only what it can
    /// read, and forwards only what it scrubbed.
    #[error("compressed request bodies are not supported; send the body without Content-Encoding")]
    EncodedBody,
    /// The upstream could not be reached.
    #[error("the upstream provider is unreachable")]
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    #[error("the upstream provider did not answer in time")]
    UpstreamTimeout,
    /// The upstream sent something Lethe cannot scrub (compressed, not JSON, too large).
    #[error("the upstream response could not be scrubbed, so it was not forwarded")]
    Unscrubbable,
}

impl ProxyError {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::Malformed | ProxyError::BadPrivacyHeader => StatusCode::BAD_REQUEST,
            ProxyError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
            ProxyError::NotFound | ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::EncodedBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::UpstreamUnreachable | ProxyError::Unscrubbable => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A closed-set name for metrics and the error `code`.
    pub fn kind(self) -> &'static str {
        match self {
            ProxyError::Malformed | ProxyError::BadPrivacyHeader | ProxyError::EncodedBody => {
                "invalid_request"
            }
            ProxyError::Unauthorized => "auth",
            ProxyError::Forbidden => "forbidden",
            ProxyError::NotFound => "not_found",
            ProxyError::NoRoute => "model_not_found",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::TooLarge => "too_large",
            ProxyError::BodyTimeout => "client_timeout",
            ProxyError::UpstreamUnreachable => "upstream_unreachable",
            ProxyError::UpstreamTimeout => "timeout",
            ProxyError::Unscrubbable => "upstream_unscrubbable",
        }
    }

    /// The error `type` each provider uses for this status.
    fn provider_type(self, format: Format) -> &'static str {
        match (self, format) {
            (ProxyError::Unauthorized, _) => "authentication_error",
            (ProxyError::Forbidden, _) => "permission_error",
            (ProxyError::NotFound | ProxyError::NoRoute, Format::Anthropic) => "not_found_error",
            (ProxyError::TooLarge, Format::Anthropic) => "request_too_large",
            (
                ProxyError::UpstreamUnreachable
                | ProxyError::UpstreamTimeout
                | ProxyError::Unscrubbable,
                Format::Anthropic,
            ) => "api_error",
            (
                ProxyError::UpstreamUnreachable
                | ProxyError::UpstreamTimeout
                | ProxyError::Unscrubbable,
                Format::OpenAi,
            ) => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The error as a JSON body in `format`'s shape.
    pub fn body(self, format: Format) -> String {
        let message = self.to_string();
        let kind = self.provider_type(format);
        let value = match format {
            Format::OpenAi => serde_json::json!({
                "error": {"message": message, "type": kind, "param": null, "code": self.kind()}
            }),
            Format::Anthropic => serde_json::json!({
                "type": "error",
                "error": {"type": kind, "message": message}
            }),
        };
        value.to_string()
    }

    /// The complete response.
    pub fn response(self, format: Format) -> Response<ProxyBody> {
        let mut response = Response::new(full(Bytes::from(self.body(format))));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-lethe-error", HeaderValue::from_static(self.kind()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_each_provider_shape() {
        let openai: serde_json::Value =
            serde_json::from_str(&ProxyError::TooLarge.body(Format::OpenAi)).unwrap();
        assert_eq!(openai["error"]["type"], "invalid_request_error");
        assert_eq!(openai["error"]["code"], "too_large");
        let anthropic: serde_json::Value =
            serde_json::from_str(&ProxyError::TooLarge.body(Format::Anthropic)).unwrap();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "request_too_large");
        assert_eq!(ProxyError::UpstreamTimeout.status(), 504);
    }
}
