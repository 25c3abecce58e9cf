//! OpenAI Chat Completions as the client-facing format of `/compat/chat/completions`: the decoded answer written
//! back as a `chat.completion` object, and a translated stream written as `chat.completion.chunk` events in
//! OpenAI's order (`notes/translation.md` §1.3–1.4). OpenAI-compatible upstreams never come through here: their
//! bodies pass byte for byte with only `model` rewritten (see [`rewrite_model`]).

pub(crate) mod wire;

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Value, json};

use super::chat::{ChatResponse, FinishReason, StreamEvent, Usage};

/// `usage` in OpenAI's shape, cache writes as the `cache_creation_tokens` extension (LiteLLM's name).
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_creation_tokens": u.cache_creation_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

/// A whole answer as a `chat.completion` object. `model` is the provider's model (OpenAI echoes the model that
/// answered); `id` falls back to `fallback_id` when the provider gave none.
pub fn encode_response(
    resp: &ChatResponse,
    model: &str,
    created: u64,
    fallback_id: &str,
) -> Vec<u8> {
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(resp.text));
    message.insert("refusal".into(), Value::Null);
    if !resp.tool_calls.is_empty() {
        message.insert("tool_calls".into(), json!(resp.tool_calls));
    }
    if let Some(r) = &resp.reasoning {
        message.insert("reasoning_content".into(), json!(r));
    }
    let finish = resp.finish_reason.unwrap_or(if resp.tool_calls.is_empty() {
        FinishReason::Stop
    } else {
        FinishReason::ToolCalls
    });
    let body = json!({
        "id": chat_id(resp.id.as_deref(), fallback_id),
        "object": "chat.completion",
        "created": created,
        "model": resp.model.as_deref().unwrap_or(model),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish.as_str(),
        }],
        "usage": usage_json(&resp.usage.unwrap_or_default()),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn chat_id(provider_id: Option<&str>, fallback: &str) -> String {
    match provider_id {
        Some(id) if id.starts_with("chatcmpl-") => id.to_owned(),
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{fallback}"),
    }
}

/// Writes a translated stream as OpenAI chunks. Per stream: the chunk identity, whether the role was sent, the
/// merged usage and the finish reason held until the usage is known.
#[derive(Debug)]
pub struct ChatStreamEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    role_sent: bool,
    finish: Option<FinishReason>,
    saw_tool_call: bool,
    usage: Option<Usage>,
    done: bool,
}

impl ChatStreamEncoder {
    pub fn new(model: &str, created: u64, fallback_id: &str, include_usage: bool) -> Self {
        Self {
            id: chat_id(None, fallback_id),
            created,
            model: model.to_owned(),
            include_usage,
            role_sent: false,
            finish: None,
            saw_tool_call: false,
            usage: None,
            done: false,
        }
    }

    /// The usage the stream reported, merged (recorded in the log whether or not the client asked for it).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Appends the SSE bytes for one event to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::Start { id, model } => {
                if let Some(id) = id {
                    self.id = chat_id(Some(id), "");
                }
                if let Some(m) = model {
                    self.model.clone_from(m);
                }
                self.role(out);
            }
            StreamEvent::TextDelta(text) => {
                self.role(out);
                if !text.is_empty() {
                    self.delta_text(out, b"{\"content\":", text);
                }
            }
            StreamEvent::ReasoningDelta(text) => {
                self.role(out);
                if !text.is_empty() {
                    self.delta_text(out, b"{\"reasoning_content\":", text);
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.role(out);
                self.saw_tool_call = true;
                let call = json!([{"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]);
                self.chunk(out, json!({"tool_calls": call}), None);
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                if !fragment.is_empty() {
                    self.write_chunk(
                        out,
                        |o| {
                            let _ = write!(o, "{{\"tool_calls\":[{{\"index\":{index},\"function\":{{\"arguments\":");
                            let _ = serde_json::to_writer(&mut *o, fragment);
                            o.extend_from_slice(b"}}]}");
                        },
                        None,
                    );
                }
            }
            StreamEvent::Finish(reason) => self.finish = Some(*reason),
            StreamEvent::Usage(u) => match &mut self.usage {
                Some(have) => have.merge(u),
                None => self.usage = Some(*u),
            },
            StreamEvent::Error(e) => {
                // After the header only an error frame can say what happened (§1.4), then the stream ends.
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&serde_json::to_vec(&e.body()).unwrap_or_default());
                out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
                self.done = true;
            }
        }
    }

    /// The upstream ended: the finish chunk, the usage chunk when asked for, `[DONE]`. A stream cut before its
    /// finish gets an error frame instead, so a client never mistakes a truncated answer for a whole one.
    pub fn finish(&mut self, complete: bool, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.role(out);
        let finish = match self.finish {
            Some(FinishReason::Stop) if self.saw_tool_call => Some(FinishReason::ToolCalls),
            Some(f) => Some(f),
            None if complete => Some(if self.saw_tool_call {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            }),
            None => None,
        };
        match finish {
            Some(f) => self.chunk(out, json!({}), Some(f)),
            None => {
                let e = super::chat::ProviderError::new(502, "the provider's stream ended early");
                self.encode(&StreamEvent::Error(e), out);
                return;
            }
        }
        if self.include_usage {
            let body = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [],
                "usage": usage_json(&self.usage.unwrap_or_default()),
            });
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&serde_json::to_vec(&body).unwrap_or_default());
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn role(&mut self, out: &mut Vec<u8>) {
        if !self.role_sent {
            self.role_sent = true;
            self.chunk(out, json!({"role": "assistant", "content": ""}), None);
        }
    }

    /// A chunk whose delta is a rarely sent shape (role, tool-call header, finish).
    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish: Option<FinishReason>) {
        self.write_chunk(
            out,
            |o| {
                let _ = serde_json::to_writer(&mut *o, &delta);
            },
            finish,
        );
    }

    /// The chunk of the frequent deltas (text, reasoning): `open` then the escaped text, written straight into
    /// `out` without building a JSON value.
    fn delta_text(&self, out: &mut Vec<u8>, open: &[u8], text: &str) {
        self.write_chunk(
            out,
            |o| {
                o.extend_from_slice(open);
                let _ = serde_json::to_writer(&mut *o, text);
                o.push(b'}');
            },
            None,
        );
    }

    /// `data: {chunk}\n\n`, the chunk written field by field (the same fields OpenAI sends), its delta by `delta`.
    fn write_chunk(
        &self,
        out: &mut Vec<u8>,
        delta: impl FnOnce(&mut Vec<u8>),
        finish: Option<FinishReason>,
    ) {
        out.extend_from_slice(b"data: {\"id\":");
        let _ = serde_json::to_writer(&mut *out, &self.id);
        let _ = write!(
            out,
            ",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":",
            self.created
        );
        let _ = serde_json::to_writer(&mut *out, &self.model);
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        delta(out);
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => {
                out.push(b'"');
                out.extend_from_slice(f.as_str().as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }
}

/// The body with its top-level `"model"` string replaced, every other byte untouched (prompt caches upstream key
/// on the exact bytes). `None` when the body is not a JSON object with a string `model` at its top level.
pub fn rewrite_model(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let (start, end) = top_level_string_span(body, b"model")?;
    let mut quoted = String::with_capacity(model.len() + 2);
    // serde_json escapes exactly as JSON needs.
    let _ = write!(quoted, "{}", Value::String(model.to_owned()));
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[end..]);
    Some(out)
}

/// The byte span (quotes included) of the string value of top-level key `key`.
fn top_level_string_span(body: &[u8], key: &[u8]) -> Option<(usize, usize)> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(body, i);
        match body.get(i)? {
            b'}' => return None,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(body, i)?;
        let this_key = &body[i + 1..key_end - 1];
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(body, i + 1);
        let value_end = value_end(body, i)?;
        if this_key == key {
            return (body.get(i) == Some(&b'"')).then_some((i, value_end));
        }
        i = value_end;
    }
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while matches!(body.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string starting at `i` (which is `"`).
fn string_end(body: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < body.len() {
        match body[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The index just past the JSON value starting at `i`.
fn value_end(body: &[u8], i: usize) -> Option<usize> {
    match body.get(i)? {
        b'"' => string_end(body, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < body.len() {
                match body[j] {
                    b'"' => {
                        j = string_end(body, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < body.len()
                && !matches!(body[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::chat::{FunctionCall, ToolCall};

    #[test]
    fn model_is_rewritten_in_place_and_nothing_else_moves() {
        let body = br#"{ "messages":[{"role":"user","content":"say \"model\": x"}], "model" : "openai/gpt-4o-mini","n":1}"#;
        let out = rewrite_model(body, "gpt-4o-mini").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "messages":[{"role":"user","content":"say \"model\": x"}], "model" : "gpt-4o-mini","n":1}"#
        );
        assert_eq!(rewrite_model(br#"{"x":{"model":"a"}}"#, "b"), None);
        assert_eq!(rewrite_model(br#"{"model":5}"#, "b"), None);
        assert_eq!(rewrite_model(b"[1]", "b"), None);
        assert_eq!(rewrite_model(br#"{"model":"a"#, "b"), None);
    }

    #[test]
    fn a_whole_answer_has_openai_shape_and_inclusive_usage() {
        let resp = ChatResponse {
            id: Some("msg_1".into()),
            model: Some("claude-x".into()),
            text: None,
            reasoning: None,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: "weather".into(),
                    arguments: "{\"location\":\"Paris\"}".into(),
                },
            }],
            finish_reason: None,
            usage: Some(Usage {
                prompt_tokens: 20,
                completion_tokens: 5,
                cached_tokens: 8,
                ..Default::default()
            }),
        };
        let v: Value = serde_json::from_slice(&encode_response(&resp, "m", 7, "x")).unwrap();
        assert_eq!(v["id"], "chatcmpl-msg_1");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "weather"
        );
        assert_eq!(v["usage"]["total_tokens"], 25);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
    }

    fn frames(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter_map(|f| f.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn a_stream_comes_out_in_openai_order_with_usage_last() {
        let mut enc = ChatStreamEncoder::new("m", 1, "abc", true);
        let mut out = Vec::new();
        for e in [
            StreamEvent::Start {
                id: Some("msg_1".into()),
                model: Some("claude".into()),
            },
            StreamEvent::Usage(Usage {
                prompt_tokens: 10,
                ..Default::default()
            }),
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "c1".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{}".into(),
            },
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(Usage {
                completion_tokens: 3,
                ..Default::default()
            }),
        ] {
            enc.encode(&e, &mut out);
        }
        enc.finish(true, &mut out);
        assert!(out.ends_with(b"data: [DONE]\n\n"));
        let f = frames(&out);
        assert_eq!(f[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(f[1]["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(f[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "c1");
        assert_eq!(f[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(f[6]["choices"], json!([]));
        assert_eq!(f[6]["usage"]["total_tokens"], 13);
        assert!(
            f.iter()
                .all(|c| c["id"] == "chatcmpl-msg_1" && c["model"] == "claude")
        );
    }

    #[test]
    fn deltas_written_directly_are_escaped_json() {
        let mut enc = ChatStreamEncoder::new("m\"x", 1, "abc", true);
        let mut out = Vec::new();
        for e in [
            StreamEvent::TextDelta("say \"hi\"\n\u{1F600}".into()),
            StreamEvent::ReasoningDelta("\\think".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "c".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                fragment: "{\"a\":".into(),
            },
        ] {
            enc.encode(&e, &mut out);
        }
        let f = frames(&out);
        assert_eq!(
            f[1]["choices"][0]["delta"]["content"],
            "say \"hi\"\n\u{1F600}"
        );
        assert_eq!(f[2]["choices"][0]["delta"]["reasoning_content"], "\\think");
        assert_eq!(
            f[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":"
        );
        assert!(
            f.iter()
                .all(|c| c["model"] == "m\"x" && c["usage"].is_null() && c["created"] == 1)
        );
    }

    #[test]
    fn a_cut_stream_ends_with_an_error_frame() {
        let mut enc = ChatStreamEncoder::new("m", 1, "abc", false);
        let mut out = Vec::new();
        enc.encode(&StreamEvent::TextDelta("x".into()), &mut out);
        enc.finish(false, &mut out);
        let f = frames(&out);
        assert!(
            f.last().unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ended early")
        );
    }
}
