//! Dynamic routes on `/compat` (`model: "dynamic/{name}"`, spec §3.12): conditions choose the model, a failing or
//! slow model falls back to the next, `rate` elements move traffic once their limit is reached, and the answer
//! names the provider and model that served it. Two mock providers: `openai` (mock A) and a custom provider
//! `custom-backup` (mock B), each steered on its own.

use std::time::{Duration, Instant};

use gatehouse_mock_providers::{Behaviour, MockProvider};
use gatehouse_shared::config::{CustomProviderEntry, GatewayConfigDocument};
use gatehouse_shared::routes::RouteEntry;
use serde_json::{Value, json};

use crate::node::{Node, gateway};

const COMPAT: &str = "/v1/acme/gw/compat/chat/completions";

fn to(id: &str) -> Value {
    json!({"elementId": id})
}

/// start → conditional (`metadata.tier` is gold) → true: backup/big | false: rate (2 per minute per
/// `metadata.user`) → success: openai/gpt-4o-mini (300 ms timeout, falls back to backup/big) | fallback: backup/big.
fn route_elements() -> Value {
    json!([
        {"id": "start", "type": "start", "outputs": {"next": to("tier")}},
        {"id": "tier", "type": "conditional", "properties": {"conditions": {"metadata.tier": {"$eq": "gold"}}},
         "outputs": {"true": to("big"), "false": to("quota")}},
        {"id": "quota", "type": "rate", "properties": {"key": "metadata.user", "limit": 2, "limitType": "count", "window": 60},
         "outputs": {"success": to("small"), "fallback": to("big")}},
        {"id": "small", "type": "model", "properties": {"provider": "openai", "model": "gpt-4o-mini", "retries": 0, "timeout": 300},
         "outputs": {"success": to("end"), "fallback": to("big")}},
        {"id": "big", "type": "model", "properties": {"provider": "custom-backup", "model": "big", "retries": 1, "timeout": 0},
         "outputs": {"success": to("end")}},
        {"id": "end", "type": "end", "outputs": {}},
    ])
}

fn routed_gateway(backup: &MockProvider) -> GatewayConfigDocument {
    let mut doc = gateway("acme", "gw", 1);
    doc.custom_providers = vec![CustomProviderEntry {
        id: "cp-backup".into(),
        slug: "backup".into(),
        base_url: backup.url("/v1"),
        enable: true,
    }];
    doc.routes = vec![RouteEntry {
        id: "route-1".into(),
        name: "support".into(),
        version_id: "version-1".into(),
        elements: route_elements(),
    }];
    doc
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn ask(node: &Node, metadata: Value, body: Value) -> Answer {
    let resp = node
        .http
        .post(node.url(COMPAT))
        .header("authorization", "Bearer sk-client")
        .header("cf-aig-metadata", metadata.to_string())
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

fn models_seen(mock: &MockProvider) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["model"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_choose_the_model_and_the_answer_names_it() {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    node.add_gateway(routed_gateway(&backup));

    let gold = ask(
        &node,
        json!({"tier": "gold", "user": "u1"}),
        chat("dynamic/support"),
    )
    .await;
    assert_eq!(gold.status, 200, "{}", gold.body);
    assert_eq!(gold.header("cf-aig-provider"), "custom-backup");
    assert_eq!(gold.header("cf-aig-model"), "big");
    assert_eq!(gold.json()["object"], "chat.completion");
    assert_eq!(models_seen(&backup), ["big"]);
    assert!(primary.requests().is_empty());

    let plain = ask(&node, json!({"user": "u2"}), chat("dynamic/support")).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(plain.header("cf-aig-provider"), "openai");
    assert_eq!(plain.header("cf-aig-model"), "gpt-4o-mini");
    assert_eq!(models_seen(&primary), ["gpt-4o-mini"]);
    // The client's key went to the model it chose; `dynamic/…` never reaches a provider.
    assert_eq!(
        primary.requests()[0].header("authorization"),
        Some("Bearer sk-client")
    );

    // Streaming through a route.
    let mut body = chat("dynamic/support");
    body["stream"] = json!(true);
    let streamed = ask(&node, json!({"user": "u3"}), body).await;
    assert_eq!(streamed.status, 200);
    assert!(
        streamed
            .header("content-type")
            .starts_with("text/event-stream")
    );
    assert!(streamed.body.contains("data: [DONE]"), "{}", streamed.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_slow_model_falls_back_and_the_last_error_passes_through() {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    node.add_gateway(routed_gateway(&backup));

    primary.set_behaviour(Behaviour {
        status: Some(503),
        ..Behaviour::default()
    });
    let failed_over = ask(&node, json!({"user": "a"}), chat("dynamic/support")).await;
    assert_eq!(failed_over.status, 200, "{}", failed_over.body);
    assert_eq!(failed_over.header("cf-aig-provider"), "custom-backup");
    assert_eq!(failed_over.header("cf-aig-step"), "1");
    assert_eq!(
        models_seen(&primary),
        ["gpt-4o-mini"],
        "the small model has no retries"
    );

    // A model slower than its element's timeout (300 ms) is cut and the next one answers.
    primary.set_behaviour(Behaviour {
        header_delay: Duration::from_secs(3),
        ..Behaviour::default()
    });
    let started = Instant::now();
    let timed_out = ask(&node, json!({"user": "b"}), chat("dynamic/support")).await;
    assert_eq!(timed_out.status, 200, "{}", timed_out.body);
    assert_eq!(timed_out.header("cf-aig-provider"), "custom-backup");
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );

    // Every model failing: the last provider's own error, not a gateway error. `big` has one retry.
    primary.set_behaviour(Behaviour {
        status: Some(503),
        ..Behaviour::default()
    });
    backup.reset();
    backup.set_behaviour(Behaviour {
        status: Some(500),
        ..Behaviour::default()
    });
    let all_failed = ask(&node, json!({"user": "c"}), chat("dynamic/support")).await;
    assert_eq!(all_failed.status, 500, "{}", all_failed.body);
    assert!(
        all_failed.json()["error"]["message"].is_string(),
        "{}",
        all_failed.body
    );
    assert!(
        all_failed.json().get("internalCode").is_none(),
        "{}",
        all_failed.body
    );
    assert_eq!(models_seen(&backup), ["big", "big"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_element_moves_a_user_to_its_fallback_past_the_limit() {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    node.add_gateway(routed_gateway(&backup));
    let providers = |user: &'static str| {
        let node = &node;
        async move {
            ask(node, json!({"user": user}), chat("dynamic/support"))
                .await
                .header("cf-aig-provider")
                .to_owned()
        }
    };
    assert_eq!(providers("dana").await, "openai");
    assert_eq!(providers("dana").await, "openai");
    assert_eq!(
        providers("dana").await,
        "custom-backup",
        "the third request in the minute"
    );
    assert_eq!(
        providers("eli").await,
        "openai",
        "another user has a counter of its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_routes_without_a_model_are_refused_in_openai_shape() {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    let mut doc = routed_gateway(&backup);
    doc.routes.push(RouteEntry {
        id: "route-2".into(),
        name: "closed".into(),
        version_id: "version-1".into(),
        elements: json!([
            {"id": "s", "type": "start", "outputs": {"next": to("c")}},
            {"id": "c", "type": "conditional", "properties": {"conditions": {"headers.x-open": "yes"}},
             "outputs": {"true": to("m"), "false": to("e")}},
            {"id": "m", "type": "model", "properties": {"provider": "openai", "model": "x"}, "outputs": {"success": to("e")}},
            {"id": "e", "type": "end", "outputs": {}},
        ]),
    });
    node.add_gateway(doc);

    let unknown = ask(&node, json!({}), chat("dynamic/nope")).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()["error"]["code"], "model_not_found");
    let closed = ask(&node, json!({}), chat("dynamic/closed")).await;
    assert_eq!(closed.status, 400, "{}", closed.body);
    assert!(
        closed.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s>c>e"),
        "{}",
        closed.body
    );
    // A malformed body is still the OpenAI 400 it always was.
    let resp = node
        .http
        .post(node.url(COMPAT))
        .body(r#"{"model":"dynamic/support","messages":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(primary.requests().is_empty() && backup.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_rate_element_is_charged_the_answers_cost_and_then_falls_back() {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    let mut doc = routed_gateway(&backup);
    // No logs, no spend limits: the route alone needs the answer's cost.
    doc.settings.collect_logs = false;
    doc.routes[0].elements = json!([
        {"id": "start", "type": "start", "outputs": {"next": to("budget")}},
        {"id": "budget", "type": "rate", "properties": {"key": "metadata.user", "limit": 0.000_000_001, "limitType": "cost", "window": 60},
         "outputs": {"success": to("small"), "fallback": to("big")}},
        {"id": "small", "type": "model", "properties": {"provider": "openai", "model": "gpt-4o-mini"},
         "outputs": {"success": to("end")}},
        {"id": "big", "type": "model", "properties": {"provider": "custom-backup", "model": "big"},
         "outputs": {"success": to("end")}},
        {"id": "end", "type": "end", "outputs": {}},
    ]);
    node.add_gateway(doc);
    let first = ask(&node, json!({"user": "u"}), chat("dynamic/support")).await;
    assert_eq!(first.header("cf-aig-provider"), "openai", "{}", first.body);
    // The charge follows the answer (pingora's logging phase); the next request sees it.
    let started = Instant::now();
    loop {
        let next = ask(&node, json!({"user": "u"}), chat("dynamic/support")).await;
        if next.header("cf-aig-provider") == "custom-backup" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the cost was never charged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another user's window is its own.
    let other = ask(&node, json!({"user": "v"}), chat("dynamic/support")).await;
    assert_eq!(other.header("cf-aig-provider"), "openai");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_target_that_cannot_serve_the_request_leaves_the_last_answer_to_the_client() {
    let primary = MockProvider::start();
    let backup = MockProvider::start();
    let node = Node::start(&primary, |_| {});
    let mut doc = routed_gateway(&backup);
    // Embeddings: the fallback (Anthropic) has none, so its step is never built, and the 503 stays the answer.
    doc.routes[0].elements = json!([
        {"id": "start", "type": "start", "outputs": {"next": to("embed")}},
        {"id": "embed", "type": "model", "properties": {"provider": "openai", "model": "text-embedding-3-small"},
         "outputs": {"success": to("end"), "fallback": to("claude")}},
        {"id": "claude", "type": "model", "properties": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
         "outputs": {"success": to("end")}},
        {"id": "end", "type": "end", "outputs": {}},
    ]);
    node.add_gateway(doc);
    primary.set_behaviour(Behaviour {
        status: Some(503),
        ..Behaviour::default()
    });
    let resp = node
        .http
        .post(node.url("/v1/acme/gw/compat/embeddings"))
        .header("authorization", "Bearer sk")
        .body(json!({"model": "dynamic/support", "input": "hi"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body.get("internalCode").is_none(),
        "the provider's own error: {body}"
    );
    assert_eq!(primary.requests().len(), 1);
}
