//! Gemini embeddings (`notes/translation.md` §5.5) on both hosts:
//! - Google AI Studio: `POST /v1beta/models/{m}:batchEmbedContents`
//!   `{requests:[{model:"models/{m}", content:{parts:[{text}]}, taskType?, outputDimensionality?}]}` →
//!   `{embeddings:[{values}]}`, no token count.
//! - Vertex AI: `POST /v1/projects/{p}/locations/{r}/publishers/google/models/{m}:predict`
//!   `{instances:[{content, task_type?}], parameters:{outputDimensionality?}}` →
//!   `{predictions:[{embeddings:{values, statistics:{token_count}}}]}`; the project and region come from the
//!   stored service-account JSON, as for chat.
//!
//! Errors are Google's (`{"error":{code, message, status}}`), read by the chat codec's mapping.

use serde::{Deserialize, Serialize};

use super::{
    EmbeddingCodec, EmbeddingRequest, EmbeddingResponse, InputType, bad_response, count, to_body,
};
use crate::dialect::chat::ProviderError;
use crate::dialect::codec::{ChatCodec, Encoded, Target, TranslateError};
use crate::dialect::gemini::{AI_STUDIO, GeminiCodec, VERTEX};

/// Gemini embeddings for Google AI Studio and Vertex AI (`Target::provider` decides the call).
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiEmbeddings;

impl EmbeddingCodec for GeminiEmbeddings {
    fn encode(
        &self,
        request: &EmbeddingRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let texts = request.texts(target.provider)?;
        let task_type = request.input_type.map(task_type);
        let (path, body) = match target.provider {
            AI_STUDIO => {
                let model = target.model.strip_prefix("models/").unwrap_or(target.model);
                check_segment("model", model)?;
                let resource = format!("models/{model}");
                let requests: Vec<BatchItem<'_>> = texts
                    .iter()
                    .map(|text| BatchItem {
                        model: &resource,
                        content: Content {
                            parts: [Part { text }],
                        },
                        task_type,
                        output_dimensionality: request.dimensions,
                    })
                    .collect();
                (
                    format!("/v1beta/{resource}:batchEmbedContents"),
                    to_body(&BatchRequest { requests })?,
                )
            }
            VERTEX => {
                let path = vertex_path(target)?;
                let instances = texts
                    .iter()
                    .map(|content| Instance { content, task_type })
                    .collect();
                let parameters = request.dimensions.map(|d| Parameters {
                    output_dimensionality: d,
                });
                (
                    path,
                    to_body(&PredictRequest {
                        instances,
                        parameters,
                    })?,
                )
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("Gemini embeddings do not serve provider {other:?}"),
                    Some("model".to_owned()),
                ));
            }
        };
        Ok(Encoded {
            path,
            headers: Vec::new(),
            body,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<EmbeddingResponse, TranslateError> {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| bad_response("Gemini", e))?;
        match answer {
            Answer::Batch { embeddings } => Ok(EmbeddingResponse {
                embeddings: embeddings.into_iter().map(|e| e.values).collect(),
                prompt_tokens: None,
                model: None,
            }),
            Answer::Predict { predictions } => {
                let mut tokens = None;
                let embeddings = predictions
                    .into_iter()
                    .map(|p| {
                        if let Some(n) = count(p.embeddings.statistics.and_then(|s| s.token_count))
                        {
                            *tokens.get_or_insert(0) += n;
                        }
                        p.embeddings.values
                    })
                    .collect();
                Ok(EmbeddingResponse {
                    embeddings,
                    prompt_tokens: tokens,
                    model: None,
                })
            }
        }
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        GeminiCodec.decode_error(status, body)
    }
}

/// Cohere's input types as Gemini task types.
fn task_type(t: InputType) -> &'static str {
    match t {
        InputType::SearchDocument => "RETRIEVAL_DOCUMENT",
        InputType::SearchQuery => "RETRIEVAL_QUERY",
        InputType::Classification => "CLASSIFICATION",
        InputType::Clustering => "CLUSTERING",
    }
}

/// `/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:predict`; the model is `google/{m}` as for chat.
fn vertex_path(target: &Target<'_>) -> Result<String, TranslateError> {
    let model = match target.model.split_once('/') {
        Some(("google", model)) => model,
        Some((publisher, _)) => {
            return Err(TranslateError::unsupported(
                format!(
                    "Vertex AI publisher {publisher:?} is not supported for embeddings; only publisher \"google\" is"
                ),
                Some("model".to_owned()),
            ));
        }
        None => {
            return Err(TranslateError::invalid(
                format!(
                    "Vertex AI models are named {{publisher}}/{{model}}, e.g. \
                     google-vertex-ai/google/gemini-embedding-001; got {:?}",
                    target.model
                ),
                Some("model".to_owned()),
            ));
        }
    };
    check_segment("model", model)?;
    let stored = |what: &str, value: Option<&str>| {
        value
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                TranslateError::invalid(
                    format!(
                        "the stored Vertex AI service-account JSON has no {what}; store the JSON with its \
                         project_id and an extra \"region\" key (e.g. \"us-central1\" or \"global\")"
                    ),
                    None,
                )
            })
    };
    let project = stored("project_id", target.project)?;
    let region = stored("region", target.region)?;
    check_segment("project_id", &project)?;
    check_segment("region", &region)?;
    Ok(format!(
        "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:predict"
    ))
}

/// A path segment must not be able to change the path (the chat codec's rule).
fn check_segment(what: &str, value: &str) -> Result<(), TranslateError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(TranslateError::invalid(
            format!("{what} {value:?} is not a valid Gemini path segment"),
            (what == "model").then(|| "model".to_owned()),
        ))
    }
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    requests: Vec<BatchItem<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem<'a> {
    model: &'a str,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct PredictRequest<'a> {
    instances: Vec<Instance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Parameters>,
}

#[derive(Serialize)]
struct Instance<'a> {
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    output_dimensionality: u32,
}

/// Either host's answer, told apart by its field.
#[derive(Deserialize)]
#[serde(untagged)]
enum Answer {
    Batch { embeddings: Vec<Values> },
    Predict { predictions: Vec<Prediction> },
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: PredictionEmbeddings,
}

#[derive(Deserialize)]
struct PredictionEmbeddings {
    values: Vec<f32>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    token_count: Option<f64>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::dialect::embeddings::parse;

    fn target<'a>(provider: &'a str, model: &'a str) -> Target<'a> {
        Target {
            provider,
            model,
            stream: false,
            project: Some("my-proj"),
            region: Some("us-central1"),
        }
    }

    fn encode(body: Value, t: &Target<'_>) -> Result<(String, Value), TranslateError> {
        let req = parse(body.to_string().as_bytes()).unwrap();
        let enc = GeminiEmbeddings.encode(&req, t)?;
        assert!(enc.headers.is_empty());
        Ok((enc.path, serde_json::from_slice(&enc.body).unwrap()))
    }

    #[test]
    fn ai_studio_batches_every_input_with_task_type_and_dimensions() {
        let (path, body) = encode(
            json!({"model": "x", "input": ["a", "b"], "dimensions": 256, "input_type": "search_query"}),
            &target(AI_STUDIO, "models/gemini-embedding-001"),
        )
        .unwrap();
        assert_eq!(
            path,
            "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        let item = |text: &str| {
            json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]},
                "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 256})
        };
        assert_eq!(body, json!({"requests": [item("a"), item("b")]}));
        let (_, body) = encode(
            json!({"model": "x", "input": "a"}),
            &target(AI_STUDIO, "text-embedding-004"),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}}]})
        );
    }

    #[test]
    fn vertex_predicts_with_instances_and_parameters() {
        let (path, body) = encode(
            json!({"model": "x", "input": ["a", "b"], "dimensions": 768, "input_type": "clustering"}),
            &target(VERTEX, "google/gemini-embedding-001"),
        )
        .unwrap();
        assert_eq!(
            path,
            "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-embedding-001:predict"
        );
        assert_eq!(
            body,
            json!({"instances": [{"content": "a", "task_type": "CLUSTERING"}, {"content": "b", "task_type": "CLUSTERING"}],
                "parameters": {"outputDimensionality": 768}})
        );
        let (_, body) = encode(
            json!({"model": "x", "input": "a"}),
            &target(VERTEX, "google/text-embedding-005"),
        )
        .unwrap();
        assert_eq!(body, json!({"instances": [{"content": "a"}]}));
    }

    #[test]
    fn bad_targets_and_token_input_are_refused() {
        let text = json!({"model": "x", "input": "a"});
        for t in [
            target(AI_STUDIO, "gemini/../x"),
            target(VERTEX, "gemini-embedding-001"),
            Target {
                project: None,
                ..target(VERTEX, "google/gemini-embedding-001")
            },
        ] {
            assert!(
                matches!(
                    encode(text.clone(), &t),
                    Err(TranslateError::Invalid { .. })
                ),
                "{t:?}"
            );
        }
        assert!(matches!(
            encode(text, &target(VERTEX, "anthropic/claude")),
            Err(TranslateError::Unsupported { .. })
        ));
        let err = encode(
            json!({"model": "x", "input": [1, 2, 3]}),
            &target(AI_STUDIO, "gemini-embedding-001"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, TranslateError::Unsupported { param: Some(p), .. } if p == "input"),
            "{err:?}"
        );
    }

    #[test]
    fn both_answers_decode() {
        let batch = json!({"embeddings": [{"values": [0.5, -0.25]}, {"values": [1.0, 0.0]}]});
        let got = GeminiEmbeddings
            .decode(batch.to_string().as_bytes())
            .unwrap();
        assert_eq!(got.embeddings, vec![vec![0.5, -0.25], vec![1.0, 0.0]]);
        assert_eq!(got.prompt_tokens, None);

        let predict = json!({"predictions": [
            {"embeddings": {"values": [0.5], "statistics": {"token_count": 3, "truncated": false}}},
            {"embeddings": {"values": [0.25], "statistics": {"token_count": 4.0, "truncated": false}}}
        ], "metadata": {"billableCharacterCount": 9}});
        let got = GeminiEmbeddings
            .decode(predict.to_string().as_bytes())
            .unwrap();
        assert_eq!(got.embeddings, vec![vec![0.5], vec![0.25]]);
        assert_eq!(got.prompt_tokens, Some(7));

        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"embeddings": [{"values": ["x"]}]}"#,
        ] {
            assert!(matches!(
                GeminiEmbeddings.decode(bad),
                Err(TranslateError::BadResponse(_))
            ));
        }
    }

    #[test]
    fn errors_are_googles() {
        let body =
            json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}});
        let e = GeminiEmbeddings.decode_error(429, body.to_string().as_bytes());
        assert_eq!((e.status, e.message.as_str()), (429, "quota"));
        assert_eq!(e.kind, "rate_limit_error");
    }
}
