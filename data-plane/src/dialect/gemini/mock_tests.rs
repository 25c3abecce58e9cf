//! The codec against the mock Gemini provider: what it encodes is accepted on both hosts, every `x-mock-scenario`
//! answer decodes whole and streamed as the bytes arrive, errors map, and the Vertex token exchange works against
//! the mock's token endpoint.

use gatehouse_mock_providers::{
    GEMINI_THOUGHTS_TOKENS, MockProvider, SCENARIO_HEADER, completion_text, usage_for,
};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;

use super::{AI_STUDIO, GeminiCodec, VERTEX};
use crate::dialect::chat::{ChatRequest, ChatResponse, FinishReason, StreamEvent};
use crate::dialect::codec::{ChatCodec, Target};
use crate::dialect::test_support::{decode_stream, fold_in_order};
use crate::dialect::vertex_auth::{self, ServiceAccount};

fn request(stream: bool) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "google-ai-studio/gemini-2.5-flash",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                           "additionalProperties": false}}}],
        "stream": stream,
    }))
    .unwrap()
}

fn studio(stream: bool) -> Target<'static> {
    Target {
        provider: AI_STUDIO,
        model: "gemini-2.5-flash",
        stream,
        project: None,
        region: None,
    }
}

/// Sends the encoded request with the scenario; returns the answer and the request body's length (the mock's
/// usage is derived from it).
async fn send(
    mock: &MockProvider,
    target: &Target<'_>,
    credential: (&str, &str),
    scenario: &str,
) -> (reqwest::Response, usize) {
    let encoded = GeminiCodec.encode(&request(target.stream), target).unwrap();
    let len = encoded.body.len();
    let res = reqwest::Client::new()
        .post(mock.url(&encoded.path))
        .header(credential.0, credential.1)
        .header("content-type", "application/json")
        .header(SCENARIO_HEADER, scenario)
        .header("x-mock-chunks", "3")
        .body(encoded.body)
        .send()
        .await
        .unwrap();
    (res, len)
}

async fn whole(mock: &MockProvider, scenario: &str) -> (ChatResponse, usize) {
    let (res, len) = send(
        mock,
        &studio(false),
        ("x-goog-api-key", "AIza-test"),
        scenario,
    )
    .await;
    assert_eq!(res.status(), 200, "{scenario}");
    (
        GeminiCodec.decode(&res.bytes().await.unwrap()).unwrap(),
        len,
    )
}

async fn streamed(mock: &MockProvider, scenario: &str) -> Vec<StreamEvent> {
    let (res, _) = send(
        mock,
        &studio(true),
        ("x-goog-api-key", "AIza-test"),
        scenario,
    )
    .await;
    assert_eq!(res.status(), 200, "{scenario}");
    decode_stream(&GeminiCodec, res).await
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
        let (w, len) = whole(&mock, scenario).await;
        let s = fold_in_order(&streamed(&mock, scenario).await);
        assert_eq!(
            (
                &w.text,
                &w.reasoning,
                &w.tool_calls,
                w.finish_reason,
                w.usage
            ),
            (
                &s.text,
                &s.reasoning,
                &s.tool_calls,
                s.finish_reason,
                s.usage
            ),
            "{scenario}"
        );
        let usage = w.usage.unwrap();
        let expected = usage_for(len, 3);
        assert_eq!(usage.prompt_tokens, expected.input_tokens, "{scenario}");
        match scenario {
            "text" | "cached" | "length" => {
                assert_eq!(w.text.as_deref(), Some(completion_text(3).as_str()));
            }
            "tool_call" | "parallel_tool_calls" => {
                assert_eq!(w.finish_reason, Some(FinishReason::ToolCalls));
                assert_eq!(w.text, None);
                let ids: Vec<&str> = w.tool_calls.iter().map(|c| c.id.as_str()).collect();
                let want: &[&str] = if scenario == "tool_call" {
                    &["call_0"]
                } else {
                    &["call_0", "call_1"]
                };
                assert_eq!(ids, want);
                assert_eq!(w.tool_calls[0].function.name, "get_weather");
                assert_eq!(
                    w.tool_calls[0].function.arguments,
                    r#"{"location":"Paris"}"#
                );
            }
            "reasoning" => {
                assert!(w.reasoning.is_some());
                assert_eq!(usage.reasoning_tokens, GEMINI_THOUGHTS_TOKENS);
                assert_eq!(
                    usage.completion_tokens,
                    expected.output_tokens + GEMINI_THOUGHTS_TOKENS,
                    "thoughts count in the completion"
                );
            }
            "content_filter" => {
                assert_eq!(w.finish_reason, Some(FinishReason::ContentFilter));
                assert_eq!(w.text, None);
            }
            _ => unreachable!(),
        }
        match scenario {
            "length" => assert_eq!(w.finish_reason, Some(FinishReason::Length)),
            "cached" => assert_eq!(usage.cached_tokens, 8),
            "text" => assert_eq!(w.finish_reason, Some(FinishReason::Stop)),
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_mock_receives_what_the_codec_encoded() {
    let mock = MockProvider::start();
    whole(&mock, "text").await;
    let got = mock.requests()[0].json().unwrap();
    assert_eq!(
        got["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        got["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["additionalProperties"],
        false
    );
}

#[tokio::test]
async fn provider_errors_are_mapped() {
    let mock = MockProvider::start();
    let target = studio(false);
    for (status, want, code) in [
        ("429", 429, Some("RESOURCE_EXHAUSTED")),
        ("503", 503, Some("UNAVAILABLE")),
        ("500", 500, Some("INTERNAL")),
    ] {
        let encoded = GeminiCodec.encode(&request(false), &target).unwrap();
        let res = reqwest::Client::new()
            .post(mock.url(&encoded.path))
            .header("x-goog-api-key", "k")
            .header("x-mock-status", status)
            .body(encoded.body)
            .send()
            .await
            .unwrap();
        let http = res.status().as_u16();
        let e = GeminiCodec.decode_error(http, &res.bytes().await.unwrap());
        assert_eq!((e.status, e.code.as_deref()), (want, code), "{status}");
    }
    // A wrong key on AI Studio is a 400 upstream but a 401 for the client.
    let strict = MockProvider::start_with(gatehouse_mock_providers::Behaviour {
        api_key: Some("AIza-right".into()),
        ..Default::default()
    });
    let (res, _) = send(&strict, &target, ("x-goog-api-key", "AIza-wrong"), "text").await;
    assert_eq!(res.status(), 400);
    let e = GeminiCodec.decode_error(400, &res.bytes().await.unwrap());
    assert_eq!(
        (e.status, e.code.as_deref()),
        (401, Some("invalid_api_key"))
    );
}

#[tokio::test]
async fn vertex_exchanges_the_service_account_for_a_token_then_answers() {
    let mock = MockProvider::start();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let secret = json!({
        "type": "service_account", "project_id": "my-proj", "private_key_id": "k1",
        "private_key": key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        "client_email": "gw@my-proj.iam.gserviceaccount.com",
        "token_uri": mock.url("/token"), "region": "us-central1",
    });
    let account = ServiceAccount::parse(&secret.to_string()).unwrap();
    let res = reqwest::Client::new()
        .post(&account.token_uri)
        .header("content-type", vertex_auth::TOKEN_REQUEST_CONTENT_TYPE)
        .body(account.token_request_body(1_700_000_000).unwrap())
        .send()
        .await
        .unwrap();
    let token = vertex_auth::parse_token_response(&res.bytes().await.unwrap()).unwrap();
    assert!(token.access_token.starts_with("ya29.mock-"));

    let target = Target {
        provider: VERTEX,
        model: "google/gemini-2.5-pro",
        stream: false,
        project: Some(&account.project_id),
        region: account.region.as_deref(),
    };
    let bearer = format!("Bearer {}", token.access_token);
    let (res, _) = send(&mock, &target, ("authorization", &bearer), "text").await;
    assert_eq!(res.status(), 200);
    let answer = GeminiCodec.decode(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.model.as_deref(), Some("gemini-2.5-pro"));
    let path = mock.requests().last().unwrap().path.clone();
    assert_eq!(
        path,
        "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"
    );
    // Without the exchange (the raw secret as a bearer), Vertex refuses.
    let (res, _) = send(
        &mock,
        &target,
        ("authorization", "Bearer not-a-token"),
        "text",
    )
    .await;
    let e = GeminiCodec.decode_error(res.status().as_u16(), &res.bytes().await.unwrap());
    assert_eq!((e.status, e.kind.as_str()), (401, "authentication_error"));
}
