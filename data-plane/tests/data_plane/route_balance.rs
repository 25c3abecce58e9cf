//! Load balancing behind one routed model element (issue 15): weights, least latency, priority with a circuit
//! breaker that opens and recovers, and sticky sessions that move only when their target's circuit opens. Two
//! mock providers: `openai` (mock A) and the custom provider `custom-backup` (mock B).

use std::time::Duration;

use gatehouse_mock_providers::{Behaviour, MockProvider};
use gatehouse_shared::config::{CustomProviderEntry, GatewayConfigDocument};
use gatehouse_shared::routes::RouteEntry;
use serde_json::{Value, json};

use crate::node::{Node, gateway};

const COMPAT: &str = "/v1/acme/gw/compat/chat/completions";

/// start → model element `m` with `properties` → end.
fn balanced_gateway(backup: &MockProvider, properties: Value) -> GatewayConfigDocument {
    let mut doc = gateway("acme", "gw", 1);
    doc.custom_providers = vec![CustomProviderEntry {
        id: "cp-backup".into(),
        slug: "backup".into(),
        base_url: backup.url("/v1"),
        enable: true,
    }];
    doc.routes = vec![RouteEntry {
        id: "route-1".into(),
        name: "pool".into(),
        version_id: "version-1".into(),
        elements: json!([
            {"id": "s", "type": "start", "outputs": {"next": {"elementId": "m"}}},
            {"id": "m", "type": "model", "properties": properties, "outputs": {"success": {"elementId": "e"}}},
            {"id": "e", "type": "end", "outputs": {}},
        ]),
    }];
    doc
}

fn two_targets(extra: Value) -> Value {
    let mut p = json!({
        "targets": [
            {"provider": "openai", "model": "a", "weight": 3, "priority": 0},
            {"provider": "custom-backup", "model": "b", "weight": 1, "priority": 1},
        ],
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// The provider that answered (`cf-aig-provider`) and the status.
async fn ask(node: &Node, metadata: Value) -> (u16, String) {
    let resp = node
        .http
        .post(node.url(COMPAT))
        .header("authorization", "Bearer sk")
        .header("cf-aig-metadata", metadata.to_string())
        .body(
            json!({"model": "dynamic/pool", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let provider = resp
        .headers()
        .get("cf-aig-provider")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let _ = resp.bytes().await;
    (status, provider)
}

fn start(properties: Value) -> (MockProvider, MockProvider, Node) {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    node.add_gateway(balanced_gateway(&backup, properties));
    (primary, backup, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_honoured() {
    let (primary, backup, node) = start(two_targets(json!({"balance": "weighted"})));
    for _ in 0..40 {
        assert_eq!(ask(&node, json!({})).await.0, 200);
    }
    // Smooth weighted round robin on one node is exact over whole cycles.
    assert_eq!(
        (primary.requests().len(), backup.requests().len()),
        (30, 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_latency_moves_traffic_to_the_fast_target() {
    let (primary, backup, node) = start(two_targets(json!({"balance": "least_latency"})));
    primary.set_behaviour(Behaviour {
        header_delay: Duration::from_millis(60),
        ..Behaviour::default()
    });
    let mut last = Vec::new();
    for i in 0..40 {
        let (status, provider) = ask(&node, json!({})).await;
        assert_eq!(status, 200);
        if i >= 20 {
            last.push(provider);
        }
    }
    let slow = last.iter().filter(|p| *p == "openai").count();
    // Once both are measured, the slow one only gets its exploration share.
    assert!(
        slow <= 3,
        "{slow} of the last 20 went to the slow target: {last:?}"
    );
    assert!(
        primary.requests().len() >= 5,
        "the slow target was measured too"
    );
    assert!(backup.requests().len() >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_falls_back_opens_the_breaker_and_recovers_after_the_cooldown() {
    let (primary, backup, node) = start(two_targets(json!({
        "balance": "priority",
        "circuit_breaker": {"failures": 2, "cooldown": 0.5},
    })));
    assert_eq!(ask(&node, json!({})).await.1, "openai");
    primary.set_behaviour(Behaviour {
        status: Some(503),
        ..Behaviour::default()
    });
    // Each failure falls back to the backup within the request; the second opens the primary's circuit.
    for _ in 0..2 {
        assert_eq!(
            ask(&node, json!({})).await,
            (200, "custom-backup".to_owned())
        );
    }
    let tried = primary.requests().len();
    for _ in 0..5 {
        assert_eq!(ask(&node, json!({})).await.1, "custom-backup");
    }
    assert_eq!(
        primary.requests().len(),
        tried,
        "an open circuit takes the target out"
    );
    // Recovered and cooled down: the next request is a trial, and it closes the circuit.
    primary.set_behaviour(Behaviour::default());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ask(&node, json!({})).await.1, "openai");
    assert_eq!(ask(&node, json!({})).await.1, "openai");
    assert_eq!(backup.requests().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_stay_put_and_move_when_their_target_opens_its_breaker() {
    let (primary, _backup, node) = start(two_targets(json!({
        "targets": [
            {"provider": "openai", "model": "a"},
            {"provider": "custom-backup", "model": "b"},
        ],
        "sticky": "metadata.session",
        "circuit_breaker": {"failures": 1, "cooldown": 60},
    })));
    let mut placed = Vec::new();
    for s in 0..12 {
        let session = json!({"session": format!("s{s}")});
        let (_, first) = ask(&node, session.clone()).await;
        for _ in 0..2 {
            assert_eq!(
                ask(&node, session.clone()).await.1,
                first,
                "session s{s} moved"
            );
        }
        placed.push(first);
    }
    assert!(
        placed.iter().any(|p| p == "openai") && placed.iter().any(|p| p == "custom-backup"),
        "{placed:?}"
    );
    // The primary fails once: its circuit opens, and only its sessions move.
    primary.set_behaviour(Behaviour {
        status: Some(500),
        ..Behaviour::default()
    });
    let on_primary = placed.iter().position(|p| p == "openai").unwrap();
    assert_eq!(
        ask(&node, json!({"session": format!("s{on_primary}")}))
            .await
            .1,
        "custom-backup"
    );
    for (s, before) in placed.iter().enumerate() {
        let now = ask(&node, json!({"session": format!("s{s}")})).await.1;
        assert_eq!(now, "custom-backup", "s{s} was on {before}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_statuses_decide_between_moving_on_and_answering() {
    let (primary, backup, node) = start(two_targets(json!({
        "balance": "priority",
        "retry_on": [503],
        "retries": 1,
        "fallback_on": [500],
        "circuit_breaker": false,
    })));
    // 503: retried on the same target (two attempts), then answered: 503 is not a fallback status here.
    primary.set_behaviour(Behaviour {
        status: Some(503),
        ..Behaviour::default()
    });
    assert_eq!(ask(&node, json!({})).await.0, 503);
    assert_eq!((primary.requests().len(), backup.requests().len()), (2, 0));
    // 500: not retried, moved on.
    primary.reset();
    primary.set_behaviour(Behaviour {
        status: Some(500),
        ..Behaviour::default()
    });
    assert_eq!(
        ask(&node, json!({})).await,
        (200, "custom-backup".to_owned())
    );
    assert_eq!(primary.requests().len(), 1);
    // 400 is the client's: answered as it is, never moved on.
    primary.set_behaviour(Behaviour {
        status: Some(400),
        ..Behaviour::default()
    });
    assert_eq!(ask(&node, json!({})).await.0, 400);
    assert_eq!(backup.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_probe_brings_a_target_back_before_its_cooldown() {
    let (primary, _backup, node) = start(two_targets(json!({
        "balance": "priority",
        "circuit_breaker": {"failures": 1, "cooldown": 600},
        "health_check": {"interval": 1},
    })));
    primary.set_behaviour(Behaviour {
        status: Some(502),
        ..Behaviour::default()
    });
    // Wait out the first probes (sent at start) so the failure below is what opens the circuit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ask(&node, json!({})).await,
        (200, "custom-backup".to_owned())
    );
    assert_eq!(ask(&node, json!({})).await.1, "custom-backup");
    // The target recovers; its probe (every second) finds it up long before the ten-minute cooldown.
    primary.set_behaviour(Behaviour::default());
    let started = std::time::Instant::now();
    loop {
        if ask(&node, json!({})).await.1 == "openai" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the probe never brought the target back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probes = primary
        .requests()
        .iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["max_tokens"] == 1))
        .count();
    assert!(probes >= 1, "a probe reached the target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_model_with_routing_is_balanced_over_its_targets() {
    use gatehouse_shared::gateway::{CatalogModel, CatalogModelLocation, CatalogModelType};

    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    let mut doc = balanced_gateway(&backup, json!({"provider": "openai", "model": "unused"}));
    doc.routes.clear();
    doc.settings.models = Some(vec![CatalogModel {
        name: "smart".into(),
        target: "openai/a".into(),
        model_type: CatalogModelType::Chat,
        location: CatalogModelLocation::Global,
        routing: Some(json!({"targets": [
            {"provider": "openai", "model": "a", "weight": 1},
            {"provider": "custom-backup", "model": "b", "weight": 1},
        ]})),
    }]);
    node.add_gateway(doc);
    let mut served = Vec::new();
    for _ in 0..4 {
        let resp = node
            .http
            .post(node.url(COMPAT))
            .header("authorization", "Bearer sk")
            .body(
                json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        served.push(
            resp.headers()["cf-aig-provider"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        served,
        ["openai", "custom-backup", "openai", "custom-backup"]
    );
    assert_eq!((primary.requests().len(), backup.requests().len()), (2, 2));
    // The catalog's type still decides: the name is not an embedding model.
    let resp = node
        .http
        .post(node.url("/v1/acme/gw/compat/embeddings"))
        .header("authorization", "Bearer sk")
        .body(json!({"model": "smart", "input": "hi"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
