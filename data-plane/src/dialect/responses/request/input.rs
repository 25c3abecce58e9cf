//! `input` items (`notes/translation.md` §2.1) → the unified messages (§2.4): messages with their parts,
//! function calls folded into assistant turns, function call outputs as tool messages, reasoning as the next
//! assistant turn's `reasoning_content`.

use serde::Deserialize;
use serde_json::Value;

use super::NO_STORE;
use crate::dialect::chat::{
    Content, FilePart, FunctionCall, ImageUrl, InputAudio, Message, Part, Role, ToolCall,
};
use crate::dialect::codec::TranslateError;

pub(super) fn message(role: Role, content: Option<Content>) -> Message {
    Message {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        reasoning_content: None,
    }
}

/// `input` items → messages. Assistant-side items that follow each other (reasoning, an assistant message,
/// function calls) build one assistant turn, as Chat has them; everything else starts a new message.
pub(super) fn input_items(
    items: Vec<Value>,
    messages: &mut Vec<Message>,
) -> Result<(), TranslateError> {
    // Whether the last message is an assistant turn still being built from consecutive items.
    let mut assistant_open = false;
    for (i, item) in items.into_iter().enumerate() {
        let param = |field: &str| Some(format!("input[{i}]{field}"));
        let kind = match item.get("type") {
            Some(Value::String(t)) => t.clone(),
            // `type` may be left out of a message that has a role.
            None | Some(Value::Null) if item.get("role").is_some() => "message".to_owned(),
            _ => {
                return Err(TranslateError::invalid(
                    "an input item needs a type",
                    param(".type"),
                ));
            }
        };
        let typed = |what: &str| {
            let what = what.to_owned();
            move |e: serde_json::Error| {
                TranslateError::invalid(format!("invalid {what} item: {e}"), param(""))
            }
        };
        match kind.as_str() {
            "message" => {
                let m: InputMessage = serde_json::from_value(item).map_err(typed("message"))?;
                let role = m.role;
                let content = message_content(i, m.content)?;
                if role == Role::Assistant {
                    match messages.last_mut() {
                        Some(last)
                            if assistant_open
                                && last.content.is_none()
                                && last.tool_calls.is_none() =>
                        {
                            last.content = content;
                        }
                        _ => messages.push(message(Role::Assistant, content)),
                    }
                    assistant_open = true;
                } else {
                    if role == Role::Tool {
                        return Err(TranslateError::invalid(
                            "tool results are function_call_output items",
                            param(".role"),
                        ));
                    }
                    messages.push(message(role, content));
                    assistant_open = false;
                }
            }
            "function_call" => {
                let call: InputFunctionCall =
                    serde_json::from_value(item).map_err(typed("function_call"))?;
                let call = ToolCall {
                    id: call.call_id,
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: call.name,
                        arguments: call.arguments,
                    },
                };
                match messages.last_mut() {
                    Some(last) if assistant_open => {
                        last.tool_calls.get_or_insert_with(Vec::new).push(call)
                    }
                    _ => {
                        let mut m = message(Role::Assistant, None);
                        m.tool_calls = Some(vec![call]);
                        messages.push(m);
                    }
                }
                assistant_open = true;
            }
            "function_call_output" => {
                let output: InputFunctionOutput =
                    serde_json::from_value(item).map_err(typed("function_call_output"))?;
                let content = match output.output {
                    Value::String(s) => Content::Text(s),
                    parts @ Value::Array(_) => {
                        let parts: Vec<InputPart> = serde_json::from_value(parts).map_err(|e| {
                            TranslateError::invalid(
                                format!("invalid output parts: {e}"),
                                param(".output"),
                            )
                        })?;
                        Content::Parts(input_parts(i, parts)?)
                    }
                    _ => {
                        return Err(TranslateError::invalid(
                            "output must be a string or a list of parts",
                            param(".output"),
                        ));
                    }
                };
                let mut m = message(Role::Tool, Some(content));
                m.tool_call_id = Some(output.call_id);
                messages.push(m);
                assistant_open = false;
            }
            "reasoning" => {
                let reasoning: InputReasoning =
                    serde_json::from_value(item).map_err(typed("reasoning"))?;
                let text: String = reasoning
                    .summary
                    .iter()
                    .chain(reasoning.content.iter())
                    .map(|s| s.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                // Reasoning opens the assistant turn it belongs to; `encrypted_content` means something to
                // OpenAI only and is dropped.
                let mut m = message(Role::Assistant, None);
                m.reasoning_content = (!text.is_empty()).then_some(text);
                messages.push(m);
                assistant_open = true;
            }
            "item_reference" => {
                return Err(TranslateError::unsupported(
                    format!("item_reference requires stored responses, {NO_STORE}"),
                    param(""),
                ));
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("input items of type {other:?} are not supported for this provider"),
                    param(".type"),
                ));
            }
        }
    }
    // Reasoning with no answer after it is not a turn (Chat requires content or tool calls on an assistant).
    messages.retain(|m| m.role != Role::Assistant || m.content.is_some() || m.tool_calls.is_some());
    if messages.is_empty() {
        return Err(TranslateError::invalid(
            "input must not be empty",
            Some("input".to_owned()),
        ));
    }
    Ok(())
}

fn message_content(i: usize, content: MessageContent) -> Result<Option<Content>, TranslateError> {
    Ok(Some(match content {
        MessageContent::Text(t) => Content::Text(t),
        MessageContent::Parts(parts) => Content::Parts(input_parts(i, parts)?),
    }))
}

fn input_parts(i: usize, parts: Vec<InputPart>) -> Result<Vec<Part>, TranslateError> {
    parts
        .into_iter()
        .enumerate()
        .map(|(j, part)| {
            let param = || Some(format!("input[{i}].content[{j}]"));
            let stored = |what: &str| {
                TranslateError::unsupported(
                    format!("{what} refer to OpenAI's file store; send the data inline instead"),
                    param(),
                )
            };
            Ok(match part {
                InputPart::InputText { text } | InputPart::OutputText { text } => {
                    Part::Text { text }
                }
                InputPart::Refusal { refusal } => Part::Refusal { refusal },
                InputPart::InputImage { image_url, detail } => Part::ImageUrl {
                    image_url: ImageUrl {
                        url: image_url.ok_or_else(|| stored("images by file_id"))?,
                        detail,
                    },
                },
                InputPart::InputFile {
                    file_data,
                    file_id,
                    file_url,
                    filename,
                } => {
                    if file_url.is_some() && file_data.is_none() {
                        return Err(TranslateError::unsupported(
                            "files by URL are not fetched by this gateway; send file_data",
                            param(),
                        ));
                    }
                    if file_data.is_none() && file_id.is_some() {
                        return Err(stored("files by file_id"));
                    }
                    Part::File {
                        file: FilePart {
                            file_data,
                            file_id: None,
                            filename,
                        },
                    }
                }
                InputPart::InputAudio { input_audio } => Part::InputAudio { input_audio },
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct InputMessage {
    role: Role,
    content: MessageContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<InputPart>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InputPart {
    InputText {
        text: String,
    },
    /// An earlier assistant answer replayed.
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    InputFile {
        #[serde(default)]
        file_data: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
        #[serde(default)]
        file_url: Option<String>,
        #[serde(default)]
        filename: Option<String>,
    },
    InputAudio {
        input_audio: InputAudio,
    },
}

#[derive(Deserialize)]
struct InputFunctionCall {
    call_id: String,
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct InputFunctionOutput {
    call_id: String,
    output: Value,
}

#[derive(Deserialize)]
struct InputReasoning {
    #[serde(default)]
    summary: Vec<ReasoningText>,
    /// Open models' raw reasoning (`reasoning_text` parts).
    #[serde(default)]
    content: Vec<ReasoningText>,
}

#[derive(Deserialize)]
struct ReasoningText {
    text: String,
}
