//! Cohere's v2 Chat API (`POST /v2/chat`, `notes/translation.md` §7.1 and §8) behind the [`ChatCodec`] seam.
//!
//! Cohere v2 is the closest native format to OpenAI's: messages keep their roles (system messages stay in place),
//! tools are in OpenAI's shape and tool-call arguments stay JSON strings. What differs is renamed or reduced:
//! `top_p` is `p`, `stop` is `stop_sequences`, `tool_choice` is `REQUIRED`/`NONE` (no named form), `json_schema` is
//! `{type:"json_object", json_schema}`, reasoning is `thinking`, and the stream is Cohere's own event vocabulary
//! (`message-start`, `content-delta`, `tool-call-start`, …, `message-end`).
//!
//! - [`request`]: the unified request → Cohere's body.
//! - [`response`]: a whole answer and an error body → the unified model.
//! - [`stream`]: the SSE stream → [`StreamEvent`](super::chat::StreamEvent)s as bytes arrive.

#[cfg(test)]
mod mock_tests;
mod request;
mod response;
mod stream;

use super::chat::{ChatRequest, ChatResponse, ProviderError};
use super::codec::{ChatCodec, Encoded, StreamDecoder, Target, TranslateError};

pub use stream::CohereStreamDecoder;

/// The path of Cohere's chat endpoint, after the provider's base URL.
pub const CHAT_PATH: &str = "/v2/chat";

/// Cohere v2 chat.
#[derive(Debug, Clone, Copy, Default)]
pub struct CohereCodec;

impl ChatCodec for CohereCodec {
    fn encode(
        &self,
        request: &ChatRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let body = request::encode(request, target)?;
        Ok(Encoded {
            path: CHAT_PATH.to_owned(),
            headers: Vec::new(),
            body,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<ChatResponse, TranslateError> {
        response::decode(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(CohereStreamDecoder::new())
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        response::decode_error(status, body)
    }
}

/// Cohere's `finish_reason` in OpenAI's vocabulary. `ERROR` and `TIMEOUT` are failures, not reasons: `None`, and
/// the caller decides (an error when nothing was produced, `stop` when an answer is already there, §8.3).
/// Unknown values read as `stop`: a strictly typed client must never see a raw provider reason.
fn finish_reason(raw: &str) -> Option<super::chat::FinishReason> {
    use super::chat::FinishReason;
    match raw {
        "MAX_TOKENS" => Some(FinishReason::Length),
        "TOOL_CALL" => Some(FinishReason::ToolCalls),
        "ERROR" | "TIMEOUT" => None,
        // COMPLETE, STOP_SEQUENCE and anything new.
        _ => Some(FinishReason::Stop),
    }
}

/// The provider error for a Cohere `ERROR`/`TIMEOUT` finish with nothing produced.
fn failed_finish(raw: &str) -> ProviderError {
    if raw == "TIMEOUT" {
        ProviderError::new(
            504,
            "the provider timed out generating the answer (finish_reason TIMEOUT)",
        )
    } else {
        ProviderError::new(
            502,
            "the provider failed generating the answer (finish_reason ERROR)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codec_posts_to_v2_chat_with_no_extra_headers() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"cohere/command-a","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let target = Target {
            provider: "cohere",
            model: "command-a-03-2025",
            stream: false,
            project: None,
            region: None,
        };
        let encoded = CohereCodec.encode(&req, &target).unwrap();
        assert_eq!(encoded.path, "/v2/chat");
        assert!(encoded.headers.is_empty());
        let body: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(body["model"], "command-a-03-2025");
    }
}
