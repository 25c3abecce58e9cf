//! `/compat` to Gemini: Google AI Studio with the SDK's key re-sent as `x-goog-api-key`, and Vertex AI with a
//! stored service-account JSON exchanged at its `token_uri` (the mock's fake token endpoint) for a bearer token.

use gatehouse_mock_providers::{MockProvider, SCENARIO_HEADER, control};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

use crate::node::{Node, gateway, stored_key};

const COMPAT: &str = "/v1/acme/gw/compat/chat/completions";

async fn post(node: &Node, body: &Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = node.http.post(node.url(COMPAT)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_studio_text_tools_and_streams() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let auth = ("authorization", "Bearer goog-key");
    let body = json!({"model": "google-ai-studio/gemini-2.5-flash", "max_tokens": 100,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
    let (status, text) = post(&node, &body, &[auth]).await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert!(
        json["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some("goog-key"));
    assert_eq!(seen.header("authorization"), None);
    let sent = seen.json().unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 100);

    // A tool call, and reasoning tokens counted in completion_tokens.
    let mut tools = body.clone();
    tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    let (status, text) = post(&node, &tools, &[auth, (SCENARIO_HEADER, "tool_call")]).await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        json["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let (_, text) = post(&node, &body, &[auth, (SCENARIO_HEADER, "reasoning")]).await;
    let json: Value = serde_json::from_str(&text).unwrap();
    assert!(
        json["usage"]["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{json}"
    );

    // Streamed with usage.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, text) = post(&node, &streamed, &[auth, (control::CHUNKS, "3")]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");
    assert!(text.contains("\"prompt_tokens\""), "{text}");
    assert_eq!(
        mock.requests().pop().unwrap().path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );

    // A provider error in OpenAI's shape.
    let (status, text) = post(&node, &body, &[auth, (control::STATUS, "429")]).await;
    assert_eq!(status, 429, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["error"]["type"], "rate_limit_error", "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_exchanges_the_stored_service_account_for_a_token_once() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let account = json!({
        "type": "service_account", "project_id": "my-proj", "private_key_id": "k1",
        "private_key": key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        "client_email": "gw@my-proj.iam.gserviceaccount.com",
        "token_uri": mock.url("/token"), "region": "europe-west4"
    });
    let mut doc = gateway("acme", "gw", 1);
    doc.provider_configs = vec![stored_key(
        "google-vertex-ai",
        "main",
        true,
        &account.to_string(),
    )];
    node.add_gateway(doc);
    let body = json!({"model": "google-vertex-ai/google/gemini-2.5-pro",
        "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let (status, text) = post(&node, &body, &[]).await;
        assert_eq!(status, 200, "{text}");
    }
    let seen = mock.requests();
    let token_calls: Vec<_> = seen.iter().filter(|r| r.path.ends_with("/token")).collect();
    assert_eq!(
        token_calls.len(),
        1,
        "the token is cached: {:?}",
        seen.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let calls: Vec<_> = seen
        .iter()
        .filter(|r| r.path.contains(":generateContent"))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].path,
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"
    );
    assert!(
        calls[1]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ya29."),
        "{:?}",
        calls[1].headers
    );
    assert!(
        !calls[1]
            .header("authorization")
            .unwrap()
            .contains("private_key")
    );
}
