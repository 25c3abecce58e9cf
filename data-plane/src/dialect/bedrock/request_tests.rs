//! The Bedrock request mapping: what a Chat Completions request becomes, and what is refused.

use serde_json::{Value, json};

use super::request::{document_name, max_with_thinking, tool_use_id};
use super::*;
use crate::dialect::chat::FinishReason;

const CLAUDE: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

fn target(model: &str, stream: bool) -> Target<'_> {
    Target {
        provider: "aws-bedrock",
        model,
        stream,
        project: None,
        region: Some("us-east-1"),
    }
}

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).expect("a valid chat request")
}

fn encode_for(model: &str, body: Value) -> Result<Value, TranslateError> {
    let encoded = BedrockCodec.encode(&request(body), &target(model, false))?;
    Ok(serde_json::from_slice(&encoded.body).unwrap())
}

fn encode(body: Value) -> Value {
    encode_for(CLAUDE, body).expect("encodes")
}

fn refusal(model: &str, body: Value) -> TranslateError {
    encode_for(model, body).expect_err("refused")
}

#[test]
fn the_path_names_the_model_as_one_encoded_segment() {
    let e = BedrockCodec
        .encode(
            &request(json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]})),
            &target(CLAUDE, true),
        )
        .unwrap();
    assert_eq!(
        e.path,
        "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"
    );
    assert_eq!(
        converse_path("arn:aws:bedrock:us-east-1:1:inference-profile/us.x", false),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse"
    );
}

#[test]
fn system_turns_and_inference_settings_map_to_converse_fields() {
    let body = encode(json!({
        "model": "aws-bedrock/x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Are you there?"}]},
            {"role": "assistant", "content": "Oui."},
            {"role": "user", "content": "Bien."}
        ],
        "max_completion_tokens": 300,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": ["END", ""],
        "n": 1,
        "seed": 7,
        "presence_penalty": 0,
        "user": "u-42",
        "metadata": {"team": "blue"}
    }));
    assert_eq!(
        body,
        json!({
            "system": [{"text": "Be brief."}, {"text": "Answer in French."}],
            "messages": [
                {"role": "user", "content": [{"text": "Hello"}, {"text": "Are you there?"}]},
                {"role": "assistant", "content": [{"text": "Oui."}]},
                {"role": "user", "content": [{"text": "Bien."}]}
            ],
            // Claude's temperature range is 0–1; the empty stop string would be refused.
            "inferenceConfig": {"maxTokens": 300, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]},
            "requestMetadata": {"team": "blue", "user": "u-42"}
        })
    );
}

#[test]
fn blank_text_blocks_and_empty_turns_are_left_out() {
    let body = encode(json!({
        "model": "x",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"},
            {"role": "assistant", "content": "  "},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Thanks"}]}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    }));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "Weather?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"location": "Paris"}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"json": {"temp": 21}}]}},
                {"text": "Thanks"}
            ]}
        ])
    );
}

#[test]
fn parallel_tool_results_share_one_user_turn_in_call_order() {
    let body = encode(json!({
        "model": "x",
        "messages": [
            {"role": "user", "content": "Paris and London?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": ""}},
                {"id": "call b/2", "type": "function", "function": {"name": "w", "arguments": "{\"l\":2}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call b/2", "content": ""}
        ],
        "tools": [{"type": "function", "function": {"name": "w"}}]
    }));
    let foreign = tool_use_id("call b/2");
    assert!(foreign.starts_with("tooluse_") && foreign.len() <= 64);
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"toolUse": {"toolUseId": "call_a", "name": "w", "input": {}}},
            {"toolUse": {"toolUseId": foreign, "name": "w", "input": {"l": 2}}}
        ])
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [
            {"toolResult": {"toolUseId": "call_a", "content": [{"text": "sunny"}]}},
            {"toolResult": {"toolUseId": foreign, "content": [{"text": "(no output)"}]}}
        ]})
    );
    // A tool without parameters still gets the object schema Bedrock requires.
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object", "properties": {}})
    );
}

#[test]
fn tool_definitions_and_choices_map_per_the_table() {
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}
    }}]);
    let with = |choice: Value| {
        encode(
            json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": choice}),
        )
    };
    let auto = with(json!("auto"));
    assert_eq!(
        auto["toolConfig"],
        json!({
            "tools": [{"toolSpec": {
                "name": "get_weather", "description": "Weather by city",
                "inputSchema": {"json": {"type": "object", "properties": {"location": {"type": "string"}}}}
            }}],
            "toolChoice": {"auto": {}}
        })
    );
    assert_eq!(
        with(json!("required"))["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    assert_eq!(
        with(json!({"type": "function", "function": {"name": "get_weather"}}))["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_weather"}})
    );
    // `none`: no choice, but the tools stay (a history with tool blocks needs them).
    let none = with(json!("none"));
    assert!(none["toolConfig"].get("toolChoice").is_none());
    assert_eq!(none["toolConfig"]["tools"].as_array().unwrap().len(), 1);
}

#[test]
fn tool_choice_that_cannot_be_honoured_is_a_400() {
    let tools = json!([{"type": "function", "function": {"name": "w"}}]);
    let named_unknown = refusal(
        CLAUDE,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": tools,
               "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
    );
    assert!(matches!(named_unknown, TranslateError::Invalid { .. }));
    let llama = refusal(
        LLAMA,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": "required"}),
    );
    assert!(
        matches!(llama, TranslateError::Unsupported { ref param, .. } if param.as_deref() == Some("tool_choice"))
    );
    // `auto` on a family without toolChoice is simply the default.
    let auto = encode_for(
        LLAMA,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": "auto"}),
    )
    .unwrap();
    assert!(auto["toolConfig"].get("toolChoice").is_none());
    let thinking = refusal(
        CLAUDE,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": tools,
               "tool_choice": "required", "reasoning_effort": "low"}),
    );
    assert!(matches!(thinking, TranslateError::Unsupported { .. }));
}

#[test]
fn a_history_with_tool_blocks_but_no_tools_gets_a_tool_config() {
    let body = encode(json!({
        "model": "x",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ]
    }));
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {
            "name": "get_weather",
            "description": "A tool used earlier in this conversation.",
            "inputSchema": {"json": {"type": "object"}}
        }}]})
    );
    let plain = encode(json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]}));
    assert!(plain.get("toolConfig").is_none());
}

#[test]
fn images_and_documents_go_inline_and_urls_are_refused() {
    let body = encode(json!({
        "model": "x",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AAA=", "detail": "high"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "Q3 report.v2.pdf"}}
        ]}]
    }));
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"text": "What is this?"},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/AAA="}}},
            {"document": {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": "JVBERi0="}}}
        ])
    );
    for (part, param) in [
        (
            json!({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}),
            "messages[0].content[0]",
        ),
        (
            json!({"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAA="}}),
            "messages[0].content[0]",
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}}),
            "messages[0].content[0]",
        ),
        (
            json!({"type": "file", "file": {"file_id": "file-abc"}}),
            "messages[0].content[0]",
        ),
    ] {
        let err = refusal(
            CLAUDE,
            json!({"model": "x", "messages": [{"role": "user", "content": [part]}]}),
        );
        assert!(
            matches!(&err, TranslateError::Unsupported { param: Some(p), .. } if p == param),
            "{err:?}"
        );
    }
    assert_eq!(document_name(Some("../a*b.txt"), 1), "---a-b");
    assert_eq!(document_name(Some(".pdf"), 3), "doc-3");
    assert_eq!(document_name(None, 2), "doc-2");
}

#[test]
fn what_converse_cannot_do_is_refused_and_defaults_pass() {
    let base = |extra: Value| {
        let mut body = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let n = refusal(CLAUDE, base(json!({"n": 2})));
    assert!(
        matches!(n, TranslateError::Unsupported { ref param, .. } if param.as_deref() == Some("n"))
    );
    assert!(matches!(
        refusal(CLAUDE, base(json!({"logprobs": true}))),
        TranslateError::Unsupported { .. }
    ));
    assert!(
        encode_for(
            CLAUDE,
            base(json!({"n": 1, "logprobs": false, "frequency_penalty": 0}))
        )
        .is_ok()
    );
    let bad_args = refusal(
        CLAUDE,
        json!({"model": "x", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}),
    );
    assert!(matches!(
        bad_args,
        TranslateError::Invalid { ref param, .. } if param.as_deref() == Some("messages[1].tool_calls[0].function.arguments")
    ));
    let no_id = refusal(
        CLAUDE,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]}),
    );
    assert!(
        matches!(no_id, TranslateError::Invalid { ref param, .. } if param.as_deref() == Some("messages[1].tool_call_id"))
    );
    let reserved = refusal(
        CLAUDE,
        base(json!({"tools": [{"type": "function", "function": {"name": JSON_TOOL_NAME}}]})),
    );
    assert!(matches!(reserved, TranslateError::Invalid { .. }));
}

#[test]
fn reasoning_effort_becomes_a_claude_thinking_budget() {
    let body = encode(json!({
        "model": "x", "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "medium", "temperature": 0.2, "top_p": 0.5
    }));
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    // No client max: the budget plus room for the answer. Temperature dropped, top_p raised to Claude's floor.
    assert_eq!(
        body["inferenceConfig"],
        json!({"maxTokens": 2048 + 4096, "topP": 0.95})
    );

    let none = encode(
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "none"}),
    );
    assert!(none.get("additionalModelRequestFields").is_none());
    let other_family = refusal(
        LLAMA,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high"}),
    );
    assert!(matches!(other_family, TranslateError::Unsupported { .. }));

    // A small client max shrinks the budget that is sent, not only the max.
    let small = encode(json!({
        "model": "x", "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "high", "max_tokens": 3000
    }));
    assert_eq!(small["inferenceConfig"]["maxTokens"], 3000);
    assert_eq!(
        small["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        1500
    );
    assert_eq!(max_with_thinking(Some(8000), 4096), (8000, 4096));
    assert_eq!(max_with_thinking(Some(3000), 4096), (3000, 1500));
    assert_eq!(max_with_thinking(Some(500), 1024), (1025, 1024));
}

#[test]
fn json_mode_forces_a_tool_whose_input_is_the_answer() {
    let body = encode(json!({
        "model": "x", "messages": [{"role": "user", "content": "A city as JSON"}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}
        }}
    }));
    assert_eq!(
        body["toolConfig"],
        json!({
            "tools": [{"toolSpec": {
                "name": JSON_TOOL_NAME,
                "description": "Respond with a JSON document as this tool's input.",
                "inputSchema": {"json": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }}],
            "toolChoice": {"tool": {"name": JSON_TOOL_NAME}}
        })
    );
    assert!(body.get("system").is_none());

    // With thinking the tool cannot be forced: it is asked for in the system prompt instead.
    let thinking = encode(json!({
        "model": "x", "messages": [{"role": "user", "content": "A city as JSON"}],
        "response_format": {"type": "json_object"}, "reasoning_effort": "low"
    }));
    assert!(thinking["toolConfig"].get("toolChoice").is_none());
    assert_eq!(
        thinking["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object"})
    );
    assert!(
        thinking["system"][0]["text"]
            .as_str()
            .unwrap()
            .contains(JSON_TOOL_NAME)
    );

    let answer = BedrockCodec
        .decode(
            br#"{"output":{"message":{"role":"assistant","content":[
                {"toolUse":{"toolUseId":"t1","name":"json_tool_call","input":{"name":"Paris"}}}]}},
                "stopReason":"tool_use","usage":{"inputTokens":5,"outputTokens":3,"totalTokens":8}}"#,
        )
        .unwrap();
    assert_eq!(answer.text.as_deref(), Some(r#"{"name":"Paris"}"#));
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
}
