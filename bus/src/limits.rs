//! Counters behind gateway rate limits and spend limits, shared by every data-plane node through Redis.
//!
//! [`LimitStore`] is the contract. [`RedisLimits`] shares counters across nodes, [`MemoryLimits`] keeps them in
//! the process (standalone mode), and [`FallbackLimits`] answers from a `MemoryLimits` while Redis is unreachable.
//! `tests/limits.rs` runs one behaviour suite against the first two.
//!
//! # Rate limits
//! `limit` requests per `window`; a refused request is not counted, and the refusal says when the next request
//! could be admitted.
//! - **Fixed**: epoch-aligned windows (`start = floor(now / window) * window`), one counter per key.
//!   `retry_after` is the end of the current window.
//! - **Sliding**: never more than `limit` admitted in any trailing window `(now - window, now]`.
//!   - Up to [`EXACT_LOG_MAX`] (10 000) it keeps the time of every counted request: exact, and `retry_after` is
//!     when the oldest one leaves. Cost: 8 bytes per counted request in memory (80 KB for a full 10 000 log);
//!     in Redis a sorted-set member of about 50 bytes plus overhead (roughly 1 MB for a full 10 000 log).
//!   - Above it, 64 slots per window, and every slot that overlaps the trailing window counts in full: never more
//!     than `limit`, at the price of refusing up to one slot (1/64 of the window) early. Cost: at most 65 slots.
//!
//! In [`RedisLimits`] a node leases admissions ahead of its requests (`lease.rs`): the limit holds exactly across
//! nodes, most admissions make no round trip, and what it costs is refusing a little early.
//!
//! # Spend limits
//! Amounts are integer nano-USD (1 USD = 1 000 000 000), so sums do not drift. A caller reads several windows at
//! once before forwarding a request ([`LimitStore::spent`]) and adds the cost to them after the response
//! ([`LimitStore::record_spend`]), one Redis round trip each.
//! - **Fixed**: epoch-aligned buckets of `window` (not calendar days).
//! - **Sliding**: 32 slots per window; the slots inside the trailing window count in full and the oldest slot
//!   that straddles its start counts by the share of it inside (an estimate that assumes its amount was spread
//!   evenly).
//!
//! Reading and recording are separate, so concurrent requests may all pass a check and overshoot a spend limit
//! by what they cost together; spend is known only after the response.
//!
//! # Time
//! [`RedisLimits`] uses the Redis server's clock (`TIME` inside the scripts), so nodes with skewed clocks agree
//! on every window; a test may give it a [`Clock`] whose time is passed to the scripts instead. [`MemoryLimits`]
//! uses its [`Clock`] ([`SystemClock`] unless told otherwise).
//!
//! # Redis keys
//! Callers pass relative keys (`rl:{account}:{gateway}`); each key below starts with the deployment prefix `{p}`
//! and `limits:`. The window length (`{ms}`) is part of the key, so a changed window starts a fresh counter. Every
//! key expires by itself a second after its last window ends.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}limits:{key}:rate:fixed:{ms}` | hash | `b` = window start (ms), `n` = requests counted (admitted or leased) in it |
//! | `{p}limits:{key}:rate:log:{ms}` | sorted set | one member per counted request (`{node}:{seq}:{n}`), scored by its time (ms); leased ones by their lease's deadline |
//! | `{p}limits:{key}:rate:slots:{ms}` | hash | slot number → requests counted in it (limits above 10 000) |
//! | `{p}limits:{key}:spend:fixed:{ms}` | hash | `b` = bucket start (ms), `v` = nano-USD spent in it |
//! | `{p}limits:{key}:spend:sliding:{ms}` | hash | slot number → nano-USD spent in it |
//!
//! Sums inside the Lua scripts are doubles: exact up to 2^53 nano-USD (about 9 million USD per window).
//!
//! # While Redis is unreachable
//! See [`FallbackLimits`]: each node enforces every limit on its own counters, so the cluster may admit up to
//! `limit × nodes` in that time, and spend recorded locally is not replayed to Redis afterwards.

mod clock;
mod fallback;
mod lease;
mod memory;
mod redis;
mod scripts;
mod window;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::BusError;
pub use clock::{Clock, ManualClock, SystemClock};
pub use fallback::FallbackLimits;
pub use memory::MemoryLimits;
pub use redis::{DEFAULT_MAX_LEASE, RedisLimits, RedisLimitsSettings};
pub use window::EXACT_LOG_MAX;

/// How a window moves with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowTechnique {
    /// Epoch-aligned windows that start over at each boundary.
    Fixed,
    /// A window that ends now.
    Sliding,
}

/// What a rate limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted; let it through.
    Admitted,
    /// Not counted. `retry_after` is when the next request could be admitted (the caller rounds it up to
    /// whole seconds for `Retry-After`).
    Limited { retry_after: Duration },
}

/// One spend limit's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendWindow {
    /// Relative key (`sl:{account}:{gateway}`, say); stores prefix it.
    pub key: String,
    pub window: Duration,
    pub technique: WindowTechnique,
}

/// The contract every limit store keeps. Safe to call from any tokio runtime.
#[async_trait]
pub trait LimitStore: Send + Sync + std::fmt::Debug + 'static {
    /// Counts one request under `key` if that keeps it within `limit` per `window`.
    async fn admit_request(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        technique: WindowTechnique,
    ) -> Result<Admission, BusError>;

    /// Nano-USD spent in each window now (same order as `windows`).
    async fn spent(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError>;

    /// Adds `nano_usd` to each window.
    async fn record_spend(&self, windows: &[SpendWindow], nano_usd: u64) -> Result<(), BusError>;
}

/// A window in whole milliseconds; shorter than 1 ms is a configuration error, not a limit that never resets.
fn window_ms(window: Duration) -> Result<i64, BusError> {
    match i64::try_from(window.as_millis()) {
        Ok(0) => Err(BusError::Settings(
            "a limit window must be at least 1 ms".into(),
        )),
        // Longer than a few million years: clamp so window arithmetic cannot overflow.
        Ok(ms) => Ok(ms.min(i64::MAX / 4)),
        Err(_) => Ok(i64::MAX / 4),
    }
}

/// The answer to a request under a limit of zero: nothing is ever admitted; ask again in a window.
fn never_admitted(window: Duration) -> Admission {
    Admission::Limited {
        retry_after: window,
    }
}
