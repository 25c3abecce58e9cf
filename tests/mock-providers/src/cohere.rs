//! Cohere's v2 Chat API (`POST /v2/chat`), JSON and the `event:`/`data:` stream, as Cohere's SDKs parse them, and
//! Cohere's error bodies (`{"id", "message"}`).
//!
//! The answer follows the request's `x-mock-scenario` ([`Scenario`]): text (the default); a `tool_plan` and
//! `tool_calls` to the request's first tool (`tool_call`, `parallel_tool_calls`, finish `TOOL_CALL`); a `thinking`
//! content item before the text (`reasoning`); a `MAX_TOKENS` finish (`length`); `cached_tokens` in the usage
//! (`cached`; Cohere reports no cache writes). Cohere has no safety finish reason: its safety modes make the model
//! refuse in words, so `content_filter` answers a refusal text with `COMPLETE`.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, event_stream, json as json_response, named_event};
use crate::refusal::ErrorSpec;
use crate::refusal::{Refusal, bearer};
use crate::scenario::{CACHED_READ_TOKENS, REASONING_TEXT, Scenario, tool_call_arguments};
use crate::text::piece;

/// The text of the `content_filter` scenario.
pub(crate) const REFUSAL_TEXT: &str = "I'm sorry, but I can't help with that request.";

/// `POST /v2/chat`. Cohere requires `model` (checked by the handler) and `messages`.
pub(crate) fn chat(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(Invalid {
            message: "invalid request: messages must be provided".to_owned(),
            param: None,
            code: None,
        });
    }
    let plan = Plan::new(body, a)?;
    Ok(
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            event_stream(stream_events(&plan, a), a.chunk_delay)
        } else {
            json_response(StatusCode::OK, &whole_answer(&plan, a))
        },
    )
}

/// What the answer is made of.
struct Plan<'a> {
    thinking: bool,
    /// The answer's text, in stream pieces; empty when the answer only calls tools.
    text: Vec<&'a str>,
    /// The name of the tool each call goes to.
    calls: Vec<&'a str>,
    finish_reason: &'static str,
    cached: bool,
}

impl<'a> Plan<'a> {
    fn new(body: &'a Value, a: &Answer<'_>) -> Result<Plan<'a>, Invalid> {
        let scenario = a.scenario;
        let calls = match scenario.tool_calls() {
            0 => Vec::new(),
            n => vec![first_tool(body)?; n],
        };
        let text = match scenario {
            Scenario::ToolCall | Scenario::ParallelToolCalls => Vec::new(),
            Scenario::ContentFilter => vec![REFUSAL_TEXT],
            _ => (0..a.chunks).map(piece).collect(),
        };
        Ok(Plan {
            thinking: scenario == Scenario::Reasoning,
            text,
            calls,
            finish_reason: match scenario {
                Scenario::ToolCall | Scenario::ParallelToolCalls => "TOOL_CALL",
                Scenario::Length => "MAX_TOKENS",
                _ => "COMPLETE",
            },
            cached: scenario == Scenario::Cached,
        })
    }

    fn tool_plan(&self) -> Option<String> {
        self.calls
            .first()
            .map(|name| format!("I will call {name}."))
    }

    /// Cohere's usage: `tokens` as processed and `billed_units` as charged (equal here, so a test can predict
    /// either); `cached_tokens` is part of the input.
    fn usage(&self, a: &Answer<'_>) -> Value {
        let counts =
            json!({"input_tokens": a.usage.input_tokens, "output_tokens": a.usage.output_tokens});
        json!({
            "billed_units": counts,
            "tokens": counts,
            "cached_tokens": if self.cached { CACHED_READ_TOKENS } else { 0 },
        })
    }
}

/// The name of the request's first tool (OpenAI's shape, which Cohere v2 uses), which the tool scenarios call.
fn first_tool(body: &Value) -> Result<&str, Invalid> {
    body.pointer("/tools/0/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid {
            message: "x-mock-scenario asks for a tool call, but the request has no tools"
                .to_owned(),
            param: None,
            code: None,
        })
}

/// Cohere's answer ids are UUIDs.
fn answer_id(a: &Answer<'_>) -> String {
    format!("5c0e7d2a-0000-4000-8000-{:012x}", a.id)
}

fn tool_call_id(a: &Answer<'_>, name: &str, n: usize) -> String {
    format!("{name}_mock{}{n}", a.id)
}

fn whole_answer(plan: &Plan<'_>, a: &Answer<'_>) -> Value {
    let mut content = Vec::new();
    if plan.thinking {
        content.push(json!({"type": "thinking", "thinking": REASONING_TEXT}));
    }
    if !plan.text.is_empty() {
        content.push(json!({"type": "text", "text": plan.text.concat()}));
    }
    let mut message = json!({"role": "assistant", "content": content, "citations": []});
    if let Some(tool_plan) = plan.tool_plan() {
        message["tool_plan"] = json!(tool_plan);
        message["tool_calls"] = plan
            .calls
            .iter()
            .enumerate()
            .map(|(n, name)| {
                json!({"id": tool_call_id(a, name, n), "type": "function",
                    "function": {"name": name, "arguments": tool_call_arguments(n)}})
            })
            .collect();
    }
    json!({
        "id": answer_id(a),
        "finish_reason": plan.finish_reason,
        "message": message,
        "usage": plan.usage(a),
    })
}

/// `message-start`; thinking and text as content items (`content-start`, their deltas, `content-end`); or the
/// plan as `tool-plan-delta` then each call (`tool-call-start` with empty arguments, the arguments in two pieces
/// as `tool-call-delta`, `tool-call-end`); `message-end` with the finish reason and usage.
fn stream_events(plan: &Plan<'_>, a: &Answer<'_>) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(plan.text.len() + 4 * plan.calls.len() + 8);
    let mut push = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        events.push(named_event(name, &data));
    };
    let id = answer_id(a);
    push(
        "message-start",
        json!({"id": id, "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
            "tool_calls": [], "citations": []}}}),
    );
    let mut index = 0;
    let mut content = |kind: &str, pieces: &[&str], push: &mut dyn FnMut(&str, Value)| {
        let start = if kind == "thinking" {
            json!({"type": "thinking", "thinking": ""})
        } else {
            json!({"type": "text", "text": ""})
        };
        push(
            "content-start",
            json!({"index": index, "delta": {"message": {"content": start}}}),
        );
        for piece in pieces {
            push(
                "content-delta",
                json!({"index": index, "delta": {"message": {"content": {kind: piece}}}}),
            );
        }
        push("content-end", json!({"index": index}));
        index += 1;
    };
    if plan.thinking {
        let (first, second) = REASONING_TEXT.split_at(REASONING_TEXT.len() / 2);
        content("thinking", &[first, second], &mut push);
    }
    if !plan.text.is_empty() {
        content("text", &plan.text, &mut push);
    }
    if let Some(tool_plan) = plan.tool_plan() {
        push(
            "tool-plan-delta",
            json!({"delta": {"message": {"tool_plan": tool_plan}}}),
        );
    }
    for (n, name) in plan.calls.iter().enumerate() {
        let call = json!({"id": tool_call_id(a, name, n), "type": "function",
            "function": {"name": name, "arguments": ""}});
        push(
            "tool-call-start",
            json!({"index": n, "delta": {"message": {"tool_calls": call}}}),
        );
        let arguments = tool_call_arguments(n);
        let (first, second) = arguments.split_at(arguments.len() - 4);
        for fragment in [first, second] {
            push(
                "tool-call-delta",
                json!({"index": n, "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}}),
            );
        }
        push("tool-call-end", json!({"index": n}));
    }
    push(
        "message-end",
        json!({"id": id, "delta": {"finish_reason": plan.finish_reason, "usage": plan.usage(a)}}),
    );
    events
}

/// Cohere's error body: `{"id": <uuid>, "message": …}`, Cohere's usual message for the status unless given one.
pub(crate) fn error_body(status: StatusCode, spec: &ErrorSpec<'_>, request_id: u64) -> Value {
    let message = match status.as_u16() {
        400 => "invalid request",
        401 => "invalid api token",
        402 => {
            "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue"
        }
        404 => "Not Found",
        413 => "request body too large",
        429 => "You are using a Trial key, which is limited to 20 API calls / minute.",
        499 => "request cancelled by the client",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "internal server error, this has been reported to our developers",
    };
    json!({
        "id": format!("5c0e7d2a-0000-4000-8000-{request_id:012x}"),
        "message": spec.message.unwrap_or(message),
    })
}

/// Cohere takes the key as `Authorization: Bearer`.
pub(crate) fn check_auth(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    let refuse = |message: &str| Refusal {
        status: 401,
        message: message.to_owned(),
        kind: "unauthorized",
        code: None,
    };
    match bearer(headers) {
        None => Err(refuse("no api key supplied")),
        Some(key) if expected.is_some_and(|want| want != key) => Err(refuse("invalid api token")),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::text::usage_for;

    fn answer(scenario: Scenario) -> Answer<'static> {
        Answer {
            id: 7,
            model: "command-a-03-2025",
            chunks: 2,
            chunk_delay: Duration::ZERO,
            usage: usage_for(400, 2),
            created: 0,
            scenario,
        }
    }

    fn request() -> Value {
        json!({"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "other"}}]})
    }

    fn whole(scenario: Scenario) -> Value {
        let body = request();
        let a = answer(scenario);
        whole_answer(&Plan::new(&body, &a).ok().unwrap(), &a)
    }

    /// The stream's events as (name, data) pairs, checking the framing: the `event:` name is the JSON `type`.
    fn streamed(scenario: Scenario) -> Vec<(String, Value)> {
        let body = request();
        let a = answer(scenario);
        stream_events(&Plan::new(&body, &a).ok().unwrap(), &a)
            .iter()
            .map(|bytes| {
                let text = std::str::from_utf8(bytes).unwrap();
                let (head, data) = text.strip_suffix("\n\n").unwrap().split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn streamed_text(events: &[(String, Value)], field: &str) -> String {
        events
            .iter()
            .filter_map(|(_, v)| v.pointer(&format!("/delta/message/content/{field}")))
            .filter_map(Value::as_str)
            .collect()
    }

    #[test]
    fn text_answers_whole_and_streamed() {
        let v = whole(Scenario::Text);
        assert_eq!(v["finish_reason"], "COMPLETE");
        assert_eq!(
            v["message"]["content"],
            json!([{"type": "text", "text": "Hello from"}])
        );
        assert!(v["message"].get("tool_calls").is_none());
        let usage = usage_for(400, 2);
        assert_eq!(
            v["usage"],
            json!({"billed_units": {"input_tokens": usage.input_tokens, "output_tokens": 2},
                "tokens": {"input_tokens": usage.input_tokens, "output_tokens": 2}, "cached_tokens": 0})
        );
        let events = streamed(Scenario::Text);
        assert_eq!(
            names(&events),
            [
                "message-start",
                "content-start",
                "content-delta",
                "content-delta",
                "content-end",
                "message-end"
            ]
        );
        assert_eq!(events[0].1["id"], v["id"]);
        assert_eq!(streamed_text(&events, "text"), "Hello from");
        assert_eq!(events[5].1["delta"]["finish_reason"], "COMPLETE");
        assert_eq!(events[5].1["delta"]["usage"], v["usage"]);
    }

    #[test]
    fn tool_calls_go_to_the_first_tool_with_a_plan() {
        let v = whole(Scenario::ParallelToolCalls);
        assert_eq!(v["finish_reason"], "TOOL_CALL");
        assert_eq!(v["message"]["content"], json!([]));
        assert_eq!(v["message"]["tool_plan"], "I will call get_weather.");
        assert_eq!(
            v["message"]["tool_calls"],
            json!([
                {"id": "get_weather_mock70", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "get_weather_mock71", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"London\"}"}}
            ])
        );
        let events = streamed(Scenario::ToolCall);
        assert_eq!(
            names(&events),
            [
                "message-start",
                "tool-plan-delta",
                "tool-call-start",
                "tool-call-delta",
                "tool-call-delta",
                "tool-call-end",
                "message-end"
            ]
        );
        let start = &events[2].1["delta"]["message"]["tool_calls"];
        assert_eq!(start["id"], "get_weather_mock70");
        assert_eq!(start["function"]["arguments"], "");
        let arguments: String = events
            .iter()
            .filter(|(n, _)| n == "tool-call-delta")
            .map(|(_, v)| {
                v["delta"]["message"]["tool_calls"]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(arguments, r#"{"location":"Paris"}"#);
        assert_eq!(events[6].1["delta"]["finish_reason"], "TOOL_CALL");
    }

    #[test]
    fn a_tool_scenario_without_tools_is_refused() {
        let body = json!({"model": "m", "messages": []});
        assert!(Plan::new(&body, &answer(Scenario::ToolCall)).is_err());
    }

    #[test]
    fn reasoning_is_a_thinking_item_before_the_text() {
        let v = whole(Scenario::Reasoning);
        assert_eq!(
            v["message"]["content"][0],
            json!({"type": "thinking", "thinking": REASONING_TEXT})
        );
        assert_eq!(v["message"]["content"][1]["type"], "text");
        let events = streamed(Scenario::Reasoning);
        assert_eq!(streamed_text(&events, "thinking"), REASONING_TEXT);
        assert_eq!(streamed_text(&events, "text"), "Hello from");
        assert_eq!(
            events[1].1["delta"]["message"]["content"]["type"],
            "thinking"
        );
        assert_eq!(events[1].1["index"], 0);
        assert!(
            events
                .iter()
                .any(|(n, v)| n == "content-start" && v["index"] == 1)
        );
    }

    #[test]
    fn length_content_filter_and_cached() {
        assert_eq!(whole(Scenario::Length)["finish_reason"], "MAX_TOKENS");
        let refusal = whole(Scenario::ContentFilter);
        assert_eq!(refusal["finish_reason"], "COMPLETE");
        assert_eq!(refusal["message"]["content"][0]["text"], REFUSAL_TEXT);
        assert_eq!(
            whole(Scenario::Cached)["usage"]["cached_tokens"],
            CACHED_READ_TOKENS
        );
        let events = streamed(Scenario::Cached);
        assert_eq!(
            events.last().unwrap().1["delta"]["usage"]["cached_tokens"],
            CACHED_READ_TOKENS
        );
    }

    #[test]
    fn errors_and_auth_in_cohere_shape() {
        let body = error_body(StatusCode::TOO_MANY_REQUESTS, &ErrorSpec::default(), 9);
        assert_eq!(body["id"], "5c0e7d2a-0000-4000-8000-000000000009");
        assert!(body["message"].as_str().unwrap().contains("Trial key"));
        let spec = ErrorSpec {
            message: Some("model 'x' not found"),
            ..ErrorSpec::default()
        };
        assert_eq!(
            error_body(StatusCode::NOT_FOUND, &spec, 1)["message"],
            "model 'x' not found"
        );

        let mut headers = HeaderMap::new();
        assert_eq!(
            check_auth(&headers, None).unwrap_err().message,
            "no api key supplied"
        );
        headers.insert("authorization", "Bearer co-key".parse().unwrap());
        assert!(check_auth(&headers, None).is_ok());
        assert!(check_auth(&headers, Some("co-key")).is_ok());
        assert_eq!(
            check_auth(&headers, Some("other")).unwrap_err().message,
            "invalid api token"
        );
    }

    /// Through the server: the route, the key check and the error shape, and a stream sent event by event.
    mod served {
        use std::time::Instant;

        use crate::behaviour::control;
        use crate::scenario::HEADER as SCENARIO;
        use crate::server::MockProvider;

        use super::*;

        fn post(mock: &MockProvider, key: Option<&str>) -> reqwest::RequestBuilder {
            let req = reqwest::Client::new().post(mock.url("/v2/chat"));
            match key {
                Some(key) => req.bearer_auth(key),
                None => req,
            }
        }

        fn body(stream: bool) -> Value {
            json!({"model": "command-a-03-2025", "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "get_weather"}}]})
        }

        #[tokio::test]
        async fn v2_chat_answers_in_cohere_shape_and_refuses_in_cohere_shape() {
            let mock = MockProvider::start();
            let res = post(&mock, Some("co-key"))
                .json(&body(false))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["finish_reason"], "COMPLETE");
            assert!(v["message"]["content"][0]["text"].is_string());

            let res = post(&mock, Some("co-key"))
                .header(SCENARIO, "tool_call")
                .json(&body(false))
                .send()
                .await
                .unwrap();
            let v: Value = res.json().await.unwrap();
            assert_eq!(
                v["message"]["tool_calls"][0]["function"]["arguments"],
                r#"{"location":"Paris"}"#
            );

            let res = post(&mock, None).json(&body(false)).send().await.unwrap();
            assert_eq!(res.status(), 401);
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["message"], "no api key supplied");
            assert!(v["id"].is_string());

            for (status, word) in [
                (429, "Trial key"),
                (500, "internal server error"),
                (404, "Not Found"),
            ] {
                let res = post(&mock, Some("k"))
                    .header(control::STATUS, status.to_string())
                    .json(&body(false))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), status);
                let v: Value = res.json().await.unwrap();
                assert!(v["message"].as_str().unwrap().contains(word), "{v}");
                assert!(v.get("error").is_none(), "not OpenAI's shape: {v}");
            }

            let res = post(&mock, Some("k"))
                .json(&json!({"messages": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400);
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["message"], "invalid request: model must be provided");
            assert_eq!(mock.requests().last().unwrap().path, "/v2/chat");
        }

        #[tokio::test]
        async fn a_stream_is_sent_event_by_event_with_the_chunk_delay() {
            let mock = MockProvider::start();
            let started = Instant::now();
            let mut res = post(&mock, Some("k"))
                .header(control::CHUNKS, "3")
                .header(control::CHUNK_DELAY_MS, "100")
                .json(&body(true))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let first = res.chunk().await.unwrap().unwrap();
            assert!(first.starts_with(b"event: message-start\n"), "{first:?}");
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "the first event is not held back"
            );
            let mut rest = Vec::new();
            while let Some(chunk) = res.chunk().await.unwrap() {
                rest.extend_from_slice(&chunk);
            }
            // message-start, content-start, 3 deltas, content-end, message-end: 6 gaps.
            assert!(started.elapsed() >= Duration::from_millis(600));
            let rest = String::from_utf8(rest).unwrap();
            assert!(rest.contains("event: content-delta"), "{rest}");
            assert!(rest.contains(r#""finish_reason":"COMPLETE""#), "{rest}");
        }
    }
}
