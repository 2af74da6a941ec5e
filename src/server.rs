//! Listener, TLS, connection limits and graceful drain.
//!
//! # Design
//! One TCP listener, bound before anything else is served, or taken from systemd (socket
//! activation: `LISTEN_FDS`, `LISTEN_PID`, the first passed descriptor, fd 3) so that a unit
//! can serve port 443 without any capability; [`inherited_listener`] reads it before the
//! runtime starts. Each accepted connection takes a
//! permit from a semaphore of `server.max_connections`; when none is left the accept loop waits,
//! so excess clients queue in the kernel's backlog instead of exhausting memory. With TLS
//! configured, rustls offers TLS 1.3 only, with ALPN `h2` and `http/1.1`; the handshake must
//! finish within `server.header_timeout_ms`, and so must every request head (slowloris).
//!
//! On SIGTERM or SIGINT Lethe stops accepting, `/readyz` turns 503, open requests and streams
//! get up to [`DRAIN`] to finish, then the process exits.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::metrics::CONNECTIONS;
use crate::proxy::Proxy;

/// How long open requests may run after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Why the server could not start. Messages carry paths and addresses, never content.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The certificate or key file could not be read or parsed, or the two do not belong
    /// together.
    #[error("`{key}`: cannot load TLS material from {path}")]
    Tls {
        /// `server.tls_cert` or `server.tls_key`.
        key: &'static str,
        /// The file.
        path: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {0}")]
    Bind(SocketAddr),
    /// The descriptor systemd passed is not a usable TCP listener.
    #[error("the socket passed in LISTEN_FDS is not a TCP listener")]
    Inherited,
    /// Plain HTTP on a passed listener that is not on loopback, without consent.
    #[error("plain HTTP is served on loopback only; the socket passed in LISTEN_FDS is on {0} (set server.tls_cert and server.tls_key, or server.allow_plaintext = true)")]
    Plaintext(SocketAddr),
    /// The scrubbing policy did not compile.
    #[error("the scrubbing policy does not compile")]
    Policy,
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime,
}

/// Reads the certificate chain and key, and builds a TLS 1.3-only acceptor.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    let cert_error = || StartError::Tls {
        key: "server.tls_cert",
        path: cert.display().to_string(),
    };
    let key_error = || StartError::Tls {
        key: "server.tls_key",
        path: key.display().to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|_| cert_error())?;
    if certs.is_empty() {
        return Err(cert_error());
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|_| key_error())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|_| key_error())?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

/// A bound listener plus what serving it needs; built before the sandbox locks.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    config: Arc<Config>,
}

impl Server {
    /// Loads TLS material, takes `inherited` (from [`inherited_listener`]) or binds
    /// `server.listen`, and builds the proxy. Call inside the runtime.
    pub async fn bind(
        config: Arc<Config>,
        inherited: Option<std::net::TcpListener>,
    ) -> Result<Server, StartError> {
        let tls = match &config.server.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let listener = match inherited {
            Some(listener) => {
                let addr = listener.local_addr().map_err(|_| StartError::Inherited)?;
                if tls.is_none() && !addr.ip().is_loopback() && !config.server.allow_plaintext {
                    return Err(StartError::Plaintext(addr));
                }
                listener
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(listener))
                    .map_err(|_| StartError::Inherited)?
            }
            None => TcpListener::bind(config.server.listen)
                .await
                .map_err(|_| StartError::Bind(config.server.listen))?,
        };
        let proxy = Arc::new(Proxy::new(config.clone()).map_err(|_| StartError::Policy)?);
        Ok(Server {
            listener,
            tls,
            proxy,
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether clients speak TLS to this server.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let Server {
            listener,
            tls,
            proxy,
            config,
        } = self;
        let limit = Arc::new(Semaphore::new(config.server.max_connections));
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.server.header_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_concurrent_streams(256);
        let builder = Arc::new(builder);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = limit.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    // Out of descriptors or a reset during accept: back off, keep serving.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            let builder = builder.clone();
            let service = service_fn(move |request| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(request).await) }
            });
            match &tls {
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    CONNECTIONS.up();
                    tokio::spawn(async move {
                        let _ = conn.await;
                        CONNECTIONS.down();
                        drop(permit);
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let timeout = config.server.header_timeout;
                    let watcher = graceful.watcher();
                    CONNECTIONS.up();
                    tokio::spawn(async move {
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(timeout, acceptor.accept(stream)).await
                        {
                            let conn = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                        CONNECTIONS.down();
                        drop(permit);
                    });
                }
            }
        }
        proxy.drain();
        drop(listener);
        let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    }
}

/// The listening socket systemd passed (socket activation), if any: the first descriptor of
/// `LISTEN_FDS` when `LISTEN_PID` names this process. Call before the runtime starts: it
/// removes the two variables from the environment.
pub fn inherited_listener() -> Result<Option<std::net::TcpListener>, StartError> {
    listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|_| StartError::Inherited)
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed by the call itself, before the
/// sandbox locks, not when the future is first polled. Call inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    let wait = |signal: Option<Signal>| async move {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    async move {
        tokio::select! {
            () = wait(term) => {}
            () = wait(interrupt) => {}
        }
    }
}
