//! OpenAI's Responses API as a client-facing format (`/compat/responses`, a Gatehouse extension), over the same
//! unified model as Chat Completions, so every translated provider serves it (`notes/translation.md` §2).
//!
//! - [`parse_request`] / [`parse`]: a `POST /responses` body → a [`ChatRequest`](super::chat::ChatRequest) (and
//!   the request fields the answer echoes, [`RequestEcho`]).
//! - [`encode_response`]: a decoded answer → the `response` object.
//! - [`ResponsesStreamEncoder`]: a decoded stream → Responses events in OpenAI's order, numbered by
//!   `sequence_number`, ending with `response.completed` (or `.incomplete` / `.failed`).
//!
//! Gatehouse keeps no responses (stateless apart from caches): `store` absent or `false` is accepted and every
//! answer says `store: false`; `store: true`, `previous_response_id`, `conversation` and `item_reference` are a
//! 400 that says to send the full input.

mod request;
mod response;
mod stream;
mod wire;

use serde_json::{Value, json};

pub use request::{ParsedRequest, parse, parse_request};
pub use response::encode_response;
pub use stream::ResponsesStreamEncoder;

/// The request fields a `response` object repeats back (SDKs read `tools`, `tool_choice`, `parallel_tool_calls`
/// and `text` from it). [`Default`] is what OpenAI answers for a request that set none of them.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEcho {
    pub instructions: Option<String>,
    /// The tools as the client sent them (flat function tools).
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    /// `{format, verbosity}` as sent.
    pub text: Value,
    /// `{effort, summary}`.
    pub reasoning: Value,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u32>,
    pub metadata: Value,
    pub user: Option<String>,
}

impl Default for RequestEcho {
    fn default() -> Self {
        Self {
            instructions: None,
            tools: Vec::new(),
            tool_choice: json!("auto"),
            parallel_tool_calls: true,
            text: json!({"format": {"type": "text"}}),
            reasoning: json!({"effort": null, "summary": null}),
            temperature: None,
            top_p: None,
            max_output_tokens: None,
            metadata: json!({}),
            user: None,
        }
    }
}

/// `resp_…`: the provider's answer id when it gave one, else the gateway's `fallback` (its request id).
fn response_id(provider_id: Option<&str>, fallback: &str) -> String {
    let id = provider_id.filter(|id| !id.is_empty()).unwrap_or(fallback);
    if id.starts_with("resp_") {
        id.to_owned()
    } else {
        format!("resp_{id}")
    }
}
