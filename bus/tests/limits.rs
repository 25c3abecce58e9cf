//! Rate and spend limits: one behaviour suite run against `MemoryLimits` and `RedisLimits` (both on a
//! `ManualClock`), two Redis "nodes" sharing counters under load, and `FallbackLimits` through a Redis outage.
//! Redis tests use `TEST_REDIS_URL` (required when `CI=true`) and a prefix per test. Budgets (`reserve`, `settle`)
//! are in `tests/budgets.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::limits::{
    Admission, AllAdmission, Clock, DEFAULT_MAX_LEASE, EXACT_LOG_MAX, FallbackLimits, LimitStore,
    ManualClock, MemoryLimits, RateCheck, RedisLimits, RedisLimitsSettings, SpendWindow,
    WindowTechnique,
};
use gatehouse_bus::testing::{PrivateRedis, delete_prefix, test_redis_url, unique_prefix};

/// 2024-01-01 12:00:00 UTC.
const NOON: i64 = 1_704_110_400_000;
const MINUTE: i64 = 60_000;
const USD: u64 = 1_000_000_000;

/// Redis limits under a fresh prefix; the keys go when dropped.
struct Fixture {
    url: String,
    prefix: String,
}

impl Fixture {
    fn start(label: &str) -> Option<Fixture> {
        let url = test_redis_url()?;
        Some(Fixture {
            url,
            prefix: unique_prefix(label),
        })
    }

    /// A store as one node would have it; several share the prefix like nodes of one deployment.
    fn node(&self) -> RedisLimits {
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
    fn node_with(&self, settings: RedisLimitsSettings) -> RedisLimits {
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

    fn keys(&self) -> Vec<String> {
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

    fn pttl(&self, key: &str) -> i64 {
        let mut conn = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("PTTL").arg(key).query(&mut conn).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

fn retry_ms(admission: Admission) -> u128 {
    match admission {
        Admission::Limited { retry_after } => retry_after.as_millis(),
        Admission::Admitted => panic!("expected a refusal"),
    }
}

async fn admit(
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

fn spend(key: &str, window_ms: i64, technique: WindowTechnique) -> SpendWindow {
    SpendWindow {
        key: key.to_owned(),
        window: Duration::from_millis(u64::try_from(window_ms).unwrap()),
        technique,
    }
}

// The suite: each behaviour takes a store and the clock it reads.

async fn a_fixed_window_opens_again_at_the_next_aligned_boundary(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    let window = 10 * MINUTE;
    clock.set(NOON + 9 * MINUTE);
    for _ in 0..10 {
        assert_eq!(
            admit(store, "rl:a:g", 10, window, WindowTechnique::Fixed).await,
            Admission::Admitted
        );
    }
    // Refusals are not counted, and each says the window ends at 12:10.
    for _ in 0..3 {
        let refused = admit(store, "rl:a:g", 10, window, WindowTechnique::Fixed).await;
        assert_eq!(retry_ms(refused), 60_000);
    }
    clock.set(NOON + 10 * MINUTE - 1);
    assert_eq!(
        retry_ms(admit(store, "rl:a:g", 10, window, WindowTechnique::Fixed).await),
        1
    );
    clock.set(NOON + 11 * MINUTE);
    for _ in 0..10 {
        assert_eq!(
            admit(store, "rl:a:g", 10, window, WindowTechnique::Fixed).await,
            Admission::Admitted
        );
    }
    assert_eq!(
        retry_ms(admit(store, "rl:a:g", 10, window, WindowTechnique::Fixed).await),
        9 * 60_000
    );
}

async fn a_sliding_window_admits_again_exactly_when_the_oldest_request_leaves(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    let window = 10_000;
    let t0 = NOON + 123;
    for offset in [0, 1_000, 2_000] {
        clock.set(t0 + offset);
        assert_eq!(
            admit(store, "rl:a:s", 3, window, WindowTechnique::Sliding).await,
            Admission::Admitted
        );
    }
    clock.set(t0 + 5_000);
    assert_eq!(
        retry_ms(admit(store, "rl:a:s", 3, window, WindowTechnique::Sliding).await),
        5_000
    );
    clock.set(t0 + window - 1);
    assert_eq!(
        retry_ms(admit(store, "rl:a:s", 3, window, WindowTechnique::Sliding).await),
        1
    );
    clock.set(t0 + window);
    assert_eq!(
        admit(store, "rl:a:s", 3, window, WindowTechnique::Sliding).await,
        Admission::Admitted
    );
    assert_eq!(
        retry_ms(admit(store, "rl:a:s", 3, window, WindowTechnique::Sliding).await),
        1_000
    );
}

async fn a_large_sliding_limit_counts_in_slots_and_never_exceeds_the_limit(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    // 64 slots of 1 s over a 64 s window.
    let window = 64_000;
    let limit = EXACT_LOG_MAX + 1;
    clock.set(NOON + 500);
    for chunk in 0..limit.div_ceil(1_000) {
        let n = (limit - chunk * 1_000).min(1_000);
        let answers = join_all(
            (0..n).map(|_| admit(store, "rl:a:big", limit, window, WindowTechnique::Sliding)),
        )
        .await;
        assert!(answers.iter().all(|a| *a == Admission::Admitted));
    }
    // Full. The slot [NOON, NOON + 1 s) overlaps the window until now - 64 s + 1 ms reaches NOON + 1 s.
    assert_eq!(
        retry_ms(admit(store, "rl:a:big", limit, window, WindowTechnique::Sliding).await),
        64_499
    );
    clock.set(NOON + 1_000 + window - 2);
    assert_eq!(
        retry_ms(admit(store, "rl:a:big", limit, window, WindowTechnique::Sliding).await),
        1
    );
    clock.set(NOON + 1_000 + window - 1);
    assert_eq!(
        admit(store, "rl:a:big", limit, window, WindowTechnique::Sliding).await,
        Admission::Admitted
    );
}

async fn keys_and_window_lengths_count_apart(store: &dyn LimitStore, clock: &ManualClock) {
    clock.set(NOON);
    for (key, window) in [
        ("rl:a:1", MINUTE),
        ("rl:a:1", 2 * MINUTE),
        ("rl:a:2", MINUTE),
    ] {
        for technique in [WindowTechnique::Fixed, WindowTechnique::Sliding] {
            let first = admit(store, key, 1, window, technique).await;
            assert_eq!(first, Admission::Admitted, "{key} {window} {technique:?}");
        }
    }
    assert!(matches!(
        admit(store, "rl:a:1", 1, MINUTE, WindowTechnique::Sliding).await,
        Admission::Limited { .. }
    ));
}

async fn a_limit_of_zero_admits_nothing(store: &dyn LimitStore, clock: &ManualClock) {
    clock.set(NOON);
    let refused = admit(store, "rl:a:zero", 0, MINUTE, WindowTechnique::Fixed).await;
    assert_eq!(retry_ms(refused), 60_000);
    let bad_window = store
        .admit_request("rl:a:zero", 1, Duration::ZERO, WindowTechnique::Fixed)
        .await;
    assert!(bad_window.is_err());
}

async fn fixed_spend_sums_aligned_buckets_and_starts_over(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    let day = 24 * 60 * MINUTE;
    let windows = [
        spend("sl:a:g", day, WindowTechnique::Fixed),
        spend("sl:a:g", MINUTE, WindowTechnique::Fixed),
    ];
    clock.set(NOON);
    assert_eq!(store.spent(&windows).await.unwrap(), [0, 0]);
    store.record_spend(&windows, 3 * USD / 2).await.unwrap();
    store.record_spend(&windows, 250_000_000).await.unwrap();
    assert_eq!(
        store.spent(&windows).await.unwrap(),
        [1_750_000_000, 1_750_000_000]
    );
    clock.set(NOON + MINUTE);
    assert_eq!(store.spent(&windows).await.unwrap(), [1_750_000_000, 0]);
    store.record_spend(&windows, 1).await.unwrap();
    assert_eq!(store.spent(&windows).await.unwrap(), [1_750_000_001, 1]);
    // Buckets are epoch-aligned days: NOON is 12 h into its day.
    clock.set(NOON + day / 2);
    assert_eq!(store.spent(&windows).await.unwrap(), [0, 0]);
    assert!(store.spent(&[]).await.unwrap().is_empty());
}

async fn sliding_spend_weights_the_oldest_slot_and_forgets_what_left(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    // 32 slots of 1 s over a 32 s window.
    let window = 32_000;
    let windows = [
        spend("sl:a:s", window, WindowTechnique::Sliding),
        spend("sl:a:s", 10 * window, WindowTechnique::Sliding),
    ];
    clock.set(NOON + 500);
    store.record_spend(&windows, 1_000).await.unwrap();
    clock.set(NOON + 10_000);
    store.record_spend(&windows, 20).await.unwrap();
    assert_eq!(store.spent(&windows).await.unwrap(), [1_020, 1_020]);
    clock.set(NOON + window);
    assert_eq!(store.spent(&windows).await.unwrap(), [1_020, 1_020]);
    // A quarter of the oldest slot has left the window.
    clock.set(NOON + window + 250);
    assert_eq!(store.spent(&windows).await.unwrap(), [770, 1_020]);
    clock.set(NOON + window + 11_000);
    assert_eq!(store.spent(&windows).await.unwrap(), [0, 1_020]);
    store.record_spend(&windows, 5).await.unwrap();
    assert_eq!(store.spent(&windows).await.unwrap(), [5, 1_025]);
}

fn check(key: &str, limit: u64, window_ms: i64, technique: WindowTechnique) -> RateCheck {
    RateCheck {
        key: key.to_owned(),
        limit,
        window: Duration::from_millis(u64::try_from(window_ms).unwrap()),
        technique,
    }
}

async fn admit_all(store: &dyn LimitStore, checks: &[RateCheck]) -> AllAdmission {
    store.admit_all(checks).await.unwrap()
}

/// `Limited` at `index`, and its `retry_after` in ms.
fn refused_at(answer: AllAdmission) -> (usize, u128) {
    match answer {
        AllAdmission::Limited { index, retry_after } => (index, retry_after.as_millis()),
        AllAdmission::Admitted => panic!("expected a refusal"),
    }
}

async fn admit_all_counts_under_every_check_or_none(store: &dyn LimitStore, clock: &ManualClock) {
    for technique in [WindowTechnique::Fixed, WindowTechnique::Sliding] {
        let label = format!("{technique:?}");
        // A key with room for 100 (so Redis leases it ahead) under a team with room for 3.
        let key = check(&format!("rl:a:key:{label}"), 100, MINUTE, technique);
        let team = check(&format!("rl:a:team:{label}"), 3, MINUTE, technique);
        // A fixed window ends at 12:01; a sliding one frees its oldest request a minute after it.
        let retry = match technique {
            WindowTechnique::Fixed => 59_000,
            WindowTechnique::Sliding => 60_000,
        };
        clock.set(NOON + 1_000);
        for _ in 0..3 {
            assert_eq!(
                admit_all(store, &[key.clone(), team.clone()]).await,
                AllAdmission::Admitted
            );
        }
        // Refused by the team, each time; the key's allowance is not used.
        for _ in 0..30 {
            let answer = admit_all(store, &[key.clone(), team.clone()]).await;
            assert_eq!(refused_at(answer), (1, retry), "{technique:?}");
        }
        for n in 0..97 {
            let answer = admit_all(store, std::slice::from_ref(&key)).await;
            assert_eq!(
                answer,
                AllAdmission::Admitted,
                "{technique:?}: admission {n}"
            );
        }
        assert_eq!(
            refused_at(admit_all(store, std::slice::from_ref(&key)).await),
            (0, retry)
        );
        // The first check without room is the one named.
        assert_eq!(
            refused_at(admit_all(store, &[team.clone(), key.clone()]).await).0,
            0
        );
    }
}

async fn admit_all_fixed_windows_open_again_at_their_edges(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    let per_minute = check("rl:a:fixed:minute", 3, MINUTE, WindowTechnique::Fixed);
    let per_ten = check("rl:a:fixed:ten", 5, 10 * MINUTE, WindowTechnique::Fixed);
    let both = [per_minute.clone(), per_ten.clone()];
    clock.set(NOON + 30_000);
    for _ in 0..3 {
        assert_eq!(admit_all(store, &both).await, AllAdmission::Admitted);
    }
    assert_eq!(refused_at(admit_all(store, &both).await), (0, 30_000));
    clock.set(NOON + MINUTE - 1);
    assert_eq!(refused_at(admit_all(store, &both).await), (0, 1));
    // A new minute: two more fit under the ten-minute window, which then refuses until 12:10.
    clock.set(NOON + MINUTE);
    for _ in 0..2 {
        assert_eq!(admit_all(store, &both).await, AllAdmission::Admitted);
    }
    assert_eq!(refused_at(admit_all(store, &both).await), (1, 9 * 60_000));
    // The per-minute counter was not charged by that refusal: it still has one.
    assert_eq!(
        admit_all(store, std::slice::from_ref(&per_minute)).await,
        AllAdmission::Admitted
    );
    assert_eq!(
        refused_at(admit_all(store, std::slice::from_ref(&per_minute)).await),
        (0, 60_000)
    );
    clock.set(NOON + 10 * MINUTE - 1);
    assert_eq!(refused_at(admit_all(store, &both).await), (1, 1));
    clock.set(NOON + 10 * MINUTE);
    assert_eq!(admit_all(store, &both).await, AllAdmission::Admitted);
}

async fn admit_all_sliding_windows_admit_again_when_the_oldest_leaves(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    let short = check("rl:a:sliding:short", 2, 10_000, WindowTechnique::Sliding);
    let long = check("rl:a:sliding:long", 3, MINUTE, WindowTechnique::Sliding);
    let both = [short.clone(), long.clone()];
    let t0 = NOON + 123;
    for offset in [0, 1_000] {
        clock.set(t0 + offset);
        assert_eq!(admit_all(store, &both).await, AllAdmission::Admitted);
    }
    clock.set(t0 + 2_000);
    assert_eq!(refused_at(admit_all(store, &both).await), (0, 8_000));
    clock.set(t0 + 10_000 - 1);
    assert_eq!(refused_at(admit_all(store, &both).await), (0, 1));
    clock.set(t0 + 10_000);
    assert_eq!(admit_all(store, &both).await, AllAdmission::Admitted);
    // Both full now; the first in the caller's order is named.
    clock.set(t0 + 10_001);
    assert_eq!(refused_at(admit_all(store, &both).await), (0, 999));
    // The short window has room again, the long one not until t0 + 60 s.
    clock.set(t0 + 11_000);
    assert_eq!(refused_at(admit_all(store, &both).await), (1, 49_000));
    // That refusal left the short window alone: it admits one more, then waits for t0 + 10 s to leave.
    assert_eq!(
        admit_all(store, std::slice::from_ref(&short)).await,
        AllAdmission::Admitted
    );
    assert_eq!(
        refused_at(admit_all(store, std::slice::from_ref(&short)).await),
        (0, 9_000)
    );
    clock.set(t0 + MINUTE - 1);
    assert_eq!(refused_at(admit_all(store, &both).await), (1, 1));
    clock.set(t0 + MINUTE);
    assert_eq!(admit_all(store, &both).await, AllAdmission::Admitted);
}

async fn admit_all_refuses_a_zero_limit_and_merges_repeated_counters(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    clock.set(NOON);
    let key = check("rl:a:merged", 5, MINUTE, WindowTechnique::Sliding);
    let blocked = check("rl:a:blocked", 0, MINUTE, WindowTechnique::Sliding);
    assert_eq!(admit_all(store, &[]).await, AllAdmission::Admitted);
    for _ in 0..3 {
        let answer = admit_all(store, &[key.clone(), blocked.clone()]).await;
        assert_eq!(refused_at(answer), (1, 60_000));
    }
    // The same counter twice with two limits: counted once per request, under the smaller limit.
    let stricter = check("rl:a:merged", 2, MINUTE, WindowTechnique::Sliding);
    for _ in 0..2 {
        assert_eq!(
            admit_all(store, &[key.clone(), stricter.clone()]).await,
            AllAdmission::Admitted
        );
    }
    assert_eq!(
        refused_at(admit_all(store, &[key.clone(), stricter.clone()]).await),
        (1, 60_000)
    );
    // The zero-limit refusals and the repeated check used nothing beyond one count per admission.
    for _ in 0..3 {
        assert_eq!(
            admit_all(store, std::slice::from_ref(&key)).await,
            AllAdmission::Admitted
        );
    }
    assert_eq!(refused_at(admit_all(store, &[key]).await).0, 0);
    let bad_window = check("rl:a:bad", 1, 0, WindowTechnique::Fixed);
    assert!(store.admit_all(&[blocked, bad_window]).await.is_err());
}

/// Runs each behaviour against a `MemoryLimits` and a `RedisLimits`, both on a fresh `ManualClock`.
macro_rules! on_both_stores {
    ($($behaviour:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let clock = std::sync::Arc::new(super::ManualClock::new(super::NOON));
                    let store = super::MemoryLimits::with_clock(clock.clone());
                    super::$behaviour(&store, &clock).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let Some(fx) = super::Fixture::start("limits") else {
                        return;
                    };
                    let clock = std::sync::Arc::new(super::ManualClock::new(super::NOON));
                    let store = fx.node().with_clock(clock.clone());
                    super::$behaviour(&store, &clock).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_fixed_window_opens_again_at_the_next_aligned_boundary,
    a_sliding_window_admits_again_exactly_when_the_oldest_request_leaves,
    a_large_sliding_limit_counts_in_slots_and_never_exceeds_the_limit,
    keys_and_window_lengths_count_apart,
    a_limit_of_zero_admits_nothing,
    fixed_spend_sums_aligned_buckets_and_starts_over,
    sliding_spend_weights_the_oldest_slot_and_forgets_what_left,
    admit_all_counts_under_every_check_or_none,
    admit_all_fixed_windows_open_again_at_their_edges,
    admit_all_sliding_windows_admit_again_when_the_oldest_leaves,
    admit_all_refuses_a_zero_limit_and_merges_repeated_counters,
);

/// Sends `tasks × calls` admissions, spread over `nodes` from concurrent tasks; returns how many were admitted.
async fn hammer(nodes: &[Arc<RedisLimits>], limit: u64, technique: WindowTechnique) -> u64 {
    let tasks = (0..8).map(|task| {
        let node = Arc::clone(&nodes[task % nodes.len()]);
        tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..40 {
                let answer = node
                    .admit_request("rl:a:shared", limit, Duration::from_secs(60), technique)
                    .await
                    .unwrap();
                if answer == Admission::Admitted {
                    admitted += 1;
                }
            }
            admitted
        })
    });
    join_all(tasks).await.into_iter().map(Result::unwrap).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_together_admit_exactly_a_sliding_limit() {
    let Some(fx) = Fixture::start("limits-nodes-sliding") else {
        return;
    };
    // Redis server time, as in production.
    let nodes = [Arc::new(fx.node()), Arc::new(fx.node())];
    assert_eq!(hammer(&nodes, 50, WindowTechnique::Sliding).await, 50);
    // Demand below the limit: everything is admitted.
    let fx = Fixture::start("limits-nodes-sliding-low").unwrap();
    let nodes = [Arc::new(fx.node()), Arc::new(fx.node())];
    assert_eq!(hammer(&nodes, 1_000, WindowTechnique::Sliding).await, 320);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_together_admit_exactly_a_fixed_limit() {
    let Some(fx) = Fixture::start("limits-nodes-fixed") else {
        return;
    };
    // A frozen clock, so the load cannot straddle a window boundary.
    let clock = Arc::new(ManualClock::new(NOON));
    let nodes = [
        Arc::new(fx.node().with_clock(clock.clone())),
        Arc::new(fx.node().with_clock(clock.clone())),
    ];
    assert_eq!(hammer(&nodes, 50, WindowTechnique::Fixed).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_leasing_nodes_admit_exactly_a_limit_large_enough_for_leases() {
    let Some(fx) = Fixture::start("limits-nodes-leases") else {
        return;
    };
    // 320 calls against 200 leaves leases of up to 12 admissions in play; refusals still stop at the limit.
    let nodes = [Arc::new(fx.node()), Arc::new(fx.node())];
    assert_eq!(hammer(&nodes, 200, WindowTechnique::Fixed).await, 200);
    let fx = Fixture::start("limits-nodes-leases-log").unwrap();
    let nodes = [Arc::new(fx.node()), Arc::new(fx.node())];
    assert_eq!(hammer(&nodes, 200, WindowTechnique::Sliding).await, 200);
}

/// Eight tasks spread over `nodes`, each making 40 `admit_all` calls: task `t` runs on node `t % 2` under
/// `[key (t / 2) % 2, team]`. Returns the admissions under each key.
async fn hammer_all(
    nodes: &[Arc<RedisLimits>],
    key_limit: u64,
    team_limit: u64,
    technique: WindowTechnique,
) -> [u64; 2] {
    let tasks = (0..8).map(|task| {
        let node = Arc::clone(&nodes[task % nodes.len()]);
        let key = (task / 2) % 2;
        let checks = [
            check(&format!("rl:a:key:{key}"), key_limit, MINUTE, technique),
            check("rl:a:team", team_limit, MINUTE, technique),
        ];
        tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..40 {
                match node.admit_all(&checks).await.unwrap() {
                    AllAdmission::Admitted => admitted += 1,
                    AllAdmission::Limited { index, .. } => assert!(index < 2),
                }
            }
            (key, admitted)
        })
    });
    let mut per_key = [0, 0];
    for (key, admitted) in join_all(tasks).await.into_iter().map(Result::unwrap) {
        per_key[key] += admitted;
    }
    per_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_admitting_under_several_counters_never_exceed_any_and_count_all_or_none() {
    if test_redis_url().is_none() {
        return;
    }
    for technique in [WindowTechnique::Fixed, WindowTechnique::Sliding] {
        let clock = Arc::new(ManualClock::new(NOON));
        let fx = Fixture::start(&format!("limits-all-nodes-{technique:?}")).unwrap();
        let nodes = [
            Arc::new(fx.node().with_clock(clock.clone())),
            Arc::new(fx.node().with_clock(clock.clone())),
        ];
        // Small limits, so Redis grants one admission at a time and every count is the request's own.
        let [first, second] = hammer_all(&nodes, 15, 20, technique).await;
        assert_eq!(first + second, 20, "{technique:?}: {first} + {second}");
        assert!(
            first <= 15 && second <= 15,
            "{technique:?}: {first}, {second}"
        );
        // A refusal by the team never used a key's allowance: exactly what was admitted is gone from each key.
        let witness = RedisLimits::with_settings(
            &RedisBusSettings {
                url: fx.url.clone(),
                prefix: fx.prefix.clone(),
            },
            &RedisLimitsSettings {
                max_lease: 1,
                ..RedisLimitsSettings::default()
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap()
        .with_clock(clock.clone());
        for (key, admitted) in [(0, first), (1, second)] {
            let alone = [check(&format!("rl:a:key:{key}"), 15, MINUTE, technique)];
            let mut left = 0;
            while witness.admit_all(&alone).await.unwrap() == AllAdmission::Admitted {
                left += 1;
            }
            assert_eq!(left, 15 - admitted, "{technique:?}: key {key}");
        }
        // Limits large enough for leases: the team still caps the total.
        let fx = Fixture::start(&format!("limits-all-leases-{technique:?}")).unwrap();
        let nodes = [
            Arc::new(fx.node().with_clock(clock.clone())),
            Arc::new(fx.node().with_clock(clock.clone())),
        ];
        let [first, second] = hammer_all(&nodes, 150, 200, technique).await;
        assert_eq!(first + second, 200, "{technique:?}: {first} + {second}");
        assert!(
            first <= 150 && second <= 150,
            "{technique:?}: {first}, {second}"
        );
    }
}

/// Two leasing nodes on one `ManualClock`, each trying `per_step` admissions every `step_ms` for `steps` steps
/// under one limit; returns the time of every admission. Refills run in the background between steps, as they do
/// between requests.
async fn saturate(
    fx: &Fixture,
    limit: u64,
    window_ms: i64,
    technique: WindowTechnique,
    per_step: usize,
    step_ms: i64,
    steps: usize,
) -> Vec<i64> {
    let clock = Arc::new(ManualClock::new(NOON + 7));
    let nodes = [
        fx.node().with_clock(clock.clone()),
        fx.node().with_clock(clock.clone()),
    ];
    let mut admitted = Vec::new();
    for _ in 0..steps {
        for node in &nodes {
            for _ in 0..per_step {
                if admit(node, "rl:a:edges", limit, window_ms, technique).await
                    == Admission::Admitted
                {
                    admitted.push(clock.now_ms());
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
        clock.advance(Duration::from_millis(u64::try_from(step_ms).unwrap()));
    }
    admitted
}

/// The most admissions in any trailing window `(t - window, t]` (times sorted).
fn busiest_trailing_window(times: &[i64], window_ms: i64) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, t) in times.iter().enumerate() {
        while times[first] <= t - window_ms {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_keep_every_fixed_window_within_its_limit() {
    let Some(fx) = Fixture::start("limits-edges-fixed") else {
        return;
    };
    let (limit, window) = (400, 2_000);
    // Demand is twice the limit, over three and a half windows.
    let times = saturate(&fx, limit, window, WindowTechnique::Fixed, 2, 10, 700).await;
    let mut per_window = std::collections::BTreeMap::<i64, u64>::new();
    for t in &times {
        *per_window.entry(t - t.rem_euclid(window)).or_default() += 1;
    }
    for (start, count) in &per_window {
        assert!(*count <= limit, "window at {start}: {count} > {limit}");
    }
    // The whole windows in the middle are nearly used up: leases refuse early only by what is left over.
    let whole: Vec<u64> = per_window.values().copied().skip(1).take(2).collect();
    assert!(
        whole.iter().all(|c| *c >= limit * 9 / 10),
        "admitted per whole window: {whole:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_keep_every_trailing_window_of_an_exact_log_within_its_limit() {
    let Some(fx) = Fixture::start("limits-edges-log") else {
        return;
    };
    let (limit, window) = (400, 2_000);
    let times = saturate(&fx, limit, window, WindowTechnique::Sliding, 2, 10, 700).await;
    let busiest = busiest_trailing_window(&times, window);
    assert!(busiest <= 400, "{busiest} admitted within one window");
    assert!(
        busiest >= 360,
        "only {busiest} admitted in the busiest window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_keep_every_trailing_window_of_a_slotted_limit_within_its_limit() {
    let Some(fx) = Fixture::start("limits-edges-slots") else {
        return;
    };
    // 64 slots of 50 ms; demand 50 per 10 ms is 16,000 per window against 10,001.
    let (limit, window) = (EXACT_LOG_MAX + 1, 3_200);
    let times = saturate(&fx, limit, window, WindowTechnique::Sliding, 25, 10, 1_000).await;
    let busiest = busiest_trailing_window(&times, window);
    let limit = usize::try_from(limit).unwrap();
    assert!(busiest <= limit, "{busiest} admitted within one window");
    assert!(
        busiest >= limit * 9 / 10,
        "only {busiest} admitted in the busiest window"
    );
}

/// Script calls (`EVALSHA` and `EVAL`) a Redis server has answered.
fn script_calls(url: &str) -> u64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_admits_most_requests_without_a_round_trip() {
    // Counting calls needs a server of its own; the Redis variant must not be skipped in CI.
    if test_redis_url().is_none() {
        return;
    }
    let redis = PrivateRedis::start();
    let store = |max_lease| {
        RedisLimits::with_settings(
            &RedisBusSettings {
                url: redis.url(),
                prefix: unique_prefix("limits-leases"),
            },
            &RedisLimitsSettings {
                max_lease,
                ..RedisLimitsSettings::default()
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap()
    };
    let run = async |store: &RedisLimits, limit: u64, technique: WindowTechnique| {
        let before = script_calls(&redis.url());
        for _ in 0..5_000 {
            let answer = admit(store, "rl:a:busy", limit, MINUTE, technique).await;
            assert_eq!(answer, Admission::Admitted);
        }
        script_calls(&redis.url()) - before
    };
    let leasing = store(DEFAULT_MAX_LEASE);
    for (limit, technique) in [
        (1_000_000, WindowTechnique::Fixed),
        (10_000, WindowTechnique::Sliding),
        (1_000_000, WindowTechnique::Sliding),
    ] {
        let calls = run(&leasing, limit, technique).await;
        eprintln!("{limit} {technique:?}: {calls} round trips for 5,000 admissions");
        assert!(
            calls <= 250,
            "{calls} round trips for 5,000 admissions ({limit} {technique:?})"
        );
    }
    // Leasing off: a round trip per admission.
    assert_eq!(
        run(&store(1), 1_000_000, WindowTechnique::Fixed).await,
        5_000
    );
}

/// Recorded spend is written behind (`spend_view.rs`): another node sees it within the flush interval, without
/// anyone flushing on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_spend_reaches_the_other_nodes_within_the_flush_interval() {
    let Some(fx) = Fixture::start("limits-behind") else {
        return;
    };
    let writer = fx.node();
    let reader = fx.node_with(RedisLimitsSettings {
        spend_staleness: Duration::ZERO,
        ..RedisLimitsSettings::default()
    });
    let windows = [
        spend("tpm:a:k", MINUTE, WindowTechnique::Sliding),
        spend("sl:a:g", MINUTE, WindowTechnique::Fixed),
    ];
    assert_eq!(reader.spent(&windows).await.unwrap(), [0, 0]);
    // The writer reads first (a check before the request), so its view exists and later reads flush nothing.
    assert_eq!(writer.spent(&windows).await.unwrap(), [0, 0]);
    writer.record_spend(&windows, 9).await.unwrap();
    writer.record_spend(&windows, 1).await.unwrap();
    assert_eq!(
        writer.spent(&windows).await.unwrap(),
        [10, 10],
        "a node counts its own spend at once"
    );
    let started = Instant::now();
    loop {
        let seen = reader.spent(&windows).await.unwrap();
        if seen == [10, 10] {
            break;
        }
        // A fixed minute may have ended in between: then the sliding window alone tells.
        if seen[0] == 10 && seen[1] == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the other node never saw it: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    eprintln!("visible after {took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
}

/// `spent` answers from a view of each window at most `spend_staleness` old (up to twice that while a refresh is
/// on its way), plus this node's own spend; older, it reads through. On one manual clock, so the ages are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_answers_from_a_view_no_older_than_its_staleness() {
    let Some(fx) = Fixture::start("limits-staleness") else {
        return;
    };
    let clock = Arc::new(ManualClock::new(NOON));
    let staleness = Duration::from_millis(100);
    let with_staleness = |staleness| RedisLimitsSettings {
        spend_staleness: staleness,
        ..RedisLimitsSettings::default()
    };
    let reader = fx
        .node_with(with_staleness(staleness))
        .with_clock(clock.clone());
    let through = fx
        .node_with(with_staleness(Duration::ZERO))
        .with_clock(clock.clone());
    let writer = fx.node().with_clock(clock.clone());
    let windows = [spend("tpm:a:k", MINUTE, WindowTechnique::Sliding)];
    // The first read of a window goes through.
    assert_eq!(reader.spent(&windows).await.unwrap(), [0]);
    writer.record_spend(&windows, 7).await.unwrap();
    writer.flush().await.unwrap();
    assert_eq!(
        through.spent(&windows).await.unwrap(),
        [7],
        "staleness 0 reads through"
    );
    // The reader's view is younger than its staleness (the clock has not moved): it answers from it.
    assert_eq!(reader.spent(&windows).await.unwrap(), [0]);
    // Its own spend counts at once, flushed or not.
    reader.record_spend(&windows, 5).await.unwrap();
    assert_eq!(reader.spent(&windows).await.unwrap(), [5]);
    // Past the staleness the view may still answer while a refresh is on its way (or the refresh landed).
    clock.advance(staleness + Duration::from_millis(1));
    let seen = reader.spent(&windows).await.unwrap();
    assert!(seen == [5] || seen == [12], "{seen:?}");
    // Past twice the staleness it never does.
    clock.advance(staleness);
    assert_eq!(reader.spent(&windows).await.unwrap(), [12]);
    assert_eq!(through.spent(&windows).await.unwrap(), [12]);
}

/// The same bound on Redis server time: what another node flushed shows in `spent` well within twice the
/// staleness (the background refreshes windows read lately before they go stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_is_refreshed_before_it_goes_stale() {
    let Some(fx) = Fixture::start("limits-refresh") else {
        return;
    };
    let staleness = Duration::from_millis(100);
    let reader = fx.node_with(RedisLimitsSettings {
        spend_staleness: staleness,
        ..RedisLimitsSettings::default()
    });
    let writer = fx.node();
    let windows = [spend("tpm:a:k", MINUTE, WindowTechnique::Sliding)];
    assert_eq!(reader.spent(&windows).await.unwrap(), [0]);
    writer.record_spend(&windows, 3).await.unwrap();
    writer.flush().await.unwrap();
    let flushed = Instant::now();
    while reader.spent(&windows).await.unwrap() != [3] {
        assert!(
            flushed.elapsed() < Duration::from_secs(2),
            "never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = flushed.elapsed();
    eprintln!("refreshed after {took:?}");
    // Twice the staleness, and a flush tick of slack for a loaded machine.
    assert!(took < 2 * staleness + Duration::from_millis(50), "{took:?}");
}

/// What `spent`, `record_spend`, `reserve` and `settle` cost in round trips: the first read of a window and the
/// first hold of a budget, the growths of a block, and the background's flushes, not one per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_and_budget_calls_rarely_make_a_round_trip() {
    // Counting calls needs a server of its own; the Redis variant must not be skipped in CI.
    if test_redis_url().is_none() {
        return;
    }
    let redis = PrivateRedis::start();
    let store = RedisLimits::new(
        &RedisBusSettings {
            url: redis.url(),
            prefix: unique_prefix("limits-behind-calls"),
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let before = script_calls(&redis.url());
    let started = Instant::now();
    for i in 0..2_000 {
        let key = i % 10;
        let tpm = [spend(
            &format!("vk:a:key:{key}:tpm"),
            MINUTE,
            WindowTechnique::Sliding,
        )];
        let budget = [gatehouse_bus::limits::BudgetCounter {
            key: format!("vk:a:key:{key}:budget:month:0"),
            limit: 1_000 * USD,
            period_end_ms: i64::MAX / 4,
        }];
        store.spent(&tpm).await.unwrap();
        let gatehouse_bus::limits::Reserved::Held(reservation) = store
            .reserve(
                &format!("r{i}"),
                &budget,
                USD / 100,
                Duration::from_secs(900),
            )
            .await
            .unwrap()
        else {
            panic!("refused")
        };
        store.settle(&reservation, USD / 200).await.unwrap();
        store.record_spend(&tpm, 100).await.unwrap();
    }
    let took = started.elapsed();
    store.flush().await.unwrap();
    let calls = script_calls(&redis.url()) - before;
    eprintln!("{calls} script calls for 2,000 requests in {took:?}");
    // Before write-behind and blocks: four per request (8,000). Now the first read and hold of each of the 10
    // keys, a few growths each, and two per flush tick.
    let ticks = u64::try_from(took.as_millis() / 50).unwrap() + 2;
    assert!(
        calls <= 100 + 2 * ticks,
        "{calls} script calls for 2,000 requests in {took:?}"
    );
    // Nothing was lost on the way.
    let spent = store
        .spent(&[spend("vk:a:key:0:tpm", MINUTE, WindowTechnique::Sliding)])
        .await
        .unwrap();
    assert_eq!(spent, [200 * 100]);
    let budget = gatehouse_bus::limits::BudgetCounter {
        key: "vk:a:key:0:budget:month:0".into(),
        limit: 1_000 * USD,
        period_end_ms: i64::MAX / 4,
    };
    assert_eq!(
        store.budget_spent(&[budget]).await.unwrap(),
        [200 * USD / 200]
    );
}

/// A store being dropped flushes what it wrote behind (a node shutting down loses nothing it recorded), here with
/// a flush interval so long that nothing else could have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_flushes_what_it_wrote_behind() {
    let Some(fx) = Fixture::start("limits-drop") else {
        return;
    };
    let reader = fx.node_with(RedisLimitsSettings {
        spend_staleness: Duration::ZERO,
        ..RedisLimitsSettings::default()
    });
    let windows = [spend("tpm:a:k", MINUTE, WindowTechnique::Sliding)];
    let budget = [gatehouse_bus::limits::BudgetCounter {
        key: "budget:a:key:k:month:0".into(),
        limit: 10 * USD,
        period_end_ms: i64::MAX / 4,
    }];
    let writer = fx.node_with(RedisLimitsSettings {
        flush_interval: Duration::from_secs(3_600),
        ..RedisLimitsSettings::default()
    });
    // The flusher's first tick is at its start: let it pass.
    tokio::time::sleep(Duration::from_millis(20)).await;
    writer.record_spend(&windows, 4).await.unwrap();
    let gatehouse_bus::limits::Reserved::Held(reservation) = writer
        .reserve("r1", &budget, 3 * USD, Duration::from_secs(900))
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    writer.settle(&reservation, 2 * USD).await.unwrap();
    assert_eq!(reader.spent(&windows).await.unwrap(), [0]);
    drop(writer);
    let started = Instant::now();
    while reader.spent(&windows).await.unwrap() != [4]
        || reader.budget_spent(&budget).await.unwrap() != [2 * USD]
    {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the dropped store's spend never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Its block was given back with it: the whole rest of the budget can be held.
    let gatehouse_bus::limits::Reserved::Held(_) = reader
        .reserve("r2", &budget, 8 * USD, Duration::from_secs(900))
        .await
        .unwrap()
    else {
        panic!("the dropped store's block still holds room")
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_key_is_under_the_prefix_and_expires_after_its_window() {
    let Some(fx) = Fixture::start("limits-keys") else {
        return;
    };
    let store = fx.node();
    let minute = MINUTE;
    for technique in [WindowTechnique::Fixed, WindowTechnique::Sliding] {
        admit(&store, "rl:a:g", 5, minute, technique).await;
        admit(&store, "rl:a:big", EXACT_LOG_MAX + 1, minute, technique).await;
        store
            .record_spend(&[spend("sl:a:g", minute, technique)], 10)
            .await
            .unwrap();
    }
    // Spend is written behind: flushed within `flush_interval`, or now.
    store.flush().await.unwrap();
    let mut keys = fx.keys();
    keys.sort();
    let relative: Vec<&str> = keys.iter().map(|k| &k[fx.prefix.len()..]).collect();
    assert_eq!(
        relative,
        [
            "limits:rl:a:big:rate:fixed:60000",
            "limits:rl:a:big:rate:slots:60000",
            "limits:rl:a:g:rate:fixed:60000",
            "limits:rl:a:g:rate:log:60000",
            "limits:sl:a:g:spend:fixed:60000",
            "limits:sl:a:g:spend:sliding:60000",
        ]
    );
    for key in &keys {
        let ttl = fx.pttl(key);
        // At most a window, a slot and the one-second grace.
        assert!(
            ttl > 0 && ttl <= minute + minute / 32 + 1_000,
            "{key}: {ttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_answers_locally_while_redis_is_down_and_returns_when_it_is_back() {
    // The Redis variant must not be skipped in CI; this test needs only a redis-server binary besides.
    if test_redis_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start();
    let primary = RedisLimits::new(
        &RedisBusSettings {
            url: redis.url(),
            prefix: unique_prefix("limits-fallback"),
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let limits = FallbackLimits::new(primary, MemoryLimits::new());
    let timed_admit = async |limits: &FallbackLimits| {
        let started = Instant::now();
        let answer = limits
            .admit_request(
                "rl:a:g",
                1_000,
                Duration::from_secs(60),
                WindowTechnique::Sliding,
            )
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(300), "a call took {took:?}");
        answer
    };

    assert_eq!(timed_admit(&limits).await, Admission::Admitted);
    assert!(!limits.is_degraded());
    assert_eq!(limits.answered_locally(), 0);

    redis.kill();
    for _ in 0..40 {
        assert_eq!(timed_admit(&limits).await, Admission::Admitted);
        let windows = [spend("sl:a:g", MINUTE, WindowTechnique::Sliding)];
        limits.record_spend(&windows, 5).await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(limits.is_degraded());
    assert!(
        limits.answered_locally() >= 70,
        "{}",
        limits.answered_locally()
    );
    // Spend recorded during the outage is in the local counters (a sliding window: a fixed one could start over
    // at a minute boundary in the middle of the loop).
    assert_eq!(
        limits
            .spent(&[spend("sl:a:g", MINUTE, WindowTechnique::Sliding)])
            .await
            .unwrap(),
        [200]
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    while limits.is_degraded() {
        assert!(
            Instant::now() < deadline,
            "still degraded 5 s after Redis restarted"
        );
        timed_admit(&limits).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Back on the (empty) Redis: the spend recorded locally was not replayed.
    let local_before = limits.answered_locally();
    assert_eq!(
        limits
            .spent(&[spend("sl:a:g", MINUTE, WindowTechnique::Sliding)])
            .await
            .unwrap(),
        [0]
    );
    assert_eq!(limits.answered_locally(), local_before);
}

/// The cost of one admission against the test Redis, next to a plain `PING` on the same kind of connection (what
/// the network and the machine cost by themselves). Not a pass/fail test: run it with
/// `cargo test -p gatehouse-bus --release --test limits -- --ignored --nocapture admit_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn admit_latency() {
    let Some(fx) = Fixture::start("limits-latency") else {
        return;
    };
    let store = fx.node();
    let mut ping = redis::Client::open(fx.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let report = |label: &str, mut took: Vec<Duration>| {
        took.sort();
        let at = |q: f64| took[((took.len() as f64) * q) as usize];
        println!(
            "{label}: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            at(0.50),
            at(0.90),
            at(0.99),
            took[took.len() - 1]
        );
    };
    let mut took = Vec::with_capacity(10_000);
    let mut cpu = Duration::ZERO;
    for i in 0..10_500 {
        if i == 500 {
            cpu = process_cpu();
        }
        let started = Instant::now();
        let () = redis::cmd("PING")
            .query_async(&mut ping)
            .await
            .map(|_: String| ())
            .unwrap();
        if i >= 500 {
            took.push(started.elapsed());
        }
    }
    let cpu = process_cpu().saturating_sub(cpu);
    report("PING (baseline)", took);
    println!("  CPU per call: {:?}", cpu / 10_000);
    for (label, technique) in [
        ("admit_request fixed", WindowTechnique::Fixed),
        ("admit_request sliding", WindowTechnique::Sliding),
    ] {
        let mut took = Vec::with_capacity(10_000);
        for i in 0..10_500 {
            let key = format!("rl:a:{}", i % 100);
            let started = Instant::now();
            store
                .admit_request(&key, 1_000_000, Duration::from_secs(60), technique)
                .await
                .unwrap();
            if i >= 500 {
                took.push(started.elapsed());
            }
        }
        report(label, took);
    }
    // What issue 14's admission adds: a virtual key's, its user's and its team's request rates in one call, and a
    // budget reserved before the request and settled after it (key and team counters). The CPU is this whole
    // process's (the client side of each call, all threads, the loop's own work included), from /proc, over all
    // the timed calls.
    let rates = |i: usize| {
        [
            check(
                &format!("vk:a:key:{}:rpm", i % 100),
                10_000,
                MINUTE,
                WindowTechnique::Sliding,
            ),
            check(
                &format!("vk:a:user:{}:rpm", i % 10),
                10_000,
                MINUTE,
                WindowTechnique::Sliding,
            ),
            check(
                &format!("vk:a:team:{}:rpm", i % 3),
                10_000,
                MINUTE,
                WindowTechnique::Sliding,
            ),
        ]
    };
    let mut took = Vec::with_capacity(10_000);
    let mut cpu = Duration::ZERO;
    for i in 0..10_500 {
        if i == 500 {
            cpu = process_cpu();
        }
        let checks = rates(i);
        let started = Instant::now();
        assert_eq!(
            store.admit_all(&checks).await.unwrap(),
            AllAdmission::Admitted
        );
        if i >= 500 {
            took.push(started.elapsed());
        }
    }
    let cpu = process_cpu().saturating_sub(cpu);
    report("admit_all key+user+team", took);
    println!("  CPU per call: {:?}", cpu / 10_000);
    let counters = |i: usize| {
        let counter = |key: String| gatehouse_bus::limits::BudgetCounter {
            key,
            limit: 1_000_000 * USD,
            period_end_ms: i64::MAX / 4,
        };
        [
            counter(format!("vk:a:key:{}:budget:month:0", i % 100)),
            counter(format!("vk:a:team:{}:budget:month:0", i % 3)),
        ]
    };
    let (mut reserving, mut settling) = (Vec::new(), Vec::new());
    let mut cpu = Duration::ZERO;
    for i in 0..10_500 {
        if i == 500 {
            cpu = process_cpu();
        }
        let counters = counters(i);
        let id = format!("latency-{i}");
        let started = Instant::now();
        let gatehouse_bus::limits::Reserved::Held(reservation) = store
            .reserve(&id, &counters, USD / 100, Duration::from_secs(900))
            .await
            .unwrap()
        else {
            panic!("refused")
        };
        let reserved = Instant::now();
        store.settle(&reservation, USD / 200).await.unwrap();
        if i >= 500 {
            reserving.push(reserved - started);
            settling.push(reserved.elapsed());
        }
    }
    let cpu = process_cpu().saturating_sub(cpu);
    report("reserve (2 counters)", reserving);
    report("settle (2 counters)", settling);
    println!("  CPU per reserve and settle: {:?}", cpu / 10_000);
    // Tokens per minute: the check before forwarding (`spent`) and the charge after the response (`record_spend`),
    // over a key's window and the gateway's.
    let windows = |i: usize| {
        [
            spend(
                &format!("vk:a:key:{}:tpm:total", i % 100),
                MINUTE,
                WindowTechnique::Sliding,
            ),
            spend("gw:a:g:tpm", MINUTE, WindowTechnique::Sliding),
        ]
    };
    for (label, recording) in [
        ("spent (2 windows)", false),
        ("record_spend (2 windows)", true),
    ] {
        let mut took = Vec::with_capacity(10_000);
        let mut cpu = Duration::ZERO;
        for i in 0..10_500 {
            if i == 500 {
                cpu = process_cpu();
            }
            let windows = windows(i);
            let started = Instant::now();
            if recording {
                store.record_spend(&windows, 100).await.unwrap();
            } else {
                store.spent(&windows).await.unwrap();
            }
            if i >= 500 {
                took.push(started.elapsed());
            }
        }
        let cpu = process_cpu().saturating_sub(cpu);
        report(label, took);
        println!("  CPU per call: {:?}", cpu / 10_000);
    }
    // Issue 14's admission as the data plane makes it for a keyed request: the key's RPM (`admit_all`), its TPM
    // checked (`spent`), one budget held (`reserve`) and settled (`settle`), the answer's tokens charged
    // (`record_spend`). 100 keys, round robin; CPU of the whole process (background work included) per request,
    // first as fast as one task goes, then at a node's pace of 2,000 requests a second for two seconds (less the
    // CPU the same loop costs without the calls). Script calls are counted on the server (approximate when other
    // clients use it).
    // Every request's reservation id is its own (a settled id is remembered, and a repeated settle ignored).
    let requests = std::cell::Cell::new(0);
    let keyed = async |i: usize, rate: bool| {
        let key = i % 100;
        requests.set(requests.get() + 1);
        let rpm = [check(
            &format!("vk:b:key:{key}:rpm"),
            1_000_000,
            MINUTE,
            WindowTechnique::Sliding,
        )];
        let tpm = [spend(
            &format!("vk:b:key:{key}:tpm:total"),
            MINUTE,
            WindowTechnique::Sliding,
        )];
        let budget = [gatehouse_bus::limits::BudgetCounter {
            key: format!("vk:b:key:{key}:budget:month:0"),
            limit: 1_000_000 * USD,
            period_end_ms: i64::MAX / 4,
        }];
        let started = Instant::now();
        if rate {
            assert_eq!(store.admit_all(&rpm).await.unwrap(), AllAdmission::Admitted);
        }
        store.spent(&tpm).await.unwrap();
        let gatehouse_bus::limits::Reserved::Held(reservation) = store
            .reserve(
                &format!("request-{}", requests.get()),
                &budget,
                USD / 100,
                Duration::from_secs(900),
            )
            .await
            .unwrap()
        else {
            panic!("refused")
        };
        store.settle(&reservation, USD / 200).await.unwrap();
        store.record_spend(&tpm, 300).await.unwrap();
        started.elapsed()
    };
    for i in 0..20_000 {
        keyed(i, true).await;
    }
    let mut took = Vec::with_capacity(50_000);
    let (cpu, scripts, started) = (process_cpu(), script_calls(&fx.url), Instant::now());
    for i in 0..50_000 {
        took.push(keyed(i, true).await);
    }
    let (cpu, wall) = (process_cpu().saturating_sub(cpu), started.elapsed());
    let scripts = script_calls(&fx.url) - scripts;
    report(
        "keyed request (admit_all + spent + reserve + settle + record_spend)",
        took,
    );
    println!(
        "  CPU per request: {:?} ({} requests/s on one task, {:.4} script calls per request)",
        cpu / 50_000,
        (50_000.0 / wall.as_secs_f64()) as u64,
        scripts as f64 / 50_000.0
    );
    // Paced: two requests every millisecond; with and without the RPM check (whose leases are refilled by
    // round trips of their own, `lease.rs`).
    let paced = async |calls: Option<bool>| {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let (cpu, scripts) = (process_cpu(), script_calls(&fx.url));
        let mut took = Vec::with_capacity(4_000);
        for i in 0..2_000 {
            tick.tick().await;
            if let Some(rate) = calls {
                took.push(keyed(2 * i, rate).await);
                took.push(keyed(2 * i + 1, rate).await);
            }
        }
        (
            process_cpu().saturating_sub(cpu),
            script_calls(&fx.url) - scripts,
            took,
        )
    };
    let (idle, _, _) = paced(None).await;
    println!("  (the paced loop alone: {:?} per request)", idle / 4_000);
    for (label, rate) in [
        ("keyed request at 2,000/s", true),
        ("keyed request at 2,000/s without the RPM check", false),
    ] {
        let (busy, scripts, took) = paced(Some(rate)).await;
        report(label, took);
        println!(
            "  CPU per request: {:?} over the loop's own, {:.4} script calls per request",
            busy.saturating_sub(idle) / 4_000,
            scripts as f64 / 4_000.0
        );
    }
}

/// This process's CPU time (user and system, every thread), from `/proc/self/stat` in clock ticks of 10 ms:
/// coarse per call, fine summed over thousands.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, in the whole line).
    let ticks = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}
