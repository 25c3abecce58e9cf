//! The standalone response cache: entries in this process, bounded by a byte budget.
//!
//! Entries are spread over [`SHARDS`] shards by the first byte of their key (a SHA-256, so evenly), each behind
//! its own `std::sync::Mutex`, so requests on many threads rarely wait for each other. A lock is held for one map
//! operation and never across an await; no operation holds two.
//!
//! The budget is shared, not split per shard, so one large value may use most of it. A put reserves its charge
//! first, then evicts the globally least recently used entry (an expired one before any live one) until the total
//! fits, looking at each shard's coldest entry in turn. Eviction is exact LRU for a single writer and approximate
//! when writers race, which is all a cache needs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::memory_shard::Shard;
use super::{CacheKey, ResponseCache, admissible_ttl};
use crate::error::BusError;

/// Number of shards. More than the cores of a typical node, so that two threads rarely pick the same lock; a
/// divisor of 256 so that the first key byte spreads evenly.
const SHARDS: usize = 32;

/// What an entry costs beyond its value: the key twice (map and recency index), the entry's fields, and the
/// bookkeeping of a hash map slot and a B-tree node share. An estimate; it keeps many tiny entries from
/// overrunning the budget.
pub(crate) const ENTRY_OVERHEAD: usize = 192;

/// Where the memory cache reads the time; tests pass a clock they can move.
pub type CacheClock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The in-process response cache of a standalone gateway.
pub struct MemoryResponseCache {
    shards: Box<[Mutex<Shard>]>,
    budget: usize,
    /// Bytes charged by stored entries and by puts that reserved room but have not inserted yet.
    used: AtomicUsize,
    /// The source of last-use ticks, shared by all shards so their entries compare.
    ticks: AtomicU64,
    clock: CacheClock,
}

impl std::fmt::Debug for MemoryResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryResponseCache")
            .field("budget", &self.budget)
            .field("used", &self.used_bytes())
            .finish_non_exhaustive()
    }
}

impl MemoryResponseCache {
    /// A cache that holds at most `max_total_bytes` (values plus a per-entry overhead estimate).
    pub fn new(max_total_bytes: usize) -> Self {
        Self::with_clock(max_total_bytes, Arc::new(Instant::now))
    }

    /// The same, reading the time from `clock` (for tests of expiry).
    pub fn with_clock(max_total_bytes: usize, clock: CacheClock) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            budget: max_total_bytes,
            used: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            clock,
        }
    }

    /// Bytes the stored entries count against the budget (for metrics and tests).
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn shard(&self, key: &CacheKey) -> MutexGuard<'_, Shard> {
        lock(&self.shards[usize::from(key.0[0]) % SHARDS])
    }

    fn next_tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed)
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Counts `charge` against the budget, evicting until the total fits. False, with nothing counted, when it
    /// cannot fit even with every stored entry gone (other puts hold the rest).
    fn reserve(&self, charge: usize, now: Instant) -> bool {
        self.used.fetch_add(charge, Ordering::Relaxed);
        while self.used.load(Ordering::Relaxed) > self.budget {
            if !self.evict_one(now) {
                self.release(charge);
                return false;
            }
        }
        true
    }

    /// Evicts the coldest entry of the whole cache (as seen shard by shard); false when every shard is empty.
    fn evict_one(&self, now: Instant) -> bool {
        let victim = self
            .shards
            .iter()
            .enumerate()
            .filter_map(|(index, shard)| Some((lock(shard).eviction_rank(now)?, index)))
            .min();
        let Some((_, index)) = victim else {
            return false;
        };
        // Another thread may have changed the shard since it was ranked; its coldest entry now is still a fair
        // victim.
        let freed = lock(&self.shards[index]).evict_coldest();
        self.release(freed);
        true
    }
}

/// Locks a shard, ignoring poisoning: every shard operation leaves the maps consistent before anything that could
/// panic, and a cache that stops serving after one panicked request would be worse.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl ResponseCache for MemoryResponseCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, BusError> {
        let now = (self.clock)();
        let tick = self.next_tick();
        let (value, freed) = self.shard(key).get(key, now, tick);
        self.release(freed);
        Ok(value)
    }

    async fn put(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, BusError> {
        let Some(ttl) = admissible_ttl(value.len(), ttl) else {
            return Ok(false);
        };
        let charge = value.len() + ENTRY_OVERHEAD;
        let now = (self.clock)();
        let Some(expires_at) = now.checked_add(ttl) else {
            return Ok(false);
        };
        if charge > self.budget {
            return Ok(false);
        }
        // The entry being replaced goes first, so it neither counts against the room the new one needs nor gets
        // chosen as a victim in place of a colder entry. A reader racing this overwrite may miss for a moment,
        // which costs it one provider call, as any miss does.
        let replaced = self.shard(key).remove(key);
        self.release(replaced);
        if !self.reserve(charge, now) {
            return Ok(false);
        }
        let tick = self.next_tick();
        let freed = self
            .shard(key)
            .insert(*key, value, expires_at, now, tick, charge);
        self.release(freed);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A clock that moves only when told to.
    struct ManualClock {
        start: Instant,
        elapsed_ms: Arc<AtomicU64>,
    }

    impl ManualClock {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                elapsed_ms: Arc::new(AtomicU64::new(0)),
            }
        }

        fn clock(&self) -> CacheClock {
            let (start, elapsed) = (self.start, Arc::clone(&self.elapsed_ms));
            Arc::new(move || start + Duration::from_millis(elapsed.load(Ordering::SeqCst)))
        }

        fn advance(&self, by: Duration) {
            let ms = u64::try_from(by.as_millis()).unwrap();
            self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Distinct keys in distinct shards (the first byte picks the shard).
    fn key(n: u8) -> CacheKey {
        let mut bytes = [0u8; 32];
        bytes[0] = n;
        bytes[31] = n;
        CacheKey(bytes)
    }

    fn value(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_stored_value_is_a_hit_and_shares_its_buffer_and_an_unknown_key_is_a_miss() {
        block_on(async {
            let cache = MemoryResponseCache::new(1 << 20);
            let stored = Bytes::from_static(b"response");
            assert!(cache.put(&key(1), stored.clone(), HOUR).await.unwrap());
            let got = cache.get(&key(1)).await.unwrap().unwrap();
            assert_eq!(got, stored);
            assert_eq!(
                got.as_ptr(),
                stored.as_ptr(),
                "a get must not copy the value"
            );
            assert_eq!(cache.get(&key(2)).await.unwrap(), None);
        });
    }

    #[test]
    fn an_entry_expires_after_its_ttl_and_its_bytes_are_released() {
        block_on(async {
            let clock = ManualClock::new();
            let cache = MemoryResponseCache::with_clock(1 << 20, clock.clock());
            cache
                .put(&key(1), value(100), Duration::from_secs(10))
                .await
                .unwrap();
            clock.advance(Duration::from_millis(9_999));
            assert!(cache.get(&key(1)).await.unwrap().is_some());
            clock.advance(Duration::from_millis(1));
            assert_eq!(cache.get(&key(1)).await.unwrap(), None);
            assert_eq!(cache.used_bytes(), 0, "the expired entry was removed");
        });
    }

    #[test]
    fn when_full_the_least_recently_used_entry_goes_and_a_recently_read_one_survives() {
        block_on(async {
            let entry = 1000 + ENTRY_OVERHEAD;
            let cache = MemoryResponseCache::new(3 * entry);
            for n in 1..=3 {
                assert!(cache.put(&key(n), value(1000), HOUR).await.unwrap());
            }
            // Reading 1 makes 2 the coldest.
            assert!(cache.get(&key(1)).await.unwrap().is_some());
            assert!(cache.put(&key(4), value(1000), HOUR).await.unwrap());
            assert!(cache.get(&key(2)).await.unwrap().is_none(), "2 was evicted");
            for n in [1, 3, 4] {
                assert!(cache.get(&key(n)).await.unwrap().is_some(), "{n} survives");
            }
            assert_eq!(cache.used_bytes(), 3 * entry);
            // A value needing two slots evicts the two coldest, 1 and 3 (read in that order just above).
            assert!(cache.put(&key(5), value(1500), HOUR).await.unwrap());
            assert!(cache.get(&key(3)).await.unwrap().is_none());
            assert!(cache.get(&key(1)).await.unwrap().is_none());
            assert!(cache.get(&key(4)).await.unwrap().is_some());
            assert!(cache.get(&key(5)).await.unwrap().is_some());
        });
    }

    #[test]
    fn entries_in_the_same_shard_are_evicted_in_order_of_use_too() {
        block_on(async {
            let same_shard = |n: u8| {
                let mut k = key(0);
                k.0[1] = n;
                k
            };
            let cache = MemoryResponseCache::new(2 * (10 + ENTRY_OVERHEAD));
            cache.put(&same_shard(1), value(10), HOUR).await.unwrap();
            cache.put(&same_shard(2), value(10), HOUR).await.unwrap();
            cache.get(&same_shard(1)).await.unwrap();
            cache.put(&same_shard(3), value(10), HOUR).await.unwrap();
            assert!(cache.get(&same_shard(2)).await.unwrap().is_none());
            assert!(cache.get(&same_shard(1)).await.unwrap().is_some());
        });
    }

    #[test]
    fn an_expired_entry_is_evicted_before_a_live_colder_one() {
        block_on(async {
            let clock = ManualClock::new();
            let cache = MemoryResponseCache::with_clock(2 * (10 + ENTRY_OVERHEAD), clock.clock());
            cache.put(&key(1), value(10), HOUR).await.unwrap();
            cache
                .put(&key(2), value(10), Duration::from_secs(1))
                .await
                .unwrap();
            clock.advance(Duration::from_secs(2));
            cache.put(&key(3), value(10), HOUR).await.unwrap();
            assert!(cache.get(&key(1)).await.unwrap().is_some(), "live 1 stays");
            assert!(cache.get(&key(3)).await.unwrap().is_some());
        });
    }

    #[test]
    fn values_over_the_size_limit_or_the_budget_and_zero_ttls_are_refused() {
        block_on(async {
            let cache = MemoryResponseCache::new(1 << 20);
            cache.put(&key(9), value(10), HOUR).await.unwrap();
            assert!(!cache.put(&key(1), value(1 << 20), HOUR).await.unwrap());
            assert!(!cache.put(&key(2), value(10), Duration::ZERO).await.unwrap());
            let roomy = MemoryResponseCache::new(64 << 20);
            let too_large = super::super::MAX_CACHED_BYTES + 1;
            assert!(!roomy.put(&key(3), value(too_large), HOUR).await.unwrap());
            // Nothing was stored or evicted for the refusals.
            assert_eq!(cache.used_bytes(), 10 + ENTRY_OVERHEAD);
            assert!(cache.get(&key(9)).await.unwrap().is_some());
            assert_eq!(roomy.used_bytes(), 0);
        });
    }

    #[test]
    fn an_overwrite_replaces_the_value_and_counts_only_the_new_size() {
        block_on(async {
            let cache = MemoryResponseCache::new(1 << 20);
            cache.put(&key(1), value(1000), HOUR).await.unwrap();
            cache
                .put(&key(1), Bytes::from_static(b"new"), HOUR)
                .await
                .unwrap();
            assert_eq!(cache.get(&key(1)).await.unwrap().unwrap(), "new");
            assert_eq!(cache.used_bytes(), 3 + ENTRY_OVERHEAD);
            cache.put(&key(1), value(500), HOUR).await.unwrap();
            assert_eq!(cache.used_bytes(), 500 + ENTRY_OVERHEAD);
        });
    }

    #[test]
    fn an_overwrite_of_a_full_cache_evicts_nothing_else_when_the_new_value_fits() {
        block_on(async {
            let cache = MemoryResponseCache::new(2 * (100 + ENTRY_OVERHEAD));
            cache.put(&key(1), value(100), HOUR).await.unwrap();
            cache.put(&key(2), value(100), HOUR).await.unwrap();
            cache.put(&key(1), value(100), HOUR).await.unwrap();
            assert!(cache.get(&key(2)).await.unwrap().is_some());
        });
    }

    #[test]
    fn many_threads_reading_and_writing_at_once_finish_and_stay_within_the_budget() {
        let budget = 200 * (256 + ENTRY_OVERHEAD);
        let cache = Arc::new(MemoryResponseCache::new(budget));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..16u8)
                .map(|t| {
                    let cache = Arc::clone(&cache);
                    tokio::spawn(async move {
                        for i in 0..5_000u32 {
                            let mut k = [0u8; 32];
                            k[..4].copy_from_slice(&(i % 1000).to_le_bytes());
                            k[4] = t % 4;
                            let k = CacheKey(k);
                            if i % 3 == 0 {
                                cache.put(&k, value(256), HOUR).await.unwrap();
                            } else if let Some(v) = cache.get(&k).await.unwrap() {
                                assert_eq!(v.len(), 256);
                            }
                        }
                    })
                })
                .collect();
            let all = futures_util::future::join_all(tasks);
            tokio::time::timeout(Duration::from_secs(60), all)
                .await
                .expect("no deadlock")
                .into_iter()
                .for_each(|r| r.unwrap());
        });
        assert!(cache.used_bytes() <= budget);
        assert!(cache.used_bytes() > budget / 2, "the cache was in use");
    }
}
