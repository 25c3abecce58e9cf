//! The request's OTLP span (spec §3.16), for gateways with `otel` exporters: its trace context is read when the
//! record begins (`cf-aig-otel-trace-id` and `cf-aig-otel-parent-span-id`, else W3C `traceparent`, else a new
//! trace), and the span is built from the finished record in pingora's `logging` phase and handed to the
//! exporters' queue (`otel/`), which never waits. Gateways without exporters pay one `Option` check.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_shared::log::LogRecord;
use pingora::http::RequestHeader;
use serde_json::Value;

use super::controls::{self, Controls};
use crate::otel::{
    AttrValue, ExportSpan, OtlpTarget, SpanQueue, new_span_id, new_trace_id, parse_span_id,
    parse_trace_id,
};

/// Longest prompt or completion attribute, in bytes: collectors commonly refuse attributes past tens of KiB, and
/// a span is not a log record (the record keeps the whole body).
const MAX_BODY_ATTRIBUTE_BYTES: usize = 32 * 1024;

/// What a request's span needs from its start.
#[derive(Debug)]
pub(crate) struct SpanStart {
    targets: Arc<[Arc<OtlpTarget>]>,
    trace_id: [u8; 16],
    parent: Option<[u8; 8]>,
    /// When the request started (the wall clock now, less what the request has taken so far).
    start_unix_nanos: u64,
}

impl SpanStart {
    /// The trace the request's span joins, for a gateway that exports to `targets`; `elapsed` is how long ago the
    /// request started.
    pub(crate) fn begin(
        client: &RequestHeader,
        targets: Arc<[Arc<OtlpTarget>]>,
        elapsed: Duration,
    ) -> Self {
        let controls = Controls::of_request(client);
        let own = controls
            .text(controls::OTEL_TRACE_ID)
            .and_then(parse_trace_id)
            .map(|trace| {
                let parent = controls
                    .text(controls::OTEL_PARENT_SPAN_ID)
                    .and_then(parse_span_id);
                (trace, parent)
            });
        let (trace_id, parent) = match own.or_else(|| traceparent(client)) {
            Some((trace, parent)) => (trace, parent),
            None => (new_trace_id(), None),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            targets,
            trace_id,
            parent,
            start_unix_nanos: nanos(now.saturating_sub(elapsed)),
        }
    }

    /// Builds the span of the finished `record`, which is also logged, and queues it for each exporter.
    pub(crate) fn finish(self, queue: &SpanQueue, record: &LogRecord) {
        let prompt = record.request_body.as_deref().map(|b| clip(b).to_owned());
        let completion = record.response_body.as_deref().map(|b| clip(b).to_owned());
        self.submit(queue, self.span(record, prompt, completion));
    }

    /// Like [`SpanStart::finish`] for a record that is not logged: its bodies move into the span uncopied.
    pub(crate) fn finish_unlogged(self, queue: &SpanQueue, mut record: LogRecord) {
        let take = |body: Option<String>| {
            body.map(|mut b| {
                let keep = clip(&b).len();
                b.truncate(keep);
                b
            })
        };
        let prompt = take(record.request_body.take());
        let completion = take(record.response_body.take());
        self.submit(queue, self.span(&record, prompt, completion));
    }

    fn submit(&self, queue: &SpanQueue, span: ExportSpan) {
        let (last, rest) = self
            .targets
            .split_last()
            .expect("a span start exists only with targets");
        for target in rest {
            queue.submit(target, span.clone());
        }
        queue.submit(last, span);
    }

    fn span(
        &self,
        record: &LogRecord,
        prompt: Option<String>,
        completion: Option<String>,
    ) -> ExportSpan {
        let mut attributes: Vec<(Cow<'static, str>, AttrValue)> = Vec::with_capacity(16);
        let mut text = |key: &'static str, value: &str| {
            attributes.push((key.into(), AttrValue::Str(value.to_owned())));
        };
        if let Some(model) = &record.model {
            text("gen_ai.request.model", model);
        }
        text("gen_ai.model.provider", &record.provider);
        text("ai_gateway.gateway_id", &record.gateway_id);
        text("ai_gateway.log_id", &record.id);
        text("ai_gateway.event_id", &record.event_id);
        if let Some(body) = prompt {
            attributes.push(("gen_ai.prompt_json".into(), AttrValue::Str(body)));
        }
        if let Some(body) = completion {
            attributes.push(("gen_ai.completion_json".into(), AttrValue::Str(body)));
        }
        let int = |n: u64| AttrValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
        if let Some(n) = record.tokens_in {
            attributes.push(("gen_ai.usage.input_tokens".into(), int(n)));
        }
        if let Some(n) = record.tokens_out {
            attributes.push(("gen_ai.usage.output_tokens".into(), int(n)));
        }
        if let Some(cost) = record.cost {
            attributes.push(("gen_ai.usage.cost".into(), AttrValue::Double(cost)));
        }
        attributes.push((
            "http.response.status_code".into(),
            AttrValue::Int(i64::from(record.status_code)),
        ));
        attributes.push(("ai_gateway.cached".into(), AttrValue::Bool(record.cached)));
        // Custom metadata, each key an attribute; none may pose as a `gen_ai.*` one.
        if let Some(Ok(Value::Object(metadata))) = record
            .metadata
            .as_deref()
            .map(serde_json::from_str::<Value>)
        {
            for (key, value) in metadata {
                if key.starts_with("gen_ai.") {
                    continue;
                }
                let value = match value {
                    Value::String(s) => AttrValue::Str(s),
                    Value::Bool(b) => AttrValue::Bool(b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => AttrValue::Int(i),
                        None => AttrValue::Double(n.as_f64().unwrap_or_default()),
                    },
                    _ => continue,
                };
                attributes.push((key.into(), value));
            }
        }
        let error = record.status_code >= 400;
        ExportSpan {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            parent_span_id: self.parent,
            name: match &record.model {
                Some(model) => format!("{} {model}", record.provider),
                None => record.provider.clone(),
            },
            start_unix_nanos: self.start_unix_nanos,
            end_unix_nanos: self.start_unix_nanos + record.duration_ms.saturating_mul(1_000_000),
            error,
            status_message: error.then(|| format!("HTTP {}", record.status_code)),
            attributes,
        }
    }
}

/// W3C `traceparent` (`00-{trace}-{parent}-{flags}`): the caller's trace and span.
fn traceparent(client: &RequestHeader) -> Option<([u8; 16], Option<[u8; 8]>)> {
    let value = client.headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace, parent) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" {
        return None;
    }
    Some((parse_trace_id(trace)?, parse_span_id(parent)))
}

/// At most [`MAX_BODY_ATTRIBUTE_BYTES`] of `body`, cut at a character boundary.
fn clip(body: &str) -> &str {
    if body.len() <= MAX_BODY_ATTRIBUTE_BYTES {
        return body;
    }
    let mut end = MAX_BODY_ATTRIBUTE_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pairs: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/v1/a/g/openai/chat/completions", None).unwrap();
        for (k, v) in pairs {
            h.insert_header(k.to_string(), *v).unwrap();
        }
        h
    }

    fn targets() -> Arc<[Arc<OtlpTarget>]> {
        let target = OtlpTarget::new(
            "http://127.0.0.1:4318/v1/traces",
            &[],
            None,
            crate::otel::OtlpEncoding::Json,
        )
        .unwrap();
        vec![Arc::new(target)].into()
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    #[test]
    fn the_gateways_headers_win_over_traceparent_and_a_new_trace_is_made_without_either() {
        let w3c = format!("00-{TRACE}-{PARENT}-01");
        let start = SpanStart::begin(&header(&[("traceparent", &w3c)]), targets(), Duration::ZERO);
        assert_eq!(hex::encode(start.trace_id), TRACE);
        assert_eq!(start.parent.map(hex::encode).as_deref(), Some(PARENT));

        let own_trace = "0af7651916cd43dd8448eb211c80319c";
        let start = SpanStart::begin(
            &header(&[
                ("traceparent", &w3c),
                (controls::OTEL_TRACE_ID, own_trace),
                (controls::OTEL_PARENT_SPAN_ID, "b7ad6b7169203331"),
            ]),
            targets(),
            Duration::ZERO,
        );
        assert_eq!(hex::encode(start.trace_id), own_trace);
        assert_eq!(
            start.parent.map(hex::encode).as_deref(),
            Some("b7ad6b7169203331")
        );

        let start = SpanStart::begin(
            &header(&[(controls::OTEL_TRACE_ID, "nope")]),
            targets(),
            Duration::ZERO,
        );
        assert_ne!(start.trace_id, [0; 16]);
        assert_eq!(start.parent, None);
    }

    #[test]
    fn the_span_carries_the_records_facts_and_metadata_but_no_gen_ai_impostors() {
        let start = SpanStart::begin(&header(&[]), targets(), Duration::from_millis(5));
        let record: LogRecord = serde_json::from_value(serde_json::json!({
            "id": "log-1", "account_id": "a", "gateway_id": "g", "created_at_ms": 0, "provider": "openai",
            "model": "gpt-4o-mini", "path": "chat/completions", "status_code": 502, "success": false,
            "duration_ms": 40, "event_id": "e", "request_head": "", "request_head_complete": true,
            "request_size": 2, "response_head": "", "response_head_complete": true, "response_size": 2,
            "tokens_in": 12, "tokens_out": 30, "cost": 0.25, "request_body": "{}", "response_body": "x".repeat(40_000),
            "metadata": r#"{"team":"ml","n":3,"gen_ai.usage.cost":"forged"}"#}))
        .unwrap();
        let span = start.span(
            &record,
            record.request_body.clone(),
            record.response_body.as_deref().map(|b| clip(b).to_owned()),
        );
        let get = |k: &str| {
            span.attributes
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("gen_ai.request.model"),
            Some(AttrValue::Str("gpt-4o-mini".into()))
        );
        assert_eq!(get("gen_ai.usage.input_tokens"), Some(AttrValue::Int(12)));
        assert_eq!(get("gen_ai.usage.cost"), Some(AttrValue::Double(0.25)));
        assert_eq!(get("team"), Some(AttrValue::Str("ml".into())));
        assert_eq!(get("n"), Some(AttrValue::Int(3)));
        assert_eq!(
            span.attributes
                .iter()
                .filter(|(k, _)| k == "gen_ai.usage.cost")
                .count(),
            1
        );
        match get("gen_ai.completion_json") {
            Some(AttrValue::Str(s)) => assert_eq!(s.len(), MAX_BODY_ATTRIBUTE_BYTES),
            other => panic!("{other:?}"),
        }
        assert!(span.error);
        assert_eq!(span.end_unix_nanos - span.start_unix_nanos, 40_000_000);
    }
}
