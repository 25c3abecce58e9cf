//! The response cache and the gateway rate limit (spec §3.2–3.3), on one node with in-process stores and on two
//! nodes sharing split mode's Redis stores.

use std::time::Duration;

use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use gatehouse_mock_providers::MockProvider;
use gatehouse_shared::gateway::RateLimitingTechnique;
use reqwest::Response;
use serde_json::{Value, json};

use crate::policy_node::{PolicyNode, chat, gateway, redis_stores};

const CHAT: &str = "/v1/acme/cached/openai/chat/completions";

fn cache_status(resp: &Response) -> Option<String> {
    resp.headers()
        .get("cf-aig-cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn ask(
    node: &PolicyNode,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut req = node
        .http
        .post(node.url(CHAT))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if !headers.iter().any(|(k, _)| *k == "authorization") {
        req = req.header("authorization", "Bearer sk-one");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = cache_status(&resp);
    let text = resp.text().await.unwrap();
    (
        status,
        cache,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn cached_node(mock: &MockProvider, ttl: i64) -> PolicyNode {
    let node = PolicyNode::start(mock);
    node.apply(&gateway("cached", 1, |s| s.cache_ttl = Some(ttl)));
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_request_is_answered_from_the_cache_without_a_provider_call() {
    let mock = MockProvider::start();
    let mut node = cached_node(&mock, 300);
    let body = chat("cache me");
    let (s1, c1, a1) = ask(&node, &body, &[]).await;
    let (s2, c2, a2) = ask(&node, &body, &[]).await;
    assert_eq!((s1, c1.as_deref()), (200, Some("MISS")));
    assert_eq!((s2, c2.as_deref()), (200, Some("HIT")));
    assert_eq!(a1, a2, "the cached answer is the provider's answer");
    assert_eq!(mock.requests().len(), 1);

    // Logged: the hit says cached, has the tokens of the answer and cost nothing.
    let first = node.next_log().await;
    let hit = node.next_log().await;
    assert!(!first.cached && hit.cached);
    assert_eq!(hit.tokens_out, first.tokens_out);
    assert!(hit.tokens_out.is_some());
    assert_eq!(hit.cost, Some(0.0));
    assert_eq!(hit.status_code, 200);

    // A different body, another key.
    let (_, c3, _) = ask(&node, &chat("something else"), &[]).await;
    assert_eq!(c3.as_deref(), Some("MISS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_credentials_never_share_an_answer() {
    let mock = MockProvider::start();
    let node = cached_node(&mock, 300);
    let body = chat("per credential");
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("MISS"));
    let (_, other_key, _) = ask(&node, &body, &[("authorization", "Bearer sk-two")]).await;
    assert_eq!(other_key.as_deref(), Some("MISS"));
    assert_eq!(
        ask(&node, &body, &[("authorization", "Bearer sk-two")])
            .await
            .1
            .as_deref(),
        Some("HIT")
    );
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let mock = MockProvider::start();
    let node = cached_node(&mock, 1);
    let body = chat("short lived");
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("MISS"));
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("HIT"));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("MISS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_custom_key_and_per_request_ttl() {
    let mock = MockProvider::start();
    let node = cached_node(&mock, 300);
    let body = chat("controls");
    ask(&node, &body, &[]).await;
    // Skip: no lookup (the provider is called) and no store.
    let (_, skipped, _) = ask(&node, &body, &[("cf-aig-skip-cache", "true")]).await;
    assert_eq!(skipped.as_deref(), Some("MISS"));
    assert_eq!(mock.requests().len(), 2);
    // A custom key replaces the request part: two different bodies share it.
    let (_, k1, a1) = ask(&node, &chat("one"), &[("cf-aig-cache-key", "shared-key")]).await;
    let (_, k2, a2) = ask(&node, &chat("two"), &[("cf-aig-cache-key", "shared-key")]).await;
    assert_eq!((k1.as_deref(), k2.as_deref()), (Some("MISS"), Some("HIT")));
    assert_eq!(a1, a2);

    // On a gateway with caching off, a request opts in with a TTL or a key; without either nothing is cached.
    node.apply(&gateway("cached", 2, |s| s.cache_ttl = Some(0)));
    let plain = chat("no cache here");
    let (_, none, _) = ask(&node, &plain, &[]).await;
    assert_eq!(none, None, "no cache status when caching does not apply");
    let (_, t1, _) = ask(&node, &plain, &[("cf-aig-cache-ttl", "60")]).await;
    let (_, t2, _) = ask(&node, &plain, &[("cf-aig-cache-ttl", "60")]).await;
    assert_eq!((t1.as_deref(), t2.as_deref()), (Some("MISS"), Some("HIT")));
    let (_, deprecated, _) = ask(&node, &plain, &[("cf-cache-ttl", "60")]).await;
    assert_eq!(
        deprecated.as_deref(),
        Some("HIT"),
        "the deprecated alias reads the same entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_errors_are_not_cached() {
    let mock = MockProvider::start();
    let node = cached_node(&mock, 300);
    let stream = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "s"}]})
        .to_string();
    for _ in 0..2 {
        let (status, cache, _) = ask(&node, &stream, &[]).await;
        assert_eq!((status, cache), (200, None));
    }
    let failing = chat("fails");
    for _ in 0..2 {
        let (status, cache, _) = ask(&node, &failing, &[("x-mock-status", "500")]).await;
        assert_eq!((status, cache.as_deref()), (500, Some("MISS")));
    }
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_invalidate_on_update_makes_old_entries_unreachable() {
    let mock = MockProvider::start();
    let node = PolicyNode::start(&mock);
    let mut doc = gateway("cached", 1, |s| {
        s.cache_ttl = Some(300);
        s.cache_invalidate_on_update = true;
    });
    node.apply(&doc);
    let body = chat("invalidate");
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("MISS"));
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("HIT"));
    // The control plane bumps the generation on such an update; the node keys by it.
    doc.version = 2;
    doc.cache_generation = 1;
    node.apply(&doc);
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("MISS"));
    assert_eq!(ask(&node, &body, &[]).await.1.as_deref(), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_refuses_with_2003_and_retry_after() {
    let mock = MockProvider::start();
    let mut node = PolicyNode::start(&mock);
    node.apply(&gateway("cached", 1, |s| {
        s.rate_limiting_limit = Some(3);
        s.rate_limiting_interval = Some(60);
        s.rate_limiting_technique = Some(RateLimitingTechnique::Sliding);
    }));
    for i in 0..3 {
        assert_eq!(ask(&node, &chat(&format!("r{i}")), &[]).await.0, 200);
    }
    let resp = node
        .http
        .post(node.url(CHAT))
        .header("authorization", "Bearer sk-one")
        .body(chat("r3"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["internalCode"].as_u64(), body["message"].as_str()),
        (Some(2003), Some("Rate limited"))
    );
    assert_eq!(
        mock.requests().len(),
        3,
        "the refused request was not forwarded"
    );
    // The refusal is logged like any other gateway answer.
    let records = node.drain_logs().await;
    assert_eq!(records.iter().filter(|r| r.status_code == 429).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_cache_and_one_rate_limit_through_redis() {
    let Some(url) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("policies");
    let (stores_a, stores_b) = (redis_stores(&url, &prefix), redis_stores(&url, &prefix));
    let mock = MockProvider::start();
    let a = PolicyNode::start_with(&mock, Some(stores_a));
    let b = PolicyNode::start_with(&mock, Some(stores_b));
    let doc = gateway("cached", 1, |s| {
        s.cache_ttl = Some(300);
        s.rate_limiting_limit = Some(10);
        s.rate_limiting_interval = Some(60);
        s.rate_limiting_technique = Some(RateLimitingTechnique::Sliding);
    });
    a.apply(&doc);
    b.apply(&doc);

    let body = chat("shared between nodes");
    assert_eq!(ask(&a, &body, &[]).await.1.as_deref(), Some("MISS"));
    // Node A stores the answer after sending it, and node B's first call may still be connecting to Redis, so B
    // is asked until it hits (each miss is a provider call, counted against the rate limit below).
    let mut sent = 1;
    let mut b_hit = false;
    for _ in 0..20 {
        sent += 1;
        if ask(&b, &body, &[]).await.1.as_deref() == Some("HIT") {
            b_hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b_hit, "node B reads node A's entry");
    assert_eq!(
        mock.requests().len(),
        sent - 1,
        "only misses reached the provider"
    );

    // `sent` requests so far; 30 more spread over both nodes, concurrently: exactly the rest of the 10 pass (a
    // sliding window, exact and shared, so no calendar boundary can fall inside the test).
    let mut handles = Vec::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        let req = node
            .http
            .post(node.url(CHAT))
            .header("authorization", "Bearer sk-one")
            .body(chat(&format!("limit {i}")));
        handles.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut admitted = 0;
    let mut limited = 0;
    for h in handles {
        match h.await.unwrap() {
            200 => admitted += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((admitted, limited), (10 - sent, 20 + sent));
    drop((a, b));
    if let Some(url) = test_redis_url() {
        delete_prefix(&url, &prefix);
    }
}
