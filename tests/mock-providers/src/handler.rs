//! One request: read and record it, apply the behaviour, check it as the provider would, answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::MAX_BODY_BYTES;
use crate::auth;
use crate::body::MockBody;
use crate::errors::{self, ErrorSpec, Flavour};
use crate::record::RecordedRequest;
use crate::state::MockState;
use crate::text::{Usage, usage_for};
use crate::{anthropic, openai};

/// Returned to hyper to drop the connection without a response (the `close` behaviour, or a client that went away
/// mid-body).
#[derive(Debug)]
pub(crate) struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the mock without a response")
    }
}

impl std::error::Error for CloseConnection {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ChatCompletions,
    Responses,
    Embeddings,
    Messages,
}

impl Endpoint {
    /// Matched on the suffix so the mock answers under any base path the gateway is configured with.
    fn route(path: &str) -> Option<Endpoint> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Some(Endpoint::ChatCompletions)
        } else if path.ends_with("/responses") {
            Some(Endpoint::Responses)
        } else if path.ends_with("/embeddings") {
            Some(Endpoint::Embeddings)
        } else if path.ends_with("/messages") {
            Some(Endpoint::Messages)
        } else {
            None
        }
    }

    fn flavour(self) -> Flavour {
        match self {
            Endpoint::Messages => Flavour::Anthropic,
            _ => Flavour::OpenAi,
        }
    }
}

/// What a successful answer is generated from.
pub(crate) struct Answer<'a> {
    pub id: u64,
    pub model: &'a str,
    pub chunks: usize,
    pub chunk_delay: Duration,
    pub usage: Usage,
    /// Unix seconds.
    pub created: u64,
}

pub(crate) async fn handle(
    state: Arc<MockState>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, CloseConnection> {
    let (parts, body) = req.into_parts();
    let endpoint = Endpoint::route(parts.uri.path());
    let flavour = endpoint.map_or(Flavour::OpenAi, Endpoint::flavour);
    let id = state.next_id();

    let body: Bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(errors::for_status(flavour, 413, id));
        }
        // The client went away or sent a broken chunked body: nobody is left to answer.
        Err(_) => return Err(CloseConnection),
    };
    state.record(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: body.clone(),
        received_at: std::time::Instant::now(),
    });

    let behaviour = match state.behaviour().overlay(&parts.headers) {
        Ok(b) => b,
        Err(message) => return Ok(bad_request(flavour, &message, id)),
    };
    if !behaviour.header_delay.is_zero() {
        tokio::time::sleep(behaviour.header_delay).await;
    }
    if behaviour.hang {
        // Held until the client or the mock drops the connection.
        std::future::pending::<()>().await;
    }
    if behaviour.close {
        return Err(CloseConnection);
    }

    let Some(endpoint) = endpoint else {
        let message = format!("Invalid URL ({} {})", parts.method, parts.uri.path());
        let spec = ErrorSpec {
            message: Some(&message),
            kind: Some(match flavour {
                Flavour::OpenAi => "invalid_request_error",
                Flavour::Anthropic => "not_found_error",
            }),
            ..ErrorSpec::default()
        };
        return Ok(errors::error(flavour, 404, spec, id));
    };
    if parts.method != Method::POST {
        let message = format!(
            "Invalid method for URL ({} {})",
            parts.method,
            parts.uri.path()
        );
        return Ok(errors::error(
            flavour,
            405,
            ErrorSpec {
                message: Some(&message),
                ..ErrorSpec::default()
            },
            id,
        ));
    }
    if let Err(refusal) = auth::check(flavour, &parts.headers, behaviour.api_key.as_deref()) {
        return Ok(errors::error(flavour, refusal.status, refusal.spec(), id));
    }
    let json = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Ok(malformed_json(flavour, id)),
    };

    let fail_key = behaviour
        .fail_key
        .clone()
        .unwrap_or_else(|| parts.uri.path().to_owned());
    if state.should_fail(&fail_key, behaviour.fail_first) {
        return Ok(errors::for_status(
            flavour,
            behaviour.fail_status.unwrap_or(500),
            id,
        ));
    }
    if let Some(status) = behaviour.status {
        return Ok(errors::for_status(flavour, status, id));
    }

    let Some(model) = json.get("model").and_then(Value::as_str) else {
        return Ok(missing_model(flavour, id));
    };
    let answer = Answer {
        id,
        model,
        chunks: behaviour.chunk_count(),
        chunk_delay: behaviour.chunk_delay,
        usage: usage_for(body.len(), behaviour.chunk_count()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let answered = match endpoint {
        Endpoint::ChatCompletions => openai::chat_completions(&json, &answer),
        Endpoint::Responses => openai::responses(&json, &answer),
        Endpoint::Embeddings => openai::embeddings(&json, &answer),
        Endpoint::Messages => anthropic::messages(&json, &answer),
    };
    Ok(answered.unwrap_or_else(|invalid| {
        errors::error(
            flavour,
            400,
            ErrorSpec {
                message: Some(&invalid.message),
                param: invalid.param,
                code: invalid.code,
                ..ErrorSpec::default()
            },
            id,
        )
    }))
}

/// A request body that parsed but lacks what the endpoint requires.
pub(crate) struct Invalid {
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl Invalid {
    /// OpenAI's answer to a missing field.
    pub fn openai_missing(param: &'static str) -> Invalid {
        Invalid {
            message: format!("Missing required parameter: '{param}'."),
            param: Some(param),
            code: Some("missing_required_parameter"),
        }
    }

    /// Anthropic's answer to a missing field.
    pub fn anthropic_missing(field: &'static str) -> Invalid {
        Invalid {
            message: format!("{field}: Field required"),
            param: None,
            code: None,
        }
    }
}

fn bad_request(flavour: Flavour, message: &str, id: u64) -> Response<MockBody> {
    errors::error(
        flavour,
        400,
        ErrorSpec {
            message: Some(message),
            ..ErrorSpec::default()
        },
        id,
    )
}

fn malformed_json(flavour: Flavour, id: u64) -> Response<MockBody> {
    let message = match flavour {
        Flavour::OpenAi => {
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP \
             library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you \
             have trouble figuring out how to fix this, please contact us through our help center at \
             help.openai.com.)"
        }
        Flavour::Anthropic => "There was an issue with your request body: expected a JSON object",
    };
    bad_request(flavour, message, id)
}

fn missing_model(flavour: Flavour, id: u64) -> Response<MockBody> {
    match flavour {
        Flavour::OpenAi => bad_request(flavour, "you must provide a model parameter", id),
        Flavour::Anthropic => bad_request(flavour, "model: Field required", id),
    }
}
