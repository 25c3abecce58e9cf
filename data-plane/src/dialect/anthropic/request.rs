//! A [`ChatRequest`] → the body of `POST /v1/messages` (§4.2, §4.6, §8.1, §8.2): the parameters around the turns
//! (which `messages.rs` builds).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use super::JSON_MODE_TOOL;
use super::messages::{Turn, TurnRole, turns};
use crate::dialect::chat::{ChatRequest, ResponseFormat, ToolChoice as OpenAiToolChoice};
use crate::dialect::codec::{Target, TranslateError};

/// `max_tokens` is required by Anthropic; this is what the answer gets when the client sets no limit (thinking
/// comes on top).
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

/// The budget for `xhigh`: "the model's max" in §8.2; without a per-model catalogue, a budget every thinking model
/// accepts with room for the answer.
const XHIGH_THINKING_BUDGET: u32 = 16_384;

/// With thinking on, Anthropic accepts `top_p` only from this value up.
const THINKING_MIN_TOP_P: f64 = 0.95;

#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Debug, Serialize)]
struct ToolDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    input_schema: Cow<'a, Value>,
}

#[derive(Debug, Serialize)]
struct ToolChoice<'a> {
    /// `auto`, `any`, `none` or `tool`.
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

#[derive(Debug, Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

pub(super) fn encode(
    request: &ChatRequest,
    target: &Target<'_>,
) -> Result<Vec<u8>, TranslateError> {
    refuse_unsupported(request)?;
    let messages = turns(&request.messages)?;
    if messages.is_empty() {
        return Err(TranslateError::invalid(
            "messages must hold at least one non-empty user or assistant message",
            Some("messages".to_owned()),
        ));
    }

    let mut tools = tool_defs(request)?;
    let mut tool_choice = tool_choice(request)?;
    let mut system = request.system_text();

    let (max_tokens, thinking) = max_tokens_and_thinking(request, &messages);
    if thinking.is_some()
        && tool_choice
            .as_ref()
            .is_some_and(|c| matches!(c.kind, "any" | "tool"))
    {
        return Err(TranslateError::unsupported(
            "Anthropic cannot force a tool call (tool_choice \"required\" or a named tool) while thinking; \
             drop reasoning_effort or tool_choice",
            Some("tool_choice".to_owned()),
        ));
    }

    if let Some(format) = json_mode(request) {
        format.apply(
            thinking.is_some(),
            &mut tools,
            &mut tool_choice,
            &mut system,
        )?;
    }
    if tools.is_empty() {
        tool_choice = None;
    } else if request.parallel_tool_calls == Some(false) {
        let choice = tool_choice.get_or_insert(ToolChoice {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: false,
        });
        // Anthropic refuses the flag on `none`.
        choice.disable_parallel_tool_use = choice.kind != "none";
    }

    let (temperature, top_p) = if thinking.is_some() {
        // Thinking takes temperature 1 only (unset), and top_p from 0.95 up.
        (None, request.top_p.map(|p| p.max(THINKING_MIN_TOP_P)))
    } else {
        // OpenAI's range is 0..2, Anthropic's 0..1.
        (
            request.temperature.map(|t| t.clamp(0.0, 1.0)),
            request.top_p,
        )
    };

    let body = MessagesRequest {
        model: target.model,
        max_tokens,
        system,
        messages,
        stop_sequences: request
            .stop_sequences()
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect(),
        temperature,
        top_p,
        tools,
        tool_choice,
        thinking,
        metadata: request.user.as_deref().map(|user_id| Metadata { user_id }),
        stream: target.stream,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid(e.to_string(), None))
}

/// Parameters Anthropic has no equivalent for: refused when set to something other than their default, dropped
/// silently otherwise (SDKs send `n: 1`). Seed and penalties have no effect worth an error and are dropped.
fn refuse_unsupported(request: &ChatRequest) -> Result<(), TranslateError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::unsupported(
            "Anthropic returns one choice per request: n must be 1",
            Some("n".to_owned()),
        ));
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some_and(|n| n > 0) {
        return Err(TranslateError::unsupported(
            "Anthropic does not return log probabilities",
            Some("logprobs".to_owned()),
        ));
    }
    Ok(())
}

fn tool_defs(request: &ChatRequest) -> Result<Vec<ToolDef<'_>>, TranslateError> {
    let Some(tools) = &request.tools else {
        return Ok(Vec::new());
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("Anthropic takes function tools only, not {:?}", tool.kind),
                    Some(format!("tools[{i}].type")),
                ));
            }
            let f = &tool.function;
            Ok(ToolDef {
                name: &f.name,
                description: f.description.as_deref().map(Cow::Borrowed),
                input_schema: match &f.parameters {
                    Some(schema) => Cow::Borrowed(schema),
                    // Anthropic requires a schema; OpenAI's absent parameters mean "no arguments".
                    None => Cow::Owned(json!({"type": "object", "properties": {}})),
                },
            })
        })
        .collect()
}

fn tool_choice(request: &ChatRequest) -> Result<Option<ToolChoice<'_>>, TranslateError> {
    let choice = |kind, name| ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: false,
    };
    Ok(match &request.tool_choice {
        None => None,
        Some(OpenAiToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => choice("auto", None),
            "required" => choice("any", None),
            "none" => choice("none", None),
            other => {
                return Err(TranslateError::invalid(
                    format!(
                        "tool_choice must be none, auto, required or a named function, not {other:?}"
                    ),
                    Some("tool_choice".to_owned()),
                ));
            }
        }),
        Some(OpenAiToolChoice::Named(named)) => {
            Some(choice("tool", Some(named.function.name.as_str())))
        }
    })
}

/// `max_tokens` and the thinking block (§8.2). OpenAI's limit counts reasoning too, so a client limit caps both:
/// a budget that does not fit shrinks to half the limit, and below Anthropic's minimum budget thinking is left off.
/// Without a limit the answer gets [`DEFAULT_MAX_TOKENS`] on top of the budget.
fn max_tokens_and_thinking(request: &ChatRequest, turns: &[Turn<'_>]) -> (u32, Option<Thinking>) {
    let budget = request
        .reasoning_effort
        .as_deref()
        .and_then(thinking_budget)
        .filter(|_| thinking_allowed(turns));
    let limit = request.max_output_tokens();
    let (max_tokens, budget) = match (limit, budget) {
        (None, None) => (DEFAULT_MAX_TOKENS, None),
        (None, Some(b)) => (DEFAULT_MAX_TOKENS + b, Some(b)),
        (Some(m), None) => (m, None),
        (Some(m), Some(b)) if m > b => (m, Some(b)),
        (Some(m), Some(_)) if m > MIN_THINKING_BUDGET => {
            (m, Some((m / 2).max(MIN_THINKING_BUDGET)))
        }
        (Some(m), Some(_)) => (m, None),
    };
    let thinking = budget.map(|budget_tokens| Thinking {
        kind: "enabled",
        budget_tokens,
    });
    (max_tokens, thinking)
}

/// The thinking budget for an effort; `none` turns thinking off, unknown efforts count as `medium`.
fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "none" => None,
        "minimal" | "low" => Some(MIN_THINKING_BUDGET),
        "high" => Some(4096),
        "xhigh" => Some(XHIGH_THINKING_BUDGET),
        _ => Some(2048),
    }
}

/// Thinking cannot continue a conversation whose last assistant turn called tools (Anthropic wants that turn's
/// signed thinking blocks back, which OpenAI's shape does not carry) nor one that ends with an assistant prefill.
fn thinking_allowed(turns: &[Turn<'_>]) -> bool {
    if turns.last().is_some_and(|t| t.role == TurnRole::Assistant) {
        return false;
    }
    !turns
        .iter()
        .rev()
        .find(|t| t.role == TurnRole::Assistant)
        .is_some_and(|t| t.content.iter().any(|b| b.is_tool_use()))
}

/// `response_format` when it asks for JSON.
enum JsonMode<'a> {
    Object,
    Schema {
        name: &'a str,
        description: Option<&'a str>,
        schema: Option<&'a Value>,
    },
}

fn json_mode(request: &ChatRequest) -> Option<JsonMode<'_>> {
    match request.response_format.as_ref()? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(JsonMode::Object),
        ResponseFormat::JsonSchema { json_schema } => Some(JsonMode::Schema {
            name: &json_schema.name,
            description: json_schema.description.as_deref(),
            schema: json_schema.schema.as_ref(),
        }),
    }
}

impl<'a> JsonMode<'a> {
    /// Asks for JSON: through the forced tool, or (thinking forbids forcing a tool, §4.6) in the system prompt.
    fn apply(
        &self,
        thinking: bool,
        tools: &mut Vec<ToolDef<'a>>,
        tool_choice: &mut Option<ToolChoice<'a>>,
        system: &mut Option<String>,
    ) -> Result<(), TranslateError> {
        if tools.iter().any(|t| t.name == JSON_MODE_TOOL) {
            return Err(TranslateError::invalid(
                format!("the tool name {JSON_MODE_TOOL:?} is reserved for response_format"),
                Some("tools".to_owned()),
            ));
        }
        if thinking {
            let instruction = self.instruction();
            *system = Some(match system.take() {
                Some(s) => format!("{s}\n\n{instruction}"),
                None => instruction,
            });
            return Ok(());
        }
        // With tools of its own the client's choice stands (forcing ours would forbid theirs); alone, the answer
        // must come through the JSON tool.
        if tools.is_empty() {
            *tool_choice = Some(ToolChoice {
                kind: "tool",
                name: Some(JSON_MODE_TOOL),
                disable_parallel_tool_use: false,
            });
        }
        tools.push(self.tool());
        Ok(())
    }

    /// The forced tool whose input is the answer.
    fn tool(&self) -> ToolDef<'a> {
        let object = || Cow::Owned(json!({"type": "object"}));
        let (description, input_schema) = match self {
            JsonMode::Object => (
                "Give your answer as a JSON object, as this tool's input.".to_owned(),
                object(),
            ),
            JsonMode::Schema {
                name,
                description,
                schema,
            } => (
                format!(
                    "Give your answer as this tool's input: the JSON object {name}{}",
                    description.map_or(String::new(), |d| format!(" ({d})"))
                ),
                schema.map_or_else(object, Cow::Borrowed),
            ),
        };
        ToolDef {
            name: JSON_MODE_TOOL,
            description: Some(Cow::Owned(description)),
            input_schema,
        }
    }

    /// The instruction that replaces the tool when thinking forbids forcing it.
    fn instruction(&self) -> String {
        match self {
            JsonMode::Object => "Answer with a single JSON object and nothing else.".to_owned(),
            JsonMode::Schema { schema: None, .. } => {
                "Answer with a single JSON object and nothing else.".to_owned()
            }
            JsonMode::Schema {
                schema: Some(schema),
                ..
            } => format!(
                "Answer with a single JSON object and nothing else, valid against this JSON Schema: {schema}"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
