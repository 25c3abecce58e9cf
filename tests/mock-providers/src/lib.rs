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
//! | `POST …/model/{id}/converse`         | AWS Bedrock Converse, JSON |
//! | `POST …/model/{id}/converse-stream`  | AWS Bedrock ConverseStream, binary `application/vnd.amazon.eventstream` |
//! | `POST …/v2/chat`                     | Cohere v2 chat, JSON or `event:`/`data:` SSE (`Authorization: Bearer`) |
//! | `POST …/v2/embed`                    | Cohere v2 embed (`embeddings.float`) |
//! | `POST …/model/{id}/invoke`           | AWS Bedrock InvokeModel for Titan and Cohere embeddings models |
//! | `POST …/ai/run/{@cf/…}`              | Workers AI: text embeddings (`{result:{shape, data}, success}`) for `bge-…`/`…embed…` models, text generation (`{result:{response, tool_calls, usage}}`, or `data:` SSE ending in `data: [DONE]`) for the others; `Authorization: Bearer` |
//! | `POST …/models/{m}:generateContent`  | Gemini (AI Studio `x-goog-api-key`; Vertex `…/publishers/google/models/…` with `Authorization: Bearer`), JSON |
//! | `POST …/models/{m}:streamGenerateContent` | Gemini, `data:` SSE with `alt=sse`, else one JSON array |
//! | `POST …/models/{m}:embedContent`, `:batchEmbedContents`, `:predict` | Gemini embeddings (AI Studio; Vertex `:predict`) |
//! | `POST …/token`                       | Google's OAuth token endpoint (JWT-bearer grant), mints `ya29.mock-<n>` tokens |
//!
//! Suffix matching lets one mock stand in for any base URL the gateway is pointed at (`http://mock/v1` for OpenAI,
//! `http://mock` for Anthropic, whose paths start with `/v1`).
//!
//! Requests are checked as the real APIs check them (OpenAI: `Authorization: Bearer`; Anthropic: `x-api-key` and
//! `anthropic-version`; a JSON object body) and refused with the providers' own error shapes. Behaviour is steered
//! programmatically ([`MockProvider::set_behaviour`]) or per request with `x-mock-*` headers ([`control`]), so a
//! mock in another process can be steered through the gateway. The `x-mock-scenario` header ([`SCENARIO_HEADER`])
//! picks the kind of answer: `text` (default), `tool_call`, `parallel_tool_calls`, `reasoning`, `length`,
//! `content_filter`, `cached`, each in the provider's own wire format.
//!
//! Token counts are deterministic (see [`usage_for`]) so a test can predict what the gateway should account, and so
//! are embeddings ([`embedding_vector`]), whichever provider answers.

mod answer;
mod anthropic;
mod auth;
mod bedrock;
mod behaviour;
mod body;
mod cohere;
mod embeddings;
mod errors;
mod gemini;
mod handler;
mod openai;
pub mod otlp;
mod port;
mod record;
mod refusal;
mod scenario;
mod server;
mod state;
mod text;
mod workers_ai;

pub use behaviour::{Behaviour, control};
pub use gemini::THOUGHTS_TOKENS as GEMINI_THOUGHTS_TOKENS;
pub use port::unused_port;
pub use record::RecordedRequest;
pub use scenario::HEADER as SCENARIO_HEADER;
pub use server::{MockProvider, serve};
pub use state::MockState;
pub use text::{
    DEFAULT_CHUNKS, DEFAULT_EMBEDDING_DIMENSIONS, Usage, completion_text, embedding_vector,
    usage_for,
};

/// The largest request body the mock accepts (tests send 5 MB; the gateway's default cap is 32 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
