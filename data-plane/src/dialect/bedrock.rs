//! AWS Bedrock Converse / ConverseStream (`notes/translation.md` §6): the codec, and what a Bedrock request needs
//! around it.
//!
//! - [`BedrockCodec`]: OpenAI Chat ↔ Converse (`request.rs`, `response.rs`), the binary event stream
//!   (`eventstream.rs` frames it, `stream.rs` decodes it) and Bedrock's errors (`errors.rs`).
//! - [`sigv4`]: request signing and the stored credential (a key pair with its region, or a Bedrock API key).
//!
//! The codec gives the path after `https://bedrock-runtime.{region}.amazonaws.com`; the caller signs the final
//! request with [`sigv4::sign`] (the path as encoded here, the body bytes as sent) or sets `Authorization: Bearer`
//! for an API key.

pub mod eventstream;
pub mod sigv4;

mod errors;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod mock_tests;
#[cfg(test)]
mod request_tests;

pub use errors::provider_error;

use super::chat::{ChatRequest, ChatResponse, ProviderError};
use super::codec::{ChatCodec, Encoded, StreamDecoder, Target, TranslateError};

/// The tool that carries a JSON-mode answer (`response_format` json_object / json_schema): forced on the model,
/// and its input read back as the answer's text. Reserved: a client tool of this name is refused.
pub const JSON_TOOL_NAME: &str = "json_tool_call";

/// The Converse / ConverseStream codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct BedrockCodec;

impl ChatCodec for BedrockCodec {
    fn encode(
        &self,
        request: &ChatRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let body = request::converse_request(request, target.model)?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            TranslateError::invalid(format!("the request cannot be encoded: {e}"), None)
        })?;
        Ok(Encoded {
            path: converse_path(target.model, target.stream),
            headers: Vec::new(),
            body,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<ChatResponse, TranslateError> {
        response::decode(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::ConverseStreamDecoder::default())
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        provider_error(status, None, body)
    }
}

/// `/model/{modelId}/converse` or `/converse-stream`, the model id percent-encoded as one segment (`:` → `%3A`,
/// `/` of an ARN → `%2F`). This is the wire form; SigV4 signs it encoded once more (§9).
pub fn converse_path(model: &str, stream: bool) -> String {
    let mut path = String::with_capacity(model.len() + 32);
    path.push_str("/model/");
    for &b in model.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            path.push(b as char);
        } else {
            path.push('%');
            path.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            path.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    path.push_str(if stream {
        "/converse-stream"
    } else {
        "/converse"
    });
    path
}

/// The model family, as far as the translation depends on it. Ids come bare (`anthropic.claude-…`), with a
/// cross-region prefix (`us.`, `eu.`, `apac.`, `global.`) or inside an ARN, so the family is found by substring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Anthropic,
    Nova,
    Mistral,
    Other,
}

impl Family {
    fn of(model: &str) -> Family {
        if model.contains("anthropic.") {
            Family::Anthropic
        } else if model.contains("amazon.nova") {
            Family::Nova
        } else if model.contains("mistral.") {
            Family::Mistral
        } else {
            Family::Other
        }
    }

    /// Converse's `toolChoice` is honoured by these families only (§6.2).
    fn takes_tool_choice(self) -> bool {
        self != Family::Other
    }
}
