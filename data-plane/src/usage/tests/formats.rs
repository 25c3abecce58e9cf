//! One recorded body per provider shape, checked at every chunk split.

use super::super::{Dialect, Framing, ResponseFormat, choose_format};
use super::{JSON, SSE, format, scan_every_way, usage};

#[test]
fn openai_chat_json_reads_prompt_completion_and_cached_tokens() {
    // The assistant's content mentions usage inside a string; it must not count.
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"usage\": {\"prompt_tokens\": 999} \\ done","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_1"}"#;
    assert_eq!(
        scan_every_way(format(Dialect::OpenAiChat, JSON), body),
        usage(19, 10, Some(3), Some("gpt-4o-mini-2024-07-18"))
    );
}

#[test]
fn openai_chat_stream_reads_the_final_usage_chunk_and_ignores_usage_null() {
    let body = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,",
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,",
        "\"delta\":{\"content\":\"Hel\\\"lo\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],",
        "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":2,\"total_tokens\":10,",
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );
    assert_eq!(
        scan_every_way(format(Dialect::OpenAiChat, SSE), body),
        usage(8, 2, Some(0), Some("gpt-4o"))
    );
}

#[test]
fn openai_chat_stream_without_include_usage_has_no_tokens_but_a_model() {
    let body = "data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n";
    let found = scan_every_way(format(Dialect::OpenAiChat, SSE), body);
    assert_eq!(
        (found.tokens_in, found.tokens_out, found.model.as_deref()),
        (None, None, Some("gpt-4o"))
    );
}

#[test]
fn openai_responses_json_reads_input_output_and_cached_tokens() {
    let body = r#"{"id":"resp_1","object":"response","status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[]}]}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":12},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::OpenAiResponses, JSON), body),
        usage(36, 87, Some(12), Some("gpt-4.1-2025-04-14"))
    );
}

#[test]
fn openai_responses_stream_reads_usage_from_response_completed() {
    let body = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"o4-mini\",\"usage\":null}}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"delta\":\"Hi\"}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"model\":\"o4-mini\",\"output\":[],",
        "\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":20,",
        "\"total_tokens\":30}}}\n\n",
    );
    assert_eq!(
        scan_every_way(format(Dialect::OpenAiResponses, SSE), body),
        usage(10, 20, Some(4), Some("o4-mini"))
    );
}

#[test]
fn anthropic_json_counts_cache_reads_and_writes_into_tokens_in() {
    // A tool_use input carrying a `usage` key is the model's output, not the response's usage.
    let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"tool_use","id":"t","name":"f","input":{"usage":{"input_tokens":999}}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":50,"service_tier":"standard"}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::Anthropic, JSON), body),
        usage(2125, 50, Some(2000), Some("claude-sonnet-4-20250514"))
    );
}

#[test]
fn anthropic_stream_takes_input_from_message_start_and_cumulative_output_from_message_delta() {
    // CRLF line endings, a ping and a comment line, as proxies sometimes add.
    let body = concat!(
        "event: message_start\r\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",",
        "\"model\":\"claude-3-5-haiku-20241022\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":472,",
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":128,\"output_tokens\":1}}}\r\n\r\n",
        ": keep-alive\r\n\r\n",
        "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"}}{{\"}}\r\n\r\n",
        "event: message_delta\r\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},",
        "\"usage\":{\"output_tokens\":7}}\r\n\r\n",
        "event: message_delta\r\n",
        "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":15}}\r\n\r\n",
        "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
    );
    assert_eq!(
        scan_every_way(format(Dialect::Anthropic, SSE), body),
        usage(600, 15, Some(128), Some("claude-3-5-haiku-20241022"))
    );
}

#[test]
fn gemini_json_reads_usage_metadata_and_model_version() {
    let body = r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":120,"candidatesTokenCount":30,"cachedContentTokenCount":100,"thoughtsTokenCount":5,"totalTokenCount":155,"promptTokensDetails":[{"modality":"TEXT","tokenCount":120}]},"modelVersion":"gemini-2.5-flash"}"#;
    assert_eq!(
        scan_every_way(format(Dialect::Gemini, JSON), body),
        usage(120, 35, Some(100), Some("gemini-2.5-flash"))
    );
}

#[test]
fn gemini_stream_keeps_the_last_usage_metadata() {
    let body = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]}}],\"usageMetadata\":{\"promptTokenCount\":9,",
        "\"candidatesTokenCount\":1,\"totalTokenCount\":10},\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"B\"}]},\"finishReason\":\"STOP\"}],",
        "\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":4,\"totalTokenCount\":13},",
        "\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n",
    );
    assert_eq!(
        scan_every_way(format(Dialect::Gemini, SSE), body),
        usage(9, 4, None, Some("gemini-2.0-flash"))
    );
}

#[test]
fn gemini_json_array_stream_reads_usage_from_its_elements() {
    let body = r#"[{"candidates":[{"content":{"parts":[{"text":"A"}]}}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1}},
{"candidates":[{"content":{"parts":[{"text":"B"}]}}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":6},"modelVersion":"gemini-1.5-pro-002"}]"#;
    assert_eq!(
        scan_every_way(format(Dialect::Gemini, JSON), body),
        usage(9, 6, None, Some("gemini-1.5-pro-002"))
    );
}

#[test]
fn bedrock_converse_reads_camel_case_usage_with_cache_fields() {
    let body = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":62,"cacheReadInputTokens":20,"cacheWriteInputTokens":0},"metrics":{"latencyMs":300}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::BedrockConverse, JSON), body),
        usage(50, 12, Some(20), None)
    );
}

#[test]
fn workers_ai_reads_usage_under_result() {
    let body = r#"{"result":{"response":"Hi","usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}},"success":true,"errors":[],"messages":[]}"#;
    assert_eq!(
        scan_every_way(format(Dialect::OpenAiChat, JSON), body),
        usage(5, 3, None, None)
    );
}

#[test]
fn cohere_reads_billed_units() {
    let body = r#"{"id":"c","message":{"role":"assistant","content":[{"type":"text","text":"Hi"}]},"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":5,"output_tokens":2},"tokens":{"input_tokens":70,"output_tokens":2}}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::Cohere, JSON), body),
        usage(5, 2, None, None)
    );
}

#[test]
fn deepseek_cache_hits_count_as_cached_tokens() {
    let body = r#"{"model":"deepseek-chat","usage":{"prompt_tokens":50,"completion_tokens":5,"prompt_cache_hit_tokens":40,"prompt_cache_miss_tokens":10}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::OpenAiChat, JSON), body),
        usage(50, 5, Some(40), Some("deepseek-chat"))
    );
}

#[test]
fn an_unknown_provider_is_read_by_the_fields_it_sends() {
    let anthropic =
        r#"{"model":"m","usage":{"input_tokens":1,"cache_read_input_tokens":2,"output_tokens":3}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::Auto, JSON), anthropic),
        usage(3, 3, Some(2), Some("m"))
    );
    let bedrock = r#"{"usage":{"inputTokens":4,"outputTokens":5}}"#;
    assert_eq!(
        scan_every_way(format(Dialect::Auto, JSON), bedrock),
        usage(4, 5, None, None)
    );
}

#[test]
fn the_format_is_chosen_from_provider_path_and_content_type() {
    let f = |d, fr| ResponseFormat {
        dialect: d,
        framing: fr,
    };
    let cases = [
        (
            "openai",
            "v1/chat/completions",
            Some("application/json"),
            f(Dialect::OpenAiChat, JSON),
        ),
        (
            "openai",
            "v1/responses",
            Some("text/event-stream; charset=utf-8"),
            f(Dialect::OpenAiResponses, SSE),
        ),
        (
            "anthropic",
            "v1/messages",
            Some("text/event-stream"),
            f(Dialect::Anthropic, SSE),
        ),
        (
            "anthropic",
            "v1/chat/completions",
            Some("application/json"),
            f(Dialect::OpenAiChat, JSON),
        ),
        (
            "google-ai-studio",
            "v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            Some("text/event-stream"),
            f(Dialect::Gemini, SSE),
        ),
        (
            "google-ai-studio",
            "v1beta/openai/chat/completions",
            None,
            f(Dialect::OpenAiChat, JSON),
        ),
        (
            "google-vertex-ai",
            "v1/projects/p/locations/l/publishers/anthropic/models/claude:rawPredict",
            Some("application/json"),
            f(Dialect::Anthropic, JSON),
        ),
        (
            "aws-bedrock",
            "bedrock-runtime/us-east-1/model/m/converse",
            Some("application/json"),
            f(Dialect::BedrockConverse, JSON),
        ),
        (
            "aws-bedrock",
            "bedrock-runtime/us-east-1/model/m/converse-stream",
            Some("application/vnd.amazon.eventstream"),
            f(Dialect::BedrockConverse, Framing::EventStream),
        ),
        (
            "groq",
            "chat/completions",
            Some("Application/JSON"),
            f(Dialect::OpenAiChat, JSON),
        ),
        (
            "cohere",
            "v2/chat",
            Some("application/json"),
            f(Dialect::Cohere, JSON),
        ),
        (
            "custom-mine",
            "v1/chat/completions",
            Some("application/json"),
            f(Dialect::OpenAiChat, JSON),
        ),
        (
            "elevenlabs",
            "v1/text-to-speech/x",
            Some("audio/mpeg"),
            f(Dialect::Auto, Framing::None),
        ),
    ];
    for (provider, path, content_type, expected) in cases {
        assert_eq!(
            choose_format(provider, path, content_type),
            expected,
            "{provider} {path}"
        );
    }
}
