//! Embeddings in the native shapes of Cohere and of Bedrock InvokeModel (Gemini's are in `gemini/embed.rs`, Workers
//! AI's in `workers_ai.rs`, OpenAI's in `openai.rs`). Every provider's vectors are [`embedding_vector`] of the
//! input's position, so a test predicts the floats a client gets whichever provider answered.
//!
//! | route | request | answer |
//! |---|---|---|
//! | `POST …/v2/embed` (Cohere) | `{model, texts, input_type, embedding_types, output_dimension?}` | `{id, embeddings:{float:[…]}, texts, meta:{billed_units:{input_tokens}}, response_type:"embeddings_by_type"}` |
//! | `POST …/model/amazon.titan-embed-…/invoke` | `{inputText, dimensions?, normalize?}` | `{embedding, embeddingsByType:{float}, inputTextTokenCount}` |
//! | `POST …/model/cohere.embed-…/invoke` | `{texts, input_type, embedding_types?, output_dimension?, truncate?}` | `{id, embeddings:[…], response_type:"embeddings_floats", texts}` (by type when `embedding_types` is sent), tokens in `x-amzn-bedrock-input-token-count` |
//!
//! Input tokens are the crate's deterministic count for the request body ([`crate::usage_for`]'s input).

use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, json as json_response};
use crate::text::{DEFAULT_EMBEDDING_DIMENSIONS, embedding_vector};

/// Cohere's limit on texts per embed call.
const COHERE_MAX_TEXTS: usize = 96;

/// Cohere's `input_type` values.
const COHERE_INPUT_TYPES: &[&str] = &[
    "search_document",
    "search_query",
    "classification",
    "clustering",
    "image",
];

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param: None,
        code: None,
    }
}

/// The vectors for `count` inputs of `dimensions` floats.
fn vectors(count: usize, dimensions: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!(embedding_vector(i, dimensions)))
        .collect()
}

/// A list of non-empty strings, or Cohere's complaint about `field`.
fn texts<'a>(body: &'a Value, field: &str) -> Option<Vec<&'a str>> {
    body.get(field)?
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<_>>>()
        .filter(|t| !t.is_empty())
}

/// `POST /v2/embed`.
pub(crate) fn cohere(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    let Some(texts) = texts(body, "texts") else {
        return Err(invalid(
            "invalid request: texts must be a non-empty list of strings",
        ));
    };
    if texts.len() > COHERE_MAX_TEXTS {
        return Err(invalid(format!(
            "invalid request: cannot embed more than {COHERE_MAX_TEXTS} texts in one request"
        )));
    }
    let input_type = body.get("input_type").and_then(Value::as_str);
    if !input_type.is_some_and(|t| COHERE_INPUT_TYPES.contains(&t)) {
        return Err(invalid(
            "invalid request: valid input_type must be provided with the provided model",
        ));
    }
    let types = embedding_types(body)?.ok_or_else(|| {
        invalid("invalid request: embedding_types must be provided for the v2 embed endpoint")
    })?;
    let dimensions = dimension(body, "output_dimension")?;
    let mut embeddings = Map::new();
    for t in types {
        embeddings.insert(t.to_owned(), json!(vectors(texts.len(), dimensions)));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": format!("emb-mock-{}", a.id),
            "embeddings": embeddings,
            "texts": texts,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"input_tokens": a.usage.input_tokens}
            },
            "response_type": "embeddings_by_type",
        }),
    ))
}

/// `embedding_types`, when sent: only `float` is generated.
fn embedding_types(body: &Value) -> Result<Option<Vec<&str>>, Invalid> {
    let Some(types) = body.get("embedding_types") else {
        return Ok(None);
    };
    let types = types
        .as_array()
        .and_then(|t| t.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("invalid request: embedding_types must be a list of strings"))?;
    if let Some(other) = types.iter().find(|t| **t != "float") {
        return Err(invalid(format!(
            "invalid request: the mock only generates float embeddings, not {other:?}"
        )));
    }
    Ok(Some(types))
}

/// A requested size (`field`), or the default.
fn dimension(body: &Value, field: &str) -> Result<usize, Invalid> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(DEFAULT_EMBEDDING_DIMENSIONS),
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=4096).contains(d))
            .map(|d| d as usize)
            .ok_or_else(|| {
                invalid(format!(
                    "invalid request: {field} must be a positive integer"
                ))
            }),
    }
}

/// The model id of `/model/{modelId}/invoke`, percent-decoded.
pub(crate) fn invoke_model(path: &str) -> Option<String> {
    let rest = path.split_once("/model/")?.1;
    let encoded = rest.strip_suffix("/invoke")?;
    let decoded = crate::bedrock::model_in_path(&format!("/model/{encoded}/converse"))?;
    Some(decoded)
}

/// `POST /model/{id}/invoke` for an embeddings model: Titan or Cohere, by the model id.
pub(crate) fn bedrock_invoke(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    let mut res = if a.model.contains("amazon.titan-embed") {
        titan(body, a)?
    } else if a.model.contains("cohere.embed") {
        bedrock_cohere(body, a)?
    } else {
        return Err(invalid(format!(
            "The mock serves InvokeModel for embeddings models only (amazon.titan-embed-*, cohere.embed-*), not {}",
            a.model
        )));
    };
    if let Ok(v) = HeaderValue::from_str(&format!("00000000-0000-4000-8000-{:012}", a.id)) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(res)
}

/// Bedrock's JSON-schema complaints, as its InvokeModel words them.
fn malformed(detail: &str) -> Invalid {
    invalid(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

/// Only these keys, or Bedrock's "extraneous key".
fn allow_keys(body: &Value, allowed: &[&str]) -> Result<(), Invalid> {
    let extra = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .find(|k| !allowed.contains(k));
    match extra {
        Some(k) => Err(malformed(&format!(
            "#: extraneous key [{k}] is not permitted"
        ))),
        None => Ok(()),
    }
}

fn titan(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    allow_keys(
        body,
        &["inputText", "dimensions", "normalize", "embeddingTypes"],
    )?;
    let text = body.get("inputText").and_then(Value::as_str);
    if text.is_none_or(str::is_empty) {
        return Err(malformed("#: required key [inputText] not found"));
    }
    let dimensions = match body.get("dimensions").and_then(Value::as_u64) {
        None => DEFAULT_EMBEDDING_DIMENSIONS,
        // Titan v2's sizes.
        Some(d @ (256 | 512 | 1024)) => d as usize,
        Some(d) => {
            return Err(malformed(&format!(
                "#/dimensions: {d} is not a valid enum value"
            )));
        }
    };
    let vector = embedding_vector(0, dimensions);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "embedding": vector,
            "embeddingsByType": {"float": vector},
            "inputTextTokenCount": a.usage.input_tokens,
        }),
    ))
}

fn bedrock_cohere(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    allow_keys(
        body,
        &[
            "texts",
            "images",
            "input_type",
            "truncate",
            "embedding_types",
            "output_dimension",
        ],
    )?;
    let Some(texts) = texts(body, "texts") else {
        return Err(malformed("#: required key [texts] not found"));
    };
    if texts.len() > COHERE_MAX_TEXTS {
        return Err(malformed(&format!(
            "#/texts: expected maximum item count: {COHERE_MAX_TEXTS}, found: {}",
            texts.len()
        )));
    }
    match body.get("input_type").and_then(Value::as_str) {
        Some(t) if COHERE_INPUT_TYPES.contains(&t) => {}
        Some(t) => {
            return Err(malformed(&format!(
                "#/input_type: {t} is not a valid enum value"
            )));
        }
        None => return Err(malformed("#: required key [input_type] not found")),
    }
    let dimensions = dimension(body, "output_dimension")?;
    let (embeddings, response_type) = match embedding_types(body)? {
        Some(types) => {
            let by_type: Map<String, Value> = types
                .into_iter()
                .map(|t| (t.to_owned(), json!(vectors(texts.len(), dimensions))))
                .collect();
            (Value::Object(by_type), "embeddings_by_type")
        }
        None => (json!(vectors(texts.len(), dimensions)), "embeddings_floats"),
    };
    let mut res = json_response(
        StatusCode::OK,
        &json!({
            "id": format!("emb-mock-{}", a.id),
            "embeddings": embeddings,
            "response_type": response_type,
            "texts": texts,
        }),
    );
    // Bedrock reports Cohere's tokens in a header only.
    res.headers_mut().insert(
        "x-amzn-bedrock-input-token-count",
        HeaderValue::from(a.usage.input_tokens),
    );
    Ok(res)
}

/// A JSON array of numbers as the f32s it was written from (JSON parsing in f64 need not give back the exact
/// f64 of an f32, so tests compare in f32).
#[cfg(test)]
pub(crate) fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|f| f as f32)
                .collect()
        })
        .unwrap_or_default()
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
            id: 3,
            model,
            chunks: 1,
            chunk_delay: Duration::ZERO,
            usage: usage_for(40, 0),
            created: 0,
            scenario: Scenario::Text,
        }
    }

    async fn body_of(res: Response<MockBody>) -> Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn cohere_embeds_every_text_by_type() {
        let req = json!({"model": "embed-v4.0", "texts": ["a", "b"], "input_type": "search_query",
            "embedding_types": ["float"], "output_dimension": 4});
        let res = cohere(&req, &answer("embed-v4.0")).unwrap_or_else(|e| panic!("{}", e.message));
        let got = body_of(res).await;
        assert_eq!(
            floats(&got["embeddings"]["float"][1]),
            embedding_vector(1, 4)
        );
        assert_eq!(got["meta"]["billed_units"]["input_tokens"], 10);
        assert_eq!(got["response_type"], "embeddings_by_type");
    }

    #[test]
    fn cohere_refuses_what_cohere_refuses() {
        for req in [
            json!({"model": "m", "input_type": "search_query", "embedding_types": ["float"]}),
            json!({"model": "m", "texts": ["a"], "embedding_types": ["float"]}),
            json!({"model": "m", "texts": ["a"], "input_type": "search_query"}),
            json!({"model": "m", "texts": ["a"], "input_type": "query", "embedding_types": ["float"]}),
            json!({"model": "m", "texts": vec!["a"; 97], "input_type": "search_query", "embedding_types": ["float"]}),
        ] {
            assert!(cohere(&req, &answer("m")).is_err(), "{req}");
        }
    }

    #[tokio::test]
    async fn titan_embeds_one_text() {
        let req = json!({"inputText": "hello", "dimensions": 256});
        let res = bedrock_invoke(&req, &answer("amazon.titan-embed-text-v2:0"))
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert!(res.headers().contains_key("x-amzn-requestid"));
        let got = body_of(res).await;
        assert_eq!(floats(&got["embedding"]), embedding_vector(0, 256));
        assert_eq!(got["inputTextTokenCount"], 10);
        for bad in [
            json!({"texts": ["a"]}),
            json!({"inputText": ""}),
            json!({"inputText": "a", "dimensions": 8}),
        ] {
            let e = bedrock_invoke(&bad, &answer("amazon.titan-embed-text-v2:0")).unwrap_err();
            assert!(e.message.starts_with("Malformed input request"), "{bad}");
        }
    }

    #[tokio::test]
    async fn cohere_on_bedrock_answers_floats_and_a_token_header() {
        let req = json!({"texts": ["a", "b", "c"], "input_type": "search_document"});
        let res = bedrock_invoke(&req, &answer("cohere.embed-english-v3"))
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(res.headers()["x-amzn-bedrock-input-token-count"], "10");
        let got = body_of(res).await;
        assert_eq!(got["response_type"], "embeddings_floats");
        assert_eq!(floats(&got["embeddings"][2]), embedding_vector(2, 8));
        assert!(
            bedrock_invoke(&json!({"texts": ["a"]}), &answer("cohere.embed-english-v3")).is_err()
        );
        assert!(bedrock_invoke(&json!({"inputText": "a"}), &answer("anthropic.claude")).is_err());
    }

    #[test]
    fn invoke_paths_name_their_model() {
        assert_eq!(
            invoke_model("/model/amazon.titan-embed-text-v2%3A0/invoke").as_deref(),
            Some("amazon.titan-embed-text-v2:0")
        );
        assert_eq!(invoke_model("/model/x/converse"), None);
    }
}
