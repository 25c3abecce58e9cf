//! Workers AI text generation (`@cf/meta/llama-3.1-8b-instruct` and the other text-generation models) through the
//! native run endpoint, behind the [`ChatCodec`] seam: `POST {base}/{model}` (the base is
//! `…/accounts/{account_id}/ai/run`, the account the gateway's own, filled by the route as for embeddings).
//!
//! Request: `{messages:[{role, content}], max_tokens?, temperature?, top_p?, seed?, frequency_penalty?,
//! presence_penalty?, stream?, tools?, response_format?}`. Roles stay in place (system messages included, developer
//! ones as system); content is always a string (Workers AI text models take no images); an assistant turn's tool
//! calls travel as OpenAI-shaped `tool_calls` with their ids and string arguments, and a tool result as
//! `{role:"tool", content, tool_call_id, name}`, which is how Cloudflare's own AI SDK provider writes them.
//! `response_format` is `{type:"json_object"}` or `{type:"json_schema", json_schema: <the schema itself>}`.
//!
//! Answer: `{result:{response: string|null, tool_calls?:[{name, arguments: object}], usage?}, success, errors,
//! messages}`. The stream is `data: {"response":"…","p":"…"}` events, one with `usage` last, then `data: [DONE]`.
//! Workers AI names no finish reason: a tool call is `tool_calls`, anything else `stop` (a `finish_reason` a newer
//! model adds is read). Tool calls carry no id: they are numbered `call_{i}`.
//!
//! What Workers AI cannot do is refused before anything is sent: `n > 1`, `logprobs`, `stop`, `reasoning_effort`,
//! a `required` or named `tool_choice`, images, audio and files. Errors are Cloudflare's v4 envelope, read as the
//! embeddings codec reads it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat::{
    ChatRequest, ChatResponse, Content, FinishReason, FunctionCall, Message, Part, ProviderError,
    ResponseFormat, Role, StreamEvent, ToolCall, ToolChoice, Usage,
};
use super::codec::{ChatCodec, Encoded, StreamDecoder, Target, TranslateError};
use super::embeddings::workers_ai::{is_model_path, provider_error};
use super::frames::{SseEvent, SseFrames};
use super::openai::wire::{OutFormat, OutFunction, OutTool};

/// Workers AI text generation.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkersAiCodec;

impl ChatCodec for WorkersAiCodec {
    fn encode(
        &self,
        request: &ChatRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let model = target.model;
        if !is_model_path(model) {
            return Err(TranslateError::invalid(
                format!(
                    "Workers AI models are named like @cf/meta/llama-3.1-8b-instruct (letters, digits, '-', '_', \
                     '.', '@' in '/'-separated parts); got {model:?}"
                ),
                Some("model".to_owned()),
            ));
        }
        Ok(Encoded {
            path: format!("/{model}"),
            headers: Vec::new(),
            body: encode(request, target.stream)?,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<ChatResponse, TranslateError> {
        decode(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(WorkersAiStreamDecoder::default())
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        provider_error(status, body)
    }
}

// ---- request ----

#[derive(Serialize)]
struct Body<'a> {
    messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<OutTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<OutFormat<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    /// Always a string: Workers AI requires `content`, empty for a turn that only calls tools.
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
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
    arguments: &'a str,
}

fn unsupported(what: &str, param: &str) -> TranslateError {
    TranslateError::unsupported(
        format!("Workers AI text generation does not support {what}"),
        Some(param.to_owned()),
    )
}

fn encode(req: &ChatRequest, stream: bool) -> Result<Vec<u8>, TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported(
            "n > 1 (it returns one answer per request)",
            "n",
        ));
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(unsupported("logprobs", "logprobs"));
    }
    if !req.stop_sequences().is_empty() {
        return Err(unsupported("stop sequences", "stop"));
    }
    if req.reasoning_effort.as_deref().is_some_and(|e| e != "none") {
        return Err(unsupported("reasoning_effort", "reasoning_effort"));
    }
    if let Some(seed) = req.seed
        && !(1..=9_999_999_999).contains(&seed)
    {
        return Err(TranslateError::invalid(
            "Workers AI takes a seed from 1 to 9999999999",
            Some("seed".to_owned()),
        ));
    }
    let messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m, &req.messages[..i]))
        .collect::<Result<Vec<_>, _>>()?;
    let body = Body {
        messages,
        max_tokens: req.max_output_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        tools: tools(req)?,
        response_format: match &req.response_format {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonObject) => Some(OutFormat {
                kind: "json_object",
                json_schema: None,
            }),
            Some(ResponseFormat::JsonSchema { json_schema }) => Some(OutFormat {
                kind: "json_schema",
                json_schema: Some(json_schema.schema.as_ref().ok_or_else(|| {
                    TranslateError::invalid(
                        "response_format.json_schema needs a schema",
                        Some("response_format.json_schema.schema".to_owned()),
                    )
                })?),
            }),
        },
        stream,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid(e.to_string(), None))
}

/// One OpenAI message as a Workers AI message. `earlier` are the messages before it (a tool result takes the name
/// of the call it answers from there).
fn message<'a>(
    i: usize,
    m: &'a Message,
    earlier: &'a [Message],
) -> Result<OutMessage<'a>, TranslateError> {
    let content = text(i, m.content.as_ref())?;
    let mut out = OutMessage {
        role: match m.role {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        },
        content,
        tool_calls: Vec::new(),
        tool_call_id: None,
        name: None,
    };
    match m.role {
        Role::Assistant => {
            for (j, call) in m.tool_calls.iter().flatten().enumerate() {
                call.function.arguments_json().map_err(|message| {
                    TranslateError::invalid(
                        message,
                        Some(format!("messages[{i}].tool_calls[{j}].function.arguments")),
                    )
                })?;
                let arguments = match call.function.arguments.trim() {
                    "" => "{}",
                    _ => call.function.arguments.as_str(),
                };
                out.tool_calls.push(OutToolCall {
                    id: &call.id,
                    kind: "function",
                    function: OutFunctionCall {
                        name: &call.function.name,
                        arguments,
                    },
                });
            }
        }
        Role::Tool => {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            out.tool_call_id = Some(id);
            out.name = earlier
                .iter()
                .rev()
                .flat_map(|e| e.tool_calls.iter().flatten())
                .find(|c| c.id == id)
                .map(|c| c.function.name.as_str());
        }
        _ => {}
    }
    Ok(out)
}

/// A message's text: Workers AI text models take strings only.
fn text(i: usize, content: Option<&Content>) -> Result<String, TranslateError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(c @ Content::Parts(parts)) => {
            if let Some(j) = parts
                .iter()
                .position(|p| !matches!(p, Part::Text { .. } | Part::Refusal { .. }))
            {
                return Err(unsupported(
                    "images, audio or files (its text models take text only)",
                    &format!("messages[{i}].content[{j}]"),
                ));
            }
            Ok(c.text())
        }
    }
}

/// Function tools in OpenAI's shape, which Workers AI takes as they are. `tool_choice: "none"` sends no tools;
/// `required` and a named function have no counterpart.
fn tools(req: &ChatRequest) -> Result<Option<Vec<OutTool<'_>>>, TranslateError> {
    match &req.tool_choice {
        None => {}
        Some(ToolChoice::Mode(mode)) if mode == "auto" => {}
        Some(ToolChoice::Mode(mode)) if mode == "none" => return Ok(None),
        Some(_) => {
            return Err(unsupported(
                "forcing a tool call (tool_choice required or a named function)",
                "tool_choice",
            ));
        }
    }
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let empty = || Cow::Owned(serde_json::json!({"type": "object", "properties": {}}));
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(unsupported(
                    &format!("{:?} tools, only function tools", t.kind),
                    &format!("tools[{i}].type"),
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
                        .map_or_else(empty, Cow::Borrowed),
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

// ---- answers ----

/// Cloudflare's v4 envelope around a text-generation result.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    result: Option<Output<'a>>,
    #[serde(default)]
    success: Option<bool>,
}

/// A whole answer's `result`, and one streamed event (the same fields).
#[derive(Default, Deserialize)]
struct Output<'a> {
    /// Text; JSON mode may answer an object, which is passed on as its JSON text.
    #[serde(default)]
    response: Option<Value>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<OutputToolCall<'a>>>,
    #[serde(default)]
    usage: Option<WaiUsage>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

/// `{name, arguments}` as the run endpoint answers, or OpenAI's `{id, function:{name, arguments}}` as newer
/// models do; arguments an object or a JSON string.
#[derive(Deserialize)]
struct OutputToolCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(borrow, default)]
    function: Option<OutputFunction<'a>>,
}

#[derive(Deserialize)]
struct OutputFunction<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    arguments: Option<Value>,
}

impl OutputToolCall<'_> {
    /// `(id, name, arguments as a JSON string)`; `index` numbers calls without an id.
    fn into_call(self, index: usize) -> (String, String, String) {
        let (name, arguments) = match self.function {
            Some(f) => (f.name.or(self.name), f.arguments.or(self.arguments)),
            None => (self.name, self.arguments),
        };
        let arguments = match arguments {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(Value::String(s)) => s,
            Some(v) => v.to_string(),
        };
        let id = self
            .id
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("call_{index}"), Cow::into_owned);
        (id, name.map(Cow::into_owned).unwrap_or_default(), arguments)
    }
}

#[derive(Debug, Default, Deserialize)]
struct WaiUsage {
    #[serde(default)]
    prompt_tokens: Option<f64>,
    #[serde(default)]
    completion_tokens: Option<f64>,
}

impl WaiUsage {
    fn to_usage(&self) -> Usage {
        let count = |v: Option<f64>| v.map_or(0, |n| n.max(0.0) as u64);
        Usage {
            prompt_tokens: count(self.prompt_tokens),
            completion_tokens: count(self.completion_tokens),
            ..Usage::default()
        }
    }
}

/// `response` as text: a string as it is, an object (JSON mode) as its JSON, null or absent as nothing.
fn response_text(response: Option<Value>) -> Option<String> {
    match response? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// A named finish reason (newer models), else `tool_calls` when the answer calls tools, else `stop`.
fn finish_reason(raw: Option<&str>, calls_tools: bool) -> FinishReason {
    match raw {
        Some("length" | "max_tokens") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        _ if calls_tools => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn decode(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let answer: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadResponse(format!("Workers AI answer: {e}")))?;
    let output = match answer.result {
        Some(output) if answer.success != Some(false) => output,
        _ => {
            return Err(TranslateError::BadResponse(
                "Workers AI answered without a result".to_owned(),
            ));
        }
    };
    let tool_calls: Vec<ToolCall> = output
        .tool_calls
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, call)| {
            let (id, name, arguments) = call.into_call(i);
            ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments },
            }
        })
        .collect();
    let text = response_text(output.response).filter(|t| !t.is_empty() || tool_calls.is_empty());
    Ok(ChatResponse {
        id: None,
        model: None,
        text,
        reasoning: None,
        finish_reason: Some(finish_reason(
            output.finish_reason.as_deref(),
            !tool_calls.is_empty(),
        )),
        tool_calls,
        usage: output.usage.as_ref().map(WaiUsage::to_usage),
    })
}

// ---- stream ----

/// The state of one streamed answer: `data: {"response", "p"}` events, `usage` on the last, then `[DONE]`.
#[derive(Debug, Default)]
pub struct WorkersAiStreamDecoder {
    frames: SseFrames,
    started: bool,
    tool_calls: u32,
    usage: Option<Usage>,
    finish: Option<String>,
    /// `[DONE]` came, or the stream failed: nothing more is decoded.
    ended: bool,
}

/// A failure written into the stream (`{"errors":[…]}` or `{"error": …}`).
#[derive(Deserialize)]
struct StreamFailure {
    #[serde(default)]
    errors: Vec<Value>,
    #[serde(default)]
    error: Option<Value>,
}

impl WorkersAiStreamDecoder {
    fn frame(&mut self, frame: SseEvent, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let data = frame.data.trim();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: None,
                model: None,
            });
        }
        if data == "[DONE]" {
            self.ended = true;
            let reason = finish_reason(self.finish.as_deref(), self.tool_calls > 0);
            out.push(StreamEvent::Finish(reason));
            if let Some(usage) = self.usage.take() {
                out.push(StreamEvent::Usage(usage));
            }
            return;
        }
        let event: Output<'_> = match serde_json::from_str(data) {
            Ok(event) => event,
            Err(e) => {
                return self.fail(format!("the provider's stream could not be read: {e}"), out);
            }
        };
        if event.response.is_none()
            && event.tool_calls.is_none()
            && event.usage.is_none()
            && let Ok(failure) = serde_json::from_str::<StreamFailure>(data)
            && let Some(message) = failure_message(&failure)
        {
            return self.fail(message, out);
        }
        if let Some(text) = response_text(event.response).filter(|t| !t.is_empty()) {
            out.push(StreamEvent::TextDelta(text));
        }
        for call in event.tool_calls.into_iter().flatten() {
            let index = self.tool_calls;
            self.tool_calls += 1;
            let (id, name, arguments) = call.into_call(index as usize);
            out.push(StreamEvent::ToolCallStart { index, id, name });
            out.push(StreamEvent::ToolCallArgs {
                index,
                fragment: arguments,
            });
        }
        if let Some(usage) = event.usage {
            self.usage.get_or_insert_default().merge(&usage.to_usage());
        }
        if let Some(reason) = event.finish_reason {
            self.finish = Some(reason.into_owned());
        }
    }

    fn fail(&mut self, message: String, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::Error(ProviderError::new(502, message)));
    }
}

fn failure_message(failure: &StreamFailure) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let messages: Vec<String> = failure
        .errors
        .iter()
        .chain(failure.error.as_ref())
        .filter_map(text)
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

impl StreamDecoder for WorkersAiStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        let mut frames = std::mem::take(&mut self.frames);
        frames.feed(bytes, |frame| self.frame(frame, out));
        self.frames = frames;
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        let mut frames = std::mem::take(&mut self.frames);
        frames.finish(|frame| self.frame(frame, out));
        self.frames = frames;
        if !self.ended {
            // Without `[DONE]` the answer is cut, however the connection ended.
            let why = if complete {
                "the provider's stream ended before [DONE]"
            } else {
                "the provider's stream broke off"
            };
            self.fail(why.to_owned(), out);
        }
    }
}

#[cfg(test)]
mod tests;
