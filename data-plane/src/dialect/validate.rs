//! What OpenAI itself refuses in a chat request, refused before any provider is called: whatever the target,
//! the client gets OpenAI's 400 with the offending `param`, never a provider's differently worded complaint or a
//! silently changed request.

use super::chat::{ChatRequest, ResponseFormat, Role, ToolChoice};
use super::codec::TranslateError;

fn invalid(message: impl Into<String>, param: impl Into<String>) -> TranslateError {
    TranslateError::invalid(message, Some(param.into()))
}

fn in_range(value: Option<f64>, low: f64, high: f64, param: &str) -> Result<(), TranslateError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(invalid(
            format!("{param} must be between {low} and {high}, got {v}"),
            param,
        )),
        _ => Ok(()),
    }
}

/// A function or schema name as OpenAI accepts it: `^[a-zA-Z0-9_-]{1,64}$`.
fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn chat(request: &ChatRequest) -> Result<(), TranslateError> {
    if request.messages.is_empty() {
        return Err(invalid(
            "messages must hold at least one message",
            "messages",
        ));
    }
    for (i, m) in request.messages.iter().enumerate() {
        match m.role {
            Role::Tool if m.tool_call_id.as_deref().is_none_or(str::is_empty) => {
                return Err(invalid(
                    "a tool message needs the tool_call_id of the call it answers",
                    format!("messages[{i}].tool_call_id"),
                ));
            }
            Role::Assistant
                if m.content.is_none() && m.tool_calls.as_ref().is_none_or(Vec::is_empty) =>
            {
                return Err(invalid(
                    "an assistant message needs content or tool_calls",
                    format!("messages[{i}].content"),
                ));
            }
            Role::System | Role::Developer | Role::User | Role::Tool if m.content.is_none() => {
                return Err(invalid(
                    "content is required",
                    format!("messages[{i}].content"),
                ));
            }
            _ => {}
        }
        for (j, call) in m.tool_calls.iter().flatten().enumerate() {
            if call.function.name.is_empty() {
                return Err(invalid(
                    "a tool call needs a function name",
                    format!("messages[{i}].tool_calls[{j}].function.name"),
                ));
            }
        }
    }
    let mut names = Vec::new();
    for (i, tool) in request.tools.iter().flatten().enumerate() {
        if tool.kind != "function" {
            return Err(invalid(
                format!(
                    "tool type {:?} is not supported; use \"function\"",
                    tool.kind
                ),
                format!("tools[{i}].type"),
            ));
        }
        if !is_name(&tool.function.name) {
            return Err(invalid(
                "a function name must be 1 to 64 letters, digits, underscores or dashes",
                format!("tools[{i}].function.name"),
            ));
        }
        if let Some(p) = &tool.function.parameters
            && !p.is_object()
        {
            return Err(invalid(
                "function parameters must be a JSON Schema object",
                format!("tools[{i}].function.parameters"),
            ));
        }
        names.push(tool.function.name.as_str());
    }
    match &request.tool_choice {
        Some(ToolChoice::Mode(mode)) if !matches!(mode.as_str(), "none" | "auto" | "required") => {
            return Err(invalid(
                format!(
                    "tool_choice must be none, auto, required or a named function, got {mode:?}"
                ),
                "tool_choice",
            ));
        }
        Some(ToolChoice::Mode(mode)) if mode == "required" && names.is_empty() => {
            return Err(invalid(
                "tool_choice \"required\" needs tools",
                "tool_choice",
            ));
        }
        Some(ToolChoice::Named(named)) if !names.contains(&named.function.name.as_str()) => {
            return Err(invalid(
                format!(
                    "tool_choice names {:?}, which is not among the tools",
                    named.function.name
                ),
                "tool_choice",
            ));
        }
        _ => {}
    }
    if let Some(ResponseFormat::JsonSchema { json_schema }) = &request.response_format {
        if !is_name(&json_schema.name) {
            return Err(invalid(
                "a JSON schema name must be 1 to 64 letters, digits, underscores or dashes",
                "response_format.json_schema.name",
            ));
        }
        if let Some(s) = &json_schema.schema
            && !s.is_object()
        {
            return Err(invalid(
                "the schema must be a JSON object",
                "response_format.json_schema.schema",
            ));
        }
    }
    in_range(request.temperature, 0.0, 2.0, "temperature")?;
    in_range(request.top_p, 0.0, 1.0, "top_p")?;
    in_range(request.presence_penalty, -2.0, 2.0, "presence_penalty")?;
    in_range(request.frequency_penalty, -2.0, 2.0, "frequency_penalty")?;
    if request.n == Some(0) || request.n.is_some_and(|n| n > 128) {
        return Err(invalid("n must be between 1 and 128", "n"));
    }
    for (value, param) in [
        (request.max_tokens, "max_tokens"),
        (request.max_completion_tokens, "max_completion_tokens"),
    ] {
        if value == Some(0) {
            return Err(invalid(format!("{param} must be at least 1"), param));
        }
    }
    if request.stop_sequences().len() > 4 {
        return Err(invalid("stop may hold at most 4 sequences", "stop"));
    }
    if request.stream_options.is_some() && !request.is_stream() {
        return Err(invalid(
            "stream_options is only allowed with stream: true",
            "stream_options",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: serde_json::Value) -> Result<(), TranslateError> {
        chat(&serde_json::from_value(body).unwrap())
    }

    #[test]
    fn what_openai_refuses_is_refused_with_its_param() {
        let base = serde_json::json!({"model": "anthropic/x", "messages": [{"role": "user", "content": "hi"}]});
        assert!(check(base.clone()).is_ok());
        let cases = [
            (serde_json::json!({"messages": []}), "messages"),
            (
                serde_json::json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                serde_json::json!({"messages": [{"role": "assistant"}]}),
                "messages[0].content",
            ),
            (serde_json::json!({"temperature": 2.5}), "temperature"),
            (serde_json::json!({"top_p": -0.1}), "top_p"),
            (serde_json::json!({"n": 0}), "n"),
            (serde_json::json!({"max_tokens": 0}), "max_tokens"),
            (
                serde_json::json!({"stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (
                serde_json::json!({"tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                serde_json::json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
                "tools[0].function.name",
            ),
            (
                serde_json::json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}),
                "tools[0].function.parameters",
            ),
            (
                serde_json::json!({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice",
            ),
            (
                serde_json::json!({"stream_options": {"include_usage": true}}),
                "stream_options",
            ),
        ];
        for (patch, param) in cases {
            let mut body = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            match check(body) {
                Err(TranslateError::Invalid { param: Some(p), .. }) => assert_eq!(p, param),
                other => panic!("{param}: {other:?}"),
            }
        }
    }
}
