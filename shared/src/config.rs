//! Config documents: what the control plane compiles and publishes, and what every data-plane node applies.
//!
//! The unit of consistency is one gateway: a [`GatewayConfigDocument`] carries everything a node needs to serve
//! that gateway (settings, provider keys still sealed, the account's custom providers). Token verification keys and
//! revocations apply to every gateway, so they travel once in the [`DeploymentDocument`]. Every document has a
//! `version` from the database (monotonic across the deployment) and a content hash.
//!
//! Wire rules: unknown fields are ignored (an older node reads a newer document), new fields get `#[serde(default)]`,
//! and `fixtures/` holds old forms that must keep parsing.

use serde::{Deserialize, Serialize};

use crate::access::AccessEntries;
use crate::gateway::GatewaySettings;
use crate::token::VerificationKey;

/// Format of the documents this build writes. Readers accept any version and ignore what they do not know.
pub const DOCUMENT_SCHEMA: u32 = 1;

/// The identity of a gateway across the deployment: `{account_id}/{gateway_id}`. Both parts exclude `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GatewayKey {
    pub account_id: String,
    pub gateway_id: String,
}

impl GatewayKey {
    pub fn new(account_id: impl Into<String>, gateway_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            gateway_id: gateway_id.into(),
        }
    }

    /// The text form used in bus keys and announcements.
    pub fn as_path(&self) -> String {
        format!("{}/{}", self.account_id, self.gateway_id)
    }

    pub fn parse_path(path: &str) -> Option<Self> {
        let (account, gateway) = path.split_once('/')?;
        (!account.is_empty() && !gateway.is_empty() && !gateway.contains('/'))
            .then(|| Self::new(account, gateway))
    }
}

impl std::fmt::Display for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account_id, self.gateway_id)
    }
}

/// Everything a node needs to serve one gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayConfigDocument {
    #[serde(default = "schema_one")]
    pub schema: u32,
    pub key: GatewayKey,
    /// Monotonic across the deployment; a node never replaces a document with an older version.
    pub version: i64,
    pub internal_id: String,
    #[serde(default)]
    pub is_default: bool,
    pub settings: GatewaySettings,
    /// Stored provider keys of this gateway (spec §1.8), secrets sealed under the master key.
    #[serde(default)]
    pub provider_configs: Vec<ProviderConfigEntry>,
    /// The account's custom providers (spec §1.9), routable as `custom-{slug}`.
    #[serde(default)]
    pub custom_providers: Vec<CustomProviderEntry>,
    /// Part of every cache key of this gateway; the control plane raises it when an update changes the settings of
    /// a gateway with `cache_invalidate_on_update` (spec §3.2), so entries cached before are never served again.
    /// Documents written before it existed read as 0, the value every gateway started at.
    #[serde(default)]
    pub cache_generation: i64,
    /// The account's virtual keys that may use this gateway, and its users and teams (issue 14), with their limits.
    #[serde(default, skip_serializing_if = "AccessEntries::is_empty")]
    pub access: AccessEntries,
    /// The gateway's dynamic routes (spec §1.7), each with its deployed version's elements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<crate::routes::RouteEntry>,
}

/// A stored provider key as documents carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfigEntry {
    pub id: String,
    pub provider_slug: String,
    pub alias: String,
    pub default_config: bool,
    /// The secret, sealed with the master key (`MasterKey::seal`); nodes open it when they compile the document.
    pub sealed_secret: String,
    #[serde(default)]
    pub rate_limit: Option<f64>,
    #[serde(default)]
    pub rate_limit_period: Option<f64>,
}

/// A custom provider as documents carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomProviderEntry {
    pub id: String,
    pub slug: String,
    /// `https://…` (or `http://` when the operator allows it); the path after `custom-{slug}/` is appended.
    pub base_url: String,
    #[serde(default)]
    pub enable: bool,
}

/// What applies to every gateway: token verification keys and revoked token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDocument {
    #[serde(default = "schema_one")]
    pub schema: u32,
    pub version: i64,
    pub verification_keys: Vec<VerificationKey>,
    /// Ids (`jti`) of revoked tokens that have not yet expired.
    #[serde(default)]
    pub revoked_tokens: Vec<String>,
}

fn schema_one() -> u32 {
    DOCUMENT_SCHEMA
}

/// The hex SHA-256 of a document's serialised bytes, for status reports and logs (which config served a request).
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_keys_round_trip_through_their_path_form() {
        let k = GatewayKey::new("acme", "gw-1");
        assert_eq!(GatewayKey::parse_path(&k.as_path()), Some(k));
        for bad in ["", "acme", "/gw", "acme/", "a/b/c"] {
            assert_eq!(GatewayKey::parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_first_document_format_keeps_parsing() {
        let doc: GatewayConfigDocument =
            serde_json::from_str(include_str!("../fixtures/gateway-document-v1.json")).unwrap();
        assert_eq!(doc.key, GatewayKey::new("acme", "prod"));
        assert_eq!(doc.provider_configs.len(), 1);
        assert_eq!(doc.cache_generation, 0, "written before cache generations");
        let dep: DeploymentDocument =
            serde_json::from_str(include_str!("../fixtures/deployment-document-v1.json")).unwrap();
        assert_eq!(dep.verification_keys.len(), 1);
    }
}
