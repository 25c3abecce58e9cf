//! Cohere's `POST /v2/embed` (`notes/translation.md` §3): `{model, texts, input_type, embedding_types:["float"],
//! output_dimension?}` → `{embeddings:{float:[[…]]}, meta:{billed_units:{input_tokens}}}`. `input_type` is required
//! by Cohere's v3+ models and defaults to `search_document`. Errors are Cohere's `{"message"}`, read by the chat
//! codec's mapping.

use serde::{Deserialize, Serialize};

use super::{
    EmbeddingCodec, EmbeddingRequest, EmbeddingResponse, InputType, bad_response, count, to_body,
};
use crate::dialect::chat::ProviderError;
use crate::dialect::codec::{ChatCodec, Encoded, Target, TranslateError};
use crate::dialect::cohere::CohereCodec;

/// The path of Cohere's embed endpoint, after the provider's base URL.
pub const EMBED_PATH: &str = "/v2/embed";

/// Cohere v2 embed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CohereEmbeddings;

#[derive(Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    texts: &'a [String],
    input_type: &'static str,
    embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

impl EmbeddingCodec for CohereEmbeddings {
    fn encode(
        &self,
        request: &EmbeddingRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let body = EmbedRequest {
            model: target.model,
            texts: request.texts(target.provider)?,
            input_type: request
                .input_type
                .unwrap_or(InputType::SearchDocument)
                .as_str(),
            embedding_types: ["float"],
            output_dimension: request.dimensions,
        };
        Ok(Encoded {
            path: EMBED_PATH.to_owned(),
            headers: Vec::new(),
            body: to_body(&body)?,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<EmbeddingResponse, TranslateError> {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| bad_response("Cohere", e))?;
        let tokens = answer.meta.and_then(|m| {
            let input = |c: Option<Counts>| c.and_then(|c| c.input_tokens);
            count(input(m.billed_units).or(input(m.tokens)))
        });
        Ok(EmbeddingResponse {
            embeddings: answer.embeddings.into_vectors(),
            prompt_tokens: tokens,
            model: None,
        })
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        CohereCodec.decode_error(status, body)
    }
}

#[derive(Deserialize)]
struct Answer {
    embeddings: Embeddings,
    #[serde(default)]
    meta: Option<Meta>,
}

/// `{float: [[…]]}` when `embedding_types` was sent (always, here); a bare list from older answers
/// (`response_type: "embeddings_floats"`), which Cohere on Bedrock also sends.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Embeddings {
    ByType { float: Vec<Vec<f32>> },
    Floats(Vec<Vec<f32>>),
}

impl Embeddings {
    pub(super) fn into_vectors(self) -> Vec<Vec<f32>> {
        match self {
            Embeddings::ByType { float } | Embeddings::Floats(float) => float,
        }
    }
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    billed_units: Option<Counts>,
    #[serde(default)]
    tokens: Option<Counts>,
}

#[derive(Deserialize)]
struct Counts {
    #[serde(default)]
    input_tokens: Option<f64>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::dialect::embeddings::parse;

    fn target() -> Target<'static> {
        Target {
            provider: "cohere",
            model: "embed-v4.0",
            stream: false,
            project: None,
            region: None,
        }
    }

    fn encode(body: Value) -> Result<Value, TranslateError> {
        let req = parse(body.to_string().as_bytes()).unwrap();
        let enc = CohereEmbeddings.encode(&req, &target())?;
        assert_eq!(enc.path, "/v2/embed");
        Ok(serde_json::from_slice(&enc.body).unwrap())
    }

    #[test]
    fn texts_go_with_a_default_input_type_and_float_embeddings() {
        assert_eq!(
            encode(json!({"model": "cohere/embed-v4.0", "input": "hi", "user": "u1"})).unwrap(),
            json!({"model": "embed-v4.0", "texts": ["hi"], "input_type": "search_document",
                "embedding_types": ["float"]})
        );
        assert_eq!(
            encode(json!({"model": "m", "input": ["a", "b"], "input_type": "search_query", "dimensions": 512}))
                .unwrap(),
            json!({"model": "embed-v4.0", "texts": ["a", "b"], "input_type": "search_query",
                "embedding_types": ["float"], "output_dimension": 512})
        );
        assert!(matches!(
            encode(json!({"model": "m", "input": [[1, 2], [3]]})),
            Err(TranslateError::Unsupported { .. })
        ));
    }

    #[test]
    fn answers_decode_with_billed_tokens() {
        let body = json!({"id": "e1", "embeddings": {"float": [[0.5, 0.25], [0.0, -1.0]]}, "texts": ["a", "b"],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 4.0}},
            "response_type": "embeddings_by_type"});
        let got = CohereEmbeddings
            .decode(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(got.embeddings, vec![vec![0.5, 0.25], vec![0.0, -1.0]]);
        assert_eq!(got.prompt_tokens, Some(4));
        let bare = json!({"embeddings": [[1.0]], "response_type": "embeddings_floats"});
        let got = CohereEmbeddings
            .decode(bare.to_string().as_bytes())
            .unwrap();
        assert_eq!((got.embeddings, got.prompt_tokens), (vec![vec![1.0]], None));
        assert!(matches!(
            CohereEmbeddings.decode(br#"{"embeddings": {"int8": [[1]]}}"#),
            Err(TranslateError::BadResponse(_))
        ));
    }

    #[test]
    fn errors_keep_cohere_s_message() {
        let e = CohereEmbeddings.decode_error(
            400,
            br#"{"id": "x", "message": "invalid request: texts must not be empty"}"#,
        );
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "invalid request: texts must not be empty")
        );
        assert_eq!(
            CohereEmbeddings
                .decode_error(429, br#"{"message":"slow down"}"#)
                .code
                .as_deref(),
            Some("rate_limit_exceeded")
        );
    }
}
