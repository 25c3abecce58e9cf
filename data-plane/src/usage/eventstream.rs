//! AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's `ConverseStream` and
//! `InvokeModelWithResponseStream` send it: each message is
//!
//! ```text
//! total length (u32 BE) | headers length (u32 BE) | prelude CRC32 | headers | payload | message CRC32
//! ```
//!
//! and its payload is one JSON document. `ConverseStream`'s last event (`metadata`) holds
//! `{"usage":{"inputTokens":…,"outputTokens":…}}`; `InvokeModelWithResponseStream` wraps each of the model's own
//! chunks as `{"bytes":"<base64>"}` (for Claude, Anthropic's stream events with their `usage`).
//!
//! The payload of each message is gathered (up to [`MAX_PAYLOAD`]; a larger one is skipped: usage travels in
//! small messages) in a buffer reused for the whole response, then handed to the JSON lexer as one document,
//! decoded first when it is a `bytes` wrapper. CRCs are not checked: the client checks them, and a scanner that
//! only reads must not judge. A prelude that cannot be a message (shorter than its own frame, or beyond 16 MiB,
//! the protocol's limit) stops the scan: usage is then `None`, never wrong.

use base64::Engine as _;

use super::json::JsonScan;

/// Payloads up to this size are scanned; Bedrock's usage events are a few hundred bytes.
const MAX_PAYLOAD: usize = 64 * 1024;
/// The event-stream protocol's largest message.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Prelude (12) plus message CRC (4).
const FRAME_OVERHEAD: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Reading the 12-byte prelude; `have` bytes of it so far.
    Prelude { have: usize },
    /// Skipping headers.
    Headers { left: usize },
    /// Reading the payload; `left` bytes to go. `keep` when it fits [`MAX_PAYLOAD`].
    Payload { left: usize, keep: bool },
    /// Skipping the message CRC.
    Crc { left: usize },
    /// Not an event stream after all: ignore the rest.
    Broken,
}

#[derive(Debug)]
pub(super) struct EventStreamScan {
    part: Part,
    prelude: [u8; 12],
    payload_len: usize,
    payload: Vec<u8>,
    decoded: Vec<u8>,
}

impl EventStreamScan {
    pub(super) fn new() -> Self {
        Self {
            part: Part::Prelude { have: 0 },
            prelude: [0; 12],
            payload_len: 0,
            payload: Vec::new(),
            decoded: Vec::new(),
        }
    }

    /// Heap bytes held between chunks: the payload buffers' allocations.
    pub(super) fn retained_bytes(&self) -> usize {
        self.payload.capacity() + self.decoded.capacity()
    }

    pub(super) fn feed(&mut self, mut bytes: &[u8], json: &mut JsonScan) {
        while !bytes.is_empty() {
            match self.part {
                Part::Broken => return,
                Part::Prelude { have } => {
                    let n = (12 - have).min(bytes.len());
                    self.prelude[have..have + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    self.part = if have + n == 12 {
                        self.start_message()
                    } else {
                        Part::Prelude { have: have + n }
                    };
                }
                Part::Headers { left } => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.part = if n == left {
                        self.start_payload()
                    } else {
                        Part::Headers { left: left - n }
                    };
                }
                Part::Payload { left, keep } => {
                    let n = left.min(bytes.len());
                    if keep {
                        self.payload.extend_from_slice(&bytes[..n]);
                    }
                    bytes = &bytes[n..];
                    if n == left {
                        if keep {
                            self.scan_payload(json);
                        }
                        self.part = Part::Crc { left: 4 };
                    } else {
                        self.part = Part::Payload {
                            left: left - n,
                            keep,
                        };
                    }
                }
                Part::Crc { left } => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.part = if n == left {
                        Part::Prelude { have: 0 }
                    } else {
                        Part::Crc { left: left - n }
                    };
                }
            }
        }
    }

    /// Reads the prelude: where the headers and the payload end.
    fn start_message(&mut self) -> Part {
        let total = u32::from_be_bytes(self.prelude[0..4].try_into().expect("4 bytes")) as usize;
        let headers = u32::from_be_bytes(self.prelude[4..8].try_into().expect("4 bytes")) as usize;
        if !(FRAME_OVERHEAD..=MAX_MESSAGE).contains(&total) || headers > total - FRAME_OVERHEAD {
            return Part::Broken;
        }
        self.payload_len = total - FRAME_OVERHEAD - headers;
        if headers == 0 {
            self.start_payload()
        } else {
            Part::Headers { left: headers }
        }
    }

    fn start_payload(&mut self) -> Part {
        self.payload.clear();
        if self.payload_len == 0 {
            return Part::Crc { left: 4 };
        }
        Part::Payload {
            left: self.payload_len,
            keep: self.payload_len <= MAX_PAYLOAD,
        }
    }

    /// Hands a whole payload to the lexer as one document (the lexer is reset after each, so each starts fresh):
    /// the model's own chunk when it is a `bytes` wrapper.
    fn scan_payload(&mut self, json: &mut JsonScan) {
        match wrapped_chunk(&self.payload) {
            Some(encoded) => {
                self.decoded.clear();
                if base64::engine::general_purpose::STANDARD
                    .decode_vec(encoded, &mut self.decoded)
                    .is_ok()
                {
                    json.feed(&self.decoded);
                }
            }
            None => json.feed(&self.payload),
        }
        json.reset();
    }
}

/// The base64 text of `{"bytes":"…", …}` (InvokeModelWithResponseStream), or `None` for any other payload. The
/// wrapper comes first in Bedrock's messages and base64 has no characters JSON escapes, so the value ends at the
/// next quote.
fn wrapped_chunk(payload: &[u8]) -> Option<&[u8]> {
    let rest = payload.trim_ascii_start().strip_prefix(b"{")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"bytes\"")?;
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    Some(&rest[..end])
}
