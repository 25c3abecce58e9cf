//! The HTTP entry point: a pingora [`ProxyHttp`] whose `request_filter` answers every request itself.
//!
//! Why `ProxyHttp` and not a bare `ServeHttp`/`HttpServerApp`: design §3 keeps pingora for the downstream side
//! and drives upstream exchanges with our own attempt loop over `connectors::http::Connector`. `ServeHttp` can only
//! return one buffered `Response<Vec<u8>>`, so it cannot stream SSE. A hand-written `HttpServerApp` could, but it
//! would have to re-implement what `HttpProxy` already does around the phases: keep-alive reuse and body draining,
//! HTTP/2 sessions, the `logging` phase after every request (where log records and usage accounting go),
//! `fail_to_proxy` as the single backstop renderer, and the shutdown handling of idle keep-alive connections.
//! With `ProxyHttp`, `request_filter` is the entry point of §3: it classifies the endpoint and hands inference to
//! `pipeline.rs`, which runs the phases (`phase/`) and streams the response downstream with
//! `write_response_header`/`write_response_body`; then it returns `Ok(true)`. The `logging` phase finishes the
//! request's accounting (`phase/account.rs`).
//!
//! Module rules (ARCHITECTURE.md "Data plane: the request path"): `pipeline` orders the phases and is imported by
//! nothing but this file; a phase imports earlier phases' output types and the leaves (`controls`, `retry`,
//! `taps`, `record`, `upstream`), never `pipeline`; the leaves import no phase except for the types they carry
//! (`ctx` holds the record draft and the spend charge). No import circles (`circles.py` in CI).
//! pingora's own upstream phases (`upstream_peer` and after) therefore never run; this also avoids pingora's
//! 64 KiB replay limit for bodies read in `request_filter` (stack notes §3a).

mod cloud_auth;
mod controls;
mod cors;
mod ctx;
mod endpoint;
mod phase;
mod pipeline;
pub(crate) mod prober;
mod record;
mod respond;
mod retry;
mod spans;
mod taps;
mod translate;
/// Also the identity providers' JWKS fetcher's connection (`identity/refresh.rs`).
pub(crate) mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use gatehouse_bus::limits::LimitStore;
use gatehouse_bus::replay::ReplayCache;
use gatehouse_bus::response_cache::ResponseCache;

use crate::error::AiGatewayError;
use crate::logs::LogSink;
use crate::metrics::NodeMetrics;
use crate::otel::SpanQueue;
use crate::readiness::ReadinessHandle;
use crate::route::UpstreamTable;
use crate::settings::DataPlaneSettings;
use crate::snapshot::{ConfigStore, DefaultGatewayRequester};
use ctx::RequestContext;
use endpoint::Endpoint;
use phase::admit::Gatekeeper;
use phase::plan::InferenceRoute;
use upstream::Upstreams;

const HEALTHZ_BODY: &[u8] = br#"{"status":"ok"}"#;
const READYZ_BODY: &[u8] = br#"{"status":"ready"}"#;
/// The OpenMetrics text format (`prometheus_client`'s encoding), which Prometheus asks for and parses.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) struct GatewayProxy {
    readiness: ReadinessHandle,
    /// The node's configuration; each request loads one snapshot from it at its start.
    config: Arc<ConfigStore>,
    /// Provider bases with operator overrides, built once.
    table: UpstreamTable,
    upstreams: Upstreams,
    /// Tokens minted from stored cloud secrets (Vertex AI).
    cloud_tokens: std::sync::Arc<cloud_auth::CloudTokens>,
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
    /// DPoP proof ids seen (Redis shared by the nodes, or this process's memory).
    replay: Arc<dyn ReplayCache>,
    /// Whether `X-Forwarded-Proto` names the scheme clients used (DPoP `htu`).
    trust_forwarded_proto: bool,
    /// The node's Prometheus metrics; `None` when they are off (`--metrics false`).
    metrics: Option<Arc<NodeMetrics>>,
    /// Where finished requests' OTLP spans go, without waiting (`otel/`).
    spans: Arc<SpanQueue>,
}

/// Where a node's finished requests are written down: log records, metrics, spans.
pub(crate) struct Outlets {
    pub logs: LogSink,
    /// `None` when metrics are off (`--metrics false`).
    pub metrics: Option<Arc<NodeMetrics>>,
    pub spans: Arc<SpanQueue>,
}

/// The stores traffic policies keep their state in.
#[derive(Debug, Clone)]
pub(crate) struct PolicyStores {
    pub limits: Arc<dyn LimitStore>,
    pub cache: Arc<dyn ResponseCache>,
    pub replay: Arc<dyn ReplayCache>,
}

impl GatewayProxy {
    pub(crate) fn new(
        readiness: ReadinessHandle,
        config: Arc<ConfigStore>,
        settings: &DataPlaneSettings,
        table: UpstreamTable,
        default_gateways: DefaultGatewayRequester,
        stores: PolicyStores,
        outlets: Outlets,
    ) -> Self {
        Self {
            readiness,
            config,
            table,
            cloud_tokens: cloud_auth::CloudTokens::new(settings.upstream_ca_file.as_deref()),
            upstreams: Upstreams::new(
                settings.upstream_connect_timeout,
                settings.upstream_response_timeout,
                settings.upstream_total_timeout,
                settings.upstream_ca_file.as_deref(),
            ),
            max_body_bytes: settings.max_body_bytes,
            max_header_bytes: settings.max_header_bytes,
            default_gateways,
            log_sink: outlets.logs,
            limits: stores.limits,
            cache: stores.cache,
            replay: stores.replay,
            trust_forwarded_proto: settings.trust_forwarded_proto,
            metrics: outlets.metrics,
            spans: outlets.spans,
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
            Endpoint::Metrics => match &self.metrics {
                Some(metrics) => {
                    respond::page(session, METRICS_CONTENT_TYPE, Bytes::from(metrics.render()))
                        .await
                }
                None => respond::gateway_error(session, &AiGatewayError::NOT_FOUND).await,
            },
            Endpoint::FrontDoor => {
                let accept = session
                    .req_header()
                    .headers
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let page = gatehouse_shared::front_door::render(
                    gatehouse_shared::front_door::Listener::Inference,
                    env!("CARGO_PKG_VERSION"),
                    accept,
                );
                respond::page(session, page.content_type, Bytes::from(page.body)).await
            }
            Endpoint::Unknown | Endpoint::Provider(_) | Endpoint::Universal { .. } => {
                respond::gateway_error(session, &AiGatewayError::NOT_FOUND).await
            }
        }
    }

    /// The canonical path of a request to a host name a gateway claims: `/v1/chat/completions`,
    /// `/v1/responses`, `/v1/embeddings`, `/v1/models` → that gateway's `/compat/…`; `/v1/compat/…` and
    /// `/v1/{provider}/…` → that gateway's. `None` when no gateway claims the host (or the path is not under
    /// `/v1/`: probes and the front door stay the node's).
    fn host_routed_path(
        &self,
        header: &pingora::http::RequestHeader,
        path: &str,
    ) -> Option<String> {
        let host = header
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| header.uri.host())?;
        let snapshot = self.config.load();
        let gateway = snapshot.gateway_for_host(host)?;
        let rest = path.strip_prefix("/v1/")?;
        let key = &gateway.key;
        let compat = matches!(
            rest.trim_end_matches('/'),
            "chat/completions" | "responses" | "embeddings" | "models"
        );
        Some(if compat {
            format!("/v1/{}/{}/compat/{rest}", key.account_id, key.gateway_id)
        } else {
            format!("/v1/{}/{}/{rest}", key.account_id, key.gateway_id)
        })
    }

    /// A CORS preflight (`OPTIONS`) for an inference endpoint: allowed origins get the allowing headers, others
    /// none (the browser then refuses the call). Answered by the node; never forwarded.
    async fn preflight(&self, session: &mut Session, target: Endpoint<'_>) -> pingora::Result<()> {
        let (account, gateway) = match target {
            Endpoint::Provider(p) => (p.account, p.gateway),
            Endpoint::Universal { account, gateway } => (account, gateway),
            _ => return respond::gateway_error(session, &AiGatewayError::NOT_FOUND).await,
        };
        let header = session.req_header();
        let origin = header
            .headers
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let requested = header
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let snapshot = self.config.load();
        let allowed = origin.filter(|o| {
            snapshot
                .gateway(account, gateway)
                .is_some_and(|g| cors::allows(&g.settings, o))
        });
        let mut extra: Vec<(&'static str, &str)> = Vec::new();
        if let Some(origin) = &allowed {
            extra.push(("access-control-allow-origin", origin.as_str()));
            extra.push(("access-control-allow-methods", cors::ALLOW_METHODS));
            extra.push((
                "access-control-allow-headers",
                requested.as_deref().unwrap_or(cors::DEFAULT_ALLOW_HEADERS),
            ));
            extra.push(("access-control-max-age", cors::MAX_AGE));
        }
        extra.push(("vary", "origin"));
        respond::json_with(session, http::StatusCode::NO_CONTENT, Bytes::new(), &extra).await
    }

    /// What admission needs of the node.
    fn gatekeeper(&self) -> Gatekeeper<'_> {
        Gatekeeper {
            readiness: &self.readiness,
            config: &self.config,
            default_gateways: &self.default_gateways,
            max_header_bytes: self.max_header_bytes,
            replay: &*self.replay,
            trust_forwarded_proto: self.trust_forwarded_proto,
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestContext;

    fn new_ctx(&self) -> RequestContext {
        let mut ctx = RequestContext::new();
        ctx.meter.in_flight = self.metrics.as_ref().map(NodeMetrics::in_flight);
        ctx
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
        // A gateway that claims the request's host name serves `/v1/…` as if the path named it (`hostnames`).
        let host_routed = self.host_routed_path(session.req_header(), uri.path());
        let path = host_routed.as_deref().unwrap_or(uri.path());
        if method == http::Method::OPTIONS {
            return self
                .preflight(session, endpoint::classify(&http::Method::POST, path))
                .await
                .map(|()| true);
        }
        match endpoint::classify(&method, path) {
            Endpoint::Provider(path) => {
                let route = InferenceRoute::Provider {
                    path,
                    query: uri.query(),
                };
                pipeline::serve(self, session, ctx, route).await?
            }
            Endpoint::Universal { account, gateway } => {
                let route = InferenceRoute::Universal { account, gateway };
                pipeline::serve(self, session, ctx, route).await?
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
        let client_status = session
            .response_written()
            .map(|response| response.status.as_u16());
        let sinks = phase::account::Sinks {
            logs: &self.log_sink,
            limits: &*self.limits,
            metrics: self.metrics.as_deref(),
            spans: &self.spans,
        };
        phase::account::finish(&sinks, ctx, client_status).await;
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
