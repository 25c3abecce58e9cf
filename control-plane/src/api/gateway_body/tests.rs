//! Unit tests of the gateway body readers.

use super::*;
use serde_json::json;

fn read(body: Value, kind: BodyKind) -> Result<GatewayChanges, Vec<String>> {
    GatewayChanges::read(body.as_object().unwrap(), kind).map_err(|e| match e {
        Error::Validation(v) => v.into_iter().map(|f| f.path.join(".")).collect(),
        other => vec![other.to_string()],
    })
}

fn minimal() -> Value {
    json!({"id":"gw","cache_invalidate_on_update":true,"cache_ttl":0,"collect_logs":true,
           "rate_limiting_interval":0,"rate_limiting_limit":0})
}

#[test]
fn the_sdk_example_body_creates_a_gateway() {
    let s = read(minimal(), BodyKind::Create)
        .unwrap()
        .into_new_settings();
    assert!(s.collect_logs);
    assert!(!s.authentication);
    assert_eq!(
        s.rate_limiting_technique,
        Some(RateLimitingTechnique::Fixed)
    );
}

#[test]
fn each_required_field_missing_is_reported_by_name() {
    for field in [
        "id",
        "cache_invalidate_on_update",
        "cache_ttl",
        "collect_logs",
        "rate_limiting_interval",
        "rate_limiting_limit",
    ] {
        let mut body = minimal();
        body.as_object_mut().unwrap().remove(field);
        assert_eq!(
            read(body, BodyKind::Create).unwrap_err(),
            vec![field.to_owned()],
            "{field}"
        );
    }
}

#[test]
fn out_of_range_and_wrong_enum_values_are_rejected() {
    let cases = [
        ("cache_ttl", json!(-1)),
        ("retry_max_attempts", json!(6)),
        ("retry_max_attempts", json!(0)),
        ("retry_delay", json!(5001)),
        ("log_management", json!(9_999)),
        ("log_management_strategy", json!("DELETE_NEWEST")),
        ("rate_limiting_technique", json!("leaky")),
        ("logpush_public_key", json!("short")),
        ("authentication", json!("yes")),
        (
            "dlp",
            json!({"policies":[{"id":"p","action":"DROP","check":["REQUEST"],"enabled":true,"profiles":[]}]}),
        ),
        (
            "guardrails",
            json!({"prompt":{"S99":"BLOCK"},"response":{}}),
        ),
        ("otel", json!([{"url":"ftp://x","headers":{}}])),
        (
            "spend_limits",
            json!({"rules":[{"limit":-1,"limitType":"cost","window":60}]}),
        ),
        ("stripe", json!({"authorization":"k"})),
    ];
    for (field, value) in cases {
        let mut body = minimal();
        body[field] = value.clone();
        let errs = read(body, BodyKind::Create).unwrap_err();
        assert!(
            errs.iter().all(|p| p.starts_with(field)),
            "{field}={value}: {errs:?}"
        );
    }
}

#[test]
fn the_full_terraform_superset_is_accepted() {
    let mut body = minimal();
    let extra = json!({
        "authentication": true, "log_management": 10000, "log_management_strategy": "DELETE_OLDEST",
        "logpush": false, "logpush_public_key": null, "rate_limiting_technique": "sliding",
        "retry_backoff": "exponential", "retry_delay": 500, "retry_max_attempts": 3, "store_id": null,
        "workers_ai_billing_mode": "postpaid", "zdr": false,
        "dlp": {"enabled": true, "action": "FLAG", "profiles": ["p1"]},
        "guardrails": {"prompt": {"S1": "BLOCK", "P1": "FLAG"}, "response": {}},
        "otel": [{"url": "https://otel.example/v1/traces", "headers": {"x": "y"}, "content_type": "json"}],
        "spend_limits": {"enabled": true, "rules": [{"id": "6fb25042", "limit": 10, "limitType": "cost",
            "window": 86400, "technique": "sliding", "model": {"mode": "filter", "values": ["gpt-4o"]},
            "metadata": {"user": {"mode": "partition"}}}]},
        "stripe": {"authorization": "sk", "usage_events": [{"payload": "{}"}]},
        "is_default": false, "account_tag": "ignored"
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let s = read(body, BodyKind::Create).unwrap().into_new_settings();
    assert!(s.authentication);
    assert_eq!(s.retry_backoff, Some(RetryBackoff::Exponential));
    assert!(s.spend_limits.is_some());
}

fn extensions() -> Value {
    json!({
        "models": [
            {"name": "gpt-5", "target": "openai/gpt-5", "type": "chat", "location": "global"},
            {"name": "embed", "target": "openai/text-embedding-3-small", "type": "embedding", "location": "regional"}
        ],
        "regional_only": true,
        "hostnames": ["AI.Example.com", "llm.example.org"],
        "cors": {"allowed_origins": ["https://app.example.com", "https://*.example.org", "*"]},
        "tpm_limit": 250000
    })
}

#[test]
fn gatehouse_extensions_are_read_typed_and_normalised() {
    let mut body = minimal();
    body.as_object_mut()
        .unwrap()
        .extend(extensions().as_object().unwrap().clone());
    let s = read(body, BodyKind::Create).unwrap().into_new_settings();
    let models = s.models.unwrap();
    assert_eq!(models[1].name, "embed");
    assert_eq!(
        models[1].model_type,
        gatehouse_shared::gateway::CatalogModelType::Embedding
    );
    assert_eq!(s.regional_only, Some(true));
    assert_eq!(s.hostnames.unwrap(), ["ai.example.com", "llm.example.org"]);
    assert_eq!(s.cors.unwrap().allowed_origins.len(), 3);
    assert_eq!(s.tpm_limit, Some(250_000));
    let plain = read(minimal(), BodyKind::Create)
        .unwrap()
        .into_new_settings();
    let v = serde_json::to_value(&plain).unwrap();
    for field in ["models", "regional_only", "hostnames", "cors", "tpm_limit"] {
        assert!(v.get(field).is_none(), "{field} must be absent when unset");
    }
}

#[test]
fn put_keeps_omitted_extensions_and_clears_explicit_nulls() {
    let mut body = minimal();
    body.as_object_mut()
        .unwrap()
        .extend(extensions().as_object().unwrap().clone());
    let stored = read(body, BodyKind::Create).unwrap().into_new_settings();
    let kept = read(minimal(), BodyKind::Replace)
        .unwrap()
        .apply_to(stored.clone());
    assert_eq!(kept, stored);
    let mut nulls = minimal();
    for field in ["models", "regional_only", "hostnames", "cors", "tpm_limit"] {
        nulls[field] = Value::Null;
    }
    let cleared = read(nulls, BodyKind::Replace).unwrap().apply_to(stored);
    assert_eq!(
        (
            cleared.models,
            cleared.regional_only,
            cleared.hostnames,
            cleared.cors,
            cleared.tpm_limit
        ),
        (None, None, None, None, None)
    );
}

#[test]
fn bad_extension_values_are_reported_at_their_paths() {
    let model = |name: &str, target: &str| json!({"name": name, "target": target, "type": "chat", "location": "global"});
    let cases = [
        ("models", json!({"name": "x"}), "models"),
        ("models", json!([1]), "models.0"),
        ("models", json!([model("a b", "openai/x")]), "models.0.name"),
        (
            "models",
            json!([model("openai/x", "openai/x")]),
            "models.0.name",
        ),
        ("models", json!([model("a", "nope/x")]), "models.0.target"),
        ("models", json!([model("a", "openai")]), "models.0.target"),
        (
            "models",
            json!([model("a", "compat/openai/x")]),
            "models.0.target",
        ),
        (
            "models",
            json!([model("a", "openai/x"), model("a", "openai/y")]),
            "models.1.name",
        ),
        (
            "models",
            json!([{"name": "a", "target": "openai/x", "type": "image", "location": "global"}]),
            "models.0.type",
        ),
        (
            "models",
            json!([{"name": "a", "target": "openai/x", "type": "chat"}]),
            "models.0.location",
        ),
        ("regional_only", json!("yes"), "regional_only"),
        ("hostnames", json!("ai.example.com"), "hostnames"),
        ("hostnames", json!(["ai.example.com:443"]), "hostnames.0"),
        (
            "hostnames",
            json!(["a.example.com", "A.example.com"]),
            "hostnames.1",
        ),
        ("hostnames", json!([true]), "hostnames.0"),
        ("cors", json!(["*"]), "cors"),
        ("cors", json!({}), "cors.allowed_origins"),
        (
            "cors",
            json!({"allowed_origins": "*"}),
            "cors.allowed_origins",
        ),
        (
            "cors",
            json!({"allowed_origins": ["https://a.example.com/"]}),
            "cors.allowed_origins.0",
        ),
        ("tpm_limit", json!(0), "tpm_limit"),
        ("tpm_limit", json!(-5), "tpm_limit"),
        ("tpm_limit", json!(1.5), "tpm_limit"),
        ("tpm_limit", json!("1000"), "tpm_limit"),
        ("tpm_limit", json!(1_000_000_000_001_i64), "tpm_limit"),
    ];
    for (field, value, path) in cases {
        let mut body = minimal();
        body[field] = value.clone();
        let errs = read(body, BodyKind::Create).unwrap_err();
        assert_eq!(errs, vec![path.to_owned()], "{field}={value}");
    }
    for (field, n) in [("models", 1001), ("hostnames", 33)] {
        let mut body = minimal();
        body[field] = Value::Array(vec![json!("x"); n]);
        let errs = read(body, BodyKind::Create).unwrap_err();
        assert_eq!(errs, vec![field.to_owned()], "{field} × {n}");
    }
    let mut body = minimal();
    body["cors"] = json!({"allowed_origins": vec!["*"; 65]});
    let errs = read(body, BodyKind::Create).unwrap_err();
    assert_eq!(errs, vec!["cors.allowed_origins".to_owned()]);
}

#[test]
fn identity_providers_are_read_with_defaults_and_bad_ones_are_named_by_path() {
    use gatehouse_shared::gateway::{DpopMode, JwtAlgorithm};
    let provider = |extra: Value| {
        let mut p = json!({"issuer": "https://idp.example.com", "audience": "gatehouse",
            "jwks_url": "https://idp.example.com/jwks"});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let mut body = minimal();
    body["identity_providers"] = json!([
        provider(json!({})),
        provider(
            json!({"issuer": "https://other.example.com", "audience": ["a", "b"],
            "jwks_url": "http://127.0.0.1:9999/jwks", "algorithms": ["EdDSA"], "user_claim": "email",
            "team_claim": "groups", "dpop": "required", "leeway_seconds": 0})
        ),
    ]);
    let s = read(body, BodyKind::Create).unwrap().into_new_settings();
    let providers = s.identity_providers.unwrap();
    let first = &providers[0];
    assert_eq!(first.audience, ["gatehouse"]);
    assert_eq!(first.algorithms, [JwtAlgorithm::Rs256, JwtAlgorithm::Es256]);
    assert_eq!(
        (
            first.user_claim.as_str(),
            &first.team_claim,
            first.dpop,
            first.leeway_seconds
        ),
        ("sub", &None, DpopMode::Optional, 60)
    );
    let second = &providers[1];
    assert_eq!(second.audience, ["a", "b"]);
    assert_eq!(
        (
            second.user_claim.as_str(),
            second.team_claim.as_deref(),
            second.dpop
        ),
        ("email", Some("groups"), DpopMode::Required)
    );
    assert_eq!(second.leeway_seconds, 0);

    let cases = [
        (
            json!({"issuer": "https://idp.example.com"}),
            "identity_providers",
        ),
        (json!([1]), "identity_providers.0"),
        (
            json!([provider(json!({"issuer": ""}))]),
            "identity_providers.0.issuer",
        ),
        (
            json!([provider(json!({"issuer": "gatehouse"}))]),
            "identity_providers.0.issuer",
        ),
        (
            json!([provider(json!({})), provider(json!({}))]),
            "identity_providers.1.issuer",
        ),
        (
            json!([provider(json!({"audience": []}))]),
            "identity_providers.0.audience",
        ),
        (
            json!([provider(json!({"audience": 5}))]),
            "identity_providers.0.audience",
        ),
        (
            json!([provider(json!({"audience": null}))]),
            "identity_providers.0.audience",
        ),
        (
            json!([provider(json!({"audience": ["a", 1]}))]),
            "identity_providers.0.audience.1",
        ),
        (
            json!([provider(json!({"jwks_url": "http://idp.example.com/jwks"}))]),
            "identity_providers.0.jwks_url",
        ),
        (
            json!([provider(json!({"algorithms": []}))]),
            "identity_providers.0.algorithms",
        ),
        (
            json!([provider(json!({"algorithms": ["HS256"]}))]),
            "identity_providers.0.algorithms.0",
        ),
        (
            json!([provider(json!({"algorithms": ["RS256", "RS256"]}))]),
            "identity_providers.0.algorithms.1",
        ),
        (
            json!([provider(json!({"user_claim": ""}))]),
            "identity_providers.0.user_claim",
        ),
        (
            json!([provider(json!({"team_claim": "a b"}))]),
            "identity_providers.0.team_claim",
        ),
        (
            json!([provider(json!({"dpop": "always"}))]),
            "identity_providers.0.dpop",
        ),
        (
            json!([provider(json!({"leeway_seconds": 301}))]),
            "identity_providers.0.leeway_seconds",
        ),
    ];
    for (value, path) in cases {
        let mut body = minimal();
        body["identity_providers"] = value.clone();
        let errs = read(body, BodyKind::Create).unwrap_err();
        assert_eq!(errs, vec![path.to_owned()], "{value}");
    }
    let mut body = minimal();
    body["identity_providers"] = Value::Array(vec![provider(json!({})); 9]);
    let errs = read(body, BodyKind::Create).unwrap_err();
    assert_eq!(errs, vec!["identity_providers".to_owned()]);
    let mut body = minimal();
    body["identity_providers"] = json!([provider(json!({}))]);
    let stored = read(body, BodyKind::Create).unwrap().into_new_settings();
    let mut nulls = minimal();
    nulls["identity_providers"] = Value::Null;
    let cleared = read(nulls, BodyKind::Replace).unwrap().apply_to(stored);
    assert_eq!(cleared.identity_providers, None);
}

#[test]
fn put_keeps_omitted_optionals_and_resets_explicit_nulls() {
    let mut stored = GatewaySettings::for_default_gateway();
    stored.retry_delay = Some(100);
    stored.retry_max_attempts = Some(3);
    let mut body = minimal();
    body["retry_delay"] = Value::Null;
    let s = read(body, BodyKind::Replace).unwrap().apply_to(stored);
    assert_eq!(s.retry_delay, None);
    assert_eq!(s.retry_max_attempts, Some(3));
    assert!(
        s.authentication,
        "omitted authentication must not silently switch off"
    );
}
