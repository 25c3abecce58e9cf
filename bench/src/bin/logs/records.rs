//! Realistic, deterministic log records and the writers that store them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::log_ingest::store_batch;
use gatehouse_shared::log::{BODY_HEAD_CHARS, LogRecord, body_head};
use serde_json::json;

use crate::{ACCOUNT, BATCH};

pub(crate) const MODELS: [&str; 6] = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-nano",
    "o3-mini",
    "claude-3-5-haiku",
    "claude-sonnet-4",
];
pub(crate) const TOPICS: [&str; 8] = [
    "connection pooling",
    "TLS session resumption",
    "HTTP/2 flow control",
    "exponential backoff",
    "DNS caching",
    "idempotency keys",
    "rate limiting",
    "circuit breakers",
];

/// A deterministic 64-bit mix (splitmix64), so runs are repeatable without a random source.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d1_049b_d111_49eb);
    x ^ (x >> 31)
}

/// Record `i` of `n` for `gateway`, spread evenly over the 30 days before `now_ms`: a chat completion with a
/// ~1 KB request and response body, their heads, sizes, tokens, cost and metadata. About 1 in 20 failed (a 429 or
/// a 500); six models, two providers.
pub(crate) fn record(gateway: &str, i: u64, n: u64, now_ms: i64, salt: u64) -> LogRecord {
    const SPAN_MS: i64 = 30 * 24 * 3600 * 1000;
    let r = mix(i ^ salt.rotate_left(32));
    let created_at_ms = now_ms - SPAN_MS + (SPAN_MS as u128 * i as u128 / n.max(1) as u128) as i64;
    let model = MODELS[(r % MODELS.len() as u64) as usize];
    let provider = if model.starts_with("claude") {
        "anthropic"
    } else {
        "openai"
    };
    let topic = TOPICS[((r >> 8) % TOPICS.len() as u64) as usize];
    let failed = (r >> 16).is_multiple_of(20);
    let status_code: u16 = match (failed, (r >> 24) % 2) {
        (false, _) => 200,
        (true, 0) => 429,
        (true, _) => 500,
    };
    let tokens_in = 120 + (r >> 32) % 400;
    let tokens_out = if failed { 0 } else { 40 + (r >> 40) % 300 };
    let request_body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse, accurate assistant for network engineers. Answer in plain text, no lists, at most three sentences, and say so when you are unsure rather than guessing."},
            {"role": "user", "content": format!("Request {i}: explain {topic} to a backend engineer who already knows TCP and HTTP/1.1, with one concrete example of a failure it prevents in a service that calls a third-party API under load, and one way to observe it in production metrics or logs.")}
        ],
        "max_tokens": 256,
        "temperature": 0.2,
        "user": format!("user-{}", r % 5000),
    })
    .to_string();
    let response_body = if failed {
        json!({"error": {"message": if status_code == 429 { "Rate limit reached for requests per minute. Please try again in 20s." } else { "The server had an error while processing your request. Sorry about that!" },
            "type": if status_code == 429 { "requests" } else { "server_error" }, "param": null, "code": null}})
        .to_string()
    } else {
        json!({
            "id": format!("chatcmpl-{r:016x}"), "object": "chat.completion", "created": created_at_ms / 1000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{topic} keeps a slow or failing dependency from taking the caller down with it: without it, a burst of retries against a third-party API that is already struggling multiplies the load and every worker ends up blocked waiting. You can see it working when the error rate of the dependency rises but the latency of your own endpoints stays flat, and its counters (open, rejected, retried) move in your dashboards.")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
        })
        .to_string()
    };
    let (request_head, request_head_complete) = body_head(request_body.as_bytes(), BODY_HEAD_CHARS);
    let (response_head, response_head_complete) =
        body_head(response_body.as_bytes(), BODY_HEAD_CHARS);
    let id = ulid::Ulid::from_parts(created_at_ms as u64, (u128::from(r) << 64) | u128::from(i))
        .to_string();
    LogRecord {
        id: id.clone(),
        account_id: ACCOUNT.into(),
        gateway_id: gateway.into(),
        created_at_ms,
        provider: provider.into(),
        model: Some(model.into()),
        model_type: Some("chat".into()),
        path: "chat/completions".into(),
        request_type: Some("provider".into()),
        request_content_type: Some("application/json".into()),
        response_content_type: Some("application/json".into()),
        status_code,
        success: !failed,
        cached: (r >> 48).is_multiple_of(10) && !failed,
        duration_ms: 200 + (r >> 20) % 3000,
        tokens_in: Some(tokens_in),
        tokens_out: Some(tokens_out),
        cached_tokens_in: Some(0),
        cost: Some((tokens_in as f64 * 0.15 + tokens_out as f64 * 0.6) / 1e6),
        custom_cost: false,
        metadata: Some(
            json!({"team": format!("team-{}", r % 12), "env": "prod", "trace": i}).to_string(),
        ),
        event_id: id,
        step: 0,
        user_agent: Some("OpenAI/Python 1.82.0".into()),
        authenticated: true,
        request_size: request_body.len() as u64,
        response_size: response_body.len() as u64,
        request_head,
        request_head_complete,
        response_head,
        response_head_complete,
        request_body: Some(request_body),
        response_body: Some(response_body),
        bodies_stored: true,
        config_hash: Some("bench".into()),
        key_id: None,
        user_id: None,
        team_id: None,
        route_id: None,
        route_version_id: None,
        route_path: None,
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Stores records `0..n` of `gateway` in batches of 500 from `writers` tasks, each taking the next batch number;
/// stops taking batches at `deadline`. Returns the rows inserted and the elapsed time. `pregenerated` batches are
/// used as they are (so generating them is not timed); otherwise each batch is generated by its writer.
pub(crate) async fn store_all(
    db: &Database,
    gateway: &str,
    n: usize,
    writers: usize,
    deadline: Option<Instant>,
    pregenerated: Option<Arc<Vec<Arc<Vec<LogRecord>>>>>,
    progress: bool,
) -> Result<(usize, Duration)> {
    let batches = n.div_ceil(BATCH) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let inserted = Arc::new(AtomicU64::new(0));
    let now = now_ms();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers.max(1) {
        let (db, next, inserted, gateway, pre) = (
            db.clone(),
            next.clone(),
            inserted.clone(),
            gateway.to_owned(),
            pregenerated.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok::<_, anyhow::Error>(());
                }
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok(());
                }
                let batch = match &pre {
                    Some(pre) => pre[b as usize].clone(),
                    None => {
                        let from = b * BATCH as u64;
                        let to = (from + BATCH as u64).min(n as u64);
                        Arc::new(
                            (from..to)
                                .map(|i| record(&gateway, i, n as u64, now, 7))
                                .collect(),
                        )
                    }
                };
                let stored = store_batch(&db, batch).await?.inserted;
                let total = inserted.fetch_add(stored as u64, Ordering::Relaxed) + stored as u64;
                if progress && (b + 1).is_multiple_of(200) {
                    eprintln!(
                        "gatehouse-bench-logs: seeded {total} rows in {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((inserted.load(Ordering::Relaxed) as usize, started.elapsed()))
}
