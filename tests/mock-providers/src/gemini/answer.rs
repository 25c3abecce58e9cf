//! The `x-mock-scenario` answers in Gemini's `GenerateContentResponse` shape, whole or as stream chunks.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::THOUGHTS_TOKENS;
use crate::answer::Answer;
use crate::body::{MockBody, event_stream, json as json_response};
use crate::scenario::{CACHED_READ_TOKENS, REASONING_TEXT, Scenario, TOOL_CALL_LOCATIONS};
use crate::text::{completion_text, piece};

/// What the answer holds, in order: a thought summary, the text, calls to the request's first function.
struct Plan<'a> {
    thought: bool,
    text: bool,
    calls: Vec<&'a str>,
    finish_reason: &'static str,
    cached: bool,
}

impl<'a> Plan<'a> {
    fn new(body: &'a Value, scenario: Scenario) -> Result<Plan<'a>, String> {
        let calls = match scenario.tool_calls() {
            0 => Vec::new(),
            n => vec![first_function(body)?; n],
        };
        Ok(Plan {
            thought: scenario == Scenario::Reasoning,
            text: calls.is_empty() && scenario != Scenario::ContentFilter,
            calls,
            finish_reason: match scenario {
                Scenario::Length => "MAX_TOKENS",
                Scenario::ContentFilter => "SAFETY",
                // Gemini has no tool-call reason: calls end with STOP too.
                _ => "STOP",
            },
            cached: scenario == Scenario::Cached,
        })
    }

    fn filtered(&self) -> bool {
        self.finish_reason == "SAFETY"
    }

    /// `usageMetadata`: complete on the final chunk (and the whole answer), the prompt count alone before, as
    /// Google's early chunks are.
    fn usage(&self, a: &Answer<'_>, complete: bool) -> Value {
        let prompt = a.usage.input_tokens;
        let mut usage = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
        if self.cached {
            usage["cachedContentTokenCount"] = json!(CACHED_READ_TOKENS.min(prompt));
        }
        if complete {
            let candidates = if self.filtered() {
                0
            } else {
                a.usage.output_tokens
            };
            let thoughts = if self.thought { THOUGHTS_TOKENS } else { 0 };
            usage["candidatesTokenCount"] = json!(candidates);
            if thoughts > 0 {
                usage["thoughtsTokenCount"] = json!(thoughts);
            }
            usage["totalTokenCount"] = json!(prompt + candidates + thoughts);
            usage["promptTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": prompt}]);
        }
        usage
    }
}

/// The name of the request's first function declaration, which the tool scenarios call.
fn first_function(body: &Value) -> Result<&str, String> {
    body.pointer("/tools/0/functionDeclarations/0/name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            "x-mock-scenario asks for a tool call, but the request declares no functions".to_owned()
        })
}

fn call_part(n: usize, name: &str) -> Value {
    json!({"functionCall": {"name": name,
        "args": {"location": TOOL_CALL_LOCATIONS[n % TOOL_CALL_LOCATIONS.len()]}}})
}

fn thought_part() -> Value {
    json!({"text": REASONING_TEXT, "thought": true})
}

/// One `GenerateContentResponse`: a candidate with `parts` (none: no `content`, as on a safety stop), the finish
/// reason when given, the usage.
fn response(a: &Answer<'_>, parts: Vec<Value>, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"index": 0});
    if !parts.is_empty() {
        candidate["content"] = json!({"role": "model", "parts": parts});
    }
    if let Some(reason) = finish {
        candidate["finishReason"] = json!(reason);
        if reason == "SAFETY" {
            candidate["safetyRatings"] = json!([
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            ]);
        }
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": a.model,
        "responseId": format!("mock-resp-{}", a.id),
    })
}

/// The non-streamed answer.
fn whole(plan: &Plan<'_>, a: &Answer<'_>) -> Value {
    let mut parts = Vec::with_capacity(plan.calls.len() + 2);
    if plan.thought {
        parts.push(thought_part());
    }
    if plan.text {
        parts.push(json!({"text": completion_text(a.chunks)}));
    }
    parts.extend(
        plan.calls
            .iter()
            .enumerate()
            .map(|(n, name)| call_part(n, name)),
    );
    response(a, parts, Some(plan.finish_reason), plan.usage(a, true))
}

/// The streamed answer: the thought summary, then one chunk per text piece or per call; the finish reason and
/// the full usage ride on the last chunk.
fn chunks(plan: &Plan<'_>, a: &Answer<'_>) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::with_capacity(a.chunks + plan.calls.len() + 1);
    if plan.thought {
        parts.push(thought_part());
    }
    if plan.text {
        parts.extend((0..a.chunks).map(|i| json!({"text": piece(i)})));
    }
    parts.extend(
        plan.calls
            .iter()
            .enumerate()
            .map(|(n, name)| call_part(n, name)),
    );
    let last = parts.len().saturating_sub(1);
    if parts.is_empty() {
        // Nothing to say (a safety stop, or zero pieces): one chunk with the finish alone.
        return vec![response(
            a,
            Vec::new(),
            Some(plan.finish_reason),
            plan.usage(a, true),
        )];
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let end = i == last;
            response(
                a,
                vec![part],
                end.then_some(plan.finish_reason),
                plan.usage(a, end),
            )
        })
        .collect()
}

/// `:generateContent`, or `:streamGenerateContent` as SSE (`alt=sse`) or as one JSON array (without).
pub(super) fn generate(
    body: &Value,
    a: &Answer<'_>,
    stream: bool,
    sse: bool,
) -> Result<Response<MockBody>, String> {
    let plan = Plan::new(body, a.scenario)?;
    Ok(match (stream, sse) {
        (false, _) => json_response(StatusCode::OK, &whole(&plan, a)),
        (true, false) => json_response(StatusCode::OK, &Value::Array(chunks(&plan, a))),
        (true, true) => {
            // Google ends SSE lines with CRLF.
            let events = chunks(&plan, a)
                .iter()
                .map(|chunk| Bytes::from(format!("data: {chunk}\r\n\r\n")))
                .collect();
            event_stream(events, a.chunk_delay)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::text::usage_for;

    fn answer(scenario: Scenario) -> Answer<'static> {
        Answer {
            id: 7,
            model: "gemini-2.5-flash",
            chunks: 3,
            chunk_delay: Duration::ZERO,
            usage: usage_for(400, 3),
            created: 0,
            scenario,
        }
    }

    fn request() -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather"}, {"name": "other"}]}]})
    }

    fn plan_whole(scenario: Scenario) -> Value {
        let body = request();
        let a = answer(scenario);
        whole(&Plan::new(&body, scenario).unwrap(), &a)
    }

    fn plan_chunks(scenario: Scenario) -> Vec<Value> {
        let body = request();
        let a = answer(scenario);
        chunks(&Plan::new(&body, scenario).unwrap(), &a)
    }

    #[test]
    fn text_is_the_pieces_with_stop_and_usage() {
        let v = plan_whole(Scenario::Text);
        assert_eq!(
            v["candidates"][0]["content"],
            json!({"role": "model", "parts": [{"text": "Hello from the"}]})
        );
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        assert_eq!(v["modelVersion"], "gemini-2.5-flash");
        assert_eq!(v["responseId"], "mock-resp-7");
        assert_eq!(v["usageMetadata"]["promptTokenCount"], 100);
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 103);
        let chunks = plan_chunks(Scenario::Text);
        assert_eq!(chunks.len(), 3);
        assert!(chunks[0]["candidates"][0].get("finishReason").is_none());
        assert!(
            chunks[0]["usageMetadata"]
                .get("candidatesTokenCount")
                .is_none()
        );
        assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 3);
    }

    #[test]
    fn tool_calls_call_the_first_function_with_paris_then_london() {
        let v = plan_whole(Scenario::ParallelToolCalls);
        assert_eq!(
            v["candidates"][0]["content"]["parts"],
            json!([
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"location": "London"}}},
            ])
        );
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        let chunks = plan_chunks(Scenario::ToolCall);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["location"],
            "Paris"
        );
        assert!(Plan::new(&json!({"contents": []}), Scenario::ToolCall).is_err());
    }

    #[test]
    fn reasoning_thinks_first_and_counts_thoughts_apart() {
        let v = plan_whole(Scenario::Reasoning);
        let parts = &v["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0], json!({"text": REASONING_TEXT, "thought": true}));
        assert_eq!(parts[1], json!({"text": "Hello from the"}));
        assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], THOUGHTS_TOKENS);
        assert_eq!(
            v["usageMetadata"]["totalTokenCount"],
            100 + 3 + THOUGHTS_TOKENS
        );
        let chunks = plan_chunks(Scenario::Reasoning);
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            chunks[0]["candidates"][0]["content"]["parts"][0]["thought"],
            true
        );
    }

    #[test]
    fn length_filter_and_cache_scenarios() {
        assert_eq!(
            plan_whole(Scenario::Length)["candidates"][0]["finishReason"],
            "MAX_TOKENS"
        );
        let filtered = plan_whole(Scenario::ContentFilter);
        assert_eq!(filtered["candidates"][0]["finishReason"], "SAFETY");
        assert!(filtered["candidates"][0].get("content").is_none());
        assert_eq!(filtered["usageMetadata"]["candidatesTokenCount"], 0);
        let chunks = plan_chunks(Scenario::ContentFilter);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0]["candidates"][0]["finishReason"], "SAFETY");
        let cached = plan_whole(Scenario::Cached);
        assert_eq!(
            cached["usageMetadata"]["cachedContentTokenCount"],
            CACHED_READ_TOKENS
        );
        // Gemini counts the cached tokens inside the prompt: the prompt total does not change.
        assert_eq!(cached["usageMetadata"]["promptTokenCount"], 100);
    }
}
