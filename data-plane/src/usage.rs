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

pub use crate::dialect::Dialect;

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

impl Framing {
    /// The framing a response's `content-type` announces. A missing `content-type` is read as JSON; the lexer
    /// gives up at once if it is not.
    pub fn of(content_type: Option<&str>) -> Framing {
        match content_type.map(|c| {
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
                if c == "application/json"
                    || c.ends_with("+json")
                    || c == "application/x-ndjson" =>
            {
                Framing::Json
            }
            Some(_) => Framing::None,
        }
    }
}

/// Chooses the format from the provider slug, the request path (the part after the provider) and the response's
/// `content-type`.
pub fn choose_format(provider: &str, path: &str, content_type: Option<&str>) -> ResponseFormat {
    ResponseFormat {
        dialect: crate::dialect::of(provider, path),
        framing: Framing::of(content_type),
    }
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
