//! The Responses API's output shapes (`notes/translation.md` §2.2), as typed structs that borrow what they write:
//! the response object and its output items, shared by the whole answer and the stream's events.
//!
//! Field names follow the official SDK's models (`openai/types/responses/response*.py`): what they require is
//! always written (`parallel_tool_calls`, `tool_choice`, `tools`, `output`, usage details), the rest as OpenAI
//! writes it.

use serde::Serialize;
use serde_json::Value;

use super::RequestEcho;
use crate::dialect::chat::{FinishReason, ProviderError, Usage};

/// One output item as the encoders keep it: the text grows while it streams.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Item {
    pub id: String,
    pub kind: ItemKind,
    /// The message's text, the reasoning summary, or the call's arguments.
    pub text: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ItemKind {
    Reasoning,
    Message,
    FunctionCall { call_id: String, name: String },
}

impl Item {
    /// An item id: OpenAI's prefix for the kind, the response's own part, and the item's position.
    pub fn new(kind: ItemKind, response_id: &str, output_index: usize) -> Item {
        let prefix = match kind {
            ItemKind::Reasoning => "rs",
            ItemKind::Message => "msg",
            ItemKind::FunctionCall { .. } => "fc",
        };
        let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
        Item {
            id: format!("{prefix}_{base}_{output_index}"),
            kind,
            text: String::new(),
            status: "in_progress",
        }
    }

    /// The item as `response.output_item.added` announces it: no content yet.
    pub fn added(&self) -> OutputItem<'_> {
        self.shape(false)
    }

    /// The item with everything it holds.
    pub fn whole(&self) -> OutputItem<'_> {
        self.shape(true)
    }

    fn shape(&self, whole: bool) -> OutputItem<'_> {
        let text = if whole { self.text.as_str() } else { "" };
        match &self.kind {
            ItemKind::Reasoning => OutputItem::Reasoning {
                id: &self.id,
                summary: if whole {
                    vec![SummaryText::new(text)]
                } else {
                    Vec::new()
                },
            },
            ItemKind::Message => OutputItem::Message {
                id: &self.id,
                status: self.status,
                role: "assistant",
                content: if whole {
                    vec![OutputText::new(text)]
                } else {
                    Vec::new()
                },
            },
            ItemKind::FunctionCall { call_id, name } => OutputItem::FunctionCall {
                id: &self.id,
                call_id,
                name,
                arguments: text,
                status: self.status,
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutputItem<'a> {
    Reasoning {
        id: &'a str,
        summary: Vec<SummaryText<'a>>,
    },
    Message {
        id: &'a str,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText<'a>>,
    },
    FunctionCall {
        id: &'a str,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
        status: &'static str,
    },
}

/// `{type:"summary_text", text}`: a reasoning item's summary part.
#[derive(Debug, Serialize)]
pub(super) struct SummaryText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> SummaryText<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            kind: "summary_text",
            text,
        }
    }
}

/// `{type:"output_text", text, annotations:[], logprobs:[]}`: a message's content part.
#[derive(Debug, Serialize)]
pub(super) struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
    logprobs: [(); 0],
}

impl<'a> OutputText<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            kind: "output_text",
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

/// The response object (`object: "response"`).
#[derive(Debug, Serialize)]
pub(super) struct ResponseObject<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created_at: u64,
    pub status: &'static str,
    pub background: bool,
    pub error: Option<ErrorOut<'a>>,
    pub incomplete_details: Option<Incomplete>,
    pub instructions: Option<&'a str>,
    pub max_output_tokens: Option<u32>,
    pub model: &'a str,
    pub output: Vec<OutputItem<'a>>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<&'a str>,
    pub reasoning: &'a Value,
    /// Always `false`: Gatehouse keeps no responses.
    pub store: bool,
    pub temperature: Option<f64>,
    pub text: &'a Value,
    pub tool_choice: &'a Value,
    pub tools: &'a [Value],
    pub top_p: Option<f64>,
    pub truncation: &'static str,
    pub usage: Option<UsageOut>,
    pub user: Option<&'a str>,
    pub metadata: &'a Value,
}

impl<'a> ResponseObject<'a> {
    /// A response with the echoed request fields filled in; the caller sets the outcome.
    pub fn new(id: &'a str, model: &'a str, created_at: u64, echo: &'a RequestEcho) -> Self {
        Self {
            id,
            object: "response",
            created_at,
            status: "in_progress",
            background: false,
            error: None,
            incomplete_details: None,
            instructions: echo.instructions.as_deref(),
            max_output_tokens: echo.max_output_tokens,
            model,
            output: Vec::new(),
            parallel_tool_calls: echo.parallel_tool_calls,
            previous_response_id: None,
            reasoning: &echo.reasoning,
            store: false,
            temperature: echo.temperature,
            text: &echo.text,
            tool_choice: &echo.tool_choice,
            tools: &echo.tools,
            top_p: echo.top_p,
            truncation: "disabled",
            usage: None,
            user: echo.user.as_deref(),
            metadata: &echo.metadata,
        }
    }

    /// Sets `status` and `incomplete_details` from how the answer finished (§8.3): cut at the token limit or by a
    /// filter is `incomplete`, anything else `completed`.
    pub fn finished(&mut self, finish: Option<FinishReason>) {
        let (status, details) = outcome(finish);
        self.status = status;
        self.incomplete_details = details;
    }
}

/// The response status and incomplete details for a finish reason.
pub(super) fn outcome(finish: Option<FinishReason>) -> (&'static str, Option<Incomplete>) {
    match finish {
        Some(FinishReason::Length) => (
            "incomplete",
            Some(Incomplete {
                reason: "max_output_tokens",
            }),
        ),
        Some(FinishReason::ContentFilter) => (
            "incomplete",
            Some(Incomplete {
                reason: "content_filter",
            }),
        ),
        _ => ("completed", None),
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Incomplete {
    pub reason: &'static str,
}

/// `error` of a failed response: `code` is one of OpenAI's values (strict clients know only those).
#[derive(Debug, Serialize)]
pub(super) struct ErrorOut<'a> {
    pub code: &'static str,
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
}

impl<'a> ErrorOut<'a> {
    pub fn new(e: &'a ProviderError) -> Self {
        Self {
            code: if e.status == 429 {
                "rate_limit_exceeded"
            } else {
                "server_error"
            },
            message: &e.message,
            kind: &e.kind,
            param: e.param.as_deref(),
        }
    }
}

/// `usage` in the Responses shape, inclusive like Chat's (§8.4).
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct UsageOut {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct InputDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputDetails {
                cached_tokens: u.cached_tokens,
                cache_write_tokens: u.cache_creation_tokens,
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
            total_tokens: u.total(),
        }
    }
}
