//! Logs in split mode: a data-plane node ships records through the Redis log stream, a control plane's consumer
//! group stores them. Nothing is lost when the control plane is killed mid-traffic and another one takes over.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatehouse_mock_providers::MockProvider;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::support::Gatehouse;

/// Short, so the new control plane takes over the killed one's unacknowledged batches within the test.
const CLAIM_IDLE: &str = "2s";
const REQUESTS: usize = 200;
const CONCURRENCY: usize = 4;

async fn logs_page(cluster: &Cluster, query: &str) -> Option<Value> {
    let response = cluster
        .http
        .get(cluster.gateways_url(&format!("/gw/logs?{query}")))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Polls the logs list until it counts `n` rows; fails after `deadline`.
async fn until_total(cluster: &Cluster, n: i64, deadline: Duration) -> Value {
    let started = Instant::now();
    let mut last = Value::Null;
    loop {
        if let Some(body) = logs_page(cluster, "per_page=50").await {
            if body["result_info"]["total_count"].as_i64() == Some(n) {
                return body;
            }
            last = body["result_info"].clone();
        }
        assert!(
            started.elapsed() < deadline,
            "the logs never counted {n} rows within {deadline:?}; last result_info {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every row's id, through every page.
async fn all_ids(cluster: &Cluster, total: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1..=total.div_ceil(50) {
        let body = logs_page(cluster, &format!("per_page=50&page={page}"))
            .await
            .expect("a logs page");
        for row in body["result"].as_array().expect("rows") {
            ids.push(row["id"].as_str().expect("an id").to_owned());
        }
    }
    ids
}

async fn infer(http: &reqwest::Client, url: &str) -> reqwest::Response {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
    http.post(url)
        .header("authorization", "Bearer sk")
        .json(&body)
        .send()
        .await
        .expect("the node answers")
}

fn log_id(response: &reqwest::Response) -> String {
    response.headers()["cf-aig-log-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_arrive_exactly_once_across_a_control_plane_crash() {
    let mock = MockProvider::start();
    let Some(mut cluster) = Cluster::start(None, &["--log-claim-idle", CLAIM_IDLE]) else {
        return;
    };
    cluster.create("gw").await;
    let base = format!("openai={}", mock.url("/v1"));
    cluster.start_node_with("n1", &["--provider-base-url", &base]);
    let url = cluster
        .node("n1")
        .inference_url("/v1/acme/gw/openai/chat/completions");
    let http = reqwest::Client::new();

    // A request through the node appears in the logs API.
    let started = Instant::now();
    let first = loop {
        let response = infer(&http, &url).await;
        if response.status() == 200 {
            break log_id(&response);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the gateway never became routable on the node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let list = until_total(&cluster, 1, Duration::from_secs(15)).await;
    let row = &list["result"][0];
    assert_eq!(row["id"], first.as_str());
    assert_eq!(row["provider"], "openai");
    assert_eq!(row["model"], "gpt-4o-mini");
    assert_eq!(row["status_code"], 200);

    // Traffic flows while the control plane is killed (no shutdown work) and a new one starts on the same
    // database and Redis.
    let sent = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, sent) = (http.clone(), url.clone(), Arc::clone(&sent));
        senders.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut other = 0usize;
            while sent.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                let response = infer(&http, &url).await;
                if response.status() == 200 {
                    ok.push(log_id(&response));
                } else {
                    other += 1;
                }
                let _ = response.bytes().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, other)
        }));
    }
    while sent.load(Ordering::SeqCst) < REQUESTS / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Frozen first: its blocked XREADGROUP stays registered in Redis, so the next batch is delivered to it and
    // is pending when it dies; only a takeover (XAUTOCLAIM) can store that batch.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &cluster.control_plane.pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let frozen_at = sent.load(Ordering::SeqCst);
    while sent.load(Ordering::SeqCst) < frozen_at + 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.control_plane.kill();
    let orphaned = pending(&cluster).await;
    assert!(
        orphaned > 0,
        "the killed control plane holds unacknowledged batches"
    );
    while sent.load(Ordering::SeqCst) < REQUESTS / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let envs = cluster.envs();
    let replacement = Gatehouse::start(
        &[
            "control-plane",
            "--api-listen",
            "127.0.0.1:0",
            "--log-claim-idle",
            CLAIM_IDLE,
        ],
        &envs,
    );
    cluster.control_plane = replacement;
    let mut expected: Vec<String> = vec![first];
    let mut failed = 0;
    for sender in senders {
        let (ok, other) = sender.await.unwrap();
        expected.extend(ok);
        failed += other;
    }
    assert_eq!(failed, 0, "the node serves while the control plane is down");
    assert_eq!(expected.len(), REQUESTS + 1);

    // Every 200's record arrives, once: the count holds past the takeover threshold, and the ids are the
    // responses' log ids, each once.
    let total = i64::try_from(expected.len()).unwrap();
    until_total(&cluster, total, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = until_total(&cluster, total, Duration::from_secs(1)).await;
    assert_eq!(settled["result_info"]["total_count"], total);
    let ids = all_ids(&cluster, expected.len()).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a log id is listed twice");
    let wanted: HashSet<&String> = expected.iter().collect();
    assert_eq!(
        wanted.len(),
        expected.len(),
        "log ids are unique per response"
    );
    assert_eq!(
        unique, wanted,
        "the rows are exactly the responses' log ids"
    );
    assert_eq!(pending(&cluster).await, 0, "every batch was acknowledged");
}

/// Entries of the log stream's group delivered and not acknowledged.
async fn pending(cluster: &Cluster) -> i64 {
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{}logs", cluster.prefix))
        .arg("log-writers")
        .query_async(&mut conn)
        .await
        .unwrap();
    match summary {
        redis::Value::Array(fields) => match fields.first() {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("unexpected XPENDING count {other:?}"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// `GET /admin/nodes`: the node's log counters, once the control plane can read them.
async fn node_logs(cluster: &Cluster) -> Option<Value> {
    let body: Value = cluster
        .http
        .get(cluster.control_plane.api_url("/admin/nodes"))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["result"]
        .as_array()?
        .first()
        .map(|n| n["logs"].clone())
}

#[tokio::test]
async fn with_redis_down_a_node_keeps_serving_buffers_to_its_bound_and_counts_what_it_drops() {
    let mut redis = gatehouse_bus::testing::PrivateRedis::start();
    let Some(mut cluster) = Cluster::start(Some(redis.url()), &[]) else {
        return;
    };
    let mock = MockProvider::start();
    let openai = format!("openai={}", mock.url("/v1"));
    cluster.start_node_with(
        "node-a",
        &["--provider-base-url", &openai, "--log-queue-capacity", "20"],
    );
    cluster.create("gw").await;
    let url = cluster
        .node("node-a")
        .inference_url("/v1/acme/gw/openai/chat/completions");
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}"#;
    let started = Instant::now();
    while cluster
        .http
        .post(&url)
        .header("authorization", "Bearer sk")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never routable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_total(&cluster, 1, Duration::from_secs(10)).await;

    redis.kill();
    // The node holds at most one shipper batch (500 records) plus its queue (20): send well past that.
    let sent = 700;
    let mut slowest = Duration::ZERO;
    for _ in 0..sent {
        let t = Instant::now();
        let resp = cluster
            .http
            .post(&url)
            .header("authorization", "Bearer sk")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "requests keep flowing while Redis is down"
        );
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited on the log pipeline: {slowest:?}"
    );

    redis.restart();
    // Once Redis is back the node's counters reach the control plane; every request is either stored or counted
    // as dropped, and some were dropped (the queue holds 20).
    let started = Instant::now();
    let (submitted, dropped) = loop {
        if let Some(logs) = node_logs(&cluster).await
            && logs["submitted"].as_u64().unwrap_or(0) + logs["dropped"].as_u64().unwrap_or(0)
                >= (sent + 1) as u64
        {
            break (
                logs["submitted"].as_u64().unwrap(),
                logs["dropped"].as_u64().unwrap(),
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node's log counters never showed every request"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        dropped >= (sent + 1 - 520) as u64,
        "only one batch and the queue may be held: {dropped} dropped of {sent}"
    );
    assert_eq!(submitted + dropped, (sent + 1) as u64);
    let stored = submitted as i64;
    until_total(&cluster, stored, Duration::from_secs(30)).await;
}
