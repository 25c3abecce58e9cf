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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Cross-origin access to the gateway's inference endpoints from browsers (Gatehouse's extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`) or one leading wildcard label (`https://*.example.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
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
}
