//! The config sync: a real data plane fed through a bus the test publishes to (in-process, wrapped by
//! `ControlledBus` to lose announcements or hold reads; one case on Redis).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gatehouse_bus::{BusEvent, ConfigBus, MemoryBus, StoredDocument};
use gatehouse_data_plane::snapshot::{ConfigStore, DefaultGatewayRequester};
use gatehouse_data_plane::{ConfigSyncSettings, DataPlane};
use gatehouse_shared::config::{
    DeploymentDocument, GatewayConfigDocument, GatewayKey, ProviderConfigEntry,
};
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::node::NodeStatus;

use crate::client::get;
use crate::controlled_bus::ControlledBus;
use crate::harness::{RunningDataPlane, test_settings};

const DEADLINE: Duration = Duration::from_secs(5);

struct Node {
    running: RunningDataPlane,
    config: Arc<ConfigStore>,
    requester: DefaultGatewayRequester,
}

fn sync_settings(node_id: &str) -> ConfigSyncSettings {
    let mut settings = ConfigSyncSettings::new(node_id);
    settings.status_interval = Duration::from_millis(200);
    settings
}

fn start_node(bus: Arc<dyn ConfigBus>, settings: ConfigSyncSettings) -> Node {
    start_node_with(test_settings(), bus, settings)
}

fn start_node_with(
    dp_settings: gatehouse_data_plane::DataPlaneSettings,
    bus: Arc<dyn ConfigBus>,
    settings: ConfigSyncSettings,
) -> Node {
    let data_plane = DataPlane::bind(dp_settings)
        .expect("bind")
        .with_config_bus(bus, settings);
    let config = data_plane.config_store();
    let requester = data_plane.default_gateway_requester();
    Node {
        running: RunningDataPlane::run(data_plane),
        config,
        requester,
    }
}

fn key(id: &str) -> GatewayKey {
    GatewayKey::new("acme", id)
}

fn gateway(id: &str, version: i64, authentication: bool) -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = authentication;
    GatewayConfigDocument {
        schema: 1,
        key: key(id),
        version,
        internal_id: format!("internal-{id}"),
        is_default: false,
        settings,
        provider_configs: vec![],
        custom_providers: vec![],
        cache_generation: 0,
        access: Default::default(),
        routes: Vec::new(),
    }
}

fn stored(doc: &GatewayConfigDocument) -> StoredDocument {
    StoredDocument {
        version: doc.version,
        hash: format!("hash-{}", doc.version),
        body: serde_json::to_string(doc).unwrap(),
    }
}

/// What a control plane's reconciler does once it has published everything: nodes become ready only after it.
async fn mark_complete(bus: &dyn ConfigBus, version: i64) {
    let epoch = bus.begin_reconcile().await.unwrap();
    assert!(bus.mark_index_complete(&epoch, version).await.unwrap());
}

/// A bus a control plane has already reconciled (empty, complete).
async fn reconciled_bus() -> MemoryBus {
    let bus = MemoryBus::new();
    mark_complete(&bus, 0).await;
    bus
}

async fn publish(bus: &dyn ConfigBus, doc: &GatewayConfigDocument) {
    bus.publish_gateway(&doc.key, &stored(doc)).await.unwrap();
}

fn served_version(node: &Node, id: &str) -> Option<i64> {
    node.config.load().gateway("acme", id).map(|g| g.version)
}

/// Polls `check` until it holds, failing with `what` after [`DEADLINE`]; returns how long it took.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

async fn status_of(bus: &dyn ConfigBus, node_id: &str) -> Option<NodeStatus> {
    bus.node_statuses()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.node_id == node_id)
}

#[tokio::test]
async fn a_node_is_ready_only_after_its_first_full_load_of_a_complete_index() {
    let memory = MemoryBus::new();
    let bus = ControlledBus::over(memory.clone());
    publish(&memory, &gateway("prod", 3, true)).await;
    bus.hold_index_reads(true);
    let node = start_node(bus.clone(), sync_settings("n1"));

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(node.running.addr, "/readyz").status, 503);
    assert_eq!(served_version(&node, "prod"), None);

    bus.hold_index_reads(false);
    eventually("loaded", || served_version(&node, "prod") == Some(3)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        get(node.running.addr, "/readyz").status,
        503,
        "no control plane has marked the index complete yet"
    );

    mark_complete(&memory, 4).await;
    eventually("ready", || node.running.readiness.is_ready()).await;
    assert_eq!(served_version(&node, "prod"), Some(3));
    assert_eq!(get(node.running.addr, "/readyz").status, 200);
}

#[tokio::test]
async fn announced_documents_apply_within_milliseconds_and_older_announcements_fetch_nothing() {
    let memory = reconciled_bus().await;
    let bus = ControlledBus::over(memory.clone());
    let node = start_node(bus.clone(), sync_settings("n1"));
    eventually("ready", || node.running.readiness.is_ready()).await;

    publish(&memory, &gateway("prod", 5, false)).await;
    let took = eventually("v5 applied", || served_version(&node, "prod") == Some(5)).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    publish(&memory, &gateway("prod", 7, true)).await;
    eventually("v7 applied", || served_version(&node, "prod") == Some(7)).await;
    assert!(
        node.config
            .load()
            .gateway("acme", "prod")
            .unwrap()
            .settings
            .authentication
    );

    let fetches = bus.gateway_fetches.load(Ordering::SeqCst);
    bus.inject(BusEvent::Announcement(gatehouse_bus::Announcement {
        target: gatehouse_bus::Target::Gateway(key("prod")),
        version: 6,
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        bus.gateway_fetches.load(Ordering::SeqCst),
        fetches,
        "an announcement older than what the node serves is not fetched"
    );
    assert_eq!(served_version(&node, "prod"), Some(7));
}

#[tokio::test]
async fn a_tombstone_removes_the_gateway_and_an_older_document_cannot_bring_it_back() {
    let bus = MemoryBus::new();
    let node = start_node(Arc::new(bus.clone()), sync_settings("n1"));
    publish(&bus, &gateway("prod", 1, false)).await;
    eventually("v1", || served_version(&node, "prod") == Some(1)).await;
    bus.publish_tombstone(&key("prod"), 2).await.unwrap();
    eventually("removed", || served_version(&node, "prod").is_none()).await;
    assert_eq!(node.config.load().known_version(&key("prod")), Some(2));

    publish(&bus, &gateway("prod", 3, false)).await;
    eventually("re-created at v3", || {
        served_version(&node, "prod") == Some(3)
    })
    .await;
}

#[tokio::test]
async fn a_malformed_document_keeps_the_previous_version_and_shows_the_error_in_the_node_status() {
    let bus = MemoryBus::new();
    let node = start_node(Arc::new(bus.clone()), sync_settings("n1"));
    publish(&bus, &gateway("prod", 1, true)).await;
    eventually("v1", || served_version(&node, "prod") == Some(1)).await;

    bus.publish_gateway(
        &key("prod"),
        &StoredDocument {
            version: 2,
            hash: "broken".into(),
            body: "{\"this is\": not json".into(),
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = status_of(&bus, "n1").await
            && !status.failing.is_empty()
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the refusal never showed in the status"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(status.failing[0].target, "acme/prod");
    assert_eq!(status.failing[0].version, Some(2));
    assert!(
        status.failing[0].message.contains("does not parse"),
        "{status:?}"
    );
    assert_eq!(status.gateways["acme/prod"], 1, "v1 stays in service");
    assert_eq!(served_version(&node, "prod"), Some(1));

    // A document for another gateway under this key, and one whose version disagrees with its index entry.
    let mut wrong_key = gateway("other", 3, true);
    wrong_key.version = 3;
    bus.publish_gateway(&key("prod"), &stored(&wrong_key))
        .await
        .unwrap();
    let mut wrong_version = stored(&gateway("prod", 4, true));
    wrong_version.version = 5;
    bus.publish_gateway(&key("prod"), &wrong_version)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(served_version(&node, "prod"), Some(1));

    publish(&bus, &gateway("prod", 6, false)).await;
    eventually("v6", || served_version(&node, "prod") == Some(6)).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = status_of(&bus, "n1").await.unwrap();
        if status.failing.is_empty() && status.gateways["acme/prod"] == 6 {
            assert!(
                status.last_error.is_some(),
                "the last error stays visible after it is fixed"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_document_that_does_not_compile_keeps_the_previous_version() {
    let bus = MemoryBus::new();
    // This node has no master key, so it cannot open a stored provider key.
    let node = start_node(Arc::new(bus.clone()), sync_settings("n1"));
    publish(&bus, &gateway("prod", 1, false)).await;
    eventually("v1", || served_version(&node, "prod") == Some(1)).await;
    let mut with_key = gateway("prod", 2, false);
    with_key.provider_configs.push(ProviderConfigEntry {
        id: "pc-1".into(),
        provider_slug: "openai".into(),
        alias: "default".into(),
        default_config: true,
        sealed_secret: "v1.AAAA".into(),
        rate_limit: None,
        rate_limit_period: None,
    });
    publish(&bus, &with_key).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = status_of(&bus, "n1").await;
        if let Some(error) = status.as_ref().and_then(|s| s.failing.first()) {
            assert!(error.message.contains("master key"), "{error:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(served_version(&node, "prod"), Some(1));
}

#[tokio::test]
async fn a_missed_announcement_is_fixed_by_the_timer_resync() {
    let memory = reconciled_bus().await;
    let bus = ControlledBus::over(memory.clone());
    let mut settings = sync_settings("n1");
    settings.resync_interval = Duration::from_millis(300);
    let node = start_node(bus.clone(), settings);
    eventually("ready", || node.running.readiness.is_ready()).await;

    bus.drop_announcements(true);
    publish(&memory, &gateway("prod", 1, false)).await;
    memory.publish_tombstone(&key("gone"), 2).await.unwrap();
    // Announcements are dropped, so only the timer resync can deliver it.
    eventually("applied by the timer", || {
        served_version(&node, "prod") == Some(1)
    })
    .await;
    assert_eq!(node.config.load().known_version(&key("gone")), Some(2));
}

#[tokio::test]
async fn a_reconnect_resyncs_and_drops_gateways_a_complete_index_no_longer_lists() {
    let first = reconciled_bus().await;
    let bus = ControlledBus::over(first.clone());
    let node = start_node(bus.clone(), sync_settings("n1"));
    publish(&first, &gateway("kept", 1, false)).await;
    publish(&first, &gateway("lost", 2, false)).await;
    eventually("both", || served_version(&node, "lost") == Some(2)).await;

    // Redis came back empty and without announcements reaching the node; a control plane republished `kept`.
    bus.drop_announcements(true);
    let wiped = MemoryBus::new();
    bus.swap(wiped.clone());
    publish(&wiped, &gateway("kept", 3, false)).await;
    bus.inject(BusEvent::Connected);
    eventually("kept at v3", || served_version(&node, "kept") == Some(3)).await;
    assert_eq!(
        served_version(&node, "lost"),
        Some(2),
        "an incomplete index removes nothing"
    );

    let epoch = wiped.begin_reconcile().await.unwrap();
    assert!(wiped.mark_index_complete(&epoch, 4).await.unwrap());
    bus.inject(BusEvent::Connected);
    eventually("lost removed", || served_version(&node, "lost").is_none()).await;
    assert_eq!(served_version(&node, "kept"), Some(3));
    publish(&wiped, &gateway("lost", 5, false)).await;
    bus.inject(BusEvent::Connected);
    eventually("lost re-created", || {
        served_version(&node, "lost") == Some(5)
    })
    .await;
}

#[tokio::test]
async fn the_deployment_document_applies_and_the_status_reports_every_version() {
    let bus = MemoryBus::new();
    // Background services finish their work during the grace period (a second: pingora's unit).
    let mut graceful = test_settings();
    graceful.grace_period = Duration::from_secs(1);
    let node = start_node_with(
        graceful,
        Arc::new(bus.clone()),
        sync_settings("status-node"),
    );
    publish(&bus, &gateway("prod", 4, false)).await;
    let deployment = DeploymentDocument {
        schema: 1,
        version: 9,
        verification_keys: vec![],
        revoked_tokens: vec!["tok_1".into()],
    };
    bus.publish_deployment(&StoredDocument {
        version: 9,
        hash: "d9".into(),
        body: serde_json::to_string(&deployment).unwrap(),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = status_of(&bus, "status-node").await
            && s.deployment_version == Some(9)
            && s.gateways.get("acme/prod") == Some(&4)
        {
            break s;
        }
        assert!(Instant::now() < deadline, "status never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(!status.ready, "never marked complete");
    assert!(status.started_at_ms > 0 && status.reported_at_ms >= status.started_at_ms);
    let snapshot = node.config.load();
    assert!(
        snapshot
            .deployment
            .as_ref()
            .unwrap()
            .revoked_tokens
            .contains("tok_1")
    );

    let (stopped, _) = node.running.stop();
    stopped.unwrap();
    assert_eq!(
        status_of(&bus, "status-node").await,
        None,
        "a node that stops removes its status"
    );
}

#[tokio::test]
async fn a_default_gateway_request_reaches_the_control_plane_and_the_published_gateway_is_served() {
    let bus = reconciled_bus().await;
    let node = start_node(Arc::new(bus.clone()), sync_settings("n1"));
    eventually("ready", || node.running.readiness.is_ready()).await;
    // A stand-in control plane: creates `default` for whatever account asks.
    let control_plane = {
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                for account in bus
                    .next_default_gateway_requests(Duration::from_secs(1))
                    .await
                    .unwrap()
                {
                    let mut doc = gateway("default", 1, true);
                    doc.key = GatewayKey::new(account, "default");
                    doc.is_default = true;
                    publish(&bus, &doc).await;
                }
            }
        })
    };
    let started = Instant::now();
    let found = node
        .requester
        .request_and_wait("acme", DEADLINE)
        .await
        .expect("the default gateway arrives");
    assert!(found.is_default);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    control_plane.abort();
}

#[tokio::test]
async fn a_node_on_redis_applies_documents_another_process_publishes() {
    let Some(url) = gatehouse_bus::testing::test_redis_url() else {
        return;
    };
    let settings = gatehouse_bus::RedisBusSettings {
        url: url.clone(),
        prefix: gatehouse_bus::testing::unique_prefix("dp-sync"),
    };
    let handle = tokio::runtime::Handle::current();
    let node_bus = Arc::new(gatehouse_bus::RedisBus::new(&settings, handle.clone()).unwrap());
    let control_plane = gatehouse_bus::RedisBus::new(&settings, handle).unwrap();
    mark_complete(&control_plane, 0).await;
    let node = start_node(node_bus, sync_settings("redis-node"));
    eventually("ready", || node.running.readiness.is_ready()).await;
    publish(&control_plane, &gateway("prod", 1, true)).await;
    let took = eventually("applied", || served_version(&node, "prod") == Some(1)).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    drop(node);
    gatehouse_bus::testing::delete_prefix(&url, &settings.prefix);
}
