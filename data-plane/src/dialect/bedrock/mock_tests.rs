//! The codec, the signer and the event-stream reader against the Bedrock mock (`tests/mock-providers`), whose
//! framing writer and request checks are written independently of this module.

use std::time::SystemTime;

use futures_util::StreamExt as _;
use gatehouse_mock_providers::MockProvider;
use serde_json::{Value, json};

use super::sigv4::{AwsCredentials, BEDROCK_SERVICE, SignableRequest, sign};
use super::*;
use crate::dialect::chat::{FinishReason, StreamEvent};

const MODEL: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

fn chat(stream: bool) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "aws-bedrock/x",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and London?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "max_tokens": 100
    }))
    .unwrap()
}

/// Sends the codec's request for `stream`, signed as the gateway signs it, with `x-mock-scenario: scenario`.
async fn send(mock: &MockProvider, stream: bool, scenario: &str) -> (Encoded, reqwest::Response) {
    let target = Target {
        provider: "aws-bedrock",
        model: MODEL,
        stream,
        project: None,
        region: Some("us-east-1"),
    };
    let encoded = BedrockCodec.encode(&chat(stream), &target).unwrap();
    let host = mock.addr().to_string();
    let signed = sign(
        &SignableRequest {
            method: "POST",
            host: &host,
            path: &encoded.path,
            query: "",
            headers: &[("content-type", "application/json")],
            payload: &encoded.body,
        },
        &AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("session".into()),
        },
        "us-east-1",
        BEDROCK_SERVICE,
        SystemTime::now(),
    );
    let mut request = reqwest::Client::new()
        .post(mock.url(&encoded.path))
        .header("content-type", "application/json")
        .header("x-mock-scenario", scenario)
        .body(encoded.body.clone());
    for (name, value) in signed.pairs() {
        request = request.header(name, value);
    }
    (encoded, request.send().await.unwrap())
}

#[tokio::test]
async fn a_signed_converse_stream_round_trips_through_the_mock() {
    let mock = MockProvider::start();
    let (encoded, res) = send(&mock, true, "parallel_tool_calls").await;
    assert_eq!(res.status(), 200);
    let mut decoder = BedrockCodec.stream_decoder();
    let mut events = Vec::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        decoder.feed(&chunk.unwrap(), &mut events);
    }
    decoder.finish(true, &mut events);

    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, name, .. } => Some((*index, name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(calls, [(0, "get_weather"), (1, "get_weather")]);
    let arguments = |i: u32| -> String {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallArgs { index, fragment } if *index == i => {
                    Some(fragment.as_str())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(arguments(0), r#"{"location":"Paris"}"#);
    assert_eq!(arguments(1), r#"{"location":"London"}"#);
    assert!(events.contains(&StreamEvent::Finish(FinishReason::ToolCalls)));
    assert!(matches!(events.last(), Some(StreamEvent::Usage(u)) if u.completion_tokens > 0));

    let recorded = &mock.requests()[0];
    assert_eq!(recorded.path, encoded.path);
    assert!(recorded.path.contains("v1%3A0/converse-stream"));
    assert_eq!(recorded.header("x-amz-security-token"), Some("session"));
    let body: Value = recorded.json().unwrap();
    assert_eq!(body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(body["inferenceConfig"]["maxTokens"], 100);
}

#[tokio::test]
async fn a_converse_answer_and_a_converse_error_decode() {
    let mock = MockProvider::start();
    let (_, res) = send(&mock, false, "cached").await;
    assert_eq!(res.status(), 200);
    let answer = BedrockCodec.decode(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.text.as_deref(), Some("Hello from the mock provider"));
    let usage = answer.usage.unwrap();
    assert_eq!((usage.cached_tokens, usage.cache_creation_tokens), (8, 4));

    let (_, res) = send(&mock, false, "no_such_scenario").await;
    let status = res.status().as_u16();
    let error_type = res
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let error = provider_error(status, error_type.as_deref(), &res.bytes().await.unwrap());
    assert_eq!(error.status, 400);
    assert!(
        error.message.contains("x-mock-scenario"),
        "{}",
        error.message
    );
    assert_eq!(error.code.as_deref(), Some("ValidationException"));
}
