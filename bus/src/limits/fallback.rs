//! Redis limits that keep answering while Redis does not.
//!
//! Each call goes to Redis first. When it fails (an error, or no answer within [`CALL_TIMEOUT`]), the call is
//! answered from a local [`MemoryLimits`] and Redis is left alone for [`BACKOFF`]; the first call after that
//! probes it again (one call only, the others keep answering locally), and a successful probe switches back. An
//! outage therefore costs one timeout per back-off period, not one per request.
//!
//! What that means for limits, deliberately:
//! - While degraded, each node enforces every limit on its own counters, so the cluster may admit up to
//!   `limit × nodes` in that time (and a node's local counters start empty, so a window that was nearly full in
//!   Redis starts over).
//! - Spend recorded locally is not replayed to Redis afterwards: after recovery, Redis lacks what was spent during
//!   the outage. What `RedisLimits` had written behind before the outage was noticed stays there and is flushed
//!   once Redis answers (a flush whose answer was lost is sent again, so a spend window may count it twice, which
//!   errs on the side of the limit; budget costs are counted exactly once).
//! - A failed or timed-out call marks the Redis store unreachable, so its next calls check that Redis answers
//!   before answering from what the node holds (leases, spend views, budget blocks): the probe after the back-off
//!   really probes, and no call reports "back" while Redis is not.
//! - After recovery the local counters are not consulted again; they expire by themselves.
//! - Budgets: a node reserves against its own local counters, which start empty, so while degraded each node may
//!   hold and spend up to every budget's whole limit on its own, on top of what Redis already counted: the
//!   overshoot is bounded by `limit × nodes` per budget for the outage. A hold made in Redis (in the node's block)
//!   and settled locally (Redis went away mid-request) stays in the block until its deadline, and its cost is
//!   counted only locally; a hold made locally and settled after recovery is settled in Redis all the same
//!   (`settle` counts a hold it never made), so that cost reaches Redis.
//!
//! Calls that were already waiting on Redis when it stopped answering each wait out their own timeout; the
//! back-off only spares the calls that come after. The timeout is `tokio::time`'s, so callers' runtimes need the
//! time driver (pingora's and actix's have it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::memory::MemoryLimits;
use super::redis::RedisLimits;
use super::{
    Admission, AllAdmission, BudgetCounter, LimitStore, RateCheck, Reservation, Reserved,
    SpendWindow, WindowTechnique,
};
use crate::error::BusError;

/// How long one Redis call may take before it counts as failed. Above the default response timeout (100 ms) so
/// that an ordinary slow answer is not mistaken for an outage; the bound for connecting and retrying as well.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// How long Redis is left alone after a failed call.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// Redis first, local counters while Redis is unreachable.
#[derive(Debug)]
pub struct FallbackLimits {
    primary: RedisLimits,
    local: MemoryLimits,
    /// Measures the back-off; `retry_at_ms` counts from here.
    epoch: Instant,
    degraded: AtomicBool,
    /// While degraded: when the next call may probe Redis (ms since `epoch`).
    retry_at_ms: AtomicU64,
    answered_locally: AtomicU64,
}

impl FallbackLimits {
    pub fn new(primary: RedisLimits, local: MemoryLimits) -> Self {
        Self {
            primary,
            local,
            epoch: Instant::now(),
            degraded: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            answered_locally: AtomicU64::new(0),
        }
    }

    /// Whether calls are currently answered from local counters (for node status).
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// How many calls were answered from local counters since the start (for node status).
    pub fn answered_locally(&self) -> u64 {
        self.answered_locally.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this call should try Redis: always when healthy; while degraded, only the one call that claims the
    /// probe once the back-off has passed.
    fn should_try_primary(&self) -> bool {
        if !self.degraded.load(Ordering::Relaxed) {
            return true;
        }
        let retry_at = self.retry_at_ms.load(Ordering::Relaxed);
        let now = self.elapsed_ms();
        now >= retry_at
            && self
                .retry_at_ms
                .compare_exchange(
                    retry_at,
                    now + backoff_ms(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn primary_answered(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!("redis answers limit calls again; back to shared counters");
        }
    }

    fn primary_failed(&self, error: &dyn std::fmt::Display) {
        // A call that ran out of time never told the store itself: its next calls must check Redis, not answer
        // from what the node holds.
        self.primary.mark_unreachable();
        self.retry_at_ms
            .store(self.elapsed_ms() + backoff_ms(), Ordering::Release);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                %error,
                "redis limit call failed; enforcing limits on this node's own counters until it answers"
            );
        }
    }

    /// Runs `primary` against Redis when it should be tried, else (or when it fails) `local`.
    async fn call<T, P, L>(&self, primary: P, local: L) -> Result<T, BusError>
    where
        P: Future<Output = Result<T, BusError>>,
        L: FnOnce(&MemoryLimits) -> Result<T, BusError>,
    {
        if self.should_try_primary() {
            match tokio::time::timeout(CALL_TIMEOUT, primary).await {
                Ok(Ok(answer)) => {
                    self.primary_answered();
                    return Ok(answer);
                }
                // A bad window is the caller's mistake; local counters would refuse it just the same.
                Ok(Err(error @ BusError::Settings(_))) => return Err(error),
                Ok(Err(error)) => self.primary_failed(&error),
                Err(elapsed) => self.primary_failed(&elapsed),
            }
        }
        self.answered_locally.fetch_add(1, Ordering::Relaxed);
        local(&self.local)
    }
}

fn backoff_ms() -> u64 {
    u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl LimitStore for FallbackLimits {
    async fn admit_request(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        technique: WindowTechnique,
    ) -> Result<Admission, BusError> {
        self.call(
            self.primary.admit_request(key, limit, window, technique),
            |local| local.admit_now(key, limit, window, technique),
        )
        .await
    }

    async fn spent(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError> {
        self.call(self.primary.spent(windows), |local| {
            local.spent_now(windows)
        })
        .await
    }

    async fn record_spend(&self, windows: &[SpendWindow], nano_usd: u64) -> Result<(), BusError> {
        self.call(self.primary.record_spend(windows, nano_usd), |local| {
            local.record_now(windows, nano_usd)
        })
        .await
    }

    async fn admit_all(&self, checks: &[RateCheck]) -> Result<AllAdmission, BusError> {
        self.call(self.primary.admit_all(checks), |local| {
            local.admit_all_now(checks)
        })
        .await
    }

    async fn reserve(
        &self,
        reservation_id: &str,
        counters: &[BudgetCounter],
        amount: u64,
        hold_for: Duration,
    ) -> Result<Reserved, BusError> {
        self.call(
            self.primary
                .reserve(reservation_id, counters, amount, hold_for),
            |local| local.reserve_now(reservation_id, counters, amount, hold_for),
        )
        .await
    }

    async fn settle(&self, reservation: &Reservation, actual: u64) -> Result<(), BusError> {
        self.call(self.primary.settle(reservation, actual), |local| {
            local.settle_now(reservation, actual)
        })
        .await
    }

    async fn budget_spent(&self, counters: &[BudgetCounter]) -> Result<Vec<u64>, BusError> {
        self.call(self.primary.budget_spent(counters), |local| {
            local.budget_spent_now(counters)
        })
        .await
    }
}
