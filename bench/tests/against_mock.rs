//! The load phases against the in-process mock provider: counts, stream checks and error accounting.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_bench::client::{
    ANTHROPIC_STREAM_END, OPENAI_STREAM_END, Outcome, Target, exchange, http_client, status_of,
};
use gatehouse_bench::concurrent::{self, Probe, measure_side, round};
use gatehouse_bench::load::{closed_loop, open_loop};
use gatehouse_bench::stats::Schedule;
use gatehouse_mock_providers::MockProvider;
use http::{HeaderName, HeaderValue};

fn target(
    mock: &MockProvider,
    path: &str,
    stream: bool,
    extra: &[(&'static str, &'static str)],
) -> Arc<Target> {
    let mut headers = vec![(
        HeaderName::from_static("authorization"),
        HeaderValue::from_static("Bearer sk-test"),
    )];
    for (k, v) in extra {
        headers.push((HeaderName::from_static(k), HeaderValue::from_static(v)));
    }
    let body = if stream {
        r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#
    } else {
        r#"{"model":"m","messages":[]}"#
    };
    Arc::new(Target {
        uri: mock.url(path).parse().unwrap(),
        headers,
        body: Bytes::from_static(body.as_bytes()),
        stream,
        stream_end: OPENAI_STREAM_END,
    })
}

#[tokio::test]
async fn an_open_loop_phase_sends_exactly_its_schedule_at_its_rate() {
    let mock = MockProvider::start();
    let client = http_client();
    let t = target(&mock, "/v1/chat/completions", false, &[]);
    let r = open_loop(
        &client,
        &t,
        Schedule::new(200.0, 100),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (r.sent, r.ok(), r.error_count()),
        (100, 100, 0),
        "{:?}",
        r.errors
    );
    assert!(r.elapsed >= Duration::from_millis(495), "{:?}", r.elapsed);
    assert!(
        (150.0..=210.0).contains(&r.throughput()),
        "{}",
        r.throughput()
    );
    assert_eq!(mock.requests().len(), 100);
}

#[tokio::test]
async fn streams_are_timed_to_their_first_event_and_checked_for_done() {
    let mock = MockProvider::start();
    let client = http_client();
    let t = target(
        &mock,
        "/v1/chat/completions",
        true,
        &[("x-mock-chunks", "4"), ("x-mock-chunk-delay-ms", "20")],
    );
    match exchange(&client, &t, Duration::from_secs(5)).await {
        Outcome::Ok {
            latency,
            first_byte,
            events,
        } => {
            // role + 4 pieces + finish + usage + [DONE]
            assert_eq!(events, 8);
            assert!(first_byte < Duration::from_millis(20), "{first_byte:?}");
            assert!(latency >= Duration::from_millis(140), "{latency:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn anthropic_streams_end_in_message_stop_and_an_openai_end_is_not_taken_for_it() {
    let mock = MockProvider::start();
    let client = http_client();
    let messages = |stream_end| {
        Arc::new(Target {
            uri: mock.url("/v1/messages").parse().unwrap(),
            headers: vec![
                (
                    HeaderName::from_static("x-api-key"),
                    HeaderValue::from_static("sk-test"),
                ),
                (
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static("2023-06-01"),
                ),
                (
                    HeaderName::from_static("x-mock-chunks"),
                    HeaderValue::from_static("4"),
                ),
            ],
            body: Bytes::from_static(
                br#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
            stream: true,
            stream_end,
        })
    };
    match exchange(
        &client,
        &messages(ANTHROPIC_STREAM_END),
        Duration::from_secs(5),
    )
    .await
    {
        // message_start, content_block_start, ping, 4 deltas, content_block_stop, message_delta, message_stop
        Outcome::Ok { events, .. } => assert_eq!(events, 10),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        exchange(
            &client,
            &messages(OPENAI_STREAM_END),
            Duration::from_secs(5)
        )
        .await,
        Outcome::Failed("incomplete body".into())
    );
}

#[tokio::test]
async fn failures_are_counted_by_kind_and_bounded_by_the_timeout() {
    let mock = MockProvider::start();
    let client = http_client();
    let missing = target(&mock, "/v1/nope", false, &[]);
    assert_eq!(
        exchange(&client, &missing, Duration::from_secs(5)).await,
        Outcome::Failed("status 404".into())
    );
    let hang = target(
        &mock,
        "/v1/chat/completions",
        false,
        &[("x-mock-hang", "1")],
    );
    let r = open_loop(
        &client,
        &hang,
        Schedule::new(100.0, 5),
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(r.errors.get("timeout"), Some(&5));
    assert!(r.elapsed < Duration::from_secs(2));
    let closed = target(
        &mock,
        "/v1/chat/completions",
        false,
        &[("x-mock-close", "1")],
    );
    let outcome = exchange(&client, &closed, Duration::from_secs(5)).await;
    assert!(
        matches!(outcome, Outcome::Failed(ref k) if k != "timeout"),
        "{outcome:?}"
    );
    let refused = Arc::new(Target {
        uri: format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            gatehouse_mock_providers::unused_port()
        )
        .parse()
        .unwrap(),
        ..(*missing).clone()
    });
    assert_eq!(
        exchange(&client, &refused, Duration::from_secs(5)).await,
        Outcome::Failed("connect".into())
    );
}

#[tokio::test]
async fn the_status_probe_reads_any_status_and_none_without_an_answer() {
    // The keys phase's wrong-key check: a refusal is a status like any other, no answer is `None`.
    let mock = MockProvider::start();
    let client = http_client();
    let timeout = Duration::from_secs(5);
    let ok = target(&mock, "/v1/chat/completions", false, &[]);
    assert_eq!(status_of(&client, &ok, timeout).await, Some(200));
    let missing = target(&mock, "/v1/nope", false, &[]);
    assert_eq!(status_of(&client, &missing, timeout).await, Some(404));
    let hang = target(
        &mock,
        "/v1/chat/completions",
        false,
        &[("x-mock-hang", "1")],
    );
    assert_eq!(
        status_of(&client, &hang, Duration::from_millis(200)).await,
        None
    );
}

#[tokio::test]
async fn a_closed_loop_keeps_its_clients_busy_until_the_deadline() {
    let mock = MockProvider::start();
    let client = http_client();
    let t = target(&mock, "/v1/chat/completions", false, &[]);
    let r = closed_loop(
        &client,
        &t,
        4,
        Duration::from_millis(300),
        Duration::from_secs(5),
    )
    .await;
    assert!(r.ok() > 20, "{}", r.ok());
    assert_eq!(r.error_count(), 0);
    assert!(r.elapsed >= Duration::from_millis(300));
}

#[tokio::test]
async fn concurrent_streams_are_all_open_at_once_and_counted_per_event() {
    let mock = MockProvider::start();
    let client = http_client();
    // 5 pieces 40 ms apart: 8 events over 280 ms, far longer than the 10 ms ramp of 50 streams.
    let t = target(
        &mock,
        "/v1/chat/completions",
        true,
        &[("x-mock-chunks", "5"), ("x-mock-chunk-delay-ms", "40")],
    );
    let r = round(
        &client,
        &t,
        Schedule::new(5000.0, 50),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (r.result.sent, r.result.ok()),
        (50, 50),
        "{:?}",
        r.result.errors
    );
    assert_eq!(r.result.events, 50 * 9);
    assert_eq!(concurrent::peak_open(&r.spans), 50);
    assert!(
        concurrent::all_open_for(&r.spans).is_some_and(|d| d >= Duration::from_millis(150)),
        "{:?}",
        concurrent::all_open_for(&r.spans)
    );
}

#[tokio::test]
async fn a_side_of_the_concurrent_phase_warms_up_then_measures_one_round() {
    let mock = MockProvider::start();
    let t = target(
        &mock,
        "/v1/chat/completions",
        true,
        &[("x-mock-chunks", "2"), ("x-mock-chunk-delay-ms", "20")],
    );
    let settings = concurrent::Settings {
        streams: 20,
        ramp: Duration::from_millis(4),
        timeout: Duration::from_secs(5),
        settle: Duration::ZERO,
        sample_rss: true,
    };
    let probe = Probe {
        gateway_pid: None,
        mock_pid: Some(std::process::id()),
        ticks: gatehouse_bench::cpu::clock_ticks(),
        data_plane_threads: "gatehouse-dp",
    };
    let side = measure_side("test", &t, settings, probe).await;
    assert_eq!(side.side.result.ok(), 20, "{:?}", side.side.result.errors);
    assert_eq!(side.peak_open, 20);
    assert_eq!(
        mock.requests().len(),
        40,
        "a warm-up round and a measured one"
    );
    // No gateway pid: no gateway figures; the client's and the "mock's" (this process) CPU are read.
    assert_eq!(side.side.gateway_cpu, None);
    assert_eq!(side.gateway_rss, None);
    assert!(side.client_cpu.is_some() && side.mock_cpu.is_some());
}
