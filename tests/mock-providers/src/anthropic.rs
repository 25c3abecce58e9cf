//! Anthropic's Messages API, JSON and the `event:`/`data:` stream, as the official SDKs parse them.
//!
//! The answer follows the request's `x-mock-scenario` ([`Scenario`]): text (the default); `tool_use` blocks calling
//! the request's first tool (`tool_call`, `parallel_tool_calls`); a `thinking` block before the text
//! (`reasoning`); a `max_tokens` stop (`length`); a `refusal` stop (`content_filter`); cache reads and writes in
//! the usage (`cached`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, event_stream, json as json_response, named_event};
use crate::scenario::{
    CACHED_READ_TOKENS, CACHED_WRITE_TOKENS, REASONING_TEXT, Scenario, TOOL_CALL_LOCATIONS,
    tool_call_arguments,
};
use crate::text::{completion_text, piece};

/// The signature of the `reasoning` scenario's thinking block (opaque to clients, echoed back by them).
const THINKING_SIGNATURE: &str = "mock-thinking-signature";

/// `POST /v1/messages`. Anthropic requires `max_tokens` and `messages`.
pub(crate) fn messages(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    if !body.get("max_tokens").is_some_and(Value::is_u64) {
        return Err(Invalid::anthropic_missing("max_tokens"));
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(Invalid::anthropic_missing("messages"));
    }
    let plan = Plan::new(body, a)?;
    let mut res = if body.get("stream").and_then(Value::as_bool) == Some(true) {
        event_stream(stream_events(&plan, a), a.chunk_delay)
    } else {
        json_response(StatusCode::OK, &whole_message(&plan, a))
    };
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{}", a.id)) {
        res.headers_mut().insert("request-id", v);
    }
    Ok(res)
}

/// What the answer is made of.
struct Plan<'a> {
    blocks: Vec<Block<'a>>,
    stop_reason: &'static str,
    cached: bool,
}

enum Block<'a> {
    Thinking,
    /// The answer's text: `Answer::chunks` pieces.
    Text,
    /// The scenario's `n`th call to `name`.
    ToolUse {
        n: usize,
        name: &'a str,
    },
}

impl<'a> Plan<'a> {
    fn new(body: &'a Value, a: &Answer<'_>) -> Result<Plan<'a>, Invalid> {
        let scenario = a.scenario;
        let mut blocks = Vec::with_capacity(2);
        match scenario.tool_calls() {
            0 => {
                if scenario == Scenario::Reasoning {
                    blocks.push(Block::Thinking);
                }
                blocks.push(Block::Text);
            }
            calls => {
                let name = first_tool(body)?;
                blocks.extend((0..calls).map(|n| Block::ToolUse { n, name }));
            }
        }
        let stop_reason = match scenario {
            Scenario::ToolCall | Scenario::ParallelToolCalls => "tool_use",
            Scenario::Length => "max_tokens",
            Scenario::ContentFilter => "refusal",
            Scenario::Text | Scenario::Reasoning | Scenario::Cached => "end_turn",
        };
        Ok(Plan {
            blocks,
            stop_reason,
            cached: scenario == Scenario::Cached,
        })
    }

    /// Anthropic's usage object. With `cached`, the cache reads and writes are carved out of the deterministic
    /// input count, so a gateway that adds them back (as it must) reports the same prompt total as without.
    fn usage(&self, a: &Answer<'_>, output_tokens: u64) -> Value {
        let (read, written) = if self.cached {
            (CACHED_READ_TOKENS, CACHED_WRITE_TOKENS)
        } else {
            (0, 0)
        };
        json!({
            "input_tokens": a.usage.input_tokens.saturating_sub(read + written),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "service_tier": "standard"
        })
    }
}

/// The name of the request's first tool, which the tool scenarios call.
fn first_tool(body: &Value) -> Result<&str, Invalid> {
    body.pointer("/tools/0/name")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid {
            message: "x-mock-scenario asks for a tool call, but the request has no tools"
                .to_owned(),
            param: None,
            code: None,
        })
}

fn tool_use_id(a: &Answer<'_>, n: usize) -> String {
    format!("toolu_mock{}_{n}", a.id)
}

fn message(a: &Answer<'_>, content: Value, stop_reason: Value, usage: Value) -> Value {
    json!({
        "id": format!("msg_mock{}", a.id), "type": "message", "role": "assistant", "model": a.model,
        "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage
    })
}

/// The non-streamed answer.
fn whole_message(plan: &Plan<'_>, a: &Answer<'_>) -> Value {
    let content: Vec<Value> = plan
        .blocks
        .iter()
        .map(|block| match block {
            Block::Thinking => {
                json!({"type": "thinking", "thinking": REASONING_TEXT, "signature": THINKING_SIGNATURE})
            }
            Block::Text => json!({"type": "text", "text": completion_text(a.chunks)}),
            Block::ToolUse { n, name } => json!({
                "type": "tool_use", "id": tool_use_id(a, *n), "name": name,
                "input": {"location": TOOL_CALL_LOCATIONS[*n % TOOL_CALL_LOCATIONS.len()]}
            }),
        })
        .collect();
    message(
        a,
        Value::Array(content),
        json!(plan.stop_reason),
        plan.usage(a, a.usage.output_tokens),
    )
}

/// `message_start` (input usage), each block as `content_block_start`, its deltas and `content_block_stop` (a
/// `ping` after the first start, as the API sends), `message_delta` with the stop reason and output tokens,
/// `message_stop`.
fn stream_events(plan: &Plan<'_>, a: &Answer<'_>) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(a.chunks + 4 * plan.blocks.len() + 4);
    let start = message(a, json!([]), Value::Null, plan.usage(a, 1));
    events.push(named_event(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    ));
    for (index, block) in plan.blocks.iter().enumerate() {
        let content_block = match block {
            Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Text => json!({"type": "text", "text": ""}),
            Block::ToolUse { n, name } => {
                json!({"type": "tool_use", "id": tool_use_id(a, *n), "name": name, "input": {}})
            }
        };
        events.push(named_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        ));
        if index == 0 {
            events.push(named_event("ping", &json!({"type": "ping"})));
        }
        for delta in deltas(block, a) {
            events.push(named_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(named_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    // With `cached`, the input and cache counts are repeated here as the API now does (cumulative, not
    // increments), so a gateway that adds them twice is caught.
    let mut usage = json!({"output_tokens": a.usage.output_tokens});
    if plan.cached {
        let full = plan.usage(a, a.usage.output_tokens);
        for field in [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ] {
            usage[field] = full[field].clone();
        }
    }
    events.push(named_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": plan.stop_reason, "stop_sequence": null},
            "usage": usage}),
    ));
    events.push(named_event(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    events
}

/// A block's deltas: text in `Answer::chunks` pieces; thinking in two halves then its signature; tool input as
/// the API streams it (an empty fragment first, then the JSON in two pieces cut inside a string).
fn deltas(block: &Block<'_>, a: &Answer<'_>) -> Vec<Value> {
    match block {
        Block::Text => (0..a.chunks)
            .map(|i| json!({"type": "text_delta", "text": piece(i)}))
            .collect(),
        Block::Thinking => {
            let (first, second) = REASONING_TEXT.split_at(REASONING_TEXT.len() / 2);
            vec![
                json!({"type": "thinking_delta", "thinking": first}),
                json!({"type": "thinking_delta", "thinking": second}),
                json!({"type": "signature_delta", "signature": THINKING_SIGNATURE}),
            ]
        }
        Block::ToolUse { n, .. } => {
            let arguments = tool_call_arguments(*n);
            let (first, second) = arguments.split_at(arguments.len() - 4);
            [String::new(), first.to_owned(), second.to_owned()]
                .into_iter()
                .map(|partial| json!({"type": "input_json_delta", "partial_json": partial}))
                .collect()
        }
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
            model: "claude-sonnet-4-5",
            chunks: 2,
            chunk_delay: Duration::ZERO,
            usage: usage_for(400, 2),
            created: 0,
            scenario,
        }
    }

    fn request() -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}, {"name": "other", "input_schema": {}}]})
    }

    fn whole(scenario: Scenario) -> Value {
        let body = request();
        let a = answer(scenario);
        whole_message(&Plan::new(&body, &a).ok().unwrap(), &a)
    }

    /// The stream's events as (name, data) pairs, checking the framing.
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

    /// The tool arguments a client gets by concatenating the stream's fragments, per block index.
    fn streamed_arguments(events: &[(String, Value)], index: u64) -> String {
        events
            .iter()
            .filter(|(_, v)| v["index"] == index && v["delta"]["type"] == "input_json_delta")
            .map(|(_, v)| v["delta"]["partial_json"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn text_is_unchanged_by_default() {
        let v = whole(Scenario::Text);
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "Hello from"}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(
            names(&streamed(Scenario::Text)),
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
    }

    #[test]
    fn a_tool_call_uses_the_first_tool_with_paris() {
        let v = whole(Scenario::ToolCall);
        assert_eq!(
            v["content"],
            json!([{"type": "tool_use", "id": "toolu_mock7_0", "name": "get_weather", "input": {"location": "Paris"}}])
        );
        assert_eq!(v["stop_reason"], "tool_use");

        let events = streamed(Scenario::ToolCall);
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "tool_use", "id": "toolu_mock7_0", "name": "get_weather", "input": {}})
        );
        assert_eq!(streamed_arguments(&events, 0), r#"{"location":"Paris"}"#);
        let last_delta = &events[events.len() - 2].1;
        assert_eq!(last_delta["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn parallel_tool_calls_are_paris_then_london() {
        let v = whole(Scenario::ParallelToolCalls);
        let content = v["content"].as_array().unwrap();
        assert_eq!(content.len(), 2);
        assert_eq!(content[1]["input"], json!({"location": "London"}));
        assert_eq!(content[1]["id"], "toolu_mock7_1");
        let events = streamed(Scenario::ParallelToolCalls);
        assert_eq!(streamed_arguments(&events, 1), r#"{"location":"London"}"#);
    }

    #[test]
    fn a_tool_scenario_without_tools_is_refused() {
        let body = json!({"model": "m", "max_tokens": 10, "messages": []});
        assert!(Plan::new(&body, &answer(Scenario::ToolCall)).is_err());
    }

    #[test]
    fn reasoning_thinks_before_the_text() {
        let v = whole(Scenario::Reasoning);
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][0]["thinking"], REASONING_TEXT);
        assert_eq!(v["content"][1]["type"], "text");
        let events = streamed(Scenario::Reasoning);
        let thought: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["thinking"].as_str())
            .collect();
        assert_eq!(thought, REASONING_TEXT);
        assert!(
            events
                .iter()
                .any(|(_, v)| v["delta"]["type"] == "signature_delta")
        );
        assert_eq!(events[1].1["content_block"]["type"], "thinking");
        assert!(
            events
                .iter()
                .any(|(_, v)| v["index"] == 1 && v["delta"]["type"] == "text_delta")
        );
    }

    #[test]
    fn length_and_content_filter_have_their_stop_reasons() {
        assert_eq!(whole(Scenario::Length)["stop_reason"], "max_tokens");
        assert_eq!(whole(Scenario::ContentFilter)["stop_reason"], "refusal");
        let events = streamed(Scenario::ContentFilter);
        assert_eq!(
            events[events.len() - 2].1["delta"]["stop_reason"],
            "refusal"
        );
    }

    #[test]
    fn cached_reports_reads_and_writes_without_changing_the_prompt_total() {
        let a = answer(Scenario::Cached);
        let usage = &whole(Scenario::Cached)["usage"];
        assert_eq!(usage["cache_read_input_tokens"], CACHED_READ_TOKENS);
        assert_eq!(usage["cache_creation_input_tokens"], CACHED_WRITE_TOKENS);
        let prompt =
            usage["input_tokens"].as_u64().unwrap() + CACHED_READ_TOKENS + CACHED_WRITE_TOKENS;
        assert_eq!(prompt, a.usage.input_tokens);
        let events = streamed(Scenario::Cached);
        assert_eq!(
            events[0].1["message"]["usage"]["cache_read_input_tokens"],
            CACHED_READ_TOKENS
        );
        let delta_usage = &events[events.len() - 2].1["usage"];
        assert_eq!(delta_usage["cache_read_input_tokens"], CACHED_READ_TOKENS);
        assert_eq!(delta_usage["input_tokens"], usage["input_tokens"]);
    }

    #[tokio::test]
    async fn the_scenario_header_is_honoured_and_a_typo_is_a_400() {
        let mock = crate::MockProvider::start();
        let send = |scenario: &'static str| {
            reqwest::Client::new()
                .post(mock.url("/v1/messages"))
                .header("x-api-key", "k")
                .header("anthropic-version", "2023-06-01")
                .header(crate::scenario::HEADER, scenario)
                .json(&request())
                .send()
        };
        let res = send("tool_call").await.unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["content"][0]["name"], "get_weather");
        let res = send("tool_cal").await.unwrap();
        assert_eq!(res.status(), 400);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["type"], "error");
    }
}
