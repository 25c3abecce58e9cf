//! A whole decoded answer → the Responses `response` object (`notes/translation.md` §2.2, §2.4).

use super::wire::{Item, ItemKind, ResponseObject, UsageOut};
use super::{RequestEcho, response_id};
use crate::dialect::chat::ChatResponse;

/// The `response` object for a whole answer. `model` is used when the provider did not name the model that
/// answered; the id is `resp_` + the provider's answer id, or + `fallback_id` (the gateway's request id) without
/// one. Output items in the order a model produces them: reasoning, the message, then the function calls (a
/// function call's `call_id` is the provider's tool-call id, its `id` is minted).
pub fn encode_response(
    resp: &ChatResponse,
    model: &str,
    created: u64,
    fallback_id: &str,
    echo: &RequestEcho,
) -> Vec<u8> {
    let id = response_id(resp.id.as_deref(), fallback_id);
    let items = output_items(resp, &id);
    let mut object =
        ResponseObject::new(&id, resp.model.as_deref().unwrap_or(model), created, echo);
    object.finished(resp.finish_reason);
    object.output = items.iter().map(Item::whole).collect();
    object.usage = Some(UsageOut::from(&resp.usage.unwrap_or_default()));
    serde_json::to_vec(&object).unwrap_or_default()
}

fn output_items(resp: &ChatResponse, id: &str) -> Vec<Item> {
    let incomplete = super::wire::outcome(resp.finish_reason).1.is_some();
    let mut items = Vec::with_capacity(2 + resp.tool_calls.len());
    let mut push = |kind: ItemKind, text: &str, status: &'static str| {
        let mut item = Item::new(kind, id, items.len());
        item.text = text.to_owned();
        item.status = status;
        items.push(item);
    };
    if let Some(reasoning) = resp.reasoning.as_deref().filter(|r| !r.is_empty()) {
        push(ItemKind::Reasoning, reasoning, "completed");
    }
    if let Some(text) = resp.text.as_deref().filter(|t| !t.is_empty()) {
        push(
            ItemKind::Message,
            text,
            if incomplete {
                "incomplete"
            } else {
                "completed"
            },
        );
    }
    for call in &resp.tool_calls {
        let kind = ItemKind::FunctionCall {
            call_id: call.id.clone(),
            name: call.function.name.clone(),
        };
        push(kind, &call.function.arguments, "completed");
    }
    items
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::dialect::chat::{FinishReason, FunctionCall, ToolCall, Usage};

    fn encode(resp: &ChatResponse, echo: &RequestEcho) -> Value {
        serde_json::from_slice(&encode_response(
            resp,
            "command-a",
            1_700_000_000,
            "gw123",
            echo,
        ))
        .unwrap()
    }

    #[test]
    fn a_text_answer_is_one_completed_message_with_usage() {
        let resp = ChatResponse {
            id: Some("abc".into()),
            text: Some("Hello".into()),
            finish_reason: Some(FinishReason::Stop),
            usage: Some(Usage {
                prompt_tokens: 20,
                completion_tokens: 5,
                cached_tokens: 8,
                cache_creation_tokens: 4,
                reasoning_tokens: 0,
            }),
            ..ChatResponse::default()
        };
        let body = encode(&resp, &RequestEcho::default());
        assert_eq!(
            body,
            json!({
                "id": "resp_abc", "object": "response", "created_at": 1_700_000_000, "status": "completed",
                "background": false, "error": null, "incomplete_details": null, "instructions": null,
                "max_output_tokens": null, "model": "command-a",
                "output": [{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]}],
                "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": null,
                "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": null,
                "truncation": "disabled",
                "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 4},
                    "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 25},
                "user": null, "metadata": {}
            })
        );
    }

    #[test]
    fn reasoning_and_tool_calls_become_items_in_order_with_call_ids_kept() {
        let call = |id: &str, city: &str| ToolCall {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: "get_weather".into(),
                arguments: format!(r#"{{"location":"{city}"}}"#),
            },
        };
        let resp = ChatResponse {
            model: Some("command-a-03-2025".into()),
            reasoning: Some("Two cities.".into()),
            tool_calls: vec![call("call_p", "Paris"), call("call_l", "London")],
            finish_reason: Some(FinishReason::ToolCalls),
            ..ChatResponse::default()
        };
        let echo = RequestEcho {
            instructions: Some("Be brief.".into()),
            tools: vec![
                json!({"type": "function", "name": "get_weather", "parameters": {}, "strict": null}),
            ],
            ..RequestEcho::default()
        };
        let body = encode(&resp, &echo);
        assert_eq!(body["id"], "resp_gw123");
        assert_eq!(body["model"], "command-a-03-2025");
        assert_eq!(body["status"], "completed");
        assert_eq!(body["instructions"], "Be brief.");
        assert_eq!(body["tools"][0]["name"], "get_weather");
        assert_eq!(
            body["output"],
            json!([
                {"type": "reasoning", "id": "rs_gw123_0", "summary": [{"type": "summary_text", "text": "Two cities."}]},
                {"type": "function_call", "id": "fc_gw123_1", "call_id": "call_p", "name": "get_weather",
                    "arguments": "{\"location\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_gw123_2", "call_id": "call_l", "name": "get_weather",
                    "arguments": "{\"location\":\"London\"}", "status": "completed"}
            ])
        );
        // Unknown usage is reported as zeros, not left out.
        assert_eq!(body["usage"]["total_tokens"], 0);
    }

    #[test]
    fn length_and_content_filter_are_incomplete_with_the_reason() {
        for (finish, reason) in [
            (FinishReason::Length, "max_output_tokens"),
            (FinishReason::ContentFilter, "content_filter"),
        ] {
            let resp = ChatResponse {
                text: Some("cut".into()),
                finish_reason: Some(finish),
                ..ChatResponse::default()
            };
            let body = encode(&resp, &RequestEcho::default());
            assert_eq!(body["status"], "incomplete");
            assert_eq!(body["incomplete_details"], json!({"reason": reason}));
            assert_eq!(body["output"][0]["status"], "incomplete");
        }
        let filtered = ChatResponse {
            finish_reason: Some(FinishReason::ContentFilter),
            ..ChatResponse::default()
        };
        assert_eq!(
            encode(&filtered, &RequestEcho::default())["output"],
            json!([])
        );
    }
}
