//! One inference request, phase by phase, for both the provider-native form (`/v1/{account}/{gateway}/
//! {provider}/{rest}`) and the universal endpoint (`POST /v1/{account}/{gateway}`). This module only orders the
//! phases (`phase/`) and renders a gateway-made failure once; the logic is in the phases.
//!
//! admit → begin the record → rate limit → body → plan → key: models; key or identity: rates → cache lookup →
//! spend limits → key or identity: budgets → attempts → relay (→ account, in pingora's `logging` phase:
//! `proxy.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::proxy::Session;

use super::controls::{self, Controls};
use super::ctx::{RequestContext, ResponseIds};
use super::phase::admit::{self, GatewayCaller};
use super::phase::attempts::{self, Outcome, StepFailure};
use super::phase::plan::{self, InferenceRoute};
use super::phase::{access, account, body, cache, limits, relay, route};
use super::record::{LogDraft, RequestFacts, ResponseCapture, RouteFacts};
use super::spans::SpanStart;
use super::upstream::ForwardError;
use super::{GatewayProxy, cors, respond};
use crate::error::code;
use crate::metrics::CacheUse;
use crate::snapshot::access::RequestSubject;

/// Serves one inference request; every gateway-made failure is rendered here, before any response byte.
pub(super) async fn serve(
    node: &GatewayProxy,
    session: &mut Session,
    ctx: &mut RequestContext,
    route: InferenceRoute<'_>,
) -> pingora::Result<()> {
    let request_id = ulid::Ulid::generate();
    ctx.request_id = Some(request_id);
    ctx.meter.inference = true;
    match run(node, session, ctx, route, request_id).await {
        Ok(()) => Ok(()),
        Err(ForwardError::BeforeResponse(error)) => {
            ctx.meter.rejection = crate::metrics::rejection_kind(error.code);
            let mut ids = ResponseIds::new(request_id).with_cors(ctx.cors_origin.as_deref());
            if let Some(draft) = ctx.logged_draft() {
                ids.log_id = Some(draft.id.clone());
                ids.event_id = Some(draft.event_id.clone());
            }
            respond::gateway_error_with(session, &error, &ids.headers(None)).await?;
            if error.code == code::BODY_TOO_LARGE {
                body::drain_rejected_body(session).await;
            }
            Ok(())
        }
        Err(ForwardError::AfterResponse(error)) => Err(error),
    }
}

async fn run(
    node: &GatewayProxy,
    session: &mut Session,
    ctx: &mut RequestContext,
    route: InferenceRoute<'_>,
    request_id: ulid::Ulid,
) -> Result<(), ForwardError> {
    let before = ForwardError::BeforeResponse;
    let (account, gateway_id) = (route.account(), route.gateway());
    let admitted = admit::run(
        &node.gatekeeper(),
        session.req_header(),
        account,
        gateway_id,
        route.is_compat(),
    )
    .await
    .map_err(before)?;
    let gateway = &admitted.gateway;
    ctx.meter.gateway = Some(gateway.metric_labels.clone());
    if admitted.subject.is_some() && admitted.bearer_is_gateway_token {
        // The virtual key or identity token came as `Authorization` (an SDK's `apiKey`): it is the gateway's,
        // never the provider's, so no later phase may mistake it for the client's own provider key.
        session
            .req_header_mut()
            .remove_header(&http::header::AUTHORIZATION);
    }
    if matches!(admitted.subject, Some(RequestSubject::Identity(_))) {
        // A DPoP proof is for the gateway that checked it.
        session.req_header_mut().remove_header(admit::DPOP);
    }
    ctx.cors_origin = session
        .req_header()
        .headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|origin| cors::allows(&gateway.settings, origin))
        .map(str::to_owned);

    if let InferenceRoute::Provider { path, .. } = route
        && route.is_compat()
        && path.rest.trim_end_matches('/') == "models"
    {
        // Answered by the gateway from its catalog: no provider call, no log record.
        let allowed = admitted
            .subject
            .as_ref()
            .and_then(RequestSubject::key)
            .map_or(&[][..], |k| &k.entry.models[..]);
        let body = plan::compat::models_list(&gateway.settings, allowed);
        let ids = ResponseIds::new(request_id).with_cors(ctx.cors_origin.as_deref());
        return respond::json_with(
            session,
            http::StatusCode::OK,
            body.into(),
            &ids.headers(None),
        )
        .await
        .map_err(ForwardError::AfterResponse);
    }

    // From here on the request is the gateway's: it is logged, errors included, when logging is on.
    begin_record(session, ctx, route, &admitted, request_id);
    limits::admit_rate(&*node.limits, account, gateway_id, &gateway.settings)
        .await
        .map_err(before)?;
    let body = body::read(session, node.max_body_bytes, !route.is_universal())
        .await
        .map_err(before)?;
    if let Some(draft) = ctx.log.as_deref_mut() {
        draft.model = body.peek.model.clone();
        draft.request_body = body.bytes.clone();
    }
    name_target(
        node,
        ctx,
        route.record_target().0,
        body.peek.model.as_deref(),
    );
    // Read with the peek; it holds for the first step only if that step forwards these very bytes.
    let output_cap = body.output_cap;
    let routed = match (route, body.peek.model.as_deref()) {
        (InferenceRoute::Provider { path, .. }, Some(model)) if route.is_compat() => {
            let chosen = match model.strip_prefix(route::DYNAMIC_PREFIX) {
                Some(name) => Some(Err(name)),
                None => route::catalog_route(gateway, model, path.rest).map(Ok),
            };
            match chosen {
                None => None,
                Some(chosen) => {
                    let request = (session.req_header(), &body.bytes[..]);
                    let id = request_id.to_string();
                    let walked = match chosen {
                        Err(name) => route::plan(&*node.limits, gateway, name, request, &id).await,
                        Ok(catalog) => route::walk(&*node.limits, catalog, request, &id).await,
                    }
                    .map_err(before)?;
                    if let Some(draft) = ctx.log.as_deref_mut() {
                        draft.route = Some(Box::new(RouteFacts {
                            id: walked.route.id.clone(),
                            version_id: walked.route.version_id.clone(),
                            path: walked.trace(),
                        }));
                    }
                    Some(walked)
                }
            }
        }
        _ => None,
    };
    // `deferred`: a route's fallback targets, built only if the attempt loop reaches them.
    let (mut steps, mut deferred) = plan::run(
        &node.table,
        gateway,
        session.req_header(),
        route,
        body,
        admitted.bearer_is_gateway_token,
        routed.as_ref(),
    )
    .map_err(before)?;
    // A universal request and a routed one both try steps in turn: `cf-aig-step` names the one that answered, and
    // each step that failed before it gets a record of its own.
    let stepwise = route.is_universal() || routed.is_some();
    let compat = route.is_compat();
    let caller = admitted.subject.as_ref();
    if let Some(key) = caller.and_then(RequestSubject::key) {
        access::check_models(key, &steps, compat).map_err(before)?;
        if let Some(later) = &deferred {
            access::check_model_names(key, later.names(), compat).map_err(before)?;
        }
    }
    let mut subject = if caller.is_some() || gateway.settings.tpm_limit.is_some() {
        access::admit_rates(&*node.limits, gateway, caller, &steps[0], compat)
            .await
            .map_err(before)?
    } else {
        access::SubjectCharge::default()
    };
    let mut ids = ResponseIds::new(request_id).with_cors(ctx.cors_origin.as_deref());

    // A cache hit on the first step answers without any provider call (and without a spend check).
    if let Some(plan) = steps[0].cache.as_ref().filter(|p| !p.skip) {
        ctx.meter.cache = CacheUse::Miss;
        if let Some(hit) = cache::lookup(&*node.cache, &plan.key).await {
            ctx.meter.cache = CacheUse::Hit;
            account::describe_first_step(ctx, &steps[0], stepwise, &mut ids);
            name_target(node, ctx, &steps[0].provider, steps[0].model.as_deref());
            if let Some(draft) = ctx.log.as_deref_mut() {
                draft.cached = true;
            }
            drop(deferred);
            return relay::cached(session, ctx, &steps[0], hit, &ids).await;
        }
    }
    // Spend limits: a step over a budget is left out; a universal request falls back past it.
    let mut charges = Vec::new();
    if let Some(rules) = gateway.spend_limits.as_deref() {
        let metadata = limits::metadata_map(ctx.log.as_deref().and_then(|d| d.metadata.as_deref()));
        let within;
        (within, charges) =
            limits::admit_spend(&*node.limits, account, gateway_id, rules, steps, &metadata)
                .await
                .map_err(before)?;
        steps = within;
    }
    account::describe_first_step(ctx, &steps[0], stepwise, &mut ids);
    if let Some(caller) = caller {
        let hold = request_id.to_string();
        access::reserve_budgets(
            &*node.limits,
            account,
            caller,
            &steps[0],
            output_cap,
            &hold,
            compat,
            &mut subject,
        )
        .await
        .map_err(before)?;
    }
    // From here the request will cost something: its usage settles the key's tokens and budget hold.
    ctx.subject = Some(subject);
    authorize(node, &mut steps).await.map_err(before)?;

    let started = Instant::now();
    let log_failures = ctx.submit_log;
    let mut failed_steps: Vec<(usize, StepFailure, Duration)> = Vec::new();
    let more: &mut (dyn attempts::MoreSteps + Send) = match deferred.as_mut() {
        Some(later) => later,
        None => &mut attempts::NoMoreSteps,
    };
    let mut fallbacks = 0;
    let outcome = attempts::run(
        &node.upstreams,
        &mut steps,
        more,
        &mut ctx.meter.attempts,
        |index, failure| {
            fallbacks += 1;
            if log_failures {
                failed_steps.push((index, failure, started.elapsed()));
            }
        },
    )
    .await;
    ctx.meter.fallbacks = fallbacks;
    drop(deferred);
    account::log_failed_steps(&node.log_sink, ctx, &steps, failed_steps);

    let (answering, opened) = match outcome {
        Outcome::Respond { step, opened } => (step, opened),
        Outcome::Failed { step, failure } => {
            account::switch_to_step(ctx, &steps, step, &mut ids);
            name_target(
                node,
                ctx,
                &steps[step].provider,
                steps[step].model.as_deref(),
            );
            return Err(before(failure.error()));
        }
    };
    account::switch_to_step(ctx, &steps, answering, &mut ids);
    name_target(
        node,
        ctx,
        &steps[answering].provider,
        steps[answering].model.as_deref(),
    );
    ctx.spend = charges.get_mut(answering).and_then(Option::take);
    if let Some(walked) = routed.as_ref().filter(|r| !r.cost_windows.is_empty()) {
        // The route's cost-counting `rate` elements are charged the answer's cost with the spend limits.
        ctx.spend
            .get_or_insert_with(Default::default)
            .windows
            .extend(walked.cost_windows.iter().cloned());
    }
    if let Some(metrics) = &node.metrics
        && opened.is_event_stream()
    {
        ctx.meter.stream = Some(metrics.stream_opened());
    }
    relay::stream(
        &node.upstreams,
        &*node.cache,
        session,
        ctx,
        &steps[answering],
        opened,
        &ids,
    )
    .await
}

/// Tells the metrics which provider and model a request without a record draft went to (a draft names them).
fn name_target(node: &GatewayProxy, ctx: &mut RequestContext, provider: &str, model: Option<&str>) {
    if ctx.log.is_none()
        && let Some(metrics) = &node.metrics
    {
        metrics.name_target(&mut ctx.meter, provider, model);
    }
}

/// Mints the credentials of steps whose stored secret is not sent as it is (Vertex service accounts).
async fn authorize(
    node: &GatewayProxy,
    steps: &mut [plan::Step],
) -> Result<(), crate::error::AiGatewayError> {
    for step in steps.iter_mut() {
        match step.cloud_auth.take() {
            None => {}
            Some(plan::CloudAuth::Vertex { secret }) => {
                let token = node.cloud_tokens.vertex(&secret).await?;
                step.header
                    .insert_header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .map_err(|_| crate::error::AiGatewayError::INTERNAL)?;
            }
            Some(plan::CloudAuth::Bedrock {
                credentials,
                region,
            }) => super::cloud_auth::sign_bedrock(step, &credentials, &region)?,
        }
    }
    Ok(())
}

/// Starts the request's record when its gateway logs it, or when spend limits need the answer's cost (then
/// without bodies, and never submitted), or only the usage and cost a key's or identity's limits settle.
fn begin_record(
    session: &Session,
    ctx: &mut RequestContext,
    route: InferenceRoute<'_>,
    admitted: &admit::Admitted,
    request_id: ulid::Ulid,
) {
    let gateway = &admitted.gateway;
    let client = session.req_header();
    let controls = Controls::of_request(client);
    let collect = controls
        .flag(controls::COLLECT_LOG)
        .unwrap_or(gateway.settings.collect_logs);
    // A gateway that exports spans builds the record for them, logged or not.
    if let Some(targets) = &gateway.otel {
        ctx.span = Some(Box::new(SpanStart::begin(
            client,
            Arc::clone(targets),
            ctx.started.elapsed(),
        )));
    }
    if !collect && gateway.spend_limits.is_none() && ctx.span.is_none() {
        if access::needs_usage(gateway, admitted.subject.as_ref())
            || gateway.routes.as_ref().is_some_and(|r| r.counts_cost)
        {
            // Token and budget limits, and routes' cost-counting `rate` elements, need the answer's usage and
            // cost, nothing a record holds besides. The metrics count tokens and cost where usage is read anyway:
            // scanning every unlogged answer for them alone would cost more than the rest of the metrics together
            // (a stream's usage scan is tens of µs; bench/README.md "Telemetry").
            let (provider, _) = route.record_target();
            ctx.log = Some(Box::new(LogDraft::for_usage(&controls, provider)));
            ctx.submit_log = false;
        }
        return;
    }
    let (provider, path) = route.record_target();
    let mut draft = LogDraft::begin(
        client,
        RequestFacts {
            request_id,
            account: route.account(),
            gateway_id: route.gateway(),
            provider,
            path,
            config_hash: &gateway.hash,
            authenticated: admitted.caller == GatewayCaller::Authorized,
        },
    );
    if !collect && ctx.span.is_none() {
        draft.collect_payload = false;
        draft.response = ResponseCapture::new(false);
    }
    if let Some(subject) = &admitted.subject {
        (draft.key_id, draft.user_id, draft.team_id) = subject.log_ids();
    }
    ctx.log = Some(Box::new(draft));
    ctx.submit_log = collect;
}
