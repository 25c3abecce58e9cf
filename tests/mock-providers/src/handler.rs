//! One request: read and record it, apply the behaviour, check it as the provider would, answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::MAX_BODY_BYTES;
use crate::answer::{Answer, CloseConnection};
use crate::auth;
use crate::body::MockBody;
use crate::errors;
use crate::record::RecordedRequest;
use crate::refusal::{ErrorSpec, Flavour};
use crate::scenario;
use crate::state::MockState;
use crate::text::usage_for;
use crate::{anthropic, bedrock, cohere, embeddings, openai, workers_ai};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ChatCompletions,
    Responses,
    Embeddings,
    Messages,
    /// Bedrock `/model/{id}/converse`.
    Converse,
    /// Bedrock `/model/{id}/converse-stream`.
    ConverseStream,
    /// Cohere `/v2/chat`.
    CohereChat,
    /// Cohere `/v2/embed`.
    CohereEmbed,
    /// Bedrock `/model/{id}/invoke` (embeddings models).
    Invoke,
    /// Workers AI `…/ai/run/{model}` (text embeddings).
    WorkersAiRun,
}

impl Endpoint {
    /// Matched on the suffix so the mock answers under any base path the gateway is configured with.
    fn route(path: &str) -> Option<Endpoint> {
        let path = path.trim_end_matches('/');
        // Workers AI names the model last (`…/ai/run/@cf/baai/bge-m3`), so no suffix rule may see it first.
        if path.contains("/ai/run/") {
            return Some(Endpoint::WorkersAiRun);
        }
        if path.ends_with("/chat/completions") {
            Some(Endpoint::ChatCompletions)
        } else if path.ends_with("/responses") {
            Some(Endpoint::Responses)
        } else if path.ends_with("/embeddings") {
            Some(Endpoint::Embeddings)
        } else if path.ends_with("/messages") {
            Some(Endpoint::Messages)
        } else if path.ends_with("/converse") {
            Some(Endpoint::Converse)
        } else if path.ends_with("/converse-stream") {
            Some(Endpoint::ConverseStream)
        } else if path.ends_with("/v2/chat") {
            Some(Endpoint::CohereChat)
        } else if path.ends_with("/v2/embed") {
            Some(Endpoint::CohereEmbed)
        } else if path.ends_with("/invoke") && path.contains("/model/") {
            Some(Endpoint::Invoke)
        } else {
            None
        }
    }

    fn flavour(self) -> Flavour {
        match self {
            Endpoint::Messages => Flavour::Anthropic,
            Endpoint::Converse | Endpoint::ConverseStream | Endpoint::Invoke => Flavour::Bedrock,
            Endpoint::CohereChat | Endpoint::CohereEmbed => Flavour::Cohere,
            Endpoint::WorkersAiRun => Flavour::WorkersAi,
            _ => Flavour::OpenAi,
        }
    }
}

pub(crate) async fn handle(
    state: Arc<MockState>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, CloseConnection> {
    if req.method() == Method::POST && req.uri().path() == OTLP_TRACES_PATH {
        return Ok(discard_traces(req).await);
    }
    // Google's routes (model in the path, two credential forms, the OAuth token endpoint's form body) have their
    // own flow in `gemini.rs`, with the same behaviour controls.
    if let Some(route) = crate::gemini::Route::of(req.uri().path()) {
        return crate::gemini::handle(state, req, route).await;
    }
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
    let scenario = match scenario::try_scenario(&parts.headers) {
        Ok(s) => s,
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
                Flavour::Bedrock => "UnknownOperationException",
                Flavour::Cohere => "not_found",
                Flavour::WorkersAi => "7003",
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

    // Bedrock and Workers AI name the model in the path (`/model/{id}/converse`, `/ai/run/{model}`), the others in
    // the body.
    let path_model = match endpoint {
        Endpoint::Converse | Endpoint::ConverseStream => bedrock::model_in_path(parts.uri.path()),
        Endpoint::Invoke => embeddings::invoke_model(parts.uri.path()),
        Endpoint::WorkersAiRun => workers_ai::model_in_path(parts.uri.path()).map(str::to_owned),
        _ => None,
    };
    let body_model = || json.get("model").and_then(Value::as_str);
    let Some(model) = path_model.as_deref().or_else(body_model) else {
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
        scenario,
    };
    let answered = match endpoint {
        Endpoint::ChatCompletions => openai::chat_completions(&json, &answer),
        Endpoint::Responses => openai::responses(&json, &answer),
        Endpoint::Embeddings => openai::embeddings(&json, &answer),
        Endpoint::Messages => anthropic::messages(&json, &answer),
        Endpoint::Converse => bedrock::converse(&json, &answer, false),
        Endpoint::ConverseStream => bedrock::converse(&json, &answer, true),
        Endpoint::CohereChat => cohere::chat(&json, &answer),
        Endpoint::CohereEmbed => embeddings::cohere(&json, &answer),
        Endpoint::Invoke => embeddings::bedrock_invoke(&json, &answer),
        Endpoint::WorkersAiRun => workers_ai::run(&json, &answer),
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

/// An OpenTelemetry collector's traces path (OTLP/HTTP).
const OTLP_TRACES_PATH: &str = "/v1/traces";

/// `POST /v1/traces`: a collector stand-in for load runs (`bench/run.sh`'s telemetry phase). The body is read and
/// thrown away, never recorded (a load run would grow without bound; `otlp::MockCollector` keeps everything for
/// tests), and the answer is an empty `ExportTraceServiceResponse` in the request's encoding.
async fn discard_traces(req: Request<Incoming>) -> Response<MockBody> {
    let protobuf = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-protobuf"));
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    if protobuf {
        let mut res = Response::new(http_body_util::Full::new(Bytes::new()).boxed());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        res
    } else {
        crate::body::json(http::StatusCode::OK, &serde_json::json!({}))
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
        Flavour::Bedrock => "Malformed input request, please reformat your input and try again.",
        Flavour::Cohere => "invalid request: could not parse the request body as JSON",
        Flavour::WorkersAi => "Invalid input: the body is not a JSON object",
    };
    bad_request(flavour, message, id)
}

fn missing_model(flavour: Flavour, id: u64) -> Response<MockBody> {
    match flavour {
        Flavour::OpenAi => bad_request(flavour, "you must provide a model parameter", id),
        Flavour::Anthropic => bad_request(flavour, "model: Field required", id),
        Flavour::Bedrock => bad_request(flavour, "The provided model identifier is invalid.", id),
        Flavour::Cohere => bad_request(flavour, "invalid request: model must be provided", id),
        Flavour::WorkersAi => bad_request(flavour, "No such model or task", id),
    }
}
