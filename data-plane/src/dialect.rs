//! Provider wire formats behind one seam: which family's format a request and its response speak, decided from the
//! provider slug and the path after it. This is the one place that knows that Vertex serves Claude in Anthropic's
//! shape under `publishers/anthropic`, or that Anthropic, Gemini and Cohere also serve OpenAI-compatible paths.
//!
//! Today the relay uses it natively: the answer passes through untouched and its usage is read in the family's
//! fields (`usage.rs`). Protocol translation (the OpenAI-compatible endpoint) is the second use of the same seam:
//! each family then gets a module here (`dialect/<family>.rs`) with pure request encoding and response/stream
//! decoding to the unified shape, chosen by this same [`Dialect`] value. Nothing here does I/O.

/// A provider family's wire format. For usage it is a hint: the scanner reads any dialect's fields and the hint
/// only settles `input_tokens`, which Anthropic counts without cached tokens and OpenAI's Responses API with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI chat completions and every OpenAI-compatible API (`prompt_tokens`, `completion_tokens`).
    OpenAiChat,
    /// OpenAI Responses (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`).
    OpenAiResponses,
    /// Anthropic Messages (`input_tokens` plus `cache_read_input_tokens` and `cache_creation_input_tokens`).
    Anthropic,
    /// Gemini `usageMetadata` (Google AI Studio and Vertex AI).
    Gemini,
    /// Bedrock Converse (`inputTokens`, `outputTokens`, camelCase).
    BedrockConverse,
    /// Cohere v2 chat (`usage.billed_units`).
    Cohere,
    /// Unknown provider: decided from the fields present.
    Auto,
}

/// The dialect of a provider-native request: `provider` is the slug, `path` the part after it.
pub fn of(provider: &str, path: &str) -> Dialect {
    let path = path.to_ascii_lowercase();
    // OpenAI-compatible endpoints exist on many native providers (Anthropic, Gemini, Cohere, Workers AI).
    let openai_path = if path.contains("/responses") {
        Dialect::OpenAiResponses
    } else {
        Dialect::OpenAiChat
    };
    let compatible = path.contains("chat/completions") || path.contains("/responses");
    match provider {
        "anthropic" if !compatible => Dialect::Anthropic,
        "google-ai-studio" if !compatible => Dialect::Gemini,
        // Vertex serves Anthropic models under `publishers/anthropic`, in Anthropic's shape.
        "google-vertex-ai" if path.contains("publishers/anthropic") => Dialect::Anthropic,
        "google-vertex-ai" if !compatible => Dialect::Gemini,
        "aws-bedrock" if path.contains("/converse") => Dialect::BedrockConverse,
        // InvokeModel returns the model's native body: Anthropic's for Claude.
        "aws-bedrock" if path.contains("anthropic.") => Dialect::Anthropic,
        "aws-bedrock" => Dialect::Auto,
        "cohere" if !compatible => Dialect::Cohere,
        "openai" | "azure-openai" | "groq" | "mistral" | "deepseek" | "grok" | "cerebras"
        | "perplexity-ai" | "openrouter" | "workers-ai" | "compat" | "anthropic"
        | "google-ai-studio" | "google-vertex-ai" | "cohere" => openai_path,
        _ if compatible => openai_path,
        _ => Dialect::Auto,
    }
}

pub mod anthropic;
pub mod bedrock;
pub mod chat;
pub mod codec;
pub mod cohere;
pub mod embeddings;
pub mod frames;
pub mod gemini;
pub mod openai;
pub mod responses;
#[cfg(test)]
mod test_support;
pub mod validate;
pub mod vertex_auth;
pub mod workers_ai;

pub use chat::{ChatRequest, ChatResponse, FinishReason, ProviderError, StreamEvent};
pub use codec::{ChatCodec, Encoded, StreamDecoder, Target, TranslateError};

/// The codec of a provider that `/compat` translates to (the OpenAI-compatible providers need none: their bodies
/// pass through with `model` rewritten). `None` for a slug Gatehouse does not translate.
pub fn chat_codec(slug: &str) -> Option<&'static dyn ChatCodec> {
    match slug {
        "anthropic" => Some(&anthropic::AnthropicCodec),
        "cohere" => Some(&cohere::CohereCodec),
        gemini::AI_STUDIO | gemini::VERTEX => Some(&gemini::GeminiCodec),
        "aws-bedrock" => Some(&bedrock::BedrockCodec),
        "workers-ai" => Some(&workers_ai::WorkersAiCodec),
        _ => None,
    }
}
