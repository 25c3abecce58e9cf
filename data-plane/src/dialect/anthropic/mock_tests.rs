//! The codec against the mock Anthropic provider: what it encodes is accepted, and every `x-mock-scenario` answer
//! decodes, whole and streamed as the bytes arrive.

use gatehouse_mock_providers::{MockProvider, SCENARIO_HEADER, completion_text};
use serde_json::json;

use super::AnthropicCodec;
use crate::dialect::chat::{ChatRequest, ChatResponse, FinishReason, StreamEvent};
use crate::dialect::codec::{ChatCodec, Target};
use crate::dialect::test_support::{decode_stream, fold_in_order};

fn request(stream: bool) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "stream": stream,
    }))
    .unwrap()
}

async fn send(mock: &MockProvider, scenario: &str, stream: bool) -> reqwest::Response {
    let target = Target {
        provider: "anthropic",
        model: "claude-sonnet-4-5",
        stream,
        project: None,
        region: None,
    };
    let encoded = AnthropicCodec.encode(&request(stream), &target).unwrap();
    let mut req = reqwest::Client::new()
        .post(mock.url(&encoded.path))
        .header("x-api-key", "sk-ant-test")
        .header("content-type", "application/json")
        .header(SCENARIO_HEADER, scenario)
        .header("x-mock-chunks", "3")
        .body(encoded.body);
    for (name, value) in encoded.headers {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{scenario}");
    res
}

async fn whole(mock: &MockProvider, scenario: &str) -> ChatResponse {
    let body = send(mock, scenario, false).await.bytes().await.unwrap();
    AnthropicCodec.decode(&body).unwrap()
}

async fn streamed(mock: &MockProvider, scenario: &str) -> Vec<StreamEvent> {
    decode_stream(&AnthropicCodec, send(mock, scenario, true).await).await
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
        let answer = whole(&mock, scenario).await;
        let mut streamed = fold_in_order(&streamed(&mock, scenario).await);
        // Each request has its own ids, and the streamed request's body (`"stream":true`) counts more input.
        assert_ne!(streamed.id, answer.id);
        streamed.id.clone_from(&answer.id);
        for (s, a) in streamed.tool_calls.iter_mut().zip(&answer.tool_calls) {
            assert!(s.id.starts_with("toolu_mock"));
            s.id.clone_from(&a.id);
        }
        let (sent, got) = (answer.usage.unwrap(), streamed.usage.as_mut().unwrap());
        assert!(got.prompt_tokens >= sent.prompt_tokens);
        got.prompt_tokens = sent.prompt_tokens;
        assert_eq!(streamed, answer, "{scenario}");

        let text = completion_text(3);
        match scenario {
            "tool_call" | "parallel_tool_calls" => {
                assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
                assert_eq!(answer.text, None);
                assert_eq!(answer.tool_calls[0].function.name, "get_weather");
                assert_eq!(
                    answer.tool_calls[0].function.arguments,
                    r#"{"location":"Paris"}"#
                );
                if scenario == "parallel_tool_calls" {
                    assert_eq!(
                        answer.tool_calls[1].function.arguments,
                        r#"{"location":"London"}"#
                    );
                }
            }
            _ => assert_eq!(answer.text.as_deref(), Some(text.as_str()), "{scenario}"),
        }
        let usage = answer.usage.unwrap();
        assert_eq!(usage.completion_tokens, 3);
        let want = match scenario {
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_call" | "parallel_tool_calls" => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        assert_eq!(answer.finish_reason, Some(want), "{scenario}");
        if scenario == "reasoning" {
            assert!(answer.reasoning.as_deref().is_some_and(|r| !r.is_empty()));
        }
        if scenario == "cached" {
            assert_eq!((usage.cached_tokens, usage.cache_creation_tokens), (8, 4));
            // The mock carves the cache counts out of its input count: the inclusive prompt is unchanged.
            assert_eq!(
                usage.prompt_tokens,
                whole(&mock, "text").await.usage.unwrap().prompt_tokens
            );
        }
    }
    let sent: serde_json::Value = serde_json::from_slice(&mock.requests()[0].body).unwrap();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        mock.requests()[0].headers["anthropic-version"],
        "2023-06-01"
    );
}

#[tokio::test]
async fn a_provider_error_is_mapped() {
    let mock = MockProvider::start();
    let res = reqwest::Client::new()
        .post(mock.url("/v1/messages"))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-status", "529")
        .json(&json!({"model": "m", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let error = AnthropicCodec.decode_error(status, &res.bytes().await.unwrap());
    assert_eq!(error.status, 503);
    assert_eq!(error.code.as_deref(), Some("overloaded_error"));
}
