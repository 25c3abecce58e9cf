//! Request limits that protect the node (issue: "a configurable body cap, header size limits, and upstream
//! timeouts that always end"), and what the shared limits do while Redis is unreachable.

use std::time::{Duration, Instant};

use gatehouse_bus::testing::PrivateRedis;
use gatehouse_mock_providers::{MockProvider, control};
use gatehouse_shared::gateway::RateLimitingTechnique;
use serde_json::{Value, json};

use crate::policy_node::{PolicyNode, chat, gateway, redis_stores};

const CHAT: &str = "/v1/acme/gw/openai/chat/completions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_header_is_a_431_in_the_gateway_envelope() {
    let mock = MockProvider::start();
    let node = PolicyNode::start_tweaked(&mock, None, |s| s.max_header_bytes = 8 * 1024);
    node.apply(&gateway("gw", 1, |_| {}));
    let resp = node
        .http
        .post(node.url(CHAT))
        .header("x-padding", "p".repeat(9 * 1024))
        .body(chat("big header"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "AiGatewayError");
    assert_eq!(body["internalCode"], 2904);
    assert!(mock.requests().is_empty());
    // Just under the cap passes.
    let resp = node
        .http
        .post(node.url(CHAT))
        .header("authorization", "Bearer sk")
        .header("x-padding", "p".repeat(7 * 1024))
        .body(chat("fits"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_ends_is_cut_at_the_total_timeout() {
    let mock = MockProvider::start();
    let node = PolicyNode::start_tweaked(&mock, None, |s| {
        s.upstream_total_timeout = Duration::from_millis(800);
    });
    node.apply(&gateway("gw", 1, |_| {}));
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "long"}]});
    let started = Instant::now();
    // 50 events 100 ms apart: each pause is well inside the read timeout, the whole stream is not.
    let resp = node
        .http
        .post(node.url(CHAT))
        .header("authorization", "Bearer sk")
        .header(control::CHUNKS, "50")
        .header(control::CHUNK_DELAY_MS, "100")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the stream started");
    let read = resp.text().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(2_500),
        "cut near 800 ms, not after 5 s: {elapsed:?}"
    );
    match read {
        Err(_) => {}
        Ok(text) => assert!(
            !text.contains("[DONE]"),
            "the stream must not look complete"
        ),
    }
}

/// Split mode with Redis gone: requests are served without waiting on Redis, the cache misses, and the rate limit
/// is enforced by the node's own counters (the documented fallback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_node_serves_fast_and_limits_locally() {
    let mut redis = PrivateRedis::start();
    let mock = MockProvider::start();
    let node = PolicyNode::start_with(&mock, Some(redis_stores(&redis.url(), "gh-down:")));
    node.apply(&gateway("gw", 1, |s| {
        s.cache_ttl = Some(300);
        s.rate_limiting_limit = Some(5);
        s.rate_limiting_interval = Some(60);
        s.rate_limiting_technique = Some(RateLimitingTechnique::Sliding);
    }));
    // Warm: one request through Redis.
    let send = |i: usize| {
        node.http
            .post(node.url(CHAT))
            .header("authorization", "Bearer sk")
            .body(chat(&format!("down {i}")))
            .send()
    };
    assert_eq!(send(0).await.unwrap().status(), 200);
    redis.kill();

    let mut statuses = Vec::new();
    for i in 1..10 {
        let started = Instant::now();
        let resp = send(i).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "request {i} waited {:?} on a dead Redis",
            started.elapsed()
        );
        statuses.push(resp.status().as_u16());
    }
    // The local counters start empty when Redis goes away: five pass, the rest are refused.
    let passed = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((passed, limited), (5, 4), "{statuses:?}");
}
