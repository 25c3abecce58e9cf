//! The split-mode response cache: one Redis string per entry, `{prefix}cache:{hex key}`, shared by every
//! data-plane node that uses the prefix.
//!
//! Reads and writes use two connections (`redis_link.rs`), because a connection answers in order: a 25 MB put in
//! flight would hold up the small gets queued behind it past their 100 ms.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::runtime::Handle;

use super::redis_link::Link;
use super::{CacheKey, ResponseCache, admissible_ttl};
use crate::RedisBusSettings;
use crate::error::BusError;

/// How long the Redis cache waits, and for how long it stops trying after a failure.
#[derive(Debug, Clone, Copy)]
pub struct RedisCacheTimeouts {
    /// A `get`, including a wait for the connection. It must also cover moving the largest value read; raise it
    /// when Redis is across a slow link (25 MB take 200 ms at 1 Gbit/s).
    pub get: Duration,
    /// A `put`: values are up to 25 MB, and nobody waits for it (the response was already sent).
    pub put: Duration,
    /// One attempt to open a connection (in the background; a call waits only its own timeout).
    pub connect: Duration,
    /// After a failure, how long every call fails at once before the next one probes Redis again.
    pub backoff: Duration,
}

impl Default for RedisCacheTimeouts {
    fn default() -> Self {
        Self {
            get: Duration::from_millis(100),
            put: Duration::from_secs(2),
            connect: Duration::from_millis(500),
            backoff: Duration::from_secs(1),
        }
    }
}

/// The response cache of a split deployment.
pub struct RedisResponseCache {
    prefix: String,
    timeouts: RedisCacheTimeouts,
    reads: Link,
    writes: Link,
}

impl std::fmt::Debug for RedisResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password; the prefix is enough to tell caches apart.
        f.debug_struct("RedisResponseCache")
            .field("prefix", &self.prefix)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl RedisResponseCache {
    /// A cache with the default timeouts. See [`RedisResponseCache::with_timeouts`].
    pub fn new(settings: &RedisBusSettings, runtime: Handle) -> Result<Self, BusError> {
        Self::with_timeouts(settings, RedisCacheTimeouts::default(), runtime)
    }

    /// Starts connecting in the background and returns at once; a Redis that is down only makes calls fail.
    /// Connections live on `runtime`, which must outlive the cache; calls may come from any runtime.
    pub fn with_timeouts(
        settings: &RedisBusSettings,
        timeouts: RedisCacheTimeouts,
        runtime: Handle,
    ) -> Result<Self, BusError> {
        if settings.prefix.is_empty() {
            return Err(BusError::Settings(
                "the Redis key prefix must not be empty (keys of several deployments would mix)"
                    .into(),
            ));
        }
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| BusError::Settings(format!("invalid Redis URL: {e}")))?;
        let link = |name| {
            Link::new(
                "response cache",
                name,
                client.clone(),
                timeouts.connect,
                timeouts.backoff,
                runtime.clone(),
            )
        };
        Ok(Self {
            prefix: settings.prefix.clone(),
            timeouts,
            reads: link("reads"),
            writes: link("writes"),
        })
    }

    /// True while Redis is failing: from a failed call until a later connection succeeds.
    pub fn is_degraded(&self) -> bool {
        self.reads.is_degraded() || self.writes.is_degraded()
    }

    fn redis_key(&self, key: &CacheKey) -> String {
        format!("{}cache:{}", self.prefix, key.to_hex())
    }
}

#[async_trait]
impl ResponseCache for RedisResponseCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, BusError> {
        let redis_key = self.redis_key(key);
        let value: Option<Vec<u8>> = self
            .reads
            .run(self.timeouts.get, |mut connection| async move {
                redis::cmd("GET")
                    .arg(redis_key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn put(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, BusError> {
        let Some(ttl) = admissible_ttl(value.len(), ttl) else {
            return Ok(false);
        };
        // Redis refuses `PX 0`; a TTL under a millisecond is rounded up.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let redis_key = self.redis_key(key);
        self.writes
            .run(self.timeouts.put, |mut connection| async move {
                redis::cmd("SET")
                    .arg(redis_key)
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(ttl_ms)
                    .exec_async(&mut connection)
                    .await
            })
            .await?;
        Ok(true)
    }
}
