//! What only the Redis bus has to get right: key prefixes, reconnecting after Redis restarts, starting before Redis,
//! and blocking reads that outlast redis-rs's default response timeout. These run on a private `redis-server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_bus::testing::PrivateRedis;
use gatehouse_bus::{
    Announcement, BusEvent, ConfigBus, RedisBus, RedisBusSettings, StoredDocument, Target,
};
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::NodeStatus;

use crate::next_event;

fn bus_on(redis: &PrivateRedis, prefix: &str) -> Arc<RedisBus> {
    Arc::new(
        RedisBus::new(
            &RedisBusSettings {
                url: redis.url(),
                prefix: prefix.to_owned(),
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap(),
    )
}

fn doc(version: i64) -> StoredDocument {
    StoredDocument {
        version,
        hash: format!("h{version}"),
        body: "{}".into(),
    }
}

/// Retries `op` until it succeeds, failing the test after 10 s.
async fn eventually<T, F, Fut>(mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, gatehouse_bus::BusError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still failing after 10 s: {e}"),
        }
    }
}

#[tokio::test]
async fn every_key_the_redis_bus_writes_starts_with_its_prefix() {
    let redis = PrivateRedis::start();
    let bus = bus_on(&redis, "tenant-one:");
    let key = GatewayKey::new("acme", "prod");
    bus.publish_gateway(&key, &doc(1)).await.unwrap();
    bus.publish_tombstone(&GatewayKey::new("acme", "gone"), 2)
        .await
        .unwrap();
    bus.publish_deployment(&doc(3)).await.unwrap();
    let epoch = bus.begin_reconcile().await.unwrap();
    bus.mark_index_complete(&epoch, 4).await.unwrap();
    bus.report_node_status(
        &NodeStatus {
            node_id: "n1".into(),
            ..NodeStatus::default()
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    bus.request_default_gateway("acme").await.unwrap();
    bus.next_default_gateway_requests(Duration::from_millis(10))
        .await
        .unwrap();

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() >= 5, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("tenant-one:")),
        "{keys:?}"
    );
    let channels: Vec<String> = {
        let mut sub = bus.subscribe().await.unwrap();
        assert_eq!(next_event(&mut sub).await, BusEvent::Connected);
        let channels = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .query_async(&mut conn)
            .await
            .unwrap();
        drop(sub);
        channels
    };
    assert_eq!(channels, ["tenant-one:config:announcements"]);
}

#[tokio::test]
async fn a_subscription_reports_connected_again_after_redis_restarts_and_keeps_delivering() {
    let mut redis = PrivateRedis::start();
    let bus = bus_on(&redis, "gh:");
    let mut sub = bus.subscribe().await.unwrap();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);

    redis.kill();
    assert!(
        bus.publish_gateway(&GatewayKey::new("acme", "a"), &doc(1))
            .await
            .is_err(),
        "publishing fails while Redis is down"
    );
    redis.restart();
    assert_eq!(
        next_event(&mut sub).await,
        BusEvent::Connected,
        "the subscriber says it reconnected, so the node resyncs"
    );
    let key = GatewayKey::new("acme", "b");
    let second = doc(2);
    eventually(|| bus.publish_gateway(&key, &second)).await;
    assert_eq!(
        next_event(&mut sub).await,
        BusEvent::Announcement(Announcement {
            target: Target::Gateway(key),
            version: 2
        })
    );
}

#[tokio::test]
async fn a_bus_created_before_redis_starts_works_once_redis_is_up() {
    let mut redis = PrivateRedis::reserve();
    let bus = bus_on(&redis, "gh:");
    let mut sub = bus.subscribe().await.unwrap();
    assert!(bus.index().await.is_err(), "no Redis yet");
    redis.restart();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);
    let index = eventually(|| bus.index()).await;
    assert!(index.gateways.is_empty());
}

#[tokio::test]
async fn a_blocking_request_read_longer_than_the_default_response_timeout_loses_nothing() {
    let redis = PrivateRedis::start();
    let control_plane = bus_on(&redis, "gh:");
    let node = bus_on(&redis, "gh:");
    // Creates the consumer group.
    control_plane
        .next_default_gateway_requests(Duration::from_millis(10))
        .await
        .unwrap();
    let started = Instant::now();
    let nothing = control_plane
        .next_default_gateway_requests(Duration::from_millis(1200))
        .await
        .expect("a 1.2 s blocking read does not time out at 500 ms");
    assert!(nothing.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(1100));

    // A request sent during a blocked read reaches the reader: no read was abandoned server-side.
    let reader = {
        let cp = Arc::clone(&control_plane);
        tokio::spawn(async move {
            cp.next_default_gateway_requests(Duration::from_secs(2))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    node.request_default_gateway("acme").await.unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), ["acme"]);
}

#[tokio::test]
async fn a_hand_broken_index_entry_is_reported_and_repaired_by_the_next_publish() {
    let redis = PrivateRedis::start();
    let bus = bus_on(&redis, "gh:");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("HSET")
        .arg("gh:config:index")
        .arg("acme/prod")
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    let index = bus.index().await.unwrap();
    assert_eq!(index.invalid.len(), 1, "{index:?}");
    let key = GatewayKey::new("acme", "prod");
    assert_eq!(
        bus.fetch_gateways(std::slice::from_ref(&key))
            .await
            .unwrap(),
        vec![None]
    );
    bus.publish_gateway(&key, &doc(1)).await.unwrap();
    assert!(bus.index().await.unwrap().invalid.is_empty());
}

#[tokio::test]
async fn the_first_command_after_redis_returns_succeeds() {
    let mut redis = PrivateRedis::start();
    let bus = bus_on(&redis, "gh:");
    bus.index().await.unwrap();
    redis.kill();
    assert!(bus.index().await.is_err());
    // No command while Redis is down: the connection the bus holds is the one that died.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    bus.index()
        .await
        .expect("a dead connection is replaced, not reported, once Redis is back");
}
