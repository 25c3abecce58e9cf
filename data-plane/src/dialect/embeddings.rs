//! Embeddings for `/compat/embeddings` (`notes/translation.md` §3, §5.5): OpenAI's embeddings request, parsed once,
//! becomes each provider's native call, and the native answer comes back as OpenAI's list. Pure, like the chat
//! codecs: no I/O; the relay (`proxy/translate.rs`) reads the whole answer and calls [`EmbeddingCodec::decode`].
//!
//! | provider | call | one request carries |
//! |---|---|---|
//! | `google-ai-studio` | `POST /v1beta/models/{m}:batchEmbedContents` `{requests:[{model, content, taskType?, outputDimensionality?}]}` | every input |
//! | `google-vertex-ai` | `POST /v1/projects/{p}/locations/{r}/publishers/google/models/{m}:predict` `{instances:[{content, task_type?}], parameters?}` | every input |
//! | `cohere` | `POST /v2/embed` `{model, texts, input_type, embedding_types:["float"], output_dimension?}` | every input |
//! | `aws-bedrock` | `POST /model/{id}/invoke`: Titan `{inputText, dimensions?}`; Cohere `{texts, input_type, output_dimension?}` | Titan: one input; Cohere: every input |
//! | `workers-ai` | `POST /ai/run/{@cf/…}` `{text:[…]}` → `{result:{shape, data}, success}` | every input |
//!
//! Choices, so the next reader need not rediscover them:
//! - Token-array input (`[1, 2, 3]`, `[[1, 2], [3]]`) is OpenAI's alone: a 400 for every provider here.
//! - Titan embeds one text per call. Several inputs are a 400 that says so, rather than a fan-out the one-step
//!   attempt loop (retries, usage, cache) was not built for.
//! - `input_type` (a Gatehouse extension, Cohere's vocabulary: `search_document`, `search_query`, `classification`,
//!   `clustering`) picks Cohere's `input_type` and Gemini's task type. Cohere requires one and gets
//!   `search_document` by default (OpenAI's embeddings make no query/document distinction, and documents are what
//!   most callers embed); Gemini gets none unless asked. Titan and Workers AI have no such setting: a 400.
//! - `dimensions` maps to each provider's field; Workers AI has none: a 400. Whether a model accepts the size is
//!   the provider's to say (its error is mapped).
//! - `user` is accepted and not sent: it is OpenAI's abuse-monitoring tag, and no provider here has a counterpart.
//! - Usage: the provider's input tokens when it reports them (Cohere `meta.billed_units`, Titan
//!   `inputTextTokenCount`, Vertex `statistics.token_count`); AI Studio, Cohere on Bedrock and Workers AI report
//!   none in the body, so the client reads `0` and the log records no tokens (no estimate is made).
//! - `encoding_format: "base64"` (the OpenAI Python SDK's default) is little-endian f32 bytes, as OpenAI sends.

mod bedrock;
mod cohere;
mod gemini;
pub(crate) mod workers_ai;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::chat::ProviderError;
use super::codec::{Encoded, Target, TranslateError};

pub use bedrock::BedrockEmbeddings;
pub use cohere::CohereEmbeddings;
pub use gemini::GeminiEmbeddings;
pub use workers_ai::WorkersAiEmbeddings;

/// The most inputs one request may carry (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;

/// `POST /embeddings`, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingRequest {
    /// What the client wrote (`{provider}/{model}` or a catalog name); codecs use [`Target::model`].
    pub model: String,
    pub input: Input,
    pub dimensions: Option<u32>,
    pub encoding_format: EncodingFormat,
    /// A Gatehouse extension (Cohere's names); see the module comment.
    pub input_type: Option<InputType>,
    /// Accepted, never sent (see the module comment).
    pub user: Option<String>,
}

/// What to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One string or a list of strings, in order.
    Texts(Vec<String>),
    /// Token ids: one list (`[1, 2]`) or several (`[[1, 2], [3]]`). OpenAI only.
    Tokens(Vec<Vec<u32>>),
}

/// How the answer's vectors are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EncodingFormat {
    /// JSON numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes.
    Base64,
}

/// What the texts are for (Cohere's `input_type` vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    SearchDocument,
    SearchQuery,
    Classification,
    Clustering,
}

impl InputType {
    /// Cohere's name.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::SearchDocument => "search_document",
            InputType::SearchQuery => "search_query",
            InputType::Classification => "classification",
            InputType::Clustering => "clustering",
        }
    }

    fn parse(s: &str) -> Option<InputType> {
        Some(match s {
            "search_document" => InputType::SearchDocument,
            "search_query" => InputType::SearchQuery,
            "classification" => InputType::Classification,
            "clustering" => InputType::Clustering,
            _ => return None,
        })
    }
}

impl EmbeddingRequest {
    /// The texts to embed; token arrays are refused for `provider` (only OpenAI reads them).
    pub fn texts(&self, provider: &str) -> Result<&[String], TranslateError> {
        match &self.input {
            Input::Texts(texts) => Ok(texts),
            Input::Tokens(_) => Err(TranslateError::unsupported(
                format!(
                    "{provider} embeds text only: send `input` as a string or an array of strings, not token ids"
                ),
                Some("input".to_owned()),
            )),
        }
    }

    /// A 400 for a parameter `provider` has no counterpart for.
    fn refuse(&self, provider: &str, param: &str) -> TranslateError {
        TranslateError::unsupported(
            format!("`{param}` is not supported for {provider} embeddings models"),
            Some(param.to_owned()),
        )
    }
}

fn invalid(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::invalid(message, Some(param.to_owned()))
}

/// Parses and checks an OpenAI embeddings body: what OpenAI itself refuses is refused here, before any provider
/// is called. `null` reads as absent.
pub fn parse(body: &[u8]) -> Result<EmbeddingRequest, TranslateError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        TranslateError::invalid(format!("the request body is not valid JSON: {e}"), None)
    })?;
    let Value::Object(mut fields) = value else {
        return Err(TranslateError::invalid(
            "the request body must be a JSON object",
            None,
        ));
    };
    let mut take = |name: &str| fields.remove(name).filter(|v| !v.is_null());
    let model = match take("model") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(invalid("`model` must be a string", "model")),
        None => return Err(invalid("you must provide a model parameter", "model")),
    };
    let input = parse_input(take("input"))?;
    let dimensions = match take("dimensions") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d >= 1)
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| {
                    invalid(
                        "`dimensions` must be an integer of at least 1",
                        "dimensions",
                    )
                })?,
        ),
    };
    let encoding_format = match take("encoding_format") {
        None => EncodingFormat::Float,
        Some(Value::String(f)) if f == "float" => EncodingFormat::Float,
        Some(Value::String(f)) if f == "base64" => EncodingFormat::Base64,
        Some(_) => {
            return Err(invalid(
                "`encoding_format` must be \"float\" or \"base64\"",
                "encoding_format",
            ));
        }
    };
    let input_type = match take("input_type") {
        None => None,
        Some(v) => Some(v.as_str().and_then(InputType::parse).ok_or_else(|| {
            invalid(
                "`input_type` must be one of \"search_document\", \"search_query\", \"classification\", \"clustering\"",
                "input_type",
            )
        })?),
    };
    let user = match take("user") {
        None => None,
        Some(Value::String(u)) => Some(u),
        Some(_) => return Err(invalid("`user` must be a string", "user")),
    };
    Ok(EmbeddingRequest {
        model,
        input,
        dimensions,
        encoding_format,
        input_type,
        user,
    })
}

fn parse_input(input: Option<Value>) -> Result<Input, TranslateError> {
    const SHAPE: &str = "`input` must be a string, an array of strings, an array of token ids or an array of token-id arrays";
    let token = |v: &Value| v.as_u64().and_then(|t| u32::try_from(t).ok());
    let tokens = |items: &[Value]| items.iter().map(token).collect::<Option<Vec<u32>>>();
    let input = match input {
        None => return Err(invalid("you must provide an input", "input")),
        Some(Value::String(s)) => Input::Texts(vec![s]),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(invalid("`input` must not be an empty array", "input"));
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Input::Texts(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            Input::Tokens(vec![tokens(&items).ok_or_else(|| invalid(SHAPE, "input"))?])
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_array) => Input::Tokens(
            items
                .iter()
                .map(|v| match v {
                    Value::Array(list) if !list.is_empty() => tokens(list),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(SHAPE, "input"))?,
        ),
        Some(_) => return Err(invalid(SHAPE, "input")),
    };
    let count = match &input {
        Input::Texts(texts) => {
            if let Some(i) = texts.iter().position(String::is_empty) {
                return Err(invalid(
                    format!("`input` must not hold an empty string (input[{i}])"),
                    "input",
                ));
            }
            texts.len()
        }
        Input::Tokens(lists) => lists.len(),
    };
    if count > MAX_INPUTS {
        return Err(invalid(
            format!("`input` holds {count} items; at most {MAX_INPUTS} are allowed"),
            "input",
        ));
    }
    Ok(input)
}

/// A provider's answer, decoded: one vector per input, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingResponse {
    pub embeddings: Vec<Vec<f32>>,
    /// Input tokens, when the provider reports them.
    pub prompt_tokens: Option<u64>,
    /// The model the provider says answered.
    pub model: Option<String>,
}

/// One provider family's embeddings call.
pub trait EmbeddingCodec: Send + Sync {
    /// The parsed request → the provider's path, headers and body.
    fn encode(
        &self,
        request: &EmbeddingRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError>;

    /// A whole successful (2xx) answer → the vectors and usage.
    fn decode(&self, body: &[u8]) -> Result<EmbeddingResponse, TranslateError>;

    /// A provider's error answer (status ≥ 400) → OpenAI's error vocabulary, the provider's message kept.
    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError;
}

/// The embeddings codec of a provider `/compat` translates to; `None` for a provider without an embeddings API
/// Gatehouse translates (Anthropic has none) and for the OpenAI-compatible ones (their bodies pass through).
pub fn codec(slug: &str) -> Option<&'static dyn EmbeddingCodec> {
    match slug {
        super::gemini::AI_STUDIO | super::gemini::VERTEX => Some(&GeminiEmbeddings),
        "cohere" => Some(&CohereEmbeddings),
        "aws-bedrock" => Some(&BedrockEmbeddings),
        "workers-ai" => Some(&WorkersAiEmbeddings),
        _ => None,
    }
}

/// OpenAI's answer: `{object:"list", data:[{object:"embedding", index, embedding}], model, usage}`. `model` is the
/// provider's model as the client named it (after the prefix) unless the provider says which answered.
pub fn encode_response(resp: &EmbeddingResponse, model: &str, format: EncodingFormat) -> Vec<u8> {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Item<'a>>,
        model: &'a str,
        usage: ListUsage,
    }
    #[derive(Serialize)]
    struct Item<'a> {
        object: &'static str,
        index: usize,
        embedding: Vector<'a>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Vector<'a> {
        Float(&'a [f32]),
        Base64(String),
    }
    #[derive(Serialize)]
    struct ListUsage {
        prompt_tokens: u64,
        total_tokens: u64,
    }
    let data = resp
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, v)| Item {
            object: "embedding",
            index,
            embedding: match format {
                EncodingFormat::Float => Vector::Float(v),
                EncodingFormat::Base64 => Vector::Base64(base64_f32(v)),
            },
        })
        .collect();
    let tokens = resp.prompt_tokens.unwrap_or(0);
    let list = List {
        object: "list",
        data,
        model: resp.model.as_deref().unwrap_or(model),
        usage: ListUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

/// Base64 (standard alphabet, padded) of the vector's little-endian f32 bytes.
pub fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The request body as JSON bytes.
fn to_body(value: &impl Serialize) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(value)
        .map_err(|e| TranslateError::invalid(format!("the request cannot be encoded: {e}"), None))
}

/// A provider's answer that does not read as expected.
fn bad_response(provider: &str, e: impl std::fmt::Display) -> TranslateError {
    TranslateError::BadResponse(format!("{provider} embeddings answer: {e}"))
}

/// A count a provider may write as `12` or `12.0`.
fn count(v: Option<f64>) -> Option<u64> {
    v.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64)
}

#[cfg(test)]
mod tests;
