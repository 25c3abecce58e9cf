//! Mock LLM providers for end-to-end tests and benchmarks of the gateway.
//!
//! One HTTP/1.1 server answers OpenAI's and Anthropic's wire formats, SSE included, so traffic can run through the
//! real gateway binary without leaving the machine:
//!
//! | route (matched on the path's suffix)  | format |
//! |---|---|
//! | `POST …/chat/completions`            | OpenAI chat completions, JSON or `data:` SSE ending in `data: [DONE]` |
//! | `POST …/responses`                   | OpenAI Responses, JSON or `event:`/`data:` SSE ending in `response.completed` |
//! | `POST …/embeddings`                  | OpenAI embeddings (`float` or `base64`) |
//! | `POST …/messages`                    | Anthropic Messages, JSON or `event:`/`data:` SSE |
//!
//! Suffix matching lets one mock stand in for any base URL the gateway is pointed at (`http://mock/v1` for OpenAI,
//! `http://mock` for Anthropic, whose paths start with `/v1`).
//!
//! Requests are checked as the real APIs check them (OpenAI: `Authorization: Bearer`; Anthropic: `x-api-key` and
//! `anthropic-version`; a JSON object body) and refused with the providers' own error shapes. Behaviour is steered
//! programmatically ([`MockProvider::set_behaviour`]) or per request with `x-mock-*` headers ([`control`]), so a
//! mock in another process can be steered through the gateway.
//!
//! Token counts are deterministic (see [`usage_for`]) so a test can predict what the gateway should account.

mod anthropic;
mod auth;
mod behaviour;
mod body;
mod errors;
mod handler;
mod openai;
mod port;
mod record;
mod server;
mod state;
mod text;

pub use behaviour::{Behaviour, control};
pub use port::unused_port;
pub use record::RecordedRequest;
pub use server::{MockProvider, serve};
pub use state::MockState;
pub use text::{DEFAULT_CHUNKS, Usage, completion_text, usage_for};

/// The largest request body the mock accepts (tests send 5 MB; the gateway's default cap is 32 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
