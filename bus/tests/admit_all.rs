//! `admit_all` (several rate checks counted all or none): one behaviour suite run against `MemoryLimits` and
//! `RedisLimits` (both on a `ManualClock`), and two Redis "nodes" admitting under several counters at once.
//! Redis tests use `TEST_REDIS_URL` (required when `CI=true`) and a prefix per test.

use std::sync::Arc;

use futures_util::future::join_all;
use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::limits::{
    AllAdmission, LimitStore, ManualClock, RateCheck, RedisLimits, RedisLimitsSettings,
    WindowTechnique,
};
use gatehouse_bus::testing::test_redis_url;

mod common;

use common::{Fixture, MINUTE, NOON, check, on_both_stores};

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

on_both_stores!(
    "limits";
    admit_all_counts_under_every_check_or_none,
    admit_all_fixed_windows_open_again_at_their_edges,
    admit_all_sliding_windows_admit_again_when_the_oldest_leaves,
    admit_all_refuses_a_zero_limit_and_merges_repeated_counters,
);

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
