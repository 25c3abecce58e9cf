//! Each format has the fields and framing the official SDKs read.

use base64::Engine as _;
use gatehouse_mock_providers::{DEFAULT_CHUNKS, MockProvider, completion_text, usage_for};
use serde_json::{Value, json};

use crate::support::{anthropic, chat_body, data, events, messages_body, named, openai};

#[tokio::test]
async fn a_chat_completion_has_the_fields_and_usage_of_openai() {
    let mock = MockProvider::start();
    let body = chat_body(false);
    let res = openai(&mock, "/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().contains_key("x-request-id"));
    let v: Value = res.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["created"].is_u64());
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        completion_text(DEFAULT_CHUNKS)
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = usage_for(body.to_string().len(), DEFAULT_CHUNKS);
    assert_eq!(v["usage"]["prompt_tokens"], usage.input_tokens);
    assert_eq!(v["usage"]["completion_tokens"], usage.output_tokens);
    assert_eq!(v["usage"]["total_tokens"], usage.total());
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn a_chat_stream_is_data_events_with_a_usage_chunk_and_done_last() {
    let mock = MockProvider::start();
    let res = openai(&mock, "/v1/chat/completions")
        .header("x-mock-chunks", "4")
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert!(
        res.headers().get("content-length").is_none(),
        "streams are chunked"
    );
    let text = res.text().await.unwrap();
    let evs = events(&text);
    assert_eq!(*evs.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = evs[..evs.len() - 1].iter().map(|e| data(e)).collect();
    // role, 4 pieces, finish, usage
    assert_eq!(chunks.len(), 7);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, completion_text(4));
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..6].iter().all(|c| c["usage"].is_null()));
    assert_eq!(chunks[6]["choices"], json!([]));
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 4);
    assert!(chunks[6]["usage"]["prompt_tokens_details"]["cached_tokens"].is_u64());
}

#[tokio::test]
async fn a_chat_stream_without_include_usage_has_no_usage_field() {
    let mock = MockProvider::start();
    let text = openai(&mock, "/v1/chat/completions")
        .json(&json!({"model": "m", "messages": [], "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let evs = events(&text);
    assert_eq!(*evs.last().unwrap(), "data: [DONE]");
    for e in &evs[..evs.len() - 1] {
        assert!(data(e).get("usage").is_none(), "{e}");
    }
}

#[tokio::test]
async fn a_response_carries_output_text_and_usage() {
    let mock = MockProvider::start();
    let v: Value = openai(&mock, "/v1/responses")
        .json(&json!({"model": "gpt-4.1", "input": "Say hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        completion_text(DEFAULT_CHUNKS)
    );
    assert_eq!(v["usage"]["output_tokens"], DEFAULT_CHUNKS);
    assert_eq!(
        v["usage"]["total_tokens"].as_u64().unwrap(),
        v["usage"]["input_tokens"].as_u64().unwrap() + DEFAULT_CHUNKS as u64
    );
}

#[tokio::test]
async fn a_response_stream_is_named_events_ending_in_response_completed_with_usage() {
    let mock = MockProvider::start();
    let text = openai(&mock, "/v1/responses")
        .header("x-mock-chunks", "3")
        .json(&json!({"model": "gpt-4.1", "input": "Say hello", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let evs: Vec<(&str, Value)> = events(&text).into_iter().map(named).collect();
    for (i, (name, v)) in evs.iter().enumerate() {
        assert_eq!(v["type"], *name, "the event line and `type` agree");
        assert_eq!(v["sequence_number"], i);
    }
    assert_eq!(evs[0].0, "response.created");
    let deltas: String = evs
        .iter()
        .filter(|(n, _)| *n == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, completion_text(3));
    let (last, done) = evs.last().unwrap();
    assert_eq!(*last, "response.completed");
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(done["response"]["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn embeddings_come_as_floats_or_as_base64_little_endian_floats() {
    let mock = MockProvider::start();
    let floats: Value = openai(&mock, "/v1/embeddings")
        .json(
            &json!({"model": "text-embedding-3-small", "input": ["a", "b", "c"], "dimensions": 4}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["data"].as_array().unwrap().len(), 3);
    assert_eq!(floats["data"][2]["index"], 2);
    assert_eq!(floats["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert!(floats["usage"]["prompt_tokens"].is_u64());

    let b64: Value = openai(&mock, "/v1/embeddings")
        .json(&json!({"model": "m", "input": "a", "dimensions": 4, "encoding_format": "base64"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let expected: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(decoded, expected);
}

#[tokio::test]
async fn an_anthropic_message_has_its_usage_with_cache_fields() {
    let mock = MockProvider::start();
    let res = anthropic(&mock)
        .json(&messages_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("request-id"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": completion_text(DEFAULT_CHUNKS)})
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["usage"]["output_tokens"], DEFAULT_CHUNKS);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn an_anthropic_stream_has_the_event_sequence_of_the_messages_api() {
    let mock = MockProvider::start();
    let res = anthropic(&mock)
        .header("x-mock-chunks", "2")
        .json(&messages_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    let evs: Vec<(&str, Value)> = events(&text).into_iter().map(named).collect();
    let names: Vec<&str> = evs.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, v) in &evs {
        assert_eq!(v["type"], *name);
    }
    let usage = &evs[0].1["message"]["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
    assert_eq!(
        evs[3].1["delta"],
        json!({"type": "text_delta", "text": "Hello"})
    );
    assert_eq!(evs[6].1["usage"]["output_tokens"], 2);
    assert_eq!(evs[6].1["delta"]["stop_reason"], "end_turn");
}

#[tokio::test]
async fn the_openai_routes_answer_under_any_base_path() {
    let mock = MockProvider::start();
    let res = openai(&mock, "/openai/v1/chat/completions")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
