//! Logs end to end in standalone mode: a request through the data plane becomes a row the logs API serves.

use std::time::{Duration, Instant};

use gatehouse_mock_providers::{MockProvider, usage_for};
use serde_json::{Value, json};

use crate::support::{Gatehouse, as_strs, mint_token, port_zero_flags};

pub(crate) fn start(dir: &std::path::Path, mock: &MockProvider) -> Gatehouse {
    let mut args = port_zero_flags(dir);
    args.extend([
        "--provider-base-url".to_owned(),
        format!("openai={}", mock.url("/v1")),
        "--provider-base-url".to_owned(),
        format!("anthropic={}", mock.base_url()),
    ]);
    Gatehouse::start(&as_strs(&args), &[])
}

async fn create_gateway(gh: &Gatehouse, http: &reqwest::Client, token: &str) {
    let resp = http
        .post(gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways"))
        .bearer_auth(token)
        .json(&json!({"id": "gw", "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
            "rate_limiting_interval": 0, "rate_limiting_limit": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// What must outlive a test's process: its mock provider and its directory.
pub(crate) struct Keep {
    pub(crate) mock: MockProvider,
    pub(crate) dir: tempfile::TempDir,
}

/// A standalone process in a directory of its own with gateway `acme/gw` (logs on), a token that may edit, and a
/// client.
pub(crate) async fn start_with_gateway() -> (Gatehouse, String, reqwest::Client, Keep) {
    let mock = MockProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let gh = start(dir.path(), &mock);
    let token = mint_token(dir.path(), "acme", &["ai-gateway:edit"]);
    let http = reqwest::Client::new();
    create_gateway(&gh, &http, &token).await;
    (gh, token, http, Keep { mock, dir })
}

/// The body of `GET …/gateways/gw/logs{rest}` in account `acme`, as text.
async fn logs_get(gh: &Gatehouse, http: &reqwest::Client, token: &str, rest: &str) -> String {
    http.get(gh.api_url(&format!(
        "/client/v4/accounts/acme/ai-gateway/gateways/gw/logs{rest}"
    )))
    .bearer_auth(token)
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap()
}

/// The same, parsed as JSON.
pub(crate) async fn logs_get_json(
    gh: &Gatehouse,
    http: &reqwest::Client,
    token: &str,
    rest: &str,
) -> Value {
    let body = logs_get(gh, http, token, rest).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{rest}: {e}: {body}"))
}

/// Polls the logs list (with `query`) until it holds `n` rows.
async fn until_logs(
    gh: &Gatehouse,
    http: &reqwest::Client,
    token: &str,
    query: &str,
    n: usize,
) -> Value {
    let started = Instant::now();
    loop {
        let body = logs_get_json(gh, http, token, &format!("?{query}")).await;
        if body["result"].as_array().is_some_and(|r| r.len() >= n) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {n} logs for {query}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_request_through_the_gateway_is_listed_filtered_and_rated_through_the_logs_api() {
    let (gh, token, http, _keep) = start_with_gateway().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
        .to_string();
    let url = gh.inference_url("/v1/acme/gw/openai/chat/completions");
    let started = Instant::now();
    let resp = loop {
        let resp = http
            .post(&url)
            .header("authorization", "Bearer sk")
            .header("cf-aig-metadata", r#"{"team":"ml"}"#)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break resp;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway never became routable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log_id = resp.headers()["cf-aig-log-id"].to_str().unwrap().to_owned();
    let answer = resp.text().await.unwrap();

    let list = until_logs(&gh, &http, &token, "", 1).await;
    let row = &list["result"][0];
    assert_eq!(row["id"], log_id.as_str());
    assert_eq!(row["model"], "gpt-4o-mini");
    assert_eq!(row["provider"], "openai");
    assert_eq!(row["status_code"], 200);
    assert_eq!(row["success"], true);
    let usage = usage_for(body.len(), gatehouse_mock_providers::DEFAULT_CHUNKS);
    assert_eq!(row["tokens_in"], usage.input_tokens);
    assert_eq!(row["tokens_out"], usage.output_tokens);
    assert!(row["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(
        row["metadata"], r#"{"team":"ml"}"#,
        "metadata is a JSON string, as Cloudflare returns it"
    );

    // The filter encoding Cloudflare's Python SDK sends, and one that matches nothing.
    let found = until_logs(
        &gh,
        &http,
        &token,
        "filters.key=model&filters.operator=eq&filters.value=gpt-4o-mini",
        1,
    )
    .await;
    assert_eq!(found["result_info"]["total_count"], 1);
    let none = logs_get_json(
        &gh,
        &http,
        &token,
        "?filters.key=success&filters.operator=eq&filters.value=false",
    )
    .await;
    assert_eq!(none["result"], json!([]));

    let detail = logs_get_json(&gh, &http, &token, &format!("/{log_id}")).await;
    assert_eq!(detail["result"]["request_size"], body.len());
    let raw_request = logs_get_json(&gh, &http, &token, &format!("/{log_id}/request")).await;
    assert_eq!(
        raw_request,
        serde_json::from_str::<Value>(&body).unwrap(),
        "the raw request, not enveloped"
    );
    let raw_response = logs_get(&gh, &http, &token, &format!("/{log_id}/response")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&raw_response).unwrap(),
        serde_json::from_str::<Value>(&answer).unwrap()
    );

    let patched = http
        .patch(gh.api_url(&format!(
            "/client/v4/accounts/acme/ai-gateway/gateways/gw/logs/{log_id}"
        )))
        .bearer_auth(&token)
        .json(&json!({"feedback": 1, "score": 90}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert!(gh.terminate().success());
}

#[tokio::test]
async fn records_queued_at_shutdown_are_written_before_the_process_exits() {
    let (gh, token, http, keep) = start_with_gateway().await;
    let url = gh.inference_url("/v1/acme/gw/openai/chat/completions");
    let mut sent = 0;
    let started = Instant::now();
    while sent < 20 {
        let resp = http
            .post(&url)
            .header("authorization", "Bearer sk")
            .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            sent += 1;
        } else {
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Stop at once, while the writer may still hold records; then look with a fresh process.
    assert!(gh.terminate().success());
    let again = start(keep.dir.path(), &keep.mock);
    let list = until_logs(&again, &http, &token, "per_page=50", 20).await;
    assert_eq!(
        list["result_info"]["total_count"], 20,
        "every request's record was kept"
    );
}

/// Streamed and not, OpenAI and Anthropic: each request's row carries the tokens the mock reported (from the JSON
/// body, or from the SSE events: OpenAI's final usage chunk, Anthropic's `message_start` and `message_delta`), a
/// cost from the price table, its status and metadata, and the whole response body as the client received it.
#[tokio::test]
async fn streamed_and_anthropic_requests_become_rows_with_their_usage_cost_and_bodies() {
    let (gh, token, http, _keep) = start_with_gateway().await;

    let openai = (
        "/v1/acme/gw/openai/chat/completions",
        vec![("authorization", "Bearer sk")],
    );
    let anthropic = (
        "/v1/acme/gw/anthropic/v1/messages",
        vec![("x-api-key", "sk-ant"), ("anthropic-version", "2023-06-01")],
    );
    let cases = [
        (
            "openai-stream",
            &openai,
            json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "stream me"}]}),
        ),
        (
            "anthropic-json",
            &anthropic,
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
                "messages": [{"role": "user", "content": "hello there"}]}),
        ),
        (
            "anthropic-stream",
            &anthropic,
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
                "messages": [{"role": "user", "content": "stream me too"}]}),
        ),
    ];
    let mut sent = Vec::new();
    for (label, (path, headers), body) in &cases {
        let body = body.to_string();
        let started = Instant::now();
        let resp = loop {
            let mut req = http
                .post(gh.inference_url(path))
                .header("content-type", "application/json")
                .header("cf-aig-metadata", format!(r#"{{"case":"{label}"}}"#))
                .body(body.clone());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = req.send().await.unwrap();
            if resp.status() == 200 {
                break resp;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{label}: {}",
                resp.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let log_id = resp.headers()["cf-aig-log-id"].to_str().unwrap().to_owned();
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let answer = resp.text().await.unwrap();
        sent.push((*label, log_id, body, content_type, answer));
    }

    until_logs(&gh, &http, &token, "", sent.len()).await;
    for (label, log_id, body, content_type, answer) in &sent {
        let row = logs_get_json(&gh, &http, &token, &format!("/{log_id}")).await;
        let row = &row["result"];
        let usage = usage_for(body.len(), gatehouse_mock_providers::DEFAULT_CHUNKS);
        assert_eq!(row["tokens_in"], usage.input_tokens, "{label}: {row}");
        assert_eq!(row["tokens_out"], usage.output_tokens, "{label}: {row}");
        assert!(row["cost"].as_f64().unwrap() > 0.0, "{label}: {row}");
        assert_eq!(row["status_code"], 200, "{label}");
        assert_eq!(row["success"], true, "{label}");
        assert_eq!(
            row["metadata"],
            format!(r#"{{"case":"{label}"}}"#),
            "{label}"
        );
        assert_eq!(row["provider"], label.split('-').next().unwrap(), "{label}");
        assert_eq!(
            row["response_content_type"],
            content_type.as_str(),
            "{label}"
        );
        assert_eq!(
            content_type.starts_with("text/event-stream"),
            label.ends_with("stream"),
            "{label}: {content_type}"
        );
        let raw_response = logs_get(&gh, &http, &token, &format!("/{log_id}/response")).await;
        assert_eq!(
            &raw_response, answer,
            "{label}: the body as the client got it"
        );
    }
    assert!(gh.terminate().success());
}
