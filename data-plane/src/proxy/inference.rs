//! The provider-native inference path (`/v1/{account}/{gateway}/{provider}/{rest}`): gateway lookup,
//! authentication, routing, body, credentials, then the upstream exchange.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::ids::DEFAULT_GATEWAY_ID;
use pingora::proxy::Session;

use super::auth::{GatewayCaller, authenticate};
use super::endpoint::ProviderPath;
use super::forward::{Exchange, ForwardError};
use super::log_draft::{LogDraft, ResponseCapture, flag, parse_metadata, request_model};
use super::{GatewayProxy, RequestContext, credentials, respond};
use crate::error::AiGatewayError;
use crate::route::RouteError;
use crate::snapshot::{CompiledGateway, ConfigSnapshot};
use gatehouse_shared::pricing::CustomCost;

/// Request headers the gateway reads.
const AUTHORIZATION_HEADER: &str = "cf-aig-authorization";
const BYOK_ALIAS_HEADER: &str = "cf-aig-byok-alias";
const REQUEST_TIMEOUT_HEADER: &str = "cf-aig-request-timeout";
const COLLECT_LOG_HEADER: &str = "cf-aig-collect-log";
const COLLECT_PAYLOAD_HEADER: &str = "cf-aig-collect-log-payload";
const EVENT_ID_HEADER: &str = "cf-aig-event-id";
const METADATA_HEADER: &str = "cf-aig-metadata";
const CUSTOM_COST_HEADER: &str = "cf-aig-custom-cost";

impl GatewayProxy {
    /// Serves one provider-native request; every gateway-made failure is rendered here, before any response byte.
    pub(super) async fn serve_provider(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        path: ProviderPath<'_>,
        query: Option<&str>,
    ) -> pingora::Result<()> {
        let request_id = ulid::Ulid::generate();
        ctx.request_id = Some(request_id);
        match self
            .forward_provider(session, ctx, path, query, request_id)
            .await
        {
            Ok(()) => Ok(()),
            Err(ForwardError::BeforeResponse(error)) => {
                respond::gateway_error(session, &error).await?;
                if error.code == crate::error::code::BODY_TOO_LARGE {
                    drain_rejected_body(session).await;
                }
                Ok(())
            }
            Err(ForwardError::AfterResponse(error)) => Err(error),
        }
    }

    async fn forward_provider(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        path: ProviderPath<'_>,
        query: Option<&str>,
        request_id: ulid::Ulid,
    ) -> Result<(), ForwardError> {
        let before = ForwardError::BeforeResponse;
        if !self.readiness.is_ready() {
            return Err(before(AiGatewayError::NOT_READY));
        }
        // One snapshot for the whole request.
        let snapshot = self.config.load();
        let caller = authenticate(
            header(session, AUTHORIZATION_HEADER),
            &snapshot,
            path.account,
        );
        let gateway =
            find_gateway(&snapshot, path.account, path.gateway, caller).map_err(before)?;
        if gateway.version == 0 && gateway.is_default {
            // Served from the settings it will be created with; the control plane creates it once (deduplicated,
            // never blocking) and the next requests use the stored one.
            self.default_gateways.request(path.account);
        }
        if gateway.settings.authentication && caller != GatewayCaller::Authorized {
            return Err(before(AiGatewayError::UNAUTHORIZED));
        }
        // From here on the request is the gateway's: it is logged, errors included, when logging is on.
        let collect =
            flag(header(session, COLLECT_LOG_HEADER)).unwrap_or(gateway.settings.collect_logs);
        if collect {
            ctx.log = Some(Box::new(new_draft(
                session, &path, &gateway, request_id, caller,
            )));
        }
        let target = self
            .table
            .route(path.provider, path.rest, query, path.account, |slug| {
                gateway
                    .custom_providers
                    .get(slug)
                    .map(|c| c.base_url.clone())
            })
            .map_err(|e| {
                before(match e {
                    RouteError::UnknownProvider => AiGatewayError::INVALID_PROVIDER,
                    RouteError::BadPath(message) => AiGatewayError::bad_request(message),
                })
            })?;
        let timeout = request_timeout(session).map_err(before)?;
        let alias = header(session, BYOK_ALIAS_HEADER).and_then(|v| std::str::from_utf8(v).ok());
        let credential = credentials::choose(
            path.provider,
            target.credential,
            session.req_header(),
            gateway.provider_keys.get(path.provider),
            alias,
        )
        .map_err(before)?;
        let body = read_body(session, self.max_body_bytes)
            .await
            .map_err(before)?;
        if let Some(draft) = ctx.log.as_deref_mut() {
            draft.model = request_model(&body);
            draft.request_body = body.clone();
        }
        let mut upstream =
            super::forward::Upstreams::upstream_header(session.req_header(), &target, body.len())
                .map_err(|e| before(AiGatewayError::bad_request(format!("request header: {e}"))))?;
        if let Some(c) = credential {
            upstream.insert_header(c.name, c.value).map_err(|_| {
                before(AiGatewayError::bad_request(
                    "the stored provider key is not a valid header value",
                ))
            })?;
        }
        let id = request_id.to_string();
        let event_id = ctx.log.as_deref().map(|d| d.event_id.clone());
        let capture = ctx.log.as_deref_mut().map(|d| &mut d.response);
        let mut extra: Vec<(&'static str, &str)> = vec![("cf-aig-request-id", id.as_str())];
        if let Some(event_id) = event_id.as_deref() {
            // Single-step requests: the log id is the request id (spec §2.4).
            extra.push(("cf-aig-log-id", id.as_str()));
            extra.push(("cf-aig-event-id", event_id));
        }
        let exchange = Exchange {
            target: &target,
            request: upstream,
            body,
            response_timeout: timeout,
            extra_response_headers: &extra,
            provider: path.provider,
            path: path.rest,
        };
        self.upstreams.forward(session, exchange, capture).await?;
        Ok(())
    }
}

/// The draft of a request's log record, from what is known before the body is read.
fn new_draft(
    session: &Session,
    path: &ProviderPath<'_>,
    gateway: &CompiledGateway,
    request_id: ulid::Ulid,
    caller: GatewayCaller,
) -> LogDraft {
    let text = |name: &str| header(session, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let collect_payload = flag(header(session, COLLECT_PAYLOAD_HEADER)).unwrap_or(true);
    LogDraft {
        id: request_id.to_string(),
        created_at_ms: i64::try_from(request_id.timestamp_ms()).unwrap_or(i64::MAX),
        account_id: path.account.to_owned(),
        gateway_id: path.gateway.to_owned(),
        provider: path.provider.to_owned(),
        path: path.rest.to_owned(),
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
        response: ResponseCapture::new(collect_payload),
    }
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
    }))
}

/// `cf-aig-request-timeout`: milliseconds to the provider's first response byte.
fn request_timeout(session: &Session) -> Result<Option<Duration>, AiGatewayError> {
    let Some(raw) = header(session, REQUEST_TIMEOUT_HEADER) else {
        return Ok(None);
    };
    std::str::from_utf8(raw)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            AiGatewayError::bad_request(
                "cf-aig-request-timeout must be a positive number of milliseconds",
            )
        })
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
