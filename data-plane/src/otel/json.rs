//! A batch as one OTLP/JSON `ExportTraceServiceRequest` (the protobuf JSON mapping, with OTLP's exceptions):
//! field names in lowerCamelCase, trace and span ids as lowercase hex (not base64), 64-bit integers
//! (`intValue`, the `…UnixNano` times) as decimal strings, enums (`kind`, `status.code`) as integers, default
//! values left out.
//!
//! Written straight into the body buffer, strings escaped by serde_json: building a `serde_json::Value` per span
//! first cost the exporter several times as much CPU per span (a dozen maps and strings made and dropped).

use std::io::Write;

use super::span::{AttrValue, ExportSpan};
use super::{SCOPE_NAME, SERVICE_NAME, SERVICE_VERSION, SPAN_KIND_SERVER, STATUS_CODE_ERROR};

/// The request body for `spans`, all under one resource and one scope.
pub(super) fn encode(spans: &[ExportSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        256 + spans
            .iter()
            .map(ExportSpan::approximate_bytes)
            .sum::<usize>(),
    );
    out.extend_from_slice(br#"{"resourceSpans":[{"resource":{"attributes":["#);
    attribute(&mut out, "service.name", &Text(SERVICE_NAME));
    out.push(b',');
    attribute(&mut out, "service.version", &Text(SERVICE_VERSION));
    out.extend_from_slice(br#"]},"scopeSpans":[{"scope":{"name":"#);
    string(&mut out, SCOPE_NAME);
    out.extend_from_slice(br#","version":"#);
    string(&mut out, SERVICE_VERSION);
    out.extend_from_slice(br#"},"spans":["#);
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        span(&mut out, s);
    }
    out.extend_from_slice(b"]}]}]}");
    out
}

fn span(out: &mut Vec<u8>, span: &ExportSpan) {
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        r#"{{"traceId":"{}","spanId":"{}","#,
        hex::encode(span.trace_id),
        hex::encode(span.span_id)
    );
    if let Some(parent) = span.parent_span_id {
        let _ = write!(out, r#""parentSpanId":"{}","#, hex::encode(parent));
    }
    out.extend_from_slice(br#""name":"#);
    string(out, &span.name);
    let _ = write!(
        out,
        r#","kind":{SPAN_KIND_SERVER},"startTimeUnixNano":"{}","endTimeUnixNano":"{}""#,
        span.start_unix_nanos, span.end_unix_nanos
    );
    if !span.attributes.is_empty() {
        out.extend_from_slice(br#","attributes":["#);
        for (i, (key, value)) in span.attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            attribute(out, key.as_ref(), value);
        }
        out.push(b']');
    }
    if span.error {
        out.extend_from_slice(br#","status":{"#);
        if let Some(message) = span.status_message.as_ref().filter(|m| !m.is_empty()) {
            out.extend_from_slice(br#""message":"#);
            string(out, message);
            out.push(b',');
        }
        let _ = write!(out, r#""code":{STATUS_CODE_ERROR}}}"#);
    }
    out.push(b'}');
}

/// A value an attribute can be written from without owning it.
trait AttrSource {
    fn write_value(&self, out: &mut Vec<u8>);
}

struct Text<'a>(&'a str);

impl AttrSource for Text<'_> {
    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"stringValue":"#);
        string(out, self.0);
        out.push(b'}');
    }
}

impl AttrSource for AttrValue {
    fn write_value(&self, out: &mut Vec<u8>) {
        match self {
            AttrValue::Str(s) => Text(s).write_value(out),
            AttrValue::Int(i) => {
                let _ = write!(out, r#"{{"intValue":"{i}"}}"#);
            }
            AttrValue::Double(d) => {
                out.extend_from_slice(br#"{"doubleValue":"#);
                double(out, *d);
                out.push(b'}');
            }
            AttrValue::Bool(b) => {
                let _ = write!(out, r#"{{"boolValue":{b}}}"#);
            }
        }
    }
}

fn attribute(out: &mut Vec<u8>, key: &str, value: &dyn AttrSource) {
    out.extend_from_slice(br#"{"key":"#);
    string(out, key);
    out.extend_from_slice(br#","value":"#);
    value.write_value(out);
    out.push(b'}');
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON number, or the protobuf JSON mapping's strings for the values JSON has no number for.
fn double(out: &mut Vec<u8>, d: f64) {
    if d.is_nan() {
        out.extend_from_slice(br#""NaN""#);
    } else if d == f64::INFINITY {
        out.extend_from_slice(br#""Infinity""#);
    } else if d == f64::NEG_INFINITY {
        out.extend_from_slice(br#""-Infinity""#);
    } else {
        let _ = serde_json::to_writer(&mut *out, &d);
    }
}
