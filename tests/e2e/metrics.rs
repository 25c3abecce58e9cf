//! `GET /metrics` on both listeners of the real binary: strict OpenMetrics on each, the data plane's request
//! counter moved by the requests sent, and every metric the Grafana dashboard in `deploy/grafana/` plots exists.

use std::collections::BTreeSet;

use gatehouse_mock_providers::MockProvider;
use serde_json::json;

use crate::support::{Gatehouse, as_strs, mint_token, port_zero_flags};

/// Metrics only a split-mode node exports (its log shipper's).
const SPLIT_MODE_ONLY: &[&str] = &["gatehouse_log_records_shipped"];

async fn families(url: &str) -> BTreeSet<String> {
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let text = resp.text().await.unwrap();
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("{url}: {e:?}\n{text}"));
    let mut names: BTreeSet<String> = parsed.families.keys().cloned().collect();
    // Families without samples yet (no retry has happened) are declared all the same.
    names.extend(
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned),
    );
    names
}

/// The metric families a PromQL expression names (`gatehouse_…`, without `_total`, `_bucket`, `_sum`, `_count`).
fn named_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("gatehouse_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.push(family.to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn both_listeners_serve_metrics_and_the_dashboard_plots_only_what_exists() {
    let mock = MockProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let mut args = port_zero_flags(dir.path());
    args.push("--provider-base-url".into());
    args.push(format!("openai={}", mock.url("/v1")));
    let gh = Gatehouse::start(&as_strs(&args), &[]);
    let token = mint_token(dir.path(), "acme", &["ai-gateway:edit"]);
    let http = reqwest::Client::new();
    let created = http
        .post(gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways"))
        .bearer_auth(&token)
        .json(
            &json!({"id": "metered", "cache_invalidate_on_update": true, "cache_ttl": 0,
            "collect_logs": true, "rate_limiting_interval": 0, "rate_limiting_limit": 0}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    let url = gh.inference_url("/v1/acme/metered/openai/chat/completions");
    let mut answered = 0;
    for _ in 0..50 {
        let resp = http
            .post(&url)
            .header("authorization", "Bearer sk")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            answered += 1;
            if answered == 3 {
                break;
            }
        } else {
            // The node serves the gateway once its document arrives.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    assert_eq!(answered, 3);

    // A retry, a fallback and a refusal, so their series exist (a family appears with its first sample).
    let step = |failures: &str, config: serde_json::Value| {
        json!({"provider": "openai", "endpoint": "chat/completions",
            "headers": {"authorization": "Bearer sk", "x-mock-fail-first": failures,
                "x-mock-fail-key": format!("metrics-{failures}-{config}")},
            "query": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            "config": config})
    };
    let universal = http
        .post(gh.inference_url("/v1/acme/metered"))
        .json(&json!([
            step("1", json!({"maxAttempts": 2, "retryDelay": 10})),
            step("0", json!({}))
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(universal.headers()["cf-aig-step"], "0", "retried");
    let universal = http
        .post(gh.inference_url("/v1/acme/metered"))
        .json(&json!([
            step("5", json!({})),
            step("0", json!({"maxAttempts": 1}))
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(universal.headers()["cf-aig-step"], "1", "fell back");
    let limited = http
        .put(gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways/metered"))
        .bearer_auth(&token)
        .json(
            &json!({"cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
            "rate_limiting_interval": 60, "rate_limiting_limit": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 200);
    let mut refused = false;
    for _ in 0..50 {
        let resp = http
            .post(&url)
            .header("authorization", "Bearer sk")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the rate limit never refused");

    let text = reqwest::get(gh.inference_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("gatehouse_requests_total{")
                && l.contains(r#"gateway="metered""#)
                && l.contains(r#"status="2xx""#)
        })
        .unwrap_or_else(|| panic!("no request series:\n{text}"));
    assert!(line.contains(r#"provider="openai""#), "{line}");
    assert!(text.contains(r#"gatehouse_limit_rejections_total{account="acme",gateway="metered",kind="rate_limit"} 1"#), "{text}");

    let mut exported = families(&gh.inference_url("/metrics")).await;
    let management = families(&gh.api_url("/metrics")).await;
    assert!(
        management.contains("gatehouse_api_requests"),
        "{management:?}"
    );
    exported.extend(management);

    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana/gatehouse.json")).unwrap();
    let mut plotted = BTreeSet::new();
    let mut stack = vec![&dashboard];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    plotted.extend(named_in(expr));
                }
                if let Some(query) = map.get("definition").and_then(|e| e.as_str()) {
                    plotted.extend(named_in(query));
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(plotted.len() > 20, "{plotted:?}");
    let missing: Vec<_> = plotted
        .iter()
        .filter(|m| !exported.contains(*m) && !SPLIT_MODE_ONLY.contains(&m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard plots metrics nobody exports: {missing:?}"
    );
}
