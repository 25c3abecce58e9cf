//! Upstream name resolution with a cache, so the request path never blocks on DNS.
//!
//! pingora's `HttpPeer::new` resolves synchronously and panics on failure, so peers are always built from a
//! `SocketAddr` resolved here. IP literals need no lookup. A name is looked up asynchronously (tokio's resolver
//! runs on the blocking pool, never on a worker) the first time it is used and again after `ttl`; every other
//! request reads the cache under a short read lock. Addresses of a name are used in turn.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

struct Entry {
    addrs: Arc<[SocketAddr]>,
    resolved_at: Instant,
    next: AtomicUsize,
}

/// A DNS cache keyed by port, then host, so lookups borrow the request's `&str` and allocate nothing.
pub struct Resolver {
    cache: RwLock<HashMap<u16, HashMap<String, Entry>>>,
    ttl: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: RwLock::new(HashMap::new()),
            ttl,
        }
    }

    /// One address for `host:port`.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        if let Some(addr) = self.cached(host, port) {
            return Ok(addr);
        }
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((host, port))
            .await?
            .collect::<Vec<_>>()
            .into();
        let first = *addrs.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host} has no addresses"))
        })?;
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.entry(port).or_default().insert(
            host.to_owned(),
            Entry {
                addrs,
                resolved_at: Instant::now(),
                next: AtomicUsize::new(1),
            },
        );
        Ok(first)
    }

    fn cached(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(&port)?.get(host)?;
        if entry.resolved_at.elapsed() > self.ttl {
            return None;
        }
        let i = entry.next.fetch_add(1, Ordering::Relaxed);
        entry.addrs.get(i % entry.addrs.len()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_and_names_resolve_and_names_are_cached() {
        let r = Resolver::new(Duration::from_secs(60));
        assert_eq!(
            r.resolve("127.0.0.1", 80).await.unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            r.resolve("::1", 443).await.unwrap(),
            "[::1]:443".parse().unwrap()
        );
        let a = r.resolve("localhost", 8080).await.unwrap();
        assert!(a.ip().is_loopback());
        assert!(r.cached("localhost", 8080).is_some());
        assert!(r.cached("localhost", 8081).is_none());
    }

    #[tokio::test]
    async fn expired_entries_are_looked_up_again() {
        let r = Resolver::new(Duration::ZERO);
        r.resolve("localhost", 1).await.unwrap();
        std::thread::sleep(Duration::from_millis(2));
        assert!(r.cached("localhost", 1).is_none());
    }
}
