//! Google Gemini, as Google AI Studio and Vertex AI serve it, and Google's OAuth token endpoint.
//!
//! | route (matched on the path's suffix) | answers |
//! |---|---|
//! | `POST …/models/{model}:generateContent` | one `GenerateContentResponse` |
//! | `POST …/models/{model}:streamGenerateContent?alt=sse` | `data:` events (CRLF line ends, no sentinel), one per chunk, spaced by the chunk delay |
//! | `POST …/models/{model}:streamGenerateContent` (no `alt=sse`) | the chunks as one JSON array, as Google does |
//! | `POST …/token` | the JWT-bearer grant: `{access_token: "ya29.mock-<n>", expires_in: 3600, token_type: "Bearer"}` |
//!
//! Paths under `…/projects/{p}/locations/{r}/publishers/{pub}/models/…` are Vertex AI and need
//! `Authorization: Bearer` with an access token (one that starts with `ya29.`, as the token endpoint mints, unless
//! [`Behaviour::api_key`](crate::Behaviour) names the one to accept); other paths are AI Studio and need
//! `x-goog-api-key` (or `?key=`). Refusals and injected failures use Google's error shape
//! `{"error":{"code","message","status"}}` (the token endpoint's, OAuth's `{"error","error_description"}`).
//!
//! Usage is the deterministic [`crate::usage_for`]: `promptTokenCount` is its input (the `cached` scenario reports
//! [`crate::scenario::CACHED_READ_TOKENS`] of it as `cachedContentTokenCount`, which Gemini counts inside the
//! prompt), `candidatesTokenCount` its output; the `reasoning` scenario adds [`THOUGHTS_TOKENS`] as
//! `thoughtsTokenCount`, which Gemini counts apart from the candidates (a gateway must add them to the
//! completion).

mod answer;
mod embed;
mod token;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::MAX_BODY_BYTES;
use crate::answer::{Answer, CloseConnection};
use crate::behaviour::Behaviour;
use crate::body::{MockBody, json as json_response};
use crate::record::RecordedRequest;
use crate::scenario;
use crate::state::MockState;
use crate::text::usage_for;

/// Thought tokens the `reasoning` scenario reports in `thoughtsTokenCount`, on top of the output tokens.
pub const THOUGHTS_TOKENS: u64 = 8;

/// A Google route, recognised from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Generate {
        vertex: bool,
        /// The model id from the path (echoed as `modelVersion`).
        model: String,
        stream: bool,
    },
    /// `:embedContent`, `:batchEmbedContents` (AI Studio) or `:predict` (Vertex AI).
    Embed {
        vertex: bool,
        model: String,
        method: embed::Method,
    },
    Token,
}

impl Route {
    /// The route of a path, matched on its suffix like every mock route (`%3A` accepted for `:`).
    pub(crate) fn of(path: &str) -> Option<Route> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/token") {
            return Some(Route::Token);
        }
        let (resource, method) = match path.rsplit_once(':') {
            Some(split) => split,
            None => path
                .rsplit_once("%3A")
                .or_else(|| path.rsplit_once("%3a"))?,
        };
        let (prefix, model) = resource.rsplit_once("/models/")?;
        let (vertex, model) = (prefix.contains("/publishers/"), model.to_owned());
        let stream = match method {
            "generateContent" => false,
            "streamGenerateContent" => true,
            other => {
                let method = embed::Method::of(other)?;
                return Some(Route::Embed {
                    vertex,
                    model,
                    method,
                });
            }
        };
        Some(Route::Generate {
            vertex,
            model,
            stream,
        })
    }
}

/// One request to a Google route: read and record it, apply the behaviour as the shared handler does, check it
/// as Google would, answer.
pub(crate) async fn handle(
    state: Arc<MockState>,
    req: Request<Incoming>,
    route: Route,
) -> Result<Response<MockBody>, CloseConnection> {
    let (parts, body) = req.into_parts();
    let id = state.next_id();
    let refuse = |status: u16, message: Option<&str>| refusal(&route, status, message);

    let body: Bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Ok(refuse(413, None)),
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
        Err(message) => return Ok(refuse(400, Some(&message))),
    };
    let scenario = match scenario::try_scenario(&parts.headers) {
        Ok(s) => s,
        Err(message) => return Ok(refuse(400, Some(&message))),
    };
    if !behaviour.header_delay.is_zero() {
        tokio::time::sleep(behaviour.header_delay).await;
    }
    if behaviour.hang {
        std::future::pending::<()>().await;
    }
    if behaviour.close {
        return Err(CloseConnection);
    }
    if parts.method != Method::POST {
        let message = format!(
            "Method {} is not allowed on {}",
            parts.method,
            parts.uri.path()
        );
        return Ok(refuse(405, Some(&message)));
    }

    let (vertex, model, stream) = match &route {
        Route::Generate {
            vertex,
            model,
            stream,
        } => (vertex, model, stream),
        Route::Embed { vertex, model, .. } => (vertex, model, &false),
        Route::Token => {
            return Ok(injected_failure(&state, &behaviour, &parts.uri, &route)
                .unwrap_or_else(|| token::answer(&body, id)));
        }
    };
    let query = parts.uri.query().unwrap_or_default();
    if let Err((status, refusal)) = check_credential(*vertex, &parts.headers, query, &behaviour) {
        return Ok(refusal.response(status));
    }
    let json = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Ok(
                GoogleError::invalid("Invalid JSON payload received. Expected an object.")
                    .response(400),
            );
        }
    };
    if let Some(failure) = injected_failure(&state, &behaviour, &parts.uri, &route) {
        return Ok(failure);
    }
    if let Route::Embed { method, .. } = &route {
        return Ok(embed::embed(&json, model, *method)
            .unwrap_or_else(|message| GoogleError::invalid(&message).response(400)));
    }
    if json
        .get("contents")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Ok(GoogleError::invalid(
            "* GenerateContentRequest.contents: contents is not specified\n",
        )
        .response(400));
    }
    let answer = Answer {
        id,
        model,
        chunks: behaviour.chunk_count(),
        chunk_delay: behaviour.chunk_delay,
        usage: usage_for(body.len(), behaviour.chunk_count()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        scenario,
    };
    let sse = query.split('&').any(|pair| pair == "alt=sse");
    Ok(answer::generate(&json, &answer, *stream, sse)
        .unwrap_or_else(|message| GoogleError::invalid(&message).response(400)))
}

/// The failure `x-mock-fail-first` or `x-mock-status` asks for, in the route's shape.
fn injected_failure(
    state: &MockState,
    behaviour: &Behaviour,
    uri: &http::Uri,
    route: &Route,
) -> Option<Response<MockBody>> {
    let fail_key = behaviour
        .fail_key
        .clone()
        .unwrap_or_else(|| uri.path().to_owned());
    if state.should_fail(&fail_key, behaviour.fail_first) {
        return Some(refusal(route, behaviour.fail_status.unwrap_or(500), None));
    }
    behaviour.status.map(|status| refusal(route, status, None))
}

/// A refusal in the route's shape: Google's for the model routes, OAuth's for the token endpoint.
fn refusal(route: &Route, status: u16, message: Option<&str>) -> Response<MockBody> {
    match route {
        Route::Token => token::error(status, message),
        Route::Generate { .. } | Route::Embed { .. } => {
            GoogleError::for_status(status, message).response(status)
        }
    }
}

/// Google's error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoogleError {
    pub message: String,
    /// The gRPC status name.
    pub status: &'static str,
    /// `ErrorInfo.reason`, when Google sends one.
    pub reason: Option<&'static str>,
}

impl GoogleError {
    fn invalid(message: &str) -> GoogleError {
        GoogleError {
            message: message.to_owned(),
            status: "INVALID_ARGUMENT",
            reason: None,
        }
    }

    /// The usual error for a status; `message` replaces the usual message.
    fn for_status(status: u16, message: Option<&str>) -> GoogleError {
        let (name, usual) = match status {
            400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
            401 => (
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
            403 => ("PERMISSION_DENIED", "The caller does not have permission"),
            404 => ("NOT_FOUND", "Requested entity was not found."),
            405 => ("UNIMPLEMENTED", "Method not allowed."),
            409 => ("ABORTED", "The operation was aborted."),
            413 => (
                "INVALID_ARGUMENT",
                "Request payload size exceeds the limit.",
            ),
            429 => (
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            ),
            499 => ("CANCELLED", "The operation was cancelled."),
            500 => (
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            ),
            501 => ("UNIMPLEMENTED", "Operation is not implemented."),
            503 => (
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            ),
            504 => (
                "DEADLINE_EXCEEDED",
                "Deadline expired before operation could complete.",
            ),
            s if s >= 500 => ("UNKNOWN", "An unknown error occurred."),
            _ => ("FAILED_PRECONDITION", "Precondition check failed."),
        };
        GoogleError {
            message: message.unwrap_or(usual).to_owned(),
            status: name,
            reason: None,
        }
    }

    fn body(&self, status: u16) -> Value {
        let mut error = json!({"code": status, "message": self.message, "status": self.status});
        let mut details = Vec::new();
        if let Some(reason) = self.reason {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}
            }));
        }
        if status == 429 {
            details.push(
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}),
            );
        }
        if !details.is_empty() {
            error["details"] = Value::Array(details);
        }
        json!({ "error": error })
    }

    pub(crate) fn response(&self, status: u16) -> Response<MockBody> {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.body(code.as_u16()))
    }
}

/// Google's AI Studio and Vertex credential checks, with their real refusals.
fn check_credential(
    vertex: bool,
    headers: &HeaderMap,
    query: &str,
    behaviour: &Behaviour,
) -> Result<(), (u16, GoogleError)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let expected = behaviour.api_key.as_deref();
    if vertex {
        const SEE: &str = "Expected OAuth 2 access token, login cookie or other valid authentication \
                           credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
        let token = header("authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty());
        let unauthenticated = |what: &str| {
            let error = GoogleError {
                message: format!("{what} {SEE}"),
                status: "UNAUTHENTICATED",
                reason: None,
            };
            Err((401, error))
        };
        return match token {
            None => unauthenticated("Request is missing required authentication credential."),
            Some(t) if expected.map_or(!t.starts_with("ya29."), |want| want != t) => {
                unauthenticated("Request had invalid authentication credentials.")
            }
            Some(_) => Ok(()),
        };
    }
    let key = header("x-goog-api-key").or_else(|| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .filter(|k| !k.is_empty())
    });
    match key {
        None => Err((
            403,
            GoogleError {
                message: "Method doesn't allow unregistered callers (callers without established identity). \
                          Please use API Key or other form of API consumer identity to call this API."
                    .to_owned(),
                status: "PERMISSION_DENIED",
                reason: None,
            },
        )),
        Some(k) if expected.is_some_and(|want| want != k) => Err((
            400,
            GoogleError {
                message: "API key not valid. Please pass a valid API key.".to_owned(),
                status: "INVALID_ARGUMENT",
                reason: Some("API_KEY_INVALID"),
            },
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
