//! Bodies that must not hurt: not JSON, cut off, malformed, huge, deeply nested.

use super::super::json::MAX_CAPTURE;
use super::super::{Dialect, Usage, UsageScanner};
use super::{JSON, SSE, format, scan_pieces, usage};

const CHAT: &str = r#"{"model":"gpt-4o","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":19,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":3}}}"#;

#[test]
fn a_body_that_is_not_json_gives_no_usage() {
    for body in [
        "<html><body>502 Bad Gateway</body></html>",
        "upstream connect error",
        "",
        "\u{0}\u{1}\u{2}}}]]",
    ] {
        assert_eq!(
            scan_pieces(format(Dialect::OpenAiChat, JSON), [body.as_bytes()]),
            Usage::default(),
            "{body:?}"
        );
        assert_eq!(
            scan_pieces(format(Dialect::OpenAiChat, SSE), [body.as_bytes()]),
            Usage::default(),
            "{body:?}"
        );
    }
}

#[test]
fn a_truncated_body_gives_either_no_tokens_or_the_complete_usage() {
    let full = scan_pieces(format(Dialect::OpenAiChat, JSON), [CHAT.as_bytes()]);
    assert_eq!(full, usage(19, 10, Some(3), Some("gpt-4o")));
    for end in 0..CHAT.len() {
        let found = scan_pieces(format(Dialect::OpenAiChat, JSON), [&CHAT.as_bytes()[..end]]);
        let counts = (found.tokens_in, found.tokens_out, found.cached_tokens_in);
        assert!(
            counts == (None, None, None)
                || counts == (full.tokens_in, full.tokens_out, full.cached_tokens_in),
            "cut at {end}: {found:?}"
        );
    }
}

#[test]
fn usage_with_values_of_the_wrong_type_is_ignored() {
    for body in [
        r#"{"usage":{"prompt_tokens":"19","completion_tokens":10}}"#,
        r#"{"usage":{"prompt_tokens":-1,"completion_tokens":10}}"#,
        r#"{"usage":{"prompt_tokens":1.5}}"#,
        r#"{"usage":{"prompt_tokens":1,,}}"#,
        r#"{"usage":[1,2]}"#,
        r#"{"usage":"many"}"#,
        r#"{"model":7,"usage":null}"#,
    ] {
        assert_eq!(
            scan_pieces(format(Dialect::OpenAiChat, JSON), [body.as_bytes()]),
            Usage::default(),
            "{body}"
        );
    }
}

#[test]
fn a_later_stream_event_survives_an_earlier_malformed_one() {
    let body = "data: not json {\"usage\":{\"prompt_tokens\":99}}\n\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
    assert_eq!(
        scan_pieces(format(Dialect::OpenAiChat, SSE), [body.as_bytes()]),
        usage(1, 2, None, None)
    );
}

#[test]
fn a_usage_object_larger_than_the_cap_is_dropped_without_growing_the_buffer() {
    let padding = "x".repeat(MAX_CAPTURE * 4);
    let body =
        format!(r#"{{"usage":{{"prompt_tokens":1,"completion_tokens":2,"note":"{padding}"}}}}"#);
    let mut scanner = UsageScanner::new(format(Dialect::OpenAiChat, JSON));
    for chunk in body.as_bytes().chunks(1000) {
        scanner.feed(chunk);
        assert!(scanner.retained_bytes() <= MAX_CAPTURE);
    }
    assert_eq!(scanner.finish(), Usage::default());
}

#[test]
fn a_ten_megabyte_body_with_usage_at_the_end_is_read_with_bounded_memory() {
    // Content full of escapes, quotes and braces inside strings, and nested objects, before the usage.
    let filler = r#"{\"usage\":{\"prompt_tokens\":7}} [{}] \\ "#;
    let mut body = String::from(r#"{"model":"gpt-4o","choices":["#);
    let mut i = 0;
    while body.len() < 10 * 1024 * 1024 {
        body.push_str(&format!(
            r#"{{"index":{i},"message":{{"usage":{{"prompt_tokens":5}},"content":"{filler}"}}}},"#
        ));
        i += 1;
    }
    body.push_str(r#"{}],"usage":{"prompt_tokens":1000,"completion_tokens":2000}}"#);
    let mut scanner = UsageScanner::new(format(Dialect::OpenAiChat, JSON));
    for chunk in body.as_bytes().chunks(64 * 1024) {
        scanner.feed(chunk);
        assert!(
            scanner.retained_bytes() <= MAX_CAPTURE,
            "{}",
            scanner.retained_bytes()
        );
    }
    assert_eq!(scanner.finish(), usage(1000, 2000, None, Some("gpt-4o")));
}

#[test]
fn deep_nesting_and_random_bytes_neither_panic_nor_grow_memory() {
    let deep = "[".repeat(1_000_000) + &"{\"usage\":".repeat(100_000);
    let alphabet = b"{}[]\":,\\ \r\nusage0123456789data";
    let mut random = Vec::with_capacity(1 << 20);
    let mut rng = super::Rng(42);
    while random.len() < 1 << 20 {
        random.push(alphabet[rng.below(alphabet.len())]);
    }
    for body in [deep.as_bytes(), &random] {
        for framing in [JSON, SSE] {
            let mut scanner = UsageScanner::new(format(Dialect::Auto, framing));
            for chunk in body.chunks(4096) {
                scanner.feed(chunk);
            }
            assert!(scanner.retained_bytes() <= MAX_CAPTURE);
            let _ = scanner.finish();
        }
    }
}

/// By design `feed` allocates nothing per chunk: the lexer's state is fixed-size, SSE payload is handed over as
/// sub-slices of the chunk, and the capture buffer is allocated once at its full 4 KiB and reused. This checks the
/// observable part: across a 1 MB stream fed in 4 KB chunks the buffer is allocated once and never reallocated.
#[test]
fn a_one_megabyte_stream_in_four_kilobyte_chunks_reuses_one_capture_buffer() {
    let event = "data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"token \\\"x\\\"\"}}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1}}\n\n";
    let body = event.repeat((1 << 20) / event.len() + 1);
    let mut scanner = UsageScanner::new(format(Dialect::OpenAiChat, SSE));
    let mut capacities = std::collections::BTreeSet::new();
    for chunk in body.as_bytes().chunks(4096) {
        scanner.feed(chunk);
        capacities.insert(scanner.retained_bytes());
    }
    assert_eq!(
        capacities.into_iter().collect::<Vec<_>>(),
        vec![MAX_CAPTURE]
    );
    assert_eq!(scanner.finish(), usage(8, 1, None, Some("gpt-4o")));
}
