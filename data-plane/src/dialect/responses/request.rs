//! A Responses API request (`POST /responses`, `notes/translation.md` §2.1) → the unified [`ChatRequest`], by the
//! table of §2.4, plus what the answer must echo back ([`RequestEcho`]).
//!
//! Each field is read on its own, so a wrong type is a 400 naming that field (`param`), as OpenAI answers.
//! Gatehouse keeps no responses: `store` absent or `false` is accepted and answered as `store: false`;
//! `store: true`, `previous_response_id`, `conversation`, `item_reference` and stored `prompt`s need a response
//! store and are refused with a 400 that says so (§2.1: "send the full input").

mod input;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::RequestEcho;
use crate::dialect::chat::{
    ChatRequest, Content, FunctionDef, JsonSchemaFormat, NamedFunction, NamedToolChoice,
    ResponseFormat, Role, StreamOptions, Tool, ToolChoice,
};
use crate::dialect::codec::TranslateError;
use input::{input_items, message};

/// A parsed Responses request: the unified request, and the request fields the answer echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRequest {
    pub request: ChatRequest,
    pub echo: RequestEcho,
}

/// The body of `POST /responses` as a unified request.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    parse(body).map(|p| p.request)
}

/// The body of `POST /responses` as a unified request and the fields its answer echoes.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, TranslateError> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Err(TranslateError::invalid(
            "the request body must be a JSON object",
            None,
        ));
    };
    refuse_stored_state(&map)?;
    let model: String = field(&mut map, "model")?.ok_or_else(|| missing("model"))?;
    let instructions: Option<String> = field(&mut map, "instructions")?;

    let mut messages = Vec::new();
    if let Some(text) = instructions.as_ref().filter(|t| !t.is_empty()) {
        messages.push(message(Role::System, Some(Content::Text(text.clone()))));
    }
    match map.remove("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(text)) => messages.push(message(Role::User, Some(Content::Text(text)))),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        Some(_) => {
            return Err(TranslateError::invalid(
                "input must be a string or an array of input items",
                Some("input".to_owned()),
            ));
        }
    }

    let raw_tools: Vec<Value> = field(&mut map, "tools")?.unwrap_or_default();
    let mut tools = raw_tools
        .iter()
        .enumerate()
        .map(|(i, t)| tool(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let raw_choice: Option<Value> = field(&mut map, "tool_choice")?;
    let tool_choice = raw_choice
        .as_ref()
        .map(|c| tool_choice(c, &mut tools))
        .transpose()?;

    let text: Option<TextConfig> = field(&mut map, "text")?;
    let response_format = text
        .as_ref()
        .and_then(|t| t.format.clone())
        .map(response_format)
        .transpose()?;
    let reasoning: Option<ReasoningConfig> = field(&mut map, "reasoning")?;
    let top_logprobs: Option<u32> = field(&mut map, "top_logprobs")?;
    if top_logprobs.is_some_and(|n| n > 0) {
        return Err(TranslateError::unsupported(
            "top_logprobs are not translated for this provider",
            Some("top_logprobs".to_owned()),
        ));
    }
    let stream: Option<bool> = field(&mut map, "stream")?;
    let parallel_tool_calls: Option<bool> = field(&mut map, "parallel_tool_calls")?;
    let metadata: Option<Map<String, Value>> = field(&mut map, "metadata")?;
    let user: Option<String> = field(&mut map, "user")?;
    let safety_identifier: Option<String> = field(&mut map, "safety_identifier")?;
    let request = ChatRequest {
        model,
        messages,
        tool_choice,
        tools: (!tools.is_empty()).then_some(tools),
        parallel_tool_calls,
        response_format,
        max_completion_tokens: field(&mut map, "max_output_tokens")?,
        temperature: field(&mut map, "temperature")?,
        top_p: field(&mut map, "top_p")?,
        stream,
        // A Responses stream always ends with its usage (in `response.completed`).
        stream_options: stream.unwrap_or(false).then_some(StreamOptions {
            include_usage: Some(true),
        }),
        reasoning_effort: reasoning.as_ref().and_then(|r| r.effort.clone()),
        user: user.clone().or(safety_identifier),
        metadata: metadata.clone(),
        ..ChatRequest::default()
    };
    let echo = RequestEcho {
        instructions,
        tools: raw_tools,
        tool_choice: raw_choice.unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: parallel_tool_calls.unwrap_or(true),
        text: text.map_or_else(|| json!({"format": {"type": "text"}}), TextConfig::echo),
        reasoning: json!({
            "effort": reasoning.as_ref().and_then(|r| r.effort.clone()),
            "summary": reasoning.and_then(|r| r.summary),
        }),
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request.max_completion_tokens,
        metadata: Value::Object(metadata.unwrap_or_default()),
        user,
    };
    Ok(ParsedRequest { request, echo })
}

const NO_STORE: &str = "which this gateway does not keep: send the full conversation in input";

fn refuse_stored_state(map: &Map<String, Value>) -> Result<(), TranslateError> {
    let present = |name: &str| map.get(name).is_some_and(|v| !v.is_null());
    for (name, what) in [
        (
            "previous_response_id",
            "previous_response_id requires stored responses",
        ),
        ("conversation", "conversation requires stored conversations"),
        ("prompt", "prompt templates require stored prompts"),
    ] {
        if present(name) {
            return Err(TranslateError::unsupported(
                format!("{what}, {NO_STORE}"),
                Some(name.to_owned()),
            ));
        }
    }
    match map.get("store") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(TranslateError::unsupported(
                "store: true requires stored responses, which this gateway does not keep: omit store or send \
                 store: false",
                Some("store".to_owned()),
            ));
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "store must be a boolean",
                Some("store".to_owned()),
            ));
        }
    }
    if map.get("background") == Some(&Value::Bool(true)) {
        return Err(TranslateError::unsupported(
            "background responses require stored responses, which this gateway does not keep",
            Some("background".to_owned()),
        ));
    }
    Ok(())
}

/// A top-level field, typed; absent and `null` are `None`, a wrong type is a 400 naming the field.
fn field<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<T>, TranslateError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
            TranslateError::invalid(
                format!("invalid value for {name}: {e}"),
                Some(name.to_owned()),
            )
        }),
    }
}

fn missing(name: &str) -> TranslateError {
    TranslateError::invalid(
        format!("Missing required parameter: '{name}'."),
        Some(name.to_owned()),
    )
}

/// A flat Responses function tool → the nested Chat shape. Hosted tools are OpenAI's own.
fn tool(i: usize, raw: &Value) -> Result<Tool, TranslateError> {
    let param = |field: &str| Some(format!("tools[{i}]{field}"));
    match raw.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(TranslateError::unsupported(
                format!("{other:?} tools are OpenAI's own; only function tools are translated"),
                param(".type"),
            ));
        }
        None => {
            return Err(TranslateError::invalid(
                "a tool needs a type",
                param(".type"),
            ));
        }
    }
    let def: FunctionTool = serde_json::from_value(raw.clone())
        .map_err(|e| TranslateError::invalid(format!("invalid function tool: {e}"), param("")))?;
    if def.name.is_empty() {
        return Err(TranslateError::invalid(
            "a function tool needs a name",
            param(".name"),
        ));
    }
    Ok(Tool {
        kind: "function".to_owned(),
        function: FunctionDef {
            name: def.name,
            description: def.description,
            parameters: def.parameters,
            strict: def.strict,
        },
    })
}

/// `tool_choice`: modes and `{type:"function", name}` map one to one; `allowed_tools` becomes its mode over only the
/// allowed tools, which is what it means.
fn tool_choice(raw: &Value, tools: &mut Vec<Tool>) -> Result<ToolChoice, TranslateError> {
    let param = || Some("tool_choice".to_owned());
    let invalid = || {
        TranslateError::invalid(
            "tool_choice must be none, auto, required or an object",
            param(),
        )
    };
    match raw {
        Value::String(mode) if matches!(mode.as_str(), "none" | "auto" | "required") => {
            Ok(ToolChoice::Mode(mode.clone()))
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o.get("name").and_then(Value::as_str).ok_or_else(invalid)?;
                Ok(ToolChoice::Named(NamedToolChoice {
                    kind: "function".to_owned(),
                    function: NamedFunction {
                        name: name.to_owned(),
                    },
                }))
            }
            Some("allowed_tools") => {
                let mode = o
                    .get("mode")
                    .and_then(Value::as_str)
                    .filter(|m| matches!(*m, "auto" | "required"));
                let allowed: Vec<&str> = o
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t.get("name").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                let (Some(mode), false) = (mode, allowed.is_empty()) else {
                    return Err(invalid());
                };
                tools.retain(|t| allowed.contains(&t.function.name.as_str()));
                Ok(ToolChoice::Mode(mode.to_owned()))
            }
            Some(other) => Err(TranslateError::unsupported(
                format!("tool_choice {other:?} is for OpenAI's own tools"),
                param(),
            )),
            None => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

fn response_format(format: FormatConfig) -> Result<ResponseFormat, TranslateError> {
    Ok(match format {
        FormatConfig::Text => ResponseFormat::Text,
        FormatConfig::JsonObject => ResponseFormat::JsonObject,
        FormatConfig::JsonSchema {
            name,
            schema,
            description,
            strict,
        } => ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: name.ok_or_else(|| missing("text.format.name"))?,
                description,
                schema,
                strict,
            },
        },
    })
}

#[derive(Deserialize)]
struct FunctionTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct TextConfig {
    #[serde(default)]
    format: Option<FormatConfig>,
    #[serde(default)]
    verbosity: Option<String>,
}

impl TextConfig {
    /// What the answer's `text` says: the format as sent (flat), and the verbosity.
    fn echo(self) -> Value {
        let format = match self.format {
            None | Some(FormatConfig::Text) => json!({"type": "text"}),
            Some(FormatConfig::JsonObject) => json!({"type": "json_object"}),
            Some(FormatConfig::JsonSchema {
                name,
                schema,
                description,
                strict,
            }) => {
                json!({"type": "json_schema", "name": name, "schema": schema, "description": description,
                "strict": strict})
            }
        };
        json!({"format": format, "verbosity": self.verbosity})
    }
}

#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FormatConfig {
    Text,
    JsonObject,
    /// Flat in Responses (`{type, name, schema, strict}`), nested under `json_schema` in Chat.
    JsonSchema {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        schema: Option<Value>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        strict: Option<bool>,
    },
}

#[derive(Deserialize)]
struct ReasoningConfig {
    #[serde(default)]
    effort: Option<String>,
    #[serde(default)]
    summary: Option<String>,
}

#[cfg(test)]
mod tests;
