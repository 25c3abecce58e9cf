use gatehouse_bus::limits::{LimitStore, MemoryLimits};
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::routes::RouteEntry;
use serde_json::{Value, json};

use super::*;
use crate::snapshot::routes::CompiledRoutes;

fn to(id: &str) -> Value {
    json!({"elementId": id})
}

fn gateway(elements: Value) -> CompiledGateway {
    CompiledGateway {
        key: GatewayKey::new("acct", "gw"),
        version: 1,
        hash: String::new(),
        internal_id: String::new(),
        is_default: false,
        settings: gatehouse_shared::gateway::GatewaySettings::for_default_gateway(),
        provider_keys: Default::default(),
        custom_providers: Default::default(),
        cache_generation: 0,
        spend_limits: None,
        access: None,
        identity: None,
        routes: CompiledRoutes::compile(
            &GatewayKey::new("acct", "gw"),
            &[RouteEntry {
                id: "r1".into(),
                name: "support".into(),
                version_id: "v1".into(),
                elements,
            }],
            &gatehouse_shared::gateway::GatewaySettings::for_default_gateway(),
            &crate::health::HealthTable::default(),
        ),
        otel: None,
        metric_labels: crate::metrics::GatewayLabels::new("acct", "gw"),
    }
}

fn header(pairs: &[(&str, &str)]) -> RequestHeader {
    let mut h = RequestHeader::build("POST", b"/v1/acct/gw/compat/chat/completions", None).unwrap();
    for (k, v) in pairs {
        h.insert_header(k.to_string(), *v).unwrap();
    }
    h
}

async fn walk(
    limits: &dyn LimitStore,
    g: &CompiledGateway,
    h: &RequestHeader,
    body: &str,
    id: &str,
) -> Result<RoutePlan, AiGatewayError> {
    plan(limits, g, "support", (h, body.as_bytes()), id).await
}

fn targets(p: &RoutePlan) -> Vec<&str> {
    p.models.iter().map(|m| &*m.target).collect()
}

/// start → cond(metadata.plan = free) → true: cheap model (falls back to big) | false: big model → end.
fn conditional_graph() -> Value {
    json!([
        {"id": "s", "type": "start", "outputs": {"next": to("c")}},
        {"id": "c", "type": "conditional", "properties": {"conditions": {"$or": [{"metadata.plan": "free"}, {"body.max_tokens": {"$lt": 10}}]}},
         "outputs": {"true": to("cheap"), "false": to("big")}},
        {"id": "cheap", "type": "model", "properties": {"provider": "openai", "model": "gpt-4o-mini", "retries": 2, "timeout": 1500},
         "outputs": {"success": to("e"), "fallback": to("big")}},
        {"id": "big", "type": "model", "properties": {"provider": "anthropic", "model": "claude-sonnet-4-5", "retries": 0, "timeout": 0},
         "outputs": {"success": to("e")}},
        {"id": "e", "type": "end", "outputs": {}},
    ])
}

#[tokio::test]
async fn conditions_pick_the_branch_and_models_chain_their_fallbacks() {
    let limits = MemoryLimits::new();
    let g = gateway(conditional_graph());
    let free = header(&[("cf-aig-metadata", r#"{"plan":"free"}"#)]);
    let p = walk(&limits, &g, &free, r#"{"model":"dynamic/support"}"#, "r")
        .await
        .unwrap();
    assert_eq!(
        targets(&p),
        ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]
    );
    assert_eq!(p.models[0].retries, 2);
    assert_eq!(p.models[0].timeout, Some(Duration::from_millis(1500)));
    assert_eq!(p.models[1].timeout, None);
    assert_eq!(p.trace(), "s>c>cheap>big");

    let paid = header(&[("cf-aig-metadata", r#"{"plan":"pro"}"#)]);
    let p = walk(&limits, &g, &paid, r#"{"model":"dynamic/support"}"#, "r")
        .await
        .unwrap();
    assert_eq!(targets(&p), ["anthropic/claude-sonnet-4-5"]);
    // The body decides when the metadata does not.
    let p = walk(
        &limits,
        &g,
        &paid,
        r#"{"model":"dynamic/support","max_tokens":5}"#,
        "r",
    )
    .await
    .unwrap();
    assert_eq!(targets(&p)[0], "openai/gpt-4o-mini");
}

#[tokio::test]
async fn unknown_routes_are_openai_404s() {
    let limits = MemoryLimits::new();
    let g = gateway(conditional_graph());
    let h = header(&[]);
    let e = plan(&limits, &g, "nope", (&h, b"{}"), "r")
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&e.body()).unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn percentages_split_by_request_id() {
    let limits = MemoryLimits::new();
    let g = gateway(json!([
        {"id": "s", "type": "start", "outputs": {"next": to("p")}},
        {"id": "p", "type": "percentage", "outputs": {"20%": to("a"), "else": to("b")}},
        {"id": "a", "type": "model", "properties": {"provider": "openai", "model": "a"}, "outputs": {"success": to("e")}},
        {"id": "b", "type": "model", "properties": {"provider": "openai", "model": "b"}, "outputs": {"success": to("e")}},
        {"id": "e", "type": "end", "outputs": {}},
    ]));
    let h = header(&[]);
    let mut a = 0;
    for i in 0..10_000 {
        let id = ulid::Ulid::generate().to_string();
        let p = walk(&limits, &g, &h, "{}", &id).await.unwrap();
        if targets(&p) == ["openai/a"] {
            a += 1;
        }
        if i < 50 {
            let again = walk(&limits, &g, &h, "{}", &id).await.unwrap();
            assert_eq!(
                targets(&again),
                targets(&p),
                "the same request id takes the same branch"
            );
        }
    }
    assert!(
        (1_700..=2_300).contains(&a),
        "{a} of 10,000 took the 20% branch"
    );
}

#[tokio::test]
async fn rate_elements_count_per_key_and_fall_back_beyond_the_limit() {
    let limits = MemoryLimits::new();
    let g = gateway(json!([
        {"id": "s", "type": "start", "outputs": {"next": to("r")}},
        {"id": "r", "type": "rate", "properties": {"key": "metadata.user", "limit": 2, "limitType": "count", "window": 60},
         "outputs": {"success": to("a"), "fallback": to("b")}},
        {"id": "a", "type": "model", "properties": {"provider": "openai", "model": "a"}, "outputs": {"success": to("e")}},
        {"id": "b", "type": "model", "properties": {"provider": "openai", "model": "b"}, "outputs": {"success": to("e")}},
        {"id": "e", "type": "end", "outputs": {}},
    ]));
    let alice = header(&[("cf-aig-metadata", r#"{"user":"alice"}"#)]);
    let bob = header(&[("cf-aig-metadata", r#"{"user":"bob"}"#)]);
    for _ in 0..2 {
        assert_eq!(
            targets(&walk(&limits, &g, &alice, "{}", "r").await.unwrap()),
            ["openai/a"]
        );
    }
    assert_eq!(
        targets(&walk(&limits, &g, &alice, "{}", "r").await.unwrap()),
        ["openai/b"]
    );
    assert_eq!(
        targets(&walk(&limits, &g, &bob, "{}", "r").await.unwrap()),
        ["openai/a"]
    );
}

#[tokio::test]
async fn a_rate_without_fallback_refuses_with_429_and_cost_windows_are_kept_for_the_charge() {
    let limits = MemoryLimits::new();
    let g = gateway(json!([
        {"id": "s", "type": "start", "outputs": {"next": to("r")}},
        {"id": "r", "type": "rate", "properties": {"key": "global", "limit": 1, "limitType": "count", "window": 60},
         "outputs": {"success": to("c")}},
        {"id": "c", "type": "rate", "properties": {"key": "headers.x-team", "limit": 0.5, "limitType": "cost", "window": 3600},
         "outputs": {"success": to("a")}},
        {"id": "a", "type": "model", "properties": {"provider": "openai", "model": "a"}, "outputs": {"success": to("e")}},
        {"id": "e", "type": "end", "outputs": {}},
    ]));
    let h = header(&[("x-team", "red")]);
    let p = walk(&limits, &g, &h, "{}", "r").await.unwrap();
    assert_eq!(p.cost_windows.len(), 1);
    assert_eq!(p.cost_windows[0].key, "route:acct:gw:r1:c:red");
    let e = walk(&limits, &g, &h, "{}", "r").await.unwrap_err();
    assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(e.retry_after_secs.is_some());
    assert!(e.message.contains("element 'r'"), "{}", e.message);
    // Spent past the cost limit: refused too (the count limit aside, with a fresh store).
    let limits = MemoryLimits::new();
    limits
        .record_spend(&p.cost_windows, 600_000_000)
        .await
        .unwrap();
    let e = walk(&limits, &g, &h, "{}", "r").await.unwrap_err();
    assert!(e.message.contains("element 'c'"), "{}", e.message);
}

#[tokio::test]
async fn a_walk_that_ends_without_a_model_says_where_it_went() {
    let limits = MemoryLimits::new();
    let g = gateway(json!([
        {"id": "s", "type": "start", "outputs": {"next": to("c")}},
        {"id": "c", "type": "conditional", "properties": {"conditions": {"headers.x-ok": "yes"}},
         "outputs": {"true": to("a"), "false": to("e")}},
        {"id": "a", "type": "model", "properties": {"provider": "openai", "model": "a"}, "outputs": {"success": to("e")}},
        {"id": "e", "type": "end", "outputs": {}},
    ]));
    let e = walk(&limits, &g, &header(&[]), "{}", "r")
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert!(e.message.contains("s>c>e"), "{}", e.message);
}

#[test]
fn only_the_body_keys_a_route_reads_are_parsed() {
    let keys = vec!["max_tokens".to_owned(), "stream".to_owned()];
    let body = br#"{"model":"dynamic/x","messages":[{"role":"user","content":"hi \"there\""}],"max_tokens":5,"stre\u0061m":true}"#;
    assert_eq!(
        super::pick_top_level(body, &keys),
        json!({"max_tokens": 5, "stream": true})
    );
    assert_eq!(super::pick_top_level(b"[1]", &keys), Value::Null);
    assert_eq!(super::pick_top_level(b"{not json", &keys), Value::Null);
    assert_eq!(super::pick_top_level(body, &[]), Value::Null);
}
