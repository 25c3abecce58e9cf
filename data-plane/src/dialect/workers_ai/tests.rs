//! The Workers AI codec: encoding, whole answers, streams fed in every split, errors.
use serde_json::json;

use super::*;

const MODEL: &str = "@cf/meta/llama-3.1-8b-instruct";

fn target(stream: bool) -> Target<'static> {
    Target {
        provider: "workers-ai",
        model: MODEL,
        stream,
        project: None,
        region: None,
    }
}

fn encode_json(body: Value) -> Result<(String, Value), TranslateError> {
    let req: ChatRequest = serde_json::from_value(body).unwrap();
    let stream = req.is_stream();
    let enc = WorkersAiCodec.encode(&req, &target(stream))?;
    assert!(enc.headers.is_empty());
    Ok((enc.path, serde_json::from_slice(&enc.body).unwrap()))
}

#[test]
fn a_chat_runs_on_the_model_path_with_its_parameters() {
    let (path, body) = encode_json(json!({
        "model": "workers-ai/@cf/meta/llama-3.1-8b-instruct",
        "messages": [{"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "hi"}],
        "max_completion_tokens": 64, "temperature": 0.2, "top_p": 0.9, "seed": 7,
        "frequency_penalty": 0.5, "presence_penalty": -0.5, "stream": true,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    }))
    .unwrap();
    assert_eq!(path, "/@cf/meta/llama-3.1-8b-instruct");
    assert_eq!(
        body,
        json!({
            "messages": [{"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Use French."},
                {"role": "user", "content": "hi"}],
            "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "seed": 7,
            "frequency_penalty": 0.5, "presence_penalty": -0.5, "stream": true,
            "response_format": {"type": "json_schema",
                "json_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
        })
    );
    let (_, body) = encode_json(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert!(body.get("stream").is_none());
}

#[test]
fn tools_calls_and_results_keep_their_shape() {
    let (_, body) = encode_json(json!({"model": "m", "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "21C"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "noop"}}],
        "tool_choice": "auto"}))
    .unwrap();
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "content": "21C", "tool_call_id": "call_0", "name": "get_weather"})
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "noop",
                "parameters": {"type": "object", "properties": {}}}}])
    );
    let (_, body) = encode_json(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}),
    )
    .unwrap();
    assert!(body.get("tools").is_none());
}

#[test]
fn what_workers_ai_cannot_do_is_refused() {
    let base = || json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"stop": ["\n"]}), "stop"),
        (json!({"reasoning_effort": "high"}), "reasoning_effort"),
        (json!({"tool_choice": "required"}), "tool_choice"),
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}),
            "tool_choice",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
            "messages[0].content[1]",
        ),
    ] {
        let mut body = base();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert!(
            matches!(encode_json(body), Err(TranslateError::Unsupported { param: Some(p), .. }) if p == param),
            "{param}"
        );
    }
    let mut body = base();
    body["seed"] = json!(0);
    assert!(matches!(
        encode_json(body),
        Err(TranslateError::Invalid { .. })
    ));
    let req: ChatRequest = serde_json::from_value(base()).unwrap();
    for model in ["@cf/../x", "@cf//x", "@cf/meta/llama?x=1"] {
        let t = Target {
            model,
            ..target(false)
        };
        assert!(WorkersAiCodec.encode(&req, &t).is_err(), "{model}");
    }
}

#[test]
fn whole_answers_decode_text_tool_calls_and_usage() {
    let body = json!({"result": {"response": "Hello there", "tool_calls": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
        "success": true, "errors": [], "messages": []});
    let got = WorkersAiCodec.decode(body.to_string().as_bytes()).unwrap();
    assert_eq!(got.text.as_deref(), Some("Hello there"));
    assert_eq!(got.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        got.usage,
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: 3,
            ..Usage::default()
        })
    );
    let body = json!({"result": {"response": null, "tool_calls": [
        {"name": "get_weather", "arguments": {"location": "Paris"}},
        {"name": "get_weather", "arguments": "{\"location\":\"London\"}"}]},
        "success": true, "errors": [], "messages": []});
    let got = WorkersAiCodec.decode(body.to_string().as_bytes()).unwrap();
    assert_eq!(got.text, None);
    assert_eq!(got.finish_reason, Some(FinishReason::ToolCalls));
    let calls: Vec<(&str, &str, &str)> = got
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
            ("call_0", "get_weather", "{\"location\":\"Paris\"}"),
            ("call_1", "get_weather", "{\"location\":\"London\"}")
        ]
    );
    // JSON mode may answer an object.
    let body = json!({"result": {"response": {"a": "b"}}, "success": true});
    let got = WorkersAiCodec.decode(body.to_string().as_bytes()).unwrap();
    assert_eq!(got.text.as_deref(), Some(r#"{"a":"b"}"#));
    for bad in [
        json!({"result": null, "success": false, "errors": [{"code": 5006, "message": "x"}]}),
        json!([]),
    ] {
        assert!(matches!(
            WorkersAiCodec.decode(bad.to_string().as_bytes()),
            Err(TranslateError::BadResponse(_))
        ));
    }
}

#[test]
fn errors_read_the_v4_envelope() {
    let body = json!({"success": false, "errors": [{"code": 5006, "message": "AiError: bad input"}],
        "messages": [], "result": null});
    let e = WorkersAiCodec.decode_error(400, body.to_string().as_bytes());
    assert_eq!((e.status, e.kind.as_str()), (400, "invalid_request_error"));
    assert!(e.message.contains("bad input"), "{}", e.message);
    let e = WorkersAiCodec.decode_error(
        429,
        b"{\"success\":false,\"errors\":[{\"code\":3040,\"message\":\"Capacity\"}]}",
    );
    assert_eq!(
        (e.status, e.code.as_deref()),
        (429, Some("rate_limit_exceeded"))
    );
    assert_eq!(WorkersAiCodec.decode_error(502, b"<html>").status, 502);
}

fn run(chunks: &[&[u8]], complete: bool) -> Vec<StreamEvent> {
    let mut d = WorkersAiCodec.stream_decoder();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    d.finish(complete, &mut out);
    out
}

/// The whole stream at once, cut at every byte in two, and byte by byte: always the same events.
fn all_ways(stream: &[u8]) -> Vec<StreamEvent> {
    let whole = run(&[stream], true);
    for cut in 1..stream.len() {
        assert_eq!(
            run(&[&stream[..cut], &stream[cut..]], true),
            whole,
            "cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(&bytes, true), whole, "byte by byte");
    whole
}

const TEXT_STREAM: &str = concat!(
    "data: {\"response\":\"Hé\",\"p\":\"abcdefgh\"}\n\n",
    "data: {\"response\":\" \\\"there\\\"\",\"p\":\"abc\"}\n\n",
    "data: {\"response\":\"\",\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":2,\"total_tokens\":22}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn a_text_stream_split_anywhere_decodes_the_same() {
    assert_eq!(
        all_ways(TEXT_STREAM.as_bytes()),
        vec![
            StreamEvent::Start {
                id: None,
                model: None
            },
            StreamEvent::TextDelta("Hé".into()),
            StreamEvent::TextDelta(" \"there\"".into()),
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(Usage {
                prompt_tokens: 20,
                completion_tokens: 2,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn streamed_tool_calls_are_numbered_from_zero() {
    let stream = concat!(
        "data: {\"response\":\"\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"location\":\"Paris\"}}]}\n\n",
        "data: {\"tool_calls\":[{\"id\":\"x1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\\\"London\\\"}\"}}]}\n\n",
        "data: {\"response\":\"\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9}}\n\n",
        "data: [DONE]\n\n",
    );
    let events = all_ways(stream.as_bytes());
    assert_eq!(
        &events[1..],
        &[
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_0".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"location\":\"Paris\"}".into()
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "x1".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallArgs {
                index: 1,
                fragment: "{\"location\":\"London\"}".into()
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                prompt_tokens: 5,
                completion_tokens: 9,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn cut_broken_and_failed_streams_end_with_one_error() {
    let first = "data: {\"response\":\"Hi\"}\n\n";
    for complete in [true, false] {
        let events = run(&[first.as_bytes()], complete);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[2], StreamEvent::Error(e) if e.status == 502));
    }
    let broken = format!("{first}data: {{broken\n\n{first}data: [DONE]\n\n");
    let events = run(&[broken.as_bytes()], true);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(&events[2], StreamEvent::Error(_)));
    let failed = format!(
        "{first}data: {{\"errors\":[{{\"code\":3043,\"message\":\"Internal server error\"}}]}}\n\n"
    );
    let events = run(&[failed.as_bytes()], true);
    assert!(
        matches!(&events[2], StreamEvent::Error(e) if e.message == "Internal server error"),
        "{events:?}"
    );
    assert_eq!(events.len(), 3);
}
