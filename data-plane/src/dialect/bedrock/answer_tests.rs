//! Bedrock answers, streams fed in every split, and errors, against recorded shapes.

use serde_json::{Value, json};

use super::eventstream::{HeaderValue, encode_event, encode_message};
use super::*;
use crate::dialect::chat::{FinishReason, StreamEvent, Usage};

// ---- response -----------------------------------------------------------------------------------------------

#[test]
fn an_answer_with_reasoning_text_and_tool_calls_decodes() {
    let answer = BedrockCodec
        .decode(
            br#"{"output":{"message":{"role":"assistant","content":[
                {"reasoningContent":{"reasoningText":{"text":"Think.","signature":"sig"}}},
                {"text":"Checking."},
                {"toolUse":{"toolUseId":"tooluse_1","name":"w","input":{"location":"Paris"}}},
                {"toolUse":{"toolUseId":"tooluse_2","name":"w","input":{"location":"London"}}}]}},
                "stopReason":"tool_use",
                "usage":{"inputTokens":10,"outputTokens":20,"totalTokens":30,"cacheReadInputTokens":8,"cacheWriteInputTokens":4},
                "metrics":{"latencyMs":100}}"#,
        )
        .unwrap();
    assert_eq!(answer.reasoning.as_deref(), Some("Think."));
    assert_eq!(answer.text.as_deref(), Some("Checking."));
    let calls: Vec<_> = answer
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.function.name.as_str(),
                c.function.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("tooluse_1", "w", r#"{"location":"Paris"}"#),
            ("tooluse_2", "w", r#"{"location":"London"}"#)
        ]
    );
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        answer.usage,
        Some(Usage {
            prompt_tokens: 22,
            completion_tokens: 20,
            cached_tokens: 8,
            cache_creation_tokens: 4,
            reasoning_tokens: 0
        })
    );
}

#[test]
fn every_stop_reason_maps_to_an_openai_finish_reason() {
    for (reason, want) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("model_context_window_exceeded", FinishReason::Length),
        ("guardrail_intervened", FinishReason::ContentFilter),
        ("content_filtered", FinishReason::ContentFilter),
        ("malformed_model_output", FinishReason::Stop),
        ("malformed_tool_use", FinishReason::Stop),
        ("something_new", FinishReason::Stop),
        // tool_use without a call is not reported as tool_calls.
        ("tool_use", FinishReason::Stop),
    ] {
        let body = format!(
            r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":"x"}}]}}}},"stopReason":"{reason}"}}"#
        );
        assert_eq!(
            BedrockCodec.decode(body.as_bytes()).unwrap().finish_reason,
            Some(want),
            "{reason}"
        );
    }
    assert!(matches!(
        BedrockCodec.decode(b"not json"),
        Err(TranslateError::BadResponse(_))
    ));
}

// ---- stream -------------------------------------------------------------------------------------------------

fn event(kind: &str, payload: Value) -> Vec<u8> {
    // Bedrock pads payloads with a random `p` field; the decoder must ignore it.
    let mut payload = payload;
    payload
        .as_object_mut()
        .unwrap()
        .insert("p".into(), json!("abcdefgh"));
    encode_event(kind, payload.to_string().as_bytes())
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    encode_message(
        &[
            (":exception-type", HeaderValue::String(kind)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("exception")),
        ],
        json!({"message": message}).to_string().as_bytes(),
    )
}

/// Feeds `stream` in pieces of `step` bytes (0: all at once) and ends it.
fn decode_stream(stream: &[u8], step: usize) -> Vec<StreamEvent> {
    let mut decoder = BedrockCodec.stream_decoder();
    let mut out = Vec::new();
    if step == 0 {
        decoder.feed(stream, &mut out);
    } else {
        for piece in stream.chunks(step) {
            decoder.feed(piece, &mut out);
        }
    }
    decoder.finish(true, &mut out);
    out
}

fn tool_stream() -> Vec<u8> {
    [
        event("messageStart", json!({"role": "assistant"})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm."}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}})),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"text": "Let me check."}})),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("contentBlockStart", json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tu_1", "name": "w"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"location\":"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"Paris\"}"}}})),
        event("contentBlockStop", json!({"contentBlockIndex": 2})),
        event("contentBlockStart", json!({"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "tu_2", "name": "w"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{\"location\":\"London\"}"}}})),
        event("contentBlockStop", json!({"contentBlockIndex": 3})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event("metadata", json!({"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, "cacheReadInputTokens": 8}, "metrics": {"latencyMs": 9}})),
    ]
    .concat()
}

#[test]
fn a_stream_decodes_the_same_fed_whole_or_byte_by_byte() {
    let stream = tool_stream();
    let whole = decode_stream(&stream, 0);
    assert_eq!(
        whole,
        vec![
            StreamEvent::Start {
                id: None,
                model: None
            },
            StreamEvent::ReasoningDelta("Hmm.".into()),
            StreamEvent::TextDelta("Let me check.".into()),
            // Tool indices count tool calls only: Bedrock's block 2 is the answer's call 0.
            StreamEvent::ToolCallStart {
                index: 0,
                id: "tu_1".into(),
                name: "w".into()
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"location\":".into()
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "\"Paris\"}".into()
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "tu_2".into(),
                name: "w".into()
            },
            StreamEvent::ToolCallArgs {
                index: 1,
                fragment: "{\"location\":\"London\"}".into()
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                prompt_tokens: 18,
                completion_tokens: 5,
                cached_tokens: 8,
                cache_creation_tokens: 0,
                reasoning_tokens: 0
            }),
        ]
    );
    assert_eq!(decode_stream(&stream, 1), whole);
    assert_eq!(decode_stream(&stream, 7), whole);
}

#[test]
fn events_come_out_as_soon_as_their_frame_is_complete() {
    let first = event("messageStart", json!({"role": "assistant"}));
    let second = event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    );
    let mut decoder = BedrockCodec.stream_decoder();
    let mut out = Vec::new();
    decoder.feed(&first[..first.len() - 1], &mut out);
    assert!(out.is_empty());
    let mut rest = first[first.len() - 1..].to_vec();
    rest.extend_from_slice(&second[..5]);
    decoder.feed(&rest, &mut out);
    assert_eq!(
        out,
        vec![StreamEvent::Start {
            id: None,
            model: None
        }]
    );
    decoder.feed(&second[5..], &mut out);
    assert_eq!(out.last(), Some(&StreamEvent::TextDelta("Hi".into())));
}

#[test]
fn the_json_mode_tool_streams_as_text_and_finishes_with_stop() {
    let stream = [
        event("messageStart", json!({"role": "assistant"})),
        event("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": JSON_TOOL_NAME}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\":"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "1}"}}})),
        event("messageStop", json!({"stopReason": "tool_use"})),
    ]
    .concat();
    assert_eq!(
        decode_stream(&stream, 3),
        vec![
            StreamEvent::Start {
                id: None,
                model: None
            },
            StreamEvent::TextDelta("{\"a\":".into()),
            StreamEvent::TextDelta("1}".into()),
            StreamEvent::Finish(FinishReason::Stop),
        ]
    );
}

#[test]
fn a_corrupt_frame_is_an_error_and_ends_the_stream() {
    let mut stream = event("messageStart", json!({"role": "assistant"}));
    let mut damaged = event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    );
    let at = damaged.len() - 10;
    damaged[at] ^= 0x01;
    stream.extend(&damaged);
    stream.extend(event("messageStop", json!({"stopReason": "end_turn"})));
    let out = decode_stream(&stream, 1);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        out[0],
        StreamEvent::Start {
            id: None,
            model: None
        }
    );
    let StreamEvent::Error(error) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(error.status, 502);
    assert!(error.message.contains("CRC"), "{}", error.message);
}

#[test]
fn stream_exceptions_map_to_statuses() {
    for (kind, message, status, code) in [
        (
            "throttlingException",
            "Too many requests, please wait.",
            429,
            "rate_limit_exceeded",
        ),
        (
            "validationException",
            "Input is too long for requested model.",
            400,
            "context_length_exceeded",
        ),
        (
            "serviceUnavailableException",
            "Service unavailable.",
            503,
            "serviceUnavailableException",
        ),
        (
            "modelStreamErrorException",
            "The model failed.",
            502,
            "modelStreamErrorException",
        ),
        (
            "internalServerException",
            "Oops.",
            500,
            "internalServerException",
        ),
    ] {
        let mut stream = event("messageStart", json!({"role": "assistant"}));
        stream.extend(exception(kind, message));
        let out = decode_stream(&stream, 2);
        let Some(StreamEvent::Error(error)) = out.last() else {
            panic!("{kind}: {out:?}")
        };
        assert_eq!(
            (error.status, error.code.as_deref(), error.message.as_str()),
            (status, Some(code), message),
            "{kind}"
        );
        assert_eq!(out.len(), 2, "{kind}: nothing after the error");
    }
}

#[test]
fn a_stream_that_ends_before_message_stop_is_an_error() {
    let start = event("messageStart", json!({"role": "assistant"}));
    let out = decode_stream(&start, 0);
    assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.status == 502));

    let mut decoder = BedrockCodec.stream_decoder();
    let mut out = Vec::new();
    decoder.feed(&start[..5], &mut out);
    decoder.finish(false, &mut out);
    assert!(matches!(out.as_slice(), [StreamEvent::Error(e)] if e.message.contains("cut off")));

    // After messageStop a missing metadata event is not an error.
    let mut done = start.clone();
    done.extend(event("messageStop", json!({"stopReason": "max_tokens"})));
    assert_eq!(
        decode_stream(&done, 0).last(),
        Some(&StreamEvent::Finish(FinishReason::Length))
    );
}

// ---- errors -------------------------------------------------------------------------------------------------

#[test]
fn bedrock_errors_keep_their_message_and_get_openai_statuses() {
    for (status, body, want_status, want_code) in [
        (
            400,
            r#"{"message":"Input is too long for requested model."}"#,
            400,
            Some("context_length_exceeded"),
        ),
        (400, r#"{"message":"Malformed input request"}"#, 400, None),
        (
            403,
            r#"{"message":"The security token included in the request is invalid."}"#,
            401,
            Some("invalid_api_key"),
        ),
        (
            403,
            r#"{"Message":"User is not authorized to perform: bedrock:InvokeModel"}"#,
            403,
            None,
        ),
        (
            404,
            r#"{"message":"The provided model identifier is invalid."}"#,
            404,
            Some("model_not_found"),
        ),
        (408, r#"{"message":"Model has timed out"}"#, 504, None),
        (424, r#"{"message":"Model error"}"#, 502, None),
        (
            429,
            r#"{"message":"Too many requests, please wait before trying again."}"#,
            429,
            Some("rate_limit_exceeded"),
        ),
        (500, r#"{"message":"Internal error"}"#, 500, None),
        (503, r#"{"message":"Service unavailable"}"#, 503, None),
    ] {
        let e = BedrockCodec.decode_error(status, body.as_bytes());
        let message: Value = serde_json::from_str(body).unwrap();
        let message = message
            .get("message")
            .or(message.get("Message"))
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(
            (e.status, e.code.as_deref(), e.message.as_str()),
            (want_status, want_code, message),
            "{body}"
        );
        assert_eq!(
            e.kind,
            crate::dialect::chat::ProviderError::kind_for_status(want_status)
        );
    }
    let unreadable = BedrockCodec.decode_error(500, b"<html>oops</html>");
    assert_eq!(
        (unreadable.status, unreadable.message.as_str()),
        (502, "<html>oops</html>")
    );
    assert_eq!(
        BedrockCodec.decode_error(500, b"").message,
        "AWS Bedrock answered with status 500"
    );
}

#[test]
fn the_error_type_header_decides_when_the_caller_has_it() {
    let e = provider_error(
        400,
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        br#"{"message":"Too many tokens"}"#,
    );
    assert_eq!(
        (e.status, e.code.as_deref()),
        (429, Some("rate_limit_exceeded"))
    );
    let e = provider_error(424, Some("ModelErrorException"), br#"{"message":"boom"}"#);
    assert_eq!(
        (e.status, e.code.as_deref(), e.message.as_str()),
        (502, Some("ModelErrorException"), "boom")
    );
}
