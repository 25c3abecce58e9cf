//! The store behind the gateway's exact-match response cache: a key the data plane derives from the request, and
//! the bytes of the response it encoded. Both are opaque here; the data plane owns their meaning.
//!
//! Where entries live:
//! - Split mode: [`RedisResponseCache`], one Redis string per entry, `{prefix}cache:{64 hex digits of the key}`,
//!   written with `SET … PX ttl_ms`, so every data-plane node sharing the prefix shares the cache and Redis expires
//!   entries (and evicts them under its own `maxmemory` policy).
//! - Standalone: [`MemoryResponseCache`], in the process, bounded by a byte budget (values plus a per-entry
//!   overhead estimate), least recently used entries evicted first.
//!
//! Bounds: a value larger than [`MAX_CACHED_BYTES`] (Cloudflare caches requests up to 25 MB) is refused, as is a
//! zero TTL; TTLs longer than [`MAX_TTL`] are shortened to it.
//!
//! The cache is volatile and best-effort. Entries may vanish at any time (eviction, a Redis restart), and there is
//! no request coalescing: two identical requests that arrive together can both miss and both go upstream, as
//! Cloudflare documents for its own cache. Callers treat every error as a miss.
//!
//! Outage behaviour (Redis): a `get` waits at most 100 ms and a `put` at most 2 s (both settings). After a failure
//! the store fails every call at once, without touching Redis, for a back-off of about a second, then lets one call
//! probe again; so an outage costs one timeout per second, not one per request. The change to degraded and back
//! is logged once each (per connection: reads and writes have one each), and [`RedisResponseCache::is_degraded`]
//! reports it.

mod memory;
mod memory_shard;
mod redis;
pub(crate) mod redis_link;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::BusError;
pub use memory::{CacheClock, MemoryResponseCache};
pub use redis::{RedisCacheTimeouts, RedisResponseCache};

/// Largest value stored: Cloudflare caches requests up to 25 MB. Larger puts return `Ok(false)` and store nothing.
pub const MAX_CACHED_BYTES: usize = 25 * 1024 * 1024;

/// Longest TTL kept; longer ones are shortened to it. A bound keeps the expiry arithmetic (an `Instant` in memory,
/// Redis's millisecond expiry) far from overflow whatever the data plane passes.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The identity of a cached response: a SHA-256 the data plane computes over everything that makes two requests
/// the same (account, gateway, cache generation, provider, method, path and query, body, credential).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lowercase hex, as it appears in Redis keys and logs.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex
    }
}

/// The contract both stores keep. Every method may be called from any tokio runtime and many tasks at once.
#[async_trait]
pub trait ResponseCache: Send + Sync + std::fmt::Debug + 'static {
    /// The value stored under `key`, if any and not expired. The returned `Bytes` shares the stored buffer.
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, BusError>;

    /// Stores `value` for `ttl`, replacing what `key` held. `Ok(false)` when nothing was stored: the value is
    /// larger than [`MAX_CACHED_BYTES`], the TTL is zero, or the memory budget cannot hold it.
    ///
    /// The value is kept as given: a `Bytes` sliced from a larger buffer keeps that whole buffer alive in the
    /// memory store, so hand over a buffer of its own.
    async fn put(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, BusError>;
}

/// Whether a put of `value_len` bytes for `ttl` may be stored at all; the TTL to store it with.
fn admissible_ttl(value_len: usize, ttl: Duration) -> Option<Duration> {
    (value_len <= MAX_CACHED_BYTES && !ttl.is_zero()).then(|| ttl.min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_prints_as_lowercase_hex_of_all_32_bytes() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let hex = CacheKey(bytes).to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ab00"));
        assert!(hex.ends_with("000f"));
    }

    #[test]
    fn oversize_values_and_zero_ttls_are_not_admitted_and_long_ttls_are_capped() {
        let minute = Duration::from_secs(60);
        assert_eq!(admissible_ttl(MAX_CACHED_BYTES, minute), Some(minute));
        assert_eq!(admissible_ttl(MAX_CACHED_BYTES + 1, minute), None);
        assert_eq!(admissible_ttl(10, Duration::ZERO), None);
        assert_eq!(admissible_ttl(10, Duration::MAX), Some(MAX_TTL));
    }
}
