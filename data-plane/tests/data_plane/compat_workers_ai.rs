//! `/compat` chat to Workers AI text generation: `workers-ai/@cf/…` runs on the native run endpoint
//! `…/accounts/{account_id}/ai/run/{model}` of the gateway's own account. Each test asserts what the mock received
//! (path with account and model, body, credential) and what the client got, whole and streamed.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use gatehouse_mock_providers::{
    MockProvider, RecordedRequest, SCENARIO_HEADER, completion_text, control, usage_for,
};
use serde_json::{Value, json};

use crate::node::{Node, gateway};

const CHAT: &str = "/v1/acme/gw/compat/chat/completions";
const RESPONSES: &str = "/v1/acme/gw/compat/responses";
const MODEL: &str = "workers-ai/@cf/meta/llama-3.1-8b-instruct";
const RUN_PATH: &str = "/client/v4/accounts/acme/ai/run/@cf/meta/llama-3.1-8b-instruct";
const AUTH: (&str, &str) = ("authorization", "Bearer cf-token");

fn node(mock: &MockProvider) -> Node {
    let base = mock.url("/client/v4/accounts/{account_id}/ai/run");
    let node = Node::start(mock, |s| {
        s.provider_base_urls.push(("workers-ai".into(), base));
    });
    node.add_gateway(gateway("acme", "gw", 1));
    node
}

async fn send(
    node: &Node,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = node.http.post(node.url(path)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn whole(
    node: &Node,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = send(node, CHAT, body, headers).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The stream's `data:` payloads, without `[DONE]`.
fn frames(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn last(mock: &MockProvider) -> RecordedRequest {
    mock.requests().pop().expect("the provider was called")
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_runs_the_model_on_the_gateway_s_account() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let body = json!({"model": MODEL, "max_tokens": 100, "temperature": 0.3, "seed": 42,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
    let (status, headers, got) = whole(&node, &body, &[AUTH, (control::CHUNKS, "3")]).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(headers["cf-aig-provider"], "workers-ai");
    assert_eq!(headers["cf-aig-model"], "@cf/meta/llama-3.1-8b-instruct");

    let seen = last(&mock);
    assert_eq!(seen.path, RUN_PATH);
    assert_eq!(seen.header("authorization"), Some("Bearer cf-token"));
    assert_eq!(
        seen.json().unwrap(),
        json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "max_tokens": 100, "temperature": 0.3, "seed": 42})
    );

    assert_eq!(got["object"], "chat.completion");
    assert_eq!(got["model"], "@cf/meta/llama-3.1-8b-instruct");
    let choice = &got["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], completion_text(3));
    assert_eq!(choice["finish_reason"], "stop");
    let usage = usage_for(seen.body.len(), 3);
    assert_eq!(got["usage"]["prompt_tokens"], usage.input_tokens);
    assert_eq!(got["usage"]["completion_tokens"], usage.output_tokens);
    assert_eq!(got["usage"]["total_tokens"], usage.total());

    // The Responses API over the same codec.
    let resp = send(
        &node,
        RESPONSES,
        &json!({"model": MODEL, "input": "hi", "instructions": "Be brief."}),
        &[AUTH, (control::CHUNKS, "2")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["object"], "response");
    assert_eq!(got["output"][0]["type"], "message", "{got}");
    assert_eq!(
        got["output"][0]["content"][0]["text"],
        completion_text(2),
        "{got}"
    );
    let sent = last(&mock).json().unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(last(&mock).path, RUN_PATH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_translated_event_by_event() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let body = json!({"model": MODEL, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let started = Instant::now();
    let resp = send(
        &node,
        CHAT,
        &body,
        &[
            AUTH,
            (control::CHUNK_DELAY_MS, "300"),
            (control::CHUNKS, "4"),
        ],
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

    let seen = last(&mock);
    assert_eq!(seen.path, RUN_PATH);
    assert_eq!(
        seen.json().unwrap(),
        json!({"messages": [{"role": "user", "content": "hi"}], "stream": true})
    );

    let text = String::from_utf8(all).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let f = frames(&text);
    assert_eq!(f[0]["object"], "chat.completion.chunk");
    let content: String = f
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, completion_text(4));
    let finish: Vec<&Value> = f
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1, "{text}");
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = &f.last().unwrap()["usage"];
    let want = usage_for(seen.body.len(), 4);
    assert_eq!(usage["prompt_tokens"], want.input_tokens, "{text}");
    assert_eq!(usage["completion_tokens"], want.output_tokens, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_round_trip_whole_and_streamed() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let ask = json!({"model": MODEL, "tools": tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let (status, _, got) = whole(&node, &ask, &[AUTH, (SCENARIO_HEADER, "tool_call")]).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(last(&mock).json().unwrap()["tools"], tools());
    let choice = &got["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{got}");
    assert!(choice["message"]["content"].is_null(), "{got}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"location": "Paris"})
    );
    let id = call["id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());

    // The result turn: the assistant's call and the tool's answer in Workers AI's message shape.
    let mut answer = ask.clone();
    answer["messages"].as_array_mut().unwrap().extend([
        choice["message"].clone(),
        json!({"role": "tool", "tool_call_id": id, "content": "21°C, sunny"}),
    ]);
    let (status, _, got) = whole(&node, &answer, &[AUTH]).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    let sent = last(&mock).json().unwrap();
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": "", "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "21°C, sunny", "tool_call_id": id, "name": "get_weather"})
    );

    // Streamed: two parallel calls, numbered from 0, arguments whole.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let resp = send(
        &node,
        CHAT,
        &streamed,
        &[AUTH, (SCENARIO_HEADER, "parallel_tool_calls")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let calls: Vec<Value> = frames(&text)
        .iter()
        .flat_map(|c| {
            c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let starts: Vec<(u64, &str)> = calls
        .iter()
        .filter_map(|c| Some((c["index"].as_u64()?, c["function"]["name"].as_str()?)))
        .collect();
    assert_eq!(starts, [(0, "get_weather"), (1, "get_weather")], "{text}");
    let args = |index: u64| -> Value {
        let joined: String = calls
            .iter()
            .filter(|c| c["index"] == index)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        serde_json::from_str(&joined).unwrap()
    };
    assert_eq!(args(0), json!({"location": "Paris"}));
    assert_eq!(args(1), json!({"location": "London"}));
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_mapped_and_what_it_cannot_do_is_refused() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    for (provider_status, client_status, kind, message) in [
        (
            "429",
            429,
            "rate_limit_error",
            "Capacity temporarily exceeded",
        ),
        ("400", 400, "invalid_request_error", "Invalid input"),
        ("500", 500, "server_error", "Internal server error"),
    ] {
        let (status, _, got) =
            whole(&node, &body, &[AUTH, (control::STATUS, provider_status)]).await;
        assert_eq!(status, client_status, "{provider_status}: {got}");
        assert_eq!(got["error"]["type"], kind, "{got}");
        assert!(
            got["error"]["message"].as_str().unwrap().contains(message),
            "{got}"
        );
    }
    // A missing token: the mock's 401 in Cloudflare's envelope, mapped.
    let (status, _, got) = whole(&node, &body, &[]).await;
    assert_eq!(status, 401, "{got}");
    assert_eq!(got["error"]["type"], "authentication_error");
    assert_eq!(got["error"]["message"], "Authentication error");

    let before = mock.requests().len();
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"stop": "END"}), "stop"),
        (
            json!({"tool_choice": "required", "tools": tools()}),
            "tool_choice",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
            "messages[0].content[1]",
        ),
    ] {
        let mut bad = body.clone();
        bad.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, _, got) = whole(&node, &bad, &[AUTH]).await;
        assert_eq!(status, 400, "{param}: {got}");
        assert_eq!(got["error"]["param"], param, "{got}");
        assert_eq!(got["error"]["code"], "unsupported_parameter", "{got}");
    }
    // A bare Workers AI name is refused: split on its first `/`, its prefix `@cf` names no provider (2008).
    let (status, _, got) = whole(
        &node,
        &json!({"model": "@cf/meta/llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "hi"}]}),
        &[AUTH],
    )
    .await;
    assert_eq!(status, 400, "{got}");
    assert_eq!(got["error"][0]["code"], 2008, "{got}");
    assert_eq!(mock.requests().len(), before, "nothing was sent");
}
