use serde_json::{Value, json};

use super::*;

fn target(stream: bool) -> Target<'static> {
    Target {
        provider: "cohere",
        model: "command-a-03-2025",
        stream,
        project: None,
        region: None,
    }
}

fn encode_json(req: Value) -> Result<Value, TranslateError> {
    let req: ChatRequest = serde_json::from_value(req).unwrap();
    encode(&req, &target(req.is_stream())).map(|b| serde_json::from_slice(&b).unwrap())
}

fn ok(req: Value) -> Value {
    encode_json(req).unwrap()
}

fn err(req: Value) -> TranslateError {
    encode_json(req).unwrap_err()
}

#[test]
fn a_plain_chat_keeps_roles_and_system_messages_in_place() {
    let body = ok(json!({
        "model": "cohere/command-a",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "system", "content": "and kind"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"}
        ]
    }));
    assert_eq!(
        body,
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "be brief"},
                {"role": "system", "content": "and kind"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "bye"}
            ],
            "stream": false
        })
    );
}

#[test]
fn sampling_parameters_are_renamed_and_clamped_to_cohere_ranges() {
    let body = ok(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 300, "max_tokens": 10, "temperature": 1.7, "top_p": 1.0,
        "stop": ["END", "STOP"], "seed": 7, "frequency_penalty": 0.4, "presence_penalty": 0,
        "n": 1, "logprobs": false, "user": "u-1", "metadata": {"k": "v"}, "parallel_tool_calls": false,
        "stream": true, "stream_options": {"include_usage": true}
    }));
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["temperature"], 1.0);
    assert_eq!(body["p"], 0.99);
    assert_eq!(body["stop_sequences"], json!(["END", "STOP"]));
    assert_eq!(body["seed"], 7);
    assert_eq!(body["frequency_penalty"], 0.4);
    assert_eq!(body["stream"], true);
    for absent in [
        "presence_penalty",
        "n",
        "logprobs",
        "user",
        "metadata",
        "parallel_tool_calls",
        "top_p",
        "stop",
        "stream_options",
        "max_completion_tokens",
    ] {
        assert!(
            body.get(absent).is_none(),
            "{absent} should not be sent: {body}"
        );
    }
    let single = ok(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "END",
        "temperature": -1, "top_p": 0}),
    );
    assert_eq!(single["stop_sequences"], json!(["END"]));
    assert_eq!(single["temperature"], 0.0);
    assert_eq!(single["p"], 0.01);
}

#[test]
fn tools_and_tool_turns_keep_openai_shape_with_the_plan_in_tool_plan() {
    let body = ok(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "I will look it up.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "strict": true,
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "get_time"}}
        ],
        "tool_choice": "required"
    }));
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
        ]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_2", "content": "noon"})
    );
    assert_eq!(
        body["tools"],
        json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
        ])
    );
    assert_eq!(body["tool_choice"], "REQUIRED");
    // Only one of the two tools asked for strict schemas.
    assert!(body.get("strict_tools").is_none());
}

#[test]
fn tool_choice_maps_auto_none_required_and_refuses_a_named_tool() {
    let with = |choice: Value| {
        encode_json(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "strict": true}}], "tool_choice": choice}),
        )
    };
    let auto = with(json!("auto")).unwrap();
    assert!(auto.get("tool_choice").is_none());
    assert_eq!(auto["strict_tools"], true);
    assert_eq!(with(json!("none")).unwrap()["tool_choice"], "NONE");
    let named = with(json!({"type": "function", "function": {"name": "f"}})).unwrap_err();
    assert!(
        matches!(&named, TranslateError::Unsupported { param: Some(p), .. } if p == "tool_choice"),
        "{named:?}"
    );
    assert!(matches!(
        with(json!("sometimes")).unwrap_err(),
        TranslateError::Invalid { .. }
    ));
    // Without tools, `none` has nothing to switch off.
    let none = ok(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "none"}),
    );
    assert!(none.get("tool_choice").is_none());
}

#[test]
fn images_go_as_image_url_parts_data_urls_and_https_alike() {
    let body = ok(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "text", "text": ""},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]}]}),
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ])
    );
    let bad = err(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]}]}),
    );
    assert!(
        matches!(&bad, TranslateError::Invalid { param: Some(p), .. } if p == "messages[0].content[0]")
    );
    let gs = err(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}}]}]}),
    );
    assert!(matches!(gs, TranslateError::Unsupported { .. }));
}

#[test]
fn response_formats_become_json_object_with_the_schema() {
    let with = |format: Value| {
        ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": format}),
        )
    };
    assert!(
        with(json!({"type": "text"}))
            .get("response_format")
            .is_none()
    );
    assert_eq!(
        with(json!({"type": "json_object"}))["response_format"],
        json!({"type": "json_object"})
    );
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    assert_eq!(
        with(
            json!({"type": "json_schema", "json_schema": {"name": "out", "strict": true, "schema": schema}})
        )["response_format"],
        json!({"type": "json_object", "json_schema": schema})
    );
}

#[test]
fn reasoning_effort_becomes_thinking_with_a_budget() {
    let with = |effort: &str| {
        ok(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}))
            ["thinking"]
            .clone()
    };
    assert_eq!(with("none"), json!({"type": "disabled"}));
    assert_eq!(
        with("minimal"),
        json!({"type": "enabled", "token_budget": 1024})
    );
    assert_eq!(
        with("low"),
        json!({"type": "enabled", "token_budget": 1024})
    );
    assert_eq!(
        with("medium"),
        json!({"type": "enabled", "token_budget": 2048})
    );
    assert_eq!(
        with("high"),
        json!({"type": "enabled", "token_budget": 4096})
    );
    assert_eq!(with("xhigh"), json!({"type": "enabled"}));
    assert_eq!(
        with("turbo"),
        json!({"type": "enabled", "token_budget": 2048})
    );
}

#[test]
fn what_cohere_cannot_do_is_refused_before_sending() {
    let base = |extra: Value| {
        let mut req = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        err(req)
    };
    let unsupported = |e: TranslateError, want: &str| {
        assert!(
            matches!(&e, TranslateError::Unsupported { param: Some(p), .. } if p == want),
            "{e:?}"
        );
    };
    unsupported(base(json!({"n": 2})), "n");
    unsupported(base(json!({"logprobs": true})), "logprobs");
    unsupported(
        base(json!({"tools": [{"type": "custom", "function": {"name": "f"}}]})),
        "tools[0].type",
    );
    unsupported(
        err(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
        ),
        "messages[0].content[0]",
    );
    unsupported(
        err(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}]}]}),
        ),
        "messages[0].content[0]",
    );
}

#[test]
fn malformed_turns_are_invalid_with_the_offending_param() {
    let invalid = |e: TranslateError, want: &str| {
        assert!(
            matches!(&e, TranslateError::Invalid { param: Some(p), .. } if p == want),
            "{e:?}"
        );
    };
    invalid(
        err(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})),
        "messages[0].tool_call_id",
    );
    invalid(
        err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{not json"}}]}]}),
        ),
        "messages[1].tool_calls[0].function.arguments",
    );
    invalid(err(json!({"model": "m", "messages": []})), "messages");
}

#[test]
fn empty_turns_are_skipped() {
    let body = ok(json!({"model": "m", "messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null},
        {"role": "user", "content": [{"type": "text", "text": ""}]},
        {"role": "user", "content": "y"}
    ]}));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])
    );
}
