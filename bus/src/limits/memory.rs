//! Limits kept in the process: standalone mode, and the fallback while Redis is unreachable.
//!
//! Counters live in [`SHARDS`] maps, each behind its own `std::sync::Mutex`, picked by the key's hash: a call
//! locks one shard for a few hundred nanoseconds and (but for `admit_all`, below) never holds a lock across keys, so requests of different
//! gateways rarely wait on each other. Memory stays bounded without a sweeper task: every so often a shard drops
//! the counters whose windows have ended (see [`Shard::tick`]).
//!
//! [`LimitStore::admit_all`] locks every shard its checks live in, in ascending order (so two calls never wait
//! on each other in a circle), looks at every counter, and counts under all of them only when each has room.
//! Budgets live in one map behind one mutex (`budget.rs` does the arithmetic): a reservation touches each of
//! its counters once, and budget calls are a request's once or twice, not its per-chunk work.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::budget::{BudgetState, Seen, first_refusal, period_end};
use super::clock::{Clock, SystemClock};
use super::window::{
    EXACT_LOG_MAX, FixedCount, FixedSum, RATE_SLOTS, RequestLog, SPEND_SLOTS, Slots, slot_ms,
};
use super::{
    Admission, AllAdmission, BudgetCounter, LimitStore, RateCheck, Reservation, Reserved,
    SpendWindow, WindowTechnique, distinct, never_admitted, window_ms,
};
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

/// Which map of a shard a request-rate counter lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateMap {
    Fixed,
    Log,
    Slots,
}

impl RateMap {
    fn of(technique: WindowTechnique, limit: u64) -> Self {
        match technique {
            WindowTechnique::Fixed => RateMap::Fixed,
            WindowTechnique::Sliding if limit <= EXACT_LOG_MAX => RateMap::Log,
            WindowTechnique::Sliding => RateMap::Slots,
        }
    }
}

/// Every budget counter, by key.
#[derive(Debug, Default)]
struct Budgets {
    counters: HashMap<String, BudgetState>,
    operations: usize,
}

impl Budgets {
    /// Counts an operation and, when due, drops counters whose period (and grace) has passed.
    fn tick(&mut self, now_ms: i64) {
        self.operations += 1;
        if self.operations >= SWEEP_EVERY.max(self.counters.len()) {
            self.operations = 0;
            self.counters.retain(|_, b| !b.expired(now_ms));
        }
    }

    /// The counter under `key` as it is now (holds past their deadline dropped); a fresh one when it is missing
    /// or expired.
    fn current(&mut self, key: &str, period_end_ms: i64, now_ms: i64) -> &mut BudgetState {
        let state = self
            .counters
            .entry(key.to_owned())
            .or_insert_with(|| BudgetState::new(period_end_ms, now_ms));
        if state.expired(now_ms) {
            *state = BudgetState::new(period_end_ms, now_ms);
        }
        state.prune(now_ms);
        state
    }
}

/// The in-process [`LimitStore`].
#[derive(Debug)]
pub struct MemoryLimits {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    budgets: Mutex<Budgets>,
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
            budgets: Mutex::default(),
            clock,
        }
    }

    /// How many counters are held (for tests and node status).
    pub fn counters(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    fn shard_of(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    /// Runs `f` on the shard that holds `key`, after counting the operation.
    fn on_shard<R>(&self, key: &str, now_ms: i64, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut shard = lock(&self.shards[self.shard_of(key)]);
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
    pub(super) fn admit_all_now(&self, checks: &[RateCheck]) -> Result<AllAdmission, BusError> {
        let mut items = Vec::with_capacity(checks.len());
        for check in checks {
            let id = CounterId {
                key: check.key.clone(),
                window_ms: window_ms(check.window)?,
            };
            items.push(((RateMap::of(check.technique, check.limit), id), check.limit));
        }
        let merged = distinct(items);
        if merged.counters.is_empty() {
            return Ok(AllAdmission::Admitted);
        }
        let now = self.clock.now_ms();
        // Every shard involved, locked in ascending order.
        let shard_of: Vec<usize> = merged
            .counters
            .iter()
            .map(|c| self.shard_of(&c.id.1.key))
            .collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> = order
            .iter()
            .map(|&index| {
                let mut shard = lock(&self.shards[index]);
                shard.tick(now);
                shard
            })
            .collect();
        let guard_of = |shard: usize| order.binary_search(&shard).unwrap_or(0);

        let mut refused: Option<(usize, Duration)> = None;
        for (counter, &shard) in merged.counters.iter().zip(&shard_of) {
            let (map, id) = &counter.id;
            let (limit, window_ms) = (counter.limit, id.window_ms);
            let refusal = if limit == 0 {
                Some(never_admitted(checks[counter.report].window))
            } else {
                let shard = &mut guards[guard_of(shard)];
                match map {
                    RateMap::Fixed => shard
                        .fixed_rates
                        .entry(id.clone())
                        .or_insert_with(FixedCount::new)
                        .refusal(now, limit, window_ms),
                    RateMap::Log => shard
                        .request_logs
                        .entry(id.clone())
                        .or_default()
                        .refusal(now, limit, window_ms),
                    RateMap::Slots => shard
                        .rate_slots
                        .entry(id.clone())
                        .or_insert_with(|| Slots::new(slot_ms(window_ms, RATE_SLOTS)))
                        .refusal(now, limit, window_ms),
                }
            };
            if let Some(Admission::Limited { retry_after }) = refusal
                && refused.is_none_or(|(index, _)| counter.report < index)
            {
                refused = Some((counter.report, retry_after));
            }
        }
        if let Some((index, retry_after)) = refused {
            return Ok(AllAdmission::Limited { index, retry_after });
        }
        for (counter, &shard) in merged.counters.iter().zip(&shard_of) {
            let (map, id) = &counter.id;
            let shard = &mut guards[guard_of(shard)];
            // Each was looked at (and created) above, under the same locks.
            match map {
                RateMap::Fixed => {
                    if let Some(c) = shard.fixed_rates.get_mut(id) {
                        c.count_one();
                    }
                }
                RateMap::Log => {
                    if let Some(c) = shard.request_logs.get_mut(id) {
                        c.count_one(now);
                    }
                }
                RateMap::Slots => {
                    if let Some(c) = shard.rate_slots.get_mut(id) {
                        c.count_one(now);
                    }
                }
            }
        }
        Ok(AllAdmission::Admitted)
    }

    fn lock_budgets(&self) -> MutexGuard<'_, Budgets> {
        // Holds and sums change together under the lock; a panic between them leaves at worst one hold uncounted.
        self.budgets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn reserve_now(
        &self,
        reservation_id: &str,
        counters: &[BudgetCounter],
        amount: u64,
        hold_for: Duration,
    ) -> Result<Reserved, BusError> {
        let merged = distinct(counters.iter().map(|c| (c.key.as_str(), c.limit)));
        let now = self.clock.now_ms();
        let deadline = now.saturating_add(i64::try_from(hold_for.as_millis()).unwrap_or(i64::MAX));
        let mut budgets = self.lock_budgets();
        budgets.tick(now);
        let seen: Vec<Seen> = merged
            .counters
            .iter()
            .map(|c| {
                budgets
                    .current(c.id, period_end(counters, &merged.group_of, c.report), now)
                    .seen(reservation_id, amount)
            })
            .collect();
        if let Some(refused) = first_refusal(counters, &merged.group_of, &seen, amount) {
            return Ok(refused);
        }
        for c in &merged.counters {
            let end = period_end(counters, &merged.group_of, c.report);
            budgets
                .current(c.id, end, now)
                .hold(reservation_id, amount, deadline, end, now);
        }
        Ok(Reserved::Held(Reservation {
            id: reservation_id.to_owned(),
            counters: counters.to_vec(),
            amount,
        }))
    }

    pub(super) fn settle_now(
        &self,
        reservation: &Reservation,
        actual: u64,
    ) -> Result<(), BusError> {
        let counters = &reservation.counters;
        let merged = distinct(counters.iter().map(|c| (c.key.as_str(), c.limit)));
        let now = self.clock.now_ms();
        let mut budgets = self.lock_budgets();
        budgets.tick(now);
        for c in &merged.counters {
            let end = period_end(counters, &merged.group_of, c.report);
            budgets.current(c.id, end, now).settle(
                &reservation.id,
                reservation.amount,
                actual,
                end,
                now,
            );
        }
        Ok(())
    }

    pub(super) fn budget_spent_now(
        &self,
        counters: &[BudgetCounter],
    ) -> Result<Vec<u64>, BusError> {
        let now = self.clock.now_ms();
        let budgets = self.lock_budgets();
        Ok(counters
            .iter()
            .map(|c| {
                budgets
                    .counters
                    .get(&c.key)
                    .filter(|b| !b.expired(now))
                    .map_or(0, BudgetState::spent)
            })
            .collect())
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

    async fn admit_all(&self, checks: &[RateCheck]) -> Result<AllAdmission, BusError> {
        self.admit_all_now(checks)
    }

    async fn reserve(
        &self,
        reservation_id: &str,
        counters: &[BudgetCounter],
        amount: u64,
        hold_for: Duration,
    ) -> Result<Reserved, BusError> {
        self.reserve_now(reservation_id, counters, amount, hold_for)
    }

    async fn settle(&self, reservation: &Reservation, actual: u64) -> Result<(), BusError> {
        self.settle_now(reservation, actual)
    }

    async fn budget_spent(&self, counters: &[BudgetCounter]) -> Result<Vec<u64>, BusError> {
        self.budget_spent_now(counters)
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
