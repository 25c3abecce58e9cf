//! What a provider module answers from, and how a handler says "no answer": the types every provider module and
//! the request handler share. A leaf, so that the handler can call the providers and the providers never need the
//! handler.

use std::time::Duration;

use crate::scenario::Scenario;
use crate::text::Usage;

/// Returned to hyper to drop the connection without a response (the `close` behaviour, or a client that went away
/// mid-body).
#[derive(Debug)]
pub(crate) struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the mock without a response")
    }
}

impl std::error::Error for CloseConnection {}

/// What a successful answer is generated from.
pub(crate) struct Answer<'a> {
    pub id: u64,
    pub model: &'a str,
    pub chunks: usize,
    pub chunk_delay: Duration,
    pub usage: Usage,
    /// Unix seconds.
    pub created: u64,
    /// The kind of answer (`x-mock-scenario`).
    pub scenario: Scenario,
}

/// A request body that parsed but lacks what the endpoint requires.
pub(crate) struct Invalid {
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl Invalid {
    /// OpenAI's answer to a missing field.
    pub fn openai_missing(param: &'static str) -> Invalid {
        Invalid {
            message: format!("Missing required parameter: '{param}'."),
            param: Some(param),
            code: Some("missing_required_parameter"),
        }
    }

    /// Anthropic's answer to a missing field.
    pub fn anthropic_missing(field: &'static str) -> Invalid {
        Invalid {
            message: format!("{field}: Field required"),
            param: None,
            code: None,
        }
    }
}
