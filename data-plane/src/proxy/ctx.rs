//! Per-request state: pingora's `CTX`, made in `new_ctx`, passed to `request_filter` (the pipeline) and to
//! `logging` (the account phase). Everything a request knows about itself across phases lives here; the rest is
//! passed from phase to phase as values (`Admitted`, `RequestBody`, the steps, the attempt `Outcome`).
//!
//! | field | written by | read by |
//! |---|---|---|
//! | `started` | `new_ctx` | account (duration) |
//! | `request_id` | pipeline, first thing | pipeline (response headers), account |
//! | `log` | pipeline (after admission: the draft), account phase helpers (re-pointed at the answering step), relay (response capture) | account (the record), pipeline (log ids in headers) |
//! | `submit_log` | pipeline (collect-log decision) | account (a record, or only the limits' settlement), pipeline |
//! | `spend` | pipeline (the answering step's charge) | account (charged once the cost is known) |
//! | `subject` | pipeline (the virtual key's or identity's token windows and budget hold) | account (settled once usage is known) |
//! | `cors_origin` | pipeline (after admission, when the gateway allows the `Origin`) | pipeline (response headers) |
//! | `span` | pipeline (the record's start, when the gateway exports spans) | account (the span, from the record) |
//! | `meter` | `new_ctx` (in flight), pipeline (gateway, cache use, attempts, refusals) | account (`metrics.rs`) |

use std::time::Instant;

use super::controls;
use super::phase::access::SubjectCharge;
use super::phase::limits::SpendCharge;
use super::record::LogDraft;
use super::spans::SpanStart;
use crate::metrics::RequestMeter;

pub(crate) struct RequestContext {
    pub started: Instant,
    /// The request id (a ULID), sent back as `cf-aig-request-id`.
    pub request_id: Option<ulid::Ulid>,
    /// The record in the making, when the request's gateway logs it or its cost must be charged to spend limits;
    /// or only its usage and cost, when nothing but a key's or identity's token and budget limits need them
    /// (`LogDraft::for_usage`, ended as a `Settlement`).
    pub log: Option<Box<LogDraft>>,
    /// Whether the record goes to the log sink (`false`: it exists only to learn the cost).
    pub submit_log: bool,
    /// The spend-limit buckets the answering step is charged to, once its cost is known.
    pub spend: Option<SpendCharge>,
    /// What a virtual key's (or an identity's user's and team's) limits charge once usage is known (issue 14).
    pub subject: Option<SubjectCharge>,
    /// The request's `Origin`, when the gateway's CORS settings allow it: every answer then carries CORS headers.
    pub cors_origin: Option<String>,
    /// What the node's metrics are told at the end.
    pub meter: RequestMeter,
    /// The request's OTLP span in the making, when its gateway exports spans (`spans.rs`).
    pub span: Option<Box<SpanStart>>,
}

impl RequestContext {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            request_id: None,
            log: None,
            submit_log: false,
            spend: None,
            subject: None,
            cors_origin: None,
            meter: RequestMeter::default(),
            span: None,
        }
    }

    /// The draft, when the request is logged (not only costed).
    pub(crate) fn logged_draft(&self) -> Option<&LogDraft> {
        self.log.as_deref().filter(|_| self.submit_log)
    }
}

/// The response headers every answer of a request carries.
pub(crate) struct ResponseIds {
    pub request_id: String,
    /// The answering step's log id, when the request is logged.
    pub log_id: Option<String>,
    pub event_id: Option<String>,
    /// Universal requests: the answering step's index.
    pub step: Option<String>,
    /// An allowed CORS origin (`proxy/cors.rs`).
    pub cors_origin: Option<String>,
}

impl ResponseIds {
    pub(crate) fn new(request_id: ulid::Ulid) -> Self {
        Self {
            request_id: request_id.to_string(),
            log_id: None,
            event_id: None,
            step: None,
            cors_origin: None,
        }
    }

    /// With the CORS headers of an allowed origin.
    pub(crate) fn with_cors(mut self, origin: Option<&str>) -> Self {
        self.cors_origin = origin.map(str::to_owned);
        self
    }

    pub(crate) fn headers(&self, cache_status: Option<&'static str>) -> Vec<(&'static str, &str)> {
        let mut extra: Vec<(&'static str, &str)> = Vec::with_capacity(5);
        extra.push((controls::REQUEST_ID, self.request_id.as_str()));
        if let Some(log_id) = &self.log_id {
            extra.push((controls::LOG_ID, log_id.as_str()));
        }
        if let Some(event_id) = &self.event_id {
            extra.push((controls::EVENT_ID, event_id.as_str()));
        }
        if let Some(step) = &self.step {
            extra.push((controls::STEP, step.as_str()));
        }
        if let Some(status) = cache_status {
            extra.push((controls::CACHE_STATUS, status));
        }
        if let Some(origin) = &self.cors_origin {
            extra.push(("access-control-allow-origin", origin.as_str()));
            extra.push(("access-control-expose-headers", super::cors::EXPOSE_HEADERS));
            extra.push(("vary", "origin"));
        }
        extra
    }
}
