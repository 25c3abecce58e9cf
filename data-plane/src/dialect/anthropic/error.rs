//! Anthropic's errors (`{"type":"error","error":{"type","message"}}`, §4.5) → OpenAI's error vocabulary (§8.5):
//! the message kept, the status mapped (529 and overload → 503), Anthropic's error type as `code` unless a better
//! OpenAI code applies.

use serde::Deserialize;

use crate::dialect::chat::ProviderError;

/// `{"type":"error","error":{…}}`, as an HTTP body or a mid-stream `error` event.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    pub error: WireError<'a>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WireError<'a> {
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<std::borrow::Cow<'a, str>>,
}

/// The longest slice of an unreadable body quoted in the message.
const QUOTED_BODY_MAX: usize = 200;

/// An error answer (status ≥ 400).
pub(super) fn decode(status: u16, body: &[u8]) -> ProviderError {
    match serde_json::from_slice::<ErrorEnvelope<'_>>(body) {
        Ok(envelope) => map(Some(status), &envelope.error),
        Err(_) => unreadable(status, body),
    }
}

/// An Anthropic error; `status` is `None` for a mid-stream `error` event, whose status follows from its type.
pub(super) fn map(status: Option<u16>, error: &WireError<'_>) -> ProviderError {
    let kind = error.kind.as_deref().unwrap_or("");
    let message = error
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or("the provider returned an error");
    let status = match (status, status_for_type(kind)) {
        // Overload is a 503 whatever status carried it.
        (_, Some(503)) => 503,
        (Some(status), _) => ProviderError::map_status(status),
        (None, Some(status)) => status,
        (None, None) => 502,
    };
    let code = if message.contains("prompt is too long") {
        Some("context_length_exceeded")
    } else if status == 404 {
        Some("model_not_found")
    } else if status == 402 {
        Some("insufficient_quota")
    } else {
        (!kind.is_empty()).then_some(kind)
    };
    let mut mapped = ProviderError::new(status, message);
    if status == 402 {
        mapped.kind = "insufficient_quota".to_owned();
    }
    mapped.code = code.map(str::to_owned);
    mapped
}

/// The HTTP status Anthropic uses for an error type.
fn status_for_type(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "conflict_error" => 409,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "overloaded_error" => 503,
        _ => return None,
    })
}

/// A body that is not Anthropic's error shape (a proxy's HTML page, a truncated body): a 5xx becomes 502, a 4xx
/// keeps its status; the start of the body is quoted.
fn unreadable(status: u16, body: &[u8]) -> ProviderError {
    let status = match ProviderError::map_status(status) {
        503 => 503,
        s if s >= 500 => 502,
        s => s,
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let quoted: String = text.chars().take(QUOTED_BODY_MAX).collect();
    let message = if quoted.is_empty() {
        format!("the provider answered {status} without an error body")
    } else {
        format!("the provider answered with an unreadable error: {quoted}")
    };
    ProviderError::new(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anthropic(status: u16, kind: &str, message: &str) -> ProviderError {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"});
        decode(status, body.to_string().as_bytes())
    }

    #[test]
    fn statuses_and_types_map_with_the_message_kept() {
        let e = anthropic(400, "invalid_request_error", "max_tokens: Field required");
        assert_eq!(
            (
                e.status,
                e.kind.as_str(),
                e.code.as_deref(),
                e.message.as_str()
            ),
            (
                400,
                "invalid_request_error",
                Some("invalid_request_error"),
                "max_tokens: Field required"
            )
        );
        let e = anthropic(401, "authentication_error", "invalid x-api-key");
        assert_eq!((e.status, e.kind.as_str()), (401, "authentication_error"));
        let e = anthropic(429, "rate_limit_error", "slow down");
        assert_eq!(
            (e.status, e.kind.as_str(), e.code.as_deref()),
            (429, "rate_limit_error", Some("rate_limit_error"))
        );
        let e = anthropic(500, "api_error", "oops");
        assert_eq!((e.status, e.kind.as_str()), (500, "server_error"));
        let e = anthropic(404, "not_found_error", "model: nope");
        assert_eq!(
            (e.status, e.code.as_deref()),
            (404, Some("model_not_found"))
        );
        let e = anthropic(402, "billing_error", "credit balance too low");
        assert_eq!(
            (e.status, e.kind.as_str(), e.code.as_deref()),
            (402, "insufficient_quota", Some("insufficient_quota"))
        );
    }

    #[test]
    fn overload_is_503() {
        let e = anthropic(529, "overloaded_error", "Overloaded");
        assert_eq!(
            (
                e.status,
                e.kind.as_str(),
                e.code.as_deref(),
                e.message.as_str()
            ),
            (503, "server_error", Some("overloaded_error"), "Overloaded")
        );
        assert_eq!(anthropic(500, "overloaded_error", "Overloaded").status, 503);
    }

    #[test]
    fn a_too_long_prompt_is_context_length_exceeded() {
        let e = anthropic(
            400,
            "invalid_request_error",
            "prompt is too long: 215000 tokens > 200000 maximum",
        );
        assert_eq!(e.status, 400);
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(
            e.message,
            "prompt is too long: 215000 tokens > 200000 maximum"
        );
    }

    #[test]
    fn unreadable_bodies_keep_4xx_and_turn_5xx_into_502() {
        let e = decode(502, b"<html>Bad gateway</html>");
        assert_eq!(e.status, 502);
        assert!(e.message.contains("<html>Bad gateway</html>"));
        assert_eq!(decode(500, b"").status, 502);
        assert_eq!(decode(529, b"").status, 503);
        assert_eq!(decode(413, b"Request Entity Too Large").status, 413);
    }

    #[test]
    fn a_mid_stream_error_takes_its_status_from_its_type() {
        let error = WireError {
            kind: Some("overloaded_error".into()),
            message: Some("Overloaded".into()),
        };
        assert_eq!(map(None, &error).status, 503);
        let unknown = WireError {
            kind: Some("new_error".into()),
            message: None,
        };
        let e = map(None, &unknown);
        assert_eq!((e.status, e.code.as_deref()), (502, Some("new_error")));
    }
}
