//! OpenTelemetry export per gateway (spec §3.16): one span per request at the gateway's collectors, with the
//! `gen_ai.*` attributes, custom metadata, the caller's trace, and the authorization opened from its sealed form;
//! a dead collector costs dropped or failed spans, never a slower request.

use std::time::{Duration, Instant};

use gatehouse_data_plane::DataPlane;
use gatehouse_mock_providers::MockProvider;
use gatehouse_mock_providers::otlp::{CollectorBehaviour, MockCollector};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::gateway::GatewaySettings;
use serde_json::{Value, json};

use crate::harness::{RunningDataPlane, test_settings};

const KEY: [u8; 32] = [9; 32];

fn gateway(id: &str, collect_logs: bool, otel: Value) -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = false;
    settings.collect_logs = collect_logs;
    settings.otel = Some(otel);
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

fn sealed(value: &str) -> String {
    format!(
        "{}{}",
        gatehouse_shared::otel::SEALED_AUTHORIZATION_PREFIX,
        MasterKey::from_bytes(&KEY).seal(value.as_bytes())
    )
}

fn start(mock: &MockProvider, gateways: &[GatewayConfigDocument]) -> RunningDataPlane {
    let mut settings = test_settings();
    settings.provider_base_urls = vec![("openai".into(), mock.url("/v1"))];
    settings.master_key = Some(MasterKey::from_bytes(&KEY));
    let dp = DataPlane::bind(settings).unwrap();
    for (i, doc) in gateways.iter().enumerate() {
        dp.config_store()
            .apply_gateway(doc, &format!("h{i}"))
            .unwrap();
    }
    dp.readiness().set_ready();
    RunningDataPlane::run(dp)
}

async fn chat(node: &RunningDataPlane, gateway: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/{gateway}/openai/chat/completions",
            node.addr
        ))
        .header("authorization", "Bearer sk")
        .header("content-type", "application/json")
        .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_span_with_its_attributes_trace_and_authorization() {
    let mock = MockProvider::start();
    let json_collector = MockCollector::start();
    let proto_collector = MockCollector::start();
    let otel = json!([
        {"url": json_collector.traces_url(), "headers": {"x-team": "ml"},
         "authorization": sealed("Bearer collector-token")},
        {"url": proto_collector.traces_url(), "headers": {}, "content_type": "protobuf"},
        // Unusable entries are left out; the gateway and its other exporters still work.
        {"url": "ftp://nowhere", "headers": {}},
        {"url": json_collector.traces_url(), "headers": {}, "authorization": "sealed:v1.not-a-sealed-value"},
    ]);
    let node = start(&mock, &[gateway("traced", false, otel)]);

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let metadata = r#"{"team":"search","attempt":2,"gen_ai.usage.cost":"forged"}"#;
    assert_eq!(
        chat(
            &node,
            "traced",
            &[
                ("cf-aig-otel-trace-id", trace),
                ("cf-aig-otel-parent-span-id", parent),
                ("cf-aig-metadata", metadata),
            ],
        )
        .await,
        200
    );
    let w3c_trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{w3c_trace}-b7ad6b7169203331-01");
    assert_eq!(
        chat(&node, "traced", &[("traceparent", &traceparent)]).await,
        200
    );
    assert_eq!(chat(&node, "traced", &[]).await, 200);

    let spans = json_collector
        .wait_for_spans(3, Duration::from_secs(10))
        .await;
    assert_eq!(spans.len(), 3, "one span per request");
    let first = spans
        .iter()
        .find(|s| s.trace_id == trace)
        .expect("the caller's trace");
    assert_eq!(first.parent_span_id.as_deref(), Some(parent));
    let attr = |name: &str| first.attributes.get(name).cloned().unwrap_or(Value::Null);
    assert_eq!(attr("gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(attr("gen_ai.model.provider"), "openai");
    assert!(
        attr("gen_ai.usage.input_tokens")
            .as_i64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        attr("gen_ai.usage.output_tokens")
            .as_i64()
            .is_some_and(|n| n > 0)
    );
    assert!(attr("gen_ai.usage.cost").as_f64().is_some_and(|c| c > 0.0));
    // Prompts and completions travel even though the gateway stores no logs.
    assert!(
        attr("gen_ai.prompt_json")
            .as_str()
            .is_some_and(|p| p.contains("hello"))
    );
    assert!(
        attr("gen_ai.completion_json")
            .as_str()
            .is_some_and(|c| c.contains("choices"))
    );
    assert_eq!(attr("team"), "search");
    assert_eq!(attr("attempt"), 2);
    assert!(
        attr("gen_ai.usage.cost").is_f64(),
        "metadata cannot replace a gen_ai attribute"
    );
    let second = spans
        .iter()
        .find(|s| s.trace_id == w3c_trace)
        .expect("traceparent's trace");
    assert_eq!(second.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    let third = spans
        .iter()
        .find(|s| s.trace_id != trace && s.trace_id != w3c_trace)
        .unwrap();
    assert_eq!(third.trace_id.len(), 32);
    assert_eq!(third.parent_span_id, None);

    let requests = json_collector.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer collector-token"))
    );
    assert!(requests.iter().all(|r| r.header("x-team") == Some("ml")));
    assert!(
        requests
            .iter()
            .all(|r| r.content_type.as_deref() == Some("application/json"))
    );

    let proto = proto_collector
        .wait_for_requests(1, Duration::from_secs(10))
        .await;
    assert!(
        proto
            .iter()
            .all(|r| r.content_type.as_deref() == Some("application/x-protobuf"))
    );
    assert!(proto.iter().all(|r| r.header("authorization").is_none()));

    let metrics = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_otlp_spans_exported_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_hanging_collector_does_not_slow_requests() {
    let mock = MockProvider::start();
    let hanging = MockCollector::start_with(CollectorBehaviour {
        status: 200,
        delay: Duration::from_secs(60),
    });
    // A port nothing listens on.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let node = start(
        &mock,
        &[
            gateway(
                "hanging",
                true,
                json!([{"url": hanging.traces_url(), "headers": {}}]),
            ),
            gateway(
                "dead",
                true,
                json!([{"url": format!("http://{dead}/v1/traces"), "headers": {}}]),
            ),
            gateway("plain", true, json!([])),
        ],
    );
    // Warm the connection to the provider, then compare: the exporters' trouble must not reach the requests.
    assert_eq!(chat(&node, "plain", &[]).await, 200);
    for gateway in ["hanging", "dead", "plain"] {
        let started = Instant::now();
        for _ in 0..30 {
            assert_eq!(chat(&node, gateway, &[]).await, 200);
        }
        let took = started.elapsed();
        // The export timeout is 5 s: one request waiting on a collector would blow this bound many times over.
        assert!(
            took < Duration::from_secs(3),
            "{gateway}: 30 requests took {took:?}"
        );
    }
    // The dead collector's spans are counted as failed (connection refused) once its batch is sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(format!("http://{}/metrics", node.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let failed = metrics
            .lines()
            .find(|l| l.starts_with("gatehouse_otlp_spans_failed_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if failed >= 30.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed spans counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
