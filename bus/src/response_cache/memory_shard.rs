//! One shard of the memory cache: its entries and their order of last use, under one lock that `memory.rs`
//! holds for a single operation at a time. The shard knows nothing of the byte budget; every operation returns
//! the bytes it freed so the caller can keep the shared total.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;

use super::CacheKey;

/// How many expired entries a write drops from the cold end of its shard. Expired entries are otherwise dropped
/// only when read or evicted; this bound keeps a write's work small when many expire at once.
const EXPIRED_DROPPED_PER_WRITE: usize = 8;

#[derive(Default)]
pub(super) struct Shard {
    entries: HashMap<CacheKey, Entry>,
    /// Keys by the tick of their last use, coldest first: the eviction order. Ticks come from one counter shared
    /// by all shards, so shards can be compared when choosing what to evict.
    by_last_use: BTreeMap<u64, CacheKey>,
}

struct Entry {
    value: Bytes,
    expires_at: Instant,
    last_use: u64,
    /// What the entry counts against the budget.
    charge: usize,
}

/// Where a shard's coldest entry ranks for eviction: expired entries before live ones, then oldest use first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) struct EvictionRank {
    live: bool,
    last_use: u64,
}

impl Shard {
    /// The value under `key` if it has not expired, marking it used at `tick`; an expired entry is removed.
    /// Returns the value and the bytes freed.
    pub(super) fn get(
        &mut self,
        key: &CacheKey,
        now: Instant,
        tick: u64,
    ) -> (Option<Bytes>, usize) {
        let Some(entry) = self.entries.get_mut(key) else {
            return (None, 0);
        };
        if entry.expires_at <= now {
            return (None, self.remove(key));
        }
        self.by_last_use.remove(&entry.last_use);
        entry.last_use = tick;
        self.by_last_use.insert(tick, *key);
        (Some(entry.value.clone()), 0)
    }

    /// Stores an entry, first dropping a few expired ones from the cold end. Returns the bytes freed (those and
    /// an entry `key` held before).
    pub(super) fn insert(
        &mut self,
        key: CacheKey,
        value: Bytes,
        expires_at: Instant,
        now: Instant,
        tick: u64,
        charge: usize,
    ) -> usize {
        let mut freed = self.drop_expired_coldest(now);
        freed += self.remove(&key);
        self.by_last_use.insert(tick, key);
        self.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                last_use: tick,
                charge,
            },
        );
        freed
    }

    /// Removes `key`; returns the bytes freed (0 when it was absent).
    pub(super) fn remove(&mut self, key: &CacheKey) -> usize {
        let Some(entry) = self.entries.remove(key) else {
            return 0;
        };
        self.by_last_use.remove(&entry.last_use);
        entry.charge
    }

    /// How early the coldest entry should go, or `None` for an empty shard.
    pub(super) fn eviction_rank(&self, now: Instant) -> Option<EvictionRank> {
        let (&last_use, key) = self.by_last_use.first_key_value()?;
        let live = self.entries.get(key).is_some_and(|e| e.expires_at > now);
        Some(EvictionRank { live, last_use })
    }

    /// Removes the coldest entry; returns the bytes freed (0 for an empty shard).
    pub(super) fn evict_coldest(&mut self) -> usize {
        match self.by_last_use.first_key_value() {
            Some((_, key)) => {
                let key = *key;
                self.remove(&key)
            }
            None => 0,
        }
    }

    fn drop_expired_coldest(&mut self, now: Instant) -> usize {
        let mut freed = 0;
        for _ in 0..EXPIRED_DROPPED_PER_WRITE {
            match self.eviction_rank(now) {
                Some(rank) if !rank.live => freed += self.evict_coldest(),
                _ => break,
            }
        }
        freed
    }
}
