//! Upstream connections: a pool per origin. An HTTP/1.1 connection is driven by the request
//! that uses it; an HTTP/2 connection is shared and runs as a task of its own.
//!
//! # Why not hyper's pooled client
//! hyper's pooled client runs every connection as a separate task and hands the response body
//! over through a one-chunk channel. Providers send one SSE event per chunk, so every event
//! cost a wake-up of that task and a scheduler turn before the body saw it. Here an HTTP/1.1
//! body reads its connection itself ([`super::h1`]), and each of its frames is everything
//! one socket read brought: a burst of events is processed in one go, with no task switch.
//! HTTP/2 carries many requests per connection, so its connection (hyper's) keeps its own task;
//! hyper buffers each stream's received data, so a body reads a burst without waiting on that
//! task.
//!
//! # Rules
//! - A connection returns to the pool only once its response body was read to the end. A body
//!   dropped early (the client went away) drops its connection, which cancels the upstream
//!   request.
//! - An idle connection is polled once when it is taken from the pool, so one the peer closed
//!   is seen then and skipped. Idle connections are dropped after
//!   `upstream.pool_idle_timeout_ms`, by the next checkout or by a sweep. At most
//!   `upstream.pool_max_idle_per_host` idle connections are kept per origin.
//! - A request that was not written on a reused connection is sent once more, on a new
//!   connection. A request that was written is never sent twice.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower_service::Service;

use super::h1::{self, Broken, SendError};
use crate::dns::Resolver;

/// Makes TCP connections, with TLS for `https` origins.
pub type Connector = HttpsConnector<HttpConnector<Resolver>>;

type H2Sender = http2::SendRequest<Full<Bytes>>;

/// Scheme and authority: what a connection can be reused for. Made once per route.
#[derive(Clone)]
pub struct Origin {
    scheme: Scheme,
    authority: Authority,
    /// The `Host` field of an HTTP/1.1 request: the authority without the scheme's default
    /// port.
    host: Arc<str>,
}

struct Idle {
    conn: h1::Conn,
    since: Instant,
}

/// Why no response came. The caller turns both into a 502.
#[derive(Debug)]
pub struct Unanswered;

/// The upstream connection pool shared by every request.
///
/// Keyed by origin in plain lists: the origins are the few base URLs of the configured
/// routes, and comparing one costs less than hashing its authority byte by byte.
pub struct Pool {
    connector: Connector,
    idle: Mutex<Vec<(Origin, Vec<Idle>)>>,
    shared: Mutex<Vec<(Origin, H2Sender)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// A pool that connects with `connector`. Starts the sweep of idle connections, so call
    /// inside the runtime.
    pub fn new(connector: Connector, max_idle: usize, idle_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            connector,
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        });
        let weak = Arc::downgrade(&pool);
        // An idle connection outlives its timeout by at most a quarter of it (or 30 s).
        let period = (idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(pool) => pool.sweep(),
                    None => return,
                }
            }
        });
        pool
    }

    /// Sends `request` (its URI the path and query alone) to `origin` on a pooled or new
    /// connection. Resolves when the response head is in; the body is read through the
    /// returned [`UpstreamBody`].
    pub async fn send(
        self: &Arc<Self>,
        origin: &Origin,
        request: Request<Bytes>,
    ) -> Result<Response<UpstreamBody>, Unanswered> {
        // Plain HTTP is HTTP/1.1 only (HTTP/2 comes from TLS negotiation).
        let shared = (origin.scheme == Scheme::HTTPS)
            .then(|| self.shared_sender(origin))
            .flatten();
        if let Some(sender) = shared {
            return send_http2(sender, origin, request).await;
        }
        // Written once, sent as is on a reused connection and, if unsent there, on a new one.
        let wire = Wire::of(&request, origin);
        if let Some(conn) = self.checkout(origin) {
            match self.send_http1(origin, conn, &wire).await {
                Ok(response) => return Ok(response),
                Err(SendError::Unsent) => {}
                Err(SendError::Failed) => return Err(Unanswered),
            }
        }
        match self.connect(origin).await? {
            Fresh::Http1(conn) => self
                .send_http1(origin, conn, &wire)
                .await
                .map_err(|_| Unanswered),
            Fresh::Http2(sender) => {
                self.share(origin.clone(), sender.clone());
                send_http2(sender, origin, request).await
            }
        }
    }

    /// Sends on an HTTP/1.1 connection and reads the response head.
    async fn send_http1(
        self: &Arc<Self>,
        origin: &Origin,
        conn: h1::Conn,
        wire: &Wire,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let (head, body) = conn.send(&wire.bytes, &wire.method).await?;
        Ok(head.map(|()| UpstreamBody {
            inner: Inner::Http1 {
                body,
                origin: origin.clone(),
                pool: Arc::downgrade(self),
            },
        }))
    }

    async fn connect(&self, origin: &Origin) -> Result<Fresh, Unanswered> {
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| Unanswered)?;
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(|_| Unanswered)?;
        if io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|_| Unanswered)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Fresh::Http2(sender))
        } else {
            Ok(Fresh::Http1(h1::Conn::new(TokioIo::new(io))))
        }
    }

    fn shared_sender(&self, origin: &Origin) -> Option<H2Sender> {
        let mut shared = lock(&self.shared);
        let at = shared.iter().position(|(o, _)| o == origin)?;
        if shared[at].1.is_closed() {
            shared.swap_remove(at);
            return None;
        }
        Some(shared[at].1.clone())
    }

    fn share(&self, origin: Origin, sender: H2Sender) {
        let mut shared = lock(&self.shared);
        match shared.iter_mut().find(|(o, _)| *o == origin) {
            Some((_, kept)) => *kept = sender,
            None => shared.push((origin, sender)),
        }
    }

    /// The most recently used idle connection to `origin` that is still open.
    fn checkout(&self, origin: &Origin) -> Option<h1::Conn> {
        let mut idle = lock(&self.idle);
        let (_, list) = idle.iter_mut().find(|(o, _)| o == origin)?;
        while let Some(mut entry) = list.pop() {
            // Entries are in the order they were returned: when the newest is too old, all are.
            if entry.since.elapsed() >= self.idle_timeout {
                list.clear();
                break;
            }
            if entry.conn.usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put(&self, origin: &Origin, conn: h1::Conn) {
        let mut idle = lock(&self.idle);
        let at = match idle.iter().position(|(o, _)| o == origin) {
            Some(at) => at,
            None => {
                idle.push((origin.clone(), Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[at].1;
        if list.len() < self.max_idle {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drops idle connections that timed out or that the peer closed.
    fn sweep(&self) {
        let mut idle = lock(&self.idle);
        for (_, list) in idle.iter_mut() {
            list.retain_mut(|e| e.since.elapsed() < self.idle_timeout && e.conn.usable());
        }
        idle.retain(|(_, list)| !list.is_empty());
        lock(&self.shared).retain(|(_, sender)| !sender.is_closed());
    }
}

enum Fresh {
    Http1(h1::Conn),
    Http2(H2Sender),
}

/// Copies of one route's origin share their `host`, which settles most comparisons without
/// comparing the authority (case-insensitively, byte by byte). `host` follows from the scheme
/// and the authority, so those two decide the rest.
impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        Arc::ptr_eq(&self.host, &other.host)
            || (self.scheme == other.scheme && self.authority == other.authority)
    }
}

impl Eq for Origin {}

impl Origin {
    /// The origin of an absolute `uri`; `None` without a scheme or an authority.
    pub fn of(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme()?.clone();
        let authority = uri.authority()?.clone();
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port == default_port => authority.host(),
            _ => authority.as_str(),
        };
        Some(Origin {
            host: Arc::from(host),
            scheme,
            authority,
        })
    }
}

/// A request serialised for HTTP/1.1, and its method (which decides whether the answer has a
/// body).
struct Wire {
    bytes: Vec<u8>,
    method: http::Method,
}

impl Wire {
    /// HTTP/1.1 wants the path alone on the request line and the authority in `Host` (without
    /// the scheme's default port).
    fn of(request: &Request<Bytes>, origin: &Origin) -> Wire {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let bytes = h1::encode_request(
            request.method(),
            path,
            &origin.host,
            request.headers(),
            request.body(),
        );
        Wire {
            bytes,
            method: request.method().clone(),
        }
    }
}

/// Sends on a shared HTTP/2 connection, which wants the absolute URI.
async fn send_http2(
    mut sender: H2Sender,
    origin: &Origin,
    mut request: Request<Bytes>,
) -> Result<Response<UpstreamBody>, Unanswered> {
    let mut uri = std::mem::take(request.uri_mut()).into_parts();
    uri.scheme = Some(origin.scheme.clone());
    uri.authority = Some(origin.authority.clone());
    *request.uri_mut() = Uri::from_parts(uri).map_err(|_| Unanswered)?;
    sender.ready().await.map_err(|_| Unanswered)?;
    let response = sender
        .send_request(request.map(Full::new))
        .await
        .map_err(|_| Unanswered)?;
    Ok(response.map(|incoming| UpstreamBody {
        inner: Inner::Http2(incoming),
    }))
}

/// A response body from upstream. Over HTTP/1.1 it reads its own connection, which goes back
/// to the pool once the body has been read to the end.
pub struct UpstreamBody {
    inner: Inner,
}

enum Inner {
    Http1 {
        body: h1::Body,
        origin: Origin,
        pool: Weak<Pool>,
    },
    Http2(Incoming),
}

impl UpstreamBody {
    /// Whether data reaches this body from another task (an HTTP/2 connection's), so that a
    /// turn of the scheduler may bring more of a burst. An HTTP/1.1 body reads its socket
    /// itself: when it has nothing, the socket has nothing.
    pub fn fed_by_another_task(&self) -> bool {
        matches!(self.inner, Inner::Http2(_))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        match &mut self.get_mut().inner {
            Inner::Http1 { body, origin, pool } => {
                let polled = body.poll_data(cx);
                if let Poll::Ready(None) = polled {
                    if let (Some(conn), Some(pool)) = (body.reusable(), pool.upgrade()) {
                        pool.put(origin, conn);
                    }
                }
                polled.map(|data| data.map(|data| data.map(Frame::data)))
            }
            Inner::Http2(incoming) => Pin::new(incoming)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|_| Broken))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Http1 { body, .. } => body.is_end_stream(),
            Inner::Http2(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Http1 { body, .. } => body
                .exact_len()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
            Inner::Http2(incoming) => incoming.size_hint(),
        }
    }
}
