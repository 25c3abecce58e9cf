//! Retries, backoff, timeouts and the universal endpoint's fallbacks (spec §2.1 form 3, §3.4–3.5), against a mock
//! provider steered per request with `x-mock-*` headers.

use std::time::{Duration, Instant};

use gatehouse_mock_providers::{MockProvider, control};
use gatehouse_shared::gateway::RetryBackoff;
use serde_json::{Value, json};

use crate::policy_node::{PolicyNode, gateway, unique};

const CHAT: &str = "/v1/acme/gw/openai/chat/completions";
const UNIVERSAL: &str = "/v1/acme/gw";

fn start(mock: &MockProvider) -> PolicyNode {
    let node = PolicyNode::start(mock);
    node.apply(&gateway("gw", 1, |_| {}));
    node
}

fn hits(mock: &MockProvider, key_header_value: &str) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.header(control::FAIL_KEY) == Some(key_header_value))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_retried_until_it_answers() {
    let mock = MockProvider::start();
    let node = start(&mock);
    let key = unique("retry");
    let resp = node
        .chat(
            CHAT,
            &[
                ("authorization", "Bearer sk"),
                ("cf-aig-max-attempts", "3"),
                (control::FAIL_FIRST, "2"),
                (control::FAIL_STATUS, "503"),
                (control::FAIL_KEY, key.as_str()),
            ],
            "retry me",
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(hits(&mock, &key), 3, "two failures, then the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_settings_retry_and_the_last_failure_passes_through() {
    let mock = MockProvider::start();
    let node = PolicyNode::start(&mock);
    node.apply(&gateway("gw", 1, |s| {
        s.retry_max_attempts = Some(2);
        s.retry_delay = Some(0);
    }));
    let key = unique("exhausted");
    let resp = node
        .chat(
            CHAT,
            &[
                ("authorization", "Bearer sk"),
                (control::FAIL_FIRST, "5"),
                (control::FAIL_STATUS, "429"),
                (control::FAIL_KEY, key.as_str()),
            ],
            "never works",
        )
        .await;
    // The provider's own error is what the client gets after the last attempt, not a gateway error.
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("error").is_some_and(|e| e.is_object()), "{body}");
    assert_eq!(hits(&mock, &key), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_not_retried() {
    let mock = MockProvider::start();
    let node = start(&mock);
    let key = unique("no-retry");
    let resp = node
        .chat(
            CHAT,
            &[
                ("authorization", "Bearer sk"),
                ("cf-aig-max-attempts", "4"),
                (control::FAIL_FIRST, "1"),
                (control::FAIL_STATUS, "400"),
                (control::FAIL_KEY, key.as_str()),
            ],
            "bad",
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(hits(&mock, &key), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_spaces_the_attempts_as_configured() {
    let mock = MockProvider::start();
    let node = PolicyNode::start(&mock);
    node.apply(&gateway("gw", 1, |s| {
        s.retry_backoff = Some(RetryBackoff::Constant);
    }));
    // Exponential from the header (overriding the gateway's constant): 150 ms, then 300 ms.
    let key = unique("backoff");
    let started = Instant::now();
    let resp = node
        .chat(
            CHAT,
            &[
                ("authorization", "Bearer sk"),
                ("cf-aig-max-attempts", "3"),
                ("cf-aig-retry-delay", "150"),
                ("cf-aig-backoff", "exponential"),
                (control::FAIL_FIRST, "2"),
                (control::FAIL_KEY, key.as_str()),
            ],
            "backoff",
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1_200),
        "150 + 300 ms of backoff expected, took {elapsed:?}"
    );
    let times: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.header(control::FAIL_KEY) == Some(key.as_str()))
        .map(|r| r.received_at)
        .collect();
    assert_eq!(times.len(), 3);
    let gap1 = times[1].duration_since(times[0]);
    let gap2 = times[2].duration_since(times[1]);
    assert!(
        gap1 >= Duration::from_millis(150) && gap1 < Duration::from_millis(450),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(300) && gap2 < Duration::from_millis(600),
        "{gap2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_a_lone_attempt_with_504_and_the_final_retry_waits() {
    let mock = MockProvider::start();
    let node = start(&mock);
    let started = Instant::now();
    let resp = node
        .chat(
            CHAT,
            &[
                ("authorization", "Bearer sk"),
                ("cf-aig-request-timeout", "200"),
                (control::HEADER_DELAY_MS, "3000"),
            ],
            "slow",
        )
        .await;
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["internalCode"], 2005);

    // Two attempts: the first is cut at 200 ms, the final one is allowed its 600 ms.
    let started = Instant::now();
    let resp = node
        .chat(
            CHAT,
            &[
                ("authorization", "Bearer sk"),
                ("cf-aig-request-timeout", "200"),
                ("cf-aig-max-attempts", "2"),
                (control::HEADER_DELAY_MS, "600"),
            ],
            "slow but final",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(780), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_control_header_is_a_400_naming_it() {
    let mock = MockProvider::start();
    let node = start(&mock);
    for (name, value) in [
        ("cf-aig-max-attempts", "9"),
        ("cf-aig-retry-delay", "lots"),
        ("cf-aig-backoff", "random"),
        ("cf-aig-request-timeout", "-5"),
        ("cf-aig-cache-ttl", "5"),
    ] {
        let resp = node.chat(CHAT, &[(name, value)], "x").await;
        assert_eq!(resp.status(), 400, "{name}: {value}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["name"], "AiGatewayError");
        assert!(body["message"].as_str().unwrap().contains(name), "{body}");
    }
    assert!(mock.requests().is_empty(), "nothing reached the provider");
}

fn universal_step(provider: &str, endpoint: &str, headers: Value, config: Value) -> Value {
    let query = if provider == "anthropic" {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
    } else {
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    };
    json!({"provider": provider, "endpoint": endpoint, "headers": headers, "query": query, "config": config})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universal_steps_fall_back_on_error_and_timeout_and_say_which_step_answered() {
    let mock = MockProvider::start();
    let mut node = start(&mock);
    let body = json!([
        universal_step(
            "openai",
            "chat/completions",
            json!({"authorization": "Bearer sk", control::STATUS: "500"}),
            json!({})
        ),
        universal_step(
            "openai",
            "chat/completions",
            json!({"authorization": "Bearer sk", control::HEADER_DELAY_MS: "3000"}),
            json!({"requestTimeout": 200})
        ),
        universal_step(
            "anthropic",
            "v1/messages",
            json!({"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}),
            json!({})
        ),
    ]);
    let started = Instant::now();
    let resp = node
        .http
        .post(node.url(UNIVERSAL))
        .header("cf-aig-event-id", "evt-universal")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(resp.headers()["cf-aig-step"], "2");
    let log_id = resp.headers()["cf-aig-log-id"].to_str().unwrap().to_owned();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message", "Anthropic's answer: {answer}");

    // One record per step tried, each with its step, provider and outcome; the answer's log id is step 2's.
    let mut records = Vec::new();
    for _ in 0..3 {
        records.push(node.next_log().await);
    }
    records.sort_by_key(|r| r.step);
    let summary: Vec<_> = records
        .iter()
        .map(|r| (r.step, r.provider.as_str(), r.status_code, r.success))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "openai", 500, false),
            (1, "openai", 504, false),
            (2, "anthropic", 200, true)
        ]
    );
    assert_eq!(records[2].id, log_id);
    assert!(records.iter().all(|r| r.event_id == "evt-universal"));
    assert_eq!(records[2].model.as_deref(), Some("claude-sonnet-4-5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_universal_step_fails_the_last_answer_passes_through() {
    let mock = MockProvider::start();
    let node = start(&mock);
    let body = json!([
        universal_step(
            "openai",
            "chat/completions",
            json!({control::STATUS: "503"}),
            json!({})
        ),
        universal_step(
            "openai",
            "chat/completions",
            json!({control::STATUS: "401"}),
            json!({})
        ),
    ]);
    let resp = node
        .http
        .post(node.url(UNIVERSAL))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["cf-aig-step"], "1");

    // A step whose provider never answers (connection closed) is the gateway's 502 when it is the last.
    let body = json!([universal_step(
        "openai",
        "chat/completions",
        json!({control::CLOSE: "1"}),
        json!({})
    )]);
    let resp = node
        .http
        .post(node.url(UNIVERSAL))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["internalCode"], 2005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universal_steps_retry_within_a_step_before_falling_back() {
    let mock = MockProvider::start();
    let node = start(&mock);
    let key = unique("universal-retry");
    let body = json!([
        universal_step(
            "openai",
            "chat/completions",
            json!({"authorization": "Bearer sk", control::FAIL_FIRST: "1", control::FAIL_KEY: key}),
            json!({"maxAttempts": 2, "retryDelay": 10})
        ),
        universal_step(
            "anthropic",
            "v1/messages",
            json!({"x-api-key": "k", "anthropic-version": "2023-06-01"}),
            json!({})
        ),
    ]);
    let resp = node
        .http
        .post(node.url(UNIVERSAL))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let step = resp.headers()["cf-aig-step"].to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(step, "0", "the retry succeeded on the first step");
    assert_eq!(hits(&mock, &key), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_universal_body_is_a_400_naming_the_problem() {
    let mock = MockProvider::start();
    let node = start(&mock);
    for (body, expected) in [
        ("not json", "JSON array"),
        ("[]", "at least one step"),
        (r#"[{"provider":"openai"}]"#, "step 0: endpoint is required"),
        (
            r#"[{"provider":"nope","endpoint":"x"}]"#,
            "step 0: Invalid provider",
        ),
        (
            r#"[{"provider":"openai","endpoint":"x","config":{"maxAttempts":0}}]"#,
            "config.maxAttempts",
        ),
    ] {
        let resp = node
            .http
            .post(node.url(UNIVERSAL))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{body}: {answer}"
        );
    }
    // GET is not the universal endpoint.
    let resp = node.http.get(node.url(UNIVERSAL)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(mock.requests().is_empty());
}
