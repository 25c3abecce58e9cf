use std::time::Duration;

use super::eventstream::decode_all;
use super::*;
use crate::text::usage_for;

fn answer(scenario: Scenario) -> Answer<'static> {
    Answer {
        id: 7,
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        chunks: 2,
        chunk_delay: Duration::ZERO,
        usage: usage_for(400, 2),
        created: 0,
        scenario,
    }
}

fn request() -> Value {
    json!({
        "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
        "toolConfig": {"tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "other", "inputSchema": {"json": {"type": "object"}}}}
        ]}
    })
}

fn whole(scenario: Scenario) -> Value {
    let body = request();
    let a = answer(scenario);
    whole_answer(&Plan::new(&body, &a).ok().unwrap(), &a)
}

/// The stream's events as (`:event-type`, payload), checking framing, CRCs and headers.
fn streamed(scenario: Scenario) -> Vec<(String, Value)> {
    let body = request();
    let a = answer(scenario);
    let bytes: Vec<u8> = stream_events(&Plan::new(&body, &a).ok().unwrap(), &a)
        .iter()
        .flat_map(|b| b.to_vec())
        .collect();
    decode_all(&bytes)
        .into_iter()
        .map(|(headers, payload)| {
            assert_eq!(
                headers[1],
                (":content-type".into(), "application/json".into())
            );
            assert_eq!(headers[2], (":message-type".into(), "event".into()));
            let payload: Value = serde_json::from_slice(&payload).unwrap();
            assert!(payload["p"].is_string(), "padded like Bedrock's payloads");
            (headers[0].1.clone(), payload)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn the_model_id_is_read_from_the_path_and_decoded() {
    assert_eq!(
        model_in_path("/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream")
            .as_deref(),
        Some("us.anthropic.claude-haiku-4-5-20251001-v1:0")
    );
    assert_eq!(
        model_in_path("/aws-bedrock/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ax%2Fy/converse")
            .as_deref(),
        Some("arn:aws:bedrock:us-east-1:1:x/y")
    );
    assert_eq!(model_in_path("/model//converse"), None);
    assert_eq!(model_in_path("/v1/messages"), None);
}

#[test]
fn text_is_the_default_answer() {
    let v = whole(Scenario::Text);
    assert_eq!(
        v["output"]["message"]["content"],
        json!([{"text": "Hello from"}])
    );
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(v["usage"]["inputTokens"], 100);
    assert!(v["usage"].get("cacheReadInputTokens").is_none());
    let events = streamed(Scenario::Text);
    assert_eq!(
        names(&events),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let text: String = events
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from");
    assert_eq!(events[5].1["usage"]["outputTokens"], 2);
}

#[test]
fn tool_calls_use_the_first_tool_paris_then_london() {
    let v = whole(Scenario::ParallelToolCalls);
    assert_eq!(
        v["output"]["message"]["content"],
        json!([
            {"toolUse": {"toolUseId": "tooluse_mock7_0", "name": "get_weather", "input": {"location": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_mock7_1", "name": "get_weather", "input": {"location": "London"}}}
        ])
    );
    assert_eq!(v["stopReason"], "tool_use");
    let events = streamed(Scenario::ToolCall);
    assert_eq!(
        events[1],
        (
            "contentBlockStart".to_owned(),
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_mock7_0", "name": "get_weather"}},
                   "p": events[1].1["p"]})
        )
    );
    let arguments: String = events
        .iter()
        .filter_map(|(_, v)| v["delta"]["toolUse"]["input"].as_str())
        .collect();
    assert_eq!(arguments, r#"{"location":"Paris"}"#);
    assert_eq!(events[events.len() - 2].1["stopReason"], "tool_use");

    let no_tools = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    assert!(Plan::new(&no_tools, &answer(Scenario::ToolCall)).is_err());
}

#[test]
fn reasoning_comes_before_the_text_with_its_signature() {
    let v = whole(Scenario::Reasoning);
    assert_eq!(
        v["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]["text"],
        REASONING_TEXT
    );
    assert_eq!(v["output"]["message"]["content"][1]["text"], "Hello from");
    let events = streamed(Scenario::Reasoning);
    let thought: String = events
        .iter()
        .filter_map(|(_, v)| v["delta"]["reasoningContent"]["text"].as_str())
        .collect();
    assert_eq!(thought, REASONING_TEXT);
    assert!(
        events
            .iter()
            .any(|(_, v)| v["delta"]["reasoningContent"]["signature"].is_string())
    );
    assert!(
        events
            .iter()
            .any(|(_, v)| v["contentBlockIndex"] == 1 && v["delta"]["text"].is_string())
    );
}

#[test]
fn length_content_filter_and_cached_have_their_stop_reasons_and_usage() {
    assert_eq!(whole(Scenario::Length)["stopReason"], "max_tokens");
    assert_eq!(
        whole(Scenario::ContentFilter)["stopReason"],
        "content_filtered"
    );
    let usage = &whole(Scenario::Cached)["usage"];
    assert_eq!(usage["cacheReadInputTokens"], CACHED_READ_TOKENS);
    assert_eq!(usage["cacheWriteInputTokens"], CACHED_WRITE_TOKENS);
    let prompt = usage["inputTokens"].as_u64().unwrap() + CACHED_READ_TOKENS + CACHED_WRITE_TOKENS;
    assert_eq!(prompt, answer(Scenario::Cached).usage.input_tokens);
    let events = streamed(Scenario::Cached);
    assert_eq!(
        events.last().unwrap().1["usage"]["cacheReadInputTokens"],
        CACHED_READ_TOKENS
    );
}

#[test]
fn bodies_bedrock_would_refuse_are_refused_with_its_messages() {
    let cases = [
        (json!({}), "Member must not be null"),
        (json!({"messages": []}), "must start with a user message"),
        (
            json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}),
            "must start with a user message",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}),
            "must alternate",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": " "}]}]}),
            "messages.0.content.0 is blank",
        ),
        (
            json!({"messages": [{"role": "user", "content": []}]}),
            "messages.0 is empty",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "system": [{"text": ""}]}),
            "system.0 is blank",
        ),
        (
            json!({"messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]}
            ]}),
            "toolConfig field must be defined",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "inferenceConfig": {"maxTokens": 0}}),
            "inferenceConfig.maxTokens",
        ),
    ];
    for (body, want) in cases {
        let Err(e) = validate(&body) else {
            panic!("accepted: {body}")
        };
        assert!(e.message.contains(want), "{body}: {}", e.message);
    }
    assert!(validate(&request()).is_ok());
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

const SIGNATURE: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

fn sigv4(credential: &str, signed: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={SIGNATURE}"
    )
}

#[test]
fn sigv4_headers_need_their_parts_and_a_date_and_bearer_keys_pass() {
    let ok = sigv4(
        "AKID/20250101/us-east-1/bedrock/aws4_request",
        "content-type;host;x-amz-date",
    );
    let good = headers(&[
        ("authorization", &ok),
        ("x-amz-date", "20250101T000000Z"),
        ("host", "mock"),
        ("content-type", "application/json"),
    ]);
    assert!(check_auth(&good, None).is_ok());
    assert!(check_auth(&good, Some("AKID")).is_ok());
    assert_eq!(
        check_auth(&good, Some("OTHER")).unwrap_err().kind,
        "UnrecognizedClientException"
    );
    assert!(
        check_auth(
            &headers(&[("authorization", "Bearer ABSK123")]),
            Some("ABSK123")
        )
        .is_ok()
    );
    assert_eq!(
        check_auth(
            &headers(&[("authorization", "Bearer nope")]),
            Some("ABSK123")
        )
        .unwrap_err()
        .kind,
        "UnrecognizedClientException"
    );

    let no_date = headers(&[
        ("authorization", &ok),
        ("host", "mock"),
        ("content-type", "application/json"),
    ]);
    let wrong_service = sigv4(
        "AKID/20250101/us-east-1/bedrock-runtime/aws4_request",
        "host;x-amz-date",
    );
    let unsent = sigv4(
        "AKID/20250101/us-east-1/bedrock/aws4_request",
        "host;x-amz-date;x-amz-security-token",
    );
    for (h, kind, words) in [
        (
            headers(&[]),
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        (
            headers(&[("authorization", "Basic abc")]),
            "IncompleteSignatureException",
            "Unsupported",
        ),
        (
            headers(&[(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request",
            )]),
            "IncompleteSignatureException",
            "requires 'SignedHeaders' parameter. Authorization header requires 'Signature'",
        ),
        (no_date, "IncompleteSignatureException", "X-Amz-Date"),
        (
            headers(&[
                ("authorization", &wrong_service),
                ("x-amz-date", "20250101T000000Z"),
                ("host", "m"),
            ]),
            "InvalidSignatureException",
            "scoped to correct service",
        ),
        (
            headers(&[
                ("authorization", &unsent),
                ("x-amz-date", "20250101T000000Z"),
                ("host", "m"),
            ]),
            "InvalidSignatureException",
            "does not match",
        ),
    ] {
        let refused = check_auth(&h, None).unwrap_err();
        assert_eq!(
            (refused.status, refused.kind),
            (403, kind),
            "{}",
            refused.message
        );
        assert!(refused.message.contains(words), "{}", refused.message);
    }
}

async fn send(
    mock: &crate::MockProvider,
    path: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let authorization = sigv4(
        "AKID/20250101/us-east-1/bedrock/aws4_request",
        "content-type;host;x-amz-date",
    );
    let mut req = reqwest::Client::new()
        .post(mock.url(path))
        .header("authorization", authorization)
        .header("x-amz-date", "20250101T000000Z")
        .json(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn converse_answers_json_and_converse_stream_answers_event_stream_frames() {
    let mock = crate::MockProvider::start();
    let path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    let res = send(&mock, path, &[("x-mock-scenario", "tool_call")], &request()).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-amzn-requestid"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v["output"]["message"]["content"][0]["toolUse"]["name"],
        "get_weather"
    );

    let res = send(
        &mock,
        &format!("{path}-stream"),
        &[("x-mock-chunks", "3")],
        &request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], EVENT_STREAM);
    let bytes = res.bytes().await.unwrap();
    let events = decode_all(&bytes);
    assert_eq!(events.len(), 1 + 3 + 1 + 2);
    assert_eq!(mock.requests()[1].path, format!("{path}-stream"));
}

#[tokio::test]
async fn errors_come_in_bedrock_shape_with_the_exception_header() {
    let mock = crate::MockProvider::start();
    let path = "/model/m/converse";
    let res = send(&mock, path, &[("x-mock-status", "429")], &request()).await;
    assert_eq!(res.status(), 429);
    assert!(
        res.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("ThrottlingException:"),
        "{:?}",
        res.headers()
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v,
        json!({"message": "Too many requests, please wait before trying again."})
    );

    let blank = json!({"messages": [{"role": "user", "content": [{"text": ""}]}]});
    let res = send(&mock, path, &[], &blank).await;
    assert_eq!(res.status(), 400);
    assert!(
        res.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("ValidationException:")
    );
    let v: Value = res.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("is blank"), "{v}");

    let res = reqwest::Client::new()
        .post(mock.url(path))
        .json(&request())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("MissingAuthenticationTokenException:")
    );
}

#[tokio::test]
async fn stream_events_are_sent_one_frame_at_a_time_with_the_chunk_delay() {
    use futures_util::StreamExt as _;
    let mock = crate::MockProvider::start();
    let res = send(
        &mock,
        "/model/m/converse-stream",
        &[("x-mock-chunks", "4"), ("x-mock-chunk-delay-ms", "60")],
        &request(),
    )
    .await;
    let started = std::time::Instant::now();
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    // The first chunk is exactly one whole frame (`messageStart`).
    assert_eq!(decode_all(&first).len(), 1);
    while body.next().await.is_some() {}
    // 1 + 4 + 1 + 2 frames, 7 gaps of 60 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(7 * 60),
        "{:?}",
        started.elapsed()
    );
    assert!(first_at < Duration::from_millis(60), "{first_at:?}");
}
