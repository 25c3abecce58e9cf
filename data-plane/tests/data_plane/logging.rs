//! Log records built by the request path and handed to the log sink.

use std::time::Duration;

use gatehouse_data_plane::DataPlane;
use gatehouse_data_plane::logs::LogSink;
use gatehouse_mock_providers::{DEFAULT_CHUNKS, MockProvider, control, usage_for};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::log::LogRecord;
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

use crate::harness::{RunningDataPlane, test_settings};

fn gateway(id: &str, collect_logs: bool) -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = false;
    settings.collect_logs = collect_logs;
    GatewayConfigDocument {
        schema: 1,
        key: GatewayKey::new("acme", id),
        version: 1,
        internal_id: id.into(),
        is_default: false,
        settings,
        provider_configs: vec![],
        custom_providers: vec![],
        cache_generation: 0,
        access: Default::default(),
        routes: Vec::new(),
    }
}

fn start(mock: &MockProvider) -> (RunningDataPlane, Receiver<LogRecord>) {
    let mut settings = test_settings();
    settings.provider_base_urls = vec![
        ("openai".into(), mock.url("/v1")),
        ("anthropic".into(), mock.base_url()),
    ];
    let (sink, rx) = LogSink::channel(64);
    let dp = DataPlane::bind(settings).unwrap().with_log_sink(sink);
    dp.config_store()
        .apply_gateway(&gateway("logged", true), "hash-logged")
        .unwrap();
    dp.config_store()
        .apply_gateway(&gateway("quiet", false), "hash-quiet")
        .unwrap();
    dp.readiness().set_ready();
    (RunningDataPlane::run(dp), rx)
}

async fn next(rx: &mut Receiver<LogRecord>) -> LogRecord {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a record")
        .expect("open channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_becomes_a_record_with_its_ids_metadata_and_bodies() {
    let mock = MockProvider::start();
    let (node, mut rx) = start(&mock);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
        .to_string();
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/logged/openai/chat/completions",
            node.addr
        ))
        .header("authorization", "Bearer sk")
        .header("content-type", "application/json")
        .header("user-agent", "test-agent/1")
        .header("cf-aig-event-id", "evt-42")
        .header(
            "cf-aig-metadata",
            r#"{"team":"ml","n":3,"ok":true,"a":1,"b":2,"dropped":9}"#,
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let log_id = resp.headers()["cf-aig-log-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["cf-aig-request-id"], log_id.as_str());
    assert_eq!(resp.headers()["cf-aig-event-id"], "evt-42");
    let response_body = resp.text().await.unwrap();

    let r = next(&mut rx).await;
    assert_eq!(r.id, log_id);
    assert_eq!(
        (
            r.account_id.as_str(),
            r.gateway_id.as_str(),
            r.provider.as_str()
        ),
        ("acme", "logged", "openai")
    );
    assert_eq!(r.path, "chat/completions");
    assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!((r.status_code, r.success), (200, true));
    assert_eq!(r.event_id, "evt-42");
    assert_eq!(r.user_agent.as_deref(), Some("test-agent/1"));
    assert_eq!(r.request_content_type.as_deref(), Some("application/json"));
    assert!(
        r.response_content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let metadata: Value = serde_json::from_str(r.metadata.as_deref().unwrap()).unwrap();
    assert_eq!(metadata.as_object().unwrap().len(), 5);
    assert_eq!(r.request_body.as_deref(), Some(body.as_str()));
    assert_eq!(r.response_body.as_deref(), Some(response_body.as_str()));
    assert_eq!(r.request_size, body.len() as u64);
    assert_eq!(r.response_size, response_body.len() as u64);
    assert!(r.request_head_complete && r.bodies_stored);
    assert_eq!(r.config_hash.as_deref(), Some("hash-logged"));
    assert!(r.created_at_ms > 1_700_000_000_000);
    // Tokens read from the response as it passed, priced from the table (gpt-4o-mini: $0.15 / $0.60 per million).
    let usage = usage_for(body.len(), DEFAULT_CHUNKS);
    assert_eq!(
        (r.tokens_in, r.tokens_out),
        (Some(usage.input_tokens), Some(usage.output_tokens))
    );
    let expected = (usage.input_tokens as f64 * 0.15 + usage.output_tokens as f64 * 0.6) / 1e6;
    assert!(
        (r.cost.unwrap() - expected).abs() < 1e-12,
        "{:?} vs {expected}",
        r.cost
    );
    assert!(!r.custom_cost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_usage_and_custom_costs_are_recorded() {
    let mock = MockProvider::start();
    let (node, mut rx) = start(&mock);
    let body =
        json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello"}]})
        .to_string();
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/logged/openai/chat/completions",
            node.addr
        ))
        .header("authorization", "Bearer sk")
        .header(control::CHUNKS, "7")
        .header(
            "cf-aig-custom-cost",
            r#"{"per_token_in": 0.001, "per_token_out": 0.002}"#,
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    resp.text().await.unwrap();
    let r = next(&mut rx).await;
    let usage = usage_for(body.len(), 7);
    assert_eq!(
        (r.tokens_in, r.tokens_out),
        (Some(usage.input_tokens), Some(7))
    );
    let expected = usage.input_tokens as f64 * 0.001 + 7.0 * 0.002;
    assert!((r.cost.unwrap() - expected).abs() < 1e-12);
    assert!(r.custom_cost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_flags_errors_and_streams_are_honoured() {
    let mock = MockProvider::start();
    let (node, mut rx) = start(&mock);
    let http = reqwest::Client::new();
    let url = |gw: &str| format!("http://{}/v1/acme/{gw}/openai/chat/completions", node.addr);
    let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#;

    // Metadata only: the row, no payloads.
    let resp = http
        .post(url("logged"))
        .header("authorization", "Bearer sk")
        .header("cf-aig-collect-log-payload", "false")
        .body(chat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r = next(&mut rx).await;
    assert!(!r.bodies_stored && r.request_body.is_none() && r.request_head.is_empty());
    assert_eq!(r.model.as_deref(), Some("gpt-4o"));

    // A gateway with logs off logs nothing unless the request asks, and a request can opt out of a logging gateway.
    http.post(url("quiet"))
        .header("authorization", "Bearer sk")
        .body(chat)
        .send()
        .await
        .unwrap();
    http.post(url("logged"))
        .header("authorization", "Bearer sk")
        .header("cf-aig-collect-log", "false")
        .body(chat)
        .send()
        .await
        .unwrap();
    let asked = http
        .post(url("quiet"))
        .header("authorization", "Bearer sk")
        .header("cf-aig-collect-log", "true")
        .body(chat)
        .send()
        .await
        .unwrap();
    assert!(asked.headers().contains_key("cf-aig-log-id"));
    assert_eq!(
        next(&mut rx).await.gateway_id,
        "quiet",
        "only the request that asked was logged"
    );

    // Provider errors and gateway errors after the gateway is known are logged as failures; an unknown gateway is not.
    let failed = http
        .post(url("logged"))
        .header("authorization", "Bearer sk")
        .header(control::STATUS, "429")
        .body(chat)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 429);
    let r = next(&mut rx).await;
    assert_eq!((r.status_code, r.success), (429, false));
    http.post(format!(
        "http://{}/v1/acme/logged/no-such-provider/x",
        node.addr
    ))
    .body("{}")
    .send()
    .await
    .unwrap();
    let r = next(&mut rx).await;
    assert_eq!(
        (r.status_code, r.success, r.provider.as_str()),
        (400, false, "no-such-provider")
    );
    http.post(url("missing")).body(chat).send().await.unwrap();

    // A stream is logged whole, after its last byte.
    let stream = http
        .post(url("logged"))
        .header("authorization", "Bearer sk")
        .body(r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = next(&mut rx).await;
    assert_eq!(r.response_body.as_deref(), Some(stream.as_str()));
    assert!(
        r.response_content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "the unknown gateway was not logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_translated_compat_request_records_what_served_it_and_its_tokens() {
    let mock = MockProvider::start();
    let (node, mut rx) = start(&mock);
    let http = reqwest::Client::new();
    // A stream without include_usage: the client sees no usage, the record still has it.
    for stream in [false, true] {
        let body = json!({"model": "anthropic/claude-sonnet-4-5", "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]});
        let resp = http
            .post(format!(
                "http://{}/v1/acme/logged/compat/chat/completions",
                node.addr
            ))
            .header("authorization", "Bearer sk-ant")
            .header("x-mock-scenario", "cached")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let record = next(&mut rx).await;
        assert_eq!(record.provider, "anthropic", "{stream}");
        assert_eq!(record.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(record.request_type.as_deref(), Some("compat"));
        assert_eq!(record.path, "v1/messages");
        assert!(
            record.tokens_in.unwrap() > 0 && record.tokens_out.unwrap() > 0,
            "{record:?}"
        );
        assert_eq!(record.cached_tokens_in, Some(8));
        assert!(
            record.cost.is_some(),
            "priced as claude-sonnet-4-5: {record:?}"
        );
        if stream {
            assert!(
                !text.contains("\"usage\""),
                "the client did not ask for usage: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_request_records_its_route_and_each_target_tried() {
    let mock = MockProvider::start();
    let mut settings = test_settings();
    settings.provider_base_urls = vec![
        ("openai".into(), mock.url("/v1")),
        ("anthropic".into(), mock.base_url()),
    ];
    let (sink, mut rx) = LogSink::channel(64);
    let dp = DataPlane::bind(settings).unwrap().with_log_sink(sink);
    let mut doc = gateway("logged", true);
    let to = |id: &str| json!({"elementId": id});
    doc.routes = vec![gatehouse_shared::routes::RouteEntry {
        id: "route-1".into(),
        name: "support".into(),
        version_id: "version-7".into(),
        elements: json!([
            {"id": "start", "type": "start", "outputs": {"next": to("first")}},
            {"id": "first", "type": "model", "properties": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
             "outputs": {"success": to("end"), "fallback": to("second")}},
            {"id": "second", "type": "model", "properties": {"provider": "openai", "model": "gpt-4o-mini"},
             "outputs": {"success": to("end")}},
            {"id": "end", "type": "end", "outputs": {}},
        ]),
    }];
    dp.config_store()
        .apply_gateway(&doc, "hash-routed")
        .unwrap();
    dp.readiness().set_ready();
    let node = RunningDataPlane::run(dp);
    // The first model fails (a 500 from the mock), the second answers: two records, one per target.
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/logged/compat/chat/completions",
            node.addr
        ))
        .header("authorization", "Bearer sk")
        .header(control::FAIL_FIRST, "1")
        .header(control::FAIL_STATUS, "500")
        .header(control::FAIL_KEY, "routed-log")
        .body(
            json!({"model": "dynamic/support", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cf-aig-step"], "1");
    let failed = next(&mut rx).await;
    let answered = next(&mut rx).await;
    assert_eq!(
        (failed.provider.as_str(), failed.status_code),
        ("anthropic", 500)
    );
    assert_eq!(answered.provider, "openai");
    assert_eq!(answered.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(answered.step, 1);
    for r in [&failed, &answered] {
        assert_eq!(r.route_id.as_deref(), Some("route-1"));
        assert_eq!(r.route_version_id.as_deref(), Some("version-7"));
        assert_eq!(r.route_path.as_deref(), Some("start>first>second"));
        assert_eq!(r.event_id, answered.event_id, "one request, one event");
    }
}
