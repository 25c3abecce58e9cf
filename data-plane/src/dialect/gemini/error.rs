//! Google's error body → OpenAI's error vocabulary (`notes/translation.md` §5.3, §8.5):
//! `{"error":{"code","message","status","details":[…]}}`, array-wrapped on non-SSE streams, and also found inside
//! an SSE stream after the status line went out.

use std::borrow::Cow;

use serde::Deserialize;

use super::super::chat::ProviderError;
use super::opt_cow;

/// Google's `error` object.
#[derive(Debug, Deserialize)]
pub(super) struct GoogleError<'a> {
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub message: Option<Cow<'a, str>>,
    /// The gRPC status name: `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, `UNAVAILABLE`…
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub details: Vec<ErrorDetail<'a>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorDetail<'a> {
    /// `ErrorInfo.reason`, e.g. `API_KEY_INVALID`.
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    error: GoogleError<'a>,
}

/// The message Gemini uses when the prompt is over the model's context window.
const CONTEXT_OVERFLOW: &str = "exceeds the maximum number of tokens";

/// A non-2xx answer's body, mapped. A body that is not Google's shape keeps its text as the message; an
/// unreadable 5xx is a 502 (the gateway could not tell what went wrong upstream).
pub(super) fn decode_error(status: u16, body: &[u8]) -> ProviderError {
    // Non-SSE streams wrap the error in a one-element array.
    let parsed = if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<[Envelope<'_>; 1]>(body).map(|[e]| e)
    } else {
        serde_json::from_slice::<Envelope<'_>>(body)
    };
    match parsed {
        Ok(Envelope { error }) => map(status, &error),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("Gemini answered HTTP {status}")
            } else {
                text.chars().take(512).collect()
            };
            let status = if status >= 500 {
                502
            } else {
                ProviderError::map_status(status)
            };
            ProviderError::new(status, message)
        }
    }
}

/// Maps one error object; `http_status` is the answer's status, or 0 inside a stream (the object's own `code`
/// then decides).
pub(super) fn map(http_status: u16, error: &GoogleError<'_>) -> ProviderError {
    let name = error.status.as_deref().unwrap_or_default();
    let message = error
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .map_or_else(
            || match (name, error.code.unwrap_or(http_status)) {
                ("", code) => format!("Gemini answered with error {code}"),
                (name, code) => format!("Gemini answered {name} ({code})"),
            },
            str::to_owned,
        );
    let key_invalid = error
        .details
        .iter()
        .any(|d| d.reason.as_deref() == Some("API_KEY_INVALID"))
        || message.contains("API key not valid");
    let status = match name {
        _ if key_invalid => 401,
        "RESOURCE_EXHAUSTED" => 429,
        "UNAVAILABLE" => 503,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "DEADLINE_EXCEEDED" => 504,
        "INTERNAL" => 500,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        _ => {
            let raw = if http_status != 0 {
                http_status
            } else {
                error.code.unwrap_or(500)
            };
            ProviderError::map_status(raw)
        }
    };
    let code = if message.contains(CONTEXT_OVERFLOW) {
        Some("context_length_exceeded".to_owned())
    } else if key_invalid {
        Some("invalid_api_key".to_owned())
    } else if status == 404 {
        Some("model_not_found".to_owned())
    } else {
        (!name.is_empty()).then(|| name.to_owned())
    };
    ProviderError {
        code,
        ..ProviderError::new(status, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapped(status: u16, body: serde_json::Value) -> ProviderError {
        decode_error(status, body.to_string().as_bytes())
    }

    fn google(code: u16, status: &str, message: &str) -> serde_json::Value {
        json!({"error": {"code": code, "message": message, "status": status}})
    }

    #[test]
    fn statuses_map_by_grpc_name() {
        let e = mapped(
            429,
            google(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            ),
        );
        assert_eq!(
            (e.status, e.kind.as_str(), e.code.as_deref()),
            (429, "rate_limit_error", Some("RESOURCE_EXHAUSTED"))
        );
        assert_eq!(e.message, "Resource has been exhausted (e.g. check quota).");
        let e = mapped(503, google(503, "UNAVAILABLE", "The model is overloaded."));
        assert_eq!((e.status, e.kind.as_str()), (503, "server_error"));
        let e = mapped(
            404,
            google(404, "NOT_FOUND", "models/gemini-9 is not found"),
        );
        assert_eq!(
            (e.status, e.code.as_deref()),
            (404, Some("model_not_found"))
        );
        let e = mapped(403, google(403, "PERMISSION_DENIED", "denied"));
        assert_eq!((e.status, e.kind.as_str()), (403, "permission_error"));
        let e = mapped(504, google(504, "DEADLINE_EXCEEDED", "late"));
        assert_eq!(e.status, 504);
    }

    #[test]
    fn context_overflow_and_bad_keys_get_openai_codes() {
        let e = mapped(
            400,
            google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
        );
        assert_eq!(
            (e.status, e.kind.as_str(), e.code.as_deref()),
            (
                400,
                "invalid_request_error",
                Some("context_length_exceeded")
            )
        );
        let bad_key = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                         "domain": "googleapis.com"}]}});
        let e = mapped(400, bad_key);
        assert_eq!(
            (e.status, e.kind.as_str(), e.code.as_deref()),
            (401, "authentication_error", Some("invalid_api_key"))
        );
    }

    #[test]
    fn array_wrapped_and_foreign_bodies_are_read() {
        let e = mapped(
            429,
            json!([{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]),
        );
        assert_eq!((e.status, e.message.as_str()), (429, "quota"));
        let e = decode_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(
            (e.status, e.message.as_str()),
            (502, "<html>Bad Gateway</html>")
        );
        let e = decode_error(500, b"");
        assert_eq!(
            (e.status, e.message.as_str()),
            (502, "Gemini answered HTTP 500")
        );
        let e = decode_error(400, b"nope");
        assert_eq!(e.status, 400);
        let e = mapped(418, json!({"error": {"message": "teapot"}}));
        assert_eq!((e.status, e.code), (418, None));
    }
}
