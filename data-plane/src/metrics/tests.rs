use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::logs::LogCounterSource;
use crate::readiness::ReadinessHandle;
use crate::snapshot::ConfigStore;

fn metrics() -> Arc<NodeMetrics> {
    NodeMetrics::new(ScrapeSources {
        logs: LogCounterSource::default(),
        config: Arc::new(ConfigStore::new(None)),
        readiness: ReadinessHandle::default(),
        board: None,
        otlp: None,
    })
}

fn done(model: &str, status: u16) -> FinishedRequest<'_> {
    FinishedRequest {
        provider: "openai",
        model: Some(model),
        status,
        duration: Duration::from_millis(30),
        first_byte: Some(Duration::from_millis(10)),
        tokens_in: Some(12),
        tokens_out: Some(30),
        cost: Some(0.5),
    }
}

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn a_finished_request_moves_its_series() {
    let m = metrics();
    let meter = RequestMeter {
        inference: true,
        gateway: Some(GatewayLabels::new("acct", "gw")),
        attempts: 3,
        fallbacks: 1,
        cache: CacheUse::Miss,
        ..Default::default()
    };
    m.observe(&meter, &done("gpt-4o", 200));
    m.observe(&meter, &done("gpt-4o", 502));
    let text = m.render();
    assert!(
        text.contains(r#"gatehouse_requests_total{account="acct",gateway="gw",provider="openai",model="gpt-4o",status="2xx",cache="miss"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"status="5xx",cache="miss"} 1"#), "{text}");
    assert!(text.contains(r#"gatehouse_tokens_total{account="acct",gateway="gw",provider="openai",model="gpt-4o",direction="in"} 24"#), "{text}");
    assert!(text.contains(r#"gatehouse_cost_usd_total{account="acct",gateway="gw",provider="openai",model="gpt-4o"} 1.0"#), "{text}");
    assert!(
        text.contains(
            r#"gatehouse_upstream_attempts_total{account="acct",gateway="gw",provider="openai"} 6"#
        ),
        "{text}"
    );
    // Three attempts, one of them the fallback's first: one retry per request.
    assert!(
        text.contains(r#"gatehouse_upstream_retries_total{account="acct",gateway="gw"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gatehouse_upstream_fallbacks_total{account="acct",gateway="gw"} 2"#),
        "{text}"
    );
    assert!(
        line(&text, r#"gatehouse_request_duration_seconds_count{account="acct",gateway="gw",provider="openai"}"#)
            .is_some_and(|l| l.ends_with(" 2")),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

#[test]
fn refusals_are_counted_by_kind_and_requests_without_a_gateway_have_empty_labels() {
    let m = metrics();
    let meter = RequestMeter {
        inference: true,
        rejection: rejection_kind(crate::error::code::BUDGET_EXCEEDED),
        ..Default::default()
    };
    m.observe(
        &meter,
        &FinishedRequest::bare(429, Duration::from_millis(1)),
    );
    let text = m.render();
    assert!(
        text.contains(r#"gatehouse_limit_rejections_total{account="",gateway="",kind="budget"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"provider="",model="",status="4xx",cache="none"} 1"#),
        "{text}"
    );
    assert_eq!(rejection_kind(crate::error::code::BAD_REQUEST), None);
}

#[test]
fn models_past_the_cap_share_one_series() {
    let m = metrics();
    let meter = RequestMeter {
        inference: true,
        ..Default::default()
    };
    for i in 0..MAX_MODELS + 50 {
        let model = format!("model-{i}");
        m.observe(&meter, &done(&model, 200));
    }
    let text = m.render();
    let series = text
        .lines()
        .filter(|l| l.starts_with("gatehouse_requests_total{"))
        .count();
    assert_eq!(series, MAX_MODELS + 1);
    assert!(
        text.contains(r#"model="other",status="2xx",cache="none"} 50"#),
        "{text}"
    );
}

#[test]
fn gauges_follow_their_guards() {
    let m = metrics();
    let request = m.in_flight();
    let stream = m.stream_opened();
    assert!(m.render().contains("gatehouse_requests_in_flight 1"));
    assert!(m.render().contains("gatehouse_streams_open 1"));
    m.observe(
        &RequestMeter::default(),
        &done("a probe is not counted", 200),
    );
    drop((request, stream));
    let text = m.render();
    assert!(text.contains("gatehouse_requests_in_flight 0"), "{text}");
    assert!(text.contains("gatehouse_streams_open 0"), "{text}");
    assert!(!text.contains("a probe is not counted"), "{text}");
}
