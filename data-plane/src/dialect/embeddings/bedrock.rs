//! Bedrock embeddings through InvokeModel (`POST /model/{id}/invoke`, `notes/translation.md` §3): the body is the
//! model family's own, chosen from the model id (bare, with a cross-region prefix, or inside an ARN):
//! - Amazon Titan (`amazon.titan-embed-*`): `{inputText, dimensions?}` → `{embedding, inputTextTokenCount}`. One
//!   text per call: several inputs are a 400 (see the module comment of `embeddings.rs`).
//! - Cohere (`cohere.embed-*`): `{texts, input_type, output_dimension?}` → `{embeddings:[[…]]}` (or
//!   `{embeddings:{float:[[…]]}}`); Bedrock reports its tokens only in a response header, so none are read.
//!
//! The caller signs the request (SigV4) or sets the Bedrock API key, as for Converse. Errors are Bedrock's
//! `{"message"}`, read by the Converse codec's mapping.

use serde::{Deserialize, Serialize};

use super::cohere::Embeddings as CohereVectors;
use super::{
    EmbeddingCodec, EmbeddingRequest, EmbeddingResponse, InputType, bad_response, count, to_body,
};
use crate::dialect::bedrock::{converse_path, provider_error};
use crate::dialect::chat::ProviderError;
use crate::dialect::codec::{Encoded, Target, TranslateError};

/// Bedrock InvokeModel for embeddings models.
#[derive(Debug, Clone, Copy, Default)]
pub struct BedrockEmbeddings;

/// The embeddings model families InvokeModel serves here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Titan,
    Cohere,
}

impl Family {
    fn of(model: &str) -> Option<Family> {
        if model.contains("amazon.titan-embed") {
            Some(Family::Titan)
        } else if model.contains("cohere.embed") {
            Some(Family::Cohere)
        } else {
            None
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

#[derive(Serialize)]
struct CohereRequest<'a> {
    texts: &'a [String],
    input_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

/// `/model/{id}/invoke`, the id percent-encoded as one segment exactly as for Converse.
fn invoke_path(model: &str) -> String {
    let converse = converse_path(model, false);
    let encoded = converse.strip_suffix("/converse").unwrap_or(&converse);
    format!("{encoded}/invoke")
}

impl EmbeddingCodec for BedrockEmbeddings {
    fn encode(
        &self,
        request: &EmbeddingRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let model = target.model;
        let texts = request.texts(target.provider)?;
        let body = match Family::of(model) {
            Some(Family::Titan) => {
                let [text] = texts else {
                    return Err(TranslateError::unsupported(
                        format!(
                            "{model} embeds one input per request; send `input` as one string (or one request per \
                             input), or use a model that takes several (e.g. cohere.embed-english-v3)"
                        ),
                        Some("input".to_owned()),
                    ));
                };
                if request.input_type.is_some() {
                    return Err(request.refuse("Amazon Titan", "input_type"));
                }
                to_body(&TitanRequest {
                    input_text: text,
                    dimensions: request.dimensions,
                })?
            }
            Some(Family::Cohere) => to_body(&CohereRequest {
                texts,
                input_type: request
                    .input_type
                    .unwrap_or(InputType::SearchDocument)
                    .as_str(),
                output_dimension: request.dimensions,
            })?,
            None => {
                return Err(TranslateError::unsupported(
                    format!(
                        "aws-bedrock model {model:?} is not an embeddings model the gateway translates; use \
                         amazon.titan-embed-* or cohere.embed-*"
                    ),
                    Some("model".to_owned()),
                ));
            }
        };
        Ok(Encoded {
            path: invoke_path(model),
            headers: Vec::new(),
            body,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<EmbeddingResponse, TranslateError> {
        let answer: Answer =
            serde_json::from_slice(body).map_err(|e| bad_response("Bedrock", e))?;
        Ok(match answer {
            Answer::Titan {
                embedding,
                input_text_token_count,
            } => EmbeddingResponse {
                embeddings: vec![embedding],
                prompt_tokens: count(input_text_token_count),
                model: None,
            },
            Answer::Cohere { embeddings } => EmbeddingResponse {
                embeddings: embeddings.into_vectors(),
                prompt_tokens: None,
                model: None,
            },
        })
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        provider_error(status, None, body)
    }
}

/// Either family's answer, told apart by its field.
#[derive(Deserialize)]
#[serde(untagged)]
enum Answer {
    #[serde(rename_all = "camelCase")]
    Titan {
        embedding: Vec<f32>,
        #[serde(default)]
        input_text_token_count: Option<f64>,
    },
    Cohere {
        embeddings: CohereVectors,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::dialect::embeddings::parse;

    fn encode(model: &str, body: Value) -> Result<(String, Value), TranslateError> {
        let req = parse(body.to_string().as_bytes()).unwrap();
        let target = Target {
            provider: "aws-bedrock",
            model,
            stream: false,
            project: None,
            region: None,
        };
        let enc = BedrockEmbeddings.encode(&req, &target)?;
        Ok((enc.path, serde_json::from_slice(&enc.body).unwrap()))
    }

    #[test]
    fn titan_takes_one_text_and_its_dimensions() {
        let (path, body) = encode(
            "amazon.titan-embed-text-v2:0",
            json!({"model": "m", "input": ["hello"], "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        assert_eq!(body, json!({"inputText": "hello", "dimensions": 256}));
        let (_, body) = encode(
            "amazon.titan-embed-text-v2:0",
            json!({"model": "m", "input": "hello"}),
        )
        .unwrap();
        assert_eq!(body, json!({"inputText": "hello"}));
    }

    #[test]
    fn titan_refuses_several_inputs_and_input_types() {
        let err = encode(
            "amazon.titan-embed-text-v2:0",
            json!({"model": "m", "input": ["a", "b"]}),
        )
        .unwrap_err();
        let TranslateError::Unsupported { message, param } = err else {
            panic!("{err:?}");
        };
        assert!(message.contains("one input per request"), "{message}");
        assert_eq!(param.as_deref(), Some("input"));
        assert!(matches!(
            encode(
                "amazon.titan-embed-text-v2:0",
                json!({"model": "m", "input": "a", "input_type": "search_query"})
            ),
            Err(TranslateError::Unsupported { param: Some(p), .. }) if p == "input_type"
        ));
    }

    #[test]
    fn cohere_on_bedrock_takes_every_text() {
        let (path, body) = encode(
            "cohere.embed-english-v3",
            json!({"model": "m", "input": ["a", "b"]}),
        )
        .unwrap();
        assert_eq!(path, "/model/cohere.embed-english-v3/invoke");
        assert_eq!(
            body,
            json!({"texts": ["a", "b"], "input_type": "search_document"})
        );
        let (path, body) = encode(
            "arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-v4:0",
            json!({"model": "m", "input": "a", "input_type": "classification", "dimensions": 1024}),
        )
        .unwrap();
        assert_eq!(
            path,
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fcohere.embed-v4%3A0/invoke"
        );
        assert_eq!(
            body,
            json!({"texts": ["a"], "input_type": "classification", "output_dimension": 1024})
        );
    }

    #[test]
    fn other_models_and_token_input_are_refused() {
        assert!(matches!(
            encode("anthropic.claude-3-haiku", json!({"model": "m", "input": "a"})),
            Err(TranslateError::Unsupported { param: Some(p), .. }) if p == "model"
        ));
        assert!(matches!(
            encode("cohere.embed-english-v3", json!({"model": "m", "input": [5, 6]})),
            Err(TranslateError::Unsupported { param: Some(p), .. }) if p == "input"
        ));
    }

    #[test]
    fn both_answers_decode() {
        let titan = json!({"embedding": [0.5, -0.5], "inputTextTokenCount": 3,
            "embeddingsByType": {"float": [0.5, -0.5]}});
        let got = BedrockEmbeddings
            .decode(titan.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            (got.embeddings, got.prompt_tokens),
            (vec![vec![0.5, -0.5]], Some(3))
        );
        let cohere = json!({"embeddings": [[0.25], [1.0]], "id": "x", "response_type": "embeddings_floats",
            "texts": ["a", "b"]});
        let got = BedrockEmbeddings
            .decode(cohere.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            (got.embeddings, got.prompt_tokens),
            (vec![vec![0.25], vec![1.0]], None)
        );
        let by_type =
            json!({"embeddings": {"float": [[0.25]]}, "response_type": "embeddings_by_type"});
        assert_eq!(
            BedrockEmbeddings
                .decode(by_type.to_string().as_bytes())
                .unwrap()
                .embeddings,
            vec![vec![0.25]]
        );
        assert!(matches!(
            BedrockEmbeddings.decode(br#"{"outputText": "hi"}"#),
            Err(TranslateError::BadResponse(_))
        ));
    }

    #[test]
    fn errors_are_bedrock_s() {
        let e = BedrockEmbeddings.decode_error(
            400,
            br#"{"message": "Malformed input request: expected maxLength: 50000"}"#,
        );
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("Malformed input request"));
        let e = BedrockEmbeddings.decode_error(429, br#"{"message": "Too many requests"}"#);
        assert_eq!(
            (e.status, e.code.as_deref()),
            (429, Some("rate_limit_exceeded"))
        );
    }
}
