//! The inference path, for both the provider-native form (`/v1/{account}/{gateway}/{provider}/{rest}`) and the
//! universal endpoint (`POST /v1/{account}/{gateway}`): gateway lookup, authentication, the rate limit, the body,
//! the steps, the cache, then the attempt loop and the relay of the chosen answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gatehouse_shared::gateway::{GatewaySettings, RateLimitingTechnique};
use gatehouse_shared::ids::DEFAULT_GATEWAY_ID;
use gatehouse_shared::pricing::CustomCost;
use pingora::proxy::Session;

use super::attempts::{self, Outcome, StepFailure};
use super::auth::{GatewayCaller, authenticate};
use super::cache::{CACHE_STATUS_HEADER, CacheTee, CachedResponse};
use super::endpoint::ProviderPath;
use super::forward::{ForwardError, Relay};
use super::log_draft::{LogDraft, RequestPeek, ResponseCapture, flag, parse_metadata};
use super::steps::{self, Step, StepConfig, StepRequest};
use super::{GatewayProxy, RequestContext, respond, universal};
use crate::error::AiGatewayError;
use crate::snapshot::{CompiledGateway, ConfigSnapshot};
use gatehouse_bus::limits::{Admission, WindowTechnique};

/// Request headers the gateway reads here (the step controls are in `steps.rs` and `cache.rs`).
const AUTHORIZATION_HEADER: &str = "cf-aig-authorization";
const COLLECT_LOG_HEADER: &str = "cf-aig-collect-log";
const COLLECT_PAYLOAD_HEADER: &str = "cf-aig-collect-log-payload";
const EVENT_ID_HEADER: &str = "cf-aig-event-id";
const METADATA_HEADER: &str = "cf-aig-metadata";
const CUSTOM_COST_HEADER: &str = "cf-aig-custom-cost";

/// Which form of inference request this is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InferenceRoute<'a> {
    Provider {
        path: ProviderPath<'a>,
        query: Option<&'a str>,
    },
    Universal {
        account: &'a str,
        gateway: &'a str,
    },
}

impl<'a> InferenceRoute<'a> {
    fn account(&self) -> &'a str {
        match self {
            InferenceRoute::Provider { path, .. } => path.account,
            InferenceRoute::Universal { account, .. } => account,
        }
    }

    fn gateway(&self) -> &'a str {
        match self {
            InferenceRoute::Provider { path, .. } => path.gateway,
            InferenceRoute::Universal { gateway, .. } => gateway,
        }
    }
}

/// The response headers every answer of a request carries.
struct ResponseIds {
    request_id: String,
    /// The answering step's log id, when the request is logged.
    log_id: Option<String>,
    event_id: Option<String>,
    /// Universal requests: the answering step's index.
    step: Option<String>,
}

impl ResponseIds {
    fn headers(&self, cache_status: Option<&'static str>) -> Vec<(&'static str, &str)> {
        let mut extra: Vec<(&'static str, &str)> = Vec::with_capacity(5);
        extra.push(("cf-aig-request-id", self.request_id.as_str()));
        if let Some(log_id) = &self.log_id {
            extra.push(("cf-aig-log-id", log_id.as_str()));
        }
        if let Some(event_id) = &self.event_id {
            extra.push(("cf-aig-event-id", event_id.as_str()));
        }
        if let Some(step) = &self.step {
            extra.push(("cf-aig-step", step.as_str()));
        }
        if let Some(status) = cache_status {
            extra.push((CACHE_STATUS_HEADER, status));
        }
        extra
    }
}

impl GatewayProxy {
    /// Serves one inference request; every gateway-made failure is rendered here, before any response byte.
    pub(super) async fn serve_inference(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        route: InferenceRoute<'_>,
    ) -> pingora::Result<()> {
        let request_id = ulid::Ulid::generate();
        ctx.request_id = Some(request_id);
        match self.run_inference(session, ctx, route, request_id).await {
            Ok(()) => Ok(()),
            Err(ForwardError::BeforeResponse(error)) => {
                let logged = ctx.log.as_deref().filter(|_| ctx.submit_log);
                let ids = ResponseIds {
                    request_id: request_id.to_string(),
                    log_id: logged.map(|d| d.id.clone()),
                    event_id: logged.map(|d| d.event_id.clone()),
                    step: None,
                };
                respond::gateway_error_with(session, &error, &ids.headers(None)).await?;
                if error.code == crate::error::code::BODY_TOO_LARGE {
                    drain_rejected_body(session).await;
                }
                Ok(())
            }
            Err(ForwardError::AfterResponse(error)) => Err(error),
        }
    }

    async fn run_inference(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        route: InferenceRoute<'_>,
        request_id: ulid::Ulid,
    ) -> Result<(), ForwardError> {
        let before = ForwardError::BeforeResponse;
        if !self.readiness.is_ready() {
            return Err(before(AiGatewayError::NOT_READY));
        }
        if header_bytes(session) > self.max_header_bytes {
            return Err(before(AiGatewayError::HEADER_TOO_LARGE));
        }
        // One snapshot for the whole request.
        let snapshot = self.config.load();
        let (account, gateway_id) = (route.account(), route.gateway());
        let caller = authenticate(header(session, AUTHORIZATION_HEADER), &snapshot, account);
        let gateway = find_gateway(&snapshot, account, gateway_id, caller).map_err(before)?;
        if gateway.version == 0 && gateway.is_default {
            // Served from the settings it will be created with; the control plane creates it once (deduplicated,
            // never blocking) and the next requests use the stored one.
            self.default_gateways.request(account);
        }
        if gateway.settings.authentication && caller != GatewayCaller::Authorized {
            return Err(before(AiGatewayError::UNAUTHORIZED));
        }
        // From here on the request is the gateway's: it is logged, errors included, when logging is on.
        let collect =
            flag(header(session, COLLECT_LOG_HEADER)).unwrap_or(gateway.settings.collect_logs);
        // Spend limits need the answer's cost, which the record works out: such a request gets a draft even when
        // it is not logged (then without bodies, and never submitted).
        if collect || gateway.spend_limits.is_some() {
            let (provider, path) = match route {
                InferenceRoute::Provider { path, .. } => (path.provider, path.rest),
                InferenceRoute::Universal { .. } => ("universal", ""),
            };
            let mut draft = new_draft(
                session, account, gateway_id, provider, path, &gateway, request_id, caller,
            );
            if !collect {
                draft.collect_payload = false;
                draft.response = ResponseCapture::new(false);
            }
            ctx.log = Some(Box::new(draft));
            ctx.submit_log = collect;
        }
        self.check_rate_limit(account, gateway_id, &gateway.settings)
            .await
            .map_err(before)?;
        let body = read_body(session, self.max_body_bytes)
            .await
            .map_err(before)?;
        // The provider-native body is read once for its model and stream flag (universal steps read their own).
        let peek = match route {
            InferenceRoute::Provider { .. } => RequestPeek::of(&body),
            InferenceRoute::Universal { .. } => RequestPeek::default(),
        };
        if let Some(draft) = ctx.log.as_deref_mut() {
            draft.model = peek.model.clone();
            draft.request_body = body.clone();
        }
        let mut steps = self
            .build_steps(session, route, &gateway, body, peek)
            .map_err(before)?;
        let universal = matches!(route, InferenceRoute::Universal { .. });
        let logged = ctx.submit_log;
        let mut ids = ResponseIds {
            request_id: request_id.to_string(),
            log_id: None,
            event_id: None,
            step: None,
        };

        // A cache hit on the first step answers without any provider call (and without a spend check).
        if let Some(plan) = steps[0].cache.as_ref().filter(|p| !p.skip)
            && let Some(hit) = self.cache_lookup(&plan.key).await
        {
            self.describe_step(ctx, &steps[0], universal, &mut ids);
            if let Some(draft) = ctx.log.as_deref_mut() {
                draft.cached = true;
            }
            return self.serve_cached(session, ctx, &steps[0], hit, &ids).await;
        }

        // Spend limits: a step over a budget is left out; a universal request falls back past it.
        let mut charges = Vec::new();
        if let Some(limits) = gateway.spend_limits.as_deref() {
            let metadata =
                super::spend::metadata_map(ctx.log.as_deref().and_then(|d| d.metadata.as_deref()));
            let mut kept = Vec::with_capacity(steps.len());
            let mut refusal = None;
            for step in steps {
                match self
                    .check_spend(account, gateway_id, limits, &step, &metadata)
                    .await
                {
                    Ok(charge) => {
                        kept.push(step);
                        charges.push(Some(charge));
                    }
                    Err(error) => {
                        refusal.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = refusal.filter(|_| kept.is_empty()) {
                return Err(before(error));
            }
            steps = kept;
        }
        self.describe_step(ctx, &steps[0], universal, &mut ids);

        let started = Instant::now();
        let log_failures = logged;
        let mut failed_steps: Vec<(usize, StepFailure, Duration)> = Vec::new();
        let outcome = attempts::run(&self.upstreams, &steps, |index, failure| {
            if log_failures {
                failed_steps.push((index, failure, started.elapsed()));
            }
        })
        .await;
        self.log_failed_steps(ctx, &steps, failed_steps);

        let (answering, opened) = match outcome {
            Outcome::Respond { step, opened } => (step, opened),
            Outcome::Failed { step, failure } => {
                self.switch_draft_to_step(ctx, &steps, step, &mut ids);
                return Err(before(failure.error()));
            }
        };
        self.switch_draft_to_step(ctx, &steps, answering, &mut ids);
        ctx.spend = charges.get_mut(answering).and_then(Option::take);
        let step = &steps[answering];
        let mut tee = step
            .cache
            .as_ref()
            .filter(|p| !p.skip)
            .map(|_| CacheTee::default());
        let cache_status = step.cache.as_ref().map(|_| "MISS");
        let extra = ids.headers(cache_status);
        let relay = Relay {
            extra_response_headers: &extra,
            provider: &step.provider,
            path: &step.path,
            read_timeout: self.upstreams.response_timeout(),
        };
        let capture = ctx.log.as_deref_mut().map(|d| &mut d.response);
        self.upstreams
            .relay(session, opened, relay, capture, tee.as_mut())
            .await?;
        if let (Some(plan), Some(entry)) = (&step.cache, tee.and_then(CacheTee::into_entry)) {
            self.cache_store(&plan.key, entry, plan.ttl).await;
        }
        Ok(())
    }

    /// The request's steps: the provider-native request itself, or each step of a universal body.
    fn build_steps(
        &self,
        session: &Session,
        route: InferenceRoute<'_>,
        gateway: &CompiledGateway,
        body: Bytes,
        peek: RequestPeek,
    ) -> Result<Vec<Step>, AiGatewayError> {
        let client = session.req_header();
        match route {
            InferenceRoute::Provider { path, query } => {
                let config = StepConfig::default();
                let step = steps::build(
                    &self.table,
                    gateway,
                    StepRequest {
                        provider: path.provider,
                        rest: path.rest,
                        query,
                        account: path.account,
                        client,
                        step_headers: &[],
                        method: None,
                        body,
                        peek,
                        config: &config,
                    },
                )?;
                Ok(vec![step])
            }
            InferenceRoute::Universal { account, .. } => universal::parse(&body)?
                .into_iter()
                .enumerate()
                .map(|(i, u)| {
                    steps::build(
                        &self.table,
                        gateway,
                        StepRequest {
                            provider: &u.provider,
                            rest: &u.endpoint,
                            query: u.query_string.as_deref(),
                            account,
                            client,
                            step_headers: &u.headers,
                            method: Some(http::Method::POST),
                            peek: RequestPeek::of(&u.body),
                            body: u.body.clone(),
                            config: &u.config,
                        },
                    )
                    .map(|step| Step {
                        index: i as u32,
                        ..step
                    })
                    .map_err(|e| AiGatewayError {
                        message: format!("step {i}: {}", e.message).into(),
                        ..e
                    })
                })
                .collect(),
        }
    }

    /// The gateway's request rate limit (spec §3.3); every request that reaches the gateway counts, cache hits
    /// included. A store failure admits the request: the limit store answers from local counters when Redis is
    /// unreachable, so an error here means something unexpected, and refusing traffic for it would be worse.
    async fn check_rate_limit(
        &self,
        account: &str,
        gateway: &str,
        settings: &GatewaySettings,
    ) -> Result<(), AiGatewayError> {
        let (Some(limit), Some(interval)) = (
            settings.rate_limiting_limit.filter(|l| *l > 0),
            settings.rate_limiting_interval.filter(|i| *i > 0),
        ) else {
            return Ok(());
        };
        let technique = match settings.rate_limiting_technique {
            Some(RateLimitingTechnique::Sliding) => WindowTechnique::Sliding,
            // Cloudflare's default (spec §1.2).
            Some(RateLimitingTechnique::Fixed) | None => WindowTechnique::Fixed,
        };
        let key = format!("rl:{account}:{gateway}");
        match self
            .limits
            .admit_request(
                &key,
                limit as u64,
                Duration::from_secs(interval as u64),
                technique,
            )
            .await
        {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::Limited { retry_after }) => {
                Err(AiGatewayError::rate_limited(retry_after))
            }
            Err(error) => {
                tracing::warn!(%error, "rate limit store failed; admitting the request");
                Ok(())
            }
        }
    }

    async fn cache_lookup(
        &self,
        key: &gatehouse_bus::response_cache::CacheKey,
    ) -> Option<CachedResponse> {
        match self.cache.get(key).await {
            Ok(Some(entry)) => CachedResponse::decode(entry),
            Ok(None) => None,
            Err(error) => {
                // A cache that cannot answer is a miss; the provider still can.
                tracing::debug!(%error, "cache lookup failed");
                None
            }
        }
    }

    async fn cache_store(
        &self,
        key: &gatehouse_bus::response_cache::CacheKey,
        entry: Bytes,
        ttl: Duration,
    ) {
        if let Err(error) = self.cache.put(key, entry, ttl).await {
            tracing::debug!(%error, "cache store failed");
        }
    }

    /// Sends a cached answer; the log record reads usage from it as from a provider response.
    async fn serve_cached(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        step: &Step,
        hit: CachedResponse,
        ids: &ResponseIds,
    ) -> Result<(), ForwardError> {
        let header = hit
            .response_header(&ids.headers(Some("HIT")))
            .map_err(|e| {
                ForwardError::BeforeResponse(AiGatewayError::bad_request(format!(
                    "cached header: {e}"
                )))
            })?;
        if let Some(capture) = ctx.log.as_deref_mut().map(|d| &mut d.response) {
            capture.begin(hit.content_type(), &step.provider, &step.path);
            capture.chunk(&hit.body);
        }
        session
            .write_response_header(Box::new(header), false)
            .await
            .map_err(ForwardError::AfterResponse)?;
        session
            .write_response_body(Some(hit.body), true)
            .await
            .map_err(ForwardError::AfterResponse)?;
        Ok(())
    }

    /// Points the request's draft and response ids at the first step to be tried: universal records carry
    /// their step's provider, path and body, and the response names the step.
    fn describe_step(
        &self,
        ctx: &mut RequestContext,
        first: &Step,
        universal: bool,
        ids: &mut ResponseIds,
    ) {
        if universal {
            ids.step = Some(first.index.to_string());
            if let Some(draft) = ctx.log.as_deref_mut() {
                *draft = draft.for_step(draft.id.clone(), first);
            }
        }
        if ctx.submit_log
            && let Some(draft) = ctx.log.as_deref()
        {
            ids.log_id = Some(draft.id.clone());
            ids.event_id = Some(draft.event_id.clone());
        }
    }

    /// Universal requests: a record for every step that handed over to the next one, submitted now.
    fn log_failed_steps(
        &self,
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
            let draft = base.for_step(id, step);
            let status = match failure {
                StepFailure::Status(status) => status,
                StepFailure::NoAnswer(failure) => failure.error().status.as_u16(),
            };
            let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            self.log_sink.submit(draft.into_record(status, duration_ms));
        }
    }

    /// Makes the request's draft describe step `index` (the one whose answer the client gets) and points the
    /// response's log id and step header at it.
    fn switch_draft_to_step(
        &self,
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
        if let Some(draft) = ctx.log.as_deref_mut() {
            *draft = draft.for_step(ulid::Ulid::generate().to_string(), step);
            if ctx.submit_log {
                ids.log_id = Some(draft.id.clone());
            }
        }
    }
}

/// The draft of a request's log record, from what is known before the body is read.
#[allow(clippy::too_many_arguments)]
fn new_draft(
    session: &Session,
    account: &str,
    gateway_id: &str,
    provider: &str,
    path: &str,
    gateway: &CompiledGateway,
    request_id: ulid::Ulid,
    caller: GatewayCaller,
) -> LogDraft {
    let text = |name: &str| header(session, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let collect_payload = flag(header(session, COLLECT_PAYLOAD_HEADER)).unwrap_or(true);
    LogDraft {
        id: request_id.to_string(),
        created_at_ms: i64::try_from(request_id.timestamp_ms()).unwrap_or(i64::MAX),
        account_id: account.to_owned(),
        gateway_id: gateway_id.to_owned(),
        provider: provider.to_owned(),
        path: path.to_owned(),
        // A client-chosen event id is kept within a sane length; otherwise the request id serves.
        event_id: text(EVENT_ID_HEADER)
            .filter(|e| !e.is_empty() && e.len() <= 256)
            .unwrap_or_else(|| request_id.to_string()),
        metadata: header(session, METADATA_HEADER).and_then(parse_metadata),
        collect_payload,
        user_agent: text("user-agent"),
        authenticated: caller == GatewayCaller::Authorized,
        request_content_type: text("content-type"),
        request_body: Bytes::new(),
        model: None,
        config_hash: gateway.hash.clone(),
        // A malformed header is ignored (the provider's prices apply), as a malformed metadata header is.
        custom_cost: header(session, CUSTOM_COST_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| CustomCost::parse(v).ok()),
        step: 0,
        cached: false,
        response: ResponseCapture::new(collect_payload),
    }
}

/// The size of the request header as the node caps it: every field's name and value.
fn header_bytes(session: &Session) -> usize {
    session
        .req_header()
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

fn header<'s>(session: &'s Session, name: &str) -> Option<&'s [u8]> {
    session.req_header().headers.get(name).map(|v| v.as_bytes())
}

/// The gateway to serve from the snapshot. `default` is served before it exists when the caller is authorised
/// for the account (spec §3.1), with the settings it will be created with.
fn find_gateway(
    snapshot: &ConfigSnapshot,
    account: &str,
    gateway: &str,
    caller: GatewayCaller,
) -> Result<Arc<CompiledGateway>, AiGatewayError> {
    if let Some(found) = snapshot.gateway(account, gateway) {
        return Ok(Arc::clone(found));
    }
    if gateway != DEFAULT_GATEWAY_ID {
        return Err(AiGatewayError::GATEWAY_NOT_FOUND);
    }
    if caller != GatewayCaller::Authorized {
        return Err(AiGatewayError::UNAUTHORIZED);
    }
    // Version 0 marks a gateway served before it exists; stored documents start at 1.
    Ok(Arc::new(CompiledGateway {
        key: gatehouse_shared::config::GatewayKey::new(account, gateway),
        version: 0,
        hash: String::new(),
        internal_id: String::new(),
        is_default: true,
        settings: GatewaySettings::for_default_gateway(),
        provider_keys: Default::default(),
        custom_providers: Default::default(),
        cache_generation: 0,
        spend_limits: None,
    }))
}

/// How much of a refused body is read and thrown away, and for how long, after the 413 is sent.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_LIMIT_TIME: Duration = Duration::from_secs(2);

/// A lingering close: after answering 413 while the client is still sending, read and discard what it sends for a
/// bounded time. Closing at once would leave unread bytes in the socket, which makes the kernel reset the
/// connection and destroy the 413 before the client reads it.
async fn drain_rejected_body(session: &mut Session) {
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT_TIME;
    let mut drained = 0usize;
    while drained < DRAIN_LIMIT_BYTES {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => drained += chunk.len(),
            _ => break,
        }
    }
}

/// Reads the whole request body, refusing more than `cap` bytes (checked against `Content-Length` first, then
/// while reading). A body that arrives in one chunk is passed on without a copy.
async fn read_body(session: &mut Session, cap: usize) -> Result<Bytes, AiGatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(AiGatewayError::BODY_TOO_LARGE);
    }
    let read_error = |e: Box<pingora::Error>| {
        AiGatewayError::bad_request(format!("reading the request body failed: {e}"))
    };
    let Some(first) = session.read_request_body().await.map_err(read_error)? else {
        return Ok(Bytes::new());
    };
    if first.len() > cap {
        return Err(AiGatewayError::BODY_TOO_LARGE);
    }
    let Some(second) = session.read_request_body().await.map_err(read_error)? else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(first.len() + second.len()).min(cap));
    body.extend_from_slice(&first);
    body.extend_from_slice(&second);
    while let Some(chunk) = session.read_request_body().await.map_err(read_error)? {
        if body.len() + chunk.len() > cap {
            return Err(AiGatewayError::BODY_TOO_LARGE);
        }
        body.extend_from_slice(&chunk);
    }
    if body.len() > cap {
        return Err(AiGatewayError::BODY_TOO_LARGE);
    }
    Ok(body.freeze())
}
