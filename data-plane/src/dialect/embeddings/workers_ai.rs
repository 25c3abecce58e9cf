//! Workers AI text embeddings (`@cf/baai/bge-*` and the other text-embeddings models) through the native run
//! endpoint: `POST {base}/{model}` (the base is `…/accounts/{account_id}/ai/run`) with `{text:[…]}` →
//! `{result:{shape:[n, d], data:[[…]]}, success, errors, messages}`. No token count comes back.
//!
//! The account is the gateway's, exactly as on the provider-native path `/v1/{account}/{gateway}/workers-ai/…`:
//! the route fills `{account_id}` from the request's account. Errors are Cloudflare's v4 envelope
//! `{success:false, errors:[{code, message}]}`.

use serde::{Deserialize, Serialize};

use super::{EmbeddingCodec, EmbeddingRequest, EmbeddingResponse, bad_response, to_body};
use crate::dialect::chat::ProviderError;
use crate::dialect::codec::{Encoded, Target, TranslateError};

/// Workers AI embeddings models.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkersAiEmbeddings;

#[derive(Serialize)]
struct RunRequest<'a> {
    text: &'a [String],
}

impl EmbeddingCodec for WorkersAiEmbeddings {
    fn encode(
        &self,
        request: &EmbeddingRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let model = target.model;
        if !is_model_path(model) {
            return Err(TranslateError::invalid(
                format!(
                    "Workers AI models are named like @cf/baai/bge-base-en-v1.5 (letters, digits, '-', '_', '.', \
                     '@' in '/'-separated parts); got {model:?}"
                ),
                Some("model".to_owned()),
            ));
        }
        let texts = request.texts(target.provider)?;
        if request.dimensions.is_some() {
            return Err(request.refuse("Workers AI", "dimensions"));
        }
        if request.input_type.is_some() {
            return Err(request.refuse("Workers AI", "input_type"));
        }
        Ok(Encoded {
            path: format!("/{model}"),
            headers: Vec::new(),
            body: to_body(&RunRequest { text: texts })?,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<EmbeddingResponse, TranslateError> {
        let answer: Envelope<Output> =
            serde_json::from_slice(body).map_err(|e| bad_response("Workers AI", e))?;
        match answer.result {
            Some(output) if answer.success != Some(false) => Ok(EmbeddingResponse {
                embeddings: output.data,
                prompt_tokens: None,
                model: None,
            }),
            _ => Err(bad_response(
                "Workers AI",
                messages(&answer.errors).unwrap_or_else(|| "no result".to_owned()),
            )),
        }
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        provider_error(status, body)
    }
}

/// A Workers AI error answer (Cloudflare's v4 envelope) in OpenAI's vocabulary, the message kept; the chat codec
/// (`dialect/workers_ai.rs`) reads errors the same way.
pub(crate) fn provider_error(status: u16, body: &[u8]) -> ProviderError {
    let parsed = serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(body).ok();
    let message = parsed.as_ref().and_then(|e| messages(&e.errors));
    let Some(message) = message else {
        // Not Cloudflare's shape: a proxy's page or a cut body; an unreadable 5xx is a bad gateway (§8.5).
        let status = if status >= 500 {
            502
        } else {
            ProviderError::map_status(status)
        };
        let text = String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned();
        return ProviderError::new(
            status,
            if text.is_empty() {
                format!("Workers AI answered {status} without an error message")
            } else {
                format!("Workers AI answered {status}: {text}")
            },
        );
    };
    let status = ProviderError::map_status(status);
    let code = match status {
        401 => Some("invalid_api_key"),
        404 => Some("model_not_found"),
        429 => Some("rate_limit_exceeded"),
        _ => None,
    };
    ProviderError {
        code: code.map(str::to_owned),
        ..ProviderError::new(status, message)
    }
}

/// `@cf/author/model`: '/'-separated parts of a safe alphabet, none empty, `.` or `..`, so the path cannot be
/// steered elsewhere under the account.
pub(crate) fn is_model_path(model: &str) -> bool {
    model.split('/').all(|part| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    })
}

/// The errors' messages joined, when there are any.
fn messages(errors: &[CfError]) -> Option<String> {
    let joined: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.message.as_deref())
        .filter(|m| !m.is_empty())
        .collect();
    (!joined.is_empty()).then(|| joined.join("; "))
}

/// Cloudflare's v4 envelope.
#[derive(Deserialize)]
struct Envelope<R> {
    #[serde(default = "Option::default")]
    result: Option<R>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<CfError>,
}

#[derive(Deserialize)]
struct CfError {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Output {
    data: Vec<Vec<f32>>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::dialect::embeddings::parse;

    fn encode(model: &str, body: Value) -> Result<(String, Value), TranslateError> {
        let req = parse(body.to_string().as_bytes()).unwrap();
        let target = Target {
            provider: "workers-ai",
            model,
            stream: false,
            project: None,
            region: None,
        };
        let enc = WorkersAiEmbeddings.encode(&req, &target)?;
        Ok((enc.path, serde_json::from_slice(&enc.body).unwrap()))
    }

    #[test]
    fn texts_run_on_the_model_path() {
        let (path, body) = encode(
            "@cf/baai/bge-base-en-v1.5",
            json!({"model": "m", "input": "hi"}),
        )
        .unwrap();
        assert_eq!(path, "/@cf/baai/bge-base-en-v1.5");
        assert_eq!(body, json!({"text": ["hi"]}));
        let (_, body) = encode(
            "@cf/baai/bge-m3",
            json!({"model": "m", "input": ["a", "b"]}),
        )
        .unwrap();
        assert_eq!(body, json!({"text": ["a", "b"]}));
    }

    #[test]
    fn bad_models_and_unsupported_parameters_are_refused() {
        for model in [
            "@cf/../x",
            "@cf//x",
            "@cf/baai/bge?x=1",
            "@cf/baai/bge%2F",
            "",
        ] {
            assert!(
                matches!(
                    encode(model, json!({"model": "m", "input": "a"})),
                    Err(TranslateError::Invalid { .. })
                ),
                "{model}"
            );
        }
        for (extra, param) in [
            (json!({"dimensions": 8}), "dimensions"),
            (json!({"input_type": "search_query"}), "input_type"),
            (json!({"input": [1, 2]}), "input"),
        ] {
            let mut body = json!({"model": "m", "input": "a"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            assert!(
                matches!(
                    encode("@cf/baai/bge-small-en-v1.5", body),
                    Err(TranslateError::Unsupported { param: Some(p), .. }) if p == param
                ),
                "{param}"
            );
        }
    }

    #[test]
    fn answers_decode_from_the_envelope() {
        let body = json!({"result": {"shape": [2, 2], "data": [[0.5, 0.25], [0.0, 1.0]], "pooling": "mean"},
            "success": true, "errors": [], "messages": []});
        let got = WorkersAiEmbeddings
            .decode(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(got.embeddings, vec![vec![0.5, 0.25], vec![0.0, 1.0]]);
        assert_eq!(got.prompt_tokens, None);
        let failed = json!({"result": null, "success": false, "errors": [{"code": 5006, "message": "bad input"}]});
        let Err(TranslateError::BadResponse(message)) =
            WorkersAiEmbeddings.decode(failed.to_string().as_bytes())
        else {
            panic!("expected BadResponse");
        };
        assert!(message.contains("bad input"), "{message}");
        assert!(WorkersAiEmbeddings.decode(b"[]").is_err());
    }

    #[test]
    fn errors_read_the_v4_envelope() {
        let body = json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [], "result": null});
        let e = WorkersAiEmbeddings.decode_error(401, body.to_string().as_bytes());
        assert_eq!(
            (e.status, e.message.as_str(), e.code.as_deref()),
            (401, "Authentication error", Some("invalid_api_key"))
        );
        assert_eq!(e.kind, "authentication_error");
        let e = WorkersAiEmbeddings.decode_error(503, b"<html>oops</html>");
        assert_eq!(e.status, 502);
        assert!(e.message.contains("oops"), "{}", e.message);
    }
}
