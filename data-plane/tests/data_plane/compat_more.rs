//! `/compat` to Bedrock (SigV4 from a stored key pair, the binary event stream decoded), Cohere, and the Responses
//! API as a client format over any translated provider.

use gatehouse_mock_providers::{MockProvider, SCENARIO_HEADER, control};
use serde_json::{Value, json};

use crate::node::{Node, gateway, stored_key};

async fn post(node: &Node, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = node.http.post(node.url(path)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

const CHAT: &str = "/v1/acme/gw/compat/chat/completions";
const RESPONSES: &str = "/v1/acme/gw/compat/responses";

fn frames(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_is_signed_with_the_stored_key_pair_and_its_event_stream_translated() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let secret = json!({"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "region": "eu-west-1"});
    let mut doc = gateway("acme", "gw", 1);
    doc.provider_configs = vec![stored_key("aws-bedrock", "main", true, &secret.to_string())];
    node.add_gateway(doc);
    let model = "aws-bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0";
    let body = json!({"model": model, "max_tokens": 50,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
    let (status, text) = post(&node, CHAT, &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert!(
        json["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let seen = mock.requests().pop().unwrap();
    assert_eq!(
        seen.path,
        "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"
    );
    let auth = seen.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
    assert!(!auth.contains("wJalrXUtnFEMI"), "the secret never travels");
    assert!(seen.header("x-amz-date").is_some());
    let sent = seen.json().unwrap();
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 50);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    streamed["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    let (status, text) = post(
        &node,
        CHAT,
        &streamed,
        &[(SCENARIO_HEADER, "tool_call"), (control::CHUNKS, "3")],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let f = frames(&text);
    let args: String = f
        .iter()
        .flat_map(|c| {
            c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|t| t["function"]["arguments"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap()["location"],
        "Paris",
        "{text}"
    );
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
    assert_eq!(
        mock.requests().pop().unwrap().path,
        "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"
    );

    // Throttling maps to 429 in OpenAI's shape.
    let (status, text) = post(&node, CHAT, &body, &[(control::STATUS, "429")]).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["type"],
        "rate_limit_error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_chat_tools_and_streams() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let auth = ("authorization", "Bearer co-key");
    let body = json!({"model": "cohere/command-a-03-2025", "messages": [{"role": "user", "content": "hi"}]});
    let (status, text) = post(&node, CHAT, &body, &[auth]).await;
    assert_eq!(status, 200, "{text}");
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path, "/v2/chat");
    assert_eq!(seen.header("authorization"), Some("Bearer co-key"));
    assert_eq!(seen.json().unwrap()["model"], "command-a-03-2025");
    let mut tools = body.clone();
    tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    let (status, text) = post(&node, CHAT, &tools, &[auth, (SCENARIO_HEADER, "tool_call")]).await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls", "{json}");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, text) = post(&node, CHAT, &streamed, &[auth, (SCENARIO_HEADER, "length")]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"finish_reason\":\"length\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responses_api_is_served_over_translated_providers() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let auth = ("authorization", "Bearer sk-ant");
    let body = json!({"model": "anthropic/claude-sonnet-4-5", "instructions": "Be brief.", "input": "hi",
        "max_output_tokens": 200});
    let (status, text) = post(&node, RESPONSES, &body, &[auth]).await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["object"], "response");
    assert_eq!(json["status"], "completed");
    assert_eq!(json["output"][0]["type"], "message");
    assert!(json["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let sent = mock.requests().pop().unwrap().json().unwrap();
    assert!(sent["system"].to_string().contains("Be brief."), "{sent}");
    assert_eq!(sent["max_tokens"], 200);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, text) = post(&node, RESPONSES, &streamed, &[auth]).await;
    assert_eq!(status, 200, "{text}");
    let events = frames(&text);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"response.created"), "{types:?}");
    assert_eq!(types.last(), Some(&"response.completed"), "{types:?}");
    assert!(types.contains(&"response.output_text.delta"));
    let seq: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");

    // Stored responses are refused clearly, nothing sent.
    let before = mock.requests().len();
    let mut stored = body.clone();
    stored["previous_response_id"] = json!("resp_123");
    let (status, text) = post(&node, RESPONSES, &stored, &[auth]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("previous_response_id"), "{text}");
    assert_eq!(mock.requests().len(), before);
}
