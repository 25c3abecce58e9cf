//! OpenTelemetry export per gateway (spec §3.16): each entry of a gateway's `otel` list is an OTLP/HTTP collector
//! that receives one span per request, encoded as OTLP/JSON (the default) or protobuf.
//!
//! - `span.rs`: [`ExportSpan`], what the request path hands over (ids, times, status, typed attributes), and the
//!   trace id helpers (`cf-aig-otel-trace-id`, `cf-aig-otel-parent-span-id`, fresh ids).
//! - `target.rs`: [`OtlpTarget`], one collector, compiled once per config change (URL parsed, headers checked).
//! - `queue.rs`: [`SpanQueue`], the bounded hand-over from request threads. `submit` never blocks or awaits: a full
//!   queue drops the span and counts it ([`OtlpCounters`]).
//! - `exporter.rs`: [`OtlpExporter`], the background service that drains the queue, batches per collector (512
//!   spans or 1 s) and POSTs each batch over a connector of its own, at most two exports in flight per collector.
//! - `json.rs`, `protobuf.rs`: the two encodings of one `ExportTraceServiceRequest`, both written here (no
//!   generated code; the protobuf is checked against `opentelemetry-proto`'s prost types in the tests).
//!
//! Invariant: a dead or slow collector costs at most the queue's bound in memory and never slows a request; a
//! failed batch is counted and dropped, never retried.
//! Invariant: header values and the `Authorization` value are never logged (`OtlpTarget`'s `Debug` hides them).

mod exporter;
mod json;
mod protobuf;
mod queue;
mod span;
mod target;

pub(crate) use exporter::{ExportSettings, OtlpExporter};
pub(crate) use queue::SpanQueue;
pub(crate) use span::{
    AttrValue, ExportSpan, new_span_id, new_trace_id, parse_span_id, parse_trace_id,
};
pub(crate) use target::{OtlpEncoding, OtlpTarget};

/// The resource's `service.name`.
const SERVICE_NAME: &str = "gatehouse";
/// The resource's `service.version` and the scope's version.
const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The instrumentation scope every span is exported under.
const SCOPE_NAME: &str = "gatehouse.gateway";
/// `SPAN_KIND_SERVER`: the span is the gateway's side of the caller's request (its parent, when the caller names
/// one, is the caller's client span), so trace backends pair the two into a caller → gateway edge.
const SPAN_KIND_SERVER: i32 = 2;
/// `STATUS_CODE_ERROR`; a successful request's status is left unset, as the semantic conventions ask.
const STATUS_CODE_ERROR: i32 = 2;

#[cfg(test)]
mod tests;
