//! The cases both implementations must pass. Each takes a factory of handles to one fresh, empty bus.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gatehouse_bus::{
    Announcement, BusEvent, GatewayEntry, IndexEntry, PublishOutcome, StoredDocument, Target,
};
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::{NodeError, NodeStatus};

use crate::{BusFactory, next_event};

fn doc(version: i64, body: &str) -> StoredDocument {
    StoredDocument {
        version,
        hash: format!("hash-{version}"),
        body: body.to_owned(),
    }
}

fn key(gateway: &str) -> GatewayKey {
    GatewayKey::new("acme", gateway)
}

fn announced(target: Target, version: i64) -> BusEvent {
    BusEvent::Announcement(Announcement { target, version })
}

pub async fn a_published_gateway_document_is_indexed_fetchable_and_announced(f: &dyn BusFactory) {
    let bus = f.handle();
    let mut sub = bus.subscribe().await.unwrap();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);

    let document = doc(1, r#"{"v":1}"#);
    assert_eq!(
        bus.publish_gateway(&key("prod"), &document).await.unwrap(),
        PublishOutcome::Written
    );
    assert_eq!(
        next_event(&mut sub).await,
        announced(Target::Gateway(key("prod")), 1)
    );
    let index = bus.index().await.unwrap();
    assert_eq!(
        index.gateways[&key("prod")],
        IndexEntry {
            version: 1,
            hash: "hash-1".into(),
            deleted: false
        }
    );
    assert!(index.invalid.is_empty());
    assert_eq!(
        bus.fetch_gateways(&[key("prod")]).await.unwrap(),
        vec![Some(GatewayEntry::Document(document))]
    );
}

pub async fn an_older_or_equal_version_never_replaces_a_newer_one(f: &dyn BusFactory) {
    let bus = f.handle();
    bus.publish_gateway(&key("prod"), &doc(5, "five"))
        .await
        .unwrap();
    for older in [doc(4, "four"), doc(5, "five again")] {
        assert_eq!(
            bus.publish_gateway(&key("prod"), &older).await.unwrap(),
            PublishOutcome::Superseded { current: 5 }
        );
    }
    assert_eq!(
        bus.publish_tombstone(&key("prod"), 3).await.unwrap(),
        PublishOutcome::Superseded { current: 5 }
    );
    assert_eq!(
        bus.fetch_gateways(&[key("prod")]).await.unwrap(),
        vec![Some(GatewayEntry::Document(doc(5, "five")))]
    );
}

pub async fn a_tombstone_replaces_the_document_stays_in_the_index_and_a_newer_document_revives_it(
    f: &dyn BusFactory,
) {
    let bus = f.handle();
    bus.publish_gateway(&key("prod"), &doc(1, "one"))
        .await
        .unwrap();
    let mut sub = bus.subscribe().await.unwrap();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);
    assert_eq!(
        bus.publish_tombstone(&key("prod"), 2).await.unwrap(),
        PublishOutcome::Written
    );
    assert_eq!(
        next_event(&mut sub).await,
        announced(Target::Gateway(key("prod")), 2)
    );
    assert_eq!(
        bus.fetch_gateways(&[key("prod")]).await.unwrap(),
        vec![Some(GatewayEntry::Deleted { version: 2 })]
    );
    let entry = &bus.index().await.unwrap().gateways[&key("prod")];
    assert!(entry.deleted && entry.version == 2, "{entry:?}");
    assert_eq!(
        bus.publish_gateway(&key("prod"), &doc(1, "late"))
            .await
            .unwrap(),
        PublishOutcome::Superseded { current: 2 },
        "a late document cannot bring a deleted gateway back"
    );
    bus.publish_gateway(&key("prod"), &doc(3, "three"))
        .await
        .unwrap();
    assert_eq!(
        bus.fetch_gateways(&[key("prod")]).await.unwrap(),
        vec![Some(GatewayEntry::Document(doc(3, "three")))]
    );
}

pub async fn the_deployment_document_round_trips_and_is_never_replaced_by_an_older_one(
    f: &dyn BusFactory,
) {
    let bus = f.handle();
    assert_eq!(bus.fetch_deployment().await.unwrap(), None);
    let mut sub = bus.subscribe().await.unwrap();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);
    bus.publish_deployment(&doc(7, "seven")).await.unwrap();
    assert_eq!(next_event(&mut sub).await, announced(Target::Deployment, 7));
    assert_eq!(
        bus.publish_deployment(&doc(6, "six")).await.unwrap(),
        PublishOutcome::Superseded { current: 7 }
    );
    assert_eq!(bus.fetch_deployment().await.unwrap(), Some(doc(7, "seven")));
    let summary = bus.index_summary().await.unwrap();
    assert_eq!(summary.deployment.map(|d| d.version), Some(7));
    assert_eq!(
        bus.index().await.unwrap().deployment.map(|d| d.hash),
        Some("hash-7".to_owned())
    );
}

pub async fn announcements_arrive_after_connected_in_publish_order(f: &dyn BusFactory) {
    let bus = f.handle();
    let mut sub = bus.subscribe().await.unwrap();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);
    for v in 1..=50 {
        bus.publish_gateway(&key(&format!("gw{v}")), &doc(v, "{}"))
            .await
            .unwrap();
    }
    for v in 1..=50 {
        assert_eq!(
            next_event(&mut sub).await,
            announced(Target::Gateway(key(&format!("gw{v}"))), v)
        );
    }
    assert_eq!(sub.dropped_events(), 0);
}

pub async fn bodies_are_stored_verbatim_even_when_they_are_not_json(f: &dyn BusFactory) {
    let bus = f.handle();
    let weird = "not json at all: {\u{1F600} \"\n";
    bus.publish_gateway(&key("odd"), &doc(1, weird))
        .await
        .unwrap();
    assert_eq!(
        bus.fetch_gateways(&[key("odd")]).await.unwrap(),
        vec![Some(GatewayEntry::Document(doc(1, weird)))]
    );
}

pub async fn fetching_many_gateways_answers_each_key_in_order(f: &dyn BusFactory) {
    let bus = f.handle();
    let keys: Vec<GatewayKey> = (0..600).map(|i| key(&format!("gw{i}"))).collect();
    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        bus.publish_gateway(k, &doc(i as i64 + 1, &format!("body{i}")))
            .await
            .unwrap();
    }
    bus.publish_tombstone(&keys[1], 10_000).await.unwrap();
    let fetched = bus.fetch_gateways(&keys).await.unwrap();
    assert_eq!(fetched.len(), keys.len());
    for (i, entry) in fetched.iter().enumerate() {
        match (i % 3, i) {
            (0, _) => assert_eq!(entry, &None, "gw{i} was never published"),
            (_, 1) => assert_eq!(entry, &Some(GatewayEntry::Deleted { version: 10_000 })),
            _ => assert_eq!(
                entry,
                &Some(GatewayEntry::Document(doc(
                    i as i64 + 1,
                    &format!("body{i}")
                )))
            ),
        }
    }
    assert_eq!(bus.fetch_gateways(&[]).await.unwrap(), vec![]);
}

pub async fn an_index_is_complete_only_when_marked_under_its_current_epoch(f: &dyn BusFactory) {
    let bus = f.handle();
    assert_eq!(bus.index().await.unwrap().complete_at, None);
    let epoch = bus.begin_reconcile().await.unwrap();
    assert_eq!(
        bus.begin_reconcile().await.unwrap(),
        epoch,
        "a second pass shares the epoch"
    );
    assert!(!bus.mark_index_complete("another-epoch", 9).await.unwrap());
    assert_eq!(bus.index().await.unwrap().complete_at, None);

    let mut sub = bus.subscribe().await.unwrap();
    assert_eq!(next_event(&mut sub).await, BusEvent::Connected);
    assert!(bus.mark_index_complete(&epoch, 9).await.unwrap());
    assert_eq!(next_event(&mut sub).await, announced(Target::Index, 9));
    assert_eq!(bus.index().await.unwrap().complete_at, Some(9));
    assert_eq!(bus.index_summary().await.unwrap().complete_at, Some(9));
    assert_eq!(bus.index().await.unwrap().max_version(), Some(9));
}

fn status(node_id: &str) -> NodeStatus {
    NodeStatus {
        node_id: node_id.into(),
        started_at_ms: 1,
        reported_at_ms: 2,
        ready: true,
        gateways: [("acme/prod".to_owned(), 4)].into(),
        deployment_version: Some(3),
        last_error: Some(NodeError {
            target: "acme/bad".into(),
            version: Some(5),
            message: "nope".into(),
            at_ms: 2,
        }),
        failing: vec![],
        logs: gatehouse_shared::node::LogCounts {
            submitted: 7,
            dropped: 1,
            shipped: 6,
        },
        ..Default::default()
    }
}

pub async fn node_statuses_are_listed_until_their_ttl_runs_out_or_they_are_removed(
    f: &dyn BusFactory,
) {
    let bus = f.handle();
    bus.report_node_status(&status("b-node"), Duration::from_secs(30))
        .await
        .unwrap();
    bus.report_node_status(&status("a-node"), Duration::from_millis(300))
        .await
        .unwrap();
    let listed = bus.node_statuses().await.unwrap();
    assert_eq!(listed, vec![status("a-node"), status("b-node")]);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ids: Vec<String> = bus
            .node_statuses()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.node_id)
            .collect();
        if ids == ["b-node"] {
            break;
        }
        assert!(Instant::now() < deadline, "a-node never expired: {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.remove_node_status("b-node").await.unwrap();
    assert_eq!(bus.node_statuses().await.unwrap(), vec![]);
}

pub async fn each_default_gateway_request_reaches_exactly_one_consumer(f: &dyn BusFactory) {
    let (one, two, node) = (f.handle(), f.handle(), f.handle());
    // Consumers that start before any request exist (the group is created on the first read).
    for consumer in [&one, &two] {
        consumer
            .next_default_gateway_requests(Duration::from_millis(10))
            .await
            .unwrap();
    }
    let asked: BTreeSet<String> = (0..20).map(|i| format!("acct{i}")).collect();
    for account in &asked {
        node.request_default_gateway(account).await.unwrap();
    }
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < asked.len() && Instant::now() < deadline {
        let (a, b) = tokio::join!(
            one.next_default_gateway_requests(Duration::from_millis(100)),
            two.next_default_gateway_requests(Duration::from_millis(100)),
        );
        received.extend(a.unwrap());
        received.extend(b.unwrap());
    }
    // Nothing more arrives: no request was handed out twice.
    received.extend(
        one.next_default_gateway_requests(Duration::from_millis(100))
            .await
            .unwrap(),
    );
    received.extend(
        two.next_default_gateway_requests(Duration::from_millis(100))
            .await
            .unwrap(),
    );
    assert_eq!(received.len(), asked.len(), "{received:?}");
    assert_eq!(received.into_iter().collect::<BTreeSet<_>>(), asked);
}

pub async fn waiting_for_default_gateway_requests_returns_empty_after_the_wait(f: &dyn BusFactory) {
    let bus = f.handle();
    let started = Instant::now();
    let got = bus
        .next_default_gateway_requests(Duration::from_millis(200))
        .await
        .unwrap();
    assert!(got.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
