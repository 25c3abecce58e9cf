//! A whole Messages answer → a [`ChatResponse`] (§4.3, §4.7): text blocks joined, thinking as reasoning,
//! `tool_use` as tool calls (the JSON-mode tool's input as the text instead), the stop reason and usage mapped.

use serde::Deserialize;

use super::compact_json::CompactJson;
use super::{JSON_MODE_TOOL, WireUsage, finish_reason, reconcile_finish};
use crate::dialect::chat::{ChatResponse, FunctionCall, ToolCall};
use crate::dialect::codec::TranslateError;

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<CompactJson>,
    },
    /// `redacted_thinking`, server-tool blocks and whatever comes next: nothing OpenAI's shape can carry.
    #[serde(other)]
    Other,
}

pub(super) fn decode(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let message: Message =
        serde_json::from_slice(body).map_err(|e| TranslateError::BadResponse(e.to_string()))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: t } => append(&mut text, &t),
            Block::Thinking { thinking } => append(&mut reasoning, &thinking),
            Block::ToolUse { id, name, input } => {
                let arguments = input.map_or_else(|| "{}".to_owned(), |CompactJson(json)| json);
                if name == JSON_MODE_TOOL {
                    // The forced-tool trick: the tool's input is the JSON answer.
                    append(&mut text, &arguments);
                } else {
                    tool_calls.push(ToolCall {
                        id,
                        kind: "function".to_owned(),
                        function: FunctionCall { name, arguments },
                    });
                }
            }
            Block::Other => {}
        }
    }
    let finish_reason = message
        .stop_reason
        .as_deref()
        .map(|r| reconcile_finish(finish_reason(r), !tool_calls.is_empty()));
    Ok(ChatResponse {
        id: message.id,
        model: message.model,
        text,
        reasoning,
        tool_calls,
        finish_reason,
        usage: message.usage.map(WireUsage::to_usage),
    })
}

fn append(into: &mut Option<String>, piece: &str) {
    match into {
        Some(s) => s.push_str(piece),
        None => *into = Some(piece.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::chat::{FinishReason, Usage};
    use serde_json::{Value, json};

    fn decoded(v: Value) -> ChatResponse {
        decode(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn text_blocks_join_and_thinking_becomes_reasoning() {
        let r = decoded(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": " world"},
            ],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "service_tier": "standard"}
        }));
        assert_eq!(r.id.as_deref(), Some("msg_1"));
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(r.text.as_deref(), Some("Hello world"));
        assert_eq!(r.reasoning.as_deref(), Some("Hmm."));
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn tool_use_blocks_are_tool_calls_with_compact_arguments() {
        // Raw text: `json!` would sort the keys, and the arguments must keep the model's order.
        let body = r#"{"id": "msg_2", "model": "m",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris", "days": 2}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 3, "output_tokens": 4}}"#;
        let r = decode(body.as_bytes()).unwrap();
        assert_eq!(r.text.as_deref(), Some("Let me check."));
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].id, "toolu_1");
        assert_eq!(r.tool_calls[0].kind, "function");
        assert_eq!(r.tool_calls[0].function.name, "get_weather");
        assert_eq!(
            r.tool_calls[0].function.arguments,
            r#"{"location":"Paris","days":2}"#
        );
        assert_eq!(r.tool_calls[1].function.arguments, "{}");
    }

    #[test]
    fn the_json_mode_tool_becomes_the_text_and_a_stop() {
        let r = decoded(json!({
            "content": [{"type": "tool_use", "id": "toolu_1", "name": JSON_MODE_TOOL, "input": {"name": "Ada"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}
        }));
        assert_eq!(r.text.as_deref(), Some(r#"{"name":"Ada"}"#));
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn stop_reasons_and_cache_usage_are_mapped() {
        let r = decoded(json!({
            "content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens",
            "usage": {"input_tokens": 10, "output_tokens": 7, "cache_creation_input_tokens": 4,
                      "cache_read_input_tokens": 8}
        }));
        assert_eq!(r.finish_reason, Some(FinishReason::Length));
        let usage = r.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.cached_tokens,
                usage.cache_creation_tokens,
                usage.completion_tokens
            ),
            (22, 8, 4, 7)
        );
        let refusal = decoded(json!({"content": [], "stop_reason": "refusal"}));
        assert_eq!(refusal.finish_reason, Some(FinishReason::ContentFilter));
        assert_eq!(refusal.text, None);
    }

    #[test]
    fn a_body_that_is_not_a_message_is_a_bad_response() {
        assert!(matches!(
            decode(b"<html>"),
            Err(TranslateError::BadResponse(_))
        ));
        assert!(matches!(
            decode(br#"{"content": "nope"}"#),
            Err(TranslateError::BadResponse(_))
        ));
    }
}
