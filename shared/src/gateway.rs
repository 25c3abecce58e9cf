//! A gateway's settings: what the management API stores and what config documents will carry to the data plane.
//!
//! Field names are Cloudflare's wire names (spec §1.2). Unknown fields are ignored when reading, so a node can read a
//! document written by a newer control plane. The nested policy objects (`dlp`, `guardrails`, `otel`,
//! `spend_limits`, `stripe`) are kept as validated JSON until the features that act on them type them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the gateway's request rate limit counts its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitingTechnique {
    /// Calendar-aligned windows.
    Fixed,
    /// No more than the limit in any trailing window.
    Sliding,
}

/// What happens when a gateway's stored logs reach `log_management`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogManagementStrategy {
    #[serde(rename = "STOP_INSERTING")]
    StopInserting,
    #[serde(rename = "DELETE_OLDEST")]
    DeleteOldest,
}

/// How the delay between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryBackoff {
    Constant,
    Linear,
    Exponential,
}

/// What a catalog model is for: `/compat/chat/completions` and `/compat/responses`, or `/compat/embeddings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogModelType {
    Chat,
    Embedding,
}

/// Where a catalog model's provider serves it; a gateway with `regional_only` serves only `regional` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogModelLocation {
    Regional,
    Global,
}

/// One entry of a gateway's model catalog (Gatehouse's extension, the platform-gateway form of `/compat`): a plain
/// name clients send as `model`, and the `{provider}/{model}` it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogModel {
    pub name: String,
    pub target: String,
    #[serde(rename = "type")]
    pub model_type: CatalogModelType,
    pub location: CatalogModelLocation,
    /// Gatehouse's (issue 15): the name served by several targets, balanced, with a dynamic route `model`
    /// element's properties (`targets`, `balance`, `sticky`, `circuit_breaker`, `retry_on`, `fallback_on`,
    /// `health_check`, `retries`, `timeout`; `shared/src/routes/model.rs`); `target` must be one of `targets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<serde_json::Value>,
}

/// Cross-origin access to the gateway's inference endpoints from browsers (Gatehouse's extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`) or one leading wildcard label (`https://*.example.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// A JWT signing algorithm an identity provider may use. Only asymmetric ones: a gateway verifies with public keys
/// from the provider's JWKS and never holds a shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "RS384")]
    Rs384,
    #[serde(rename = "RS512")]
    Rs512,
    #[serde(rename = "PS256")]
    Ps256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "ES384")]
    Es384,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl JwtAlgorithm {
    /// Every algorithm, in the order the API lists them.
    pub const ALL: [JwtAlgorithm; 7] = [
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Rs384,
        JwtAlgorithm::Rs512,
        JwtAlgorithm::Ps256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::Es384,
        JwtAlgorithm::EdDsa,
    ];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm with this JOSE name.
    pub fn from_name(name: &str) -> Option<JwtAlgorithm> {
        JwtAlgorithm::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Whether an identity provider's tokens must be DPoP-bound (RFC 9449).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpopMode {
    /// `Authorization: DPoP` is refused; tokens are bearer tokens (a token bound with `cnf.jkt` is refused too,
    /// since its binding could not be checked).
    Off,
    /// Bearer tokens are accepted; a DPoP-bound token (`cnf.jkt`) must come as `DPoP` with a valid proof.
    #[default]
    Optional,
    /// Only DPoP-bound tokens with a valid proof.
    Required,
}

/// An organisation's identity provider whose JWTs a gateway accepts (Gatehouse's extension, issue 14): the token's
/// `iss` selects the provider, whose JWKS verifies it, and two claims name the Gatehouse user and team whose
/// limits and budgets apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProvider {
    /// The exact `iss` of the provider's tokens; unique among a gateway's providers.
    pub issuer: String,
    /// Accepted `aud` values: a token must name at least one. The API takes a string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Where the provider publishes its signing keys (`https://`, or `http://` to a loopback address).
    pub jwks_url: String,
    #[serde(default = "IdentityProvider::default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// The claim naming the user (a user's id, or the name of exactly one user of the account).
    #[serde(default = "IdentityProvider::default_user_claim")]
    pub user_claim: String,
    /// The claim naming the team (a string, or a list whose first entry naming a team counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_claim: Option<String>,
    #[serde(default)]
    pub dpop: DpopMode,
    /// Clock skew allowed on `exp`, `nbf` and a DPoP proof's `iat`, in seconds.
    #[serde(default = "IdentityProvider::default_leeway_seconds")]
    pub leeway_seconds: u64,
}

impl IdentityProvider {
    pub const DEFAULT_USER_CLAIM: &str = "sub";
    pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;

    pub fn default_algorithms() -> Vec<JwtAlgorithm> {
        vec![JwtAlgorithm::Rs256, JwtAlgorithm::Es256]
    }

    fn default_user_claim() -> String {
        Self::DEFAULT_USER_CLAIM.to_owned()
    }

    fn default_leeway_seconds() -> u64 {
        Self::DEFAULT_LEEWAY_SECONDS
    }
}

/// A string or a list of strings, read as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// Every configurable field of a gateway (not its identity or timestamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewaySettings {
    pub cache_invalidate_on_update: bool,
    /// Seconds; `None` or 0 turns caching off.
    pub cache_ttl: Option<i64>,
    pub collect_logs: bool,
    /// Window in seconds; `None` or 0 turns rate limiting off.
    pub rate_limiting_interval: Option<i64>,
    /// Requests per window.
    pub rate_limiting_limit: Option<i64>,
    #[serde(default)]
    pub rate_limiting_technique: Option<RateLimitingTechnique>,
    /// Require `cf-aig-authorization` on inference requests.
    #[serde(default)]
    pub authentication: bool,
    #[serde(default)]
    pub log_management: Option<i64>,
    #[serde(default)]
    pub log_management_strategy: Option<LogManagementStrategy>,
    #[serde(default)]
    pub logpush: bool,
    #[serde(default)]
    pub logpush_public_key: Option<String>,
    /// Total attempts, the first included (1 = no retry).
    #[serde(default)]
    pub retry_max_attempts: Option<i64>,
    /// Milliseconds.
    #[serde(default)]
    pub retry_delay: Option<i64>,
    #[serde(default)]
    pub retry_backoff: Option<RetryBackoff>,
    #[serde(default)]
    pub zdr: bool,
    #[serde(default)]
    pub byok_only: bool,
    #[serde(default)]
    pub log_classification: bool,
    #[serde(default)]
    pub workers_ai_billing_mode: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub dlp: Option<Value>,
    #[serde(default)]
    pub guardrails: Option<Value>,
    #[serde(default)]
    pub otel: Option<Value>,
    #[serde(default)]
    pub spend_limits: Option<Value>,
    #[serde(default)]
    pub stripe: Option<Value>,
    /// Gatehouse's extensions for the OpenAI-compatible endpoint, unknown to Cloudflare's schema (optional, and
    /// left out of documents when unset so Cloudflare's SDKs see nothing new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<CatalogModel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regional_only: Option<bool>,
    /// Host names whose requests reach this gateway at `/v1/…` (unique across the deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSettings>,
    /// Tokens per minute across every caller of the gateway (issue 14; a Gatehouse extension, positive or null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    /// Identity providers whose JWTs authenticate callers (issue 14; a Gatehouse extension, at most 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_providers: Option<Vec<IdentityProvider>>,
}

impl GatewaySettings {
    /// The settings of the auto-created `default` gateway (spec §3.1): authentication on, logs on, cache and rate
    /// limit off.
    pub fn for_default_gateway() -> Self {
        Self {
            cache_invalidate_on_update: false,
            cache_ttl: Some(0),
            collect_logs: true,
            rate_limiting_interval: Some(0),
            rate_limiting_limit: Some(0),
            rate_limiting_technique: Some(RateLimitingTechnique::Fixed),
            authentication: true,
            log_management: None,
            log_management_strategy: None,
            logpush: false,
            logpush_public_key: None,
            retry_max_attempts: None,
            retry_delay: None,
            retry_backoff: None,
            zdr: false,
            byok_only: false,
            log_classification: false,
            workers_ai_billing_mode: None,
            store_id: None,
            dlp: None,
            guardrails: None,
            otel: None,
            spend_limits: None,
            stripe: None,
            models: None,
            regional_only: None,
            hostnames: None,
            cors: None,
            tpm_limit: None,
            identity_providers: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_tolerate_unknown_fields_and_missing_optionals() {
        let doc = r#"{"cache_invalidate_on_update":true,"cache_ttl":null,"collect_logs":true,
            "rate_limiting_interval":0,"rate_limiting_limit":0,"a_field_from_the_future":{"x":1}}"#;
        let s: GatewaySettings = serde_json::from_str(doc).unwrap();
        assert!(s.cache_invalidate_on_update);
        assert_eq!(s.cache_ttl, None);
        assert!(!s.authentication);
    }

    #[test]
    fn enums_use_cloudflare_wire_names() {
        let mut s = GatewaySettings::for_default_gateway();
        s.log_management_strategy = Some(LogManagementStrategy::DeleteOldest);
        s.retry_backoff = Some(RetryBackoff::Exponential);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["log_management_strategy"], "DELETE_OLDEST");
        assert_eq!(v["retry_backoff"], "exponential");
        assert_eq!(v["rate_limiting_technique"], "fixed");
    }

    #[test]
    fn identity_providers_take_an_audience_string_or_list_and_fill_defaults() {
        let one: IdentityProvider = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com", "audience": "gatehouse",
            "jwks_url": "https://idp.example.com/jwks"
        }))
        .unwrap();
        assert_eq!(one.audience, ["gatehouse"]);
        assert_eq!(one.algorithms, [JwtAlgorithm::Rs256, JwtAlgorithm::Es256]);
        assert_eq!(
            (one.user_claim.as_str(), one.team_claim.as_deref()),
            ("sub", None)
        );
        assert_eq!((one.dpop, one.leeway_seconds), (DpopMode::Optional, 60));
        let v = serde_json::to_value(&one).unwrap();
        assert_eq!(v["audience"], serde_json::json!(["gatehouse"]));
        assert_eq!(v["algorithms"], serde_json::json!(["RS256", "ES256"]));
        assert_eq!(v["dpop"], "optional");
        assert!(v.get("team_claim").is_none());
        let many: IdentityProvider = serde_json::from_value(serde_json::json!({
            "issuer": "i", "audience": ["a", "b"], "jwks_url": "u", "algorithms": ["EdDSA", "PS256"],
            "dpop": "required", "team_claim": "groups"
        }))
        .unwrap();
        assert_eq!(many.audience, ["a", "b"]);
        assert_eq!(many.algorithms, [JwtAlgorithm::EdDsa, JwtAlgorithm::Ps256]);
        assert_eq!(many.dpop, DpopMode::Required);
        for a in JwtAlgorithm::ALL {
            assert_eq!(JwtAlgorithm::from_name(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
