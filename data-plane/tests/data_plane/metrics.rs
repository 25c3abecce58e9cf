//! `GET /metrics`, parsed as Prometheus parses it: counters move by exactly the requests sent, histograms count
//! them, tokens and cost add up to what the records say, and label sets stay bounded whatever the metadata.

use std::collections::BTreeMap;

use gatehouse_data_plane::DataPlane;
use gatehouse_data_plane::logs::LogSink;
use gatehouse_mock_providers::{MockProvider, control, usage_for};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::log::LogRecord;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use tokio::sync::mpsc::Receiver;

use crate::harness::{RunningDataPlane, test_settings};

fn gateway(id: &str, collect_logs: bool) -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = false;
    settings.collect_logs = collect_logs;
    GatewayConfigDocument {
        schema: 1,
        key: GatewayKey::new("acme", id),
        version: 3,
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

fn start(mock: &MockProvider, metrics: bool) -> (RunningDataPlane, Receiver<LogRecord>) {
    let mut settings = test_settings();
    settings.provider_base_urls = vec![("openai".into(), mock.url("/v1"))];
    settings.metrics = metrics;
    let (sink, rx) = LogSink::channel(4096);
    let dp = DataPlane::bind(settings).unwrap().with_log_sink(sink);
    dp.config_store()
        .apply_gateway(&gateway("logged", true), "h1")
        .unwrap();
    dp.config_store()
        .apply_gateway(&gateway("quiet", false), "h2")
        .unwrap();
    dp.readiness().set_ready();
    (RunningDataPlane::run(dp), rx)
}

async fn scrape(node: &RunningDataPlane) -> Scrape {
    let resp = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn labels_match(sample: &Sample, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| sample.labels.get(k).unwrap_or("") == *v)
}

/// The sum of every sample of `metric` whose labels include `want`.
fn value(scrape: &Scrape, metric: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels_match(s, want))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => panic!("{metric} is not a number"),
        })
        .sum()
}

/// The number of observations of a histogram (its `+Inf` bucket).
fn observations(scrape: &Scrape, metric: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels_match(s, want))
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            _ => panic!("{metric} is not a histogram"),
        })
        .sum()
}

fn series(scrape: &Scrape, metric: &str) -> usize {
    scrape.samples.iter().filter(|s| s.metric == metric).count()
}

async fn chat(node: &RunningDataPlane, gateway: &str, body: &str, metadata: Option<String>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/{gateway}/openai/chat/completions",
            node.addr
        ))
        .header("authorization", "Bearer sk")
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(metadata) = metadata {
        request = request.header("cf-aig-metadata", metadata);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_move_by_exactly_the_requests_sent() {
    let mock = MockProvider::start();
    let (node, _records) = start(&mock, true);
    let before = scrape(&node).await;
    assert_eq!(value(&before, "gatehouse_requests_total", &[]), 0.0);

    let plain = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
        .to_string();
    let streamed =
        json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello"}]})
        .to_string();
    for _ in 0..5 {
        assert_eq!(chat(&node, "logged", &plain, None).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(chat(&node, "logged", &streamed, None).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(chat(&node, "quiet", &plain, None).await, 200);
    }
    // A provider error (the mock answers 500 on request) and an unknown gateway.
    let failing = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/quiet/openai/chat/completions",
            node.addr
        ))
        .header("authorization", "Bearer sk")
        .header(control::STATUS, "500")
        .body(plain.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(failing.status(), 500);
    failing.bytes().await.unwrap();
    let unknown = chat(&node, "nope", &plain, None).await;
    assert!((400..500).contains(&unknown), "{unknown}");

    let after = scrape(&node).await;
    let logged = [
        ("account", "acme"),
        ("gateway", "logged"),
        ("provider", "openai"),
    ];
    let quiet = [
        ("account", "acme"),
        ("gateway", "quiet"),
        ("provider", "openai"),
    ];
    let ok_logged = [
        ("account", "acme"),
        ("gateway", "logged"),
        ("provider", "openai"),
        ("model", "gpt-4o-mini"),
        ("status", "2xx"),
        ("cache", "none"),
    ];
    assert_eq!(value(&after, "gatehouse_requests_total", &ok_logged), 7.0);
    assert_eq!(
        value(
            &after,
            "gatehouse_requests_total",
            &[("gateway", "quiet"), ("status", "2xx")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "gatehouse_requests_total",
            &[("gateway", "quiet"), ("status", "5xx")]
        ),
        1.0
    );
    // An unknown gateway's request has no gateway labels (a client cannot invent series).
    assert_eq!(
        value(
            &after,
            "gatehouse_requests_total",
            &[("account", ""), ("gateway", ""), ("status", "4xx")]
        ),
        1.0
    );
    assert_eq!(value(&after, "gatehouse_requests_total", &[]), 12.0);
    assert_eq!(
        observations(&after, "gatehouse_request_duration_seconds", &logged),
        7.0
    );
    assert_eq!(
        observations(&after, "gatehouse_request_duration_seconds", &quiet),
        4.0
    );
    assert_eq!(
        observations(&after, "gatehouse_time_to_first_token_seconds", &logged),
        7.0
    );
    assert_eq!(
        value(&after, "gatehouse_upstream_attempts_total", &logged),
        7.0
    );

    // Tokens: the mock's usage for each body, where the gateway reads usage (it logs, or a limit counts tokens);
    // an unlogged gateway without such limits counts requests and latency only.
    let plain_usage = usage_for(plain.len(), 5);
    let streamed_usage = usage_for(streamed.len(), 5);
    let tokens_in = 5 * plain_usage.input_tokens + 2 * streamed_usage.input_tokens;
    let tokens_out = 5 * plain_usage.output_tokens + 2 * streamed_usage.output_tokens;
    let mut with = logged.to_vec();
    with.push(("direction", "in"));
    assert_eq!(
        value(&after, "gatehouse_tokens_total", &with),
        tokens_in as f64
    );
    with.pop();
    with.push(("direction", "out"));
    assert_eq!(
        value(&after, "gatehouse_tokens_total", &with),
        tokens_out as f64
    );
    assert_eq!(value(&after, "gatehouse_tokens_total", &quiet), 0.0);
    assert_eq!(
        value(
            &after,
            "gatehouse_requests_total",
            &[("gateway", "quiet"), ("provider", "openai")]
        ),
        4.0
    );
    assert!(value(&after, "gatehouse_cost_usd_total", &logged) > 0.0);

    // Logs: the logged gateway's seven records went to the channel; nothing was dropped.
    assert_eq!(
        value(&after, "gatehouse_log_records_queued_total", &[]),
        7.0
    );
    assert_eq!(
        value(&after, "gatehouse_log_records_dropped_total", &[]),
        0.0
    );
    assert_eq!(value(&after, "gatehouse_config_gateways", &[]), 2.0);
    assert_eq!(value(&after, "gatehouse_config_version", &[]), 3.0);
    assert_eq!(value(&after, "gatehouse_ready", &[]), 1.0);
    // The scrape itself is the only request in flight; no stream is open.
    assert_eq!(value(&after, "gatehouse_requests_in_flight", &[]), 1.0);
    assert_eq!(value(&after, "gatehouse_streams_open", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_sets_stay_bounded_after_a_thousand_requests_with_distinct_metadata() {
    let mock = MockProvider::start();
    let (node, _records) = start(&mock, true);
    let plain = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    chat(&node, "logged", &plain, None).await;
    let first = scrape(&node).await;
    let mut counts = BTreeMap::new();
    for metric in [
        "gatehouse_requests_total",
        "gatehouse_tokens_total",
        "gatehouse_cost_usd_total",
        "gatehouse_request_duration_seconds",
    ] {
        counts.insert(metric, series(&first, metric));
    }
    for i in 0..1_000 {
        let metadata = json!({"user": format!("user-{i}"), "request": i}).to_string();
        assert_eq!(chat(&node, "logged", &plain, Some(metadata)).await, 200);
    }
    let after = scrape(&node).await;
    for (metric, count) in counts {
        assert_eq!(series(&after, metric), count, "{metric} grew new series");
    }
    assert_eq!(value(&after, "gatehouse_requests_total", &[]), 1_001.0);
    let text = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("user-"), "metadata leaked into labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_switched_off_are_not_served() {
    let mock = MockProvider::start();
    let (node, _records) = start(&mock, false);
    let resp = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
