//! Gemini embeddings, as AI Studio and Vertex AI answer them:
//!
//! | route | request | answer |
//! |---|---|---|
//! | `POST …/models/{m}:embedContent` (AI Studio) | `{content:{parts:[{text}]}, taskType?, outputDimensionality?}` | `{embedding:{values}}` |
//! | `POST …/models/{m}:batchEmbedContents` (AI Studio) | `{requests:[{model:"models/{m}", content, taskType?, outputDimensionality?}]}` | `{embeddings:[{values}]}` |
//! | `POST …/publishers/google/models/{m}:predict` (Vertex AI) | `{instances:[{content, task_type?}], parameters:{outputDimensionality?}}` | `{predictions:[{embeddings:{values, statistics:{token_count, truncated}}}], metadata:{billableCharacterCount}}` |
//!
//! AI Studio reports no tokens; Vertex reports one per started 4 bytes of each instance's text. Vectors are
//! [`embedding_vector`] of the input's position.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::body::{MockBody, json as json_response};
use crate::text::{DEFAULT_EMBEDDING_DIMENSIONS, embedding_vector};

/// An embeddings method of the Gemini API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    EmbedContent,
    BatchEmbedContents,
    /// Vertex AI's `:predict`.
    Predict,
}

impl Method {
    pub(crate) fn of(name: &str) -> Option<Method> {
        Some(match name {
            "embedContent" => Method::EmbedContent,
            "batchEmbedContents" => Method::BatchEmbedContents,
            "predict" => Method::Predict,
            _ => return None,
        })
    }
}

/// Gemini's task types.
const TASK_TYPES: &[&str] = &[
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// The answer, or the message of Google's `INVALID_ARGUMENT`.
pub(super) fn embed(
    body: &Value,
    model: &str,
    method: Method,
) -> Result<Response<MockBody>, String> {
    let answer = match method {
        Method::EmbedContent => {
            let (_, dimensions) = content_request(body, "EmbedContentRequest")?;
            json!({"embedding": {"values": embedding_vector(0, dimensions)}})
        }
        Method::BatchEmbedContents => {
            let requests = body
                .get("requests")
                .and_then(Value::as_array)
                .filter(|r| !r.is_empty())
                .ok_or("* BatchEmbedContentsRequest.requests: requests is not specified\n")?;
            let want = format!("models/{model}");
            let mut embeddings = Vec::with_capacity(requests.len());
            for (i, request) in requests.iter().enumerate() {
                let what = format!("BatchEmbedContentsRequest.requests[{i}]");
                if request.get("model").and_then(Value::as_str) != Some(want.as_str()) {
                    return Err(format!(
                        "* {what}.model: the model of each request must be {want}, the model of the batch\n"
                    ));
                }
                let (_, dimensions) = content_request(request, &what)?;
                embeddings.push(json!({"values": embedding_vector(i, dimensions)}));
            }
            json!({"embeddings": embeddings})
        }
        Method::Predict => predict(body)?,
    };
    Ok(json_response(StatusCode::OK, &answer))
}

/// An `EmbedContentRequest`'s text and size.
fn content_request<'a>(request: &'a Value, what: &str) -> Result<(&'a str, usize), String> {
    let text = request
        .pointer("/content/parts/0/text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("* {what}.content: content is not specified\n"))?;
    task_type(request.get("taskType"), what)?;
    Ok((text, dimensions(request.get("outputDimensionality"), what)?))
}

fn task_type(value: Option<&Value>, what: &str) -> Result<(), String> {
    match value {
        None => Ok(()),
        Some(v) if v.as_str().is_some_and(|t| TASK_TYPES.contains(&t)) => Ok(()),
        Some(v) => Err(format!("Invalid value at '{what}.task_type' ({v})")),
    }
}

fn dimensions(value: Option<&Value>, what: &str) -> Result<usize, String> {
    match value {
        None => Ok(DEFAULT_EMBEDDING_DIMENSIONS),
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=3072).contains(d))
            .map(|d| d as usize)
            .ok_or_else(|| format!("* {what}.output_dimensionality: must be between 1 and 3072\n")),
    }
}

/// Vertex AI's `:predict` for text-embeddings models.
fn predict(body: &Value) -> Result<Value, String> {
    let instances = body
        .get("instances")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
        .ok_or("instances must be a non-empty list")?;
    let dimensions = dimensions(
        body.pointer("/parameters/outputDimensionality"),
        "parameters",
    )?;
    let mut characters = 0;
    let mut predictions = Vec::with_capacity(instances.len());
    for (i, instance) in instances.iter().enumerate() {
        let content = instance
            .get("content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("instances[{i}].content must be a non-empty string"))?;
        task_type(instance.get("task_type"), &format!("instances[{i}]"))?;
        characters += content.chars().count();
        predictions.push(json!({"embeddings": {
            "values": embedding_vector(i, dimensions),
            "statistics": {"token_count": content.len().div_ceil(4).max(1), "truncated": false},
        }}));
    }
    Ok(json!({"predictions": predictions, "metadata": {"billableCharacterCount": characters}}))
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    async fn answer(body: Value, method: Method) -> Value {
        let res = embed(&body, "gemini-embedding-001", method).unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_method_answers_in_its_shape() {
        let item = |text: &str| {
            json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]},
                "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 4})
        };
        let got = answer(
            json!({"requests": [item("a"), item("b")]}),
            Method::BatchEmbedContents,
        )
        .await;
        assert_eq!(
            crate::embeddings::floats(&got["embeddings"][1]["values"]),
            embedding_vector(1, 4)
        );
        let got = answer(item("a"), Method::EmbedContent).await;
        assert_eq!(
            crate::embeddings::floats(&got["embedding"]["values"]),
            embedding_vector(0, 4)
        );
        let got = answer(
            json!({"instances": [{"content": "hello world"}], "parameters": {"outputDimensionality": 3}}),
            Method::Predict,
        )
        .await;
        let prediction = &got["predictions"][0]["embeddings"];
        assert_eq!(
            crate::embeddings::floats(&prediction["values"]),
            embedding_vector(0, 3)
        );
        assert_eq!(prediction["statistics"]["token_count"], 3);
        assert_eq!(got["metadata"]["billableCharacterCount"], 11);
    }

    #[test]
    fn bad_requests_are_refused() {
        let bad = [
            (json!({"requests": []}), Method::BatchEmbedContents),
            (
                json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]}),
                Method::BatchEmbedContents,
            ),
            (
                json!({"content": {"parts": [{"text": "a"}]}, "taskType": "QUERY"}),
                Method::EmbedContent,
            ),
            (json!({"content": {"parts": []}}), Method::EmbedContent),
            (json!({"instances": [{"text": "a"}]}), Method::Predict),
        ];
        for (body, method) in bad {
            assert!(
                embed(&body, "gemini-embedding-001", method).is_err(),
                "{body}"
            );
        }
        assert_eq!(Method::of("predict"), Some(Method::Predict));
        assert_eq!(Method::of("generateContent"), None);
    }
}
