//! Gateway authentication: `cf-aig-authorization` verified on the node with the deployment's public keys and
//! revocation list (no network call per request).

use gatehouse_shared::token::{Scope, bearer_token};

use crate::snapshot::ConfigSnapshot;

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
    match deployment.verifier.verify(token) {
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
