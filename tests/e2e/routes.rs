//! Dynamic routes through the real binaries in split mode (issue 15): a route created through the management API
//! serves `model: "dynamic/<name>"` on `/compat` on two data-plane nodes; a PATCH with new elements deploys a new
//! version to both, and deploying the first version again rolls back.

use std::time::{Duration, Instant};

use gatehouse_mock_providers::MockProvider;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::support::as_strs;

const CHAT: &str = "/v1/acme/gw/compat/chat/completions";

fn elements(model: &str) -> Value {
    json!([
        {"id": "start", "type": "start", "outputs": {"next": {"elementId": "tier"}}},
        {"id": "tier", "type": "conditional", "properties": {"conditions": {"metadata.tier": "gold"}},
         "outputs": {"true": {"elementId": "gold"}, "false": {"elementId": "model"}}},
        {"id": "gold", "type": "model", "properties": {"provider": "anthropic", "model": "claude-sonnet-4-5", "retries": 0, "timeout": 0},
         "outputs": {"success": {"elementId": "end"}, "fallback": {"elementId": "model"}}},
        {"id": "model", "type": "model", "properties": {"provider": "openai", "model": model, "retries": 1, "timeout": 5000},
         "outputs": {"success": {"elementId": "end"}}},
        {"id": "end", "type": "end", "outputs": {}},
    ])
}

/// The model that served a request to `node`, from `cf-aig-provider` and `cf-aig-model`.
async fn served(cluster: &Cluster, node: &str, metadata: Value) -> (u16, String) {
    let resp = cluster
        .http
        .post(cluster.node(node).inference_url(CHAT))
        .bearer_auth("sk-client")
        .header("cf-aig-metadata", metadata.to_string())
        .json(&json!({"model": "dynamic/support", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    (
        status,
        format!("{}/{}", header("cf-aig-provider"), header("cf-aig-model")),
    )
}

/// Polls both nodes until each serves `want` for plain requests.
async fn until_both(cluster: &Cluster, want: &str, deadline: Duration) -> Duration {
    let started = Instant::now();
    for node in ["node-a", "node-b"] {
        loop {
            let (status, got) = served(cluster, node, json!({})).await;
            if status == 200 && got == want {
                break;
            }
            assert!(
                started.elapsed() < deadline,
                "{node} still serves {status} {got}, not {want}, after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

#[tokio::test]
async fn a_route_made_through_the_api_serves_both_nodes_and_its_versions_deploy_and_roll_back() {
    let mock = MockProvider::start();
    let Some(mut cluster) = Cluster::start(None, &[]) else {
        return;
    };
    let flags = [
        "--provider-base-url".to_owned(),
        format!("openai={}", mock.url("/v1")),
        "--provider-base-url".to_owned(),
        format!("anthropic={}", mock.base_url()),
    ];
    cluster.start_node_with("node-a", &as_strs(&flags));
    cluster.start_node_with("node-b", &as_strs(&flags));
    cluster.create("gw").await;

    let created: Value = cluster
        .send(
            cluster
                .http
                .post(cluster.gateways_url("/gw/routes"))
                .json(&json!({"name": "support", "elements": elements("gpt-4o-mini")})),
        )
        .await;
    let route_id = created["result"]["id"].as_str().unwrap().to_owned();
    let first_version = created["result"]["version"]["version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    until_both(&cluster, "openai/gpt-4o-mini", Duration::from_secs(10)).await;
    assert_eq!(
        served(&cluster, "node-b", json!({"tier": "gold"})).await,
        (200, "anthropic/claude-sonnet-4-5".to_owned())
    );

    // A PATCH with elements, as Terraform sends it: a new version, deployed to both nodes within a second.
    let patched: Value = cluster
        .send(
            cluster
                .http
                .patch(cluster.gateways_url(&format!("/gw/routes/{route_id}")))
                .json(&json!({"name": "support", "elements": elements("gpt-4.1-mini")})),
        )
        .await;
    assert_ne!(
        patched["route"]["version"]["version_id"].as_str().unwrap(),
        first_version
    );
    let took = until_both(&cluster, "openai/gpt-4.1-mini", Duration::from_secs(1)).await;
    eprintln!("the new version reached both nodes in {took:?}");

    // Rollback: deploy the first version again.
    cluster
        .send(
            cluster
                .http
                .post(cluster.gateways_url(&format!("/gw/routes/{route_id}/deployments")))
                .json(&json!({"version_id": first_version})),
        )
        .await;
    until_both(&cluster, "openai/gpt-4o-mini", Duration::from_secs(1)).await;

    // Deleting the route: both nodes answer OpenAI's 404 for it.
    cluster
        .send(
            cluster
                .http
                .delete(cluster.gateways_url(&format!("/gw/routes/{route_id}"))),
        )
        .await;
    let started = Instant::now();
    for node in ["node-a", "node-b"] {
        while served(&cluster, node, json!({})).await.0 != 404 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{node} still serves the deleted route"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
