//! A whole Cohere v2 answer, and Cohere's error bodies, → the unified model (`notes/translation.md` §7.1).

use std::borrow::Cow;

use serde::Deserialize;

use super::{failed_finish, finish_reason};
use crate::dialect::chat::{
    ChatResponse, FinishReason, FunctionCall, ProviderError, ToolCall, Usage,
};
use crate::dialect::codec::TranslateError;

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<AnswerMessage<'a>>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

#[derive(Deserialize)]
struct AnswerMessage<'a> {
    #[serde(borrow, default)]
    content: Vec<ContentItem<'a>>,
    #[serde(borrow, default)]
    tool_plan: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<AnswerToolCall<'a>>>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentItem<'a> {
    Text {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    Thinking {
        #[serde(borrow)]
        thinking: Cow<'a, str>,
    },
    /// Documents, citations and whatever Cohere adds later: nothing the unified answer carries.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct AnswerToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: AnswerFunction<'a>,
}

#[derive(Deserialize)]
struct AnswerFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<Arguments<'a>>,
}

/// Cohere documents the arguments as a JSON string; an object is read too rather than failing the answer.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Arguments<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Json(serde_json::Value),
}

impl Arguments<'_> {
    pub(super) fn into_string(self) -> String {
        match self {
            Arguments::Text(t) => t.into_owned(),
            Arguments::Json(v) => v.to_string(),
        }
    }
}

/// `usage`: `tokens` is what the model processed (reported as usage), `billed_units` what is charged (excludes
/// the prompt template; read when `tokens` is missing). `cached_tokens` is part of the input.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CohereUsage {
    #[serde(default)]
    tokens: Option<TokenCounts>,
    #[serde(default)]
    billed_units: Option<TokenCounts>,
    #[serde(default)]
    cached_tokens: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct TokenCounts {
    // Cohere's schema types these as numbers, and some answers write them as `12.0`.
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
    #[serde(default)]
    cached_tokens: Option<f64>,
}

impl CohereUsage {
    pub(super) fn to_usage(&self) -> Usage {
        let counts = self.tokens.as_ref().or(self.billed_units.as_ref());
        let count = |v: Option<f64>| v.map_or(0, |n| n.max(0.0) as u64);
        let cached = self
            .cached_tokens
            .or_else(|| self.tokens.as_ref().and_then(|t| t.cached_tokens));
        Usage {
            prompt_tokens: count(counts.and_then(|c| c.input_tokens)),
            completion_tokens: count(counts.and_then(|c| c.output_tokens)),
            cached_tokens: count(cached),
            ..Usage::default()
        }
    }
}

pub(super) fn decode(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let answer: Answer<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadResponse(format!("cohere chat answer: {e}")))?;
    let message = answer.message.unwrap_or(AnswerMessage {
        content: Vec::new(),
        tool_plan: None,
        tool_calls: None,
    });
    let mut text = String::new();
    let mut reasoning = String::new();
    for item in message.content {
        match item {
            ContentItem::Text { text: t } => text.push_str(&t),
            ContentItem::Thinking { thinking } => reasoning.push_str(&thinking),
            ContentItem::Other => {}
        }
    }
    // The plan Cohere writes before calling tools is the answer's text when there is no other (§7.1); next to
    // real text it is reasoning.
    if let Some(plan) = message.tool_plan.filter(|p| !p.is_empty()) {
        if text.is_empty() {
            text = plan.into_owned();
        } else {
            if !reasoning.is_empty() {
                reasoning.push_str("\n\n");
            }
            reasoning.push_str(&plan);
        }
    }
    let tool_calls: Vec<ToolCall> = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c.id.map_or_else(|| format!("call_{i}"), Cow::into_owned),
            kind: "function".to_owned(),
            function: FunctionCall {
                name: c.function.name.into_owned(),
                arguments: c
                    .function
                    .arguments
                    .map(Arguments::into_string)
                    .unwrap_or_default(),
            },
        })
        .collect();
    let raw_reason = answer.finish_reason.as_deref().unwrap_or("COMPLETE");
    let produced = !text.is_empty() || !tool_calls.is_empty();
    let finish = match finish_reason(raw_reason) {
        Some(reason) => reason,
        // ERROR/TIMEOUT with an answer: keep what came (§8.3); with nothing, the client gets an error.
        None if produced => FinishReason::Stop,
        None => {
            let failed = failed_finish(raw_reason);
            return Err(TranslateError::BadResponse(failed.message));
        }
    };
    let finish = match finish {
        // A message with tool calls reports `tool_calls`, and `tool_calls` is never reported without them.
        FinishReason::Stop if !tool_calls.is_empty() => FinishReason::ToolCalls,
        FinishReason::ToolCalls if tool_calls.is_empty() => FinishReason::Stop,
        other => other,
    };
    Ok(ChatResponse {
        id: answer.id.map(Cow::into_owned),
        model: None,
        text: (!text.is_empty()).then_some(text),
        reasoning: (!reasoning.is_empty()).then_some(reasoning),
        tool_calls,
        finish_reason: Some(finish),
        usage: answer.usage.as_ref().map(CohereUsage::to_usage),
    })
}

/// Cohere's error body: `{"message": …}`, with an `id` on most.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

pub(super) fn decode_error(status: u16, body: &[u8]) -> ProviderError {
    let message = serde_json::from_slice::<ErrorBody<'_>>(body)
        .ok()
        .and_then(|b| b.message)
        .filter(|m| !m.is_empty());
    let Some(message) = message else {
        // Not Cohere's shape: a proxy's page or a cut body. A 5xx nobody can read is a bad gateway (§8.5).
        let status = if status >= 500 {
            502
        } else {
            ProviderError::map_status(status)
        };
        let text = String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned();
        let message = if text.is_empty() {
            format!("the provider answered {status} without an error message")
        } else {
            format!("the provider answered {status}: {text}")
        };
        return ProviderError::new(status, message);
    };
    let status = ProviderError::map_status(status);
    let mut error = ProviderError::new(status, message.into_owned());
    let lower = error.message.to_ascii_lowercase();
    match status {
        400 if lower.contains("too many tokens") || lower.contains("context length") => {
            error.code = Some("context_length_exceeded".to_owned());
        }
        401 => error.code = Some("invalid_api_key".to_owned()),
        // Cohere's "payment required": OpenAI calls running out of credit `insufficient_quota`.
        402 => {
            error.kind = "insufficient_quota".to_owned();
            error.code = Some("insufficient_quota".to_owned());
        }
        404 if lower.contains("model") => error.code = Some("model_not_found".to_owned()),
        429 => error.code = Some("rate_limit_exceeded".to_owned()),
        _ => {}
    }
    error
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode_json(v: serde_json::Value) -> Result<ChatResponse, TranslateError> {
        decode(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn a_text_answer_with_usage_and_cached_tokens() {
        let resp = decode_json(json!({
            "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}]},
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2},
                "tokens": {"input_tokens": 71, "output_tokens": 2}, "cached_tokens": 8}
        }))
        .unwrap();
        assert_eq!(
            resp.id.as_deref(),
            Some("c14c80c3-18eb-4519-9460-6c92edd8cfb4")
        );
        assert_eq!(resp.text.as_deref(), Some("Hello there"));
        assert_eq!(resp.reasoning, None);
        assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
        assert_eq!(
            resp.usage,
            Some(Usage {
                prompt_tokens: 71,
                completion_tokens: 2,
                cached_tokens: 8,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn thinking_and_tool_calls_with_the_plan_as_text() {
        let resp = decode_json(json!({
            "id": "x",
            "finish_reason": "TOOL_CALL",
            "message": {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "Weather needs a tool."}],
                "tool_plan": "I will call get_weather.",
                "tool_calls": [
                    {"id": "get_weather_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                    {"id": "get_weather_def", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "London"}}}
                ]
            },
            "usage": {"billed_units": {"input_tokens": 30, "output_tokens": 20}}
        }))
        .unwrap();
        assert_eq!(resp.text.as_deref(), Some("I will call get_weather."));
        assert_eq!(resp.reasoning.as_deref(), Some("Weather needs a tool."));
        assert_eq!(resp.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(resp.tool_calls.len(), 2);
        assert_eq!(resp.tool_calls[0].id, "get_weather_abc");
        assert_eq!(
            resp.tool_calls[0].function.arguments,
            r#"{"location":"Paris"}"#
        );
        assert_eq!(
            resp.tool_calls[1].function.arguments,
            r#"{"location":"London"}"#
        );
        // Only billed units: they are the counts then.
        assert_eq!(resp.usage.unwrap().prompt_tokens, 30);
    }

    #[test]
    fn a_plan_next_to_text_is_reasoning() {
        let resp = decode_json(json!({"finish_reason": "COMPLETE", "message": {
            "content": [{"type": "text", "text": "Done."}], "tool_plan": "plan"}}))
        .unwrap();
        assert_eq!(resp.text.as_deref(), Some("Done."));
        assert_eq!(resp.reasoning.as_deref(), Some("plan"));
    }

    #[test]
    fn finish_reasons_map_to_openai_and_failures_without_an_answer_are_errors() {
        let with = |reason: &str, text: &str| {
            decode_json(
                json!({"finish_reason": reason, "message": {"content": [{"type": "text", "text": text}]}}),
            )
        };
        assert_eq!(
            with("COMPLETE", "a").unwrap().finish_reason,
            Some(FinishReason::Stop)
        );
        assert_eq!(
            with("STOP_SEQUENCE", "a").unwrap().finish_reason,
            Some(FinishReason::Stop)
        );
        assert_eq!(
            with("MAX_TOKENS", "a").unwrap().finish_reason,
            Some(FinishReason::Length)
        );
        // TOOL_CALL without calls would break the invariant.
        assert_eq!(
            with("TOOL_CALL", "a").unwrap().finish_reason,
            Some(FinishReason::Stop)
        );
        assert_eq!(
            with("SOMETHING_NEW", "a").unwrap().finish_reason,
            Some(FinishReason::Stop)
        );
        assert_eq!(
            with("ERROR", "partial").unwrap().finish_reason,
            Some(FinishReason::Stop)
        );
        assert!(matches!(
            with("ERROR", ""),
            Err(TranslateError::BadResponse(_))
        ));
        assert!(
            matches!(with("TIMEOUT", ""), Err(TranslateError::BadResponse(m)) if m.contains("TIMEOUT"))
        );
    }

    #[test]
    fn an_unreadable_answer_is_a_bad_response() {
        assert!(matches!(
            decode(b"not json"),
            Err(TranslateError::BadResponse(_))
        ));
    }

    #[test]
    fn errors_keep_cohere_message_and_status() {
        let e = decode_error(
            400,
            br#"{"id":"abc","message":"invalid request: message must be at least 1 token long"}"#,
        );
        assert_eq!((e.status, e.kind.as_str()), (400, "invalid_request_error"));
        assert_eq!(
            e.message,
            "invalid request: message must be at least 1 token long"
        );
        let e = decode_error(401, br#"{"message":"invalid api token"}"#);
        assert_eq!(
            (e.status, e.kind.as_str(), e.code.as_deref()),
            (401, "authentication_error", Some("invalid_api_key"))
        );
        let e = decode_error(402, br#"{"message":"Please add a payment method"}"#);
        assert_eq!(e.code.as_deref(), Some("insufficient_quota"));
        let e = decode_error(404, br#"{"id":"x","message":"model 'nope' not found, make sure the correct model ID was used"}"#);
        assert_eq!(
            (e.status, e.code.as_deref()),
            (404, Some("model_not_found"))
        );
        let e = decode_error(429, br#"{"message":"You are using a Trial key, which is limited to 10 API calls / minute."}"#);
        assert_eq!((e.status, e.kind.as_str()), (429, "rate_limit_error"));
        let e = decode_error(
            400,
            br#"{"message":"too many tokens: size limit exceeded by 1200 tokens"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        let e = decode_error(499, br#"{"message":"client closed request"}"#);
        assert_eq!(e.status, 499);
        let e = decode_error(503, br#"{"message":"service unavailable"}"#);
        assert_eq!((e.status, e.kind.as_str()), (503, "server_error"));
    }

    #[test]
    fn an_unreadable_error_body_keeps_a_hint_and_a_5xx_becomes_502() {
        let e = decode_error(500, b"<html>upstream broke</html>");
        assert_eq!(e.status, 502);
        assert!(e.message.contains("upstream broke"), "{}", e.message);
        assert_eq!(decode_error(403, b"").status, 403);
    }
}
