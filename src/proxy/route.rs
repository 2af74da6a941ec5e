//! Which endpoint a request is for, and which upstream routes may serve it.

use http::{HeaderMap, Method};

use super::error::ProxyError;
use super::events::Api;
use crate::config::{Config, Format};

/// The endpoints Lethe serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    Responses,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
    /// `GET /v1/models` and `GET /v1/models/{id}`
    Models,
    /// `GET /healthz`: the process serves.
    Healthz,
    /// `GET /readyz`: the process accepts traffic (not draining).
    Readyz,
    /// `GET /api/status`: version, the zero-log facts and the sandbox state.
    ApiStatus,
    /// `POST /v1/privacy/delete`: nothing is stored, so nothing is deleted.
    PrivacyDelete,
    /// `POST /v1/privacy/export`: an empty export.
    PrivacyExport,
}

impl Endpoint {
    /// Classifies a request path (without query).
    pub fn classify(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/v1/chat/completions" => Endpoint::ChatCompletions,
            "/v1/completions" => Endpoint::Completions,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/responses" => Endpoint::Responses,
            "/v1/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" => Endpoint::CountTokens,
            "/v1/models" => Endpoint::Models,
            "/healthz" => Endpoint::Healthz,
            "/readyz" => Endpoint::Readyz,
            "/api/status" => Endpoint::ApiStatus,
            "/v1/privacy/delete" => Endpoint::PrivacyDelete,
            "/v1/privacy/export" => Endpoint::PrivacyExport,
            p if p.strip_prefix("/v1/models/").is_some_and(|id| {
                !id.is_empty()
                    && id.len() <= 256
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._:@".contains(&b))
            }) =>
            {
                Endpoint::Models
            }
            _ => return None,
        })
    }

    /// The only method the endpoint answers.
    pub fn method(self) -> Method {
        match self {
            Endpoint::Models | Endpoint::Healthz | Endpoint::Readyz | Endpoint::ApiStatus => {
                Method::GET
            }
            _ => Method::POST,
        }
    }

    /// The `endpoint` metric tag.
    pub const fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::Models => "models",
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::ApiStatus => "api_status",
            Endpoint::PrivacyDelete => "privacy_delete",
            Endpoint::PrivacyExport => "privacy_export",
        }
    }

    /// The wire format: fixed by the path, except `/v1/models`, which both providers serve;
    /// a request carrying `anthropic-version` is Anthropic's.
    pub fn format(self, headers: &HeaderMap) -> Format {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Format::Anthropic,
            Endpoint::Models if headers.contains_key("anthropic-version") => Format::Anthropic,
            _ => Format::OpenAi,
        }
    }

    /// The event grammar of a streamed answer.
    pub fn api(self) -> Api {
        match self {
            Endpoint::Completions => Api::Completions,
            Endpoint::Responses => Api::Responses,
            Endpoint::Messages | Endpoint::CountTokens => Api::Messages,
            _ => Api::Chat,
        }
    }

    /// Whether the request body names a model that picks the route.
    fn routes_by_model(self) -> bool {
        !matches!(
            self,
            Endpoint::Models
                | Endpoint::Healthz
                | Endpoint::Readyz
                | Endpoint::ApiStatus
                | Endpoint::PrivacyDelete
                | Endpoint::PrivacyExport
        )
    }
}

/// A guess at the provider shape for errors on unknown paths.
pub fn format_for_unknown(path: &str, headers: &HeaderMap) -> Format {
    if path.starts_with("/v1/messages") || headers.contains_key("anthropic-version") {
        Format::Anthropic
    } else {
        Format::OpenAi
    }
}

/// The routes to try, in order: the first route of `format` that serves `model` (with a
/// BAA when `hipaa`), then its fallbacks that qualify too.
pub fn chain(
    config: &Config,
    endpoint: Endpoint,
    format: Format,
    model: Option<&str>,
    hipaa: bool,
) -> Result<Vec<usize>, ProxyError> {
    let qualifies = |i: usize| {
        let r = &config.routes[i];
        r.format == format && (!endpoint.routes_by_model() || r.serves(model))
    };
    let mut candidates = (0..config.routes.len())
        .filter(|&i| qualifies(i))
        .peekable();
    if candidates.peek().is_none() {
        return Err(ProxyError::NoRoute);
    }
    let allowed = |i: &usize| !hipaa || config.routes[*i].hipaa_baa;
    let primary = candidates.find(allowed).ok_or(ProxyError::Forbidden)?;
    let mut chain = vec![primary];
    for i in config.routes[primary]
        .fallback
        .iter()
        .copied()
        .filter(allowed)
    {
        if !chain.contains(&i) {
            chain.push(i);
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths() {
        assert_eq!(
            Endpoint::classify("/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::classify("/v1/models/gpt-4o"),
            Some(Endpoint::Models)
        );
        assert_eq!(Endpoint::classify("/v1/models/../../etc"), None);
        assert_eq!(Endpoint::classify("/v1/files"), None);
        assert_eq!(Endpoint::classify("/v1/chat/completions/"), None);
    }
}
