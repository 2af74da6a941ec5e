//! Upstream name resolution that opens no file after start-up.
//!
//! # Design
//! glibc's `getaddrinfo` reads `/etc/resolv.conf`, `/etc/hosts` and `/etc/nsswitch.conf` (and
//! may load NSS modules) on every call, which the sandbox forbids. [`Resolver`] is a pure-Rust
//! stub resolver (hickory) configured once, at start-up: [`Resolver::from_system`] reads
//! `/etc/resolv.conf` and `/etc/hosts` then, and from there on every lookup is UDP (TCP for
//! truncated answers) to the configured name servers, with an in-memory cache that honours TTLs.
//! It plugs into hyper-util's `HttpConnector` as its resolver.
//!
//! # Limits
//! - Changes to `/etc/resolv.conf` or `/etc/hosts` after start-up are not seen: restart Lethe.
//! - When `/etc/resolv.conf` cannot be read or parsed, the name servers are Google's public
//!   resolvers (hickory's default) with default options: upstream names still resolve on a host
//!   whose resolver configuration is missing, at the price of asking a public resolver.
//! - IP literals (`http://127.0.0.1:9000`) never reach the resolver: the connector uses them as
//!   they are.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::system_conf::parse_resolv_conf;
use hickory_resolver::TokioResolver;
use hyper_util::client::legacy::connect::dns::Name;

/// Where the name-server configuration is read from, once.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where the name servers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The system's resolver configuration file.
    System,
    /// The built-in default: the file was missing, unreadable or invalid.
    Fallback,
}

/// A resolver configured at start-up; cheap to clone (shared cache).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<TokioResolver>,
    source: Source,
}

impl Resolver {
    /// Reads [`RESOLV_CONF`] (and the hosts file) now, falling back to the built-in default
    /// when it cannot be used. Call before the sandbox locks, inside the runtime.
    pub fn from_system() -> Resolver {
        Resolver::from_file(Path::new(RESOLV_CONF))
    }

    /// Like [`Resolver::from_system`] with another resolver configuration file.
    pub fn from_file(path: &Path) -> Resolver {
        let parsed = std::fs::read(path)
            .ok()
            .and_then(|text| parse_resolv_conf(text).ok())
            .filter(|(config, _)| !config.name_servers().is_empty());
        let (config, options, source) = match parsed {
            Some((config, options)) => (config, options, Source::System),
            None => (
                ResolverConfig::default(),
                ResolverOpts::default(),
                Source::Fallback,
            ),
        };
        let inner = TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build();
        Resolver {
            inner: Arc::new(inner),
            source,
        }
    }

    /// Where the name servers came from.
    pub fn source(&self) -> Source {
        self.source
    }
}

/// Why a name did not resolve. Carries no name: hosts come from the operator's config, but the
/// error may travel far.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve the upstream host name")]
pub struct ResolveError;

impl From<ResolveError> for io::Error {
    fn from(e: ResolveError) -> io::Error {
        io::Error::other(e)
    }
}

/// The addresses of one name, port 0: the connector sets the port.
pub type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for Resolver {
    type Response = Addrs;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let lookup = inner
                .lookup_ip(name.as_str())
                .await
                .map_err(|_| ResolveError)?;
            let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            if addrs.is_empty() {
                return Err(ResolveError);
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[test]
    fn a_missing_file_falls_back_to_the_default() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let r = Resolver::from_file(Path::new("/nonexistent/resolv.conf"));
            assert_eq!(r.source(), Source::Fallback);
        });
    }

    #[test]
    fn localhost_resolves_without_asking_a_name_server() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut r = Resolver::from_file(Path::new("/nonexistent/resolv.conf"));
            let addrs: Vec<SocketAddr> = r
                .call("localhost".parse::<Name>().unwrap())
                .await
                .unwrap()
                .collect();
            assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
            assert!(!addrs.is_empty());
        });
    }
}
