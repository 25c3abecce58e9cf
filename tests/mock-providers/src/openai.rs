//! OpenAI's formats: chat completions, Responses and embeddings, as the official SDKs parse them.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::answer::{Answer, Invalid};
use crate::body::{MockBody, data_event, event_stream, json as json_response, named_event};
use crate::text::{completion_text, embedding_vector, piece};

/// Default and largest embedding size: small, because tests look at shapes, not meaning.
const DEFAULT_DIMENSIONS: u64 = 8;
const MAX_DIMENSIONS: u64 = 4096;
const MAX_INPUTS: usize = 2048;

fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool) == Some(true)
}

fn with_request_id(mut res: Response<MockBody>, id: u64) -> Response<MockBody> {
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{id}")) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

fn chat_usage(a: &Answer<'_>) -> Value {
    json!({
        "prompt_tokens": a.usage.input_tokens,
        "completion_tokens": a.usage.output_tokens,
        "total_tokens": a.usage.total(),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

/// `POST /v1/chat/completions`.
pub(crate) fn chat_completions(
    body: &Value,
    a: &Answer<'_>,
) -> Result<Response<MockBody>, Invalid> {
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(Invalid::openai_missing("messages"));
    }
    let id = format!("chatcmpl-mock{}", a.id);
    let calls = tool_calls(body, a)?;
    let res = if wants_stream(body) {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        event_stream(chat_chunks(&id, a, include_usage, &calls), a.chunk_delay)
    } else if !calls.is_empty() {
        json_response(
            StatusCode::OK,
            &json!({
                "id": id, "object": "chat.completion", "created": a.created, "model": a.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": null, "refusal": null, "annotations": [],
                        "tool_calls": calls},
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": chat_usage(a),
                "service_tier": "default",
                "system_fingerprint": "fp_mock"
            }),
        )
    } else {
        json_response(
            StatusCode::OK,
            &json!({
                "id": id,
                "object": "chat.completion",
                "created": a.created,
                "model": a.model,
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": completion_text(a.chunks),
                        "refusal": null,
                        "annotations": []
                    },
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": chat_usage(a),
                "service_tier": "default",
                "system_fingerprint": "fp_mock"
            }),
        )
    };
    Ok(with_request_id(res, a.id))
}

/// The tool calls the scenario asks for (`tool_call`, `parallel_tool_calls`), to the request's first tool.
fn tool_calls(body: &Value, a: &Answer<'_>) -> Result<Vec<Value>, Invalid> {
    let count = a.scenario.tool_calls();
    if count == 0 {
        return Ok(Vec::new());
    }
    let name = body
        .pointer("/tools/0/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::openai_missing("tools"))?;
    Ok((0..count)
        .map(|i| {
            json!({"id": format!("call_mock{}_{i}", a.id), "type": "function",
                "function": {"name": name, "arguments": crate::scenario::tool_call_arguments(i)}})
        })
        .collect())
}

/// A role chunk, one chunk per piece (or, for tool calls, a header and two argument fragments per call), a
/// finish chunk, the usage chunk when asked for, then `[DONE]`. With `include_usage`, every chunk carries
/// `"usage": null` as OpenAI's do.
fn chat_chunks(id: &str, a: &Answer<'_>, include_usage: bool, calls: &[Value]) -> Vec<Bytes> {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": a.created,
            "model": a.model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": choices,
        });
        if include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        data_event(&c)
    };
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let mut events = Vec::with_capacity(a.chunks + 4);
    events.push(chunk(
        choice(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ),
        None,
    ));
    for (i, call) in calls.iter().enumerate() {
        let args = call["function"]["arguments"].as_str().unwrap_or_default();
        let (head, tail) = args.split_at(args.len() / 2);
        let header = json!([{"index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}}]);
        events.push(chunk(
            choice(json!({"tool_calls": header}), Value::Null),
            None,
        ));
        for fragment in [head, tail] {
            let delta = json!([{"index": i, "function": {"arguments": fragment}}]);
            events.push(chunk(
                choice(json!({"tool_calls": delta}), Value::Null),
                None,
            ));
        }
    }
    if calls.is_empty() {
        for i in 0..a.chunks {
            events.push(chunk(
                choice(json!({"content": piece(i)}), Value::Null),
                None,
            ));
        }
    }
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    events.push(chunk(choice(json!({}), json!(finish)), None));
    if include_usage {
        events.push(chunk(json!([]), Some(chat_usage(a))));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// `POST /v1/responses`.
pub(crate) fn responses(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    let id = format!("resp_mock{}", a.id);
    let msg_id = format!("msg_mock{}", a.id);
    let text = completion_text(a.chunks);
    let message = |status: &str, text: &str| {
        json!({
            "type": "message", "id": msg_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        })
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": a.created, "status": status,
            "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null,
            "model": a.model, "output": output, "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": null, "metadata": {}
        })
    };
    let usage = json!({
        "input_tokens": a.usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": a.usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": a.usage.total()
    });
    let completed = response("completed", json!([message("completed", &text)]), usage);
    if !wants_stream(body) {
        return Ok(with_request_id(
            json_response(StatusCode::OK, &completed),
            a.id,
        ));
    }

    // Every event names its type twice (the SSE `event:` line and `type`) and carries a sequence number.
    let mut events = Vec::with_capacity(a.chunks + 8);
    let mut push = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(events.len());
        events.push(named_event(name, &data));
    };
    let started = response("in_progress", json!([]), Value::Null);
    push("response.created", json!({"response": started}));
    push("response.in_progress", json!({"response": started}));
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {"type": "message", "id": msg_id, "status": "in_progress",
            "role": "assistant", "content": []}}),
    );
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    let at = json!({"item_id": msg_id, "output_index": 0, "content_index": 0});
    let with = |extra: Value| {
        let mut v = at.clone();
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    push(
        "response.content_part.added",
        with(json!({"part": part("")})),
    );
    for i in 0..a.chunks {
        push(
            "response.output_text.delta",
            with(json!({"delta": piece(i), "logprobs": []})),
        );
    }
    push(
        "response.output_text.done",
        with(json!({"text": text, "logprobs": []})),
    );
    push(
        "response.content_part.done",
        with(json!({"part": part(&text)})),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": message("completed", &text)}),
    );
    push("response.completed", json!({"response": completed}));
    Ok(with_request_id(event_stream(events, a.chunk_delay), a.id))
}

/// `POST /v1/embeddings`: one vector per input, derived from the input's position so it is deterministic.
pub(crate) fn embeddings(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    let inputs = match body.get("input") {
        Some(Value::String(_)) => 1,
        // A list of token ids is one input; a list of strings or of token lists is one input each.
        Some(Value::Array(items)) if items.iter().all(Value::is_number) && !items.is_empty() => 1,
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_INPUTS => items.len(),
        Some(Value::Array(items)) if items.len() > MAX_INPUTS => {
            return Err(Invalid {
                message: format!("'input' : maximum {MAX_INPUTS} inputs per request"),
                param: Some("input"),
                code: None,
            });
        }
        _ => return Err(Invalid::openai_missing("input")),
    };
    let dimensions = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_DIMENSIONS)
        .clamp(1, MAX_DIMENSIONS) as usize;
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = (0..inputs)
        .map(|index| {
            let vector = embedding_vector(index, dimensions);
            // The Python SDK asks for base64 by default: little-endian f32s, as OpenAI sends them.
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let res = json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": a.model,
            "usage": {"prompt_tokens": a.usage.input_tokens, "total_tokens": a.usage.input_tokens}
        }),
    );
    Ok(with_request_id(res, a.id))
}
