//! A batch as one OTLP/JSON `ExportTraceServiceRequest` (the protobuf JSON mapping, with OTLP's exceptions):
//! field names in lowerCamelCase, trace and span ids as lowercase hex (not base64), 64-bit integers
//! (`intValue`, the `…UnixNano` times) as decimal strings, enums (`kind`, `status.code`) as integers, default
//! values left out.

use serde_json::{Map, Value, json};

use super::span::{AttrValue, ExportSpan};
use super::{SCOPE_NAME, SERVICE_NAME, SERVICE_VERSION, SPAN_KIND_SERVER, STATUS_CODE_ERROR};

/// The request body for `spans`, all under one resource and one scope.
pub(super) fn encode(spans: &[ExportSpan]) -> Vec<u8> {
    let document = json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    attribute("service.name", &AttrValue::Str(SERVICE_NAME.to_owned())),
                    attribute("service.version", &AttrValue::Str(SERVICE_VERSION.to_owned())),
                ],
            },
            "scopeSpans": [{
                "scope": { "name": SCOPE_NAME, "version": SERVICE_VERSION },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    });
    serde_json::to_vec(&document).unwrap_or_default()
}

fn span(span: &ExportSpan) -> Value {
    let mut out = Map::new();
    out.insert("traceId".into(), hex::encode(span.trace_id).into());
    out.insert("spanId".into(), hex::encode(span.span_id).into());
    if let Some(parent) = span.parent_span_id {
        out.insert("parentSpanId".into(), hex::encode(parent).into());
    }
    out.insert("name".into(), span.name.clone().into());
    out.insert("kind".into(), SPAN_KIND_SERVER.into());
    out.insert(
        "startTimeUnixNano".into(),
        span.start_unix_nanos.to_string().into(),
    );
    out.insert(
        "endTimeUnixNano".into(),
        span.end_unix_nanos.to_string().into(),
    );
    if !span.attributes.is_empty() {
        out.insert(
            "attributes".into(),
            span.attributes
                .iter()
                .map(|(key, value)| attribute(key, value))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if span.error {
        let mut status = Map::new();
        if let Some(message) = span.status_message.as_ref().filter(|m| !m.is_empty()) {
            status.insert("message".into(), message.clone().into());
        }
        status.insert("code".into(), STATUS_CODE_ERROR.into());
        out.insert("status".into(), status.into());
    }
    Value::Object(out)
}

fn attribute(key: &str, value: &AttrValue) -> Value {
    let value = match value {
        AttrValue::Str(s) => json!({ "stringValue": s }),
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Double(d) => json!({ "doubleValue": double(*d) }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

/// A JSON number, or the protobuf JSON mapping's strings for the values JSON has no number for.
fn double(d: f64) -> Value {
    if d.is_nan() {
        "NaN".into()
    } else if d == f64::INFINITY {
        "Infinity".into()
    } else if d == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        d.into()
    }
}
