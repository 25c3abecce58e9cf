//! Admission: whether the node takes the request at all, and for which gateway and caller. Readiness, the header
//! cap, the one config snapshot the request is served from, the gateway (or the account's `default` before it
//! exists), and `cf-aig-authorization` verified on the node with the deployment's keys and revocation list (no
//! network call per request; a token verified once is remembered, `snapshot/verified_tokens.rs`).

use std::sync::Arc;

use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::ids::DEFAULT_GATEWAY_ID;
use gatehouse_shared::token::{Scope, bearer_token};
use pingora::http::RequestHeader;

use crate::error::AiGatewayError;
use crate::proxy::controls;
use crate::readiness::ReadinessHandle;
use crate::snapshot::{CompiledGateway, ConfigSnapshot, ConfigStore, DefaultGatewayRequester};

/// What admission needs of the node.
pub(crate) struct Gatekeeper<'a> {
    pub readiness: &'a ReadinessHandle,
    pub config: &'a ConfigStore,
    pub default_gateways: &'a DefaultGatewayRequester,
    pub max_header_bytes: usize,
}

/// An admitted request: its gateway (as compiled in the one snapshot the request was admitted from, kept to the
/// end of the request, retries and logging included) and who called.
pub(crate) struct Admitted {
    pub gateway: Arc<CompiledGateway>,
    pub caller: GatewayCaller,
    /// On `/compat`, the caller's `Authorization: Bearer` held the gateway's own token (an OpenAI SDK's `apiKey`)
    /// rather than a provider key: it authenticated the request and is never forwarded.
    pub bearer_is_gateway_token: bool,
}

/// What `cf-aig-authorization` says about the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayCaller {
    /// No header.
    Anonymous,
    /// A valid, unrevoked token with `ai-gateway:run` for this account.
    Authorized,
    /// A header was sent but does not authorise this account (malformed, forged, expired, revoked, another
    /// account, or no run scope).
    Refused,
}

/// Admits a request for `account`'s gateway `gateway_id`, or says why not.
pub(crate) fn run(
    node: &Gatekeeper<'_>,
    client: &RequestHeader,
    account: &str,
    gateway_id: &str,
    compat: bool,
) -> Result<Admitted, AiGatewayError> {
    if !node.readiness.is_ready() {
        return Err(AiGatewayError::NOT_READY);
    }
    if header_bytes(client) > node.max_header_bytes {
        return Err(AiGatewayError::HEADER_TOO_LARGE);
    }
    let snapshot = node.config.load();
    let authorization = client
        .headers
        .get(controls::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let mut caller = authenticate(authorization, &snapshot, account);
    let mut bearer_is_gateway_token = false;
    if compat && authorization.is_none() {
        // An OpenAI SDK can only set `apiKey`: a gateway token there authenticates like `cf-aig-authorization`;
        // anything else in it is the provider key and leaves the caller anonymous.
        let bearer = client
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if bearer.is_some() && authenticate(bearer, &snapshot, account) == GatewayCaller::Authorized
        {
            caller = GatewayCaller::Authorized;
            bearer_is_gateway_token = true;
        }
    }
    let gateway = find_gateway(&snapshot, account, gateway_id, caller)?;
    if gateway.version == 0 && gateway.is_default {
        // Served from the settings it will be created with; the control plane creates it once (deduplicated,
        // never blocking) and the next requests use the stored one.
        node.default_gateways.request(account);
    }
    if gateway.settings.authentication && caller != GatewayCaller::Authorized {
        return Err(AiGatewayError::UNAUTHORIZED);
    }
    Ok(Admitted {
        gateway,
        caller,
        bearer_is_gateway_token,
    })
}

/// Checks the header against the snapshot's deployment keys. A gateway without `authentication` ignores the
/// answer; one with it requires [`GatewayCaller::Authorized`].
pub(crate) fn authenticate(
    header: Option<&[u8]>,
    snapshot: &ConfigSnapshot,
    account_id: &str,
) -> GatewayCaller {
    let Some(raw) = header else {
        return GatewayCaller::Anonymous;
    };
    let Some(token) = std::str::from_utf8(raw).ok().and_then(bearer_token) else {
        return GatewayCaller::Refused;
    };
    // Before the first deployment document arrives nothing can be verified, so nothing is authorised.
    let Some(deployment) = snapshot.deployment.as_ref() else {
        return GatewayCaller::Refused;
    };
    match deployment.verified.verify(&deployment.verifier, token) {
        // Revocation is checked on every request, against this snapshot's list.
        Ok(claims)
            if !deployment.revoked_tokens.contains(&claims.jti)
                && claims.allows_account(account_id)
                && claims.has_scope(Scope::AiGatewayRun) =>
        {
            GatewayCaller::Authorized
        }
        _ => GatewayCaller::Refused,
    }
}

/// The size of the request header as the node caps it: every field's name and value.
fn header_bytes(client: &RequestHeader) -> usize {
    client
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
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
