//! Traffic policies through the real binaries in split mode: two `data-plane` processes sharing one Redis for the
//! response cache and the rate limit (leased ahead by each node), configured through the control plane's API.

use std::time::Duration;

use gatehouse_mock_providers::MockProvider;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::support::as_strs;

const LIMIT: usize = 40;

fn chat(content: &str) -> String {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}).to_string()
}

/// Puts `settings` on gateway `id` and waits until every node serves the version it produced.
async fn configure(cluster: &Cluster, id: &str, settings: Value) {
    cluster
        .send(
            cluster
                .http
                .put(cluster.gateways_url(&format!("/{id}")))
                .json(&settings),
        )
        .await;
    let mut version = None;
    for _ in 0..200 {
        let document = cluster.bus_document(id).await;
        if let Some(doc) = document
            .filter(|d| d["settings"]["rate_limiting_limit"] == settings["rate_limiting_limit"])
        {
            version = doc["version"].as_i64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let version = version.expect("the control plane published the new settings");
    cluster
        .until_every_node("the policy gateway", Duration::from_secs(10), |report| {
            Cluster::version(report, id).is_some_and(|v| v >= version)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_cache_and_one_rate_limit() {
    let mock = MockProvider::start();
    let Some(mut cluster) = Cluster::start(None, &[]) else {
        return;
    };
    let flags = vec![
        "--provider-base-url".to_owned(),
        format!("openai={}", mock.url("/v1")),
    ];
    cluster.start_node_with("node-a", &as_strs(&flags));
    cluster.start_node_with("node-b", &as_strs(&flags));
    cluster.create("pol").await;
    // Sliding, so that the test cannot straddle a window boundary.
    configure(
        &cluster,
        "pol",
        json!({"cache_invalidate_on_update": false, "cache_ttl": 300, "collect_logs": false,
            "rate_limiting_interval": 3600, "rate_limiting_limit": LIMIT, "rate_limiting_technique": "sliding"}),
    )
    .await;
    // Every request carries the caller's own provider key (no stored key on this gateway).
    let send = |node: &str, content: &str, skip_cache: bool| {
        let mut request = cluster
            .http
            .post(
                cluster
                    .node(node)
                    .inference_url("/v1/acme/pol/openai/chat/completions"),
            )
            .bearer_auth("sk-client-key")
            .body(chat(content));
        if skip_cache {
            request = request.header("cf-aig-skip-cache", "true");
        }
        request.send()
    };

    // One cache: node B answers from what node A stored, without calling the provider.
    mock.reset();
    let first = send("node-a", "cache me", false).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cf-aig-cache-status"], "MISS");
    let first_body = first.bytes().await.unwrap();
    let second = send("node-b", "cache me", false).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["cf-aig-cache-status"], "HIT");
    assert_eq!(second.bytes().await.unwrap(), first_body);
    assert_eq!(
        mock.requests().len(),
        1,
        "the hit must not reach the provider"
    );

    // One rate limit: the two requests above counted (a hit counts too); the rest of the limit goes to whichever
    // node asks, and every request past it is refused on both nodes, with Retry-After.
    let (mut admitted, mut refused) = (2, 0);
    let mut refusing_nodes = std::collections::BTreeSet::new();
    for i in 0..100 {
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        let response = send(node, &format!("request {i}"), true).await.unwrap();
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => {
                refused += 1;
                refusing_nodes.insert(node);
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=3600).contains(&retry_after), "{retry_after}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"][0]["code"], 2003, "{body}");
            }
            other => panic!("{node}: {other}"),
        }
    }
    assert_eq!(admitted, LIMIT, "admitted across both nodes");
    assert_eq!(refused, 102 - LIMIT);
    assert_eq!(
        refusing_nodes.len(),
        2,
        "both nodes enforce the shared limit"
    );
    assert_eq!(mock.requests().len(), 1 + LIMIT - 2);
}
