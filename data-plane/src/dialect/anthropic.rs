//! Anthropic's Messages API (`POST /v1/messages`) behind the unified chat model (`notes/translation.md` §4, §8).
//!
//! - [`request`]: a [`ChatRequest`] → the Messages body (system apart, tool results in user turns, forced-tool
//!   JSON mode, thinking budgets).
//! - [`response`]: a whole Messages answer → a [`ChatResponse`].
//! - [`stream`]: the `event:`/`data:` stream → [`StreamEvent`](super::chat::StreamEvent)s, block by block.
//! - [`error`]: Anthropic's error body (HTTP or mid-stream `error` event) → a [`ProviderError`].
//!
//! The codec is stateless: what the decoders must know about the request (the JSON-mode tool) is recognised by
//! the reserved tool name [`JSON_MODE_TOOL`].

mod compact_json;
mod error;
mod messages;
#[cfg(test)]
mod mock_tests;
mod request;
mod response;
mod stream;

use serde::Deserialize;

use super::chat::{ChatRequest, ChatResponse, FinishReason, ProviderError, Usage};
use super::codec::{ChatCodec, Encoded, StreamDecoder, Target, TranslateError};

/// Anthropic's Messages format (the `anthropic` provider; also Claude on Vertex `rawPredict` and Bedrock
/// `InvokeModel`, which take the same body).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicCodec;

/// The path after the provider's base URL.
pub const MESSAGES_PATH: &str = "/v1/messages";

/// The API version every request must name (still the current one).
pub const API_VERSION: &str = "2023-06-01";

/// The tool that carries `response_format` answers (the forced-tool trick): its input is the JSON answer. The name
/// is reserved so that the stateless decoders can tell it from the client's own tools.
pub const JSON_MODE_TOOL: &str = "gatehouse_json_answer";

impl ChatCodec for AnthropicCodec {
    fn encode(
        &self,
        request: &ChatRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let body = request::encode(request, target)?;
        Ok(Encoded {
            path: MESSAGES_PATH.to_owned(),
            headers: vec![("anthropic-version", API_VERSION.to_owned())],
            body,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<ChatResponse, TranslateError> {
        response::decode(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::MessagesStreamDecoder::default())
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        error::decode(status, body)
    }
}

/// Anthropic's `stop_reason` in OpenAI's vocabulary (§8.3); unknown reasons are `stop`, never forwarded raw.
fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn and whatever comes next.
        _ => FinishReason::Stop,
    }
}

/// Keeps OpenAI's invariants: `tool_calls` exactly when the answer has tool calls (a `tool_use` stop whose only
/// tool was the JSON-mode one is a plain `stop`).
fn reconcile_finish(reason: FinishReason, has_tool_calls: bool) -> FinishReason {
    match reason {
        FinishReason::ToolCalls if !has_tool_calls => FinishReason::Stop,
        FinishReason::Stop if has_tool_calls => FinishReason::ToolCalls,
        other => other,
    }
}

/// Anthropic's `usage` object. Every field is optional: `message_delta` may carry only `output_tokens`, or repeat
/// the input and cache counts (cumulatively, not as increments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Field by field, a later present value wins (the counts are cumulative, so nothing is added twice).
    fn merge(&mut self, later: &WireUsage) {
        fn pick(a: &mut Option<u64>, b: Option<u64>) {
            if b.is_some() {
                *a = b;
            }
        }
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
    }

    /// In OpenAI's inclusive convention (§8.4): Anthropic's `input_tokens` counts only the uncached input, so the
    /// prompt is input + cache reads + cache writes; `output_tokens` already includes thinking.
    fn to_usage(self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0) + cache_read + cache_write,
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: cache_read,
            cache_creation_tokens: cache_write,
            reasoning_tokens: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_openai_finish_reasons() {
        for (raw, want) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("pause_turn", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("something_new", FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(raw), want, "{raw}");
        }
    }

    #[test]
    fn tool_calls_is_reported_exactly_when_there_are_tool_calls() {
        assert_eq!(
            reconcile_finish(FinishReason::ToolCalls, false),
            FinishReason::Stop
        );
        assert_eq!(
            reconcile_finish(FinishReason::Stop, true),
            FinishReason::ToolCalls
        );
        assert_eq!(
            reconcile_finish(FinishReason::Length, true),
            FinishReason::Length
        );
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_in_the_prompt() {
        let wire = WireUsage {
            input_tokens: Some(10),
            output_tokens: Some(7),
            cache_creation_input_tokens: Some(4),
            cache_read_input_tokens: Some(8),
        };
        let usage = wire.to_usage();
        assert_eq!(usage.prompt_tokens, 22);
        assert_eq!(usage.cached_tokens, 8);
        assert_eq!(usage.cache_creation_tokens, 4);
        assert_eq!(usage.completion_tokens, 7);
        assert_eq!(usage.total(), 29);
    }

    #[test]
    fn a_repeated_cumulative_usage_is_not_counted_twice() {
        let mut merged = WireUsage {
            input_tokens: Some(10),
            output_tokens: Some(1),
            cache_creation_input_tokens: Some(4),
            cache_read_input_tokens: Some(8),
        };
        merged.merge(&WireUsage {
            input_tokens: Some(10),
            output_tokens: Some(30),
            cache_creation_input_tokens: Some(4),
            cache_read_input_tokens: Some(8),
        });
        merged.merge(&WireUsage {
            output_tokens: Some(31),
            ..WireUsage::default()
        });
        assert_eq!(merged.to_usage().prompt_tokens, 22);
        assert_eq!(merged.to_usage().completion_tokens, 31);
    }
}
