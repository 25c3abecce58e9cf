//! A batch as one binary `ExportTraceServiceRequest`, written by hand: the few messages a span needs, with the
//! field numbers of `opentelemetry/proto/{collector/trace,trace,resource,common}/v1/*.proto`. Smaller than
//! generated code and its build; the tests decode the output with `opentelemetry-proto`'s prost types.
//!
//! Wire rules used: varint (wire type 0) for enums and `bool`, two's complement for `int64`; 64-bit fixed (wire
//! type 1) for `double` and the `fixed64` times; length-delimited (wire type 2) for strings, bytes and nested
//! messages. Default values (empty strings, zero enums, absent parents) are left out, as proto3 does.

use super::span::{AttrValue, ExportSpan};
use super::{SCOPE_NAME, SERVICE_NAME, SERVICE_VERSION, SPAN_KIND_SERVER, STATUS_CODE_ERROR};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// The request body for `spans`, all under one resource and one scope.
pub(super) fn encode(spans: &[ExportSpan]) -> Vec<u8> {
    // ResourceSpans { resource = 1, scope_spans = 2 }
    let mut resource_spans = Vec::new();
    message(&mut resource_spans, 1, &resource());
    message(&mut resource_spans, 2, &scope_spans(spans));
    // ExportTraceServiceRequest { resource_spans = 1 }
    let mut request = Vec::with_capacity(resource_spans.len() + 8);
    message(&mut request, 1, &resource_spans);
    request
}

/// Resource { attributes = 1 }
fn resource() -> Vec<u8> {
    let mut out = Vec::new();
    message(
        &mut out,
        1,
        &key_value("service.name", &AttrValue::Str(SERVICE_NAME.to_owned())),
    );
    message(
        &mut out,
        1,
        &key_value(
            "service.version",
            &AttrValue::Str(SERVICE_VERSION.to_owned()),
        ),
    );
    out
}

/// ScopeSpans { scope = 1, spans = 2 }, with InstrumentationScope { name = 1, version = 2 }.
fn scope_spans(spans: &[ExportSpan]) -> Vec<u8> {
    let mut scope = Vec::new();
    string(&mut scope, 1, SCOPE_NAME);
    string(&mut scope, 2, SERVICE_VERSION);
    let mut out = Vec::new();
    message(&mut out, 1, &scope);
    for s in spans {
        message(&mut out, 2, &span(s));
    }
    out
}

/// Span { trace_id = 1, span_id = 2, parent_span_id = 4, name = 5, kind = 6, start_time_unix_nano = 7,
/// end_time_unix_nano = 8, attributes = 9, status = 15 }
fn span(span: &ExportSpan) -> Vec<u8> {
    let mut out = Vec::new();
    bytes(&mut out, 1, &span.trace_id);
    bytes(&mut out, 2, &span.span_id);
    if let Some(parent) = &span.parent_span_id {
        bytes(&mut out, 4, parent);
    }
    string(&mut out, 5, &span.name);
    tag(&mut out, 6, VARINT);
    varint(&mut out, SPAN_KIND_SERVER as u64);
    fixed64(&mut out, 7, span.start_unix_nanos);
    fixed64(&mut out, 8, span.end_unix_nanos);
    for (key, value) in &span.attributes {
        message(&mut out, 9, &key_value(key.as_ref(), value));
    }
    if span.error {
        // Status { message = 2, code = 3 }
        let mut status = Vec::new();
        if let Some(message) = &span.status_message {
            string(&mut status, 2, message);
        }
        tag(&mut status, 3, VARINT);
        varint(&mut status, STATUS_CODE_ERROR as u64);
        message(&mut out, 15, &status);
    }
    out
}

/// KeyValue { key = 1, value = 2 }, with AnyValue { string_value = 1, bool_value = 2, int_value = 3,
/// double_value = 4 } (a oneof: the field is written even when it holds its default, so the kind is known).
fn key_value(key: &str, value: &AttrValue) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        AttrValue::Str(s) => {
            tag(&mut any, 1, LEN);
            varint(&mut any, s.len() as u64);
            any.extend_from_slice(s.as_bytes());
        }
        AttrValue::Bool(b) => {
            tag(&mut any, 2, VARINT);
            varint(&mut any, u64::from(*b));
        }
        AttrValue::Int(i) => {
            tag(&mut any, 3, VARINT);
            // int64: the two's complement as an unsigned varint (ten bytes for a negative value).
            varint(&mut any, *i as u64);
        }
        AttrValue::Double(d) => {
            tag(&mut any, 4, FIXED64);
            any.extend_from_slice(&d.to_bits().to_le_bytes());
        }
    }
    let mut out = Vec::new();
    string(&mut out, 1, key);
    message(&mut out, 2, &any);
    out
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(out, u64::from((field << 3) | wire_type));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A `fixed64` field, left out when zero.
fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// A length-delimited field, written even when empty (a present nested message, or a oneof member).
fn message(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    tag(out, field, LEN);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        message(out, field, value);
    }
}

fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}
