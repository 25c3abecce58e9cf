//! The codec against the mock Cohere provider: what it encodes is accepted, and every `x-mock-scenario` answer
//! decodes the same whole and streamed (bytes fed as they arrive), and streams on through the Responses encoder.

use gatehouse_mock_providers::{MockProvider, SCENARIO_HEADER, completion_text};
use serde_json::{Value, json};

use super::CohereCodec;
use crate::dialect::chat::{ChatRequest, ChatResponse, FinishReason, StreamEvent, Usage};
use crate::dialect::codec::{ChatCodec, Target};
use crate::dialect::responses::{RequestEcho, ResponsesStreamEncoder};
use crate::dialect::test_support::{decode_stream, fold_in_order};

fn request(stream: bool) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "cohere/command-a-03-2025",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "stream": stream,
    }))
    .unwrap()
}

async fn send(mock: &MockProvider, scenario: &str, stream: bool) -> reqwest::Response {
    let target = Target {
        provider: "cohere",
        model: "command-a-03-2025",
        stream,
        project: None,
        region: None,
    };
    let encoded = CohereCodec.encode(&request(stream), &target).unwrap();
    let res = reqwest::Client::new()
        .post(mock.url(&encoded.path))
        .bearer_auth("co-test")
        .header("content-type", "application/json")
        .header(SCENARIO_HEADER, scenario)
        .header("x-mock-chunks", "3")
        .body(encoded.body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{scenario}");
    res
}

async fn whole(mock: &MockProvider, scenario: &str) -> ChatResponse {
    let body = send(mock, scenario, false).await.bytes().await.unwrap();
    CohereCodec.decode(&body).unwrap()
}

async fn streamed(mock: &MockProvider, scenario: &str) -> Vec<StreamEvent> {
    decode_stream(&CohereCodec, send(mock, scenario, true).await).await
}

#[tokio::test]
async fn every_scenario_decodes_the_same_whole_and_streamed() {
    let mock = MockProvider::start();
    for scenario in [
        "text",
        "tool_call",
        "parallel_tool_calls",
        "reasoning",
        "length",
        "content_filter",
        "cached",
    ] {
        // Each answer has its own ids, and the request bodies differ by the stream flag (input tokens).
        let same = |mut r: ChatResponse| {
            r.id = None;
            r.usage.as_mut().unwrap().prompt_tokens = 0;
            for call in &mut r.tool_calls {
                assert!(call.id.starts_with("get_weather_"), "{}", call.id);
                call.id.clear();
            }
            r
        };
        let whole = same(whole(&mock, scenario).await);
        let streamed = same(fold_in_order(&streamed(&mock, scenario).await));
        assert_eq!(whole, streamed, "{scenario}");
    }
}

#[tokio::test]
async fn scenarios_map_to_openai_meanings() {
    let mock = MockProvider::start();
    let text = whole(&mock, "text").await;
    assert_eq!(text.text.as_deref(), Some(completion_text(3).as_str()));
    assert_eq!(text.finish_reason, Some(FinishReason::Stop));
    let usage = text.usage.unwrap();
    assert_eq!((usage.completion_tokens, usage.cached_tokens), (3, 0));

    let calls = whole(&mock, "parallel_tool_calls").await;
    assert_eq!(calls.finish_reason, Some(FinishReason::ToolCalls));
    let args: Vec<&str> = calls
        .tool_calls
        .iter()
        .map(|c| c.function.arguments.as_str())
        .collect();
    assert_eq!(
        args,
        [r#"{"location":"Paris"}"#, r#"{"location":"London"}"#]
    );
    assert!(
        calls
            .tool_calls
            .iter()
            .all(|c| c.function.name == "get_weather")
    );
    // The plan is the text of a turn that only calls tools.
    assert_eq!(calls.text.as_deref(), Some("I will call get_weather."));

    let reasoning = whole(&mock, "reasoning").await;
    assert!(reasoning.reasoning.is_some_and(|r| !r.is_empty()));
    assert_eq!(
        whole(&mock, "length").await.finish_reason,
        Some(FinishReason::Length)
    );
    let cached = whole(&mock, "cached").await.usage.unwrap();
    assert_eq!(
        cached,
        Usage {
            cached_tokens: 8,
            ..usage
        }
    );
}

#[tokio::test]
async fn what_the_mock_received_is_cohere_v2() {
    let mock = MockProvider::start();
    send(&mock, "text", false).await;
    let recorded = mock.requests().pop().unwrap();
    assert_eq!(recorded.path, "/v2/chat");
    let body: Value = serde_json::from_slice(&recorded.body).unwrap();
    assert_eq!(body["model"], "command-a-03-2025");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["stream"], false);
}

#[tokio::test]
async fn a_cohere_stream_reaches_a_responses_client_whole() {
    let mock = MockProvider::start();
    let mut encoder =
        ResponsesStreamEncoder::new("command-a-03-2025", 1, "gw", RequestEcho::default());
    let mut out = Vec::new();
    for event in streamed(&mock, "parallel_tool_calls").await {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(true, &mut out);
    let text = String::from_utf8(out).unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: response.completed\n"), "{last}");
    let data: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    let output = &data["response"]["output"];
    assert_eq!(output[0]["content"][0]["text"], "I will call get_weather.");
    assert_eq!(output[1]["arguments"], r#"{"location":"Paris"}"#);
    assert_eq!(output[2]["arguments"], r#"{"location":"London"}"#);
    assert_eq!(data["response"]["usage"]["output_tokens"], 3);
}
