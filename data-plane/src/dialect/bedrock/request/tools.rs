//! The request's tools, tool choice and JSON mode as Converse's `toolConfig` (§6.2, §6.6, §8.1).

use std::borrow::Cow;

use serde_json::json;

use super::{Block, Empty, InputSchema, ToolChoiceWire, ToolConfig, ToolEntry, ToolSpec, Turn};
use crate::dialect::bedrock::{Family, JSON_TOOL_NAME};
use crate::dialect::chat::{ChatRequest, ResponseFormat, ToolChoice};
use crate::dialect::codec::TranslateError;

/// The request's tools and tool choice, with the JSON-mode tool (§6.6) when `response_format` asks for JSON.
/// Also returns a system instruction for when the JSON tool cannot be forced.
pub(super) fn tool_config<'a>(
    request: &'a ChatRequest,
    family: Family,
    thinking: bool,
) -> Result<(Option<ToolConfig<'a>>, Option<&'static str>), TranslateError> {
    let mut tools = Vec::new();
    for (i, tool) in request.tools.iter().flatten().enumerate() {
        if tool.kind != "function" {
            return Err(TranslateError::unsupported(
                format!("AWS Bedrock takes function tools only, not {:?}", tool.kind),
                Some(format!("tools[{i}].type")),
            ));
        }
        if tool.function.name == JSON_TOOL_NAME {
            return Err(TranslateError::invalid(
                format!(
                    "the tool name {JSON_TOOL_NAME:?} is reserved by the gateway for JSON mode"
                ),
                Some(format!("tools[{i}].function.name")),
            ));
        }
        tools.push(ToolEntry {
            tool_spec: ToolSpec {
                name: Cow::Borrowed(&tool.function.name),
                description: tool
                    .function
                    .description
                    .as_deref()
                    .filter(|d| !d.is_empty()),
                input_schema: InputSchema {
                    json: match &tool.function.parameters {
                        Some(schema) => Cow::Borrowed(schema),
                        None => Cow::Owned(json!({"type": "object", "properties": {}})),
                    },
                },
            },
        });
    }
    let client_tools = !tools.is_empty();
    let mut tool_choice = client_tool_choice(request, family, thinking, client_tools)?;

    let mut instruction = None;
    if let Some(json_tool) = json_mode_tool(request.response_format.as_ref()) {
        tools.push(json_tool);
        if family.takes_tool_choice() && !thinking && !client_tools {
            tool_choice = Some(ToolChoiceWire::Tool {
                name: JSON_TOOL_NAME,
            });
        } else {
            // Forcing a tool is refused with thinking, unknown to some families, and would forbid the client's
            // own tools: ask for it in words instead.
            instruction = Some(
                "When you give your final answer, give it by calling the json_tool_call tool with the answer as \
                 its input, and write no other text.",
            );
        }
    }
    if tools.is_empty() {
        return Ok((None, None));
    }
    Ok((Some(ToolConfig { tools, tool_choice }), instruction))
}

/// `tool_choice` (§8.1): `auto` → `{auto:{}}`, `required` → `{any:{}}`, named → `{tool:{name}}`, `none` → no
/// choice but the tools kept (dropping them would break a history that holds tool blocks).
fn client_tool_choice<'a>(
    request: &'a ChatRequest,
    family: Family,
    thinking: bool,
    has_tools: bool,
) -> Result<Option<ToolChoiceWire<'a>>, TranslateError> {
    let param = || Some("tool_choice".to_owned());
    let forced = match &request.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "none" => return Ok(None),
            "auto" => {
                return Ok((has_tools && family.takes_tool_choice())
                    .then_some(ToolChoiceWire::Auto(Empty {})));
            }
            "required" => ToolChoiceWire::Any(Empty {}),
            other => {
                return Err(TranslateError::invalid(
                    format!(
                        "tool_choice must be none, auto, required or a named function, not {other:?}"
                    ),
                    param(),
                ));
            }
        },
        Some(ToolChoice::Named(named)) => {
            let name = named.function.name.as_str();
            let known = request
                .tools
                .iter()
                .flatten()
                .any(|t| t.function.name == name);
            if !known {
                return Err(TranslateError::invalid(
                    format!("tool_choice names the function {name:?}, which is not in tools"),
                    param(),
                ));
            }
            ToolChoiceWire::Tool { name }
        }
    };
    if !has_tools {
        return Err(TranslateError::invalid(
            "tool_choice requires a tool call but the request has no tools",
            param(),
        ));
    }
    if !family.takes_tool_choice() {
        return Err(TranslateError::unsupported(
            "this AWS Bedrock model family cannot be made to call a tool (tool_choice required or named); \
             Anthropic, Mistral and Amazon Nova models can",
            param(),
        ));
    }
    if thinking {
        return Err(TranslateError::unsupported(
            "a required or named tool_choice cannot be combined with reasoning_effort on Claude models",
            param(),
        ));
    }
    Ok(Some(forced))
}

/// The forced tool that carries a JSON answer (`json_object`: any object; `json_schema`: its schema).
fn json_mode_tool(format: Option<&ResponseFormat>) -> Option<ToolEntry<'_>> {
    let (description, schema) = match format? {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => (None, None),
        ResponseFormat::JsonSchema { json_schema } => (
            json_schema.description.as_deref(),
            json_schema.schema.as_ref(),
        ),
    };
    Some(ToolEntry {
        tool_spec: ToolSpec {
            name: Cow::Borrowed(JSON_TOOL_NAME),
            description: Some(
                description.unwrap_or("Respond with a JSON document as this tool's input."),
            ),
            input_schema: InputSchema {
                json: match schema {
                    Some(s) => Cow::Borrowed(s),
                    None => Cow::Owned(json!({"type": "object"})),
                },
            },
        },
    })
}

/// A `toolConfig` for a history with tool blocks when the request offers no tools: Bedrock refuses such a
/// history otherwise (§9). The tools named in the history are declared with an open schema.
pub(super) fn history_tool_config<'a>(
    request: &'a ChatRequest,
    turns: &[Turn<'_>],
) -> Option<ToolConfig<'a>> {
    let has_tool_blocks = turns.iter().flat_map(|t| &t.content).any(Block::is_tool);
    if !has_tool_blocks {
        return None;
    }
    let mut names: Vec<&str> = request
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| c.function.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        names.push("unavailable_tool");
    }
    let tools = names
        .into_iter()
        .map(|name| ToolEntry {
            tool_spec: ToolSpec {
                name: Cow::Borrowed(name),
                description: Some("A tool used earlier in this conversation."),
                input_schema: InputSchema {
                    json: Cow::Owned(json!({"type": "object"})),
                },
            },
        })
        .collect();
    Some(ToolConfig {
        tools,
        tool_choice: None,
    })
}
