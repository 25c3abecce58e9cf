//! Limits kept in the process: standalone mode, and the fallback while Redis is unreachable.
//!
//! Counters live in [`SHARDS`] maps, each behind its own `std::sync::Mutex`, picked by the key's hash: a call
//! locks one shard for a few hundred nanoseconds and never holds a lock across keys, so requests of different
//! gateways rarely wait on each other. Memory stays bounded without a sweeper task: every so often a shard drops
//! the counters whose windows have ended (see [`Shard::tick`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::clock::{Clock, SystemClock};
use super::window::{
    EXACT_LOG_MAX, FixedCount, FixedSum, RATE_SLOTS, RequestLog, SPEND_SLOTS, Slots, slot_ms,
};
use super::{Admission, LimitStore, SpendWindow, WindowTechnique, never_admitted, window_ms};
use crate::error::BusError;

const SHARDS: usize = 32;
/// A shard sweeps after this many operations, or after as many as it holds counters when that is more, so the
/// sweep costs at most one counter visit per operation on average.
const SWEEP_EVERY: usize = 1_024;

/// One counter's identity within its kind's map: the caller's key and the window length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterId {
    key: String,
    window_ms: i64,
}

/// A counter that can tell when nothing in it matters any more.
trait Expiring {
    fn idle(&self, now_ms: i64, window_ms: i64) -> bool;
}

impl Expiring for FixedCount {
    fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        FixedCount::idle(self, now_ms, window_ms)
    }
}

impl Expiring for RequestLog {
    fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        RequestLog::idle(self, now_ms, window_ms)
    }
}

impl Expiring for Slots {
    fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        Slots::idle(self, now_ms, window_ms)
    }
}

impl Expiring for FixedSum {
    fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        FixedSum::idle(self, now_ms, window_ms)
    }
}

/// One map per kind of counter, so each holds the state its arithmetic needs and nothing can mix them up.
#[derive(Debug, Default)]
struct Shard {
    fixed_rates: HashMap<CounterId, FixedCount>,
    request_logs: HashMap<CounterId, RequestLog>,
    rate_slots: HashMap<CounterId, Slots>,
    fixed_spends: HashMap<CounterId, FixedSum>,
    spend_slots: HashMap<CounterId, Slots>,
    operations: usize,
}

impl Shard {
    /// Counts an operation and, when due, drops idle counters.
    fn tick(&mut self, now_ms: i64) {
        self.operations += 1;
        if self.operations < SWEEP_EVERY.max(self.len()) {
            return;
        }
        self.operations = 0;
        sweep(&mut self.fixed_rates, now_ms);
        sweep(&mut self.request_logs, now_ms);
        sweep(&mut self.rate_slots, now_ms);
        sweep(&mut self.fixed_spends, now_ms);
        sweep(&mut self.spend_slots, now_ms);
    }

    fn len(&self) -> usize {
        self.fixed_rates.len()
            + self.request_logs.len()
            + self.rate_slots.len()
            + self.fixed_spends.len()
            + self.spend_slots.len()
    }
}

fn sweep<T: Expiring>(counters: &mut HashMap<CounterId, T>, now_ms: i64) {
    counters.retain(|id, counter| !counter.idle(now_ms, id.window_ms));
}

/// The in-process [`LimitStore`].
#[derive(Debug)]
pub struct MemoryLimits {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimits {
    /// Counters on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    /// How many counters are held (for tests and node status).
    pub fn counters(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Runs `f` on the shard that holds `key`, after counting the operation.
    fn on_shard<R>(&self, key: &str, now_ms: i64, f: impl FnOnce(&mut Shard) -> R) -> R {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let mut shard = lock(&self.shards[index]);
        shard.tick(now_ms);
        f(&mut shard)
    }

    pub(super) fn admit_now(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        technique: WindowTechnique,
    ) -> Result<Admission, BusError> {
        let window_ms = window_ms(window)?;
        if limit == 0 {
            return Ok(never_admitted(window));
        }
        let now = self.clock.now_ms();
        let id = CounterId {
            key: key.to_owned(),
            window_ms,
        };
        Ok(self.on_shard(key, now, |shard| match technique {
            WindowTechnique::Fixed => shard
                .fixed_rates
                .entry(id)
                .or_insert_with(FixedCount::new)
                .admit(now, limit, window_ms),
            WindowTechnique::Sliding if limit <= EXACT_LOG_MAX => shard
                .request_logs
                .entry(id)
                .or_default()
                .admit(now, limit, window_ms),
            WindowTechnique::Sliding => shard
                .rate_slots
                .entry(id)
                .or_insert_with(|| Slots::new(slot_ms(window_ms, RATE_SLOTS)))
                .admit(now, limit, window_ms),
        }))
    }

    pub(super) fn spent_now(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError> {
        let now = self.clock.now_ms();
        windows
            .iter()
            .map(|w| {
                let window_ms = window_ms(w.window)?;
                let id = CounterId {
                    key: w.key.clone(),
                    window_ms,
                };
                Ok(self.on_shard(&w.key, now, |shard| match w.technique {
                    WindowTechnique::Fixed => shard
                        .fixed_spends
                        .get(&id)
                        .map_or(0, |s| s.spent(now, window_ms)),
                    WindowTechnique::Sliding => shard
                        .spend_slots
                        .get_mut(&id)
                        .map_or(0, |s| s.spent(now, window_ms)),
                }))
            })
            .collect()
    }

    pub(super) fn record_now(
        &self,
        windows: &[SpendWindow],
        nano_usd: u64,
    ) -> Result<(), BusError> {
        let now = self.clock.now_ms();
        for w in windows {
            let window_ms = window_ms(w.window)?;
            let id = CounterId {
                key: w.key.clone(),
                window_ms,
            };
            self.on_shard(&w.key, now, |shard| match w.technique {
                WindowTechnique::Fixed => shard
                    .fixed_spends
                    .entry(id)
                    .or_insert_with(FixedSum::new)
                    .record(now, window_ms, nano_usd),
                WindowTechnique::Sliding => shard
                    .spend_slots
                    .entry(id)
                    .or_insert_with(|| Slots::new(slot_ms(window_ms, SPEND_SLOTS)))
                    .record(now, window_ms, nano_usd),
            });
        }
        Ok(())
    }
}

/// A panic while a shard was locked leaves at worst one counter off by one; keep serving rather than panic on
/// every later request.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl LimitStore for MemoryLimits {
    async fn admit_request(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        technique: WindowTechnique,
    ) -> Result<Admission, BusError> {
        self.admit_now(key, limit, window, technique)
    }

    async fn spent(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError> {
        self.spent_now(windows)
    }

    async fn record_spend(&self, windows: &[SpendWindow], nano_usd: u64) -> Result<(), BusError> {
        self.record_now(windows, nano_usd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::ManualClock;

    const T0: i64 = 1_704_110_400_000;

    #[test]
    fn idle_counters_are_swept_and_live_ones_kept() {
        let clock = Arc::new(ManualClock::new(T0));
        let limits = MemoryLimits::with_clock(clock.clone());
        for i in 0..1_000 {
            let key = format!("rl:old:{i}");
            limits
                .admit_now(&key, 5, Duration::from_secs(1), WindowTechnique::Sliding)
                .unwrap();
        }
        limits
            .admit_now(
                "rl:live",
                5,
                Duration::from_secs(60),
                WindowTechnique::Fixed,
            )
            .unwrap();
        assert_eq!(limits.counters(), 1_001);
        clock.advance(Duration::from_secs(2));
        // Enough operations for every shard to reach its sweep.
        for _ in 0..SWEEP_EVERY * SHARDS * 2 {
            limits
                .admit_now(
                    "rl:live",
                    1_000_000,
                    Duration::from_secs(60),
                    WindowTechnique::Fixed,
                )
                .unwrap();
        }
        // Only the live key's shard is guaranteed to have swept; the others sweep as they see traffic.
        let left = limits.counters();
        assert!(left < 1_001, "{left}");
        let live_shard =
            usize::try_from(limits.hasher.hash_one("rl:live") % SHARDS as u64).unwrap();
        assert_eq!(lock(&limits.shards[live_shard]).len(), 1);
    }

    #[test]
    fn a_limit_of_zero_admits_nothing_and_a_zero_window_is_refused() {
        let limits = MemoryLimits::with_clock(Arc::new(ManualClock::new(T0)));
        assert_eq!(
            limits
                .admit_now("k", 0, Duration::from_secs(10), WindowTechnique::Sliding)
                .unwrap(),
            Admission::Limited {
                retry_after: Duration::from_secs(10)
            }
        );
        assert!(matches!(
            limits.admit_now("k", 1, Duration::ZERO, WindowTechnique::Fixed),
            Err(BusError::Settings(_))
        ));
    }
}
