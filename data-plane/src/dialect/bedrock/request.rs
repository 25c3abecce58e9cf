//! OpenAI Chat → Bedrock Converse request (`notes/translation.md` §6.2, §6.6, §8.1, §8.2).
//!
//! Bedrock is strict where OpenAI is lenient: turns must alternate (consecutive same-role turns are merged), blank
//! text blocks are refused ("The text field in the ContentBlock object is blank"), and a history holding
//! `toolUse`/`toolResult` blocks needs a `toolConfig` even when the request offers no tools. Each rule below is one
//! of those: `turns.rs` builds the messages, `tools.rs` the `toolConfig`; this module the rest of the body and the
//! wire types they share.

mod tools;
mod turns;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Family;
use crate::dialect::chat::{ChatRequest, Content};
use crate::dialect::codec::TranslateError;

#[cfg(test)]
pub(super) use turns::{document_name, tool_use_id};

/// Thinking budgets by `reasoning_effort` (§8.2; Anthropic's minimum is 1024).
const BUDGET_LOW: u32 = 1024;
const BUDGET_MEDIUM: u32 = 2048;
const BUDGET_HIGH: u32 = 4096;
/// `xhigh`: kept within every Claude model's output limit once the answer's room is added.
const BUDGET_XHIGH: u32 = 16_384;
/// Room left for the visible answer when the client gave no max tokens and thinking is on (`maxTokens` must exceed
/// the budget).
const ANSWER_ROOM: u32 = 4096;
/// Anthropic accepts `top_p` ≥ 0.95 with thinking on.
const THINKING_MIN_TOP_P: f64 = 0.95;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseRequest<'a> {
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_request_fields: Option<AdditionalFields>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    request_metadata: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct SystemBlock<'a> {
    text: Cow<'a, str>,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

/// A content block: exactly one key (`{"text": …}`, `{"image": {…}}`, `{"toolUse": {…}}`, …).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(Cow<'a, str>),
    Image(ImageBlock<'a>),
    Document(DocumentBlock<'a>),
    ToolUse(ToolUseBlock<'a>),
    ToolResult(ToolResultBlock<'a>),
}

impl Block<'_> {
    fn is_tool(&self) -> bool {
        matches!(self, Block::ToolUse(_) | Block::ToolResult(_))
    }
}

#[derive(Serialize)]
struct ImageBlock<'a> {
    format: &'static str,
    source: Source<'a>,
}

#[derive(Serialize)]
struct DocumentBlock<'a> {
    format: &'static str,
    name: String,
    source: Source<'a>,
}

/// Inline bytes: base64 in Converse's JSON form, so a data URL's data passes through untouched.
#[derive(Serialize)]
struct Source<'a> {
    bytes: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseBlock<'a> {
    tool_use_id: Cow<'a, str>,
    name: &'a str,
    input: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResultBlock<'a> {
    tool_use_id: Cow<'a, str>,
    content: Vec<ToolResultContent<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolResultContent<'a> {
    Text(Cow<'a, str>),
    Json(Value),
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceWire<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolEntry<'a> {
    tool_spec: ToolSpec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: InputSchema<'a>,
}

#[derive(Serialize)]
struct InputSchema<'a> {
    json: Cow<'a, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolChoiceWire<'a> {
    Auto(Empty),
    Any(Empty),
    Tool { name: &'a str },
}

/// Serialises as `{}`.
#[derive(Serialize)]
struct Empty {}

/// Model-native extras; for Claude, its `thinking` in Anthropic's own (snake_case) shape.
#[derive(Serialize)]
struct AdditionalFields {
    thinking: Thinking,
}

#[derive(Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

/// Builds the Converse body for `model`.
pub(super) fn converse_request<'a>(
    request: &'a ChatRequest,
    model: &str,
) -> Result<ConverseRequest<'a>, TranslateError> {
    refuse_unsupported(request)?;
    let family = Family::of(model);
    // `(maxTokens, budget_tokens)` when thinking is on: settled together, each bounds the other.
    let thinking = thinking_budget(request, family)?
        .map(|budget| max_with_thinking(request.max_output_tokens(), budget));

    let mut system: Vec<SystemBlock<'a>> = request
        .messages
        .iter()
        .filter(|m| m.role.is_system())
        .filter_map(|m| m.content.as_ref())
        .filter_map(|c| non_blank(content_text(c)))
        .map(|text| SystemBlock { text })
        .collect();

    let (mut tool_config, json_instruction) =
        tools::tool_config(request, family, thinking.is_some())?;
    if let Some(text) = json_instruction {
        system.push(SystemBlock {
            text: Cow::Borrowed(text),
        });
    }

    let messages = turns::turns(request)?;
    if tool_config.is_none() {
        tool_config = tools::history_tool_config(request, &messages);
    }

    Ok(ConverseRequest {
        messages,
        system,
        inference_config: inference_config(request, model, thinking.map(|(max, _)| max)),
        tool_config,
        additional_model_request_fields: thinking.map(|(_, budget_tokens)| AdditionalFields {
            thinking: Thinking {
                kind: "enabled",
                budget_tokens,
            },
        }),
        request_metadata: request_metadata(request),
    })
}

/// What Converse has no way to do: a 400 rather than an answer that silently ignores the ask. Default values
/// (`n: 1`, `logprobs: false`) are what SDKs send and pass.
fn refuse_unsupported(request: &ChatRequest) -> Result<(), TranslateError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::unsupported(
            "AWS Bedrock returns one choice per request: `n` greater than 1 is not supported",
            Some("n".to_owned()),
        ));
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some_and(|n| n > 0) {
        return Err(TranslateError::unsupported(
            "AWS Bedrock Converse does not return log probabilities",
            Some("logprobs".to_owned()),
        ));
    }
    Ok(())
}

/// The thinking budget `reasoning_effort` asks for (§8.2): Claude models only; `none` is no thinking anywhere.
fn thinking_budget(request: &ChatRequest, family: Family) -> Result<Option<u32>, TranslateError> {
    let Some(effort) = request.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    if effort == "none" {
        return Ok(None);
    }
    if family != Family::Anthropic {
        return Err(TranslateError::unsupported(
            "reasoning_effort is translated for Anthropic Claude models on AWS Bedrock only",
            Some("reasoning_effort".to_owned()),
        ));
    }
    Ok(Some(match effort {
        "minimal" | "low" => BUDGET_LOW,
        "high" => BUDGET_HIGH,
        "xhigh" => BUDGET_XHIGH,
        // `medium`, and effort names this gateway does not know yet.
        _ => BUDGET_MEDIUM,
    }))
}

fn inference_config<'a>(
    request: &'a ChatRequest,
    model: &str,
    thinking_max_tokens: Option<u32>,
) -> InferenceConfig<'a> {
    let stop_sequences = request
        .stop_sequences()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let Some(max_tokens) = thinking_max_tokens else {
        return InferenceConfig {
            max_tokens: request.max_output_tokens(),
            temperature: request.temperature.map(|t| clamp_temperature(model, t)),
            top_p: request.top_p,
            stop_sequences,
        };
    };
    InferenceConfig {
        max_tokens: Some(max_tokens),
        // Claude with thinking accepts only the default temperature, and top_p from 0.95 up.
        temperature: None,
        top_p: request.top_p.map(|p| p.max(THINKING_MIN_TOP_P)),
        stop_sequences,
    }
}

/// `(maxTokens, budget_tokens)` with thinking on. OpenAI's max includes reasoning; Anthropic wants
/// `max_tokens > budget_tokens`. A small client max shrinks the budget (never under the minimum) and, if still
/// needed, is raised just enough to stay valid.
pub(super) fn max_with_thinking(client_max: Option<u32>, budget: u32) -> (u32, u32) {
    match client_max {
        None => (budget + ANSWER_ROOM, budget),
        Some(max) if max > budget => (max, budget),
        Some(max) => {
            let budget = (max / 2).max(BUDGET_LOW);
            (max.max(budget + 1), budget)
        }
    }
}

/// Bedrock's chat families take temperature in 0–1 where OpenAI allows 0–2.
fn clamp_temperature(model: &str, t: f64) -> f64 {
    let zero_to_one = ["anthropic.", "amazon.", "meta.", "mistral.", "cohere."]
        .iter()
        .any(|p| model.contains(p));
    if zero_to_one { t.clamp(0.0, 1.0) } else { t }
}

/// `user` → `{"user": …}`, and the string values of `metadata`.
fn request_metadata(request: &ChatRequest) -> BTreeMap<&str, &str> {
    let mut out: BTreeMap<&str, &str> = request
        .metadata
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
        .collect();
    if let Some(user) = request.user.as_deref().filter(|u| !u.is_empty()) {
        out.insert("user", user);
    }
    out
}

/// A message's text, borrowed when it is one string.
fn content_text(content: &Content) -> Cow<'_, str> {
    match content {
        Content::Text(text) => Cow::Borrowed(text),
        Content::Parts(_) => Cow::Owned(content.text()),
    }
}

/// `None` for text Bedrock would refuse as blank.
fn non_blank(text: Cow<'_, str>) -> Option<Cow<'_, str>> {
    (!text.trim().is_empty()).then_some(text)
}
