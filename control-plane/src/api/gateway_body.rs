//! The gateway create and PUT bodies (spec §1.2): the five required fields, every optional and PUT-only field, and
//! the nested policy objects, validated into a [`GatewayChanges`] that is applied to defaults (create) or to the
//! stored settings (PUT). Gatehouse's own fields (`models`, `regional_only`, `hostnames`, `cors`, `tpm_limit`,
//! `identity_providers`) are read by [`extensions`] and [`identity`].

mod extensions;
mod identity;
pub(crate) mod otel;

use gatehouse_shared::gateway::{
    CatalogModel, CorsSettings, GatewaySettings, IdentityProvider, LogManagementStrategy,
    RateLimitingTechnique, RetryBackoff,
};
use serde_json::{Map, Value};

use super::validation::{Field, FieldReader, type_name};
use crate::error::{Error, FieldError};

/// Largest `cache_ttl` we accept: one year in seconds. Cloudflare states no bound; a bound keeps arithmetic safe.
const MAX_TTL_SECONDS: i64 = 365 * 24 * 3600;
/// Largest rate-limit window and count we accept.
const MAX_RATE_VALUE: i64 = 1_000_000_000;
const MAX_SPEND_RULES: usize = 20;
const GUARDRAIL_CATEGORIES: &[&str] = &[
    "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12", "S13", "P1",
];

/// A validated create or PUT body.
#[derive(Debug)]
pub struct GatewayChanges {
    /// The `id` in the body (required on create; on PUT tolerated when it equals the path).
    pub id: Option<String>,
    cache_invalidate_on_update: bool,
    cache_ttl: Option<i64>,
    collect_logs: bool,
    rate_limiting_interval: Option<i64>,
    rate_limiting_limit: Option<i64>,
    rate_limiting_technique: Field<RateLimitingTechnique>,
    authentication: Field<bool>,
    log_management: Field<i64>,
    log_management_strategy: Field<LogManagementStrategy>,
    logpush: Field<bool>,
    logpush_public_key: Field<String>,
    retry_max_attempts: Field<i64>,
    retry_delay: Field<i64>,
    retry_backoff: Field<RetryBackoff>,
    zdr: Field<bool>,
    byok_only: Field<bool>,
    log_classification: Field<bool>,
    workers_ai_billing_mode: Field<String>,
    store_id: Field<String>,
    dlp: Field<Value>,
    guardrails: Field<Value>,
    otel: Field<Value>,
    spend_limits: Field<Value>,
    stripe: Field<Value>,
    models: Field<Vec<CatalogModel>>,
    regional_only: Field<bool>,
    hostnames: Field<Vec<String>>,
    cors: Field<CorsSettings>,
    tpm_limit: Field<u64>,
    identity_providers: Field<Vec<IdentityProvider>>,
}

/// Whether the body is for creating a gateway (the `id` is required) or replacing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Create,
    Replace,
}

fn parse_enum<T: serde::de::DeserializeOwned>(f: Field<String>) -> Field<T> {
    match f {
        Field::Absent => Field::Absent,
        Field::Null => Field::Null,
        // The reader already checked the value against the allowed names, which are the serde names.
        Field::Set(s) => serde_json::from_value(Value::String(s))
            .map(Field::Set)
            .unwrap_or(Field::Absent),
    }
}

impl GatewayChanges {
    pub fn read(body: &Map<String, Value>, kind: BodyKind) -> Result<Self, Error> {
        let mut r = FieldReader::new(body);
        let id = match kind {
            BodyKind::Create => {
                r.required_string("id", 1, gatehouse_shared::ids::GATEWAY_ID_MAX_LEN)
            }
            BodyKind::Replace => match r.string("id", 1, gatehouse_shared::ids::GATEWAY_ID_MAX_LEN)
            {
                Field::Set(s) => Some(s),
                _ => None,
            },
        };
        if let Some(id) = &id
            && !gatehouse_shared::ids::is_valid_gateway_id(id)
        {
            r.error(
                "id",
                "Invalid gateway id: use lower-case letters, digits and underscores, in runs joined by single hyphens",
            );
        }
        let cache_invalidate_on_update = r.required_bool("cache_invalidate_on_update");
        let cache_ttl = r.required_nullable_int("cache_ttl", 0, MAX_TTL_SECONDS);
        let collect_logs = r.required_bool("collect_logs");
        let rate_limiting_interval =
            r.required_nullable_int("rate_limiting_interval", 0, MAX_RATE_VALUE);
        let rate_limiting_limit = r.required_nullable_int("rate_limiting_limit", 0, MAX_RATE_VALUE);
        let rate_limiting_technique =
            parse_enum(r.enumeration("rate_limiting_technique", &["fixed", "sliding"]));
        let authentication = r.bool("authentication");
        let log_management = r.int("log_management", 10_000, 10_000_000);
        let log_management_strategy = parse_enum(r.enumeration(
            "log_management_strategy",
            &["STOP_INSERTING", "DELETE_OLDEST"],
        ));
        let logpush = r.bool("logpush");
        let logpush_public_key = r.string("logpush_public_key", 16, 1024);
        let retry_max_attempts = r.int("retry_max_attempts", 1, 5);
        let retry_delay = r.int("retry_delay", 0, 5000);
        let retry_backoff =
            parse_enum(r.enumeration("retry_backoff", &["constant", "linear", "exponential"]));
        let zdr = r.bool("zdr");
        let byok_only = r.bool("byok_only");
        let log_classification = r.bool("log_classification");
        let workers_ai_billing_mode =
            r.enumeration("workers_ai_billing_mode", &["postpaid", "unified"]);
        let store_id = r.string("store_id", 1, 256);
        let dlp = nested(&mut r, "dlp", validate_dlp);
        let guardrails = nested(&mut r, "guardrails", validate_guardrails);
        let otel = nested(&mut r, "otel", validate_otel);
        let spend_limits = nested(&mut r, "spend_limits", validate_spend_limits);
        let stripe = nested(&mut r, "stripe", validate_stripe);
        let models = extensions::read_models(&mut r);
        let regional_only = r.bool("regional_only");
        let hostnames = extensions::read_hostnames(&mut r);
        let cors = extensions::read_cors(&mut r);
        let tpm_limit = extensions::read_tpm_limit(&mut r);
        let identity_providers = identity::read_identity_providers(&mut r);
        r.finish()?;
        // `finish` succeeded, so every required field was read.
        let missing = || Error::Internal("a required gateway field was not read".into());
        Ok(Self {
            id,
            cache_invalidate_on_update: cache_invalidate_on_update.ok_or_else(missing)?,
            cache_ttl: cache_ttl.ok_or_else(missing)?,
            collect_logs: collect_logs.ok_or_else(missing)?,
            rate_limiting_interval: rate_limiting_interval.ok_or_else(missing)?,
            rate_limiting_limit: rate_limiting_limit.ok_or_else(missing)?,
            rate_limiting_technique,
            authentication,
            log_management,
            log_management_strategy,
            logpush,
            logpush_public_key,
            retry_max_attempts,
            retry_delay,
            retry_backoff,
            zdr,
            byok_only,
            log_classification,
            workers_ai_billing_mode,
            store_id,
            dlp,
            guardrails,
            otel,
            spend_limits,
            stripe,
            models,
            regional_only,
            hostnames,
            cors,
            tpm_limit,
            identity_providers,
        })
    }

    /// The settings of a new gateway.
    pub fn into_new_settings(self) -> GatewaySettings {
        let mut base = GatewaySettings::for_default_gateway();
        base.authentication = false;
        self.apply_to(base)
    }

    /// Applies the body to `settings`: required fields replace, optional fields follow [`Field`]'s rules.
    pub fn apply_to(self, mut s: GatewaySettings) -> GatewaySettings {
        s.cache_invalidate_on_update = self.cache_invalidate_on_update;
        s.cache_ttl = self.cache_ttl;
        s.collect_logs = self.collect_logs;
        s.rate_limiting_interval = self.rate_limiting_interval;
        s.rate_limiting_limit = self.rate_limiting_limit;
        self.rate_limiting_technique
            .apply_to(&mut s.rate_limiting_technique);
        if s.rate_limiting_technique.is_none() {
            s.rate_limiting_technique = Some(RateLimitingTechnique::Fixed);
        }
        self.authentication
            .apply_with_default(&mut s.authentication, false);
        self.log_management.apply_to(&mut s.log_management);
        self.log_management_strategy
            .apply_to(&mut s.log_management_strategy);
        self.logpush.apply_with_default(&mut s.logpush, false);
        self.logpush_public_key.apply_to(&mut s.logpush_public_key);
        self.retry_max_attempts.apply_to(&mut s.retry_max_attempts);
        self.retry_delay.apply_to(&mut s.retry_delay);
        self.retry_backoff.apply_to(&mut s.retry_backoff);
        self.zdr.apply_with_default(&mut s.zdr, false);
        self.byok_only.apply_with_default(&mut s.byok_only, false);
        self.log_classification
            .apply_with_default(&mut s.log_classification, false);
        self.workers_ai_billing_mode
            .apply_to(&mut s.workers_ai_billing_mode);
        self.store_id.apply_to(&mut s.store_id);
        self.dlp.apply_to(&mut s.dlp);
        self.guardrails.apply_to(&mut s.guardrails);
        self.otel.apply_to(&mut s.otel);
        self.spend_limits.apply_to(&mut s.spend_limits);
        self.stripe.apply_to(&mut s.stripe);
        self.models.apply_to(&mut s.models);
        self.regional_only.apply_to(&mut s.regional_only);
        self.hostnames.apply_to(&mut s.hostnames);
        self.cors.apply_to(&mut s.cors);
        self.tpm_limit.apply_to(&mut s.tpm_limit);
        self.identity_providers.apply_to(&mut s.identity_providers);
        s
    }
}

/// Validates a nested policy value with `check`, which reports problems under `name`'s path.
fn nested(
    r: &mut FieldReader<'_>,
    name: &str,
    check: fn(&FieldReader<'_>, &str, &Value) -> Vec<FieldError>,
) -> Field<Value> {
    match r.raw(name) {
        Field::Absent => Field::Absent,
        Field::Null => Field::Null,
        Field::Set(v) => {
            let errors = check(r, name, v);
            if errors.is_empty() {
                Field::Set(v.clone())
            } else {
                r.extend(errors);
                Field::Absent
            }
        }
    }
}

fn expect_object<'v>(
    r: &FieldReader<'_>,
    name: &str,
    v: &'v Value,
) -> Result<&'v Map<String, Value>, Vec<FieldError>> {
    v.as_object().ok_or_else(|| {
        let mut tmp = r.nested(name, &EMPTY);
        tmp.error("", format!("Expected object, received {}", type_name(v)));
        trim_empty_segment(tmp.into_errors())
    })
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// `nested(..).error("")` leaves an empty last path segment; drop it so the path names the object itself.
fn trim_empty_segment(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    for e in &mut errors {
        if e.path.last().is_some_and(String::is_empty) {
            e.path.pop();
        }
    }
    errors
}

fn validate_string_array(r: &mut FieldReader<'_>, name: &str, required: bool) {
    match r.array(name) {
        Field::Set(items) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    r.error(
                        name,
                        format!("item {i}: Expected string, received {}", type_name(item)),
                    );
                }
            }
        }
        Field::Absent | Field::Null if required => {
            r.error(name, "Required: expected array of strings")
        }
        _ => {}
    }
}

fn validate_dlp(parent: &FieldReader<'_>, name: &str, v: &Value) -> Vec<FieldError> {
    let obj = match expect_object(parent, name, v) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut r = parent.nested(name, obj);
    r.bool("enabled");
    r.enumeration("action", &["BLOCK", "FLAG"]);
    validate_string_array(&mut r, "profiles", false);
    if let Field::Set(policies) = r.array("policies") {
        for (i, p) in policies.iter().enumerate() {
            let key = format!("policies.{i}");
            match p.as_object() {
                Some(po) => {
                    let mut pr = r.nested(&key, po);
                    pr.required_string("id", 1, 256);
                    if let Field::Absent = pr.enumeration("action", &["BLOCK", "FLAG"])
                        && !po.contains_key("action")
                    {
                        pr.error("action", "Required: expected 'BLOCK' | 'FLAG'");
                    }
                    match pr.array("check") {
                        Field::Set(checks) => {
                            if checks
                                .iter()
                                .any(|c| !matches!(c.as_str(), Some("REQUEST" | "RESPONSE")))
                            {
                                pr.error("check", "Expected an array of 'REQUEST' | 'RESPONSE'");
                            }
                        }
                        _ => pr.error("check", "Required: expected array"),
                    }
                    pr.required_bool("enabled");
                    validate_string_array(&mut pr, "profiles", true);
                    r.extend(pr.into_errors());
                }
                None => r.error(&key, format!("Expected object, received {}", type_name(p))),
            }
        }
    }
    r.into_errors()
}

fn validate_guardrails(parent: &FieldReader<'_>, name: &str, v: &Value) -> Vec<FieldError> {
    let obj = match expect_object(parent, name, v) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut r = parent.nested(name, obj);
    for phase in ["prompt", "response"] {
        match r.object(phase) {
            Field::Set(map) => {
                for (category, action) in map {
                    if !GUARDRAIL_CATEGORIES.contains(&category.as_str()) {
                        r.error(
                            phase,
                            format!("Unknown category '{category}': expected S1..S13 or P1"),
                        );
                    } else if !matches!(action.as_str(), Some("FLAG" | "BLOCK")) {
                        r.error(
                            phase,
                            format!("Category '{category}': expected 'FLAG' | 'BLOCK'"),
                        );
                    }
                }
            }
            _ => r.error(phase, "Required: expected object"),
        }
    }
    r.into_errors()
}

fn validate_otel(parent: &FieldReader<'_>, name: &str, v: &Value) -> Vec<FieldError> {
    let Some(items) = v.as_array() else {
        let mut tmp = parent.nested(name, &EMPTY);
        tmp.error("", format!("Expected array, received {}", type_name(v)));
        return trim_empty_segment(tmp.into_errors());
    };
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = i.to_string();
        let holder = parent.nested(name, &EMPTY);
        match item.as_object() {
            Some(o) => {
                let mut r = holder.nested(&key, o);
                if let Some(url) = r.required_string("url", 1, 2048)
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    r.error("url", "Expected an http:// or https:// URL");
                }
                match r.object("headers") {
                    Field::Set(h) => {
                        if h.values().any(|v| !v.is_string()) {
                            r.error("headers", "Expected an object of string values");
                        }
                    }
                    _ => r.error("headers", "Required: expected object"),
                }
                r.string("authorization", 1, 4096);
                r.enumeration("content_type", &["json", "protobuf"]);
                errors.extend(r.into_errors());
            }
            None => {
                let mut r = holder;
                r.error(
                    &key,
                    format!("Expected object, received {}", type_name(item)),
                );
                errors.extend(r.into_errors());
            }
        }
    }
    errors
}

fn validate_spend_limits(parent: &FieldReader<'_>, name: &str, v: &Value) -> Vec<FieldError> {
    let obj = match expect_object(parent, name, v) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut r = parent.nested(name, obj);
    r.bool("enabled");
    if let Field::Set(rules) = r.array("rules") {
        if rules.len() > MAX_SPEND_RULES {
            r.error(
                "rules",
                format!("At most {MAX_SPEND_RULES} rules per gateway"),
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let key = format!("rules.{i}");
            let Some(ro) = rule.as_object() else {
                r.error(
                    &key,
                    format!("Expected object, received {}", type_name(rule)),
                );
                continue;
            };
            let mut rr = r.nested(&key, ro);
            rr.string("id", 1, 64);
            rr.bool("enabled");
            if let Field::Absent | Field::Null = rr.number("limit", 0.0, f64::MAX)
                && ro.get("limit").is_none_or(Value::is_null)
            {
                rr.error("limit", "Required: expected number");
            }
            if !matches!(ro.get("limitType").and_then(Value::as_str), Some("cost")) {
                rr.error("limitType", "Expected 'cost'");
            }
            if let Field::Absent | Field::Null = rr.int("window", 0, i64::from(u32::MAX))
                && ro.get("window").is_none_or(Value::is_null)
            {
                rr.error("window", "Required: expected integer");
            }
            rr.enumeration("technique", &["fixed", "sliding"]);
            for dim in ["model", "provider"] {
                if let Field::Set(d) = rr.object(dim) {
                    let mut dr = rr.nested(dim, d);
                    if !matches!(d.get("mode").and_then(Value::as_str), Some("filter")) {
                        dr.error("mode", "Expected 'filter'");
                    }
                    validate_string_array(&mut dr, "values", true);
                    rr.extend(dr.into_errors());
                }
            }
            if let Field::Set(meta) = rr.object("metadata") {
                for (key, dim) in meta {
                    let mode = dim.get("mode").and_then(Value::as_str);
                    let ok = match mode {
                        Some("partition") => true,
                        Some("filter") => dim.get("values").and_then(Value::as_array).is_some(),
                        _ => false,
                    };
                    if !ok {
                        rr.error("metadata", format!("Key '{key}': expected {{mode:'partition'}} or {{mode:'filter',values:[..]}}"));
                    }
                }
            }
            r.extend(rr.into_errors());
        }
    }
    r.into_errors()
}

fn validate_stripe(parent: &FieldReader<'_>, name: &str, v: &Value) -> Vec<FieldError> {
    let obj = match expect_object(parent, name, v) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut r = parent.nested(name, obj);
    r.required_string("authorization", 1, 4096);
    match r.array("usage_events") {
        Field::Set(events) => {
            if events
                .iter()
                .any(|e| !e.get("payload").is_some_and(Value::is_string))
            {
                r.error("usage_events", "Expected an array of {payload: string}");
            }
        }
        _ => r.error("usage_events", "Required: expected array"),
    }
    r.into_errors()
}

#[cfg(test)]
mod tests;
