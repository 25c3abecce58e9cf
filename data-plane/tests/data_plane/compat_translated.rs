//! `/compat` to providers that do not speak OpenAI's API: the OpenAI request is translated to the provider's
//! native one (asserted on what the mock provider received) and the answer back to OpenAI's shape (asserted on
//! what the client got), whole and streamed, with tools, JSON mode, reasoning, cached usage, each finish reason and
//! mapped errors.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use gatehouse_mock_providers::{MockProvider, SCENARIO_HEADER, control};
use serde_json::{Value, json};

use crate::node::{Node, gateway};

const COMPAT: &str = "/v1/acme/gw/compat/chat/completions";

fn node(mock: &MockProvider) -> Node {
    let node = Node::start(mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    node
}

async fn send(node: &Node, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = node
        .http
        .post(node.url(COMPAT))
        .header("authorization", "Bearer sk-ant-client")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn whole(node: &Node, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let resp = send(node, body, headers).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The stream's `data:` payloads (without `[DONE]`), and whether it ended with `[DONE]`.
async fn streamed(node: &Node, body: &Value, headers: &[(&str, &str)]) -> (Vec<Value>, bool) {
    let resp = send(node, body, headers).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let mut done = false;
    let frames = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| {
            done |= *d == "[DONE]";
            *d != "[DONE]"
        })
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (frames, done)
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

fn request(model: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_text_whole_translates_both_ways() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let (status, json) = whole(&node, &request("anthropic/claude-sonnet-4-5"), &[]).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["object"], "chat.completion");
    assert!(json["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let message = &json["choices"][0]["message"];
    assert!(
        message["content"].as_str().is_some_and(|t| !t.is_empty()),
        "{json}"
    );
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    let usage = &json["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.header("x-api-key"),
        Some("sk-ant-client"),
        "the SDK's apiKey, re-sent natively"
    );
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    let sent = seen.json().unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert!(sent["system"].to_string().contains("Be brief."), "{sent}");
    assert!(
        sent["max_tokens"].as_u64().is_some_and(|n| n > 0),
        "Anthropic requires max_tokens: {sent}"
    );
    let parts = &sent["messages"][0]["content"];
    assert_eq!(parts[1]["type"], "image", "{sent}");
    assert_eq!(parts[1]["source"]["type"], "base64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_streams_are_translated_as_they_arrive() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let mut body = request("anthropic/claude-sonnet-4-5");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let started = Instant::now();
    let resp = send(
        &node,
        &body,
        &[(control::CHUNK_DELAY_MS, "300"), (control::CHUNKS, "4")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    let mut all = first.to_vec();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    let total = started.elapsed();
    assert!(
        total >= Duration::from_millis(900),
        "the mock spaces events 300 ms apart: {total:?}"
    );
    assert!(
        first_at < Duration::from_millis(250),
        "first chunk after {first_at:?} of {total:?}: buffered"
    );
    let text = String::from_utf8(all).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let frames: Vec<Value> = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(frames[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = frames
        .iter()
        .filter_map(|f| f["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty());
    let finish = frames
        .iter()
        .find(|f| !f["choices"][0]["finish_reason"].is_null())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let last = frames.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(
        last["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert!(
        frames
            .iter()
            .all(|f| f["object"] == "chat.completion.chunk" && f["id"] == frames[0]["id"])
    );
    assert_eq!(
        mock.requests().pop().unwrap().json().unwrap()["stream"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_tool_calls_round_trip_whole_and_streamed() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let mut body = json!({"model": "anthropic/claude-sonnet-4-5", "tools": weather_tool(), "tool_choice": "auto",
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let (status, json) = whole(&node, &body, &[(SCENARIO_HEADER, "tool_call")]).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
    let call = &json["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["location"], "Paris");
    let sent = mock.requests().pop().unwrap().json().unwrap();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["input_schema"]["required"][0], "location");
    assert_eq!(sent["tool_choice"]["type"], "auto");

    // The tool result turn goes back as a tool_result block.
    let id = call["id"].as_str().unwrap().to_owned();
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "18 degrees"}
    ]);
    let (status, json) = whole(&node, &body, &[]).await;
    assert_eq!(status, 200, "{json}");
    let sent = mock.requests().pop().unwrap().json().unwrap();
    assert_eq!(
        sent["messages"][1]["content"][0]["type"], "tool_use",
        "{sent}"
    );
    assert_eq!(
        sent["messages"][1]["content"][0]["input"]["location"],
        "Paris"
    );
    assert_eq!(sent["messages"][2]["role"], "user");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], id);

    // Streamed, two calls in parallel: indexes 0 and 1, arguments in fragments.
    body["stream"] = json!(true);
    body["messages"] = json!([{"role": "user", "content": "Paris and London?"}]);
    let (frames, done) = streamed(&node, &body, &[(SCENARIO_HEADER, "parallel_tool_calls")]).await;
    assert!(done);
    let mut calls: Vec<(String, String)> = Vec::new();
    for f in &frames {
        for c in f["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = c["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, (String::new(), String::new()));
            }
            if let Some(name) = c["function"]["name"].as_str() {
                calls[i].0 = name.to_owned();
            }
            calls[i]
                .1
                .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(calls.len(), 2, "{frames:?}");
    let locations: Vec<Value> = calls
        .iter()
        .map(|(_, a)| serde_json::from_str::<Value>(a).unwrap()["location"].clone())
        .collect();
    assert_eq!(locations, [json!("Paris"), json!("London")]);
    let finish = frames
        .iter()
        .find(|f| !f["choices"][0]["finish_reason"].is_null())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_finish_reasons_usage_reasoning_and_json_mode() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let base = json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    for (scenario, finish) in [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("text", "stop"),
    ] {
        let (status, json) = whole(&node, &base, &[(SCENARIO_HEADER, scenario)]).await;
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["choices"][0]["finish_reason"], finish, "{scenario}");
    }
    let (_, json) = whole(&node, &base, &[(SCENARIO_HEADER, "cached")]).await;
    let usage = &json["usage"];
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], 8,
        "{usage}"
    );
    assert_eq!(
        usage["prompt_tokens_details"]["cache_creation_tokens"], 4,
        "{usage}"
    );

    let mut body = base.clone();
    body["reasoning_effort"] = json!("low");
    let (_, json) = whole(&node, &body, &[(SCENARIO_HEADER, "reasoning")]).await;
    assert!(
        json["choices"][0]["message"]["reasoning_content"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{json}"
    );
    let sent = mock.requests().pop().unwrap().json().unwrap();
    assert_eq!(sent["thinking"]["type"], "enabled", "{sent}");
    assert!(sent["thinking"]["budget_tokens"].as_u64().unwrap() >= 1024);

    let mut body = base.clone();
    body["response_format"] = json!({"type": "json_object"});
    let (status, json) = whole(&node, &body, &[]).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert!(
        json["choices"][0]["message"].get("tool_calls").is_none(),
        "{json}"
    );

    // n > 1 is something Anthropic cannot do: an OpenAI 400, nothing sent.
    let before = mock.requests().len();
    let mut body = base.clone();
    body["n"] = json!(2);
    let (status, json) = whole(&node, &body, &[]).await;
    assert_eq!(status, 400, "{json}");
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(mock.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_errors_are_mapped_to_openai_errors() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let resp = send(
        &node,
        &json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        &[(control::STATUS, "429")],
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert!(
        resp.headers().contains_key("retry-after"),
        "the provider's back-off hint passes: {:?}",
        resp.headers()
    );
    let base = json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    for (provider_status, client_status, kind) in [
        ("429", 429, "rate_limit_error"),
        ("529", 503, "server_error"),
        ("401", 401, "authentication_error"),
    ] {
        let (status, json) = whole(&node, &base, &[(control::STATUS, provider_status)]).await;
        assert_eq!(status, client_status, "{provider_status}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        assert_eq!(json["error"]["type"], kind, "{provider_status}: {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_translated_answer_is_cached_as_the_client_got_it() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let mut doc = gateway("acme", "gw", 1);
    doc.settings.cache_ttl = Some(60);
    node.add_gateway(doc);
    let body = json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "cache me"}]});
    let mut answers = Vec::new();
    for expected in ["MISS", "HIT"] {
        let resp = send(&node, &body, &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cf-aig-cache-status"], expected);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        answers.push(resp.json::<Value>().await.unwrap());
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1]["object"], "chat.completion");
    assert_eq!(mock.requests().len(), 1, "the hit made no provider call");
}
