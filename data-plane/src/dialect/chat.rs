//! The provider-neutral model of a chat exchange, shaped like OpenAI's Chat Completions (the pivot of every
//! translation, `notes/translation.md` §8): the request as clients send it to `/compat/chat/completions`, the
//! decoded answer, and the events a stream decodes to. Codecs (`dialect/<family>.rs`) encode a [`ChatRequest`] into
//! their provider's body and decode the provider's answer into a [`ChatResponse`] or a sequence of
//! [`StreamEvent`]s; client encoders (`dialect/openai.rs`, `dialect/responses.rs`) write those back out.
//!
//! The request types are strict where a provider would be misled (roles, part types, tool shapes) and lenient
//! elsewhere: fields Gatehouse does not translate are ignored here (they still pass byte for byte to
//! OpenAI-compatible upstreams, which never go through this model).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /chat/completions`, as parsed for translation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatRequest {
    /// What the client wrote (`{provider}/{model}` or a catalog name); codecs use [`super::Target::model`].
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// `none|minimal|low|medium|high|xhigh`; any string is accepted and unknown ones map like `medium`.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

impl ChatRequest {
    /// `max_completion_tokens ?? max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The stop sequences as a list (OpenAI accepts one string or up to four).
    pub fn stop_sequences(&self) -> Vec<&str> {
        match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.as_str()],
            Some(Stop::Many(v)) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The system and developer messages' text, in order, joined by a blank line (every non-OpenAI provider
    /// takes the system prompt apart from the turns).
    pub fn system_text(&self) -> Option<String> {
        let parts: Vec<String> = self
            .messages
            .iter()
            .filter(|m| m.role.is_system())
            .filter_map(|m| m.content.as_ref().map(Content::text))
            .filter(|t| !t.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// System and developer messages are both the system prompt for every provider but OpenAI.
    pub fn is_system(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub role: Role,
    /// Absent or null for an assistant turn that only calls tools.
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Required on `tool` messages.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// Reasoning text of an earlier assistant turn (DeepSeek's and LiteLLM's extension), replayed where a provider
    /// needs it.
    #[serde(default)]
    pub reasoning_content: Option<String>,
}

/// A message's content: one string, or a list of parts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Content {
    /// The text parts concatenated (images and other parts left out).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text } | Part::Refusal { refusal: text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }

    /// The parts, a plain string being one text part.
    pub fn parts(&self) -> Vec<Part> {
        match self {
            Content::Text(t) => vec![Part::Text { text: t.clone() }],
            Content::Parts(p) => p.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    InputAudio {
        input_audio: InputAudio,
    },
    File {
        file: FilePart,
    },
    /// An assistant's earlier refusal, replayed as text.
    Refusal {
        refusal: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ImageUrl {
    /// `https://…` or `data:{mime};base64,…`.
    pub url: String,
    #[serde(default)]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// `(mime, base64 data)` when the URL is a base64 data URL.
    pub fn data_url(&self) -> Option<(&str, &str)> {
        parse_data_url(&self.url)
    }
}

/// `(mime, base64 data)` of `data:{mime};base64,{data}`.
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((mime, data))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputAudio {
    pub data: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FilePart {
    #[serde(default)]
    pub file_data: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

/// A tool call of an assistant message (request side, or decoded from a provider).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// A JSON document as a string (OpenAI's convention); see [`FunctionCall::arguments_json`].
    #[serde(default)]
    pub arguments: String,
}

impl FunctionCall {
    /// The arguments as a JSON value for providers that want an object: an empty string is `{}`, anything that
    /// is not JSON is an error (the caller answers 400).
    pub fn arguments_json(&self) -> Result<Value, String> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&self.arguments).map_err(|e| {
            format!(
                "tool call {:?}: arguments are not valid JSON: {e}",
                self.name
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema object; absent means "no parameters".
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode string or a named function.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required` (validated by [`super::validate`]).
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Why a provider stopped, in OpenAI's vocabulary (never a provider's raw reason: strictly typed SDKs reject
/// other values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Token counts in OpenAI's convention: `prompt_tokens` includes cached reads and cache writes,
/// `completion_tokens` includes reasoning (`notes/translation.md` §8.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Of `prompt_tokens`, written to the provider's prompt cache (Anthropic, Bedrock).
    pub cache_creation_tokens: u64,
    /// Of `completion_tokens`, spent thinking.
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Field-by-field merge for providers that report usage in pieces (Anthropic's `message_start` and
    /// `message_delta`): a later non-zero value wins, so nothing is counted twice.
    pub fn merge(&mut self, later: &Usage) {
        let pick = |a: &mut u64, b: u64| {
            if b != 0 {
                *a = b;
            }
        };
        pick(&mut self.prompt_tokens, later.prompt_tokens);
        pick(&mut self.completion_tokens, later.completion_tokens);
        pick(&mut self.cached_tokens, later.cached_tokens);
        pick(&mut self.cache_creation_tokens, later.cache_creation_tokens);
        pick(&mut self.reasoning_tokens, later.reasoning_tokens);
    }
}

/// A whole (non-streamed) answer, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    /// The provider's id for the answer, when it gives one.
    pub id: Option<String>,
    /// The model the provider says answered.
    pub model: Option<String>,
    /// The answer's text; `None` when it only calls tools.
    pub text: Option<String>,
    /// Thinking text, when the provider returns it.
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<Usage>,
}

impl ChatResponse {
    /// A stream's events folded into the answer they add up to (what the same request unstreamed says): text and
    /// reasoning joined, tool calls assembled in index order, usage merged. A provider error in the stream is the
    /// error. Codecs are tested with it (a whole answer and a stream must agree); a stream's log record can use it.
    pub fn from_events(events: &[StreamEvent]) -> Result<ChatResponse, ProviderError> {
        let mut r = ChatResponse::default();
        let mut usage: Option<Usage> = None;
        for e in events {
            match e {
                StreamEvent::Start { id, model } => (r.id, r.model) = (id.clone(), model.clone()),
                StreamEvent::TextDelta(t) => r.text.get_or_insert_default().push_str(t),
                StreamEvent::ReasoningDelta(t) => r.reasoning.get_or_insert_default().push_str(t),
                StreamEvent::ToolCallStart { id, name, .. } => r.tool_calls.push(ToolCall {
                    id: id.clone(),
                    kind: function_type(),
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: String::new(),
                    },
                }),
                StreamEvent::ToolCallArgs { index, fragment } => {
                    if let Some(call) = r.tool_calls.get_mut(*index as usize) {
                        call.function.arguments.push_str(fragment);
                    }
                }
                StreamEvent::Finish(f) => r.finish_reason = Some(*f),
                StreamEvent::Usage(u) => usage.get_or_insert_default().merge(u),
                StreamEvent::Error(e) => return Err(e.clone()),
            }
        }
        r.usage = usage;
        Ok(r)
    }
}

/// One step of a translated stream, in the order a client must see them (`notes/translation.md` §8.6).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The answer began; the provider's id and model when it sends them.
    Start {
        id: Option<String>,
        model: Option<String>,
    },
    TextDelta(String),
    ReasoningDelta(String),
    /// A tool call begins: `index` is its position among this answer's tool calls (0-based, in order), never a
    /// provider's content-block index.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of the arguments of the tool call at `index`.
    ToolCallArgs {
        index: u32,
        fragment: String,
    },
    Finish(FinishReason),
    /// Usage so far; encoders merge them ([`Usage::merge`]) and report once at the end.
    Usage(Usage),
    /// The provider failed after the stream started.
    Error(ProviderError),
}

/// A provider's error, mapped to OpenAI's error vocabulary (`notes/translation.md` §8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// The status the client gets (the provider's, mapped: 529 and "overloaded" → 503, unparseable 5xx → 502).
    pub status: u16,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error`, `server_error`…
    pub kind: String,
    /// OpenAI's `code`, e.g. `context_length_exceeded`, or the provider's own error type.
    pub code: Option<String>,
    pub param: Option<String>,
}

impl ProviderError {
    /// OpenAI's `type` for a status, when the provider's body says nothing better.
    pub fn kind_for_status(status: u16) -> &'static str {
        match status {
            400 | 413 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ => "server_error",
        }
    }

    /// An error from a status and a message, typed by the status.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: Self::kind_for_status(status).to_owned(),
            code: None,
            param: None,
        }
    }

    /// The status a client gets for a provider's status: overload and unavailability are 503, anything below
    /// 400 that is still an error is 502.
    pub fn map_status(status: u16) -> u16 {
        match status {
            529 => 503,
            400..=599 => status,
            _ => 502,
        }
    }

    /// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}
