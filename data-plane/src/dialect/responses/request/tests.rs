use serde_json::{Value, json};

use super::*;
use crate::dialect::chat::{ImageUrl, Message, Part};

fn parse_json(body: Value) -> Result<ParsedRequest, TranslateError> {
    parse(&serde_json::to_vec(&body).unwrap())
}

fn ok(body: Value) -> ChatRequest {
    parse_json(body).unwrap().request
}

fn err(body: Value) -> TranslateError {
    parse_json(body).unwrap_err()
}

fn assert_invalid(e: TranslateError, want: &str) {
    assert!(
        matches!(&e, TranslateError::Invalid { param: Some(p), .. } if p == want),
        "{e:?}"
    );
}

fn assert_unsupported(e: TranslateError, want: &str) {
    assert!(
        matches!(&e, TranslateError::Unsupported { param: Some(p), .. } if p == want),
        "{e:?}"
    );
}

fn text(m: &Message) -> String {
    m.content.as_ref().map(Content::text).unwrap_or_default()
}

#[test]
fn a_string_input_with_instructions_is_a_system_then_a_user_message() {
    let req = ok(
        json!({"model": "cohere/command-a", "input": "Hi", "instructions": "Be brief.",
        "max_output_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stream": true,
        "reasoning": {"effort": "high", "summary": "auto"}, "parallel_tool_calls": false,
        "user": "u-1", "metadata": {"k": "v"}, "store": false, "include": ["reasoning.encrypted_content"],
        "truncation": "disabled", "service_tier": "auto"}),
    );
    assert_eq!(req.model, "cohere/command-a");
    assert_eq!(req.messages.len(), 2);
    assert_eq!(
        (req.messages[0].role, text(&req.messages[0])),
        (Role::System, "Be brief.".into())
    );
    assert_eq!(
        (req.messages[1].role, text(&req.messages[1])),
        (Role::User, "Hi".into())
    );
    assert_eq!(req.max_output_tokens(), Some(100));
    assert_eq!((req.temperature, req.top_p), (Some(0.5), Some(0.9)));
    assert!(req.is_stream());
    assert!(
        req.include_usage(),
        "a Responses stream always reports usage"
    );
    assert_eq!(req.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.user.as_deref(), Some("u-1"));
    assert_eq!(req.metadata.unwrap()["k"], "v");
}

#[test]
fn items_become_turns_with_calls_merged_into_one_assistant_message() {
    let req = ok(json!({"model": "m", "input": [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Weather in "},
            {"type": "input_text", "text": "Paris and London?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
        ]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Two calls."}],
            "encrypted_content": "opaque"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_p", "name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_l", "name": "get_weather", "arguments": "{\"location\":\"London\"}"},
        {"type": "function_call_output", "call_id": "call_p", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_l", "output": [{"type": "input_text", "text": "rainy"}]},
        {"role": "user", "content": "Thanks"}
    ]}));
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::Developer,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::User
        ]
    );
    assert_eq!(
        req.messages[1].content,
        Some(Content::Parts(vec![
            Part::Text {
                text: "Weather in ".into()
            },
            Part::Text {
                text: "Paris and London?".into()
            },
            Part::ImageUrl {
                image_url: ImageUrl {
                    url: "data:image/png;base64,AAAA".into(),
                    detail: Some("low".into())
                }
            },
        ]))
    );
    let assistant = &req.messages[2];
    assert_eq!(assistant.reasoning_content.as_deref(), Some("Two calls."));
    assert_eq!(text(assistant), "Checking.");
    let calls = assistant.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].function.name.as_str()),
        ("call_p", "get_weather")
    );
    assert_eq!(calls[1].function.arguments, "{\"location\":\"London\"}");
    assert_eq!(req.messages[3].tool_call_id.as_deref(), Some("call_p"));
    assert_eq!(text(&req.messages[3]), "sunny");
    assert_eq!(req.messages[4].tool_call_id.as_deref(), Some("call_l"));
    assert_eq!(text(&req.messages[4]), "rainy");
    // What the Responses items became is a chat request OpenAI would take.
    crate::dialect::validate::chat(&req).unwrap();
}

#[test]
fn a_function_call_without_an_assistant_message_opens_its_own_turn() {
    let req = ok(json!({"model": "m", "input": [
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""},
        {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"}
    ]}));
    assert_eq!(req.messages.len(), 4);
    assert_eq!(req.messages[1].content, None);
    assert_eq!(req.messages[1].tool_calls.as_ref().unwrap()[0].id, "c1");
    assert_eq!(req.messages[3].tool_calls.as_ref().unwrap()[0].id, "c2");
}

#[test]
fn flat_function_tools_and_tool_choice_become_the_chat_shape() {
    let req = ok(json!({"model": "m", "input": "x",
        "tools": [
            {"type": "function", "name": "get_weather", "description": "Weather", "strict": true,
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}},
            {"type": "function", "name": "get_time", "parameters": null, "strict": null}
        ],
        "tool_choice": {"type": "function", "name": "get_weather"}}));
    let tools = req.tools.unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].kind, "function");
    assert_eq!(tools[0].function.name, "get_weather");
    assert_eq!(tools[0].function.description.as_deref(), Some("Weather"));
    assert_eq!(tools[0].function.strict, Some(true));
    assert_eq!(
        tools[0].function.parameters.as_ref().unwrap()["properties"]["location"]["type"],
        "string"
    );
    assert_eq!(tools[1].function.parameters, None);
    assert_eq!(
        req.tool_choice,
        Some(ToolChoice::Named(NamedToolChoice {
            kind: "function".into(),
            function: NamedFunction {
                name: "get_weather".into()
            }
        }))
    );
    for mode in ["none", "auto", "required"] {
        let req = ok(json!({"model": "m", "input": "x", "tool_choice": mode}));
        assert_eq!(req.tool_choice, Some(ToolChoice::Mode(mode.into())));
    }
}

#[test]
fn allowed_tools_keeps_only_those_tools_under_its_mode() {
    let req = ok(json!({"model": "m", "input": "x",
        "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}, {"type": "function", "name": "c"}],
        "tool_choice": {"type": "allowed_tools", "mode": "required",
            "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "c"}]}}));
    let names: Vec<String> = req
        .tools
        .unwrap()
        .into_iter()
        .map(|t| t.function.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(req.tool_choice, Some(ToolChoice::Mode("required".into())));
}

#[test]
fn text_format_becomes_response_format_with_json_schema_unflattened() {
    let with = |format: Value| {
        ok(json!({"model": "m", "input": "x", "text": {"format": format}})).response_format
    };
    assert_eq!(with(json!({"type": "text"})), Some(ResponseFormat::Text));
    assert_eq!(
        with(json!({"type": "json_object"})),
        Some(ResponseFormat::JsonObject)
    );
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    assert_eq!(
        with(json!({"type": "json_schema", "name": "out", "schema": schema, "strict": true})),
        Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "out".into(),
                description: None,
                schema: Some(schema),
                strict: Some(true)
            }
        })
    );
    assert_invalid(
        err(
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
        ),
        "text.format.name",
    );
}

#[test]
fn the_echo_repeats_what_the_answer_must_say() {
    let parsed = parse_json(json!({"model": "m", "input": "x", "instructions": "I",
        "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": true}],
        "tool_choice": "required", "parallel_tool_calls": false, "max_output_tokens": 9, "temperature": 0.2,
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}, "verbosity": "low"},
        "reasoning": {"effort": "low"}, "user": "u", "metadata": {"a": "b"}}))
    .unwrap();
    let echo = parsed.echo;
    assert_eq!(echo.instructions.as_deref(), Some("I"));
    assert_eq!(
        echo.tools,
        vec![json!({"type": "function", "name": "f", "parameters": {}, "strict": true})]
    );
    assert_eq!(echo.tool_choice, json!("required"));
    assert!(!echo.parallel_tool_calls);
    assert_eq!(echo.max_output_tokens, Some(9));
    assert_eq!(echo.temperature, Some(0.2));
    assert_eq!(echo.text["format"]["name"], "out");
    assert_eq!(echo.text["verbosity"], "low");
    assert_eq!(echo.reasoning, json!({"effort": "low", "summary": null}));
    assert_eq!(echo.user.as_deref(), Some("u"));
    assert_eq!(echo.metadata, json!({"a": "b"}));
    assert_eq!(
        parse_json(json!({"model": "m", "input": "x"}))
            .unwrap()
            .echo,
        RequestEcho::default()
    );
}

#[test]
fn stored_state_is_refused_with_a_clear_message() {
    let e = err(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
    assert_unsupported(e.clone(), "previous_response_id");
    assert!(
        e.to_string()
            .contains("previous_response_id requires stored responses"),
        "{e}"
    );
    assert_unsupported(
        err(json!({"model": "m", "input": "x", "store": true})),
        "store",
    );
    assert_unsupported(
        err(json!({"model": "m", "input": "x", "conversation": "conv_1"})),
        "conversation",
    );
    assert_unsupported(
        err(json!({"model": "m", "input": "x", "background": true})),
        "background",
    );
    assert_unsupported(
        err(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]})),
        "input[0]",
    );
    // Absent, null and false are fine.
    for store in [json!(null), json!(false)] {
        parse_json(
            json!({"model": "m", "input": "x", "store": store, "previous_response_id": null}),
        )
        .unwrap();
    }
}

#[test]
fn what_only_openai_has_is_unsupported() {
    assert_unsupported(
        err(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})),
        "tools[0].type",
    );
    assert_unsupported(
        err(json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}})),
        "tool_choice",
    );
    assert_unsupported(
        err(json!({"model": "m", "input": [{"type": "web_search_call", "id": "ws_1"}]})),
        "input[0].type",
    );
    assert_unsupported(
        err(
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]}),
        ),
        "input[0].content[0]",
    );
    assert_unsupported(
        err(
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]}),
        ),
        "input[0].content[0]",
    );
    assert_unsupported(
        err(json!({"model": "m", "input": "x", "top_logprobs": 3})),
        "top_logprobs",
    );
}

#[test]
fn malformed_requests_are_invalid_with_the_param() {
    assert!(matches!(
        parse(b"[1,2]"),
        Err(TranslateError::Invalid { param: None, .. })
    ));
    assert!(matches!(
        parse(b"{not json"),
        Err(TranslateError::Invalid { .. })
    ));
    assert_invalid(err(json!({"input": "x"})), "model");
    assert_invalid(err(json!({"model": "m"})), "input");
    assert_invalid(err(json!({"model": "m", "input": 42})), "input");
    assert_invalid(err(json!({"model": "m", "input": []})), "input");
    assert_invalid(
        err(json!({"model": "m", "input": "x", "temperature": "hot"})),
        "temperature",
    );
    assert_invalid(
        err(json!({"model": "m", "input": "x", "max_output_tokens": -1})),
        "max_output_tokens",
    );
    assert_invalid(
        err(json!({"model": "m", "input": "x", "tools": {"type": "function"}})),
        "tools",
    );
    assert_invalid(
        err(json!({"model": "m", "input": "x", "tools": [{"type": "function"}]})),
        "tools[0]",
    );
    assert_invalid(
        err(json!({"model": "m", "input": "x", "tool_choice": "sometimes"})),
        "tool_choice",
    );
    assert_invalid(
        err(json!({"model": "m", "input": "x", "store": "yes"})),
        "store",
    );
    assert_invalid(
        err(json!({"model": "m", "input": [{"content": "no role or type"}]})),
        "input[0].type",
    );
    assert_invalid(
        err(json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]})),
        "input[0]",
    );
    assert_invalid(
        err(json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]})),
        "input[0]",
    );
    assert_invalid(
        err(
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
        ),
        "input[0]",
    );
    assert_invalid(
        err(
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}),
        ),
        "input[0].output",
    );
}

#[test]
fn reasoning_without_an_answer_after_it_is_not_a_turn() {
    let req = ok(json!({"model": "m", "input": [
        {"role": "user", "content": "a"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}]},
        {"role": "user", "content": "b"}
    ]}));
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::User]);
    crate::dialect::validate::chat(&req).unwrap();
}
