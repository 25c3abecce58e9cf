//! Bedrock Converse answer → the unified answer (`notes/translation.md` §6.3, §8.3, §8.4), and the pieces the
//! stream decoder shares with it: usage and stop reasons.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::JSON_TOOL_NAME;
use crate::dialect::chat::{ChatResponse, FinishReason, FunctionCall, ToolCall, Usage};
use crate::dialect::codec::TranslateError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    #[serde(default)]
    output: Option<Output>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    message: Option<OutputMessage>,
}

#[derive(Deserialize)]
struct OutputMessage {
    #[serde(default)]
    content: Vec<OutputBlock>,
}

/// One content block; exactly one of these is set (others, like `citationsContent`, are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    reasoning_content: Option<ReasoningContent>,
    #[serde(default)]
    tool_use: Option<ToolUse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasoningContent {
    #[serde(default)]
    reasoning_text: Option<ReasoningText>,
}

#[derive(Deserialize)]
struct ReasoningText {
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse {
    tool_use_id: String,
    name: String,
    #[serde(default)]
    input: Value,
}

/// Converse's usage, camelCase (the fields Cloudflare itself misses, cloudflare/ai#491).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BedrockUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

impl BedrockUsage {
    /// OpenAI's inclusive convention: `inputTokens` excludes cache reads and writes, so both are added.
    pub(super) fn to_usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.input_tokens
                + self.cache_read_input_tokens
                + self.cache_write_input_tokens,
            completion_tokens: self.output_tokens,
            cached_tokens: self.cache_read_input_tokens,
            cache_creation_tokens: self.cache_write_input_tokens,
            reasoning_tokens: 0,
        }
    }
}

/// `stopReason` in OpenAI's vocabulary (§8.3); unknown and `malformed_*` reasons are `stop`.
pub(super) fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The invariants clients rely on: an answer with tool calls says `tool_calls`, and `tool_calls` is never said
/// without calls (e.g. when the only "call" was the JSON-mode tool, whose input became the text).
pub(super) fn reconcile(reason: FinishReason, has_tool_calls: bool) -> FinishReason {
    match reason {
        FinishReason::Stop if has_tool_calls => FinishReason::ToolCalls,
        FinishReason::ToolCalls if !has_tool_calls => FinishReason::Stop,
        other => other,
    }
}

pub(super) fn decode(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let response: ConverseResponse<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadResponse(format!("Bedrock Converse: {e}")))?;
    let blocks = response
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.text {
            text.get_or_insert_with(String::new).push_str(&t);
        } else if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            reasoning.get_or_insert_with(String::new).push_str(&r.text);
        } else if let Some(call) = block.tool_use {
            let arguments = call.input.to_string();
            if call.name == JSON_TOOL_NAME {
                // JSON mode: the forced tool's input is the answer.
                text.get_or_insert_with(String::new).push_str(&arguments);
            } else {
                tool_calls.push(ToolCall {
                    id: call.tool_use_id,
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: call.name,
                        arguments,
                    },
                });
            }
        }
    }
    let finish_reason = response
        .stop_reason
        .as_deref()
        .map(|r| reconcile(finish_reason(r), !tool_calls.is_empty()));
    Ok(ChatResponse {
        // Converse bodies carry no id (it is in the `x-amzn-RequestId` header) and no model name.
        id: None,
        model: None,
        text,
        reasoning,
        tool_calls,
        finish_reason,
        usage: response.usage.as_ref().map(BedrockUsage::to_usage),
    })
}
