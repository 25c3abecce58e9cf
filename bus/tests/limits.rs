//! Rate limits: one behaviour suite run against `MemoryLimits` and `RedisLimits` (both on a `ManualClock`), two
//! Redis "nodes" sharing counters under load, leases, the Redis keys, and `FallbackLimits` through a Redis outage.
//! Redis tests use `TEST_REDIS_URL` (required when `CI=true`) and a prefix per test. `admit_all` is in
//! `tests/admit_all.rs`, spend in `tests/spend.rs`, the latency measurement in `tests/limits_latency.rs`, budgets
//! (`reserve`, `settle`) in `tests/budgets.rs`; shared helpers in `tests/common/mod.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::limits::{
    Admission, Clock, DEFAULT_MAX_LEASE, EXACT_LOG_MAX, FallbackLimits, LimitStore, ManualClock,
    MemoryLimits, RedisLimits, RedisLimitsSettings, WindowTechnique,
};
use gatehouse_bus::testing::{PrivateRedis, test_redis_url, unique_prefix};

mod common;

use common::{Fixture, MINUTE, NOON, admit, on_both_stores, retry_ms, script_calls, spend};

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

on_both_stores!(
    "limits";
    a_fixed_window_opens_again_at_the_next_aligned_boundary,
    a_sliding_window_admits_again_exactly_when_the_oldest_request_leaves,
    a_large_sliding_limit_counts_in_slots_and_never_exceeds_the_limit,
    keys_and_window_lengths_count_apart,
    a_limit_of_zero_admits_nothing,
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
