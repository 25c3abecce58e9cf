//! Workers AI's native run endpoint for text-embeddings models: `POST …/accounts/{account_id}/ai/run/{model}`
//! (`@cf/baai/bge-base-en-v1.5`, …) with `{text: string | string[]}` →
//! `{result:{shape:[n, d], data:[[…]], pooling:"mean"}, success:true, errors:[], messages:[]}`, as Cloudflare
//! answers. The credential is a Cloudflare API token as `Authorization: Bearer`. Errors are Cloudflare's v4
//! envelope `{success:false, errors:[{code, message}], messages:[], result:null}`.
//!
//! Vectors are [`embedding_vector`] of the input's position, [`DEFAULT_EMBEDDING_DIMENSIONS`] long; no token count
//! is reported.

use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, json as json_response};
use crate::refusal::{ErrorSpec, Refusal, bearer};
use crate::text::{DEFAULT_EMBEDDING_DIMENSIONS, embedding_vector};

/// Workers AI's input-validation error code.
const CODE_INVALID_INPUT: u16 = 5006;

/// The model of `…/ai/run/{model}` (everything after `/ai/run/`).
pub(crate) fn model_in_path(path: &str) -> Option<&str> {
    path.split_once("/ai/run/")
        .map(|(_, model)| model)
        .filter(|m| !m.is_empty())
}

/// `POST …/ai/run/{model}` for a text-embeddings model.
pub(crate) fn run(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    if !(a.model.starts_with("@cf/") || a.model.starts_with("@hf/")) {
        return Err(Invalid {
            message: format!("No such model {} or task", a.model),
            param: None,
            code: None,
        });
    }
    let texts: Option<Vec<&str>> = match body.get("text") {
        Some(Value::String(s)) => Some(vec![s.as_str()]),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(Value::as_str).collect::<Option<Vec<_>>>()
        }
        _ => None,
    };
    let Some(texts) = texts else {
        return Err(Invalid {
            message: "AiError: AiError: Error: required properties at '/' are 'text' \
                      (a string or a non-empty array of strings)"
                .to_owned(),
            param: None,
            code: None,
        });
    };
    let data: Vec<Vec<f32>> = (0..texts.len())
        .map(|i| embedding_vector(i, DEFAULT_EMBEDDING_DIMENSIONS))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "result": {
                "shape": [texts.len(), DEFAULT_EMBEDDING_DIMENSIONS],
                "data": data,
                "pooling": "mean",
            },
            "success": true,
            "errors": [],
            "messages": [],
        }),
    ))
}

/// A Cloudflare API token as `Authorization: Bearer`.
pub(crate) fn check_auth(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    match bearer(headers) {
        Some(key) if expected.is_none_or(|want| want == key) => Ok(()),
        _ => Err(Refusal {
            status: 401,
            message: "Authentication error".to_owned(),
            kind: "10000",
            code: None,
        }),
    }
}

/// Cloudflare's v4 error envelope. The error code is the spec's kind when it is a number, else the usual code for
/// the status.
pub(crate) fn error_body(status: StatusCode, spec: &ErrorSpec<'_>) -> Value {
    let (code, message) = match status.as_u16() {
        400 => (CODE_INVALID_INPUT, "Invalid input"),
        401 => (10000, "Authentication error"),
        403 => (10001, "Unauthorized to access requested resource"),
        404 => (7003, "Could not route to the requested resource"),
        413 => (CODE_INVALID_INPUT, "Request is too large"),
        429 => (3040, "Capacity temporarily exceeded, please try again."),
        500..=599 => (3043, "Internal server error"),
        _ => (CODE_INVALID_INPUT, "Invalid input"),
    };
    let code = spec
        .kind
        .and_then(|k| k.parse::<u16>().ok())
        .unwrap_or(code);
    json!({
        "success": false,
        "errors": [{"code": code, "message": spec.message.unwrap_or(message)}],
        "messages": [],
        "result": null,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt as _;

    use super::*;
    use crate::scenario::Scenario;
    use crate::text::usage_for;

    fn answer(model: &str) -> Answer<'_> {
        Answer {
            id: 1,
            model,
            chunks: 1,
            chunk_delay: Duration::ZERO,
            usage: usage_for(10, 0),
            created: 0,
            scenario: Scenario::Text,
        }
    }

    #[tokio::test]
    async fn texts_come_back_as_a_shaped_result() {
        let res = run(
            &json!({"text": ["a", "b"]}),
            &answer("@cf/baai/bge-base-en-v1.5"),
        )
        .unwrap_or_else(|e| panic!("{}", e.message));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(got["success"], true);
        assert_eq!(got["result"]["shape"], json!([2, 8]));
        assert_eq!(
            crate::embeddings::floats(&got["result"]["data"][1]),
            embedding_vector(1, 8)
        );
    }

    #[test]
    fn bad_bodies_and_models_are_refused() {
        for body in [json!({}), json!({"text": []}), json!({"text": [1]})] {
            assert!(run(&body, &answer("@cf/baai/bge-small-en-v1.5")).is_err());
        }
        assert!(run(&json!({"text": "a"}), &answer("bge")).is_err());
        assert_eq!(
            model_in_path("/client/v4/accounts/acme/ai/run/@cf/baai/bge-m3"),
            Some("@cf/baai/bge-m3")
        );
    }

    #[test]
    fn errors_are_the_v4_envelope() {
        let body = error_body(StatusCode::TOO_MANY_REQUESTS, &ErrorSpec::default());
        assert_eq!(body["success"], false);
        assert_eq!(body["errors"][0]["code"], 3040);
        let mut headers = HeaderMap::new();
        assert_eq!(check_auth(&headers, None).unwrap_err().status, 401);
        headers.insert("authorization", "Bearer cf-token".parse().unwrap());
        assert!(check_auth(&headers, None).is_ok());
        assert!(check_auth(&headers, Some("other")).is_err());
    }
}
