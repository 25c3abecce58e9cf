//! Accounting: the request's log record(s), its spend charge, its metrics and its OTLP span. The record is finished
//! in pingora's `logging` phase, after the last response byte, so nothing here is on the client's time: building a
//! record is a few moves of what the request already holds, handing it (or its span) over is a `try_send`
//! (`logs::LogSink`, `otel::SpanQueue`), the metrics a few counter updates.
//!
//! Universal requests log one record per step tried: the draft begun at admission describes the first step, a
//! step that handed over to the next is submitted as soon as the attempt loop is done, and the draft is
//! re-pointed at the answering step (with an id of its own unless it is the first).

use std::time::Duration;

use gatehouse_bus::limits::LimitStore;

use super::attempts::StepFailure;
use super::plan::Step;
use super::{access, limits};
use crate::logs::LogSink;
use crate::metrics::{FinishedRequest, NodeMetrics};
use crate::otel::SpanQueue;
use crate::proxy::ctx::{RequestContext, ResponseIds};
use crate::proxy::record::Settlement;

/// Where a finished request is accounted.
pub(crate) struct Sinks<'a> {
    pub logs: &'a LogSink,
    pub limits: &'a dyn LimitStore,
    /// The node's metrics, when they are on.
    pub metrics: Option<&'a NodeMetrics>,
    /// The OTLP exporters' queue.
    pub spans: &'a SpanQueue,
}

/// The end of every request (pingora's `logging` phase): the record from what the request gathered, the spend
/// charge once its cost is known, the metrics, the record to the sink when the request is logged.
pub(crate) async fn finish(
    sinks: &Sinks<'_>,
    ctx: &mut RequestContext,
    client_status: Option<u16>,
) {
    // A response that never started (the client left, the provider failed mid-way) is accounted with the status
    // the client saw, or 499 when it saw none (nginx's "client closed request").
    let status = client_status.unwrap_or(499);
    let duration = ctx.started.elapsed();
    let Some(draft) = ctx.log.take() else {
        if let Some(metrics) = sinks.metrics {
            let mut done: FinishedRequest<'_> = FinishedRequest::bare(status, duration);
            if let Some((provider, model)) = &ctx.meter.target {
                done.provider = provider.as_str();
                done.model = Some(model.as_str());
            }
            metrics.observe(&ctx.meter, &done);
        }
        return;
    };
    let first_byte = draft
        .response
        .first_byte
        .map(|at| at.saturating_duration_since(ctx.started));
    let span = ctx.span.take();
    let meter = &ctx.meter;
    let observe = |provider: &str, model: Option<&str>, settled: &Settlement| {
        if let Some(metrics) = sinks.metrics {
            let done = FinishedRequest {
                provider,
                model,
                status,
                duration,
                first_byte,
                tokens_in: settled.tokens_in,
                tokens_out: settled.tokens_out,
                cost: settled.cost,
            };
            metrics.observe(meter, &done);
        }
    };
    // A draft that is neither logged nor exported only says what the limits are charged: no record is built.
    let (settled, record) = if ctx.submit_log || span.is_some() {
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let record = draft.into_record(status, duration_ms);
        let settled = Settlement::of(&record);
        observe(&record.provider, record.model.as_deref(), &settled);
        let record = match span {
            Some(span) if ctx.submit_log => {
                span.finish(sinks.spans, &record);
                Some(record)
            }
            Some(span) => {
                span.finish_unlogged(sinks.spans, record);
                None
            }
            None => Some(record),
        };
        (settled, record)
    } else {
        let usage = draft.into_usage();
        observe(&usage.provider, usage.model.as_deref(), &usage.settlement);
        (usage.settlement, None)
    };
    if let Some(charge) = ctx.spend.take() {
        limits::charge_spend(sinks.limits, charge, settled.cost).await;
    }
    if let Some(charge) = ctx.subject.take() {
        access::settle(
            sinks.limits,
            charge,
            settled.tokens_in,
            settled.tokens_out,
            settled.cost,
        )
        .await;
    }
    if let Some(record) = record {
        sinks.logs.submit(record);
    }
}

/// Points the request's draft and response ids at the first step to be tried: universal records carry their
/// step's provider, path and body, and the response names the step.
pub(crate) fn describe_first_step(
    ctx: &mut RequestContext,
    first: &Step,
    universal: bool,
    ids: &mut ResponseIds,
) {
    if first.compat
        && let Some(draft) = ctx.log.as_deref_mut()
    {
        // The record names what served the request; the body stays the client's OpenAI one.
        draft.provider.clone_from(&first.provider);
        draft.path.clone_from(&first.path);
        draft.model.clone_from(&first.model);
        draft.compat = true;
    }
    if universal {
        ids.step = Some(first.index.to_string());
        if let Some(draft) = ctx.log.as_deref_mut() {
            *draft = draft.for_step(draft.id.clone(), first.facts());
        }
    }
    if let Some(draft) = ctx.logged_draft() {
        ids.log_id = Some(draft.id.clone());
        ids.event_id = Some(draft.event_id.clone());
    }
}

/// Universal requests: a record for every step that handed over to the next one, submitted now.
pub(crate) fn log_failed_steps(
    sink: &LogSink,
    ctx: &RequestContext,
    steps: &[Step],
    failed: Vec<(usize, StepFailure, Duration)>,
) {
    let Some(base) = ctx.log.as_deref() else {
        return;
    };
    for (index, failure, elapsed) in failed {
        let step = &steps[index];
        let id = if index == 0 {
            base.id.clone()
        } else {
            ulid::Ulid::generate().to_string()
        };
        let draft = base.for_step(id, step.facts());
        let status = match failure {
            StepFailure::Status(status) => status,
            StepFailure::NoAnswer(failure) => failure.error().status.as_u16(),
        };
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        sink.submit(draft.into_record(status, duration_ms));
    }
}

/// Makes the request's draft describe step `index` (the one whose answer the client gets) and points the
/// response's log id and step header at it.
pub(crate) fn switch_to_step(
    ctx: &mut RequestContext,
    steps: &[Step],
    index: usize,
    ids: &mut ResponseIds,
) {
    if ids.step.is_none() {
        return;
    }
    let step = &steps[index];
    ids.step = Some(step.index.to_string());
    // The first step tried already owns the request's draft and its id.
    if index == 0 {
        return;
    }
    let submit = ctx.submit_log;
    if let Some(draft) = ctx.log.as_deref_mut() {
        *draft = draft.for_step(ulid::Ulid::generate().to_string(), step.facts());
        if submit {
            ids.log_id = Some(draft.id.clone());
        }
    }
}
