use serde_json::{Value, json};

use super::*;

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).expect("a valid ChatRequest")
}

fn encoded(body: Value) -> Value {
    encoded_for(body, "gemini-2.5-flash")
}

fn encoded_for(body: Value, model: &str) -> Value {
    let bytes = encode(&request(body), model).expect("encodes");
    serde_json::from_slice(&bytes).unwrap()
}

fn error(body: Value) -> TranslateError {
    encode(&request(body), "gemini-2.5-flash").expect_err("must be refused")
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"], "additionalProperties": false,
                       "$schema": "http://json-schema.org/draft-07/schema#"}
    }})
}

#[test]
fn system_messages_become_the_system_instruction_and_roles_map() {
    let body = encoded(json!({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": [{"type": "text", "text": "Again"}, {"type": "text", "text": ""}]},
        {"role": "user", "content": "and again"},
    ]}));
    assert_eq!(
        body,
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief.\n\nUse French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Bonjour"}]},
                {"role": "user", "parts": [{"text": "Again"}, {"text": "and again"}]},
            ]
        })
    );
}

#[test]
fn a_tool_round_trip_maps_calls_and_results_with_looked_up_names() {
    let body = encoded(
        json!({"model": "m", "tools": [weather_tool()], "messages": [
            {"role": "user", "content": "Weather in Paris and London?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\":21}"},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"},
        ]}),
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and London?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "call_0", "name": "get_weather", "args": {"location": "Paris"}}},
                {"functionCall": {"id": "call_1", "name": "get_time", "args": {}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "call_0", "name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"id": "call_1", "name": "get_time", "response": {"content": "noon"}}},
                {"text": "Thanks"},
            ]},
        ])
    );
}

#[test]
fn a_repeated_call_id_takes_the_name_of_the_latest_earlier_call() {
    let call = |name: &str| {
        json!({"role": "assistant", "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}]})
    };
    let body = encoded(json!({"model": "m", "messages": [
        {"role": "user", "content": "a"}, call("first"),
        {"role": "tool", "tool_call_id": "call_0", "content": "1"},
        call("second"),
        {"role": "tool", "tool_call_id": "call_0", "content": "2"},
    ]}));
    assert_eq!(
        body["contents"][4]["parts"][0]["functionResponse"]["name"],
        "second"
    );
}

#[test]
fn thought_signatures_ride_on_the_call_id_and_gemini_3_gets_a_placeholder() {
    let messages = json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_0__thought__c2lnbmF0dXJl", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0__thought__c2lnbmF0dXJl", "content": "ok"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "call_10", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ]);
    let body = encoded_for(
        json!({"model": "m", "messages": messages}),
        "gemini-3-pro-preview",
    );
    let signed = &body["contents"][1]["parts"][0];
    assert_eq!(signed["thoughtSignature"], "c2lnbmF0dXJl");
    assert_eq!(signed["functionCall"]["id"], "call_0");
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["id"],
        "call_0"
    );
    let unsigned = &body["contents"][3]["parts"];
    assert_eq!(unsigned[0]["thoughtSignature"], SKIP_SIGNATURE);
    assert!(unsigned[1].get("thoughtSignature").is_none());
    // Gemini 2.5 does not check signatures: none is invented.
    let body = encoded(json!({"model": "m", "messages": messages}));
    assert!(
        body["contents"][3]["parts"][0]
            .get("thoughtSignature")
            .is_none()
    );
}

#[test]
fn tool_messages_are_checked() {
    let unknown = error(json!({"model": "m", "messages": [
        {"role": "user", "content": "a"},
        {"role": "tool", "tool_call_id": "nope", "content": "x"},
    ]}));
    assert!(matches!(
        unknown,
        TranslateError::Invalid { param: Some(ref p), .. } if p == "messages[1].tool_call_id"
    ));
    let bad_args = error(json!({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
    ]}));
    assert!(matches!(
        bad_args,
        TranslateError::Invalid { param: Some(ref p), .. } if p == "messages[0].tool_calls[0].function.arguments"
    ));
}

#[test]
fn images_audio_and_files_map_to_inline_or_file_data() {
    let body = encoded(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "gs://bucket/cat.JPG"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg", "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0", "filename": "a.pdf"}},
        ]}]}),
    );
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.JPG"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0"}},
        ])
    );
}

#[test]
fn https_images_and_file_ids_are_refused_clearly() {
    let https = error(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    );
    let TranslateError::Unsupported { message, param } = https else {
        panic!("expected Unsupported, got {https:?}");
    };
    assert!(message.contains("data URL"), "{message}");
    assert_eq!(param.as_deref(), Some("messages[0].content[0]"));
    assert!(matches!(
        error(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-1"}}]}]})
        ),
        TranslateError::Unsupported { .. }
    ));
    assert!(matches!(
        error(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "gs://bucket/blob"}}]}]})
        ),
        TranslateError::Unsupported { .. }
    ));
}

#[test]
fn tools_become_function_declarations_with_cleaned_json_schemas() {
    let body = encoded(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [weather_tool(), {"type": "function", "function": {"name": "ping"}}]}),
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather for a city",
             "parametersJsonSchema": {"type": "object", "properties": {"location": {"type": "string"}},
                                      "required": ["location"], "additionalProperties": false}},
            {"name": "ping"},
        ]}])
    );
    assert!(body.get("toolConfig").is_none());
    assert!(matches!(
        error(json!({"model": "m", "messages": [], "tools": [
            {"type": "custom", "function": {"name": "x"}}]})),
        TranslateError::Unsupported { .. }
    ));
}

#[test]
fn tool_choice_maps_to_function_calling_modes() {
    let with_choice = |choice: Value| {
        encoded(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [weather_tool()], "tool_choice": choice}),
        )["toolConfig"]
            .clone()
    };
    assert_eq!(
        with_choice(json!("auto")),
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    assert_eq!(
        with_choice(json!("none")),
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    assert_eq!(
        with_choice(json!("required")),
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        with_choice(json!({"type": "function", "function": {"name": "get_weather"}})),
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert!(matches!(
        error(
            json!({"model": "m", "messages": [], "tools": [weather_tool()],
            "tool_choice": {"type": "function", "function": {"name": "other"}}})
        ),
        TranslateError::Invalid { .. }
    ));
    assert!(matches!(
        error(json!({"model": "m", "messages": [], "tool_choice": "required"})),
        TranslateError::Invalid { .. }
    ));
    let no_tools = encoded(json!({"model": "m", "messages": [], "tool_choice": "none"}));
    assert!(no_tools.get("toolConfig").is_none());
}

#[test]
fn generation_settings_map_and_defaults_are_dropped() {
    let body = encoded(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 100, "max_completion_tokens": 200, "temperature": 1.5, "top_p": 0.9,
        "stop": ["END", ""], "seed": 7, "presence_penalty": 0.5, "frequency_penalty": 0,
        "n": 1, "logprobs": false, "reasoning_effort": "low", "user": "u-1"}),
    );
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 200, "temperature": 1.5, "topP": 0.9, "stopSequences": ["END"],
            "seed": 7, "presencePenalty": 0.5,
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true},
        })
    );
    let stop_one = encoded(json!({"model": "m", "messages": [], "stop": "\n\n"}));
    assert_eq!(
        stop_one["generationConfig"],
        json!({"stopSequences": ["\n\n"]})
    );
}

#[test]
fn what_gemini_cannot_return_is_refused() {
    for (body, param) in [
        (json!({"model": "m", "messages": [], "n": 2}), "n"),
        (
            json!({"model": "m", "messages": [], "logprobs": true}),
            "logprobs",
        ),
        (
            json!({"model": "m", "messages": [], "stop": ["a", "b", "c", "d", "e", "f"]}),
            "stop",
        ),
    ] {
        let e = error(body);
        assert!(
            matches!(&e, TranslateError::Unsupported { param: Some(p), .. } if p == param),
            "{e:?}"
        );
    }
}

#[test]
fn response_formats_set_the_mime_type_and_schema() {
    let object = encoded(json!({"model": "m", "messages": [],
        "response_format": {"type": "json_object"}}));
    assert_eq!(
        object["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let schema = encoded(json!({"model": "m", "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": ["integer", "null"], "default": 1}},
                       "additionalProperties": false}}}}));
    assert_eq!(
        schema["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema":
            {"type": "object", "properties": {"a": {"type": ["integer", "null"]}}, "additionalProperties": false}})
    );
    let text = encoded(json!({"model": "m", "messages": [], "response_format": {"type": "text"}}));
    assert!(text.get("generationConfig").is_none());
}

#[test]
fn reasoning_none_turns_thinking_off_without_thoughts() {
    let body = encoded(json!({"model": "m", "messages": [], "reasoning_effort": "none"}));
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0, "includeThoughts": false})
    );
    let g3 = encoded_for(
        json!({"model": "m", "messages": [], "reasoning_effort": "high"}),
        "gemini-3-pro-preview",
    );
    assert_eq!(
        g3["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "high", "includeThoughts": true})
    );
}
