//! Refusals in the providers' shapes, the behaviour controls, and that delays and chunking are real.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use gatehouse_mock_providers::{Behaviour, MockProvider, control, unused_port};
use serde_json::{Value, json};

use crate::support::{anthropic, chat_body, client, messages_body, openai};

#[tokio::test]
async fn openai_without_a_bearer_key_is_refused_with_openais_401_body() {
    let mock = MockProvider::start();
    let res = client()
        .post(mock.url("/v1/chat/completions"))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You didn't provide an API key")
    );
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["code"].is_null() && v["error"]["param"].is_null());
}

#[tokio::test]
async fn a_wrong_key_is_refused_when_the_mock_expects_a_specific_one() {
    let mock = MockProvider::start_with(Behaviour {
        api_key: Some("sk-the-right-key".into()),
        ..Behaviour::default()
    });
    let res = openai(&mock, "/v1/chat/completions")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let ok = client()
        .post(mock.url("/v1/chat/completions"))
        .bearer_auth("sk-the-right-key")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn anthropic_without_a_key_or_a_version_is_refused_with_anthropics_bodies() {
    let mock = MockProvider::start();
    let no_key = client()
        .post(mock.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let v: Value = no_key.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(
        v["error"],
        json!({"type": "authentication_error", "message": "x-api-key header is required"})
    );

    let no_version = client()
        .post(mock.url("/v1/messages"))
        .header("x-api-key", "k")
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let v: Value = no_version.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version")
    );
}

#[tokio::test]
async fn malformed_or_incomplete_json_gets_a_provider_shaped_400_not_a_panic() {
    let mock = MockProvider::start();
    for body in ["{not json", "[1,2]", "", "\u{0}\u{ff}"] {
        let res = openai(&mock, "/v1/chat/completions")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");

        let res = anthropic(&mock).body(body).send().await.unwrap();
        assert_eq!(res.status(), 400, "{body:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let no_messages = openai(&mock, "/v1/chat/completions")
        .json(&json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_messages.status(), 400);
    let v: Value = no_messages.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages");
    let no_max_tokens = anthropic(&mock)
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    let v: Value = no_max_tokens.json().await.unwrap();
    assert_eq!(v["error"]["message"], "max_tokens: Field required");
    // The mock is still serving.
    let ok = openai(&mock, "/v1/chat/completions")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_unknown_path_and_an_unreadable_control_header_are_provider_shaped_errors() {
    let mock = MockProvider::start();
    let res = openai(&mock, "/v1/nope")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Invalid URL (POST /v1/nope)");

    let res = openai(&mock, "/v1/chat/completions")
        .header(control::CHUNKS, "many")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(control::CHUNKS)
    );
}

#[tokio::test]
async fn a_status_override_answers_with_each_providers_error_body() {
    let mock = MockProvider::start();
    let res = openai(&mock, "/v1/chat/completions")
        .header(control::STATUS, "429")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    mock.set_behaviour(Behaviour {
        status: Some(529),
        ..Behaviour::default()
    });
    let res = anthropic(&mock)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 529);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");

    mock.reset();
    let res = anthropic(&mock)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_first_n_requests_of_a_key_fail_then_the_rest_succeed() {
    let mock = MockProvider::start();
    let send = |key: &'static str| {
        openai(&mock, "/v1/chat/completions")
            .header(control::FAIL_FIRST, "2")
            .header(control::FAIL_STATUS, "503")
            .header(control::FAIL_KEY, key)
            .json(&chat_body(false))
            .send()
    };
    let mut statuses = Vec::new();
    for key in ["a", "a", "b", "a", "b", "b"] {
        statuses.push(send(key).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [503, 503, 503, 200, 503, 200]);
}

#[tokio::test]
async fn the_header_delay_holds_the_response_header() {
    let mock = MockProvider::start();
    let started = Instant::now();
    let res = openai(&mock, "/v1/chat/completions")
        .header(control::HEADER_DELAY_MS, "300")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn stream_events_arrive_one_by_one_with_the_chunk_delay_between_them() {
    let mock = MockProvider::start();
    let started = Instant::now();
    let res = openai(&mock, "/v1/chat/completions")
        .header(control::CHUNKS, "3")
        .header(control::CHUNK_DELAY_MS, "150")
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(
        first.starts_with(b"data: {") && first.ends_with(b"\n\n"),
        "{first:?}"
    );
    assert_eq!(
        first.iter().filter(|&&b| b == b'\n').count(),
        2,
        "exactly one event arrives first"
    );
    assert!(
        first_at < Duration::from_millis(150),
        "the first event is not held back: {first_at:?}"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    // role + 3 pieces + finish + usage + [DONE] = 7 events, 6 gaps of 150 ms.
    let total = started.elapsed();
    assert!(total >= Duration::from_millis(900), "{total:?}");
    assert!(
        String::from_utf8(rest)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}

/// Reads a raw HTTP/1.1 response and returns its chunked body's chunks, each as sent.
fn raw_chunks(addr: std::net::SocketAddr, request_body: &str) -> Vec<String> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n\
         content-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{request_body}",
        request_body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, mut body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut chunks = Vec::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            break;
        }
        chunks.push(rest[..size].to_owned());
        body = &rest[size + 2..];
    }
    chunks
}

#[test]
fn every_sse_event_is_its_own_http_chunk_even_without_a_delay() {
    let mock = MockProvider::start();
    let chunks = raw_chunks(mock.addr(), &messages_body(true).to_string());
    assert_eq!(chunks.len(), 5 + 6, "{chunks:?}");
    for c in &chunks {
        assert!(
            c.starts_with("event: ") && c.ends_with("\n\n") && c.matches("\n\n").count() == 1,
            "{c:?}"
        );
    }
}

#[tokio::test]
async fn a_hanging_request_is_recorded_and_never_answered() {
    let mock = MockProvider::start();
    let err = openai(&mock, "/v1/chat/completions")
        .header(control::HANG, "1")
        .timeout(Duration::from_millis(300))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_closing_request_gets_no_response_at_all() {
    let mock = MockProvider::start();
    mock.set_behaviour(Behaviour {
        close: true,
        ..Behaviour::default()
    });
    let err = openai(&mock, "/v1/chat/completions")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err}");
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn the_unused_port_is_a_refusing_upstream_and_a_dropped_mock_stops_listening() {
    let refused = std::net::TcpStream::connect(("127.0.0.1", unused_port())).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let mock = MockProvider::start();
    let addr = mock.addr();
    drop(mock);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn a_large_body_is_recorded_intact_with_method_path_query_and_headers() {
    let mock = MockProvider::start();
    let prompt: String = (0..50 * 1024 * 1024 / 16)
        .map(|i| format!("{:015x} ", i))
        .collect();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}).to_string();
    assert!(body.len() > 50 * 1024 * 1024);
    let res = openai(&mock, "/v1/chat/completions?api-version=2024-10-21")
        .header("x-trace", "abc")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(r.header("x-trace"), Some("abc"));
    assert_eq!(r.header("authorization"), Some("Bearer sk-test"));
    assert!(r.body == body.as_bytes(), "the body arrived byte for byte");
    assert_eq!(r.json().unwrap()["model"], "m");
    mock.reset();
    assert!(mock.requests().is_empty());
}
