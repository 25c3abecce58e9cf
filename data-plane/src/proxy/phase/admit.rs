//! Admission: whether the node takes the request at all, and for which gateway and caller. Readiness, the header
//! cap, the one config snapshot the request is served from, the gateway (or the account's `default` before it
//! exists), and `cf-aig-authorization` verified on the node with the deployment's keys and revocation list (no
//! network call per request; a token verified once is remembered, `snapshot/verified_tokens.rs`).
//!
//! A virtual key (issue 14, `ghk_…`) may come in `cf-aig-authorization` or in `Authorization` (an OpenAI SDK's
//! `apiKey`), on every route. It is looked up in the gateway's compiled keys (one SHA-256 and one hash-map probe);
//! an unknown, revoked or expired key is refused with 401 even on a gateway that does not require
//! authentication, so a revoked key never quietly turns into an anonymous caller.
//!
//! A JWT of one of the gateway's identity providers (issue 14, `identity_providers`; its unverified `iss` names
//! the provider) may come the same two ways, as `Bearer` or as `DPoP` with a proof (`crate::identity`). A
//! verified token authenticates the request (it counts as authorised where `authentication` is on) and names the
//! user and team whose limits apply; one that does not verify is refused with 401 wherever it is sent. A token of
//! an issuer the gateway does not list is not an identity token here: in `cf-aig-authorization` it is checked as
//! a Gatehouse token, in `Authorization` it is the provider's credential.

use std::sync::Arc;

use gatehouse_bus::replay::ReplayCache;
use gatehouse_shared::access::looks_like_key;
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::ids::DEFAULT_GATEWAY_ID;
use gatehouse_shared::token::{Scope, bearer_token};
use pingora::http::RequestHeader;

use crate::error::{AiGatewayError, code};
use crate::identity::{self, CompiledProvider, IdentityProviders, Refusal, RequestTarget, Scheme};
use crate::proxy::controls;
use crate::readiness::ReadinessHandle;
use crate::snapshot::access::{IdentitySubject, RequestSubject};
use crate::snapshot::{CompiledGateway, ConfigSnapshot, ConfigStore, DefaultGatewayRequester};

/// The DPoP proof header (RFC 9449 §4.1).
pub(crate) const DPOP: &str = "dpop";

/// What admission needs of the node.
pub(crate) struct Gatekeeper<'a> {
    pub readiness: &'a ReadinessHandle,
    pub config: &'a ConfigStore,
    pub default_gateways: &'a DefaultGatewayRequester,
    pub max_header_bytes: usize,
    /// Where DPoP proofs' `jti`s are remembered.
    pub replay: &'a dyn ReplayCache,
    /// Whether `X-Forwarded-Proto` names the scheme of the URL clients used (DPoP `htu`).
    pub trust_forwarded_proto: bool,
}

/// An admitted request: its gateway (as compiled in the one snapshot the request was admitted from, kept to the
/// end of the request, retries and logging included) and who called.
pub(crate) struct Admitted {
    pub gateway: Arc<CompiledGateway>,
    pub caller: GatewayCaller,
    /// The caller's `Authorization` held the gateway's own credential (a gateway token on `/compat`, a virtual
    /// key or an identity provider's token on any route) rather than a provider key: it authenticated the request
    /// and is never forwarded.
    pub bearer_is_gateway_token: bool,
    /// The virtual key (with its user and team) or the identity that authenticated the request.
    pub subject: Option<RequestSubject>,
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

/// Admits a request for `account`'s gateway `gateway_id`, or says why not. It waits only for an identity
/// provider's token: at most `identity::KID_REFRESH_WAIT` for a JWKS refresh, and the replay cache's timeout.
pub(crate) async fn run(
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
    if let Some(presented) = presented_key(client) {
        return admit_key(&snapshot, account, gateway_id, presented, now_ms());
    }
    if let Some(gateway) = snapshot.gateway(account, gateway_id)
        && let Some(providers) = gateway.identity.as_deref()
        && let Some(presented) = presented_identity(client, providers)
    {
        return admit_identity(node, client, gateway, presented).await;
    }
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
        subject: None,
    })
}

/// A virtual key the request presents, and whether it came in `Authorization` (then it must not be forwarded).
struct PresentedKey<'r> {
    secret: &'r str,
    in_authorization: bool,
}

/// The first `ghk_…` bearer in `cf-aig-authorization`, then `Authorization`.
fn presented_key(client: &RequestHeader) -> Option<PresentedKey<'_>> {
    let bearer = |name: &str| {
        client
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .filter(|t| looks_like_key(t))
    };
    if let Some(secret) = bearer(controls::AUTHORIZATION) {
        return Some(PresentedKey {
            secret,
            in_authorization: false,
        });
    }
    bearer(http::header::AUTHORIZATION.as_str()).map(|secret| PresentedKey {
        secret,
        in_authorization: true,
    })
}

/// Admits a request that presents a virtual key: the gateway must exist (keys live in its document) and know the
/// key, unexpired.
fn admit_key(
    snapshot: &ConfigSnapshot,
    account: &str,
    gateway_id: &str,
    presented: PresentedKey<'_>,
    now_ms: i64,
) -> Result<Admitted, AiGatewayError> {
    let Some(gateway) = snapshot.gateway(account, gateway_id) else {
        // The account's `default` before it exists has no keys yet.
        return Err(if gateway_id == DEFAULT_GATEWAY_ID {
            AiGatewayError::INVALID_KEY
        } else {
            AiGatewayError::GATEWAY_NOT_FOUND
        });
    };
    let key = gateway
        .access
        .as_ref()
        .and_then(|keys| keys.find(presented.secret))
        .filter(|key| !key.expired(now_ms))
        .ok_or(AiGatewayError::INVALID_KEY)?;
    Ok(Admitted {
        subject: Some(RequestSubject::Key(Arc::clone(key))),
        gateway: Arc::clone(gateway),
        caller: GatewayCaller::Authorized,
        bearer_is_gateway_token: presented.in_authorization,
    })
}

/// An identity provider's token the request presents.
struct PresentedIdentity<'r> {
    provider: &'r CompiledProvider,
    scheme: Scheme,
    token: &'r str,
    in_authorization: bool,
}

/// The first JWT of one of the gateway's identity providers in `cf-aig-authorization`, then `Authorization`.
fn presented_identity<'r>(
    client: &'r RequestHeader,
    providers: &'r IdentityProviders,
) -> Option<PresentedIdentity<'r>> {
    let from = |name: &str, in_authorization: bool| {
        let value = client.headers.get(name)?.to_str().ok()?;
        let (scheme, token) = identity::credential(value)?;
        Some(PresentedIdentity {
            provider: providers.for_token(token)?,
            scheme,
            token,
            in_authorization,
        })
    };
    from(controls::AUTHORIZATION, false)
        .or_else(|| from(http::header::AUTHORIZATION.as_str(), true))
}

/// Admits a request that presents an identity provider's token: verified (with its DPoP proof), it authenticates
/// the request; the user and team its claims name are looked up in the gateway's document (unknown ones leave
/// the request without their limits).
async fn admit_identity(
    node: &Gatekeeper<'_>,
    client: &RequestHeader,
    gateway: &Arc<CompiledGateway>,
    presented: PresentedIdentity<'_>,
) -> Result<Admitted, AiGatewayError> {
    let mut proofs = client.headers.get_all(DPOP).iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(one), None) => one.to_str().ok(),
        _ => None,
    };
    let target = RequestTarget {
        method: client.method.as_str().to_owned(),
        htu: request_url(client, node.trust_forwarded_proto),
    };
    let verified = identity::verify(
        presented.provider,
        presented.scheme,
        presented.token,
        proof,
        &target,
        node.replay,
    )
    .await
    .map_err(refusal)?;
    let access = gateway.access.as_deref();
    let user = verified
        .user
        .as_deref()
        .and_then(|named| access?.user(named))
        .cloned();
    let team = verified
        .teams
        .iter()
        .find_map(|named| access?.team(named))
        .or_else(|| access?.team_by_id(user.as_ref()?.entry.team_id.as_deref()?))
        .cloned();
    Ok(Admitted {
        gateway: Arc::clone(gateway),
        caller: GatewayCaller::Authorized,
        bearer_is_gateway_token: presented.in_authorization,
        subject: Some(RequestSubject::Identity(IdentitySubject {
            issuer: verified.issuer,
            user,
            team,
        })),
    })
}

/// The URL the client addressed, as a DPoP proof's `htu` names it: the scheme (`X-Forwarded-Proto` when the node
/// trusts it, else the listener's `http`), the `Host` header (or the request line's authority) and the path as
/// sent, before any host-name routing rewrote it.
fn request_url(client: &RequestHeader, trust_forwarded_proto: bool) -> Option<String> {
    let forwarded = trust_forwarded_proto
        .then(|| client.headers.get("x-forwarded-proto")?.to_str().ok())
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "https" || v == "http");
    let scheme = forwarded.as_deref().unwrap_or("http");
    let host = client
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| client.uri.authority().map(|a| a.as_str()))?;
    identity::normalize_htu(&format!("{scheme}://{host}{}", client.uri.path()))
}

/// A refused identity token: 401 2009 naming what failed (503 when the replay cache could not record a proof).
fn refusal(refused: Refusal) -> AiGatewayError {
    let (status, internal) = match refused {
        Refusal::ReplayUnavailable => (http::StatusCode::SERVICE_UNAVAILABLE, code::INTERNAL),
        _ => (http::StatusCode::UNAUTHORIZED, code::UNAUTHORIZED),
    };
    AiGatewayError {
        status,
        code: internal,
        message: refused.message().into(),
        retry_after_secs: None,
        openai: None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        access: None,
        identity: None,
        routes: None,
        otel: None,
        metric_labels: crate::metrics::GatewayLabels::new(account, gateway),
    }))
}
