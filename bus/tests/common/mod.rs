//! Helpers shared by the limits and budgets integration tests (`limits.rs`, `admit_all.rs`, `spend.rs`,
//! `limits_latency.rs`, `budgets.rs`): the Redis fixture, common constants and the two-store suite runner. Each
//! test crate uses only some of them.
#![allow(dead_code)]

use std::time::Duration;

use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::limits::{
    Admission, LimitStore, RateCheck, RedisLimits, RedisLimitsSettings, SpendWindow,
    WindowTechnique,
};
use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};

/// 2024-01-01 12:00:00 UTC.
pub const NOON: i64 = 1_704_110_400_000;
pub const MINUTE: i64 = 60_000;
pub const USD: u64 = 1_000_000_000;

/// Redis limits under a fresh prefix; the keys go when dropped.
pub struct Fixture {
    pub url: String,
    pub prefix: String,
}

impl Fixture {
    pub fn start(label: &str) -> Option<Fixture> {
        let url = test_redis_url()?;
        Some(Fixture {
            url,
            prefix: unique_prefix(label),
        })
    }

    /// A store as one node would have it; several share the prefix like nodes of one deployment.
    pub fn node(&self) -> RedisLimits {
        RedisLimits::new(
            &RedisBusSettings {
                url: self.url.clone(),
                prefix: self.prefix.clone(),
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap()
    }

    /// A node with other settings.
    pub fn node_with(&self, settings: RedisLimitsSettings) -> RedisLimits {
        RedisLimits::with_settings(
            &RedisBusSettings {
                url: self.url.clone(),
                prefix: self.prefix.clone(),
            },
            &settings,
            tokio::runtime::Handle::current(),
        )
        .unwrap()
    }

    pub fn keys(&self) -> Vec<String> {
        let mut conn = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("KEYS")
            .arg(format!(
                "{}*",
                gatehouse_bus::testing::glob_escape(&self.prefix)
            ))
            .query(&mut conn)
            .unwrap()
    }

    pub fn pttl(&self, key: &str) -> i64 {
        let mut conn = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("PTTL").arg(key).query(&mut conn).unwrap()
    }
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

pub fn retry_ms(admission: Admission) -> u128 {
    match admission {
        Admission::Limited { retry_after } => retry_after.as_millis(),
        Admission::Admitted => panic!("expected a refusal"),
    }
}

pub async fn admit(
    store: &dyn LimitStore,
    key: &str,
    limit: u64,
    window_ms: i64,
    technique: WindowTechnique,
) -> Admission {
    let window = Duration::from_millis(u64::try_from(window_ms).unwrap());
    store
        .admit_request(key, limit, window, technique)
        .await
        .unwrap()
}

pub fn spend(key: &str, window_ms: i64, technique: WindowTechnique) -> SpendWindow {
    SpendWindow {
        key: key.to_owned(),
        window: Duration::from_millis(u64::try_from(window_ms).unwrap()),
        technique,
    }
}

pub fn check(key: &str, limit: u64, window_ms: i64, technique: WindowTechnique) -> RateCheck {
    RateCheck {
        key: key.to_owned(),
        limit,
        window: Duration::from_millis(u64::try_from(window_ms).unwrap()),
        technique,
    }
}

/// Script calls (`EVALSHA` and `EVAL`) a Redis server has answered.
pub fn script_calls(url: &str) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Runs each behaviour against a `MemoryLimits` and a `RedisLimits`, both on a fresh `ManualClock`; the Redis
/// prefix is labelled `$label`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($label:literal; $($behaviour:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let clock = std::sync::Arc::new(::gatehouse_bus::limits::ManualClock::new(
                        $crate::common::NOON,
                    ));
                    let store = ::gatehouse_bus::limits::MemoryLimits::with_clock(clock.clone());
                    super::$behaviour(&store, &clock).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let Some(fx) = $crate::common::Fixture::start($label) else {
                        return;
                    };
                    let clock = std::sync::Arc::new(::gatehouse_bus::limits::ManualClock::new(
                        $crate::common::NOON,
                    ));
                    let store = fx.node().with_clock(clock.clone());
                    super::$behaviour(&store, &clock).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;
