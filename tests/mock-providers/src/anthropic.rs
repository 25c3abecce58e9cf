//! Anthropic's Messages API, JSON and the `event:`/`data:` stream, as the official SDKs parse them.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::{MockBody, event_stream, json as json_response, named_event};
use crate::handler::{Answer, Invalid};
use crate::text::{completion_text, piece};

/// `POST /v1/messages`. Anthropic requires `max_tokens` and `messages`.
pub(crate) fn messages(body: &Value, a: &Answer<'_>) -> Result<Response<MockBody>, Invalid> {
    if !body.get("max_tokens").is_some_and(Value::is_u64) {
        return Err(Invalid::anthropic_missing("max_tokens"));
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(Invalid::anthropic_missing("messages"));
    }
    let id = format!("msg_mock{}", a.id);
    let usage = |output_tokens: u64| {
        json!({
            "input_tokens": a.usage.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard"
        })
    };
    let message = |content: Value, stop_reason: Value, usage: Value| {
        json!({
            "id": id, "type": "message", "role": "assistant", "model": a.model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage
        })
    };
    let mut res = if body.get("stream").and_then(Value::as_bool) == Some(true) {
        event_stream(
            stream_events(a, &message(json!([]), Value::Null, usage(1))),
            a.chunk_delay,
        )
    } else {
        json_response(
            StatusCode::OK,
            &message(
                json!([{"type": "text", "text": completion_text(a.chunks)}]),
                json!("end_turn"),
                usage(a.usage.output_tokens),
            ),
        )
    };
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{}", a.id)) {
        res.headers_mut().insert("request-id", v);
    }
    Ok(res)
}

/// `message_start` (input usage), one text block (a `ping` after its start, as the API sends), `message_delta` with
/// the output tokens, `message_stop`.
fn stream_events(a: &Answer<'_>, start: &Value) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(a.chunks + 6);
    events.push(named_event(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    ));
    events.push(named_event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    events.push(named_event("ping", &json!({"type": "ping"})));
    for i in 0..a.chunks {
        events.push(named_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece(i)}}),
        ));
    }
    events.push(named_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(named_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": a.usage.output_tokens}}),
    ));
    events.push(named_event(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    events
}
