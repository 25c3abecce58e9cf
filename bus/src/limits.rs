//! Counters behind gateway rate limits, spend limits and budgets, shared by every data-plane node through Redis.
//!
//! [`LimitStore`] is the contract. [`RedisLimits`] shares counters across nodes, [`MemoryLimits`] keeps them in
//! the process (standalone mode), and [`FallbackLimits`] answers from a `MemoryLimits` while Redis is unreachable.
//! `tests/limits.rs` (rates and spend) and `tests/budgets.rs` run one behaviour suite against the first two.
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
//! ## Several counters at once
//! [`LimitStore::admit_all`] counts one request under several rate limits (a virtual key's, its user's, its
//! team's, per model) or under none. [`MemoryLimits`] locks the shards of all of them and counts only once each
//! has room. [`RedisLimits`] builds it on the leases, so it keeps their cross-node guarantee and their cost:
//! - It takes an admission from the node's lease of every counter that has one. When all do, the request is
//!   admitted with no round trip (about 1 µs and a few allocations for three counters; measured in
//!   `tests/limits.rs::admit_latency`: p50 0.8 µs, 2–3 µs of CPU per call with the background refills included).
//! - The counters without a usable lease go to Redis together in one `ADMIT_ALL` script, which looks at every
//!   one of them first and counts (the request's own admission, plus a lease where the node's pace asks for one)
//!   only when all have room. So a call is never more than one round trip, and on average far less: the leases
//!   refill in the background as they do for `admit_request`.
//! - When the script refuses, the admissions taken from leases are given back to the very grants they came from
//!   (a grant is counted in Redis for its window and deadline, so it may serve another request under them, and
//!   under no other grant's). A refusal therefore uses nothing of the other counters' allowances. An admission
//!   whose grant was replaced meanwhile is lost, which, like an unused lease, only refuses early.
//! - Exact across nodes: every admission was counted in Redis before it was used (in a lease, or by the script),
//!   so the nodes together never admit more than a limit; near a limit grants are one at a time, so what is
//!   refused early is small. A request refused while its node has admissions of that counter on their way waits
//!   for them (at most 50 ms) and tries again, as `admit_request` does.
//!
//! # Spend limits
//! Amounts are integer nano-USD (1 USD = 1 000 000 000), so sums do not drift. A caller reads several windows at
//! once before forwarding a request ([`LimitStore::spent`]) and adds the cost to them after the response
//! ([`LimitStore::record_spend`]).
//! - **Fixed**: epoch-aligned buckets of `window` (not calendar days).
//! - **Sliding**: 32 slots per window; the slots inside the trailing window count in full and the oldest slot
//!   that straddles its start counts by the share of it inside (an estimate that assumes its amount was spread
//!   evenly).
//!
//! Reading and recording are separate, so concurrent requests may all pass a check and overshoot a spend limit
//! by what they cost together; spend is known only after the response.
//!
//! [`RedisLimits`] makes neither call a round trip as a rule (`spend_view.rs`): `record_spend` is written behind
//! (kept in the node, flushed for all windows in one script every `flush_interval`, 50 ms, sooner when many
//! windows are pending, and when the store is dropped), and `spent` answers from a read of each window at most
//! `spend_staleness` old (50 ms; refreshed in the background while the window is read, up to twice that while a
//! refresh is on its way; 0 reads every call through) plus this node's own spend not flushed yet. A window's
//! first read goes to Redis. The price: what other nodes spent reaches a check up to a flush interval plus the
//! staleness late (about 100 ms), so the overshoot above may include that much more of their spend; a node's
//! own spend is always counted. An amount counts in the slot (or fixed bucket) of when it was recorded, not of
//! when it was flushed. [`MemoryLimits`] stays exact.
//!
//! # Budgets
//! Nano-USD per calendar period, which the caller puts in the key (its start) and in
//! [`BudgetCounter::period_end_ms`]: a new period is a new counter. Before forwarding a request the caller holds
//! its worst-case cost under every budget that applies ([`LimitStore::reserve`]); after it, it settles the hold to
//! the real cost ([`LimitStore::settle`]; 0 releases it). The check and the hold are atomic across nodes: spent +
//! held never passes a limit through concurrency, and a budget can be overrun only by requests that cost more
//! than they held. A hold counts until its deadline (`now + hold_for`); a lapsed hold settled late still adds its
//! cost. A settled id is remembered for [`SETTLED_KEPT`] (a minute), so a repeated settle counts once; repeated
//! later, it counts again. A settle for a hold the store never made (a reservation answered locally while Redis
//! was unreachable) adds the cost all the same.
//!
//! [`RedisLimits`] leases holds in blocks (`blocks.rs`): each node holds one hold of its own per counter in
//! Redis (its *block*, with a 30 s deadline it renews while it uses it), grants its requests' holds from it and
//! settles them locally, and sends the real costs in its next sync (every flush interval: the script adds them to
//! `s` and shrinks the block by as much, exactly once). A reservation the block has no room for grows it in one
//! round trip (all its counters in one script, all or none; the growth is what the request lacks, and otherwise
//! up to `min(left / 4, max(16 × the amount, 250 ms of the node's pace))`), and is refused only when Redis has
//! less room than it lacks. So the guarantee above holds across nodes exactly as before, and what blocks cost is
//! the same as leases of rate limits: a node may be refused while others have free room in their blocks (it then
//! reports as `held` everything the other nodes' blocks hold), and the block of a node that died counts until its
//! deadline. Semantics that changed with blocks, for callers:
//! - a reservation is settled by the node (the store) that made it; settled by another, its cost counts there
//!   while its hold stays in its own node's block until the hold's deadline, and settle idempotency is per node;
//! - a settle's cost reaches Redis (and other nodes' `budget_spent`) within the flush interval; the node's own
//!   `budget_spent` syncs first, so it counts everything the node settled;
//! - the holds of a node that dies lapse with its block, after at most 30 s (each hold's own deadline still
//!   applies on the node).
//!
//! Cost: in Redis a member and a hash field per node block; in the node, per counter in use, its holds in flight
//! and the ids it settled in the last minute (as 64-bit hashes, about 50 bytes each with their bookkeeping: 4,000
//! requests/s over three counters keep about 36 MB; [`MemoryLimits`] keeps the same).
//!
//! # Time
//! [`RedisLimits`] uses the Redis server's clock (`TIME` inside the scripts), so nodes with skewed clocks agree
//! on every window and hold deadline; a test may give it a [`Clock`] whose time is passed to the scripts instead.
//! [`MemoryLimits`] uses its [`Clock`] ([`SystemClock`] unless told otherwise). What a [`RedisLimits`] node keeps
//! by itself (how old a spend view is, until when a lease or a block is usable) it measures on its own monotonic
//! clock (the test clock, when given), each from just before the request that brought it went out, so it ends no
//! later than Redis's own deadline.
//!
//! # Redis keys
//! Callers pass relative keys (`rl:{account}:{gateway}`); each key below starts with the deployment prefix `{p}`
//! and `limits:`. The window length (`{ms}`) is part of the key, so a changed window starts a fresh counter. Every
//! rate and spend key expires by itself a second after its last window ends; every budget key an hour after its
//! period ends (so settles of the period's last requests still land).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}limits:{key}:rate:fixed:{ms}` | hash | `b` = window start (ms), `n` = requests counted (admitted or leased) in it |
//! | `{p}limits:{key}:rate:log:{ms}` | sorted set | one member per counted request (`{node}:{seq}:{n}`), scored by its time (ms); leased ones by their lease's deadline |
//! | `{p}limits:{key}:rate:slots:{ms}` | hash | slot number → requests counted in it (limits above 10 000) |
//! | `{p}limits:{key}:spend:fixed:{ms}` | hash | `b` = bucket start (ms), `v` = nano-USD spent in it |
//! | `{p}limits:{key}:spend:sliding:{ms}` | hash | slot number → nano-USD spent in it |
//! | `{p}limits:{key}:budget` | hash | `s` = nano-USD settled in the period, `h` = the sum of the holds below, `n:{node}:{incarnation}` = `{version}:{spent}:{size}` per node block (the last message applied, the node's spend counted in `s`, the block's size) |
//! | `{p}limits:{key}:budget:holds` | sorted set | one member per node block (`b:{node}:{incarnation}:{nano-USD}`), scored by its deadline (ms) |
//!
//! Sums inside the Lua scripts are doubles: exact up to 2^53 nano-USD (about 9 million USD per window or period;
//! budget amounts and limits are capped there). Every key has a TTL, so a Redis that evicts (`volatile-*`,
//! `allkeys-*` under memory pressure) may drop counters: run it with `noeviction` or room to spare. A budget hash
//! evicted apart from its holds forgets what they hold until they are settled or lapse.
//!
//! # While Redis is unreachable
//! See [`FallbackLimits`]: each node enforces every limit and budget on its own counters, so the cluster may
//! admit (and hold and spend) up to `limit × nodes` in that time, and spend recorded locally is not replayed to
//! Redis afterwards. What [`RedisLimits`] wrote behind before the outage was noticed stays in the node and is
//! flushed when Redis answers again (a flush whose answer was lost is sent again: spend windows may then count it
//! twice, budgets never do). After a failed call the store checks that Redis answers (a `PING`) before it answers
//! any call from what the node holds, so every call reports the outage to `FallbackLimits`.

mod blocks;
mod budget;
mod clock;
mod fallback;
mod lease;
mod memory;
mod redis;
mod scripts;
mod spend_view;
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

/// A USD amount in the stores' unit (nano-USD, integers add exactly); negative, NaN or absent amounts are 0.
pub fn nano_usd(usd: Option<f64>) -> u64 {
    match usd {
        Some(c) if c.is_finite() && c > 0.0 => (c * 1e9).round() as u64,
        _ => 0,
    }
}

/// One spend limit's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendWindow {
    /// Relative key (`sl:{account}:{gateway}`, say); stores prefix it.
    pub key: String,
    pub window: Duration,
    pub technique: WindowTechnique,
}

/// One request-rate counter of [`LimitStore::admit_all`]: `limit` requests per `window` under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCheck {
    pub key: String,
    pub limit: u64,
    pub window: Duration,
    pub technique: WindowTechnique,
}

/// What [`LimitStore::admit_all`] says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllAdmission {
    /// Counted under every check.
    Admitted,
    /// Counted under none. `index` is the first check (in the caller's order) that had no room.
    Limited { index: usize, retry_after: Duration },
}

/// One calendar-period budget counter of [`LimitStore::reserve`]: nano-USD, at most `limit` per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCounter {
    /// Relative key; the caller puts the period's start in it (`budget:{account}:key:{id}:month:{start_ms}`), so a
    /// new period starts a fresh counter.
    pub key: String,
    pub limit: u64,
    /// Epoch milliseconds when the period ends; the store may forget the counter after it.
    pub period_end_ms: i64,
}

/// Amounts held against budgets until the request's real cost is known ([`LimitStore::settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Unique across the deployment (a ULID, say).
    pub id: String,
    pub counters: Vec<BudgetCounter>,
    pub amount: u64,
}

/// What [`LimitStore::reserve`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Held under every counter.
    Held(Reservation),
    /// Held under none: the first counter (caller's order) where spent + held + `amount` would pass its limit.
    Refused { index: usize, spent: u64, held: u64 },
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

    /// Nano-USD spent in each window now (same order as `windows`). [`RedisLimits`]: other nodes' spend as of up
    /// to a flush interval plus `spend_staleness` ago, this node's own exactly.
    async fn spent(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError>;

    /// Adds `nano_usd` to each window. [`RedisLimits`]: written behind, in Redis within `flush_interval`.
    async fn record_spend(&self, windows: &[SpendWindow], nano_usd: u64) -> Result<(), BusError>;

    /// Counts one request under every check if each has room, else under none (a virtual key's, its user's and
    /// its team's request rates: a request refused by the team does not use the key's allowance).
    ///
    /// A check with a limit of 0 has no room (its `retry_after` is its window). Checks that name one counter
    /// (same key, window length and technique) count the request once, under the smallest of their limits; a
    /// refusal names the first of them with that limit. When several counters have no room, the refusal names
    /// the first in the caller's order. A window under 1 ms is an error, whatever its place.
    async fn admit_all(&self, checks: &[RateCheck]) -> Result<AllAdmission, BusError>;

    /// Holds `amount` under every counter if each stays within its limit (spent + held + amount ≤ limit), else
    /// under none. A hold not settled within `hold_for` lapses by itself (a node that died mid-request frees its
    /// holds). Counters that share a key are one counter (held once, under each of their limits). Reserving
    /// again with an id and amount already held keeps one hold and moves its deadline.
    async fn reserve(
        &self,
        reservation_id: &str,
        counters: &[BudgetCounter],
        amount: u64,
        hold_for: Duration,
    ) -> Result<Reserved, BusError>;

    /// Releases the hold and adds `actual` (the real cost; 0 when the request failed) to every counter's spent.
    /// A hold that lapsed, or that this store never made (a reservation answered by another store while Redis was
    /// unreachable), is settled all the same. Idempotent per reservation id for [`SETTLED_KEPT`] after the first
    /// settle: a repeated call changes nothing. [`RedisLimits`]: settle on the store that reserved (idempotency
    /// and the release of the hold are that node's); the cost reaches Redis within `flush_interval`.
    async fn settle(&self, reservation: &Reservation, actual: u64) -> Result<(), BusError>;

    /// Nano-USD spent (settled) in each counter's period now, for usage reports and refusals. [`RedisLimits`]:
    /// everything this node settled, and other nodes' settles up to their flush interval late.
    async fn budget_spent(&self, counters: &[BudgetCounter]) -> Result<Vec<u64>, BusError>;
}

/// How long a settled reservation id is remembered ([`LimitStore::settle`] is idempotent within it).
pub const SETTLED_KEPT: Duration = Duration::from_millis(budget::SETTLED_KEPT_MS as u64);

/// The distinct counters the items of one call name, each counted once.
#[derive(Debug)]
struct Distinct<K> {
    counters: Vec<DistinctCounter<K>>,
    /// For each item, in the caller's order, its counter in `counters`.
    group_of: Vec<usize>,
}

#[derive(Debug)]
struct DistinctCounter<K> {
    id: K,
    /// The smallest limit among its items.
    limit: u64,
    /// The first item (caller's order) with that limit: the one a refusal names.
    report: usize,
}

/// Merges items that name the same counter (`id`), in the order counters first appear. Calls name a handful of
/// counters, so a linear search is the fast way.
fn distinct<K: PartialEq>(items: impl IntoIterator<Item = (K, u64)>) -> Distinct<K> {
    let mut counters: Vec<DistinctCounter<K>> = Vec::new();
    let mut group_of = Vec::new();
    for (index, (id, limit)) in items.into_iter().enumerate() {
        match counters.iter().position(|c| c.id == id) {
            Some(group) => {
                let counter = &mut counters[group];
                if limit < counter.limit {
                    counter.limit = limit;
                    counter.report = index;
                }
                group_of.push(group);
            }
            None => {
                group_of.push(counters.len());
                counters.push(DistinctCounter {
                    id,
                    limit,
                    report: index,
                });
            }
        }
    }
    Distinct { counters, group_of }
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
