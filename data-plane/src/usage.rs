//! Token usage read from a provider's response as its chunks pass through.
//!
//! The relay hands every body chunk to [`UsageScanner::feed`] on its way downstream and calls
//! [`UsageScanner::finish`] at the end, for the log record and the cost. The body is never buffered and never
//! parsed into a tree: a byte-level lexer (`usage/json.rs`) tracks the outer nesting and copies only the `usage`
//! object (capped at 4 KiB), which is then parsed alone into a struct of integers (`usage/raw.rs`). SSE bodies go
//! through a line splitter first (`usage/sse.rs`) that feeds each event's `data:` payload as one document.
//!
//! Cost per chunk: one pass over its bytes, no allocation. Allocations per response: the 4 KiB capture buffer the
//! first time a usage object starts, and the model name once. Anything that is not JSON, is cut off, or is huge
//! ends with `None` fields rather than an error: usage is an estimate and must never fail a response.
//!
//! Bedrock's binary `application/vnd.amazon.eventstream` framing (ConverseStream, InvokeModelWithResponseStream)
//! goes through `usage/eventstream.rs`, which gathers each message's payload (small: up to 64 KiB, in one buffer
//! reused for the response) and feeds it as one document, base64-decoded first when it wraps the model's own chunk.

mod eventstream;
mod json;
mod raw;
mod sse;
#[cfg(test)]
mod tests;

use eventstream::EventStreamScan;
use json::JsonScan;
use sse::SseScan;

/// Whose usage fields to expect. Used as a hint: the scanner reads any dialect's fields and the hint only settles
/// `input_tokens`, which Anthropic counts without cached tokens and OpenAI's Responses API with them.
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

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document (or a JSON array of chunks, or documents one after another).
    Json,
    /// `text/event-stream`: one JSON document per event's `data:`.
    Sse,
    /// AWS's binary event stream (`application/vnd.amazon.eventstream`): one JSON document per message.
    EventStream,
    /// Not scanned (audio, images): every field stays `None`.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFormat {
    pub dialect: Dialect,
    pub framing: Framing,
}

/// Usage of one response. `tokens_in` counts all input tokens, cached ones included (for Anthropic and Bedrock:
/// input plus cache reads plus cache writes); `cached_tokens_in` is the part read from a cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cached_tokens_in: Option<u64>,
    /// The response's `model` (Gemini: `modelVersion`), the first one seen.
    pub model: Option<String>,
}

/// Chooses the format from the provider slug, the request path (the part after the provider) and the response's
/// `content-type`. A missing `content-type` is read as JSON; the lexer gives up at once if it is not.
pub fn choose_format(provider: &str, path: &str, content_type: Option<&str>) -> ResponseFormat {
    let framing = match content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }) {
        None => Framing::Json,
        Some(c) if c == "text/event-stream" => Framing::Sse,
        Some(c) if c == "application/vnd.amazon.eventstream" => Framing::EventStream,
        Some(c)
            if c == "application/json" || c.ends_with("+json") || c == "application/x-ndjson" =>
        {
            Framing::Json
        }
        Some(_) => Framing::None,
    };
    let path = path.to_ascii_lowercase();
    // OpenAI-compatible endpoints exist on many native providers (Anthropic, Gemini, Cohere, Workers AI).
    let openai_path = if path.contains("/responses") {
        Dialect::OpenAiResponses
    } else {
        Dialect::OpenAiChat
    };
    let compatible = path.contains("chat/completions") || path.contains("/responses");
    let dialect = match provider {
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
    };
    ResponseFormat { dialect, framing }
}

/// Reads usage from a response body fed chunk by chunk. See the module comment for costs and bounds.
#[derive(Debug)]
pub struct UsageScanner {
    format: ResponseFormat,
    json: JsonScan,
    sse: SseScan,
    event_stream: EventStreamScan,
}

impl UsageScanner {
    pub fn new(format: ResponseFormat) -> Self {
        Self {
            format,
            json: JsonScan::new(),
            sse: SseScan::new(),
            event_stream: EventStreamScan::new(),
        }
    }

    /// Scans one chunk. Never fails, never buffers the chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        match self.format.framing {
            Framing::Json => self.json.feed(chunk),
            Framing::Sse => self.sse.feed(chunk, &mut self.json),
            Framing::EventStream => self.event_stream.feed(chunk, &mut self.json),
            Framing::None => {}
        }
    }

    /// Heap bytes the scanner holds between chunks (the capture buffer, and an event stream's payload buffers);
    /// bounded whatever the body: 4 KiB, plus 64 KiB and its decoding for an event stream.
    pub fn retained_bytes(&self) -> usize {
        self.json.retained_bytes() + self.event_stream.retained_bytes()
    }

    /// The usage found. A usage object cut off by the end of the body does not count; fields the provider did not
    /// send stay `None`.
    pub fn finish(self) -> Usage {
        let counts = if self.json.seen_usage {
            self.json.usage.counts(self.format.dialect)
        } else {
            Default::default()
        };
        Usage {
            tokens_in: counts.tokens_in,
            tokens_out: counts.tokens_out,
            cached_tokens_in: counts.cached_in,
            model: self.json.model,
        }
    }
}
