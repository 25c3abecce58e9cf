//! Spend limits (spec §3.15): a rule blocks once its window's cost reaches the limit, partitions keep separate
//! buckets, and two nodes on split mode's Redis share one budget. Costs are made exact with `cf-aig-custom-cost`.

use gatehouse_bus::testing::{delete_prefix, keys_under, test_redis_url, unique_prefix};
use gatehouse_mock_providers::MockProvider;
use serde_json::{Value, json};

use crate::policy_node::{PolicyNode, chat, gateway, redis_stores};

const CHAT: &str = "/v1/acme/budget/openai/chat/completions";
/// Every token costs a hundredth of a dollar, so each mock answer (tens of tokens) costs well over $0.05.
const COST: &str = r#"{"per_token_in":0.01,"per_token_out":0.01}"#;

fn budget_gateway(rules: Value) -> gatehouse_shared::config::GatewayConfigDocument {
    gateway("budget", 1, |s| {
        s.collect_logs = false;
        s.spend_limits = Some(json!({"enabled": true, "rules": rules}));
    })
}

async fn send(node: &PolicyNode, metadata: Option<&str>) -> (u16, Value) {
    let mut req = node
        .http
        .post(node.url(CHAT))
        .header("authorization", "Bearer sk")
        .header("cf-aig-custom-cost", COST)
        .body(chat("spend"));
    if let Some(m) = metadata {
        req = req.header("cf-aig-metadata", m);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_blocks_once_the_windows_cost_reaches_its_limit() {
    let mock = MockProvider::start();
    let node = PolicyNode::start(&mock);
    node.apply(&budget_gateway(json!([
        {"id": "cap", "limit": 0.05, "limitType": "cost", "window": 3600, "technique": "fixed",
         "provider": {"mode": "filter", "values": ["openai"]}}
    ])));
    // The first request is checked against an empty bucket and passes; its cost fills the budget.
    assert_eq!(send(&node, None).await.0, 200);
    let (status, body) = send(&node, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["internalCode"], 2041);
    assert_eq!(
        body["message"],
        "Spend limit exceeded: rule 'cap' (cost limit 0.05 per 3600s, fixed) for openai gpt-4o-mini"
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "a refused request is not forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_do_not_match_do_not_block_and_partitions_have_their_own_buckets() {
    let mock = MockProvider::start();
    let node = PolicyNode::start(&mock);
    node.apply(&budget_gateway(json!([
        {"id": "other-model", "limit": 0, "limitType": "cost", "window": 60,
         "model": {"mode": "filter", "values": ["gpt-4o"]}},
        {"id": "per-user", "limit": 0.05, "limitType": "cost", "window": 60,
         "metadata": {"user": {"mode": "partition"}}}
    ])));
    let alice = Some(r#"{"user":"alice"}"#);
    let bob = Some(r#"{"user":"bob"}"#);
    assert_eq!(send(&node, alice).await.0, 200);
    assert_eq!(send(&node, alice).await.0, 429, "alice's bucket is spent");
    assert_eq!(send(&node, bob).await.0, 200, "bob has his own bucket");
    assert_eq!(send(&node, bob).await.0, 429);
    // No partition value: the per-user rule does not apply, and the zero-limit rule is for another model.
    assert_eq!(send(&node, None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_budget_through_redis() {
    let Some(url) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("spend");
    let mock = MockProvider::start();
    let a = PolicyNode::start_with(&mock, Some(redis_stores(&url, &prefix)));
    let b = PolicyNode::start_with(&mock, Some(redis_stores(&url, &prefix)));
    let doc = budget_gateway(json!([
        {"id": "shared", "limit": 0.05, "limitType": "cost", "window": 600, "technique": "sliding"}
    ]));
    a.apply(&doc);
    b.apply(&doc);
    assert_eq!(send(&a, None).await.0, 200);
    // A records its spend in the logging phase, after the response went out: wait until it reached Redis, or B's
    // request may be checked before it (and then pass, as it rightly would).
    let started = std::time::Instant::now();
    while !keys_under(&url, &prefix)
        .iter()
        .any(|k| k.contains(":spend:"))
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "node A's spend never reached Redis"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, body) = send(&b, None).await;
    assert_eq!(status, 429, "node B sees what node A spent: {body}");
    assert_eq!(send(&a, None).await.0, 429);
    drop((a, b));
    delete_prefix(&url, &prefix);
}
