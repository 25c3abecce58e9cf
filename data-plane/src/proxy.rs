//! The HTTP entry point: a pingora [`ProxyHttp`] whose `request_filter` answers every request itself.
//!
//! Why `ProxyHttp` and not a bare `ServeHttp`/`HttpServerApp`: design §3 keeps pingora for the downstream side
//! and drives upstream exchanges with our own attempt loop over `connectors::http::Connector`. `ServeHttp` can only
//! return one buffered `Response<Vec<u8>>`, so it cannot stream SSE. A hand-written `HttpServerApp` could, but it
//! would have to re-implement what `HttpProxy` already does around the phases: keep-alive reuse and body draining,
//! HTTP/2 sessions, the `logging` phase after every request (where log records and usage accounting go),
//! `fail_to_proxy` as the single backstop renderer, and the shutdown handling of idle keep-alive connections.
//! With `ProxyHttp`, `request_filter` is the entry point of §3: it reads the body, runs the attempt loop and
//! streams the response downstream with `write_response_header`/`write_response_body`, then returns `Ok(true)`.
//! pingora's own upstream phases (`upstream_peer` and after) therefore never run; this also avoids pingora's
//! 64 KiB replay limit for bodies read in `request_filter` (stack notes §3a).

mod attempts;
mod auth;
mod cache;
mod credentials;
mod endpoint;
mod forward;
mod inference;
mod log_draft;
mod respond;
mod spend;
mod steps;
mod universal;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use gatehouse_bus::limits::LimitStore;
use gatehouse_bus::response_cache::ResponseCache;

use crate::error::AiGatewayError;
use crate::logs::LogSink;
use crate::readiness::ReadinessHandle;
use crate::route::UpstreamTable;
use crate::settings::DataPlaneSettings;
use crate::snapshot::{ConfigStore, DefaultGatewayRequester};
use endpoint::Endpoint;
use forward::Upstreams;
use inference::InferenceRoute;

const HEALTHZ_BODY: &[u8] = br#"{"status":"ok"}"#;
const READYZ_BODY: &[u8] = br#"{"status":"ready"}"#;

pub(crate) struct GatewayProxy {
    readiness: ReadinessHandle,
    /// The node's configuration; each request loads one snapshot from it at its start.
    config: Arc<ConfigStore>,
    /// Provider bases with operator overrides, built once.
    table: UpstreamTable,
    upstreams: Upstreams,
    max_body_bytes: usize,
    max_header_bytes: usize,
    /// Asks the control plane to create an account's `default` gateway on its first authorised use.
    default_gateways: DefaultGatewayRequester,
    /// Where finished requests' log records go, without waiting.
    log_sink: LogSink,
    /// Rate-limit and spend counters (Redis shared by the nodes, or this process's memory).
    limits: Arc<dyn LimitStore>,
    /// The response cache (Redis shared by the nodes, or this process's memory).
    cache: Arc<dyn ResponseCache>,
}

/// The stores traffic policies keep their state in.
#[derive(Debug, Clone)]
pub(crate) struct PolicyStores {
    pub limits: Arc<dyn LimitStore>,
    pub cache: Arc<dyn ResponseCache>,
}

impl GatewayProxy {
    pub(crate) fn new(
        readiness: ReadinessHandle,
        config: Arc<ConfigStore>,
        settings: &DataPlaneSettings,
        table: UpstreamTable,
        default_gateways: DefaultGatewayRequester,
        log_sink: LogSink,
        stores: PolicyStores,
    ) -> Self {
        Self {
            readiness,
            config,
            table,
            upstreams: Upstreams::new(
                settings.upstream_connect_timeout,
                settings.upstream_response_timeout,
                settings.upstream_total_timeout,
                settings.upstream_ca_file.as_deref(),
            ),
            max_body_bytes: settings.max_body_bytes,
            max_header_bytes: settings.max_header_bytes,
            default_gateways,
            log_sink,
            limits: stores.limits,
            cache: stores.cache,
        }
    }

    async fn answer(&self, session: &mut Session, endpoint: Endpoint<'_>) -> pingora::Result<()> {
        match endpoint {
            Endpoint::Healthz => {
                respond::json(session, StatusCode::OK, Bytes::from_static(HEALTHZ_BODY)).await
            }
            Endpoint::Readyz if self.readiness.is_ready() => {
                respond::json(session, StatusCode::OK, Bytes::from_static(READYZ_BODY)).await
            }
            Endpoint::Readyz => respond::gateway_error(session, &AiGatewayError::NOT_READY).await,
            Endpoint::Unknown | Endpoint::Provider(_) | Endpoint::Universal { .. } => {
                respond::gateway_error(session, &AiGatewayError::NOT_FOUND).await
            }
        }
    }
}

/// Per-request state. It will hold the config snapshot, request id, route and attempt plan; every phase reads
/// and writes request state only here.
pub(crate) struct RequestContext {
    started: Instant,
    /// The request id (a ULID), sent back as `cf-aig-request-id`.
    request_id: Option<ulid::Ulid>,
    /// The record in the making, when the request's gateway logs it or its cost must be charged to spend limits.
    log: Option<Box<log_draft::LogDraft>>,
    /// Whether the record goes to the log sink (`false`: it exists only to learn the cost).
    submit_log: bool,
    /// The spend-limit buckets the answering step is charged to, once its cost is known.
    spend: Option<spend::SpendCharge>,
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestContext;

    fn new_ctx(&self) -> RequestContext {
        RequestContext {
            started: Instant::now(),
            request_id: None,
            log: None,
            submit_log: false,
            spend: None,
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
    ) -> pingora::Result<bool> {
        // The URI is cloned (a reference-counted buffer) so the path parts can be borrowed while the session is
        // used mutably.
        let uri = session.req_header().uri.clone();
        let method = session.req_header().method.clone();
        match endpoint::classify(&method, uri.path()) {
            Endpoint::Provider(path) => {
                let route = InferenceRoute::Provider {
                    path,
                    query: uri.query(),
                };
                self.serve_inference(session, ctx, route).await?
            }
            Endpoint::Universal { account, gateway } => {
                let route = InferenceRoute::Universal { account, gateway };
                self.serve_inference(session, ctx, route).await?
            }
            other => self.answer(session, other).await?,
        }
        // The response is complete: pingora goes straight to `logging` and connection reuse.
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestContext,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Unreachable by construction: `request_filter` answers every request and returns `Ok(true)`. If that
        // ever changes by mistake, the request fails through `fail_to_proxy` instead of reaching an upstream.
        Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "the data plane drives upstream exchanges itself; pingora's upstream phase must not run",
        ))
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &pingora::Error,
        _ctx: &mut RequestContext,
    ) -> FailToProxy {
        let Some(answer) = AiGatewayError::for_pingora_error(error) else {
            // The client is gone; error_code 0 tells pingora that nothing was sent.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        // A response that has started cannot be replaced; the connection is closed below instead.
        if session.response_written().is_none()
            && let Err(write_error) = respond::gateway_error(session, &answer).await
        {
            tracing::debug!(%write_error, "could not send the error response downstream");
        }
        FailToProxy {
            error_code: answer.status.as_u16(),
            // After a failure the connection state is unknown (half-read body, half-written response).
            can_reuse_downstream: false,
        }
    }

    async fn logging(
        &self,
        session: &mut Session,
        error: Option<&pingora::Error>,
        ctx: &mut RequestContext,
    ) {
        if let Some(draft) = ctx.log.take() {
            // A response that never started (the client left, the provider failed mid-way) is logged with the
            // status the client saw, or 499 when it saw none (nginx's "client closed request").
            let status = session
                .response_written()
                .map_or(499, |response| response.status.as_u16());
            let duration_ms = u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let record = draft.into_record(status, duration_ms);
            if let Some(charge) = ctx.spend.take() {
                self.charge_spend(charge, record.cost).await;
            }
            if ctx.submit_log {
                self.log_sink.submit(record);
            }
        }
        let request = session.req_header();
        tracing::debug!(
            method = %request.method,
            path = request.uri.path(),
            status = session.response_written().map_or(0, |response| response.status.as_u16()),
            elapsed_us = ctx.started.elapsed().as_micros() as u64,
            error = error.map(tracing::field::display),
            "request finished",
        );
    }
}
