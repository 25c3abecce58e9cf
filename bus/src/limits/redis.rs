//! Limits shared through Redis: one Lua script per call (`scripts.rs`), so a call is one round trip.
//!
//! Unlike [`crate::RedisBus`], calls are not spawned onto the bus runtime: limits run on every inference request
//! and the project allows no task per request there. The caller's future sends the command on a
//! `ConnectionManager`, whose multiplexed connection accepts commands from any runtime. The manager is created
//! inside the bus runtime so the task it spawns at creation lives there; redis-rs spawns the connection's driver
//! (and each reconnect) on the runtime of the call that (re)connects, so those may live on a data-plane runtime,
//! which lives as long as the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;

use super::clock::Clock;
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
}

impl Default for RedisLimitsSettings {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_millis(100),
            connection_timeout: Duration::from_millis(250),
        }
    }
}

/// The Redis [`super::LimitStore`].
pub struct RedisLimits {
    commands: ConnectionManager,
    /// `{prefix}limits:`, in front of every caller key.
    key_prefix: String,
    /// `None`: the scripts read the Redis server's clock.
    clock: Option<Arc<dyn Clock>>,
    /// Makes request-log members unique across nodes: `{node}:{sequence}`.
    node: String,
    sequence: AtomicU64,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password; the prefix tells stores apart.
        f.debug_struct("RedisLimits")
            .field("key_prefix", &self.key_prefix)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// Prepares the store without connecting, with the default time limits. The connection manager is created on
    /// `runtime` (see the module doc).
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
        Ok(Self {
            commands,
            key_prefix: format!("{}limits:", bus.prefix),
            clock: None,
            node: uuid::Uuid::new_v4().simple().to_string(),
            sequence: AtomicU64::new(0),
        })
    }

    /// Reads the time from `clock` instead of the Redis server (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The first script argument: the time, or empty for the server's.
    fn now_arg(&self) -> String {
        self.clock
            .as_ref()
            .map(|c| c.now_ms().to_string())
            .unwrap_or_default()
    }

    fn key(&self, key: &str, kind: &str, window_ms: i64) -> String {
        format!("{}{key}:{kind}:{window_ms}", self.key_prefix)
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
                .key(self.key(&w.key, &format!("spend:{kind}"), window_ms))
                .arg(kind)
                .arg(window_ms)
                .arg(slot_ms(window_ms, SPEND_SLOTS));
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
        let mut invocation = scripts::ADMIT.prepare_invoke();
        invocation.arg(self.now_arg());
        match technique {
            WindowTechnique::Fixed => {
                invocation
                    .key(self.key(key, "rate:fixed", window_ms))
                    .arg("fixed")
                    .arg(limit)
                    .arg(window_ms);
            }
            WindowTechnique::Sliding if limit <= EXACT_LOG_MAX => {
                let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                invocation
                    .key(self.key(key, "rate:log", window_ms))
                    .arg("log")
                    .arg(limit)
                    .arg(window_ms)
                    .arg(format!("{}:{sequence}", self.node));
            }
            WindowTechnique::Sliding => {
                invocation
                    .key(self.key(key, "rate:slots", window_ms))
                    .arg("slots")
                    .arg(limit)
                    .arg(window_ms)
                    .arg(slot_ms(window_ms, RATE_SLOTS));
            }
        }
        let reply: Vec<i64> = invocation.invoke_async(&mut self.commands.clone()).await?;
        match reply.as_slice() {
            [1] => Ok(Admission::Admitted),
            [0, wait_ms] => Ok(limited(*wait_ms)),
            other => Err(BusError::corrupt(
                "admit script reply",
                format!("{other:?}"),
            )),
        }
    }

    async fn spent(&self, windows: &[SpendWindow]) -> Result<Vec<u64>, BusError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::SPENT.prepare_invoke();
        invocation.arg(self.now_arg());
        self.add_spend_windows(&mut invocation, windows)?;
        let reply: Vec<i64> = invocation.invoke_async(&mut self.commands.clone()).await?;
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
            .arg(self.now_arg())
            .arg(i64::try_from(nano_usd).unwrap_or(i64::MAX));
        self.add_spend_windows(&mut invocation, windows)?;
        let _: i64 = invocation.invoke_async(&mut self.commands.clone()).await?;
        Ok(())
    }
}
