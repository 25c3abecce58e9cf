//! Workers AI's native run endpoint, `POST …/accounts/{account_id}/ai/run/{model}`, as Cloudflare answers it. The
//! credential is a Cloudflare API token as `Authorization: Bearer`. Errors are Cloudflare's v4 envelope
//! `{success:false, errors:[{code, message}], messages:[], result:null}`.
//!
//! - Text-embeddings models (`@cf/baai/bge-base-en-v1.5`, any model named `bge-…` or `…embed…`): `{text: string |
//!   string[]}` → `{result:{shape:[n, d], data:[[…]], pooling:"mean"}, success:true, errors:[], messages:[]}`.
//!   Vectors are [`embedding_vector`] of the input's position, [`DEFAULT_EMBEDDING_DIMENSIONS`] long; no token
//!   count is reported.
//! - Text-generation models (`@cf/meta/llama-3.1-8b-instruct`, every other model): `{messages:[{role, content}],
//!   stream?, tools?, …}` (each message's `content` a string, as Workers AI requires) →
//!   `{result:{response, tool_calls, usage:{prompt_tokens, completion_tokens, total_tokens}}, success:true, …}`;
//!   with `stream: true`, `data: {"response":"…","p":"…"}` events one per piece (spaced by the chunk delay), a
//!   last one with `usage`, then `data: [DONE]`. The `tool_call` and `parallel_tool_calls` scenarios call the
//!   request's first tool (`response: null`, `tool_calls:[{name, arguments: object}]`; streamed, one event per
//!   call). Workers AI's wire format names no finish reason, reasoning or cached tokens, so the other scenarios
//!   (`length`, `reasoning`, `content_filter`, `cached`) answer plain text.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, data_event, event_stream, json as json_response};
use crate::refusal::{ErrorSpec, Refusal, bearer};
use crate::scenario::tool_call_arguments;
use crate::text::{DEFAULT_EMBEDDING_DIMENSIONS, embedding_vector, piece};

/// Workers AI's input-validation error code.
const CODE_INVALID_INPUT: u16 = 5006;

/// The model of `…/ai/run/{model}` (everything after `/ai/run/`).
pub(crate) fn model_in_path(path: &str) -> Option<&str> {
    path.split_once("/ai/run/")
        .map(|(_, model)| model)
        .filter(|m| !m.is_empty())
}

/// `POST …/ai/run/{model}`: text embeddings or text generation, by the model's name.
pub(crate) fn run(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    if !(a.model.starts_with("@cf/") || a.model.starts_with("@hf/")) {
        return Err(invalid(format!("No such model {} or task", a.model)));
    }
    if is_embedding_model(a.model) {
        embed(body)
    } else {
        generate(body, a)
    }
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param: None,
        code: None,
    }
}

/// Whether a model is a text-embeddings model (`@cf/baai/bge-…`, `…embed…`); every other model generates text.
fn is_embedding_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    name.starts_with("bge-") || name.contains("embed")
}

/// A text-embeddings model's answer.
fn embed(body: &Value) -> Result<Response<MockBody>, Invalid> {
    let texts: Option<Vec<&str>> = match body.get("text") {
        Some(Value::String(s)) => Some(vec![s.as_str()]),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(Value::as_str).collect::<Option<Vec<_>>>()
        }
        _ => None,
    };
    let Some(texts) = texts else {
        return Err(Invalid {
            message: "AiError: AiError: Error: required properties at '/' are 'text' \
                      (a string or a non-empty array of strings)"
                .to_owned(),
            param: None,
            code: None,
        });
    };
    let data: Vec<Vec<f32>> = (0..texts.len())
        .map(|i| embedding_vector(i, DEFAULT_EMBEDDING_DIMENSIONS))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "result": {
                "shape": [texts.len(), DEFAULT_EMBEDDING_DIMENSIONS],
                "data": data,
                "pooling": "mean",
            },
            "success": true,
            "errors": [],
            "messages": [],
        }),
    ))
}

/// A text-generation model's answer, whole or streamed.
fn generate(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    let Some(messages) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return Err(invalid(
            "AiError: AiError: Error: required properties at '/' are 'messages' (or 'prompt')",
        ));
    };
    for (i, m) in messages.iter().enumerate() {
        if !m.get("role").is_some_and(Value::is_string)
            || !m.get("content").is_some_and(Value::is_string)
        {
            return Err(invalid(format!(
                "AiError: AiError: Error: Type mismatch of '/messages/{i}', 'role' and 'content' must be strings"
            )));
        }
    }
    let calls = match a.scenario.tool_calls() {
        0 => Vec::new(),
        n => vec![first_tool(body)?; n],
    };
    let pieces: Vec<&str> = if calls.is_empty() {
        (0..a.chunks).map(piece).collect()
    } else {
        Vec::new()
    };
    let usage = json!({
        "prompt_tokens": a.usage.input_tokens,
        "completion_tokens": a.usage.output_tokens,
        "total_tokens": a.usage.total(),
    });
    let tool_call = |n: usize, name: &str| {
        let arguments: Value = serde_json::from_str(&tool_call_arguments(n)).unwrap_or_default();
        json!({"name": name, "arguments": arguments})
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let mut events: Vec<Bytes> = pieces
            .iter()
            .enumerate()
            .map(|(i, text)| data_event(&json!({"response": text, "p": padding(i)})))
            .collect();
        for (n, name) in calls.iter().enumerate() {
            events.push(data_event(
                &json!({"response": "", "tool_calls": [tool_call(n, name)], "p": padding(n)}),
            ));
        }
        events.push(data_event(&json!({"response": "", "usage": usage})));
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        return Ok(event_stream(events, a.chunk_delay));
    }
    let calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(n, name)| tool_call(n, name))
        .collect();
    let response = if calls.is_empty() {
        json!(pieces.concat())
    } else {
        Value::Null
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "result": {"response": response, "tool_calls": calls, "usage": usage},
            "success": true,
            "errors": [],
            "messages": [],
        }),
    ))
}

/// The name of the request's first tool (OpenAI's `{type, function:{name}}` or Workers AI's flat `{name}`).
fn first_tool(body: &Value) -> Result<&str, Invalid> {
    body.pointer("/tools/0/function/name")
        .or_else(|| body.pointer("/tools/0/name"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid("x-mock-scenario asks for a tool call, but the request has no tools")
        })
}

/// The `p` field Cloudflare pads streamed events with (a random length there; fixed here).
fn padding(i: usize) -> &'static str {
    &"abcdefghijklmnopqrstuvwxyz"[..4 + i % 8]
}

/// A Cloudflare API token as `Authorization: Bearer`.
pub(crate) fn check_auth(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    match bearer(headers) {
        Some(key) if expected.is_none_or(|want| want == key) => Ok(()),
        _ => Err(Refusal {
            status: 401,
            message: "Authentication error".to_owned(),
            kind: "10000",
            code: None,
        }),
    }
}

/// Cloudflare's v4 error envelope. The error code is the spec's kind when it is a number, else the usual code for
/// the status.
pub(crate) fn error_body(status: StatusCode, spec: &ErrorSpec<'_>) -> Value {
    let (code, message) = match status.as_u16() {
        400 => (CODE_INVALID_INPUT, "Invalid input"),
        401 => (10000, "Authentication error"),
        403 => (10001, "Unauthorized to access requested resource"),
        404 => (7003, "Could not route to the requested resource"),
        413 => (CODE_INVALID_INPUT, "Request is too large"),
        429 => (3040, "Capacity temporarily exceeded, please try again."),
        500..=599 => (3043, "Internal server error"),
        _ => (CODE_INVALID_INPUT, "Invalid input"),
    };
    let code = spec
        .kind
        .and_then(|k| k.parse::<u16>().ok())
        .unwrap_or(code);
    json!({
        "success": false,
        "errors": [{"code": code, "message": spec.message.unwrap_or(message)}],
        "messages": [],
        "result": null,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt as _;

    use super::*;
    use crate::scenario::Scenario;
    use crate::text::usage_for;

    fn answer(model: &str) -> Answer<'_> {
        Answer {
            id: 1,
            model,
            chunks: 1,
            chunk_delay: Duration::ZERO,
            usage: usage_for(10, 0),
            created: 0,
            scenario: Scenario::Text,
        }
    }

    #[tokio::test]
    async fn texts_come_back_as_a_shaped_result() {
        let res = run(
            &json!({"text": ["a", "b"]}),
            &answer("@cf/baai/bge-base-en-v1.5"),
        )
        .unwrap_or_else(|e| panic!("{}", e.message));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(got["success"], true);
        assert_eq!(got["result"]["shape"], json!([2, 8]));
        assert_eq!(
            crate::embeddings::floats(&got["result"]["data"][1]),
            embedding_vector(1, 8)
        );
    }

    #[test]
    fn bad_bodies_and_models_are_refused() {
        for body in [json!({}), json!({"text": []}), json!({"text": [1]})] {
            assert!(run(&body, &answer("@cf/baai/bge-small-en-v1.5")).is_err());
        }
        assert!(run(&json!({"text": "a"}), &answer("bge")).is_err());
        assert_eq!(
            model_in_path("/client/v4/accounts/acme/ai/run/@cf/baai/bge-m3"),
            Some("@cf/baai/bge-m3")
        );
    }

    async fn body_of(res: Response<MockBody>) -> String {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn chat(extra: Value) -> Value {
        let mut body = json!({"messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    }

    const LLAMA: &str = "@cf/meta/llama-3.1-8b-instruct";

    #[tokio::test]
    async fn text_generation_answers_whole_with_usage() {
        let a = Answer {
            chunks: 3,
            ..answer(LLAMA)
        };
        let res = run(&chat(json!({})), &a).unwrap_or_else(|e| panic!("{}", e.message));
        let got: Value = serde_json::from_str(&body_of(res).await).unwrap();
        assert_eq!(got["success"], true);
        assert_eq!(got["result"]["response"], "Hello from the");
        assert_eq!(got["result"]["tool_calls"], json!([]));
        assert_eq!(
            got["result"]["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}),
            "usage_for(10, 0), as the test answer says"
        );
        let a = Answer {
            scenario: Scenario::ParallelToolCalls,
            ..answer(LLAMA)
        };
        let res = run(&chat(json!({})), &a).unwrap_or_else(|e| panic!("{}", e.message));
        let got: Value = serde_json::from_str(&body_of(res).await).unwrap();
        assert_eq!(got["result"]["response"], Value::Null);
        assert_eq!(
            got["result"]["tool_calls"],
            json!([{"name": "get_weather", "arguments": {"location": "Paris"}},
                {"name": "get_weather", "arguments": {"location": "London"}}])
        );
    }

    #[tokio::test]
    async fn text_generation_streams_events_then_usage_then_done() {
        let a = Answer {
            chunks: 2,
            ..answer(LLAMA)
        };
        let res =
            run(&chat(json!({"stream": true})), &a).unwrap_or_else(|e| panic!("{}", e.message));
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let text = body_of(res).await;
        let frames: Vec<&str> = text
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| f.strip_prefix("data: ").unwrap())
            .collect();
        assert_eq!(frames.len(), 4, "{text}");
        let first: Value = serde_json::from_str(frames[0]).unwrap();
        assert_eq!(first["response"], "Hello");
        assert!(first["p"].is_string());
        let last: Value = serde_json::from_str(frames[2]).unwrap();
        assert_eq!(last["usage"]["completion_tokens"], 0);
        assert_eq!(frames[3], "[DONE]");

        let a = Answer {
            scenario: Scenario::ToolCall,
            ..answer(LLAMA)
        };
        let text = body_of(run(&chat(json!({"stream": true})), &a).ok().unwrap()).await;
        assert!(
            text.starts_with(
                r#"data: {"p":"abcd","response":"","tool_calls":[{"arguments":{"location":"Paris"},"name":"get_weather"}]}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn text_generation_refuses_what_workers_ai_refuses() {
        for body in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"role": "user", "content": null}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
        ] {
            assert!(run(&body, &answer(LLAMA)).is_err(), "{body}");
        }
        let a = Answer {
            scenario: Scenario::ToolCall,
            ..answer(LLAMA)
        };
        assert!(run(&json!({"messages": [{"role": "user", "content": "x"}]}), &a).is_err());
        assert!(is_embedding_model("@cf/baai/bge-m3"));
        assert!(is_embedding_model("@cf/google/embeddinggemma-300m"));
        assert!(!is_embedding_model(LLAMA));
    }

    #[test]
    fn errors_are_the_v4_envelope() {
        let body = error_body(StatusCode::TOO_MANY_REQUESTS, &ErrorSpec::default());
        assert_eq!(body["success"], false);
        assert_eq!(body["errors"][0]["code"], 3040);
        let mut headers = HeaderMap::new();
        assert_eq!(check_auth(&headers, None).unwrap_err().status, 401);
        headers.insert("authorization", "Bearer cf-token".parse().unwrap());
        assert!(check_auth(&headers, None).is_ok());
        assert!(check_auth(&headers, Some("other")).is_err());
    }
}
