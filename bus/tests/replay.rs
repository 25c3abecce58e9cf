//! The replay cache: one behaviour suite run against `MemoryReplayCache` and `RedisReplayCache`, two Redis "nodes"
//! that see each other's keys, racing callers of which exactly one is first, and a Redis outage answered from the
//! node's memory. Redis tests use `TEST_REDIS_URL` (required when `CI=true`) and a prefix per test.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::replay::{MemoryReplayCache, RedisReplayCache, ReplayCache};
use gatehouse_bus::testing::{PrivateRedis, delete_prefix, test_redis_url, unique_prefix};

fn redis_node(url: &str, prefix: &str) -> RedisReplayCache {
    RedisReplayCache::new(
        &RedisBusSettings {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

/// What every store must do.
async fn behaves(cache: &dyn ReplayCache) {
    let ttl = Duration::from_millis(300);
    assert!(cache.first_seen("dpop:a", ttl).await.unwrap());
    assert!(!cache.first_seen("dpop:a", ttl).await.unwrap(), "a replay");
    assert!(
        cache.first_seen("dpop:b", ttl).await.unwrap(),
        "keys are apart"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        cache.first_seen("dpop:a", ttl).await.unwrap(),
        "forgotten after its TTL"
    );
    // Of many callers racing with one key, exactly one is first.
    let firsts = join_all((0..32).map(|_| cache.first_seen("dpop:race", ttl)))
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(firsts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_remembers_keys_for_their_ttl() {
    behaves(&MemoryReplayCache::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_remembers_keys_for_their_ttl_on_every_node() {
    let Some(url) = test_redis_url() else { return };
    let prefix = unique_prefix("replay");
    let a = redis_node(&url, &prefix);
    behaves(&a).await;
    let b = redis_node(&url, &prefix);
    assert!(
        a.first_seen("dpop:shared", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !b.first_seen("dpop:shared", Duration::from_secs(5))
            .await
            .unwrap(),
        "another node sees the first one's key"
    );
    let other = redis_node(&url, &unique_prefix("replay-other"));
    assert!(
        other
            .first_seen("dpop:shared", Duration::from_secs(5))
            .await
            .unwrap(),
        "another deployment's prefix does not"
    );
    assert!(!a.is_degraded());
    delete_prefix(&url, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_the_node_answers_from_its_memory_without_waiting() {
    let mut redis = PrivateRedis::start();
    let cache = Arc::new(redis_node(&redis.url(), "gh-test-replay-outage:"));
    assert!(
        cache
            .first_seen("k1", Duration::from_secs(5))
            .await
            .unwrap()
    );
    redis.kill();
    let started = std::time::Instant::now();
    assert!(
        cache
            .first_seen("k2", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !cache
            .first_seen("k2", Duration::from_secs(5))
            .await
            .unwrap(),
        "a replay to the same node is still refused"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no call waits beyond one timeout: {:?}",
        started.elapsed()
    );
    assert!(cache.is_degraded());
}
