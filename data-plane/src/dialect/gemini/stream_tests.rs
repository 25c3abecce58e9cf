use serde_json::{Value, json};

use super::*;

/// `data:` frames with CRLF line ends, as Google sends them.
fn sse(chunks: &[Value]) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|c| format!("data: {c}\r\n\r\n").into_bytes())
        .collect()
}

fn run(pieces: &[&[u8]], complete: bool) -> Vec<StreamEvent> {
    let mut decoder = GeminiStreamDecoder::default();
    let mut out = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut out);
    }
    decoder.finish(complete, &mut out);
    out
}

/// The events of `bytes` fed whole, then split at every position, then byte by byte: all must agree.
fn decode_every_way(bytes: &[u8]) -> Vec<StreamEvent> {
    let whole = run(&[bytes], true);
    for cut in 1..bytes.len() {
        assert_eq!(
            run(&[&bytes[..cut], &bytes[cut..]], true),
            whole,
            "split at byte {cut}"
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&singles, true), whole, "byte by byte");
    whole
}

fn text_chunk(text: &str) -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
           "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
           "modelVersion": "gemini-2.5-flash", "responseId": "r-1"})
}

fn start() -> StreamEvent {
    StreamEvent::Start {
        id: Some("r-1".into()),
        model: Some("gemini-2.5-flash".into()),
    }
}

#[test]
fn text_thoughts_finish_and_the_last_usage() {
    let bytes = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hmm, ", "thought": true}]}}],
               "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
               "usageMetadata": {"promptTokenCount": 9, "thoughtsTokenCount": 3}}),
        text_chunk("Héllo"),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " wörld\n"}, {"text": "", "thoughtSignature": "c2ln"}]},
               "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "cachedContentTokenCount": 4, "candidatesTokenCount": 2,
                                 "thoughtsTokenCount": 3, "totalTokenCount": 14},
               "modelVersion": "gemini-2.5-flash", "responseId": "r-1"}),
    ]);
    assert_eq!(
        decode_every_way(&bytes),
        vec![
            start(),
            StreamEvent::ReasoningDelta("Hmm, ".into()),
            StreamEvent::TextDelta("Héllo".into()),
            StreamEvent::TextDelta(" wörld\n".into()),
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(Usage {
                prompt_tokens: 9,
                completion_tokens: 5,
                cached_tokens: 4,
                cache_creation_tokens: 0,
                reasoning_tokens: 3,
            }),
        ]
    );
}

#[test]
fn whole_function_calls_become_one_start_and_one_arguments_event_each() {
    let bytes = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "U0lH"}]}}],
            "responseId": "r-1", "modelVersion": "gemini-2.5-flash"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"id": "fc-7", "name": "get_weather", "args": {"location": "London"}}}]},
            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10}}),
    ]);
    assert_eq!(
        decode_every_way(&bytes),
        vec![
            start(),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_0__thought__U0lH".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: r#"{"location":"Paris"}"#.into()
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "fc-7".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallArgs {
                index: 1,
                fragment: r#"{"location":"London"}"#.into()
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                prompt_tokens: 20,
                completion_tokens: 10,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn a_blocked_prompt_finishes_with_content_filter() {
    let bytes = sse(&[json!({
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
        "modelVersion": "gemini-2.5-flash", "responseId": "r-1"})]);
    assert_eq!(
        decode_every_way(&bytes),
        vec![
            start(),
            StreamEvent::Finish(FinishReason::ContentFilter),
            StreamEvent::Usage(Usage {
                prompt_tokens: 5,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn length_and_safety_stops_are_mapped() {
    let stop = |reason: &str| {
        let bytes = sse(&[
            text_chunk("a"),
            json!({"candidates": [{"finishReason": reason, "index": 0}]}),
        ]);
        run(&[&bytes], true)
            .into_iter()
            .find_map(|e| match e {
                StreamEvent::Finish(r) => Some(r),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(stop("MAX_TOKENS"), FinishReason::Length);
    assert_eq!(stop("SAFETY"), FinishReason::ContentFilter);
    assert_eq!(stop("RECITATION"), FinishReason::ContentFilter);
    assert_eq!(stop("MALFORMED_FUNCTION_CALL"), FinishReason::Stop);
}

#[test]
fn a_mid_stream_error_is_mapped_and_ends_the_stream() {
    let mut bytes = sse(&[text_chunk("Hi")]);
    bytes.extend(sse(&[
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
        text_chunk("ignored"),
    ]));
    let events = decode_every_way(&bytes);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[1], StreamEvent::TextDelta("Hi".into()));
    let StreamEvent::Error(e) = &events[2] else {
        panic!("expected an error, got {events:?}");
    };
    assert_eq!(
        (e.status, e.message.as_str(), e.code.as_deref()),
        (503, "The model is overloaded.", Some("UNAVAILABLE"))
    );
}

#[test]
fn an_unreadable_frame_is_a_502_error() {
    let events = run(
        &[b"data: {\"candidates\": [\r\n\r\n", b"data: {}\r\n\r\n"],
        true,
    );
    assert!(
        matches!(events.as_slice(), [StreamEvent::Error(e)] if e.status == 502),
        "{events:?}"
    );
}

#[test]
fn an_end_without_finish_reason_still_finishes_unless_the_stream_broke() {
    let bytes = sse(&[text_chunk("partial")]);
    let clean = run(&[&bytes], true);
    assert_eq!(
        clean[2..],
        [
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(Usage {
                prompt_tokens: 9,
                ..Usage::default()
            })
        ]
    );
    let broken = run(&[&bytes], false);
    assert_eq!(
        broken[2..],
        [StreamEvent::Usage(Usage {
            prompt_tokens: 9,
            ..Usage::default()
        })]
    );
    // The last frame without its blank line is still read at the end.
    let unterminated = format!("data: {}", text_chunk("x"));
    assert_eq!(
        run(&[unterminated.as_bytes()], true)[1],
        StreamEvent::TextDelta("x".into())
    );
}

#[test]
fn an_empty_stream_is_an_error() {
    let events = run(&[b": keep-alive\r\n\r\n"], true);
    assert!(
        matches!(events.as_slice(), [StreamEvent::Error(e)] if e.status == 502),
        "{events:?}"
    );
}
