use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_mock_providers::otlp::{CollectorBehaviour, MockCollector};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use pingora::services::background::BackgroundService;
use prost::Message;
use serde_json::json;

use super::queue::OtlpCounters;
use super::*;

fn known_span() -> ExportSpan {
    ExportSpan {
        trace_id: *b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10",
        span_id: *b"\x00\x11\x22\x33\x44\x55\x66\x77",
        parent_span_id: Some(*b"\xaa\xbb\xcc\xdd\xee\xff\x00\x01"),
        name: "chat gpt-4o-mini".to_owned(),
        start_unix_nanos: 1_700_000_000_123_456_789,
        end_unix_nanos: 1_700_000_001_000_000_000,
        error: true,
        status_message: Some("upstream answered 500".to_owned()),
        attributes: vec![
            (
                "gen_ai.request.model".into(),
                AttrValue::Str("gpt-4o-mini".to_owned()),
            ),
            ("gen_ai.usage.input_tokens".into(), AttrValue::Int(12)),
            ("negative".into(), AttrValue::Int(-3)),
            ("gen_ai.usage.cost".into(), AttrValue::Double(0.25)),
            ("zero".into(), AttrValue::Double(0.0)),
            ("cached".into(), AttrValue::Bool(false)),
            ("empty".into(), AttrValue::Str(String::new())),
        ],
    }
}

fn plain_span(n: u8) -> ExportSpan {
    ExportSpan {
        trace_id: [n; 16],
        span_id: [n; 8],
        parent_span_id: None,
        name: format!("span {n}"),
        start_unix_nanos: 1,
        end_unix_nanos: 2,
        error: false,
        status_message: None,
        attributes: vec![("n".into(), AttrValue::Int(i64::from(n)))],
    }
}

fn target(url: &str, encoding: OtlpEncoding) -> Arc<OtlpTarget> {
    Arc::new(OtlpTarget::new(url, &[], None, encoding).unwrap())
}

fn fast_settings() -> ExportSettings {
    ExportSettings {
        batch_interval: Duration::from_millis(50),
        export_timeout: Duration::from_millis(500),
        ..ExportSettings::default()
    }
}

/// Starts `exporter` on the test's runtime; the returned sender stops it.
fn run(
    exporter: OtlpExporter,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, watch) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { exporter.start(watch).await });
    (stop, task)
}

async fn wait_until(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !what() {
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_known_span_encodes_to_the_expected_otlp_json_document() {
    let body = json::encode(&[known_span(), plain_span(7)]);
    let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let expected = json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "gatehouse"}},
                {"key": "service.version", "value": {"stringValue": version}},
            ]},
            "scopeSpans": [{
                "scope": {"name": "gatehouse.gateway", "version": version},
                "spans": [
                    {
                        "traceId": "0123456789abcdeffedcba9876543210",
                        "spanId": "0011223344556677",
                        "parentSpanId": "aabbccddeeff0001",
                        "name": "chat gpt-4o-mini",
                        "kind": 2,
                        "startTimeUnixNano": "1700000000123456789",
                        "endTimeUnixNano": "1700000001000000000",
                        "attributes": [
                            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                            {"key": "negative", "value": {"intValue": "-3"}},
                            {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.25}},
                            {"key": "zero", "value": {"doubleValue": 0.0}},
                            {"key": "cached", "value": {"boolValue": false}},
                            {"key": "empty", "value": {"stringValue": ""}},
                        ],
                        "status": {"code": 2, "message": "upstream answered 500"},
                    },
                    {
                        "traceId": "07070707070707070707070707070707",
                        "spanId": "0707070707070707",
                        "name": "span 7",
                        "kind": 2,
                        "startTimeUnixNano": "1",
                        "endTimeUnixNano": "2",
                        "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                    },
                ],
            }],
        }],
    });
    assert_eq!(document, expected);
}

#[test]
fn doubles_json_has_no_number_for_are_strings() {
    let mut span = plain_span(1);
    span.attributes = vec![
        ("nan".into(), AttrValue::Double(f64::NAN)),
        ("inf".into(), AttrValue::Double(f64::INFINITY)),
        ("-inf".into(), AttrValue::Double(f64::NEG_INFINITY)),
    ];
    let document: serde_json::Value = serde_json::from_slice(&json::encode(&[span])).unwrap();
    let attributes = &document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    let values: Vec<_> = attributes
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"]["doubleValue"].clone())
        .collect();
    assert_eq!(
        values,
        vec![json!("NaN"), json!("Infinity"), json!("-Infinity")]
    );
}

#[test]
fn the_protobuf_encoding_decodes_back_with_the_generated_types() {
    let body = protobuf::encode(&[known_span(), plain_span(7)]);
    let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert_eq!(request.resource_spans.len(), 1);
    let resource_spans = &request.resource_spans[0];
    let resource = resource_spans.resource.as_ref().unwrap();
    let resource_attributes: Vec<_> = resource
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.as_ref().unwrap().value.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        resource_attributes,
        vec![
            (
                "service.name",
                ProtoValue::StringValue("gatehouse".to_owned())
            ),
            (
                "service.version",
                ProtoValue::StringValue(env!("CARGO_PKG_VERSION").to_owned())
            ),
        ]
    );
    let scope_spans = &resource_spans.scope_spans[0];
    let scope = scope_spans.scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("gatehouse.gateway", env!("CARGO_PKG_VERSION"))
    );
    let [span, plain] = scope_spans.spans.as_slice() else {
        panic!("two spans expected, got {}", scope_spans.spans.len());
    };
    let known = known_span();
    assert_eq!(span.trace_id, known.trace_id);
    assert_eq!(span.span_id, known.span_id);
    assert_eq!(span.parent_span_id, known.parent_span_id.unwrap());
    assert_eq!(span.name, "chat gpt-4o-mini");
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, known.start_unix_nanos);
    assert_eq!(span.end_time_unix_nano, known.end_unix_nanos);
    let status = span.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (2, "upstream answered 500")
    );
    let attributes: Vec<_> = span
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.as_ref().unwrap().value.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attributes,
        vec![
            (
                "gen_ai.request.model",
                ProtoValue::StringValue("gpt-4o-mini".to_owned())
            ),
            ("gen_ai.usage.input_tokens", ProtoValue::IntValue(12)),
            ("negative", ProtoValue::IntValue(-3)),
            ("gen_ai.usage.cost", ProtoValue::DoubleValue(0.25)),
            ("zero", ProtoValue::DoubleValue(0.0)),
            ("cached", ProtoValue::BoolValue(false)),
            ("empty", ProtoValue::StringValue(String::new())),
        ]
    );
    assert!(plain.parent_span_id.is_empty());
    assert!(plain.status.is_none());
    // prost writes fields in field-number order and oneof members even when default, as we do: re-encoding the
    // decoded message gives our bytes back, so nothing was skipped or misread.
    assert_eq!(request.encode_to_vec(), body);
}

#[test]
fn the_protobuf_encoding_of_a_minimal_span_is_the_known_bytes() {
    let span = ExportSpan {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: None,
        name: "n".to_owned(),
        start_unix_nanos: 0,
        end_unix_nanos: 0,
        error: false,
        status_message: None,
        attributes: vec![("k".into(), AttrValue::Int(-1))],
    };
    let spans = protobuf::encode(&[span]);
    // The span message, as the last bytes of the request: trace_id (0x0a, 16 bytes), span_id (0x12, 8), name
    // (0x2a "n"), kind (0x30 2), attribute (0x4a: key 0x0a "k", value 0x12 { int_value 0x18, -1 as ten bytes }).
    let mut expected = vec![0x0a, 16];
    expected.extend([1; 16]);
    expected.extend([0x12, 8]);
    expected.extend([2; 8]);
    expected.extend([0x2a, 1, b'n', 0x30, 2]);
    expected.extend([0x4a, 16, 0x0a, 1, b'k', 0x12, 11, 0x18]);
    expected.extend([0xff; 9]);
    expected.push(0x01);
    assert!(
        spans.ends_with(&expected),
        "{spans:02x?} does not end with {expected:02x?}"
    );
}

#[test]
fn trace_and_span_ids_parse_from_hex_and_refuse_the_invalid_ones() {
    assert_eq!(
        parse_trace_id("0123456789ABCDEFfedcba9876543210"),
        Some(known_span().trace_id)
    );
    assert_eq!(
        parse_span_id("0011223344556677"),
        Some(known_span().span_id)
    );
    for bad in [
        "",
        "00",
        "0123456789abcdeffedcba98765432",
        "zz23456789abcdeffedcba9876543210",
    ] {
        assert_eq!(parse_trace_id(bad), None, "{bad}");
    }
    assert_eq!(parse_trace_id(&"0".repeat(32)), None);
    assert_eq!(parse_span_id(&"0".repeat(16)), None);
    assert_eq!(parse_span_id("0011223344556677aa"), None);
    assert_ne!(new_trace_id(), new_trace_id());
    assert_ne!(new_span_id(), [0; 8]);
    assert_ne!(new_span_id(), new_span_id());
}

#[test]
fn targets_parse_their_url_once_and_refuse_bad_headers() {
    let t = OtlpTarget::new(
        "https://Collector.example.com/v1/traces?key=secret",
        &[("x-team".to_owned(), "a".to_owned())],
        None,
        OtlpEncoding::Json,
    )
    .unwrap();
    let upstream = t.upstream();
    assert_eq!(
        (
            upstream.tls,
            upstream.host.as_str(),
            upstream.port,
            upstream.path_and_query.as_str()
        ),
        (true, "collector.example.com", 443, "/v1/traces?key=secret")
    );
    assert_eq!(t.log_name(), "https://collector.example.com/v1/traces");
    let t = OtlpTarget::new(
        "http://[::1]:4318/v1/traces",
        &[],
        None,
        OtlpEncoding::Protobuf,
    )
    .unwrap();
    assert_eq!(
        (
            t.upstream().host.as_str(),
            t.upstream().port,
            t.upstream().authority.as_str()
        ),
        ("::1", 4318, "[::1]:4318")
    );
    for url in [
        "ftp://x/v1/traces",
        "http://",
        "http://user@host/",
        "collector:4318",
        "http://h:0/",
    ] {
        assert!(
            OtlpTarget::new(url, &[], None, OtlpEncoding::Json).is_err(),
            "{url}"
        );
    }
    let bad_name = OtlpTarget::new(
        "http://c/v1/traces",
        &[("bad name".to_owned(), "v".to_owned())],
        None,
        OtlpEncoding::Json,
    );
    assert!(bad_name.is_err());
    let bad_value = OtlpTarget::new(
        "http://c/v1/traces",
        &[("x-key".to_owned(), "line\nbreak-secret".to_owned())],
        None,
        OtlpEncoding::Json,
    )
    .unwrap_err();
    assert!(!bad_value.contains("secret"), "{bad_value}");
    assert!(
        OtlpTarget::new(
            "http://c/v1/traces",
            &[],
            Some("Bearer a\nb"),
            OtlpEncoding::Json
        )
        .is_err()
    );
    assert_eq!(OtlpEncoding::from_setting(None), Ok(OtlpEncoding::Json));
    assert_eq!(
        OtlpEncoding::from_setting(Some("protobuf")),
        Ok(OtlpEncoding::Protobuf)
    );
    assert!(OtlpEncoding::from_setting(Some("xml")).is_err());
}

#[test]
fn a_targets_debug_form_names_no_header_value() {
    let t = OtlpTarget::new(
        "http://c:4318/v1/traces?token=qs-secret",
        &[("x-api-key".to_owned(), "header-secret".to_owned())],
        Some("Bearer auth-secret"),
        OtlpEncoding::Json,
    )
    .unwrap();
    let debug = format!("{t:?}");
    assert!(debug.contains("x-api-key"), "{debug}");
    for secret in ["qs-secret", "header-secret", "auth-secret"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn the_authorization_replaces_a_configured_one_and_own_headers_are_skipped() {
    let t = OtlpTarget::new(
        "http://c/v1/traces",
        &[
            ("Authorization".to_owned(), "Basic old".to_owned()),
            ("content-type".to_owned(), "text/plain".to_owned()),
            ("x-a".to_owned(), "1".to_owned()),
        ],
        Some("Bearer new"),
        OtlpEncoding::Json,
    )
    .unwrap();
    let headers: Vec<_> = t
        .headers()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        headers,
        vec![
            ("x-a".to_owned(), "1".to_owned()),
            ("authorization".to_owned(), "Bearer new".to_owned())
        ]
    );
}

#[test]
fn rebuilt_targets_for_the_same_collector_are_equal() {
    let make = |auth: Option<&str>| {
        OtlpTarget::new(
            "http://c/v1/traces",
            &[("x-a".to_owned(), "1".to_owned())],
            auth,
            OtlpEncoding::Json,
        )
        .unwrap()
    };
    assert_eq!(make(Some("Bearer a")), make(Some("Bearer a")));
    assert_ne!(make(Some("Bearer a")), make(Some("Bearer b")));
    assert_ne!(make(None), make(Some("Bearer a")));
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    // No runtime and no exporter draining: `submit` must still return at once.
    let (queue, _exporter) = OtlpExporter::new(
        ExportSettings {
            queue_capacity: 4,
            ..ExportSettings::default()
        },
        None,
    );
    let t = target("http://127.0.0.1:9/v1/traces", OtlpEncoding::Json);
    let began = Instant::now();
    for n in 0..10_000u32 {
        queue.submit(&t, plain_span(n as u8));
    }
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(
        queue.counters(),
        OtlpCounters {
            queued_spans: 4,
            dropped_spans: 9_996,
            ..OtlpCounters::default()
        }
    );
}

#[test]
fn the_byte_budget_drops_spans_before_the_queue_is_full() {
    let (queue, _exporter) = OtlpExporter::new(
        ExportSettings {
            max_held_bytes: 3 * plain_span(0).approximate_bytes(),
            ..ExportSettings::default()
        },
        None,
    );
    let t = target("http://127.0.0.1:9/v1/traces", OtlpEncoding::Json);
    for n in 0..5 {
        queue.submit(&t, plain_span(n));
    }
    let counters = queue.counters();
    assert_eq!((counters.queued_spans, counters.dropped_spans), (3, 2));
    let mut big = plain_span(9);
    big.attributes.push((
        "gen_ai.prompt_json".into(),
        AttrValue::Str("x".repeat(1 << 20)),
    ));
    queue.submit(&t, big);
    assert_eq!(queue.counters().dropped_spans, 3);
}

#[tokio::test]
async fn spans_reach_the_collector_as_json_with_the_configured_headers() {
    let collector = MockCollector::start();
    let (queue, exporter) = OtlpExporter::new(fast_settings(), None);
    let (stop, task) = run(exporter);
    let t = Arc::new(
        OtlpTarget::new(
            &collector.traces_url(),
            &[("x-team".to_owned(), "blue".to_owned())],
            Some("Bearer collector-key"),
            OtlpEncoding::Json,
        )
        .unwrap(),
    );
    queue.submit(&t, known_span());
    queue.submit(&t, plain_span(2));
    let spans = collector.wait_for_spans(2, Duration::from_secs(10)).await;
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].trace_id, "0123456789abcdeffedcba9876543210");
    assert_eq!(spans[0].parent_span_id.as_deref(), Some("aabbccddeeff0001"));
    assert_eq!(spans[0].attributes["gen_ai.usage.input_tokens"], json!(12));
    assert_eq!(spans[0].status_code, Some(2));
    assert_eq!(spans[0].resource["service.name"], json!("gatehouse"));
    assert_eq!(spans[1].name, "span 2");
    let request = &collector.requests()[0];
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer collector-key")
    );
    assert_eq!(request.header("x-team"), Some("blue"));
    let expected_host = collector.addr().to_string();
    assert_eq!(request.header("host"), Some(expected_host.as_str()));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
    );
    wait_until(|| queue.counters().exported_spans == 2).await;
    let counters = queue.counters();
    assert_eq!((counters.exported_batches, counters.failed_spans), (1, 0));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn protobuf_targets_get_protobuf_bodies() {
    let collector = MockCollector::start();
    let (queue, exporter) = OtlpExporter::new(fast_settings(), None);
    let (stop, task) = run(exporter);
    let t = target(&collector.traces_url(), OtlpEncoding::Protobuf);
    queue.submit(&t, known_span());
    let requests = collector
        .wait_for_requests(1, Duration::from_secs(10))
        .await;
    let request = &requests[0];
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-protobuf")
    );
    let decoded = ExportTraceServiceRequest::decode(request.body.as_ref()).unwrap();
    assert_eq!(
        decoded.resource_spans[0].scope_spans[0].spans[0].name,
        "chat gpt-4o-mini"
    );
    wait_until(|| queue.counters().exported_spans == 1).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn batches_are_cut_at_their_size_and_kept_apart_per_collector() {
    let first = MockCollector::start();
    let second = MockCollector::start();
    let (queue, exporter) = OtlpExporter::new(
        ExportSettings {
            batch_spans: 3,
            ..fast_settings()
        },
        None,
    );
    let (stop, task) = run(exporter);
    let a = target(&first.traces_url(), OtlpEncoding::Json);
    // A rebuilt target for the same collector (a config change) shares the batches.
    let a_again = target(&first.traces_url(), OtlpEncoding::Json);
    let b = target(&second.traces_url(), OtlpEncoding::Json);
    for n in 0..6 {
        queue.submit(if n % 2 == 0 { &a } else { &a_again }, plain_span(n));
    }
    queue.submit(&b, plain_span(100));
    assert_eq!(
        first.wait_for_spans(6, Duration::from_secs(10)).await.len(),
        6
    );
    assert_eq!(
        second
            .wait_for_spans(1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    let sizes: Vec<_> = first.requests().iter().map(|r| r.spans.len()).collect();
    assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    wait_until(|| queue.counters().exported_spans == 7).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_sick_collector_costs_counted_failures_not_retries() {
    let collector = MockCollector::start_with(CollectorBehaviour {
        status: 503,
        ..CollectorBehaviour::default()
    });
    let (queue, exporter) = OtlpExporter::new(fast_settings(), None);
    let (stop, task) = run(exporter);
    let t = target(&collector.traces_url(), OtlpEncoding::Json);
    queue.submit(&t, plain_span(1));
    wait_until(|| queue.counters().failed_spans == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        collector.requests().len(),
        1,
        "a failed batch is not retried"
    );
    let counters = queue.counters();
    assert_eq!((counters.failed_batches, counters.exported_spans), (1, 0));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_dead_collector_fails_its_batches() {
    let port = gatehouse_mock_providers::unused_port();
    let (queue, exporter) = OtlpExporter::new(fast_settings(), None);
    let (stop, task) = run(exporter);
    let t = target(
        &format!("http://127.0.0.1:{port}/v1/traces"),
        OtlpEncoding::Json,
    );
    queue.submit(&t, plain_span(1));
    wait_until(|| queue.counters().failed_spans == 1).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_slow_collector_holds_two_exports_and_drops_what_does_not_fit() {
    let collector = MockCollector::start_with(CollectorBehaviour {
        delay: Duration::from_secs(3),
        ..CollectorBehaviour::default()
    });
    let (queue, exporter) = OtlpExporter::new(
        ExportSettings {
            batch_spans: 2,
            batch_interval: Duration::from_millis(20),
            export_timeout: Duration::from_millis(400),
            ..ExportSettings::default()
        },
        None,
    );
    let (stop, task) = run(exporter);
    let t = target(&collector.traces_url(), OtlpEncoding::Json);
    // Two batches in flight, one waiting: the rest are dropped while the collector is stuck.
    for n in 0..20 {
        queue.submit(&t, plain_span(n));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        collector.requests().len() <= 2,
        "{}",
        collector.requests().len()
    );
    wait_until(|| {
        let c = queue.counters();
        c.failed_spans + c.dropped_spans + c.exported_spans == 20 && c.queued_spans == 0
    })
    .await;
    let counters = queue.counters();
    assert!(counters.dropped_spans > 0, "{counters:?}");
    assert!(counters.failed_spans > 0, "{counters:?}");
    assert_eq!(counters.exported_spans, 0, "{counters:?}");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_sends_what_is_pending() {
    let collector = MockCollector::start();
    let (queue, exporter) = OtlpExporter::new(
        ExportSettings {
            batch_interval: Duration::from_secs(3600),
            ..fast_settings()
        },
        None,
    );
    let (stop, task) = run(exporter);
    let t = target(&collector.traces_url(), OtlpEncoding::Json);
    queue.submit(&t, plain_span(1));
    queue.submit(&t, plain_span(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(collector.requests().is_empty());
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(collector.spans().len(), 2);
    assert_eq!(queue.counters().exported_spans, 2);
}

#[tokio::test]
async fn every_held_byte_is_given_back() {
    let collector = MockCollector::start();
    let (queue, exporter) = OtlpExporter::new(fast_settings(), None);
    let counters = exporter.counters();
    let (stop, task) = run(exporter);
    let t = target(&collector.traces_url(), OtlpEncoding::Json);
    for n in 0..10 {
        queue.submit(&t, plain_span(n));
    }
    wait_until(|| queue.counters().exported_spans == 10).await;
    wait_until(|| counters.held_bytes() == 0).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}
