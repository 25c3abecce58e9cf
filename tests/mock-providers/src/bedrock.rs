//! AWS Bedrock's Converse API: `POST /model/{modelId}/converse` (JSON) and `/converse-stream` (the binary
//! `application/vnd.amazon.eventstream`, one frame per event, spaced by the chunk delay), as the AWS SDKs parse
//! them.
//!
//! Requests are checked as Bedrock checks them, with its own messages: a SigV4 `Authorization` header with its
//! `Credential`, `SignedHeaders` and `Signature` parts and an `x-amz-date` (the signature itself is not verified:
//! that needs the secret, and the gateway's signer is tested against AWS's vectors), or a Bedrock API key as
//! `Bearer`; turns that start with the user and alternate; no blank text blocks; a `toolConfig` whenever the
//! history holds tool blocks. Errors are `{"message": …}` with the exception's name in `x-amzn-ErrorType`.
//!
//! The answer follows `x-mock-scenario`: text; `toolUse` blocks calling the request's first tool; a
//! `reasoningContent` block before the text; a `max_tokens` or `content_filtered` stop; cache reads and writes in
//! the usage.

mod eventstream;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, event_stream, json as json_response};
use crate::refusal::ErrorSpec;
use crate::refusal::Refusal;
use crate::scenario::{
    CACHED_READ_TOKENS, CACHED_WRITE_TOKENS, REASONING_TEXT, Scenario, TOOL_CALL_LOCATIONS,
    tool_call_arguments,
};
use crate::text::{completion_text, piece};

/// ConverseStream's content type.
pub(crate) const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// The signature of the `reasoning` scenario's reasoning block.
const REASONING_SIGNATURE: &str = "mock-reasoning-signature";

/// Bedrock pads every stream payload with a random `p` field so sizes do not leak content; the mock pads too, so
/// a reader that chokes on unknown fields is caught.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The model id of `/model/{modelId}/converse[-stream]`, percent-decoded (`…-v1%3A0` → `…-v1:0`).
pub(crate) fn model_in_path(path: &str) -> Option<String> {
    let rest = path.split_once("/model/")?.1;
    let encoded = rest
        .strip_suffix("/converse-stream")
        .or_else(|| rest.strip_suffix("/converse"))?;
    Some(percent_decode(encoded)).filter(|m| !m.is_empty())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |at: usize| b.get(at).and_then(|&c| (c as char).to_digit(16));
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /model/{id}/converse` (`stream: false`) or `/converse-stream`.
pub(crate) fn converse(
    body: &Value,
    a: &Answer<'_>,
    stream: bool,
) -> Result<Response<MockBody>, Invalid> {
    validate(body)?;
    let plan = Plan::new(body, a)?;
    let mut res = if stream {
        let mut res = event_stream(stream_events(&plan, a), a.chunk_delay);
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
        res
    } else {
        json_response(StatusCode::OK, &whole_answer(&plan, a))
    };
    if let Ok(v) = HeaderValue::from_str(&request_id(a.id)) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(res)
}

fn request_id(id: u64) -> String {
    format!("00000000-0000-4000-8000-{id:012}")
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param: None,
        code: None,
    }
}

/// Bedrock's own checks of a Converse body, with its own messages.
fn validate(body: &Value) -> Result<(), Invalid> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must \
             not be null",
        ));
    };
    let mut previous = None;
    let mut tool_blocks = false;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        if i == 0 && role != Some("user") {
            return Err(invalid(
                "A conversation must start with a user message. Try again with a conversation that starts \
                 with a user message.",
            ));
        }
        if role == previous {
            return Err(invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation \
                 alternates between user and assistant roles and try again.",
            ));
        }
        previous = role;
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty());
        let Some(blocks) = blocks else {
            return Err(invalid(format!(
                "The content field in the Message object at messages.{i} is empty. Add a ContentBlock \
                 object to the content field and try again."
            )));
        };
        for (j, block) in blocks.iter().enumerate() {
            if block
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.trim().is_empty())
            {
                return Err(invalid(format!(
                    "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text \
                     to the text field, and try again."
                )));
            }
            tool_blocks |= block.get("toolUse").is_some() || block.get("toolResult").is_some();
        }
    }
    if messages.is_empty() {
        return Err(invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a \
             user message.",
        ));
    }
    for (i, block) in body
        .get("system")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if block
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(invalid(format!(
                "The text field in the SystemContentBlock object at system.{i} is blank. Add text to the text \
                 field, and try again."
            )));
        }
    }
    if tool_blocks && body.get("toolConfig").is_none() {
        return Err(invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }
    if let Some(max) = body.pointer("/inferenceConfig/maxTokens")
        && max.as_u64().is_none_or(|m| m == 0)
    {
        return Err(invalid(format!(
            "1 validation error detected: Value '{max}' at 'inferenceConfig.maxTokens' failed to satisfy \
             constraint: Member must have value greater than or equal to 1"
        )));
    }
    Ok(())
}

/// What the answer is made of.
struct Plan<'a> {
    blocks: Vec<Block<'a>>,
    stop_reason: &'static str,
    cached: bool,
}

enum Block<'a> {
    Reasoning,
    /// The answer's text: `Answer::chunks` pieces.
    Text,
    /// The scenario's `n`th call to `name`.
    ToolUse {
        n: usize,
        name: &'a str,
    },
}

impl<'a> Plan<'a> {
    fn new(body: &'a Value, a: &Answer<'_>) -> Result<Plan<'a>, Invalid> {
        let scenario = a.scenario;
        let mut blocks = Vec::with_capacity(2);
        match scenario.tool_calls() {
            0 => {
                if scenario == Scenario::Reasoning {
                    blocks.push(Block::Reasoning);
                }
                blocks.push(Block::Text);
            }
            calls => {
                let name = body
                    .pointer("/toolConfig/tools/0/toolSpec/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(
                            "x-mock-scenario asks for a tool call, but the request has no tools",
                        )
                    })?;
                blocks.extend((0..calls).map(|n| Block::ToolUse { n, name }));
            }
        }
        let stop_reason = match scenario {
            Scenario::ToolCall | Scenario::ParallelToolCalls => "tool_use",
            Scenario::Length => "max_tokens",
            Scenario::ContentFilter => "content_filtered",
            Scenario::Text | Scenario::Reasoning | Scenario::Cached => "end_turn",
        };
        Ok(Plan {
            blocks,
            stop_reason,
            cached: scenario == Scenario::Cached,
        })
    }

    /// Converse's usage. `inputTokens` excludes cache reads and writes; with `cached` they are carved out of the
    /// deterministic input count, so a gateway that adds them back (as it must) reports the same prompt total.
    fn usage(&self, a: &Answer<'_>) -> Value {
        let output = a.usage.output_tokens;
        if !self.cached {
            let input = a.usage.input_tokens;
            return json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output});
        }
        let (read, written) = (CACHED_READ_TOKENS, CACHED_WRITE_TOKENS);
        let input = a.usage.input_tokens.saturating_sub(read + written);
        json!({
            "inputTokens": input, "outputTokens": output, "totalTokens": input + read + written + output,
            "cacheReadInputTokens": read, "cacheWriteInputTokens": written
        })
    }
}

fn tool_use_id(a: &Answer<'_>, n: usize) -> String {
    format!("tooluse_mock{}_{n}", a.id)
}

/// The non-streamed answer.
fn whole_answer(plan: &Plan<'_>, a: &Answer<'_>) -> Value {
    let content: Vec<Value> = plan
        .blocks
        .iter()
        .map(|block| match block {
            Block::Reasoning => json!({"reasoningContent": {"reasoningText": {
                "text": REASONING_TEXT, "signature": REASONING_SIGNATURE
            }}}),
            Block::Text => json!({"text": completion_text(a.chunks)}),
            Block::ToolUse { n, name } => json!({"toolUse": {
                "toolUseId": tool_use_id(a, *n), "name": name,
                "input": {"location": TOOL_CALL_LOCATIONS[*n % TOOL_CALL_LOCATIONS.len()]}
            }}),
        })
        .collect();
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": plan.stop_reason,
        "usage": plan.usage(a),
        "metrics": {"latencyMs": 42}
    })
}

/// `messageStart`; per block a `contentBlockStart` (tool blocks only, as Bedrock does), its deltas and a
/// `contentBlockStop`; `messageStop` with the stop reason; `metadata` with the usage. One frame per event.
fn stream_events(plan: &Plan<'_>, a: &Answer<'_>) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(a.chunks + 4 * plan.blocks.len() + 3);
    let mut push = |kind: &str, mut payload: Value| {
        let pad = &PADDING[..(events.len() * 7 + 3) % PADDING.len()];
        payload["p"] = json!(pad);
        events.push(eventstream::event(kind, payload.to_string().as_bytes()));
    };
    push("messageStart", json!({"role": "assistant"}));
    for (index, block) in plan.blocks.iter().enumerate() {
        if let Block::ToolUse { n, name } = block {
            push(
                "contentBlockStart",
                json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": tool_use_id(a, *n), "name": name}}}),
            );
        }
        for delta in deltas(block, a) {
            push(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": delta}),
            );
        }
        push("contentBlockStop", json!({"contentBlockIndex": index}));
    }
    push("messageStop", json!({"stopReason": plan.stop_reason}));
    push(
        "metadata",
        json!({"usage": plan.usage(a), "metrics": {"latencyMs": 42}}),
    );
    events
}

/// A block's deltas: text in `Answer::chunks` pieces; reasoning in two halves then its signature; tool input in
/// two fragments cut inside a string.
fn deltas(block: &Block<'_>, a: &Answer<'_>) -> Vec<Value> {
    match block {
        Block::Text => (0..a.chunks).map(|i| json!({"text": piece(i)})).collect(),
        Block::Reasoning => {
            let (first, second) = REASONING_TEXT.split_at(REASONING_TEXT.len() / 2);
            vec![
                json!({"reasoningContent": {"text": first}}),
                json!({"reasoningContent": {"text": second}}),
                json!({"reasoningContent": {"signature": REASONING_SIGNATURE}}),
            ]
        }
        Block::ToolUse { n, .. } => {
            let arguments = tool_call_arguments(*n);
            let (first, second) = arguments.split_at(arguments.len() - 4);
            [first, second]
                .into_iter()
                .map(|input| json!({"toolUse": {"input": input}}))
                .collect()
        }
    }
}

// ---- credentials --------------------------------------------------------------------------------------------

fn refusal(message: impl Into<String>, exception: &'static str) -> Refusal {
    Refusal {
        status: 403,
        message: message.into(),
        kind: exception,
        code: None,
    }
}

/// A SigV4 `Authorization` with its three parts and an `x-amz-date`, or a Bedrock API key as `Bearer`.
/// `expected` restricts the API key, or the access key id of a signature.
pub(crate) fn check_auth(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let invalid_token = || {
        refusal(
            "The security token included in the request is invalid.",
            "UnrecognizedClientException",
        )
    };
    let Some(authorization) = header("authorization").filter(|v| !v.is_empty()) else {
        return Err(refusal(
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        ));
    };
    let (scheme, rest) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        let key = rest.trim();
        if key.is_empty() || expected.is_some_and(|want| want != key) {
            return Err(invalid_token());
        }
        return Ok(());
    }
    if scheme != "AWS4-HMAC-SHA256" {
        return Err(refusal(
            format!(
                "Unsupported authorization scheme {scheme:?}: expected AWS4-HMAC-SHA256 or Bearer"
            ),
            "IncompleteSignatureException",
        ));
    }
    let part = |name: &str| {
        rest.split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    let missing: Vec<String> = ["Credential", "SignedHeaders", "Signature"]
        .into_iter()
        .filter(|p| part(p).is_none_or(str::is_empty))
        .map(|p| format!("Authorization header requires '{p}' parameter."))
        .collect();
    if !missing.is_empty() {
        return Err(refusal(missing.join(" "), "IncompleteSignatureException"));
    }
    let (credential, signed, signature) = (
        part("Credential").unwrap_or_default(),
        part("SignedHeaders").unwrap_or_default(),
        part("Signature").unwrap_or_default(),
    );
    let scope: Vec<&str> = credential.split('/').collect();
    match scope.as_slice() {
        [_, date, region, _, "aws4_request"]
            if date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty() => {}
        _ => {
            return Err(refusal(
                format!(
                    "Credential should be of the form AKID/yyyyMMdd/region/service/aws4_request, got {credential:?}"
                ),
                "IncompleteSignatureException",
            ));
        }
    }
    if scope[3] != "bedrock" {
        return Err(refusal(
            format!(
                "Credential should be scoped to correct service: 'bedrock'. (got {:?})",
                scope[3]
            ),
            "InvalidSignatureException",
        ));
    }
    let Some(date) = header("x-amz-date") else {
        return Err(refusal(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            "IncompleteSignatureException",
        ));
    };
    if !date.starts_with(scope[1]) {
        return Err(refusal(
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: {:?} != {date:?}",
                scope[1]
            ),
            "InvalidSignatureException",
        ));
    }
    let signed: Vec<&str> = signed.split(';').collect();
    let unsent = signed.iter().find(|name| !headers.contains_key(**name));
    let sorted = signed.windows(2).all(|w| w[0] < w[1]);
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") || unsent.is_some() || !sorted {
        return Err(refusal(
            "The request signature we calculated does not match the signature you provided. Check your AWS \
             Secret Access Key and signing method.",
            "InvalidSignatureException",
        ));
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(refusal(
            "The request signature we calculated does not match the signature you provided.",
            "InvalidSignatureException",
        ));
    }
    if expected.is_some_and(|want| want != scope[0]) {
        return Err(invalid_token());
    }
    Ok(())
}

// ---- errors -------------------------------------------------------------------------------------------------

/// The exception a status stands for, and Bedrock's usual message for it.
fn exception_for(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        401 => (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        403 => (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => (
            "ResourceNotFoundException",
            "The provided model identifier is invalid.",
        ),
        408 => (
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        424 => (
            "ModelErrorException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        429 => (
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        503 => (
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        s if s >= 500 => (
            "InternalServerException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        _ => (
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        ),
    }
}

/// Bedrock's error body: `{"message": …}`.
pub(crate) fn error_body(status: StatusCode, spec: &ErrorSpec<'_>) -> Value {
    json!({"message": spec.message.unwrap_or(exception_for(status).1)})
}

/// `x-amzn-ErrorType: {Exception}:http://internal.amazon.com/coral/com.amazon.bedrock/`, the exception being the
/// spec's kind when it names one.
pub(crate) fn set_error_type(
    res: &mut Response<MockBody>,
    status: StatusCode,
    spec: &ErrorSpec<'_>,
) {
    let exception = spec
        .kind
        .filter(|k| k.ends_with("Exception"))
        .unwrap_or(exception_for(status).0);
    let value = format!("{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert("x-amzn-errortype", v);
    }
}

#[cfg(test)]
mod tests;
