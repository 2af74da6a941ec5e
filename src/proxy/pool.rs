//! Upstream connections: a pool per origin. An HTTP/1.1 connection is driven by the request
//! that uses it; an HTTP/2 connection is shared and runs as a task of its own.
//!
//! # Why not hyper's pooled client
//! hyper's pooled client runs every connection as a separate task and hands the response body
//! over through a one-chunk channel. Providers send one SSE event per chunk, so every event
//! cost a wake-up of that task and a scheduler turn before the body saw it. Here the body
//! drives its HTTP/1.1 connection itself: when the body has nothing, it polls the
//! connection, which decodes the next chunk from what it has read. A burst of events is then
//! processed in one go, with no task switch. hyper still does all the HTTP parsing. HTTP/2
//! carries many requests per connection, so its connection keeps its own task. hyper buffers
//! each stream's received data, so a body reads a burst without waiting on that task.
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

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::dns::Resolver;

/// Makes TCP connections, with TLS for `https` origins.
pub type Connector = HttpsConnector<HttpConnector<Resolver>>;

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;
type H1Sender = http1::SendRequest<Full<Bytes>>;
type H1Conn = http1::Connection<Io, Full<Bytes>>;
type H2Sender = http2::SendRequest<Full<Bytes>>;

/// Scheme and authority: what a connection can be reused for.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

/// An HTTP/1.1 connection and its request handle. The connection state (buffers included) is
/// large and lives as long as the connection, so it is boxed once.
struct Http1 {
    sender: H1Sender,
    conn: Box<H1Conn>,
}

impl Http1 {
    /// Polls the connection once without waiting: whether it is still open and takes a request.
    fn usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut self.conn).poll(&mut cx).is_pending() && self.sender.is_ready()
    }
}

struct Idle {
    http1: Http1,
    since: Instant,
}

/// Why no response came. The caller turns both into a 502.
#[derive(Debug)]
pub struct Unanswered;

/// The upstream connection pool shared by every request.
pub struct Pool {
    connector: Connector,
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
    shared: Mutex<HashMap<Origin, H2Sender>>,
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
            idle: Mutex::new(HashMap::new()),
            shared: Mutex::new(HashMap::new()),
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

    /// Sends `request` (absolute URI) on a pooled or new connection. Resolves when the
    /// response head is in; the body is read through the returned [`UpstreamBody`].
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, Unanswered> {
        let origin = Origin::of(request.uri()).ok_or(Unanswered)?;
        // Plain HTTP is HTTP/1.1 only (HTTP/2 comes from TLS negotiation).
        let shared = (origin.scheme == Scheme::HTTPS)
            .then(|| self.shared_sender(&origin))
            .flatten();
        if let Some(sender) = shared {
            return send_http2(sender, request).await;
        }
        let absolute = request.uri().clone();
        if let Some(idle) = self.checkout(&origin) {
            to_origin_form(&mut request, &origin);
            match self.send_http1(&origin, idle, request).await {
                Ok(response) => return Ok(response),
                Err(Some(unsent)) => request = unsent,
                Err(None) => return Err(Unanswered),
            }
        }
        match self.connect(&origin).await? {
            Fresh::Http1(http1) => {
                to_origin_form(&mut request, &origin);
                self.send_http1(&origin, http1, request)
                    .await
                    .map_err(|_| Unanswered)
            }
            Fresh::Http2(sender) => {
                *request.uri_mut() = absolute;
                request.headers_mut().remove(header::HOST);
                lock(&self.shared).insert(origin, sender.clone());
                send_http2(sender, request).await
            }
        }
    }

    /// Sends on an HTTP/1.1 connection, driving it until the response head is in. On failure,
    /// gives the request back if it was not written.
    async fn send_http1(
        self: &Arc<Self>,
        origin: &Origin,
        http1: Http1,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, Option<Request<Full<Bytes>>>> {
        let Http1 { mut sender, conn } = http1;
        let mut conn = Some(conn);
        let mut answer = pin!(sender.try_send_request(request));
        let answered = poll_fn(|cx| {
            // The connection writes the request and reads the head; once it has ended, the
            // answer resolves with its error.
            if let Some(c) = conn.as_mut() {
                if Pin::new(c).poll(cx).is_ready() {
                    conn = None;
                }
            }
            answer.as_mut().poll(cx)
        })
        .await;
        match answered {
            Ok(response) => {
                let lease = conn.map(|conn| Lease {
                    http1: Http1 { sender, conn },
                    origin: origin.clone(),
                    pool: Arc::downgrade(self),
                });
                Ok(response.map(|incoming| UpstreamBody { incoming, lease }))
            }
            Err(mut e) => Err(e.take_message()),
        }
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
            let (sender, conn) = http1::handshake(io).await.map_err(|_| Unanswered)?;
            Ok(Fresh::Http1(Http1 {
                sender,
                conn: Box::new(conn),
            }))
        }
    }

    fn shared_sender(&self, origin: &Origin) -> Option<H2Sender> {
        let mut shared = lock(&self.shared);
        match shared.get(origin) {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                shared.remove(origin);
                None
            }
            None => None,
        }
    }

    /// The most recently used idle connection to `origin` that is still open.
    fn checkout(&self, origin: &Origin) -> Option<Http1> {
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(origin)?;
        while let Some(mut entry) = list.pop() {
            // Entries are in the order they were returned: when the newest is too old, all are.
            if entry.since.elapsed() >= self.idle_timeout {
                list.clear();
                break;
            }
            if entry.http1.usable() {
                return Some(entry.http1);
            }
        }
        None
    }

    fn put(&self, origin: Origin, http1: Http1) {
        let mut idle = lock(&self.idle);
        let list = idle.entry(origin).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                http1,
                since: Instant::now(),
            });
        }
    }

    /// Drops idle connections that timed out or that the peer closed.
    fn sweep(&self) {
        let mut idle = lock(&self.idle);
        for list in idle.values_mut() {
            list.retain_mut(|e| e.since.elapsed() < self.idle_timeout && e.http1.usable());
        }
        idle.retain(|_, list| !list.is_empty());
        lock(&self.shared).retain(|_, sender| !sender.is_closed());
    }
}

enum Fresh {
    Http1(Http1),
    Http2(H2Sender),
}

impl Origin {
    fn of(uri: &Uri) -> Option<Origin> {
        Some(Origin {
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
        })
    }
}

/// HTTP/1.1 wants the path alone on the request line and the authority in `Host` (without
/// the scheme's default port).
fn to_origin_form(request: &mut Request<Full<Bytes>>, origin: &Origin) {
    let default_port = if origin.scheme == Scheme::HTTPS {
        443
    } else {
        80
    };
    let host = match origin.authority.port_u16() {
        Some(port) if port == default_port => origin.authority.host(),
        _ => origin.authority.as_str(),
    };
    if let Ok(host) = HeaderValue::from_str(host) {
        request.headers_mut().insert(header::HOST, host);
    }
    if let Some(path) = request.uri().path_and_query().cloned() {
        *request.uri_mut() = Uri::from(path);
    }
}

async fn send_http2(
    mut sender: H2Sender,
    request: Request<Full<Bytes>>,
) -> Result<Response<UpstreamBody>, Unanswered> {
    sender.ready().await.map_err(|_| Unanswered)?;
    let response = sender.send_request(request).await.map_err(|_| Unanswered)?;
    Ok(response.map(|incoming| UpstreamBody {
        incoming,
        lease: None,
    }))
}

/// An HTTP/1.1 connection lent to one response, returned when its body has been read.
struct Lease {
    http1: Http1,
    origin: Origin,
    pool: Weak<Pool>,
}

/// A response body from upstream. Over HTTP/1.1 it drives its own connection.
pub struct UpstreamBody {
    incoming: Incoming,
    lease: Option<Lease>,
}

impl UpstreamBody {
    /// Whether data reaches this body from another task (an HTTP/2 connection's), so that a
    /// turn of the scheduler may bring more of a burst. An HTTP/1.1 body reads its socket
    /// itself: when it has nothing, the socket has nothing.
    pub fn fed_by_another_task(&self) -> bool {
        self.lease.is_none()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut polled = Pin::new(&mut this.incoming).poll_frame(cx);
        if polled.is_pending() {
            if let Some(lease) = this.lease.as_mut() {
                // The connection reads the socket and decodes the next chunk into the body.
                if Pin::new(&mut lease.http1.conn).poll(cx).is_ready() {
                    this.lease = None;
                }
                polled = Pin::new(&mut this.incoming).poll_frame(cx);
            }
        }
        if let Poll::Ready(None) = polled {
            if let Some(lease) = this.lease.take() {
                if let Some(pool) = lease.pool.upgrade() {
                    pool.put(lease.origin, lease.http1);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
