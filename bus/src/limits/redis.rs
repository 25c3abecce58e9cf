//! Limits shared through Redis: a call sends at most one Lua script (`scripts.rs`), so it makes at most one round
//! trip (`budget_spent`, not on the request path, two: its node's sync, then the read), and most calls make none:
//! - rate limits are leased ahead (`lease.rs`, I/O in `redis/rates.rs`); `admit_all` takes from the leases of all
//!   its counters and sends those without one to Redis in one script (all or none; the module doc of `limits.rs`);
//! - spend is written behind and read from a view at most `spend_staleness` old (`spend_view.rs`, I/O in
//!   `redis/spend.rs`);
//! - budget holds are granted from blocks each node leases in Redis, and settled locally (`blocks.rs`, I/O in
//!   `redis/budgets.rs`).
//!
//! One background task per store, on the bus runtime, flushes what was written behind and syncs the blocks every
//! `flush_interval` (`redis/flusher.rs`), sooner when many windows are pending, and once more when the store is
//! dropped. A failed Redis call makes the store *doubtful* until one succeeds: meanwhile a call that could answer
//! from what the node holds first checks that Redis answers (a `PING`), so that an outage is reported to
//! [`super::FallbackLimits`] by every call, not only by those that needed Redis anyway.
//!
//! Unlike [`crate::RedisBus`], calls are not spawned onto the bus runtime: limits run on every inference request
//! and the project allows no task per request there. The caller's future sends the command on a
//! `ConnectionManager`, whose multiplexed connection accepts commands from any runtime. The manager is created
//! inside the bus runtime so the task it spawns at creation lives there; redis-rs spawns the connection's driver
//! (and each reconnect) on the runtime of the call that (re)connects, so those may live on a data-plane runtime,
//! which lives as long as the process. Lease refills (`redis/rates.rs`) and the flusher are the exceptions: two
//! long-lived tasks per store, on the bus runtime (a refill or a flush serves many requests, and no request waits
//! for it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc};

use super::blocks::BlockTable;
use super::clock::Clock;
use super::lease::{LeaseTable, LocalAnswer, SETTLE_WAIT};
use super::scripts;
use super::spend_view::SpendTable;
use super::{
    Admission, AllAdmission, BudgetCounter, LimitStore, RateCheck, Reservation, Reserved,
    SpendWindow, WindowTechnique, distinct, never_admitted, window::limited, window_ms,
};
use crate::RedisBusSettings;
use crate::error::BusError;

mod budgets;
mod flusher;
mod rates;
mod spend;

use rates::{AllAttempt, AllCounter, AskInFlight, LeaseReply, Refill, SameCounter, refill_orders};

/// Time limits of the limit commands, apart from the bus's own: a limit check waits for Redis on the request
/// path, so it gives up early and lets [`super::FallbackLimits`] answer locally.
#[derive(Debug, Clone)]
pub struct RedisLimitsSettings {
    /// How long one command may take (redis-rs's default is 500 ms). Default 100 ms.
    pub response_timeout: Duration,
    /// How long connecting may take. Default 250 ms.
    pub connection_timeout: Duration,
    /// The most admissions of one rate limit this node takes from Redis at once (`lease.rs`); 1 turns leasing off,
    /// so that every admission is a round trip. Default [`DEFAULT_MAX_LEASE`].
    pub max_lease: u64,
    /// How old a spend sum `spent` may answer from (`spend_view.rs`): a sum is re-read in the background before
    /// it is this old, and one up to twice as old still answers while it is. Zero reads every call through to
    /// Redis (this node's own spend not yet flushed is sent first, so it is counted). Default 50 ms.
    pub spend_staleness: Duration,
    /// How often recorded spend and settled budget costs are flushed to Redis and budget blocks synced
    /// (`spend_view.rs`, `blocks.rs`): what other nodes see of this node's spend is at most this late. Default
    /// 50 ms; at least 1 ms.
    pub flush_interval: Duration,
}

/// Enough for a lease to last a node at 4,000 requests a second about a quarter of a second.
pub const DEFAULT_MAX_LEASE: u64 = 1_024;
/// Refills waiting to be sent; past it, a refill is not ordered and a request without a lease asks for itself.
const REFILL_QUEUE: usize = 1_024;
/// How many times one `admit_all` asks Redis when it was refused while admissions of its node were on their way.
const ALL_ATTEMPTS: usize = 3;
/// Nano-USD amounts sent to the budget scripts are capped here: Lua sums doubles, exact up to 2^53 (about 9 million
/// USD).
const MAX_EXACT_NANO_USD: u64 = 1 << 53;

impl Default for RedisLimitsSettings {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_millis(100),
            connection_timeout: Duration::from_millis(250),
            max_lease: DEFAULT_MAX_LEASE,
            spend_staleness: Duration::from_millis(50),
            flush_interval: Duration::from_millis(50),
        }
    }
}

/// The Redis [`super::LimitStore`].
pub struct RedisLimits {
    shared: Arc<Shared>,
    /// To the refill task; it ends when the store is dropped.
    refills: mpsc::Sender<Refill>,
    /// Wakes the flusher before its next tick; when the store is dropped, it flushes once more and ends.
    flushes: mpsc::Sender<()>,
    /// Where the refill task and the flusher run.
    runtime: Handle,
}

/// What the store and its refill task both use.
struct Shared {
    commands: ConnectionManager,
    /// `{prefix}limits:`, in front of every caller key.
    key_prefix: String,
    /// `None`: the scripts read the Redis server's clock.
    clock: Option<Arc<dyn Clock>>,
    /// Local time for leases when there is no `clock`.
    epoch: Instant,
    /// Makes request-log members unique across nodes: `{node}:{sequence}`.
    node: String,
    sequence: AtomicU64,
    leases: Mutex<LeaseTable>,
    /// Woken whenever admissions land in `leases` or an ask for them ends: a refused request waiting for its
    /// node's own admissions in flight looks again.
    settled: Notify,
    /// Spend windows: amounts written behind, sums read (`spend_view.rs`).
    spend: Mutex<SpendTable>,
    /// Budget blocks (`blocks.rs`).
    blocks: Mutex<BlockTable>,
    /// Woken whenever a call for a spend window or a block ends: a call waiting to send one looks again.
    lanes: Notify,
    /// A Redis call failed (here, or in `FallbackLimits`'s time limit) and none has succeeded since.
    doubtful: AtomicBool,
    /// [`RedisLimitsSettings::spend_staleness`] in ms.
    staleness_ms: i64,
    flush_interval: Duration,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password; the prefix tells stores apart.
        f.debug_struct("RedisLimits")
            .field("key_prefix", &self.shared.key_prefix)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// Prepares the store without connecting, with the default time limits. The connection manager is created on
    /// `runtime`, and the refill task runs there (see the module doc).
    pub fn new(settings: &RedisBusSettings, runtime: Handle) -> Result<Self, BusError> {
        Self::with_settings(settings, &RedisLimitsSettings::default(), runtime)
    }

    pub fn with_settings(
        bus: &RedisBusSettings,
        settings: &RedisLimitsSettings,
        runtime: Handle,
    ) -> Result<Self, BusError> {
        if bus.prefix.is_empty() {
            return Err(BusError::Settings(
                "the Redis key prefix must not be empty (keys of several deployments would mix)"
                    .into(),
            ));
        }
        let client = redis::Client::open(bus.url.as_str())
            .map_err(|e| BusError::Settings(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connection_timeout))
            .set_response_timeout(Some(settings.response_timeout))
            // One quick retry: a caller should hear that Redis is down in well under a second, and the next call
            // tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(100));
        let commands = {
            let _inside = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config)?
        };
        let shared = Arc::new(Shared {
            commands,
            key_prefix: format!("{}limits:", bus.prefix),
            clock: None,
            epoch: Instant::now(),
            node: uuid::Uuid::new_v4().simple().to_string(),
            sequence: AtomicU64::new(0),
            leases: Mutex::new(LeaseTable::new(settings.max_lease)),
            settled: Notify::new(),
            spend: Mutex::default(),
            blocks: Mutex::default(),
            lanes: Notify::new(),
            doubtful: AtomicBool::new(false),
            staleness_ms: i64::try_from(settings.spend_staleness.as_millis())
                .unwrap_or(i64::MAX / 4),
            flush_interval: settings.flush_interval.max(Duration::from_millis(1)),
        });
        Ok(Self::start(shared, runtime))
    }

    /// Starts the refill task and the flusher of `shared` on `runtime`.
    fn start(shared: Arc<Shared>, runtime: Handle) -> Self {
        let (refills, orders) = mpsc::channel(REFILL_QUEUE);
        runtime.spawn(refill_orders(Arc::clone(&shared), orders));
        let (flushes, wakes) = mpsc::channel(1);
        runtime.spawn(flusher::run(Arc::clone(&shared), wakes));
        Self {
            shared,
            refills,
            flushes,
            runtime,
        }
    }

    /// Sends everything this node wrote behind to Redis now (spend recorded, budget costs settled), waiting for
    /// what is already on its way: when it returns `Ok`, every amount recorded or settled before the call is
    /// counted in Redis. For a clean shutdown and for tests; the background does it every `flush_interval`.
    pub async fn flush(&self) -> Result<(), BusError> {
        self.shared.flush_all().await
    }

    /// Called by `FallbackLimits` when a call to this store failed or ran out of time: the next calls check that
    /// Redis answers before answering from what this node holds.
    pub(super) fn mark_unreachable(&self) {
        self.shared.doubtful.store(true, Ordering::Relaxed);
    }

    /// Asks the flusher to run before its next tick.
    fn wake_flusher(&self) {
        let _ = self.flushes.try_send(());
    }

    /// Reads the time from `clock` instead of the Redis server (tests). Call before the first admission.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        // The refill task shares `Shared` and reads the clock there, so the store is rebuilt around one with the
        // clock; dropping the old sender ends the old task.
        let old = &self.shared;
        let shared = Arc::new(Shared {
            commands: old.commands.clone(),
            key_prefix: old.key_prefix.clone(),
            clock: Some(clock),
            epoch: old.epoch,
            node: old.node.clone(),
            sequence: AtomicU64::new(0),
            leases: Mutex::new(LeaseTable::new(old.lock_leases().max_lease())),
            settled: Notify::new(),
            spend: Mutex::default(),
            blocks: Mutex::default(),
            lanes: Notify::new(),
            doubtful: AtomicBool::new(false),
            staleness_ms: old.staleness_ms,
            flush_interval: old.flush_interval,
        });
        Self::start(shared, self.runtime.clone())
    }
}

/// A nano-USD amount as the budget scripts take it.
fn nano_arg(nano_usd: u64) -> i64 {
    i64::try_from(nano_usd.min(MAX_EXACT_NANO_USD)).unwrap_or(i64::MAX)
}

impl Shared {
    /// The first script argument: the time, or empty for the server's.
    fn now_arg(&self) -> String {
        self.clock
            .as_ref()
            .map(|c| c.now_ms().to_string())
            .unwrap_or_default()
    }

    /// The time leases are measured in: the test clock's, else milliseconds since the store was made.
    fn local_ms(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock.now_ms(),
            None => i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn key(&self, key: &str, kind: &str, window_ms: i64) -> String {
        format!("{}{key}:{kind}:{window_ms}", self.key_prefix)
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, LeaseTable> {
        // The table holds no invariant a panic half-way could break beyond losing leases (which only refuses early).
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_spend(&self) -> std::sync::MutexGuard<'_, SpendTable> {
        // Each change is one step under the lock; a panic between steps leaves at worst a window busy or an entry
        // counted twice.
        self.spend.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_blocks(&self) -> std::sync::MutexGuard<'_, BlockTable> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps track of whether Redis answers: any reply clears the doubt, any failure raises it.
    fn noted<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        self.doubtful.store(result.is_err(), Ordering::Relaxed);
        result
    }

    /// While the store is doubtful, checks that Redis answers before a call answers from what this node holds.
    async fn ensure_reachable(&self) -> Result<(), BusError> {
        if self.doubtful.load(Ordering::Relaxed) {
            let pong: redis::RedisResult<String> = redis::cmd("PING")
                .query_async(&mut self.commands.clone())
                .await;
            self.noted(pong)?;
        }
        Ok(())
    }
}

#[async_trait]
impl LimitStore for RedisLimits {
    async fn admit_request(
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
        self.shared.ensure_reachable().await?;
        let rate = self.rate_key(key, limit, window_ms, technique);
        let mut waited = false;
        let ask = loop {
            let now_ms = self.shared.local_ms();
            let answer = self
                .shared
                .lock_leases()
                .take(&rate.key, limit, now_ms, waited);
            match answer {
                LocalAnswer::Admitted { refill: None } => return Ok(Admission::Admitted),
                LocalAnswer::Admitted { refill: Some(ask) } => {
                    self.order_refill(Refill { rate, ask });
                    return Ok(Admission::Admitted);
                }
                LocalAnswer::Coming => {
                    if self.shared.wait_for_held(&rate.key, limit).await {
                        return Ok(Admission::Admitted);
                    }
                    waited = true;
                }
                LocalAnswer::AskRedis(ask) => break ask,
            }
        };
        let in_flight = (ask.want > 1).then(|| AskInFlight {
            shared: &self.shared,
            key: &rate.key,
        });
        let answer = self.shared.lease(&rate, ask, true).await;
        if let Ok(LeaseReply::Granted {
            admissions,
            valid_until_ms,
        }) = answer
            && admissions > 1
        {
            let now_ms = self.shared.local_ms();
            self.shared.lock_leases().land(
                &rate.key,
                limit,
                admissions - 1,
                admissions,
                valid_until_ms,
                now_ms,
            );
        }
        drop(in_flight);
        match answer? {
            LeaseReply::Granted { .. } => Ok(Admission::Admitted),
            LeaseReply::Refused { retry_after_ms } => {
                if self.shared.wait_for_held(&rate.key, limit).await {
                    Ok(Admission::Admitted)
                } else {
                    Ok(limited(retry_after_ms))
                }
            }
        }
    }

    async fn spent(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let windows = self.shared.spend_windows(windows)?;
        self.shared.ensure_reachable().await?;
        let (sums, stale) = self.shared.spent_now(&windows).await?;
        if stale {
            self.wake_flusher();
        }
        Ok(sums)
    }

    async fn record_spend(&self, windows: &[SpendWindow], nano_usd: u64) -> Result<(), BusError> {
        if windows.is_empty() || nano_usd == 0 {
            return Ok(());
        }
        let windows = self.shared.spend_windows(windows)?;
        self.shared.ensure_reachable().await?;
        if self.shared.record(&windows, nano_usd) {
            self.wake_flusher();
        }
        Ok(())
    }

    async fn admit_all(&self, checks: &[RateCheck]) -> Result<AllAdmission, BusError> {
        let mut items = Vec::with_capacity(checks.len());
        for check in checks {
            let window_ms = window_ms(check.window)?;
            let rate = self.rate_key(&check.key, check.limit, window_ms, check.technique);
            items.push((SameCounter(rate), check.limit));
        }
        let counters: Vec<AllCounter> = distinct(items)
            .counters
            .into_iter()
            .map(|c| {
                let SameCounter(mut rate) = c.id;
                rate.limit = c.limit;
                AllCounter {
                    rate,
                    report: c.report,
                    window: checks[c.report].window,
                }
            })
            .collect();
        if counters.is_empty() {
            return Ok(AllAdmission::Admitted);
        }
        self.shared.ensure_reachable().await?;
        let until = Instant::now() + SETTLE_WAIT;
        let mut attempt = 1;
        loop {
            let (counter, retry_after_ms) = match self.try_admit_all(&counters, attempt > 1).await?
            {
                AllAttempt::Admitted => return Ok(AllAdmission::Admitted),
                AllAttempt::Refused {
                    counter,
                    retry_after_ms,
                } => (counter, retry_after_ms),
            };
            let refused = &counters[counter];
            // As `admit_request`: a node never refuses while it holds, or is about to hold, an admission of the
            // counter that refused (a lease in flight may have taken the very admissions Redis lacked).
            if refused.rate.limit > 0
                && attempt < ALL_ATTEMPTS
                && self
                    .shared
                    .admissions_coming(&refused.rate.key, refused.rate.limit, until)
                    .await
            {
                attempt += 1;
                continue;
            }
            let retry_after = if refused.rate.limit == 0 {
                refused.window
            } else {
                Duration::from_millis(u64::try_from(retry_after_ms.max(1)).unwrap_or(1))
            };
            return Ok(AllAdmission::Limited {
                index: refused.report,
                retry_after,
            });
        }
    }

    async fn reserve(
        &self,
        reservation_id: &str,
        counters: &[BudgetCounter],
        amount: u64,
        hold_for: Duration,
    ) -> Result<Reserved, BusError> {
        if counters.is_empty() {
            return Ok(Reserved::Held(Reservation {
                id: reservation_id.to_owned(),
                counters: Vec::new(),
                amount,
            }));
        }
        self.shared.ensure_reachable().await?;
        self.shared
            .reserve_in_blocks(reservation_id, counters, amount, hold_for)
            .await
    }

    async fn settle(&self, reservation: &Reservation, actual: u64) -> Result<(), BusError> {
        if reservation.counters.is_empty() {
            return Ok(());
        }
        self.shared.ensure_reachable().await?;
        self.shared.settle_in_blocks(reservation, actual);
        Ok(())
    }

    async fn budget_spent(&self, counters: &[BudgetCounter]) -> Result<Vec<u64>, BusError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        self.shared.budget_spent_now(counters).await
    }
}
