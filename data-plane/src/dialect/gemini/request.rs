//! The unified request → a Gemini `GenerateContentRequest` body (`notes/translation.md` §5.2, §5.4, §8.1).
//!
//! Everything the request owns is borrowed; only the JSON values Gemini wants as objects (tool-call arguments,
//! tool results, cleaned schemas) are built.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::super::chat::{
    ChatRequest, Content, FunctionDef, Message, Part, ResponseFormat, Role, ToolChoice,
    parse_data_url,
};
use super::super::codec::TranslateError;
use super::thinking::{self, ThinkingConfig};
use super::{SIGNATURE_SEPARATOR, schema};

/// Gemini takes at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;

/// The thought signature Google documents for replaying function calls it did not sign (a conversation begun on
/// another model, or a client that dropped the id suffix).
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    contents: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolGroup<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct SystemInstruction {
    parts: [TextOnly; 1],
}

#[derive(Serialize)]
struct TextOnly {
    text: String,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WirePart<'a> {
    #[serde(flatten)]
    data: PartData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

/// A part holds exactly one data field; externally tagged, this serializes as `{"text": …}`, `{"inlineData": …}`…
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum PartData<'a> {
    Text(&'a str),
    InlineData(Blob<'a>),
    FileData(FileData<'a>),
    FunctionCall(FunctionCall<'a>),
    FunctionResponse(FunctionResponse<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: Cow<'a, str>,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: Value,
}

#[derive(Serialize)]
struct FunctionResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolGroup<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<&'a str>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
            && self.thinking_config.is_none()
    }
}

/// The request body for `model` (the bare Gemini model id, which picks the thinking settings).
pub(super) fn encode(req: &ChatRequest, model: &str) -> Result<Vec<u8>, TranslateError> {
    let body = Body {
        contents: contents(req, thinking::requires_thought_signatures(model))?,
        system_instruction: req.system_text().map(|text| SystemInstruction {
            parts: [TextOnly { text }],
        }),
        tools: tools(req)?,
        tool_config: tool_config(req)?,
        generation_config: generation_config(req, model)?,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid(e.to_string(), None))
}

fn contents(req: &ChatRequest, sign_calls: bool) -> Result<Vec<Turn<'_>>, TranslateError> {
    let mut turns: Vec<Turn<'_>> = Vec::with_capacity(req.messages.len());
    for (i, message) in req.messages.iter().enumerate() {
        let (role, parts) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", content_parts(message.content.as_ref(), i)?),
            Role::Assistant => ("model", assistant_parts(message, i, sign_calls)?),
            // Function results go back in a user turn (Gemini has no tool role).
            Role::Tool => ("user", vec![function_response(&req.messages, i)?]),
        };
        if parts.is_empty() {
            continue;
        }
        // Consecutive same-role turns are merged: several tool results answer one model turn together, and a
        // user's text after them joins the same turn.
        match turns.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => turns.push(Turn { role, parts }),
        }
    }
    Ok(turns)
}

fn plain(data: PartData<'_>) -> WirePart<'_> {
    WirePart {
        data,
        thought_signature: None,
    }
}

fn content_parts(content: Option<&Content>, i: usize) -> Result<Vec<WirePart<'_>>, TranslateError> {
    let Some(content) = content else {
        return Ok(Vec::new());
    };
    let parts = match content {
        Content::Text(text) if text.is_empty() => Vec::new(),
        Content::Text(text) => vec![plain(PartData::Text(text))],
        Content::Parts(parts) => parts
            .iter()
            .enumerate()
            .filter_map(|(j, part)| user_part(part, i, j).transpose())
            .collect::<Result<_, _>>()?,
    };
    Ok(parts)
}

/// One OpenAI content part; `None` for an empty text (Gemini rejects empty parts).
fn user_part(part: &Part, i: usize, j: usize) -> Result<Option<WirePart<'_>>, TranslateError> {
    let param = || Some(format!("messages[{i}].content[{j}]"));
    let data = match part {
        Part::Text { text } | Part::Refusal { refusal: text } if text.is_empty() => {
            return Ok(None);
        }
        Part::Text { text } | Part::Refusal { refusal: text } => PartData::Text(text),
        Part::ImageUrl { image_url } => {
            if let Some((mime, data)) = image_url.data_url() {
                PartData::InlineData(Blob {
                    mime_type: Cow::Borrowed(mime),
                    data,
                })
            } else if image_url.url.starts_with("gs://") {
                let mime = mime_for_uri(&image_url.url).ok_or_else(|| {
                    TranslateError::unsupported(
                        format!(
                            "cannot tell the media type of {:?} from its extension; Gemini needs it for gs:// \
                             files (use .png, .jpg, .jpeg, .gif, .webp or .pdf, or send a data URL)",
                            image_url.url
                        ),
                        param(),
                    )
                })?;
                PartData::FileData(FileData {
                    mime_type: mime,
                    file_uri: &image_url.url,
                })
            } else {
                return Err(TranslateError::unsupported(
                    "Gemini does not fetch image URLs and the gateway does not download them: send the image \
                     as a base64 data URL (data:image/png;base64,…) or, on Vertex AI, as a gs:// URI",
                    param(),
                ));
            }
        }
        Part::InputAudio { input_audio } => PartData::InlineData(Blob {
            mime_type: Cow::Owned(format!("audio/{}", input_audio.format)),
            data: &input_audio.data,
        }),
        Part::File { file } => match file.file_data.as_deref().and_then(parse_data_url) {
            Some((mime, data)) => PartData::InlineData(Blob {
                mime_type: Cow::Borrowed(mime),
                data,
            }),
            None => {
                return Err(TranslateError::unsupported(
                    "Gemini takes files as base64 data URLs in file.file_data; file ids are not supported",
                    param(),
                ));
            }
        },
    };
    Ok(Some(plain(data)))
}

/// The media type `fileData` needs, guessed from a URI's extension.
fn mime_for_uri(uri: &str) -> Option<&'static str> {
    let ext = uri.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// A tool-call id as the client echoes it → Gemini's id and the thought signature riding on it.
fn split_signature(id: &str) -> (&str, Option<&str>) {
    match id.split_once(SIGNATURE_SEPARATOR) {
        Some((id, signature)) if !signature.is_empty() => (id, Some(signature)),
        _ => (id, None),
    }
}

fn assistant_parts(
    message: &Message,
    i: usize,
    sign_calls: bool,
) -> Result<Vec<WirePart<'_>>, TranslateError> {
    let mut parts = content_parts(message.content.as_ref(), i)?;
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    for (k, call) in calls.iter().enumerate() {
        let args = call.function.arguments_json().map_err(|message| {
            TranslateError::invalid(
                message,
                Some(format!("messages[{i}].tool_calls[{k}].function.arguments")),
            )
        })?;
        let (id, mut signature) = split_signature(&call.id);
        // Gemini 3 checks the signature of the first call of a step only.
        if sign_calls && k == 0 && signature.is_none() {
            signature = Some(SKIP_SIGNATURE);
        }
        parts.push(WirePart {
            data: PartData::FunctionCall(FunctionCall {
                id: (!id.is_empty()).then_some(id),
                name: &call.function.name,
                args,
            }),
            thought_signature: signature,
        });
    }
    Ok(parts)
}

/// The `tool` message at `i` as a `functionResponse`: Gemini wants the function's name, which OpenAI's tool
/// message lacks, so it is looked up in the latest earlier assistant call with the same id.
fn function_response(messages: &[Message], i: usize) -> Result<WirePart<'_>, TranslateError> {
    let message = &messages[i];
    let param = Some(format!("messages[{i}].tool_call_id"));
    let Some(call_id) = message.tool_call_id.as_deref() else {
        return Err(TranslateError::invalid(
            "a tool message needs tool_call_id",
            param,
        ));
    };
    let name = messages[..i]
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.tool_calls.as_deref().unwrap_or_default())
        .find(|c| c.id == call_id)
        .map(|c| c.function.name.as_str())
        .ok_or_else(|| {
            TranslateError::invalid(
                format!("tool_call_id {call_id:?} does not match any earlier assistant tool call"),
                param.clone(),
            )
        })?;
    let text = match &message.content {
        None => String::new(),
        Some(Content::Text(t)) => t.clone(),
        Some(content @ Content::Parts(parts)) => {
            if parts
                .iter()
                .any(|p| !matches!(p, Part::Text { .. } | Part::Refusal { .. }))
            {
                return Err(TranslateError::unsupported(
                    "Gemini tool results carry text only",
                    Some(format!("messages[{i}].content")),
                ));
            }
            content.text()
        }
    };
    // `response` must be an object: a JSON object result is passed as is, anything else wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => serde_json::json!({ "content": text }),
    };
    let (id, _) = split_signature(call_id);
    Ok(plain(PartData::FunctionResponse(FunctionResponse {
        id: (!id.is_empty()).then_some(id),
        name,
        response,
    })))
}

fn tools(req: &ChatRequest) -> Result<Vec<ToolGroup<'_>>, TranslateError> {
    let Some(tools) = req.tools.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let declarations = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("Gemini supports function tools only, not {:?}", tool.kind),
                    Some(format!("tools[{i}].type")),
                ));
            }
            Ok(declaration(&tool.function))
        })
        .collect::<Result<_, _>>()?;
    Ok(vec![ToolGroup {
        function_declarations: declarations,
    }])
}

fn declaration(f: &FunctionDef) -> FunctionDeclaration<'_> {
    FunctionDeclaration {
        name: &f.name,
        description: f.description.as_deref().filter(|d| !d.is_empty()),
        parameters_json_schema: f.parameters.as_ref().map(schema::clean),
    }
}

fn tool_config(req: &ChatRequest) -> Result<Option<ToolConfig<'_>>, TranslateError> {
    let tools = req.tools.as_deref().unwrap_or_default();
    let Some(choice) = &req.tool_choice else {
        return Ok(None);
    };
    let param = || Some("tool_choice".to_owned());
    let (mode, allowed) = match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "auto" => ("AUTO", Vec::new()),
            "none" => ("NONE", Vec::new()),
            "required" => ("ANY", Vec::new()),
            other => {
                return Err(TranslateError::invalid(
                    format!(
                        "tool_choice must be none, auto, required or a function, not {other:?}"
                    ),
                    param(),
                ));
            }
        },
        ToolChoice::Named(named) => {
            let name = named.function.name.as_str();
            if !tools.iter().any(|t| t.function.name == name) {
                return Err(TranslateError::invalid(
                    format!("tool_choice names function {name:?}, which is not among the tools"),
                    param(),
                ));
            }
            ("ANY", vec![name])
        }
    };
    if tools.is_empty() {
        return if mode == "ANY" {
            Err(TranslateError::invalid(
                "tool_choice requires a tool call but no tools were given",
                param(),
            ))
        } else {
            Ok(None)
        };
    }
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: allowed,
        },
    }))
}

fn generation_config<'a>(
    req: &'a ChatRequest,
    model: &str,
) -> Result<GenerationConfig<'a>, TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::unsupported(
            "n > 1 is not supported for Gemini through the OpenAI-compatible endpoint (one choice per answer)",
            Some("n".to_owned()),
        ));
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(TranslateError::unsupported(
            "logprobs are not supported for Gemini through the OpenAI-compatible endpoint",
            Some("logprobs".to_owned()),
        ));
    }
    let stop_sequences: Vec<&str> = req
        .stop_sequences()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if stop_sequences.len() > MAX_STOP_SEQUENCES {
        return Err(TranslateError::unsupported(
            format!("Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences"),
            Some("stop".to_owned()),
        ));
    }
    let (response_mime_type, response_json_schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { json_schema }) => (
            Some("application/json"),
            json_schema.schema.as_ref().map(schema::clean),
        ),
    };
    // Zero is every SDK's default for the penalties: not worth a field (some models reject them outright).
    let non_zero = |p: Option<f64>| p.filter(|v| *v != 0.0);
    Ok(GenerationConfig {
        max_output_tokens: req.max_output_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences,
        seed: req.seed,
        presence_penalty: non_zero(req.presence_penalty),
        frequency_penalty: non_zero(req.frequency_penalty),
        response_mime_type,
        response_json_schema,
        thinking_config: thinking::config(req.reasoning_effort.as_deref(), model),
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
