//! Recorded Anthropic streams, fed whole and byte by byte.

use super::*;
use crate::dialect::chat::Usage;

/// Decodes `stream` fed in pieces of `piece` bytes.
fn decode_in_pieces(stream: &str, piece: usize) -> Vec<StreamEvent> {
    let mut decoder = MessagesStreamDecoder::default();
    let mut out = Vec::new();
    for chunk in stream.as_bytes().chunks(piece) {
        decoder.feed(chunk, &mut out);
    }
    decoder.finish(true, &mut out);
    out
}

/// Decodes `stream` whole, checks that every other way of cutting it gives the same events, and returns them.
fn decode(stream: &str) -> Vec<StreamEvent> {
    let whole = decode_in_pieces(stream, stream.len().max(1));
    assert_eq!(decode_in_pieces(stream, 1), whole, "byte by byte");
    assert_eq!(decode_in_pieces(stream, 7), whole, "7 bytes at a time");
    whole
}

fn text(s: &str) -> StreamEvent {
    StreamEvent::TextDelta(s.to_owned())
}

fn usage(prompt: u64, completion: u64, cached: u64, written: u64) -> StreamEvent {
    StreamEvent::Usage(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        cache_creation_tokens: written,
        reasoning_tokens: 0,
    })
}

fn start() -> StreamEvent {
    StreamEvent::Start {
        id: Some("msg_01".to_owned()),
        model: Some("claude-sonnet-4-5".to_owned()),
    }
}

const TEXT: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" \\\"w\\u00f6rld\\\" \u{1F600}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

#[test]
fn a_text_stream_decodes_in_order_whatever_the_cuts() {
    assert_eq!(
        decode(TEXT),
        vec![
            start(),
            usage(25, 1, 0, 0),
            text("Hello"),
            text(" \"wörld\" \u{1F600}"),
            StreamEvent::Finish(FinishReason::Stop),
            usage(25, 12, 0, 0),
        ]
    );
}

#[test]
fn crlf_line_ends_and_missing_event_lines_are_accepted() {
    let crlf = TEXT.replace('\n', "\r\n");
    assert_eq!(decode(&crlf), decode(TEXT));
    let no_names: String = TEXT
        .lines()
        .filter(|l| !l.starts_with("event:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(decode(&no_names), decode(TEXT));
}

const TOOLS: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Two cities.\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking.\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_A\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"Paris\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_B\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"London\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":3}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":80}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

#[test]
fn tool_indexes_count_tool_blocks_only_and_thinking_is_reasoning() {
    let args = |index: u32, fragment: &str| StreamEvent::ToolCallArgs {
        index,
        fragment: fragment.to_owned(),
    };
    assert_eq!(
        decode(TOOLS),
        vec![
            start(),
            usage(10, 1, 0, 0),
            StreamEvent::ReasoningDelta("Two cities.".to_owned()),
            text("Checking."),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_A".to_owned(),
                name: "get_weather".to_owned()
            },
            args(0, "{\"location\":"),
            args(0, " \"Paris\"}"),
            StreamEvent::ToolCallStart {
                index: 1,
                id: "toolu_B".to_owned(),
                name: "get_weather".to_owned()
            },
            args(1, "{\"location\": \"London\"}"),
            StreamEvent::Finish(FinishReason::ToolCalls),
            usage(10, 80, 0, 0),
        ]
    );
}

#[test]
fn the_json_mode_tool_streams_as_text_and_finishes_with_stop() {
    let stream = format!(
        "event: message_start\n\
data: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_01\",\"model\":\"claude-sonnet-4-5\",\"usage\":{{\"input_tokens\":5,\"output_tokens\":1}}}}}}\n\n\
event: content_block_start\n\
data: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"toolu_J\",\"name\":\"{JSON_MODE_TOOL}\",\"input\":{{}}}}}}\n\n\
event: content_block_delta\n\
data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{{\\\"name\\\":\"}}}}\n\n\
event: content_block_delta\n\
data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Ada\\\"}}\"}}}}\n\n\
event: content_block_stop\n\
data: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
event: message_delta\n\
data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"tool_use\"}},\"usage\":{{\"output_tokens\":9}}}}\n\n\
event: message_stop\n\
data: {{\"type\":\"message_stop\"}}\n\n"
    );
    assert_eq!(
        decode(&stream),
        vec![
            start(),
            usage(5, 1, 0, 0),
            text("{\"name\":"),
            text("\"Ada\"}"),
            StreamEvent::Finish(FinishReason::Stop),
            usage(5, 9, 0, 0),
        ]
    );
}

#[test]
fn cache_counts_repeated_in_message_delta_are_not_counted_twice() {
    let stream = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":4,\"cache_read_input_tokens\":8,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":4,\"cache_read_input_tokens\":8,\"output_tokens\":3}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";
    let events = decode(stream);
    assert_eq!(events[1], usage(22, 1, 8, 4));
    assert_eq!(
        events[3..],
        [
            StreamEvent::Finish(FinishReason::Length),
            usage(22, 3, 8, 4)
        ]
    );
    // What an encoder merging the usage events reports.
    let mut merged = Usage::default();
    for e in &events {
        if let StreamEvent::Usage(u) = e {
            merged.merge(u);
        }
    }
    assert_eq!(
        (
            merged.prompt_tokens,
            merged.cached_tokens,
            merged.completion_tokens
        ),
        (22, 8, 3)
    );
}

#[test]
fn a_refusal_is_a_content_filter_finish() {
    let stream = TEXT.replace("end_turn", "refusal");
    assert!(decode(&stream).contains(&StreamEvent::Finish(FinishReason::ContentFilter)));
}

#[test]
fn a_mid_stream_overload_is_a_503_error_and_ends_the_stream() {
    let stream = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
event: error\n\
data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n";
    let events = decode(stream);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[2], text("Hel"));
    let StreamEvent::Error(e) = &events[3] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (e.status, e.message.as_str(), e.code.as_deref()),
        (503, "Overloaded", Some("overloaded_error"))
    );
}

#[test]
fn a_stream_cut_before_its_finish_ends_with_an_error() {
    let cut = &TEXT[..TEXT.find("event: message_delta").unwrap()];
    let mut decoder = MessagesStreamDecoder::default();
    let mut out = Vec::new();
    decoder.feed(cut.as_bytes(), &mut out);
    decoder.finish(false, &mut out);
    assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.status == 502));

    // Cut after the finish: nothing is missing.
    let after_finish = &TEXT[..TEXT.find("event: message_stop").unwrap()];
    let mut decoder = MessagesStreamDecoder::default();
    let mut out = Vec::new();
    decoder.feed(after_finish.as_bytes(), &mut out);
    decoder.finish(false, &mut out);
    assert_eq!(out.last(), Some(&usage(25, 12, 0, 0)));
}

#[test]
fn a_message_stop_without_a_stop_reason_still_finishes() {
    let stream = TEXT.replace("\"stop_reason\":\"end_turn\"", "\"stop_reason\":null");
    let events = decode(&stream);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::Stop))
    );
}

#[test]
fn an_unreadable_frame_or_orphan_arguments_are_errors_not_silence() {
    let broken = "event: content_block_delta\ndata: {not json\n\n";
    assert!(matches!(decode(broken).as_slice(), [StreamEvent::Error(e)] if e.status == 502));
    let orphan = "event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":4,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n";
    assert!(
        matches!(decode(orphan).as_slice(), [StreamEvent::Error(e)] if e.message.contains("block 4"))
    );
}

#[test]
fn a_server_tool_block_is_skipped_not_an_error() {
    let stream = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"x\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"Found.\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n";
    assert_eq!(
        decode(stream),
        vec![
            start(),
            usage(3, 1, 0, 0),
            text("Found."),
            StreamEvent::Finish(FinishReason::Stop),
            usage(3, 4, 0, 0),
        ]
    );
}
