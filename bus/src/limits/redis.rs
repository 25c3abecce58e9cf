//! Limits shared through Redis: one Lua script per call (`scripts.rs`), so a call is one round trip, and rate
//! limits leased ahead (`lease.rs`), so that most admissions make none.
//!
//! Unlike [`crate::RedisBus`], calls are not spawned onto the bus runtime: limits run on every inference request
//! and the project allows no task per request there. The caller's future sends the command on a
//! `ConnectionManager`, whose multiplexed connection accepts commands from any runtime. The manager is created
//! inside the bus runtime so the task it spawns at creation lives there; redis-rs spawns the connection's driver
//! (and each reconnect) on the runtime of the call that (re)connects, so those may live on a data-plane runtime,
//! which lives as long as the process. Lease refills are the exception: one long-lived task per store, on the bus
//! runtime, sends them (a refill serves many requests, and no request waits for it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc};

use super::clock::Clock;
use super::lease::{Ask, Held, LeaseTable, LocalAnswer, SETTLE_WAIT, log_lease_validity_ms};
use super::scripts;
use super::window::{EXACT_LOG_MAX, RATE_SLOTS, SPEND_SLOTS, slot_ms};
use super::{
    Admission, LimitStore, SpendWindow, WindowTechnique, never_admitted, window::limited, window_ms,
};
use crate::RedisBusSettings;
use crate::error::BusError;

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
}

/// Enough for a lease to last a node at 4,000 requests a second about a quarter of a second.
pub const DEFAULT_MAX_LEASE: u64 = 1_024;
/// Refills waiting to be sent; past it, a refill is not ordered and a request without a lease asks for itself.
const REFILL_QUEUE: usize = 1_024;
/// Refills in flight at once.
const REFILLS_IN_FLIGHT: usize = 32;

impl Default for RedisLimitsSettings {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_millis(100),
            connection_timeout: Duration::from_millis(250),
            max_lease: DEFAULT_MAX_LEASE,
        }
    }
}

/// The Redis [`super::LimitStore`].
pub struct RedisLimits {
    shared: Arc<Shared>,
    /// To the refill task; it ends when the store is dropped.
    refills: mpsc::Sender<Refill>,
    /// Where the refill task runs.
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
}

/// One rate limit, as the lease script takes it.
#[derive(Debug, Clone)]
struct RateKey {
    /// The full Redis key.
    key: String,
    limit: u64,
    window_ms: i64,
    kind: RateKind,
}

#[derive(Debug, Clone, Copy)]
enum RateKind {
    Fixed,
    Log { lease_validity_ms: i64 },
    Slots { slot_ms: i64 },
}

/// What the lease script answered.
#[derive(Debug, Clone, Copy)]
enum LeaseReply {
    /// `admissions` (at least 1), usable until `valid_until_ms` in local time.
    Granted {
        admissions: u64,
        valid_until_ms: i64,
    },
    /// Nothing left in the window; the next admission could come in `retry_after_ms`.
    Refused { retry_after_ms: i64 },
}

/// A lease ordered in the background.
#[derive(Debug)]
struct Refill {
    rate: RateKey,
    ask: Ask,
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
        });
        Ok(Self::start(shared, runtime))
    }

    /// Starts the refill task of `shared` on `runtime`.
    fn start(shared: Arc<Shared>, runtime: Handle) -> Self {
        let (refills, orders) = mpsc::channel(REFILL_QUEUE);
        runtime.spawn(refill_orders(Arc::clone(&shared), orders));
        Self {
            shared,
            refills,
            runtime,
        }
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
        });
        Self::start(shared, self.runtime.clone())
    }

    fn rate_key(
        &self,
        key: &str,
        limit: u64,
        window_ms: i64,
        technique: WindowTechnique,
    ) -> RateKey {
        let (kind, label) = match technique {
            WindowTechnique::Fixed => (RateKind::Fixed, "rate:fixed"),
            WindowTechnique::Sliding if limit <= EXACT_LOG_MAX => (
                RateKind::Log {
                    lease_validity_ms: log_lease_validity_ms(window_ms),
                },
                "rate:log",
            ),
            WindowTechnique::Sliding => (
                RateKind::Slots {
                    slot_ms: slot_ms(window_ms, RATE_SLOTS),
                },
                "rate:slots",
            ),
        };
        RateKey {
            key: self.shared.key(key, label, window_ms),
            limit,
            window_ms,
            kind,
        }
    }

    /// Adds each window's key to `invocation`, and its kind, length and slot length to the arguments.
    fn add_spend_windows(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        windows: &[SpendWindow],
    ) -> Result<(), BusError> {
        for w in windows {
            let window_ms = window_ms(w.window)?;
            let kind = match w.technique {
                WindowTechnique::Fixed => "fixed",
                WindowTechnique::Sliding => "sliding",
            };
            invocation
                .key(self.shared.key(&w.key, &format!("spend:{kind}"), window_ms))
                .arg(kind)
                .arg(window_ms)
                .arg(slot_ms(window_ms, SPEND_SLOTS));
        }
        Ok(())
    }
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

    /// Whether the request got one of this node's own admissions, waiting up to [`SETTLE_WAIT`] for those in
    /// flight (`lease.rs`, "Own admissions in flight").
    async fn wait_for_held(&self, key: &str, limit: u64) -> bool {
        let settle = async {
            loop {
                // Registered before looking, so a landing between the look and the wait is not missed.
                let landed = self.settled.notified();
                tokio::pin!(landed);
                landed.as_mut().enable();
                let now_ms = self.local_ms();
                match self.lock_leases().take_held(key, limit, now_ms) {
                    Held::Admitted => return true,
                    Held::Nothing => return false,
                    Held::Coming => {}
                }
                landed.await;
            }
        };
        tokio::time::timeout(SETTLE_WAIT, settle)
            .await
            .unwrap_or(false)
    }

    /// Asks Redis for admissions; `own`: the asking request takes the first one.
    async fn lease(&self, rate: &RateKey, ask: Ask, own: bool) -> Result<LeaseReply, BusError> {
        // Read before the time the script gets (the test clock's or Redis's, both later), so the local deadline
        // never outlasts the one Redis counted with.
        let sent_ms = self.local_ms();
        let mut invocation = scripts::LEASE.prepare_invoke();
        invocation
            .key(&rate.key)
            .arg(self.now_arg())
            .arg(match rate.kind {
                RateKind::Fixed => "fixed",
                RateKind::Log { .. } => "log",
                RateKind::Slots { .. } => "slots",
            })
            .arg(rate.limit)
            .arg(rate.window_ms)
            .arg(ask.want)
            .arg(if own { "1" } else { "0" })
            .arg(ask.pace_per_s);
        match rate.kind {
            RateKind::Fixed => {}
            RateKind::Log { lease_validity_ms } => {
                let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                invocation
                    .arg(format!("{}:{sequence}", self.node))
                    .arg(lease_validity_ms);
            }
            RateKind::Slots { slot_ms } => {
                invocation.arg(slot_ms);
            }
        }
        let reply: Vec<i64> = invocation.invoke_async(&mut self.commands.clone()).await?;
        match reply.as_slice() {
            [0, wait_ms] => Ok(LeaseReply::Refused {
                retry_after_ms: *wait_ms,
            }),
            [granted, valid_ms] if *granted > 0 => Ok(LeaseReply::Granted {
                admissions: u64::try_from(*granted).unwrap_or(1),
                valid_until_ms: sent_ms.saturating_add(*valid_ms),
            }),
            other => Err(BusError::corrupt(
                "lease script reply",
                format!("{other:?}"),
            )),
        }
    }
}

/// An ask for more than one admission on its way: when it ends, however it ends (the caller's future may be
/// dropped by a timeout), the key stops waiting for it.
struct AskInFlight<'a> {
    shared: &'a Shared,
    key: &'a str,
}

impl Drop for AskInFlight<'_> {
    fn drop(&mut self) {
        self.shared.lock_leases().ask_done(self.key);
        self.shared.settled.notify_waiters();
    }
}

/// The refill task: sends each ordered lease and stores what Redis grants, a few at a time.
async fn refill_orders(shared: Arc<Shared>, mut orders: mpsc::Receiver<Refill>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            order = orders.recv(), if in_flight.len() < REFILLS_IN_FLIGHT => {
                let Some(order) = order else { break };
                let shared = Arc::clone(&shared);
                in_flight.push(async move {
                    let answer = shared.lease(&order.rate, order.ask, false).await;
                    (order, answer)
                });
            }
            Some((order, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                let now_ms = shared.local_ms();
                let mut leases = shared.lock_leases();
                leases.refill_ended(&order.rate.key);
                match answer {
                    Ok(LeaseReply::Granted { admissions, valid_until_ms }) => leases.land(
                        &order.rate.key,
                        order.rate.limit,
                        admissions,
                        admissions,
                        valid_until_ms,
                        now_ms,
                    ),
                    Ok(LeaseReply::Refused { .. }) => {}
                    Err(e) => tracing::debug!(error = %e, "rate-limit lease refill failed"),
                }
                drop(leases);
                shared.settled.notify_waiters();
            }
        }
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
                    if let Err(unsent) = self.refills.try_send(Refill { rate, ask }) {
                        let key = &unsent.into_inner().rate.key;
                        self.shared.lock_leases().refill_ended(key);
                    }
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
        let mut invocation = scripts::SPENT.prepare_invoke();
        invocation.arg(self.shared.now_arg());
        self.add_spend_windows(&mut invocation, windows)?;
        let reply: Vec<i64> = invocation
            .invoke_async(&mut self.shared.commands.clone())
            .await?;
        if reply.len() != windows.len() {
            return Err(BusError::corrupt(
                "spent script reply",
                format!("{} sums for {} windows", reply.len(), windows.len()),
            ));
        }
        Ok(reply
            .into_iter()
            .map(|n| u64::try_from(n).unwrap_or(0))
            .collect())
    }

    async fn record_spend(&self, windows: &[SpendWindow], nano_usd: u64) -> Result<(), BusError> {
        if windows.is_empty() || nano_usd == 0 {
            return Ok(());
        }
        let mut invocation = scripts::RECORD.prepare_invoke();
        // Redis counters are signed 64-bit: 9.2 billion USD per window is the ceiling.
        invocation
            .arg(self.shared.now_arg())
            .arg(i64::try_from(nano_usd).unwrap_or(i64::MAX));
        self.add_spend_windows(&mut invocation, windows)?;
        let _: i64 = invocation
            .invoke_async(&mut self.shared.commands.clone())
            .await?;
        Ok(())
    }
}
