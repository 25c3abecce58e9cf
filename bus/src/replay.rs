//! A replay cache: remembers one-time values (a DPoP proof's `jti`, RFC 9449 §11.1) for as long as they could be
//! presented again, so that the second presentation is refused, on any node.
//!
//! [`ReplayCache::first_seen`] records a key and says whether it is new, atomically: of two callers racing with the
//! same key, exactly one is told "first".
//! - Split mode: [`RedisReplayCache`], one Redis string per key, `{prefix}replay:{key}`, written with
//!   `SET … NX PX ttl_ms`, so every node sharing the prefix sees every other node's keys. While Redis is
//!   unreachable (a call fails or takes over 100 ms; then Redis is left alone for a second before one call probes
//!   it again, as the response cache does) the node answers from its own [`MemoryReplayCache`]: a value replayed
//!   to the same node is still refused, one replayed to another node during the outage is not. An outage
//!   therefore never refuses or delays a request beyond one timeout per second.
//! - Standalone: [`MemoryReplayCache`], in the process, bounded by [`MAX_MEMORY_ENTRIES`]: expired keys are purged
//!   as it grows, and when it is full of live ones [`ReplayCache::first_seen`] fails (the caller refuses the
//!   request rather than forgetting a value it promised to remember).
//!
//! Keys are the caller's (the data plane hashes what it remembers, so keys are short and carry nothing secret).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::runtime::Handle;

use crate::RedisBusSettings;
use crate::error::BusError;
use crate::response_cache::redis_link::Link;

/// Most keys one process remembers at once (about 100 bytes each).
pub const MAX_MEMORY_ENTRIES: usize = 1_000_000;

/// How long a Redis call may take before the node answers from its own memory.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How long after a failure the Redis store stops trying.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);
/// One attempt to open a connection.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The contract both stores keep. Safe to call from any tokio runtime and many tasks at once.
#[async_trait]
pub trait ReplayCache: Send + Sync + std::fmt::Debug + 'static {
    /// Records `key` for `ttl`. `true`: nobody recorded it within its TTL before (first use); `false`: a replay.
    async fn first_seen(&self, key: &str, ttl: Duration) -> Result<bool, BusError>;
}

/// Keys in this process's memory: right for one node.
#[derive(Debug, Default)]
pub struct MemoryReplayCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Key → when it may be forgotten.
    until: HashMap<String, Instant>,
    /// Purge expired keys when the map reaches this size (twice what was live after the last purge), so a purge
    /// costs amortised O(1) per insert.
    purge_at: usize,
}

impl MemoryReplayCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys remembered now, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.lock().until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Every change is one map operation; a panic elsewhere cannot leave the map half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, key: &str, ttl: Duration, now: Instant) -> Result<bool, BusError> {
        let mut entries = self.lock();
        if let Some(until) = entries.until.get_mut(key) {
            if *until > now {
                return Ok(false);
            }
            *until = now + ttl;
            return Ok(true);
        }
        if entries.until.len() >= entries.purge_at.max(1024) {
            entries.until.retain(|_, until| *until > now);
            entries.purge_at = entries.until.len().saturating_mul(2);
            if entries.until.len() >= MAX_MEMORY_ENTRIES {
                return Err(BusError::Full("the replay cache"));
            }
        }
        entries.until.insert(key.to_owned(), now + ttl);
        Ok(true)
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_seen(&self, key: &str, ttl: Duration) -> Result<bool, BusError> {
        self.record(key, ttl, Instant::now())
    }
}

/// Keys in Redis, shared by every node of a deployment; this node's memory while Redis is unreachable.
pub struct RedisReplayCache {
    prefix: String,
    link: Link,
    local: MemoryReplayCache,
}

impl std::fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password; the prefix is enough to tell stores apart.
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.prefix)
            .field("degraded", &self.link.is_degraded())
            .finish_non_exhaustive()
    }
}

impl RedisReplayCache {
    /// Starts connecting in the background and returns at once; a Redis that is down only sends calls to the
    /// local memory. The connection lives on `runtime`, which must outlive the store.
    pub fn new(settings: &RedisBusSettings, runtime: Handle) -> Result<Self, BusError> {
        if settings.prefix.is_empty() {
            return Err(BusError::Settings(
                "the Redis key prefix must not be empty (keys of several deployments would mix)"
                    .into(),
            ));
        }
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| BusError::Settings(format!("invalid Redis URL: {e}")))?;
        Ok(Self {
            prefix: settings.prefix.clone(),
            link: Link::new(
                "replay cache",
                "replay",
                client,
                REDIS_CONNECT_TIMEOUT,
                REDIS_BACKOFF,
                runtime,
            ),
            local: MemoryReplayCache::new(),
        })
    }

    /// True while Redis is failing: from a failed call until a later connection succeeds.
    pub fn is_degraded(&self) -> bool {
        self.link.is_degraded()
    }
}

#[async_trait]
impl ReplayCache for RedisReplayCache {
    async fn first_seen(&self, key: &str, ttl: Duration) -> Result<bool, BusError> {
        // Redis refuses `PX 0`; a TTL under a millisecond is rounded up.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let redis_key = format!("{}replay:{key}", self.prefix);
        let stored = self
            .link
            .run(REDIS_TIMEOUT, |mut connection| async move {
                redis::cmd("SET")
                    .arg(redis_key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<Option<String>>(&mut connection)
                    .await
            })
            .await;
        match stored {
            Ok(answer) => Ok(answer.is_some()),
            Err(error) => {
                tracing::debug!(%error, "replay cache: Redis failed; answering from this node's memory");
                self.local.first_seen(key, ttl).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_until_it_expires() {
        let cache = MemoryReplayCache::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        assert_eq!(cache.record("a", ttl, t0).ok(), Some(true));
        assert_eq!(
            cache.record("a", ttl, t0 + Duration::from_secs(9)).ok(),
            Some(false)
        );
        assert_eq!(cache.record("b", ttl, t0).ok(), Some(true));
        assert_eq!(
            cache.record("a", ttl, t0 + ttl).ok(),
            Some(true),
            "expired: new again"
        );
        assert_eq!(cache.record("a", ttl, t0 + ttl).ok(), Some(false));
    }

    #[test]
    fn expired_keys_are_purged_as_the_map_grows() {
        let cache = MemoryReplayCache::new();
        let t0 = Instant::now();
        for i in 0..5_000 {
            cache
                .record(&format!("k{i}"), Duration::from_secs(1), t0)
                .unwrap();
        }
        let later = t0 + Duration::from_secs(2);
        for i in 0..5_000 {
            cache
                .record(&format!("n{i}"), Duration::from_secs(1), later)
                .unwrap();
        }
        assert!(
            cache.len() < 10_000,
            "expired keys were purged: {}",
            cache.len()
        );
    }
}
