//! `lethe-mock-provider`: a mock LLM provider for integration tests and end-to-end benchmarks.
//!
//! A real HTTP server (HTTP/1.1 and h2c on plain TCP, loopback only) that speaks the OpenAI and
//! Anthropic wire formats closely enough for Lethe to proxy it like the real thing. Its answers
//! are deterministic and steered by request headers, so tests can provoke slow, fragmented,
//! broken or failing responses. It keeps no logs; it is built to stay out of the way of load
//! generators (multi-threaded runtime, no per-request output).
//!
//! # Command line
//!
//! ```text
//! lethe-mock-provider [--listen ADDR] [--require-key KEY]
//! ```
//!
//! * `--listen ADDR`: socket address to bind, default `127.0.0.1:0` (any free port). Addresses
//!   that are not loopback are refused.
//! * `--require-key KEY`: demand a key. OpenAI paths then need `authorization: Bearer KEY`, the
//!   Anthropic path `x-api-key: KEY`; otherwise the answer is a provider-shaped 401.
//!
//! Once bound it prints exactly one line to stdout, `listening on 127.0.0.1:PORT` (the address
//! actually bound), and nothing else afterwards.
//!
//! # Endpoints
//!
//! | Method and path              | Format                                             |
//! |------------------------------|----------------------------------------------------|
//! | `POST /v1/chat/completions`  | OpenAI chat completion / `chat.completion.chunk`s  |
//! | `POST /v1/completions`       | OpenAI legacy `text_completion`                    |
//! | `POST /v1/responses`         | OpenAI Responses (object or typed SSE events)      |
//! | `POST /v1/embeddings`        | OpenAI embeddings, 8 deterministic floats each     |
//! | `GET /v1/models`             | OpenAI model list                                  |
//! | `POST /v1/messages`          | Anthropic message / message stream                 |
//! | `GET /__mock/requests`       | the last 256 requests received, as a JSON array    |
//! | `DELETE /__mock/requests`    | forget the recorded requests                       |
//!
//! Anything else is a 404 with an OpenAI-shaped error. Request bodies of the POST endpoints must
//! be JSON objects, else the answer is a provider-shaped 400. `"stream": true` turns on
//! streaming (`text/event-stream`); otherwise the answer is one JSON object with usage.
//!
//! The reply text is the `x-mock-reply` header when present, otherwise an echo: `"echo: "`
//! followed by the text of the last message (chat and Anthropic: the message `content` string
//! or its concatenated `text` parts; completions: the `prompt`; responses: the `input` string
//! or the text of the last input item).
//!
//! Each recorded request is `{"method", "path", "query", "headers", "body"}`: header names are
//! lowercased (repeated headers are joined with `", "`) and the body is a string (invalid UTF-8
//! replaced). Requests to `/__mock/` paths are not recorded.
//!
//! # Control headers
//!
//! | Header                       | Effect                                                      |
//! |------------------------------|-------------------------------------------------------------|
//! | `x-mock-reply: TEXT`         | reply with TEXT instead of the echo                         |
//! | `x-mock-delta-chars: N`      | characters (not bytes) per streamed delta, default 4        |
//! | `x-mock-tool-call: NAME`     | chat, Anthropic: call tool NAME with `{"text": REPLY}`      |
//! | `x-mock-refusal: any`        | chat: answer with `refusal` instead of `content`            |
//! | `x-mock-status: CODE`        | answer with status CODE (not 2xx), provider-shaped error    |
//! | `x-mock-delay-ms: N`         | wait N ms before sending the response headers               |
//! | `x-mock-event-delay-ms: N`   | wait N ms between stream events                             |
//! | `x-mock-write-bytes: N`      | send the body in pieces of at most N bytes, one write each  |
//! | `x-mock-write-delay-us: N`   | wait N µs between pieces (timer resolution is about 1 ms)   |
//! | `x-mock-fail-after-bytes: N` | abort after N body bytes: the response never completes      |
//!
//! Details:
//!
//! * Streams mirror the real ones. Chat: a role chunk, content deltas, a chunk with an empty
//!   delta and `finish_reason`, with `stream_options.include_usage` a `usage: null` on every
//!   chunk and a final `choices: []` usage chunk, then `data: [DONE]`; `n` > 1 interleaves
//!   choices. Anthropic: `message_start`, per block `content_block_start` (the first followed
//!   by `ping`), deltas, `content_block_stop`, then `message_delta` and `message_stop`. A
//!   request with a `thinking` object (other than `{"type": "disabled"}`) first gets a
//!   thinking block (`"thinking: " + reply`, `thinking_delta`s, a `signature_delta`) at index 0,
//!   then the text block at index 1.
//! * With `x-mock-tool-call`, chat streams `tool_calls` deltas (id `call_mock`, finish reason
//!   `tool_calls`); Anthropic streams a `tool_use` block of `input_json_delta`s (stop reason
//!   `tool_use`). The arguments are split into deltas like text.
//! * `x-mock-status` error types follow the code: 400 `invalid_request_error`, 401
//!   `authentication_error`, 403 `permission_error`, 404 `not_found_error` (Anthropic), 413
//!   `request_too_large`, 429 `rate_limit_error` (with `retry-after: 1`), 500 `api_error`
//!   (Anthropic) or `server_error` (OpenAI), 529 `overloaded_error`; other 4xx codes are
//!   `invalid_request_error`, other 5xx like 500. The key check comes first, the header delay
//!   applies to every answer.
//! * Pieces from `x-mock-write-bytes` are separate writes: the headers go out first, and after
//!   each piece the body pauses (yields, or sleeps `x-mock-write-delay-us`), which makes the
//!   server flush it. Over HTTP/2 every piece is its own DATA frame, but frames may share a
//!   socket write unless `x-mock-write-delay-us` is set.
//! * `x-mock-reply` and `x-mock-tool-call` values are percent-decoded; `x-mock-tool-call` and
//!   `x-mock-refusal` are ignored by endpoints without tool calls or refusals.
//! * `x-mock-fail-after-bytes` ends the body with an error once N bytes are out: HTTP/1.1
//!   connections are dropped (no terminating chunk, or short of `content-length`), HTTP/2
//!   streams are reset. A body shorter than N completes normally. It applies to streamed and
//!   non-streamed bodies alike, as do the write controls.
//! * Non-numeric or out-of-range control values are ignored.

// A test tool: it reports on stdout/stderr by design, and bad setup should stop it at once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    clippy::unwrap_used
)]

#[macro_use]
mod json;

mod anthropic;
mod body;
mod openai;
mod wire;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use body::{MockBody, Pacing};
use json::J;
use wire::{json_bytes, percent_decode, Reply};

/// How many requests the recorder keeps.
const RECORDED: usize = 256;

/// A rendered answer before pacing: either one JSON document or a list of SSE events.
pub(crate) struct Rendered {
    events: Vec<Bytes>,
    stream: bool,
}

impl Rendered {
    /// A single JSON document.
    pub(crate) fn json(body: Bytes) -> Self {
        Self {
            events: vec![body],
            stream: false,
        }
    }

    /// A `text/event-stream` of events.
    pub(crate) fn sse(events: Vec<Bytes>) -> Self {
        Self {
            events,
            stream: true,
        }
    }
}

/// One request as received, kept for `GET /__mock/requests`.
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn to_json(&self) -> Value {
        let mut headers = serde_json::Map::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            match headers.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
                }
            }
        }
        json!({
            "method": self.method.as_str(),
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

/// State shared by all connections.
struct State {
    require_key: Option<String>,
    recorded: Mutex<VecDeque<Recorded>>,
}

impl State {
    fn recorded(&self) -> std::sync::MutexGuard<'_, VecDeque<Recorded>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, parts: &Parts, body: &Bytes) {
        let entry = Recorded {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            body: body.clone(),
        };
        let mut recorded = self.recorded();
        if recorded.len() == RECORDED {
            recorded.pop_front();
        }
        recorded.push_back(entry);
    }
}

/// Which provider an error body imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenAi,
    Anthropic,
}

/// The known endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Models,
    Messages,
}

impl Endpoint {
    fn of(method: &Method, path: &str) -> Option<Self> {
        let endpoint = match path {
            "/v1/chat/completions" => Self::Chat,
            "/v1/completions" => Self::Completions,
            "/v1/embeddings" => Self::Embeddings,
            "/v1/responses" => Self::Responses,
            "/v1/models" => Self::Models,
            "/v1/messages" => Self::Messages,
            _ => return None,
        };
        let expected = if endpoint == Self::Models {
            Method::GET
        } else {
            Method::POST
        };
        (*method == expected).then_some(endpoint)
    }

    fn shape(self) -> Shape {
        if self == Self::Messages {
            Shape::Anthropic
        } else {
            Shape::OpenAi
        }
    }
}

/// The control headers of one request.
struct Controls {
    status: Option<StatusCode>,
    delay: Option<Duration>,
    pacing: Pacing,
    reply: Option<String>,
    delta_chars: usize,
    tool_call: Option<String>,
    refusal: bool,
}

/// A header's value parsed as a number (or anything else `FromStr`).
fn header_parse<T: FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Controls {
    fn from_headers(headers: &HeaderMap) -> Self {
        let status = header_parse::<u16>(headers, "x-mock-status")
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|code| !code.is_success());
        let millis = |name| header_parse::<u64>(headers, name).map(Duration::from_millis);
        Self {
            status,
            delay: millis("x-mock-delay-ms"),
            pacing: Pacing {
                write_bytes: header_parse::<usize>(headers, "x-mock-write-bytes")
                    .filter(|&n| n > 0),
                write_delay: header_parse::<u64>(headers, "x-mock-write-delay-us")
                    .map(Duration::from_micros),
                event_delay: millis("x-mock-event-delay-ms"),
                fail_after: header_parse::<u64>(headers, "x-mock-fail-after-bytes"),
            },
            reply: headers
                .get("x-mock-reply")
                .map(|v| percent_decode(v.as_bytes())),
            delta_chars: header_parse::<usize>(headers, "x-mock-delta-chars")
                .filter(|&n| n > 0)
                .unwrap_or(4),
            tool_call: headers
                .get("x-mock-tool-call")
                .map(|v| percent_decode(v.as_bytes())),
            refusal: headers.contains_key("x-mock-refusal"),
        }
    }
}

/// Builds a response around a rendered answer.
fn respond(status: StatusCode, rendered: Rendered, pacing: Pacing) -> Response<MockBody> {
    let content_type = if rendered.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut response = Response::new(MockBody::new(rendered.events, !rendered.stream, pacing));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if rendered.stream {
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    }
    response
}

/// A provider-shaped error response.
fn error(shape: Shape, status: StatusCode, message: &str, pacing: Pacing) -> Response<MockBody> {
    let kind = match (status.as_u16(), shape) {
        (401, _) => "authentication_error",
        (403, _) => "permission_error",
        (404, Shape::Anthropic) => "not_found_error",
        (413, _) => "request_too_large",
        (429, _) => "rate_limit_error",
        (529, _) => "overloaded_error",
        (500..=599, Shape::Anthropic) => "api_error",
        (500..=599, Shape::OpenAi) => "server_error",
        _ => "invalid_request_error",
    };
    let body = match shape {
        Shape::Anthropic => obj! {
            "type": "error",
            "error": obj! { "type": kind, "message": message },
        },
        Shape::OpenAi => {
            let code = match status.as_u16() {
                401 => Some("invalid_api_key"),
                429 => Some("rate_limit_exceeded"),
                _ => None,
            };
            obj! {
                "error": obj! { "message": message, "type": kind, "param": J::Null, "code": code },
            }
        }
    };
    let mut response = respond(status, Rendered::json(json_bytes(&body)), pacing);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    response
}

/// Whether the request carries the required key, if one is required.
fn authorized(state: &State, shape: Shape, headers: &HeaderMap) -> bool {
    let Some(key) = &state.require_key else {
        return true;
    };
    let presented = match shape {
        Shape::OpenAi => headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        Shape::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
    };
    presented == Some(key.as_str())
}

/// `GET` / `DELETE /__mock/requests`.
fn recorder(state: &State, method: &Method) -> Response<MockBody> {
    let pacing = Pacing::default();
    match *method {
        Method::GET => {
            let list: Vec<Value> = state.recorded().iter().map(Recorded::to_json).collect();
            respond(StatusCode::OK, Rendered::json(json_bytes(&list)), pacing)
        }
        Method::DELETE => {
            state.recorded().clear();
            let mut response = Response::new(MockBody::new(Vec::new(), true, pacing));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        _ => error(
            Shape::OpenAi,
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET or DELETE",
            pacing,
        ),
    }
}

/// Answers one request.
async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        let response = error(
            Shape::OpenAi,
            StatusCode::BAD_REQUEST,
            "could not read the request body",
            Pacing::default(),
        );
        return Ok(response);
    };
    let path = parts.uri.path();
    if path == "/__mock/requests" {
        return Ok(recorder(&state, &parts.method));
    }
    state.record(&parts, &body);
    let controls = Controls::from_headers(&parts.headers);
    if let Some(delay) = controls.delay {
        tokio::time::sleep(delay).await;
    }
    Ok(answer(&state, &parts, &body, &controls))
}

/// The answer to a recorded request, once the header delay is over.
fn answer(state: &State, parts: &Parts, body: &[u8], controls: &Controls) -> Response<MockBody> {
    let pacing = controls.pacing;
    let Some(endpoint) = Endpoint::of(&parts.method, parts.uri.path()) else {
        let message = format!("Invalid URL ({} {})", parts.method, parts.uri.path());
        return error(Shape::OpenAi, StatusCode::NOT_FOUND, &message, pacing);
    };
    let shape = endpoint.shape();
    if !authorized(state, shape, &parts.headers) {
        let message = match shape {
            Shape::OpenAi => "Incorrect API key provided.",
            Shape::Anthropic => "invalid x-api-key",
        };
        return error(shape, StatusCode::UNAUTHORIZED, message, pacing);
    }
    if let Some(status) = controls.status {
        let message = format!("mock provider error {}", status.as_u16());
        return error(shape, status, &message, pacing);
    }
    if endpoint == Endpoint::Models {
        return respond(StatusCode::OK, openai::models(), pacing);
    }
    let request = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let message = match shape {
                Shape::OpenAi => "We could not parse the JSON body of your request.",
                Shape::Anthropic => "The request body is not valid JSON.",
            };
            return error(shape, StatusCode::BAD_REQUEST, message, pacing);
        }
    };
    let (last, prompt_chars) = match endpoint {
        Endpoint::Chat => openai::chat_input(&request),
        Endpoint::Completions => openai::completion_input(&request),
        Endpoint::Responses => openai::responses_input(&request),
        Endpoint::Messages => anthropic::messages_input(&request),
        Endpoint::Embeddings | Endpoint::Models => (String::new(), 0),
    };
    let reply = Reply {
        text: controls
            .reply
            .clone()
            .unwrap_or_else(|| format!("echo: {last}")),
        delta_chars: controls.delta_chars,
        tool_call: controls.tool_call.clone(),
        refusal: controls.refusal,
    };
    let rendered = match endpoint {
        Endpoint::Chat => openai::chat(&request, &reply, prompt_chars),
        Endpoint::Completions => openai::completions(&request, &reply, prompt_chars),
        Endpoint::Responses => openai::responses(&request, &reply, prompt_chars),
        Endpoint::Embeddings => openai::embeddings(&request),
        Endpoint::Messages => anthropic::messages(&request, &reply, prompt_chars),
        Endpoint::Models => openai::models(),
    };
    respond(StatusCode::OK, rendered, pacing)
}

/// Parsed command line.
struct Args {
    listen: SocketAddr,
    require_key: Option<String>,
}

const USAGE: &str = "usage: lethe-mock-provider [--listen ADDR] [--require-key KEY]";

fn parse_args() -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut require_key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => {
                let raw = value("--listen")?;
                listen = raw
                    .parse()
                    .map_err(|_| format!("--listen: not a socket address: {raw}"))?;
            }
            "--require-key" => require_key = Some(value("--require-key")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    if !listen.ip().is_loopback() {
        return Err(format!("--listen: refusing non-loopback address {listen}"));
    }
    Ok(Args {
        listen,
        require_key,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> ExitCode {
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().expect("local address");
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {local}");
        let _ = stdout.flush();
    }
    let state = Arc::new(State {
        require_key: args.require_key,
        recorded: Mutex::new(VecDeque::with_capacity(RECORDED)),
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar under load: back off briefly and carry on.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&state)));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
