//! Requests as each provider's SDK sends them, and SSE splitting as their parsers do it.

use gatehouse_mock_providers::MockProvider;
use serde_json::Value;

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A POST with OpenAI's credential.
pub fn openai(mock: &MockProvider, path: &str) -> reqwest::RequestBuilder {
    client()
        .post(mock.url(path))
        .bearer_auth("sk-test")
        .header("content-type", "application/json")
}

/// A POST with Anthropic's credential and version header.
pub fn anthropic(mock: &MockProvider) -> reqwest::RequestBuilder {
    client()
        .post(mock.url("/v1/messages"))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
}

/// Splits an SSE body into events, checking the framing SDKs rely on: every event ends with a blank line.
pub fn events(body: &str) -> Vec<&str> {
    assert!(
        body.ends_with("\n\n"),
        "an SSE body ends with a blank line: {body:?}"
    );
    body.split_terminator("\n\n").collect()
}

/// The JSON of a `data: {...}` event (OpenAI chat completions).
pub fn data(event: &str) -> Value {
    let json = event
        .strip_prefix("data: ")
        .unwrap_or_else(|| panic!("a data event: {event:?}"));
    assert!(!json.contains('\n'), "one data line per event: {event:?}");
    serde_json::from_str(json).unwrap()
}

/// The name and JSON of an `event: NAME\ndata: {...}` event (Anthropic, OpenAI Responses).
pub fn named(event: &str) -> (&str, Value) {
    let (head, data_line) = event
        .split_once('\n')
        .unwrap_or_else(|| panic!("two lines: {event:?}"));
    let name = head
        .strip_prefix("event: ")
        .unwrap_or_else(|| panic!("an event line: {event:?}"));
    (name, data(data_line))
}

pub fn chat_body(stream: bool) -> Value {
    let mut body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
    });
    if stream {
        body["stream"] = Value::Bool(true);
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    body
}

pub fn messages_body(stream: bool) -> Value {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
}
