//! The unified request → Cohere v2's chat body (`notes/translation.md` §7.1, the Cohere column of §8.1).
//!
//! Messages keep their order and roles (Cohere takes system messages in place, and tool results as `tool`
//! messages like OpenAI's); an assistant turn's text goes to `tool_plan` when it calls tools, where Cohere puts
//! its own plan. What Cohere cannot express is a 400 before anything is sent: `n > 1`, a named `tool_choice`,
//! `logprobs` (Cohere has them, but the unified answer has nowhere to carry them back), audio and file parts.

use std::borrow::Cow;

use serde::Serialize;

use crate::dialect::chat::{
    ChatRequest, Content, FunctionCall, ImageUrl, Message, Part, ResponseFormat, Role, ToolChoice,
};
use crate::dialect::codec::{Target, TranslateError};
use crate::dialect::openai::wire::{OutFormat, OutFunction, OutTool};

/// `thinking.token_budget` per `reasoning_effort` (`notes/translation.md` §8.2, the Anthropic column, which
/// LiteLLM also uses for Cohere); `xhigh` lets the model think as long as its limit allows.
fn thinking_for(effort: &str) -> Thinking {
    let budget = match effort {
        "none" => return Thinking::Disabled,
        "minimal" | "low" => Some(1024),
        "high" => Some(4096),
        "xhigh" => None,
        // "medium" and efforts this gateway does not know yet.
        _ => Some(2048),
    };
    Thinking::Enabled {
        token_budget: budget,
    }
}

pub(super) fn encode(req: &ChatRequest, target: &Target<'_>) -> Result<Vec<u8>, TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::unsupported(
            "cohere returns one answer per request: n > 1 is not supported",
            Some("n".to_owned()),
        ));
    }
    if req.logprobs == Some(true) {
        return Err(TranslateError::unsupported(
            "logprobs are not translated for cohere",
            Some("logprobs".to_owned()),
        ));
    }
    if req.messages.is_empty() {
        return Err(TranslateError::invalid(
            "messages must contain at least one message",
            Some("messages".to_owned()),
        ));
    }
    let messages = req
        .messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| message(i, m).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let tools = tools(req)?;
    let body = Body {
        model: target.model,
        messages,
        tool_choice: tool_choice(req, tools.is_some())?,
        strict_tools: tools.as_ref().and_then(|_| strict_tools(req)),
        tools,
        response_format: req.response_format.as_ref().and_then(response_format),
        max_tokens: req.max_output_tokens(),
        // Cohere's ranges: temperature 0–1, p 0.01–0.99, penalties 0–1 (OpenAI's go to 2 and −2).
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        p: req.top_p.map(|p| p.clamp(0.01, 0.99)),
        stop_sequences: Some(req.stop_sequences()).filter(|s| !s.is_empty()),
        seed: req.seed,
        frequency_penalty: penalty(req.frequency_penalty),
        presence_penalty: penalty(req.presence_penalty),
        thinking: req.reasoning_effort.as_deref().map(thinking_for),
        stream: target.stream,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid(e.to_string(), None))
}

/// A penalty in Cohere's 0–1 range; 0 (OpenAI's default, which SDKs send) is left out.
fn penalty(value: Option<f64>) -> Option<f64> {
    value.map(|v| v.clamp(0.0, 1.0)).filter(|v| *v > 0.0)
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<OutTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict_tools: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<OutFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    stream: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum OutMessage<'a> {
    System {
        content: String,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_plan: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: String,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(&'a str),
    Parts(Vec<OutPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: OutImage<'a> },
}

#[derive(Serialize)]
struct OutImage<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunctionCall<'a>,
}

#[derive(Serialize)]
struct OutFunctionCall<'a> {
    name: &'a str,
    /// A JSON document as a string, like OpenAI's.
    arguments: Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Thinking {
    Enabled {
        #[serde(skip_serializing_if = "Option::is_none")]
        token_budget: Option<u32>,
    },
    Disabled,
}

/// One OpenAI message as a Cohere message; `None` for a turn with nothing in it (Cohere refuses empty turns).
fn message(i: usize, m: &Message) -> Result<Option<OutMessage<'_>>, TranslateError> {
    let param = |field: &str| Some(format!("messages[{i}].{field}"));
    Ok(match m.role {
        Role::System | Role::Developer => {
            let text = text_only(m.content.as_ref(), "system", || param("content"))?;
            (!text.is_empty()).then_some(OutMessage::System { content: text })
        }
        Role::User => {
            user_content(i, m.content.as_ref())?.map(|content| OutMessage::User { content })
        }
        Role::Assistant => {
            let text = text_only(m.content.as_ref(), "assistant", || param("content"))?;
            let tool_calls = m
                .tool_calls
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, c)| tool_call(i, j, &c.id, &c.function))
                .collect::<Result<Vec<_>, _>>()?;
            let text = (!text.is_empty()).then_some(text);
            match (text, tool_calls.is_empty()) {
                (None, true) => None,
                // Cohere keeps the text that comes with tool calls as the turn's plan.
                (text, false) => Some(OutMessage::Assistant {
                    content: None,
                    tool_plan: text,
                    tool_calls,
                }),
                (text, true) => Some(OutMessage::Assistant {
                    content: text,
                    tool_plan: None,
                    tool_calls,
                }),
            }
        }
        Role::Tool => {
            let Some(id) = m.tool_call_id.as_deref().filter(|id| !id.is_empty()) else {
                return Err(TranslateError::invalid(
                    "a tool message needs the tool_call_id of the call it answers",
                    param("tool_call_id"),
                ));
            };
            Some(OutMessage::Tool {
                tool_call_id: id,
                content: text_only(m.content.as_ref(), "tool", || param("content"))?,
            })
        }
    })
}

/// The text of a message that may only hold text (system, assistant, tool).
fn text_only(
    content: Option<&Content>,
    role: &str,
    param: impl Fn() -> Option<String>,
) -> Result<String, TranslateError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(c @ Content::Parts(parts)) => {
            if parts
                .iter()
                .any(|p| !matches!(p, Part::Text { .. } | Part::Refusal { .. }))
            {
                return Err(TranslateError::unsupported(
                    format!("cohere takes only text in {role} messages"),
                    param(),
                ));
            }
            Ok(c.text())
        }
    }
}

fn user_content(
    i: usize,
    content: Option<&Content>,
) -> Result<Option<UserContent<'_>>, TranslateError> {
    let parts = match content {
        None => return Ok(None),
        Some(Content::Text(t)) if t.is_empty() => return Ok(None),
        Some(Content::Text(t)) => return Ok(Some(UserContent::Text(t))),
        Some(Content::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = || Some(format!("messages[{i}].content[{j}]"));
        match part {
            Part::Text { text } | Part::Refusal { refusal: text } => {
                // Empty text blocks are refused by several providers; they carry nothing anyway.
                if !text.is_empty() {
                    out.push(OutPart::Text { text });
                }
            }
            Part::ImageUrl { image_url } => out.push(OutPart::ImageUrl {
                image_url: image(image_url, param)?,
            }),
            Part::InputAudio { .. } => {
                return Err(TranslateError::unsupported(
                    "cohere does not accept audio input",
                    param(),
                ));
            }
            Part::File { .. } => {
                return Err(TranslateError::unsupported(
                    "cohere does not accept file parts; send the document's text instead",
                    param(),
                ));
            }
        }
    }
    Ok((!out.is_empty()).then_some(UserContent::Parts(out)))
}

/// Cohere takes images as OpenAI does: a base64 data URL or an http(s) URL it fetches itself.
fn image(
    image_url: &ImageUrl,
    param: impl Fn() -> Option<String>,
) -> Result<OutImage<'_>, TranslateError> {
    let url = image_url.url.as_str();
    if url.starts_with("data:") {
        if image_url.data_url().is_none() {
            return Err(TranslateError::invalid(
                "an image data URL must look like data:{mime};base64,{data}",
                param(),
            ));
        }
    } else if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(TranslateError::unsupported(
            "cohere takes images as data URLs or http(s) URLs",
            param(),
        ));
    }
    Ok(OutImage {
        url,
        detail: image_url.detail.as_deref(),
    })
}

fn tool_call<'a>(
    i: usize,
    j: usize,
    id: &'a str,
    function: &'a FunctionCall,
) -> Result<OutToolCall<'a>, TranslateError> {
    // Cohere takes the arguments as a string too, but an unparseable one would only fail later, upstream.
    function.arguments_json().map_err(|message| {
        TranslateError::invalid(
            message,
            Some(format!("messages[{i}].tool_calls[{j}].function.arguments")),
        )
    })?;
    let arguments = if function.arguments.trim().is_empty() {
        Cow::Borrowed("{}")
    } else {
        Cow::Borrowed(function.arguments.as_str())
    };
    Ok(OutToolCall {
        id,
        kind: "function",
        function: OutFunctionCall {
            name: &function.name,
            arguments,
        },
    })
}

fn tools(req: &ChatRequest) -> Result<Option<Vec<OutTool<'_>>>, TranslateError> {
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let empty_schema = || Cow::Owned(serde_json::json!({"type": "object", "properties": {}}));
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("cohere supports only function tools, not {:?}", t.kind),
                    Some(format!("tools[{i}].type")),
                ));
            }
            Ok(OutTool {
                kind: "function",
                function: OutFunction {
                    name: &t.function.name,
                    description: t.function.description.as_deref(),
                    parameters: t
                        .function
                        .parameters
                        .as_ref()
                        .map_or_else(empty_schema, Cow::Borrowed),
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Cohere's `strict_tools` covers every tool at once: on only when every tool asked for strict schemas.
fn strict_tools(req: &ChatRequest) -> Option<bool> {
    let tools = req.tools.as_ref()?;
    tools
        .iter()
        .all(|t| t.function.strict == Some(true))
        .then_some(true)
}

/// `auto` is Cohere's default (omitted); `required` and `none` are `REQUIRED` and `NONE`; there is no named form.
fn tool_choice(req: &ChatRequest, has_tools: bool) -> Result<Option<&'static str>, TranslateError> {
    let param = || Some("tool_choice".to_owned());
    let choice = match &req.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => None,
            "none" => Some("NONE"),
            "required" => Some("REQUIRED"),
            other => {
                return Err(TranslateError::invalid(
                    format!(
                        "tool_choice must be none, auto, required or a named function, not {other:?}"
                    ),
                    param(),
                ));
            }
        },
        Some(ToolChoice::Named(_)) => {
            return Err(TranslateError::unsupported(
                "cohere cannot be made to call one named tool; use tool_choice \"required\" with only that tool",
                param(),
            ));
        }
    };
    match (choice, has_tools) {
        (Some("REQUIRED"), false) => Err(TranslateError::invalid(
            "tool_choice \"required\" needs tools",
            param(),
        )),
        // Without tools there is nothing to switch off.
        (_, false) => Ok(None),
        (choice, true) => Ok(choice),
    }
}

fn response_format(format: &ResponseFormat) -> Option<OutFormat<'_>> {
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(OutFormat {
            kind: "json_object",
            json_schema: None,
        }),
        ResponseFormat::JsonSchema { json_schema } => Some(OutFormat {
            kind: "json_object",
            json_schema: json_schema.schema.as_ref(),
        }),
    }
}

#[cfg(test)]
mod tests;
