//! Bedrock's binary event streams, built message by message as AWS frames them (CRCs included), checked at every
//! chunk split like the other formats.

use base64::Engine as _;

use super::super::{Dialect, Framing};
use super::{format, scan_bytes_every_way, scan_pieces, usage};

const EVENT_STREAM: Framing = Framing::EventStream;

/// CRC-32 (IEEE), bit by bit: the checksum the event-stream prelude and message end carry.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One event-stream message with string headers, as Bedrock sends it.
fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        encoded_headers.push(u8::try_from(name.len()).unwrap());
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(7); // string
        encoded_headers.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
    out.extend_from_slice(&u32::try_from(encoded_headers.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out.extend_from_slice(&encoded_headers);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out
}

fn event(event_type: &str, payload: &str) -> Vec<u8> {
    message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

/// An InvokeModelWithResponseStream `chunk`: the model's own event, base64 in `bytes`, with Bedrock's padding.
fn chunk(model_event: &str) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD.encode(model_event);
    event(
        "chunk",
        &format!(r#"{{"bytes":"{bytes}","p":"abcdefghij"}}"#),
    )
}

fn converse_stream(metadata: &str) -> Vec<u8> {
    [
        event("messageStart", r#"{"p":"abcd","role":"assistant"}"#),
        // The text mentions usage; only the metadata event's counts.
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"\"usage\":{\"inputTokens\":999}"},"p":"abcdefgh"}"#,
        ),
        event("contentBlockStop", r#"{"contentBlockIndex":0,"p":"ab"}"#),
        event("messageStop", r#"{"p":"abc","stopReason":"end_turn"}"#),
        event("metadata", metadata),
    ]
    .concat()
}

#[test]
fn converse_stream_reads_the_metadata_event_with_cache_fields() {
    let body = converse_stream(
        r#"{"metrics":{"latencyMs":412},"p":"abcdefghijk","usage":{"inputTokens":12,"outputTokens":34,"cacheReadInputTokens":5,"cacheWriteInputTokens":2,"totalTokens":53}}"#,
    );
    assert_eq!(
        scan_bytes_every_way(format(Dialect::BedrockConverse, EVENT_STREAM), &body),
        usage(12 + 5 + 2, 34, Some(5), None)
    );
}

#[test]
fn invoke_model_stream_decodes_claude_events_from_their_base64_wrappers() {
    let body = [
        chunk(
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[],"stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ),
        chunk(r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
        chunk(r#"{"type":"content_block_stop","index":0}"#),
        chunk(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#),
        chunk(
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":25,"outputTokenCount":15,"invocationLatency":512,"firstByteLatency":210}}"#,
        ),
    ]
    .concat();
    assert_eq!(
        scan_bytes_every_way(format(Dialect::Anthropic, EVENT_STREAM), &body),
        usage(25, 15, None, Some("claude-3-5-sonnet-20241022"))
    );
}

#[test]
fn a_payload_too_large_to_scan_is_skipped_and_the_stream_read_on() {
    let large = format!(
        r#"{{"contentBlockIndex":0,"delta":{{"text":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    let body = [
        event("contentBlockDelta", &large),
        converse_stream(r#"{"usage":{"inputTokens":3,"outputTokens":4}}"#),
    ]
    .concat();
    let found = scan_pieces(
        format(Dialect::BedrockConverse, EVENT_STREAM),
        body.chunks(1000),
    );
    assert_eq!(found, usage(3, 4, None, None));
}

#[test]
fn what_is_not_an_event_stream_yields_no_usage() {
    let f = format(Dialect::BedrockConverse, EVENT_STREAM);
    // JSON sent under the event-stream content type: its first bytes read as an impossible length.
    let json = br#"{"usage":{"inputTokens":3,"outputTokens":4}}"#;
    assert_eq!(scan_pieces(f, [&json[..]]), Default::default());
    // A prelude whose headers would not fit the message.
    let mut bad = event(
        "metadata",
        r#"{"usage":{"inputTokens":3,"outputTokens":4}}"#,
    );
    bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(scan_pieces(f, [&bad[..]]), Default::default());
    // A stream cut inside the metadata message counts nothing from it.
    let whole = converse_stream(r#"{"usage":{"inputTokens":3,"outputTokens":4}}"#);
    let cut = &whole[..whole.len() - 10];
    assert_eq!(scan_pieces(f, [cut]), Default::default());
}

#[test]
fn the_checksums_are_the_ones_aws_computes() {
    // The CRC-32 check value, so the frames above are real ones.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}
