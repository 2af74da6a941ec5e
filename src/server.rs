//! Listener, TLS, connection limits and graceful drain.
//!
//! # Design
//! One TCP listener, bound before anything else is served. Each accepted connection takes a
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
use crate::proxy::privacy::SandboxStatus;
use crate::proxy::Proxy;

/// How long open requests may run after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Why the server could not start. Messages carry paths and addresses, never content.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The certificate or key file could not be read or parsed.
    #[error("cannot load TLS material from {0}")]
    Tls(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}")]
    Bind(SocketAddr),
    /// The scrubbing policy did not compile.
    #[error("the scrubbing policy does not compile")]
    Policy,
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime,
}

/// Reads the certificate chain and key, and builds a TLS 1.3-only acceptor.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|_| StartError::Tls(cert.display().to_string()))?;
    if certs.is_empty() {
        return Err(StartError::Tls(cert.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| StartError::Tls(key.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|_| StartError::Tls(cert.display().to_string()))?;
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
    /// Loads TLS material, binds the listener and builds the proxy. Call inside the runtime.
    pub async fn bind(config: Arc<Config>) -> Result<Server, StartError> {
        let tls = match &config.server.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|_| StartError::Bind(config.server.listen))?;
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

    /// Sets the sandbox state `/api/status` reports.
    pub fn set_sandbox_status(&self, status: SandboxStatus) {
        self.proxy.set_sandbox_status(status);
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

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
