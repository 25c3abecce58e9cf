//! `GET /metrics` on the management listener, parsed as Prometheus parses it; and `GET /readyz`.

use std::time::Duration;

use gatehouse_bus::ConfigBus;
use gatehouse_shared::node::NodeStatus;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

use crate::support::{TestApp, minimal_gateway};

type Scrape = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// `/metrics`, through a strict OpenMetrics parser (a malformed exposition fails here).
async fn scrape(app: &TestApp) -> Scrape {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

/// The sum over the samples of family `family` whose labels include `want`: counter and gauge values, a
/// histogram's observation count.
fn value(scrape: &Scrape, family: &str, want: &[(&str, &str)]) -> f64 {
    let Some(family) = scrape.families.get(family) else {
        return 0.0;
    };
    family
        .iter_samples()
        .filter(|s| {
            let labels = s.get_labelset().unwrap();
            want.iter()
                .all(|(k, v)| labels.get_label_value(k).unwrap_or("") == *v)
        })
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(g) | OpenMetricsValue::Unknown(g) => g.as_f64(),
            OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
            other => panic!("unexpected {other:?}"),
        })
        .sum()
}

/// A histogram's cumulative count at bucket `le`.
fn bucket(scrape: &Scrape, family: &str, le: f64) -> Option<f64> {
    let sample = scrape.families.get(family)?.iter_samples().next()?;
    match &sample.value {
        OpenMetricsValue::Histogram(h) => h
            .buckets
            .iter()
            .find(|b| b.upper_bound == le)
            .map(|b| b.count.as_f64()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_counted_by_operation_and_status() {
    let app = TestApp::sqlite().await;
    let list = app.gw_url("acme", "/gateways");
    for _ in 0..3 {
        assert_eq!(app.get(&list).await.0, 200);
    }
    let (status, _) = app.post(&list, &minimal_gateway("prod")).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get(&app.gw_url("acme", "/gateways/missing")).await.0,
        404
    );
    // A path no route matches is one series however it is spelt.
    for path in ["/nothing/here", "/nor/here/either"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }

    let after = scrape(&app).await;
    let gateways = "/client/v4/accounts/{account_id}/ai-gateway/gateways";
    let requests = "gatehouse_api_requests";
    assert_eq!(
        value(
            &after,
            requests,
            &[
                ("method", "GET"),
                ("operation", gateways),
                ("status", "200")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            requests,
            &[
                ("method", "POST"),
                ("operation", gateways),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            requests,
            &[
                (
                    "operation",
                    "/client/v4/accounts/{account_id}/ai-gateway/gateways/{id}"
                ),
                ("status", "404")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            requests,
            &[("operation", "unmatched"), ("status", "404")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "gatehouse_api_request_duration_seconds",
            &[("operation", gateways)]
        ),
        4.0
    );
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("nothing"), "a path became a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_log_ingest_are_shown() {
    let app = TestApp::sqlite().await;
    let ttl = Duration::from_secs(30);
    let ready = NodeStatus {
        node_id: "node-a".into(),
        ready: true,
        ..Default::default()
    };
    let starting = NodeStatus {
        node_id: "node-b".into(),
        ready: false,
        ..Default::default()
    };
    app.bus.report_node_status(&ready, ttl).await.unwrap();
    app.bus.report_node_status(&starting, ttl).await.unwrap();
    let record: gatehouse_shared::log::LogRecord = serde_json::from_value(serde_json::json!({
        "id": "r1", "account_id": "acme", "gateway_id": "prod",
        "created_at_ms": gatehouse_control_plane::store::now_ms() - 1_500,
        "provider": "openai", "path": "chat/completions", "status_code": 200, "success": true,
        "duration_ms": 5, "event_id": "e", "request_head": "", "request_head_complete": true,
        "request_size": 0, "response_head": "", "response_head_complete": true, "response_size": 0}))
    .unwrap();
    app.log_ingest.observe_batch(&[record.clone(), record]);

    let after = scrape(&app).await;
    assert_eq!(value(&after, "gatehouse_bus_readable", &[]), 1.0);
    assert_eq!(value(&after, "gatehouse_nodes", &[]), 2.0);
    assert_eq!(value(&after, "gatehouse_nodes_ready", &[]), 1.0);
    assert!(value(&after, "gatehouse_nodes_converged", &[]) <= 1.0);
    assert_eq!(value(&after, "gatehouse_log_ingest_batch_size", &[]), 1.0);
    assert_eq!(value(&after, "gatehouse_log_ingest_lag_seconds", &[]), 2.0);
    // Both records were 1.5 s old: none within 1 s, both within 2.5 s.
    assert_eq!(
        bucket(&after, "gatehouse_log_ingest_lag_seconds", 1.0),
        Some(0.0)
    );
    assert_eq!(
        bucket(&after, "gatehouse_log_ingest_lag_seconds", 2.5),
        Some(2.0)
    );
    assert_eq!(value(&after, "gatehouse_log_ingest_stored", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    let app = TestApp::sqlite().await;
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}
