//! The request encoding, parameter by parameter.

use super::*;

fn target(stream: bool) -> Target<'static> {
    Target {
        provider: "anthropic",
        model: "claude-sonnet-4-5",
        stream,
        project: None,
        region: None,
    }
}

fn body_of(request: Value) -> Value {
    let request: ChatRequest = serde_json::from_value(request).unwrap();
    serde_json::from_slice(&encode(&request, &target(request.is_stream())).unwrap()).unwrap()
}

fn error_of(request: Value) -> TranslateError {
    let request: ChatRequest = serde_json::from_value(request).unwrap();
    encode(&request, &target(false)).unwrap_err()
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}})
}

#[test]
fn a_plain_request_gets_the_model_system_and_default_max_tokens() {
    let body = body_of(json!({
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "n": 1, "presence_penalty": 0, "seed": 3, "metadata": {"k": "v"}
    }));
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        })
    );
}

#[test]
fn sampling_stop_user_and_stream_map_to_their_anthropic_fields() {
    let body = body_of(json!({
        "model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 300, "max_tokens": 10, "temperature": 1.6, "top_p": 0.9,
        "stop": ["END", ""], "user": "u-1", "stream": true
    }));
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["temperature"], 1.0);
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(body["stream"], true);
    let one_stop = body_of(
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stop": "X"}),
    );
    assert_eq!(one_stop["stop_sequences"], json!(["X"]));
    assert!(one_stop.get("stream").is_none());
}

#[test]
fn tools_and_tool_choice_map_to_anthropic_shapes() {
    let request = |choice: Value| {
        body_of(
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "tools": [weather_tool(), {"type": "function", "function": {"name": "now"}}],
            "tool_choice": choice}),
        )
    };
    let body = request(json!("auto"));
    assert_eq!(
        body["tools"],
        json!([
            {"name": "get_weather", "description": "Weather",
             "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    assert_eq!(
        request(json!("required"))["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(
        request(json!("none"))["tool_choice"],
        json!({"type": "none"})
    );
    assert_eq!(
        request(json!({"type": "function", "function": {"name": "now"}}))["tool_choice"],
        json!({"type": "tool", "name": "now"})
    );
}

#[test]
fn parallel_tool_calls_false_disables_parallel_use_except_on_none() {
    let request = |extra: Value| {
        let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "tools": [weather_tool()], "parallel_tool_calls": false});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body_of(r)
    };
    assert_eq!(
        request(json!({}))["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        request(json!({"tool_choice": "required"}))["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        request(json!({"tool_choice": "none"}))["tool_choice"],
        json!({"type": "none"})
    );
    let no_tools = body_of(
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "parallel_tool_calls": false, "tool_choice": "auto"}),
    );
    assert!(no_tools.get("tool_choice").is_none());
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_without_temperature() {
    let body = |effort: &str, max: Option<u32>| {
        let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "reasoning_effort": effort, "temperature": 0.2, "top_p": 0.5});
        if let Some(m) = max {
            r["max_completion_tokens"] = json!(m);
        }
        body_of(r)
    };
    let low = body("low", None);
    assert_eq!(
        low["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(low["max_tokens"], DEFAULT_MAX_TOKENS + 1024);
    assert!(low.get("temperature").is_none());
    assert_eq!(low["top_p"], THINKING_MIN_TOP_P);
    assert_eq!(body("minimal", None)["thinking"]["budget_tokens"], 1024);
    assert_eq!(body("medium", None)["thinking"]["budget_tokens"], 2048);
    assert_eq!(body("high", None)["thinking"]["budget_tokens"], 4096);
    assert_eq!(
        body("xhigh", None)["thinking"]["budget_tokens"],
        XHIGH_THINKING_BUDGET
    );
    assert_eq!(body("surprising", None)["thinking"]["budget_tokens"], 2048);
    let none = body("none", None);
    assert!(none.get("thinking").is_none());
    assert_eq!(none["temperature"], 0.2);
    // A client limit covers thinking: the budget must stay below it.
    let roomy = body("high", Some(10_000));
    assert_eq!(
        (
            roomy["max_tokens"].as_u64(),
            roomy["thinking"]["budget_tokens"].as_u64()
        ),
        (Some(10_000), Some(4096))
    );
    let tight = body("high", Some(3000));
    assert_eq!(
        (
            tight["max_tokens"].as_u64(),
            tight["thinking"]["budget_tokens"].as_u64()
        ),
        (Some(3000), Some(1500))
    );
    let tiny = body("high", Some(500));
    assert_eq!(tiny["max_tokens"], 500);
    assert!(tiny.get("thinking").is_none());
}

#[test]
fn thinking_is_left_off_when_the_history_cannot_replay_signed_thinking() {
    let body = body_of(
        json!({"model": "m", "reasoning_effort": "high", "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]}),
    );
    assert!(body.get("thinking").is_none());
    let prefill = body_of(
        json!({"model": "m", "reasoning_effort": "high", "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Well"}]}),
    );
    assert!(prefill.get("thinking").is_none());
}

#[test]
fn json_schema_is_a_forced_tool() {
    let body = body_of(
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
    );
    assert_eq!(body["tools"][0]["name"], JSON_MODE_TOOL);
    assert_eq!(
        body["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {"name": {"type": "string"}}})
    );
    assert!(
        body["tools"][0]["description"]
            .as_str()
            .unwrap()
            .contains("person")
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": JSON_MODE_TOOL})
    );

    let object = body_of(
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_object"}}),
    );
    assert_eq!(
        object["tools"][0]["input_schema"],
        json!({"type": "object"})
    );
    let text = body_of(
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "response_format": {"type": "text"}}),
    );
    assert!(text.get("tools").is_none());
}

#[test]
fn json_mode_with_client_tools_keeps_their_choice_and_with_thinking_is_an_instruction() {
    let with_tools = body_of(
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "tools": [weather_tool()], "response_format": {"type": "json_object"}}),
    );
    assert_eq!(with_tools["tools"].as_array().unwrap().len(), 2);
    assert!(with_tools.get("tool_choice").is_none());

    let thinking = body_of(json!({"model": "m", "reasoning_effort": "low",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}}}));
    assert!(thinking.get("tools").is_none());
    assert!(thinking.get("tool_choice").is_none());
    let system = thinking["system"].as_str().unwrap();
    assert!(system.starts_with("Be brief.\n\n"));
    assert!(system.contains(r#"{"type":"object"}"#));
}

#[test]
fn what_anthropic_cannot_do_is_a_400_not_a_silent_drop() {
    let base = |extra: Value| {
        let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        error_of(r)
    };
    assert!(
        matches!(base(json!({"n": 2})), TranslateError::Unsupported { param: Some(p), .. } if p == "n")
    );
    assert!(matches!(
        base(json!({"logprobs": true})),
        TranslateError::Unsupported { .. }
    ));
    assert!(matches!(
        base(json!({"tools": [{"type": "custom", "function": {"name": "x"}}]})),
        TranslateError::Unsupported { param: Some(p), .. } if p == "tools[0].type"
    ));
    assert!(matches!(
        base(json!({"tools": [weather_tool()], "tool_choice": "required", "reasoning_effort": "low"})),
        TranslateError::Unsupported { param: Some(p), .. } if p == "tool_choice"
    ));
    assert!(matches!(
        base(json!({"tools": [weather_tool()], "tool_choice": "sometimes"})),
        TranslateError::Invalid { .. }
    ));
    assert!(matches!(
        error_of(json!({"model": "m", "messages": [{"role": "system", "content": "only"}]})),
        TranslateError::Invalid { .. }
    ));
}
