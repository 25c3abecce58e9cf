//! Bedrock errors → OpenAI's error vocabulary (`notes/translation.md` §6.5, §8.5). Bedrock's body is only
//! `{"message": …}`; the exception's name travels in the `x-amzn-ErrorType` header (HTTP answers) or the
//! `:exception-type` header (stream exceptions). Without the name, the status and the message decide.

use serde::Deserialize;

use crate::dialect::chat::ProviderError;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// How much of an unreadable body is kept as the message.
const MAX_RAW_MESSAGE: usize = 512;

/// A Bedrock error answer. `error_type` is the `x-amzn-ErrorType` header when the caller has it
/// (`ThrottlingException:http://internal.amazon.com/…` — the part before `:` counts).
pub fn provider_error(status: u16, error_type: Option<&str>, body: &[u8]) -> ProviderError {
    let parsed = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message);
    let readable = parsed.is_some();
    let message = parsed.unwrap_or_else(|| raw_message(status, body));
    let error_type = error_type
        .map(|t| t.split(':').next().unwrap_or(t).trim())
        .filter(|t| !t.is_empty());
    let mut error = match error_type {
        Some(t) => by_exception(t, &message),
        None => by_status(status, &message),
    };
    if !readable && error.status >= 500 && error_type.is_none() {
        // An unreadable 5xx is the gateway's "bad gateway", whatever the upstream said.
        error.status = 502;
    }
    error.message = message;
    error
}

/// An exception named in the stream (`:exception-type`) or in `x-amzn-ErrorType`.
pub(super) fn by_exception(exception: &str, message: &str) -> ProviderError {
    let (status, code): (u16, Option<&str>) = match exception.to_ascii_lowercase().as_str() {
        "validationexception" => (
            400,
            context_overflow(message).then_some("context_length_exceeded"),
        ),
        "accessdeniedexception" => (403, None),
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => (401, Some("invalid_api_key")),
        "resourcenotfoundexception" => (404, Some("model_not_found")),
        "throttlingexception" | "servicequotaexceededexception" | "toomanyrequestsexception" => {
            (429, Some("rate_limit_exceeded"))
        }
        "modeltimeoutexception" => (504, None),
        "modelerrorexception" | "modelstreamerrorexception" => (502, None),
        "modelnotreadyexception" | "serviceunavailableexception" => (503, None),
        "internalserverexception" => (500, None),
        _ => (502, None),
    };
    ProviderError {
        // Where OpenAI has no code for it, the exception's own name tells the client what happened.
        code: Some(code.map_or_else(|| exception.to_owned(), str::to_owned)),
        ..ProviderError::new(status, message)
    }
}

fn by_status(status: u16, message: &str) -> ProviderError {
    let lower = message.to_ascii_lowercase();
    let (status, code) = match status {
        400 if context_overflow(message) => (400, Some("context_length_exceeded")),
        // Bedrock answers bad credentials with 403 (UnrecognizedClient, InvalidSignature); OpenAI's clients expect
        // 401 for those.
        403 if lower.contains("security token") || lower.contains("signature") => {
            (401, Some("invalid_api_key"))
        }
        401 => (401, Some("invalid_api_key")),
        404 => (404, Some("model_not_found")),
        408 => (504, None),
        424 => (502, None),
        429 => (429, Some("rate_limit_exceeded")),
        s => (ProviderError::map_status(s), None),
    };
    ProviderError {
        code: code.map(str::to_owned),
        ..ProviderError::new(status, message)
    }
}

/// Bedrock's words for a prompt larger than the model's window.
fn context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "input is too long",
        "too many input tokens",
        "prompt is too long",
        "exceeds the maximum",
    ]
    .iter()
    .any(|p| m.contains(p))
}

fn raw_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("AWS Bedrock answered with status {status}");
    }
    let mut cut = text.len().min(MAX_RAW_MESSAGE);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_owned()
}
