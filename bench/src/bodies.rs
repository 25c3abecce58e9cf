//! The request bodies every phase sends: one question, in OpenAI's and in Anthropic's form.

use bytes::Bytes;
use serde_json::json;

pub const SYSTEM: &str = "You are a terse, accurate assistant for network engineers.";
pub const QUESTION: &str = "Summarise in one sentence why an HTTP proxy keeps its upstream connections alive and pooled \
                        between requests.";

/// The ~300-byte OpenAI chat completion every OpenAI phase sends (`model` differs through `/compat`).
pub fn chat_body(model: &str, stream: bool) -> Bytes {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION}
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "user": "gatehouse-bench"
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    Bytes::from(body.to_string())
}

/// The same request in Anthropic's Messages form, as `/compat` translates it (system apart, `user` as
/// `metadata.user_id`).
pub fn messages_body(model: &str, stream: bool) -> Bytes {
    let mut body = json!({
        "model": model,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 64,
        "temperature": 0.2,
        "metadata": {"user_id": "gatehouse-bench"}
    });
    if stream {
        body["stream"] = json!(true);
    }
    Bytes::from(body.to_string())
}

pub const OPENAI_MODEL: &str = "gpt-4o-mini";

/// The provider's own name of a `/compat` model: what follows the first `/` (`anthropic/claude-sonnet-4-5` →
/// `claude-sonnet-4-5`).
pub fn native_model(compat_model: &str) -> &str {
    compat_model
        .split_once('/')
        .map_or(compat_model, |(_, m)| m)
}
