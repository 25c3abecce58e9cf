use serde_json::{Value, json};

use super::*;

/// Encodes `events`, then finishes with `complete`; the bytes.
fn encode_all(events: &[StreamEvent], complete: bool) -> Vec<u8> {
    let mut encoder =
        ResponsesStreamEncoder::new("command-a", 1_700_000_000, "gw1", RequestEcho::default());
    let mut out = Vec::new();
    for e in events {
        encoder.encode(e, &mut out);
    }
    encoder.finish(complete, &mut out);
    // Anything after the end is ignored.
    encoder.encode(&StreamEvent::TextDelta("late".into()), &mut out);
    encoder.finish(true, &mut out);
    dump(&out);
    out
}

/// With `GATEHOUSE_DUMP_RESPONSES_STREAMS=<dir>`, each encoded stream is also written there, so the official SDK's
/// accumulator can be run over them by hand (no Python in unit tests).
fn dump(bytes: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    if let Ok(dir) = std::env::var("GATEHOUSE_DUMP_RESPONSES_STREAMS") {
        let path = format!("{dir}/stream-{}.sse", N.fetch_add(1, Ordering::Relaxed));
        std::fs::write(path, bytes).unwrap();
    }
}

/// The frames as `(event name, data)`, checking what every frame must have: the `event:` name equal to the JSON
/// `type`, and `sequence_number` counting from 0.
fn frames(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.ends_with("\n\n"), "{text}");
    let frames: Vec<(String, Value)> = text
        .trim_end()
        .split("\n\n")
        .map(|frame| {
            let (event, data) = frame.split_once('\n').unwrap();
            let name = event.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (name, data)
        })
        .collect();
    for (n, (name, data)) in frames.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], n, "{name}");
        // The SDK raises on any event carrying a top-level `error`.
        assert!(data.get("error").is_none_or(Value::is_null), "{data}");
    }
    frames
}

fn names(frames: &[(String, Value)]) -> Vec<&str> {
    frames.iter().map(|(n, _)| n.as_str()).collect()
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 12,
        completion_tokens: 7,
        cached_tokens: 8,
        cache_creation_tokens: 0,
        reasoning_tokens: 3,
    }
}

#[test]
fn a_text_stream_follows_openai_order_and_completes_with_the_whole_text() {
    let out = encode_all(
        &[
            StreamEvent::Start {
                id: Some("abc".into()),
                model: Some("command-a-03-2025".into()),
            },
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(usage()),
        ],
        true,
    );
    let frames = frames(&out);
    assert_eq!(
        names(&frames),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &frames[0].1["response"];
    assert_eq!(created["id"], "resp_abc");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], "command-a-03-2025");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(
        frames[2].1,
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
            "item": {"type": "message", "id": "msg_abc_0", "status": "in_progress", "role": "assistant", "content": []}})
    );
    assert_eq!(
        frames[3].1,
        json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_abc_0", "output_index": 0,
            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
    );
    assert_eq!(
        frames[4].1,
        json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_abc_0", "output_index": 0,
            "content_index": 0, "delta": "Hel", "logprobs": []})
    );
    assert_eq!(frames[6].1["text"], "Hello");
    assert_eq!(frames[7].1["part"]["text"], "Hello");
    assert_eq!(frames[8].1["item"]["status"], "completed");
    assert_eq!(frames[8].1["item"]["content"][0]["text"], "Hello");
    let done = &frames[9].1["response"];
    assert_eq!(done["id"], "resp_abc");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
            "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 19})
    );
}

#[test]
fn reasoning_text_and_parallel_calls_are_items_in_order_each_closed_before_the_next() {
    let out = encode_all(
        &[
            StreamEvent::Start {
                id: None,
                model: None,
            },
            StreamEvent::ReasoningDelta("Two ".into()),
            StreamEvent::ReasoningDelta("cities.".into()),
            StreamEvent::TextDelta("Checking.".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_p".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"location\":".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "\"Paris\"}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_l".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 1,
                fragment: "{\"location\":\"London\"}".into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
        ],
        true,
    );
    let frames = frames(&out);
    assert_eq!(
        names(&frames),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    // Without a provider id, the gateway's id names the response.
    assert_eq!(frames[0].1["response"]["id"], "resp_gw1");
    assert_eq!(frames[6].1["text"], "Two cities.");
    assert_eq!(
        frames[7].1["part"],
        json!({"type": "summary_text", "text": "Two cities."})
    );
    assert_eq!(
        frames[15].1["item"],
        json!({"type": "function_call", "id": "fc_gw1_2", "call_id": "call_p", "name": "get_weather",
            "arguments": "", "status": "in_progress"})
    );
    assert_eq!(frames[16].1["output_index"], 2);
    assert_eq!(frames[18].1["arguments"], "{\"location\":\"Paris\"}");
    assert_eq!(frames[20].1["output_index"], 3);
    let output = &frames[24].1["response"]["output"];
    assert_eq!(output[0]["summary"][0]["text"], "Two cities.");
    assert_eq!(output[1]["content"][0]["text"], "Checking.");
    assert_eq!(output[2]["arguments"], "{\"location\":\"Paris\"}");
    assert_eq!(output[3]["call_id"], "call_l");
    assert_eq!(output[3]["arguments"], "{\"location\":\"London\"}");
    assert_eq!(output[3]["status"], "completed");
}

#[test]
fn a_length_finish_is_response_incomplete_with_the_reason() {
    let out = encode_all(
        &[
            StreamEvent::TextDelta("cut".into()),
            StreamEvent::Finish(FinishReason::Length),
        ],
        true,
    );
    let frames = frames(&out);
    let (last, data) = frames.last().unwrap();
    assert_eq!(last, "response.incomplete");
    assert_eq!(data["response"]["status"], "incomplete");
    assert_eq!(
        data["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(data["response"]["output"][0]["status"], "incomplete");
    assert_eq!(data["response"]["output"][0]["content"][0]["text"], "cut");
    // The message was closed as incomplete too.
    let item_done = frames
        .iter()
        .find(|(n, _)| n == "response.output_item.done")
        .unwrap();
    assert_eq!(item_done.1["item"]["status"], "incomplete");
}

#[test]
fn an_error_mid_stream_is_response_failed_with_what_came_so_far() {
    let out = encode_all(
        &[
            StreamEvent::TextDelta("partial".into()),
            StreamEvent::Error(ProviderError::new(429, "slow down")),
            StreamEvent::TextDelta("ignored".into()),
        ],
        true,
    );
    let frames = frames(&out);
    assert_eq!(
        names(&frames),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ]
    );
    let failed = &frames[5].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "rate_limit_exceeded", "message": "slow down", "type": "rate_limit_error", "param": null})
    );
    assert_eq!(failed["output"][0]["status"], "incomplete");
    assert_eq!(failed["output"][0]["content"][0]["text"], "partial");
}

#[test]
fn a_stream_cut_before_its_finish_fails_and_an_empty_clean_one_completes() {
    let cut = frames(&encode_all(&[StreamEvent::TextDelta("x".into())], false));
    let (name, data) = cut.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(data["response"]["error"]["code"], "server_error");

    let empty = frames(&encode_all(&[], true));
    assert_eq!(
        names(&empty),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    assert_eq!(empty[2].1["response"]["output"], json!([]));
}

#[test]
fn arguments_before_their_call_start_still_get_an_item() {
    let frames = frames(&encode_all(
        &[
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{}".into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
        ],
        true,
    ));
    assert_eq!(frames[2].0, "response.output_item.added");
    assert_eq!(frames[2].1["item"]["call_id"], "call_0");
    assert_eq!(
        frames.last().unwrap().1["response"]["output"][0]["arguments"],
        "{}"
    );
}

#[test]
fn the_echoed_request_fields_are_in_every_response_object() {
    let echo = RequestEcho {
        instructions: Some("Be brief.".into()),
        tools: vec![json!({"type": "function", "name": "f", "parameters": null, "strict": true})],
        tool_choice: json!("required"),
        parallel_tool_calls: false,
        max_output_tokens: Some(50),
        ..RequestEcho::default()
    };
    let mut encoder = ResponsesStreamEncoder::new("m", 1, "id", echo);
    let mut out = Vec::new();
    encoder.finish(true, &mut out);
    for (_, data) in frames(&out) {
        let r = &data["response"];
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["tools"][0]["name"], "f");
        assert_eq!(r["tool_choice"], "required");
        assert_eq!(r["parallel_tool_calls"], false);
        assert_eq!(r["max_output_tokens"], 50);
        assert_eq!(r["store"], false);
    }
}
