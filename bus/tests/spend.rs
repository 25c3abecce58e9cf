//! Spend (`record_spend`, `spent`): one behaviour suite run against `MemoryLimits` and `RedisLimits` (both on a
//! `ManualClock`), spend written behind and read from a view, and the round trips spend and budget calls cost.
//! Redis tests use `TEST_REDIS_URL` (required when `CI=true`) and a prefix per test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::limits::{
    LimitStore, ManualClock, RedisLimits, RedisLimitsSettings, WindowTechnique,
};
use gatehouse_bus::testing::{PrivateRedis, test_redis_url, unique_prefix};

mod common;

use common::{Fixture, MINUTE, NOON, USD, on_both_stores, script_calls, spend};

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

on_both_stores!(
    "limits";
    fixed_spend_sums_aligned_buckets_and_starts_over,
    sliding_spend_weights_the_oldest_slot_and_forgets_what_left,
);

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
