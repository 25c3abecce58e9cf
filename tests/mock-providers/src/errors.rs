//! Error answers in each provider's own shape, so the gateway's pass-through of provider errors is tested against the
//! bodies SDKs really parse.
//!
//! OpenAI: `{"error": {"message", "type", "param", "code"}}`.
//! Anthropic: `{"type": "error", "error": {"type", "message"}, "request_id"}`.

use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::{MockBody, json as json_response};
use crate::refusal::{ErrorSpec, Flavour};

pub(crate) fn error(
    flavour: Flavour,
    status: u16,
    spec: ErrorSpec<'_>,
    request_id: u64,
) -> Response<MockBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (body, id_header) = match flavour {
        Flavour::OpenAi => (openai_body(status, &spec), "x-request-id"),
        Flavour::Anthropic => (anthropic_body(status, &spec, request_id), "request-id"),
        Flavour::Bedrock => (
            crate::bedrock::error_body(status, &spec),
            "x-amzn-requestid",
        ),
        Flavour::Cohere => (
            crate::cohere::error_body(status, &spec, request_id),
            "x-request-id",
        ),
        Flavour::WorkersAi => (crate::workers_ai::error_body(status, &spec), "cf-ray"),
    };
    let mut res = json_response(status, &body);
    if flavour == Flavour::Bedrock {
        crate::bedrock::set_error_type(&mut res, status, &spec);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{request_id}")) {
        res.headers_mut().insert(id_header, v);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        res.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    res
}

/// The error a status gets when only the status is known (status overrides, injected failures).
pub(crate) fn for_status(flavour: Flavour, status: u16, request_id: u64) -> Response<MockBody> {
    error(flavour, status, ErrorSpec::default(), request_id)
}

fn openai_body(status: StatusCode, spec: &ErrorSpec<'_>) -> Value {
    let (message, kind, code) = match status.as_u16() {
        400 => ("Invalid request.", "invalid_request_error", None),
        401 => (
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to sample from this model",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        413 => ("Request entity too large.", "invalid_request_error", None),
        429 => (
            "Rate limit reached for requests. Please try again in 1s.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        502 | 503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        s if s >= 500 => ("The server had an error.", "server_error", None),
        _ => ("Invalid request.", "invalid_request_error", None),
    };
    // A specific message comes with its own code (often none); the status's usual code goes with its usual message.
    let code = if spec.message.is_some() {
        spec.code
    } else {
        code
    };
    json!({
        "error": {
            "message": spec.message.unwrap_or(message),
            "type": spec.kind.unwrap_or(kind),
            "param": spec.param,
            "code": code,
        }
    })
}

fn anthropic_body(status: StatusCode, spec: &ErrorSpec<'_>, request_id: u64) -> Value {
    let (kind, message) = match status.as_u16() {
        400 => ("invalid_request_error", "Invalid request."),
        401 => ("authentication_error", "invalid x-api-key"),
        402 => ("billing_error", "Your credit balance is too low."),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "Not found"),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "Number of requests has exceeded your rate limit.",
        ),
        500 => ("api_error", "Internal server error"),
        504 => ("timeout_error", "Request timed out"),
        529 => ("overloaded_error", "Overloaded"),
        s if s >= 500 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Invalid request."),
    };
    json!({
        "type": "error",
        "error": {
            "type": spec.kind.unwrap_or(kind),
            "message": spec.message.unwrap_or(message),
        },
        "request_id": format!("req_mock_{request_id}"),
    })
}
