//! One exported span, as the request path builds it, and the ids it carries.

use std::borrow::Cow;

/// A finished request as one OTLP span. Encoded by `json.rs` or `protobuf.rs`; nothing here knows either.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExportSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's span (`cf-aig-otel-parent-span-id`), when it named one.
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Status `ERROR` (with `status_message`); otherwise the status is left unset.
    pub error: bool,
    pub status_message: Option<String>,
    /// Keys are mostly the fixed `gen_ai.*` names, borrowed; custom metadata keys are owned.
    pub attributes: Vec<(Cow<'static, str>, AttrValue)>,
}

/// An attribute's value: the scalar kinds of OTLP's `AnyValue`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl ExportSpan {
    /// Roughly what the span holds in memory, for the queue's byte bound (strings dominate; a prompt attribute can
    /// be large).
    pub(crate) fn approximate_bytes(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .map(|(key, value)| {
                key.len()
                    + match value {
                        AttrValue::Str(s) => s.len(),
                        AttrValue::Int(_) | AttrValue::Double(_) | AttrValue::Bool(_) => 8,
                    }
                    + 32
            })
            .sum();
        std::mem::size_of::<Self>()
            + self.name.len()
            + self.status_message.as_ref().map_or(0, String::len)
            + attributes
    }
}

/// A fresh trace id: 128 bits of a new ULID (its low 80 bits random), never all zero.
pub(crate) fn new_trace_id() -> [u8; 16] {
    ulid::Ulid::generate().to_bytes()
}

/// A fresh span id: the random low 64 bits of a new ULID, never all zero.
pub(crate) fn new_span_id() -> [u8; 8] {
    loop {
        let random = ulid::Ulid::generate().random() as u64;
        if random != 0 {
            return random.to_be_bytes();
        }
    }
}

/// `cf-aig-otel-trace-id`: 32 hex digits, not all zero (W3C's invalid id).
pub(crate) fn parse_trace_id(value: &str) -> Option<[u8; 16]> {
    parse_id(value)
}

/// `cf-aig-otel-parent-span-id`: 16 hex digits, not all zero.
pub(crate) fn parse_span_id(value: &str) -> Option<[u8; 8]> {
    parse_id(value)
}

fn parse_id<const N: usize>(value: &str) -> Option<[u8; N]> {
    let mut id = [0u8; N];
    hex::decode_to_slice(value.trim(), &mut id).ok()?;
    (id != [0u8; N]).then_some(id)
}
