//! Budgets (`reserve`, `settle`, `budget_spent`): one behaviour suite run against `MemoryLimits` and
//! `RedisLimits` (both on a `ManualClock`), two Redis "nodes" reserving against one budget at once, the Redis keys,
//! and `FallbackLimits` through a Redis outage. Redis tests use `TEST_REDIS_URL` (required when `CI=true`) and a
//! prefix per test.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::limits::{
    BudgetCounter, FallbackLimits, LimitStore, ManualClock, MemoryLimits, RedisLimits, Reservation,
    Reserved, SETTLED_KEPT,
};
use gatehouse_bus::testing::{PrivateRedis, test_redis_url, unique_prefix};

mod common;

use common::{Fixture, NOON, USD, on_both_stores};

/// 2024-01-01 and 2024-02-01 00:00 UTC.
const JANUARY: i64 = 1_704_067_200_000;
const FEBRUARY: i64 = 1_706_745_600_000;
const MARCH: i64 = 1_709_251_200_000;
const HOLD: Duration = Duration::from_secs(15 * 60);

/// A January budget of `usd` under `subject`.
fn january(subject: &str, usd: u64) -> BudgetCounter {
    BudgetCounter {
        key: format!("budget:a:{subject}:month:{JANUARY}"),
        limit: usd * USD,
        period_end_ms: FEBRUARY,
    }
}

async fn reserve(
    store: &dyn LimitStore,
    id: &str,
    counters: &[BudgetCounter],
    amount: u64,
) -> Reserved {
    store.reserve(id, counters, amount, HOLD).await.unwrap()
}

fn held(answer: Reserved) -> Reservation {
    match answer {
        Reserved::Held(reservation) => reservation,
        Reserved::Refused { .. } => panic!("expected a hold, got {answer:?}"),
    }
}

async fn spent(store: &dyn LimitStore, counters: &[BudgetCounter]) -> Vec<u64> {
    store.budget_spent(counters).await.unwrap()
}

// The suite: each behaviour takes a store and the clock it reads.

async fn a_hold_counts_until_settled_and_settling_adds_the_real_cost(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    clock.set(NOON);
    let budget = [january("key:k1", 10)];
    let first = held(reserve(store, "r1", &budget, 3 * USD).await);
    assert_eq!(
        first,
        Reservation {
            id: "r1".into(),
            counters: budget.to_vec(),
            amount: 3 * USD,
        }
    );
    assert_eq!(spent(store, &budget).await, [0], "a hold is not spent");
    assert_eq!(
        reserve(store, "r2", &budget, 8 * USD).await,
        Reserved::Refused {
            index: 0,
            spent: 0,
            held: 3 * USD
        }
    );
    store.settle(&first, 2 * USD).await.unwrap();
    assert_eq!(spent(store, &budget).await, [2 * USD]);
    // 2 spent + 8 held is exactly the limit.
    let second = held(reserve(store, "r2", &budget, 8 * USD).await);
    assert_eq!(
        reserve(store, "r3", &budget, 1).await,
        Reserved::Refused {
            index: 0,
            spent: 2 * USD,
            held: 8 * USD
        }
    );
    // A failed request releases its hold and costs nothing.
    store.settle(&second, 0).await.unwrap();
    assert_eq!(spent(store, &budget).await, [2 * USD]);
    held(reserve(store, "r3", &budget, 8 * USD).await);
    // Empty calls are answered without a counter.
    held(reserve(store, "r4", &[], 5 * USD).await);
    assert!(spent(store, &[]).await.is_empty());
}

async fn a_hold_lapses_at_its_deadline_and_a_late_settle_still_counts(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    clock.set(NOON);
    let budget = [january("key:lapse", 10)];
    let hold = Duration::from_secs(30);
    let orphan = held(store.reserve("r1", &budget, 6 * USD, hold).await.unwrap());
    clock.set(NOON + 29_999);
    assert_eq!(
        store.reserve("r2", &budget, 6 * USD, hold).await.unwrap(),
        Reserved::Refused {
            index: 0,
            spent: 0,
            held: 6 * USD
        }
    );
    // The node that held r1 is gone: at its deadline the hold stops counting.
    clock.set(NOON + 30_000);
    let second = held(store.reserve("r2", &budget, 6 * USD, hold).await.unwrap());
    // r1's node comes back after all and settles: the cost is real, so it counts.
    store.settle(&orphan, 5 * USD).await.unwrap();
    assert_eq!(spent(store, &budget).await, [5 * USD]);
    assert_eq!(
        store.reserve("r3", &budget, 1, hold).await.unwrap(),
        Reserved::Refused {
            index: 0,
            spent: 5 * USD,
            held: 6 * USD
        }
    );
    store.settle(&second, USD).await.unwrap();
    assert_eq!(spent(store, &budget).await, [6 * USD]);
}

async fn settling_twice_counts_once_and_reserving_twice_holds_once(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    clock.set(NOON);
    let budget = [january("key:twice", 10), january("team:twice", 20)];
    let first = held(reserve(store, "r1", &budget, 4 * USD).await);
    // A repeated reserve (a retry after a timeout) keeps one hold.
    held(reserve(store, "r1", &budget, 4 * USD).await);
    assert_eq!(
        reserve(store, "r2", &budget, 7 * USD).await,
        Reserved::Refused {
            index: 0,
            spent: 0,
            held: 4 * USD
        }
    );
    store.settle(&first, 3 * USD).await.unwrap();
    clock.set(NOON + 1_000);
    store.settle(&first, 3 * USD).await.unwrap();
    assert_eq!(spent(store, &budget).await, [3 * USD, 3 * USD]);
    // Nothing is held any more: 3 spent + 7 fits.
    held(reserve(store, "r2", &budget, 7 * USD).await);
    // The id is remembered for SETTLED_KEPT; a settle repeated later counts again (erring toward the limit).
    clock.set(NOON + i64::try_from(SETTLED_KEPT.as_millis()).unwrap() - 1);
    store.settle(&first, 3 * USD).await.unwrap();
    assert_eq!(spent(store, &budget).await, [3 * USD, 3 * USD]);
    clock.set(NOON + i64::try_from(SETTLED_KEPT.as_millis()).unwrap());
    store.settle(&first, 3 * USD).await.unwrap();
    assert_eq!(spent(store, &budget).await, [6 * USD, 6 * USD]);
}

async fn a_refusal_names_the_first_counter_without_room_and_holds_nothing(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    clock.set(NOON);
    let key = january("key:k", 100);
    let user = january("user:u", 5);
    let team = january("team:t", 3);
    let all = [key.clone(), user.clone(), team.clone()];
    assert_eq!(
        reserve(store, "r1", &all, 4 * USD).await,
        Reserved::Refused {
            index: 2,
            spent: 0,
            held: 0
        }
    );
    // Nothing was held under the key or the user: the user's whole budget is still there.
    let by_user = held(reserve(store, "r2", std::slice::from_ref(&user), 5 * USD).await);
    assert_eq!(
        reserve(store, "r3", &all, 1).await,
        Reserved::Refused {
            index: 1,
            spent: 0,
            held: 5 * USD
        }
    );
    store.settle(&by_user, 5 * USD).await.unwrap();
    assert_eq!(
        reserve(store, "r4", &all, 1).await,
        Reserved::Refused {
            index: 1,
            spent: 5 * USD,
            held: 0
        }
    );
    // One counter named twice is one counter, held once, under the smaller limit.
    let small_key = BudgetCounter {
        limit: 2 * USD,
        ..key.clone()
    };
    let twice = [key.clone(), small_key];
    let both = held(reserve(store, "r5", &twice, 2 * USD).await);
    assert_eq!(
        reserve(store, "r6", &twice, 1).await,
        Reserved::Refused {
            index: 1,
            spent: 0,
            held: 2 * USD
        }
    );
    store.settle(&both, USD).await.unwrap();
    assert_eq!(spent(store, &[key]).await, [USD]);
}

async fn a_new_period_starts_a_fresh_counter(store: &dyn LimitStore, clock: &ManualClock) {
    clock.set(NOON);
    let jan = january("key:period", 10);
    let r = held(reserve(store, "r1", std::slice::from_ref(&jan), 9 * USD).await);
    store.settle(&r, 9 * USD).await.unwrap();
    assert!(matches!(
        reserve(store, "r2", std::slice::from_ref(&jan), 2 * USD).await,
        Reserved::Refused { index: 0, .. }
    ));
    // February: the caller names the new period's counter.
    clock.set(FEBRUARY + 1);
    let feb = BudgetCounter {
        key: format!("budget:a:key:period:month:{FEBRUARY}"),
        limit: 10 * USD,
        period_end_ms: MARCH,
    };
    let r = held(reserve(store, "r2", std::slice::from_ref(&feb), 2 * USD).await);
    store.settle(&r, 2 * USD).await.unwrap();
    assert_eq!(spent(store, &[jan, feb]).await, [9 * USD, 2 * USD]);
}

async fn concurrent_reservations_hold_no_more_than_the_budget_has_left(
    store: &dyn LimitStore,
    clock: &ManualClock,
) {
    clock.set(NOON);
    let budget = [january("key:busy", 10)];
    let r = held(reserve(store, "spent", &budget, 9 * USD).await);
    store.settle(&r, 9 * USD).await.unwrap();
    // 50 requests at once, each worth up to 3 cents, against the dollar left: 33 fit.
    let ids: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let answers = join_all(
        ids.iter()
            .map(|id| store.reserve(id, &budget, 3 * USD / 100, HOLD)),
    )
    .await;
    let holds: Vec<Reservation> = answers
        .into_iter()
        .filter_map(|a| match a.unwrap() {
            Reserved::Held(r) => Some(r),
            Reserved::Refused { .. } => None,
        })
        .collect();
    assert_eq!(holds.len(), 33);
    // Each costs at most what it held: the budget is not overrun.
    for r in &holds {
        store.settle(r, 2 * USD / 100).await.unwrap();
    }
    assert_eq!(spent(store, &budget).await, [9 * USD + 66 * USD / 100]);
}

on_both_stores!(
    "budgets";
    a_hold_counts_until_settled_and_settling_adds_the_real_cost,
    a_hold_lapses_at_its_deadline_and_a_late_settle_still_counts,
    settling_twice_counts_once_and_reserving_twice_holds_once,
    a_refusal_names_the_first_counter_without_room_and_holds_nothing,
    a_new_period_starts_a_fresh_counter,
    concurrent_reservations_hold_no_more_than_the_budget_has_left,
);

/// Spent and held of a budget counter as Redis counts them (the holds being the nodes' blocks).
fn in_redis(fx: &Fixture, counter: &BudgetCounter) -> (u64, u64) {
    let sums: Vec<Option<u64>> = redis::cmd("HMGET")
        .arg(format!("{}limits:{}:budget", fx.prefix, counter.key))
        .arg("s")
        .arg("h")
        .query(&mut fx.connection())
        .unwrap();
    (sums[0].unwrap_or(0), sums[1].unwrap_or(0))
}

/// The proof at the store level: two nodes (Redis server time, as in production) reserve against one
/// nearly spent budget at once, under a key and a team counter; the holds never pass what is left, and once
/// each request settles at no more than it held, nothing is overrun.
///
/// Each node holds from a block it leases in Redis (`blocks.rs`), so a node may be refused while the other still
/// has room in its block: as many holds as what is left allows is the most, not the exact count. Each request is
/// settled by the node that reserved it, as the data plane does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_reserving_at_once_never_hold_more_than_the_budget_allows() {
    let Some(fx) = Fixture::start("budgets-nodes") else {
        return;
    };
    let nodes = [Arc::new(fx.node()), Arc::new(fx.node())];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let period_end = i64::try_from(now).unwrap() + 3_600_000;
    let counter = |key: &str, usd: u64| BudgetCounter {
        key: key.to_owned(),
        limit: usd * USD,
        period_end_ms: period_end,
    };
    let key = counter("budget:a:key:k", 10);
    let team = counter("budget:a:team:t", 50);
    let counters = [key.clone(), team.clone()];
    let first = held(
        nodes[0]
            .reserve("spent", &counters, 9 * USD, HOLD)
            .await
            .unwrap(),
    );
    nodes[0].settle(&first, 9 * USD).await.unwrap();
    nodes[0].flush().await.unwrap();

    let amount = 3 * USD / 100;
    for round in 0..3 {
        // 50 requests at once from both nodes, each holding up to 3 cents.
        let tasks = (0..50).map(|i| {
            let node = Arc::clone(&nodes[i % 2]);
            let counters = counters.clone();
            tokio::spawn(async move {
                let answer = node
                    .reserve(&format!("r{round}-{i}"), &counters, amount, HOLD)
                    .await
                    .unwrap();
                (i % 2, answer)
            })
        });
        let answers: Vec<(usize, Reserved)> = join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Whatever the nodes hold locally, Redis counts at least as much in their blocks: never past the limit.
        let (spent_in_redis, held_in_redis) = in_redis(&fx, &key);
        assert!(
            spent_in_redis + held_in_redis <= 10 * USD,
            "round {round}: {spent_in_redis} + {held_in_redis}"
        );
        let holds: Vec<(usize, Reservation)> = answers
            .iter()
            .filter_map(|(node, a)| match a {
                Reserved::Held(r) => Some((*node, r.clone())),
                Reserved::Refused { .. } => None,
            })
            .collect();
        let left = 10 * USD
            - nodes[0]
                .budget_spent(std::slice::from_ref(&key))
                .await
                .unwrap()[0];
        let fit = left / amount;
        let count = u64::try_from(holds.len()).unwrap();
        assert!(
            count <= fit,
            "round {round}: {count} holds where what is left allows {fit}"
        );
        assert!(
            count >= fit * 3 / 4,
            "round {round}: only {count} holds where what is left allows {fit}"
        );
        eprintln!("round {round}: {count} holds of {fit} possible");
        for (_, a) in &answers {
            if let Reserved::Refused { index, spent, held } = a {
                assert_eq!(*index, 0, "the key's budget refuses, not the team's");
                assert!(spent + held + amount > 10 * USD, "{a:?}");
            }
        }
        // Each settles at no more than it held (some at nothing: failed requests), on its own node.
        let settles = holds.iter().enumerate().map(|(i, (node, r))| {
            let node = Arc::clone(&nodes[*node]);
            let r = r.clone();
            let actual = (u64::try_from(i).unwrap() % 4) * USD / 100;
            tokio::spawn(async move { node.settle(&r, actual).await.unwrap() })
        });
        join_all(settles).await.into_iter().for_each(Result::unwrap);
        // Settles are written behind; within the flush interval (or after a flush) both nodes count them.
        for node in &nodes {
            node.flush().await.unwrap();
        }
        let spent = nodes[1].budget_spent(&counters).await.unwrap();
        assert!(spent[0] <= 10 * USD, "round {round}: {spent:?}");
        assert_eq!(spent[0] - 9 * USD, spent[1] - 9 * USD);
        let (spent_in_redis, held_in_redis) = in_redis(&fx, &key);
        assert_eq!(spent_in_redis, spent[0]);
        assert!(spent_in_redis + held_in_redis <= 10 * USD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_keys_are_under_the_prefix_and_expire_after_the_period() {
    let Some(fx) = Fixture::start("budgets-keys") else {
        return;
    };
    let store = fx.node();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let period_end = i64::try_from(now).unwrap() + 3_600_000;
    let counter = BudgetCounter {
        key: "budget:a:key:k:day:0".into(),
        limit: 10 * USD,
        period_end_ms: period_end,
    };
    let settled = held(
        store
            .reserve("r1", std::slice::from_ref(&counter), USD, HOLD)
            .await
            .unwrap(),
    );
    store.settle(&settled, USD).await.unwrap();
    held(store.reserve("r2", &[counter], USD, HOLD).await.unwrap());
    // Settles are written behind: flushed within `flush_interval`, or now.
    store.flush().await.unwrap();
    let mut conn = fx.connection();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}*",
            gatehouse_bus::testing::glob_escape(&fx.prefix)
        ))
        .query(&mut conn)
        .unwrap();
    keys.sort();
    let relative: Vec<&str> = keys.iter().map(|k| &k[fx.prefix.len()..]).collect();
    assert_eq!(
        relative,
        [
            "limits:budget:a:key:k:day:0:budget",
            "limits:budget:a:key:k:day:0:budget:holds",
        ]
    );
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
        // The period's hour and the hour of grace after it.
        assert!(ttl > 3_500_000 && ttl <= 2 * 3_600_000, "{key}: {ttl}");
    }
    // No secret and no reservation detail: the node's block is one hold, `b:{node}:{incarnation}:{size}`, holding
    // r2 and some room for the node's next requests; the hash counts what was spent and held, and the spend and
    // size the node's last message set (`n:{node}:{incarnation}` = `{version}:{spent}:{size}`).
    let holds: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg(&keys[1])
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn)
        .unwrap();
    let [(member, _deadline)] = holds.as_slice() else {
        panic!("{holds:?}")
    };
    let parts: Vec<&str> = member.split(':').collect();
    let [b, node, "1", size] = parts.as_slice() else {
        panic!("{member}")
    };
    assert_eq!((*b, node.len()), ("b", 32));
    let size: u64 = size.parse().unwrap();
    assert!((USD..=10 * USD - USD).contains(&size), "{size}");
    let mut hash: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(&keys[0])
        .query(&mut conn)
        .unwrap();
    hash.sort();
    assert_eq!(hash.len(), 3, "{hash:?}");
    assert_eq!(hash[0], ("h".to_owned(), size.to_string()));
    assert_eq!(hash[1].0, format!("n:{node}:1"));
    assert!(hash[1].1.ends_with(&format!(":{USD}:{size}")), "{hash:?}");
    assert_eq!(hash[2], ("s".to_owned(), USD.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_keeps_budgets_on_local_counters_while_redis_is_down() {
    // The Redis variant must not be skipped in CI; this test needs only a redis-server binary besides.
    if test_redis_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start();
    let primary = RedisLimits::new(
        &RedisBusSettings {
            url: redis.url(),
            prefix: unique_prefix("budgets-fallback"),
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let limits = FallbackLimits::new(primary, MemoryLimits::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let budget = [BudgetCounter {
        key: "budget:a:key:k:month:0".into(),
        limit: 10 * USD,
        period_end_ms: i64::try_from(now).unwrap() + 3_600_000,
    }];
    let in_redis = held(limits.reserve("r1", &budget, 6 * USD, HOLD).await.unwrap());
    assert_eq!(limits.answered_locally(), 0);

    redis.kill();
    // The local counters start empty: the node may hold the whole budget again (the documented overshoot).
    let local = held(limits.reserve("r2", &budget, 10 * USD, HOLD).await.unwrap());
    assert!(limits.is_degraded());
    // A hold made in Redis is settled locally: its cost counts here.
    limits.settle(&in_redis, 2 * USD).await.unwrap();
    assert_eq!(limits.budget_spent(&budget).await.unwrap(), [2 * USD]);

    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while limits.is_degraded() {
        assert!(
            std::time::Instant::now() < deadline,
            "still degraded 5 s after Redis restarted"
        );
        let _ = limits.budget_spent(&budget).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Redis restarted empty; the hold made locally is settled there all the same, so its cost reaches Redis.
    limits.settle(&local, 3 * USD).await.unwrap();
    assert_eq!(limits.budget_spent(&budget).await.unwrap(), [3 * USD]);
}

/// Settles are written behind (`blocks.rs`): another node sees their cost within the flush interval, without
/// anyone flushing on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_reaches_the_other_nodes_within_the_flush_interval() {
    let Some(fx) = Fixture::start("budgets-behind") else {
        return;
    };
    let (a, b) = (fx.node(), fx.node());
    let budget = [january("key:behind", 10)];
    let reservation = held(reserve(&a, "r1", &budget, 3 * USD).await);
    a.settle(&reservation, 2 * USD).await.unwrap();
    let started = std::time::Instant::now();
    while spent(&b, &budget).await != [2 * USD] {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node B never saw node A's settle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    eprintln!("visible after {took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
}

/// A node that dies (here: whose clock stops, so it never renews its block past its deadline) frees the room its
/// block holds when the block's deadline comes (`blocks.rs`, 30 s), like any hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_block_lapses_at_its_deadline() {
    let Some(fx) = Fixture::start("budgets-dead") else {
        return;
    };
    let dead_clock = Arc::new(ManualClock::new(NOON));
    let clock = Arc::new(ManualClock::new(NOON));
    let dead = fx.node().with_clock(dead_clock.clone());
    let alive = fx.node().with_clock(clock.clone());
    let budget = [january("key:dead", 10)];
    held(reserve(&dead, "r1", &budget, 6 * USD).await);
    // The other node is refused what the dead node's block holds.
    match reserve(&alive, "r2", &budget, 5 * USD).await {
        Reserved::Refused {
            index: 0,
            spent: 0,
            held,
        } => assert!(held >= 6 * USD, "{held}"),
        other => panic!("{other:?}"),
    }
    clock.set(NOON + 29_999);
    assert!(matches!(
        reserve(&alive, "r2", &budget, 5 * USD).await,
        Reserved::Refused { .. }
    ));
    // The deadline: the block lapses and the whole budget is there again.
    clock.set(NOON + 30_000);
    held(reserve(&alive, "r2", &budget, 10 * USD).await);
    drop(dead);
}

/// Settling a reservation held in a block is idempotent: repeated (a retry after a timeout) and even at once, its
/// cost counts once, in Redis too, and the rest of its hold is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_a_hold_from_a_block_counts_once_and_frees_its_room() {
    let Some(fx) = Fixture::start("budgets-once") else {
        return;
    };
    let (a, b) = (fx.node(), fx.node());
    let budget = [january("key:once", 10), january("team:once", 100)];
    let reservation = held(reserve(&a, "r1", &budget, 4 * USD).await);
    join_all((0..10).map(|_| a.settle(&reservation, 3 * USD)))
        .await
        .into_iter()
        .for_each(Result::unwrap);
    a.settle(&reservation, 3 * USD).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(spent(&b, &budget).await, [3 * USD, 3 * USD]);
    // Settled again after the flush: still once.
    a.settle(&reservation, 3 * USD).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(spent(&b, &budget).await, [3 * USD, 3 * USD]);
    // The hold is gone: the node holds all the 7 USD left (from its block and what Redis has), and no more.
    held(reserve(&a, "r2", &budget, 7 * USD).await);
    assert!(matches!(
        reserve(&a, "r3", &budget, 1).await,
        Reserved::Refused {
            index: 0,
            spent,
            held,
        } if spent == 3 * USD && held == 7 * USD
    ));
}
