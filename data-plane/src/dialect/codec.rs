//! The seam between the unified model (`chat.rs`) and one provider family's wire format. A codec is pure: no
//! I/O, no pingora, no tokio, so it is tested with recorded bodies and streams. The attempt loop owns the
//! connection; a codec only says what to send and how to read what came back.

use super::chat::{ChatRequest, ChatResponse, ProviderError, StreamEvent};

/// Where a translated request goes, as resolved from the client's `model` and the gateway's stored settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The provider slug (`anthropic`, `google-vertex-ai`, `aws-bedrock`, …).
    pub provider: &'a str,
    /// The model as the provider names it: the part of `{provider}/{model}` after the first `/`.
    pub model: &'a str,
    /// Whether the client asked for a stream (`stream: true`).
    pub stream: bool,
    /// The cloud project (Vertex AI: from the stored service-account JSON's `project_id`).
    pub project: Option<&'a str>,
    /// The cloud region (Vertex AI: the stored JSON's `region`; Bedrock: the stored credentials' `region`, which
    /// the host carries, so the codec does not need it).
    pub region: Option<&'a str>,
}

/// A request ready for the provider: the path after the provider's base URL, the headers the format needs
/// besides the credential, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Starts with `/`; appended to the provider's base URL (e.g. `/v1/messages`,
    /// `/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`).
    pub path: String,
    /// Extra request headers (e.g. `anthropic-version`); `content-type: application/json` is always set by the
    /// caller.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Why a request cannot be translated, or a provider's answer cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request is malformed for this target (a 400 in OpenAI's shape, nothing sent upstream).
    #[error("{message}")]
    Invalid {
        message: String,
        /// The offending field, as OpenAI's `param` (e.g. `messages[2].tool_call_id`).
        param: Option<String>,
    },
    /// The request asks for something this provider cannot do (e.g. `n > 1`): a 400, never silently dropped.
    #[error("{message}")]
    Unsupported {
        message: String,
        param: Option<String>,
    },
    /// The provider answered with a body this codec cannot read (a 502 to the client).
    #[error("the provider's answer could not be read: {0}")]
    BadResponse(String),
}

impl TranslateError {
    pub fn invalid(message: impl Into<String>, param: impl Into<Option<String>>) -> Self {
        TranslateError::Invalid {
            message: message.into(),
            param: param.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>, param: impl Into<Option<String>>) -> Self {
        TranslateError::Unsupported {
            message: message.into(),
            param: param.into(),
        }
    }

    /// As the provider error a client gets.
    pub fn to_provider_error(&self) -> ProviderError {
        match self {
            TranslateError::Invalid { message, param } => ProviderError {
                param: param.clone(),
                ..ProviderError::new(400, message.clone())
            },
            TranslateError::Unsupported { message, param } => ProviderError {
                param: param.clone(),
                code: Some("unsupported_parameter".to_owned()),
                ..ProviderError::new(400, message.clone())
            },
            TranslateError::BadResponse(_) => ProviderError::new(502, self.to_string()),
        }
    }
}

/// One provider family's chat format.
pub trait ChatCodec: Send + Sync {
    /// The unified request → the provider's path, headers and body.
    fn encode(&self, request: &ChatRequest, target: &Target<'_>)
    -> Result<Encoded, TranslateError>;

    /// A whole successful (2xx) provider answer → the unified answer.
    fn decode(&self, body: &[u8]) -> Result<ChatResponse, TranslateError>;

    /// A decoder for one streamed answer (one allocation per stream).
    fn stream_decoder(&self) -> Box<dyn StreamDecoder>;

    /// A provider's error answer (status ≥ 400) → OpenAI's error vocabulary, the provider's message kept.
    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError;
}

/// Decodes one streamed answer as its bytes arrive. The bytes come in whatever pieces the network delivers
/// (a frame may be split anywhere, several may arrive at once); events are pushed as soon as a whole frame is
/// there, never held back to the end.
pub trait StreamDecoder: Send {
    /// Decodes what `bytes` completes; pushes the events in order. A frame that cannot be read becomes a
    /// [`StreamEvent::Error`] (the stream then ends).
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>);

    /// The upstream ended; `complete` says whether it ended cleanly. Pushes what was pending (e.g. a finish
    /// reason held back for its usage).
    fn finish(&mut self, complete: bool, out: &mut Vec<StreamEvent>);
}
