//! Gateway CRUD, the URL endpoint, account isolation and cache invalidation on update.

use gatehouse_bus::{ConfigBus, GatewayEntry, StoredDocument};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, minimal_gateway};

on_both_backends!(
    a_gateway_goes_through_create_get_update_and_delete,
    created_gateways_carry_every_response_field,
    the_full_terraform_body_is_accepted_on_create_and_returned,
    put_keeps_omitted_optional_fields_and_resets_explicit_nulls,
    put_tolerates_the_same_id_in_the_body_and_refuses_another,
    a_duplicate_id_is_400_with_code_5403,
    unknown_gateways_are_404_on_every_route,
    the_url_endpoint_returns_the_data_plane_url_of_a_provider,
    one_account_never_sees_another_accounts_gateways,
    the_same_gateway_id_may_exist_in_two_accounts,
    updates_that_change_settings_raise_the_cache_generation_only_when_asked_to,
    concurrent_writes_all_succeed,
);

async fn a_gateway_goes_through_create_get_update_and_delete(app: TestApp) {
    let created = app.create_gateway("acme", "my-gateway").await;
    assert_eq!(created["id"], "my-gateway");
    assert_eq!(created["cache_ttl"], 0);

    let (status, got) = app.get(&app.gw_url("acme", "/gateways/my-gateway")).await;
    assert_eq!(status, 200);
    assert_eq!(got["success"], true);
    assert_eq!(got["errors"], json!([]));
    assert_eq!(got["result"], created);

    let mut update = minimal_gateway("my-gateway");
    update["cache_ttl"] = json!(300);
    update["collect_logs"] = json!(false);
    update["authentication"] = json!(true);
    update["retry_max_attempts"] = json!(3);
    let (status, updated) = app
        .put(&app.gw_url("acme", "/gateways/my-gateway"), &update)
        .await;
    assert_eq!(status, 200, "{updated}");
    let updated = &updated["result"];
    assert_eq!(updated["cache_ttl"], 300);
    assert_eq!(updated["collect_logs"], false);
    assert_eq!(updated["authentication"], true);
    assert_eq!(updated["retry_max_attempts"], 3);
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(updated["internal_id"], created["internal_id"]);

    let (_, got) = app.get(&app.gw_url("acme", "/gateways/my-gateway")).await;
    assert_eq!(&got["result"], updated);

    let (status, deleted) = app
        .delete(&app.gw_url("acme", "/gateways/my-gateway"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        &deleted["result"], updated,
        "delete returns the deleted gateway"
    );
    let (status, body) = app.get(&app.gw_url("acme", "/gateways/my-gateway")).await;
    assert_error(status, &body, 404, 7003);
}

async fn created_gateways_carry_every_response_field(app: TestApp) {
    let g = app.create_gateway("acme", "fields").await;
    for field in [
        "id",
        "account_id",
        "account_tag",
        "internal_id",
        "is_default",
        "created_at",
        "modified_at",
        "cache_invalidate_on_update",
        "cache_ttl",
        "collect_logs",
        "rate_limiting_interval",
        "rate_limiting_limit",
        "rate_limiting_technique",
        "authentication",
        "log_management",
        "log_management_strategy",
        "logpush",
        "logpush_public_key",
        "retry_max_attempts",
        "retry_delay",
        "retry_backoff",
        "zdr",
        "workers_ai_billing_mode",
        "store_id",
        "dlp",
        "guardrails",
        "otel",
        "spend_limits",
        "stripe",
    ] {
        assert!(g.get(field).is_some(), "missing {field} in {g}");
    }
    assert_eq!(g["account_id"], "acme");
    assert_eq!(g["account_tag"], "acme");
    assert_eq!(g["is_default"], false);
    assert_eq!(g["rate_limiting_technique"], "fixed");
    assert_eq!(g["workers_ai_billing_mode"], "postpaid");
    assert!(uuid::Uuid::parse_str(g["internal_id"].as_str().unwrap()).is_ok());
    let created =
        chrono::DateTime::parse_from_rfc3339(g["created_at"].as_str().unwrap()).expect("RFC 3339");
    assert!((chrono::Utc::now() - created.to_utc()).num_seconds().abs() < 60);
}

fn terraform_body(id: &str) -> Value {
    json!({
        "id": id, "cache_invalidate_on_update": false, "cache_ttl": 3600, "collect_logs": true,
        "rate_limiting_interval": 60, "rate_limiting_limit": 100, "rate_limiting_technique": "sliding",
        "authentication": true, "log_management": 100000, "log_management_strategy": "DELETE_OLDEST",
        "logpush": true, "logpush_public_key": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
        "retry_max_attempts": 5, "retry_delay": 1000, "retry_backoff": "linear", "zdr": true,
        "workers_ai_billing_mode": "postpaid", "store_id": "store-1", "byok_only": true,
        "dlp": {"enabled": true, "policies": [{"id": "p1", "action": "BLOCK", "check": ["REQUEST", "RESPONSE"],
                "enabled": true, "profiles": ["prof-1"]}]},
        "guardrails": {"prompt": {"S1": "BLOCK", "P1": "FLAG"}, "response": {"S10": "FLAG"}},
        "otel": [{"url": "https://collector.example/v1/traces", "headers": {"x-team": "ml"}, "content_type": "protobuf"}],
        "spend_limits": {"enabled": true, "rules": [{"id": "6fb25042", "enabled": true, "limit": 12.5,
                "limitType": "cost", "window": 86400, "technique": "fixed",
                "provider": {"mode": "filter", "values": ["openai"]},
                "metadata": {"team": {"mode": "partition"}}}]},
        "stripe": {"authorization": "sk_test", "usage_events": [{"payload": "{\"a\":1}"}]}
    })
}

async fn the_full_terraform_body_is_accepted_on_create_and_returned(app: TestApp) {
    let body = terraform_body("tf");
    let (status, created) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
    assert_eq!(status, 200, "{created}");
    let created = &created["result"];
    for (key, value) in body.as_object().unwrap() {
        assert_eq!(&created[key], value, "field {key}");
    }
}

async fn put_keeps_omitted_optional_fields_and_resets_explicit_nulls(app: TestApp) {
    let (status, _) = app
        .post(&app.gw_url("acme", "/gateways"), &terraform_body("keep"))
        .await;
    assert_eq!(status, 200);
    let mut update = minimal_gateway("keep");
    update.as_object_mut().unwrap().remove("id");
    update["retry_delay"] = Value::Null;
    update["dlp"] = Value::Null;
    let (status, updated) = app
        .put(&app.gw_url("acme", "/gateways/keep"), &update)
        .await;
    assert_eq!(status, 200, "{updated}");
    let updated = &updated["result"];
    assert_eq!(
        updated["authentication"], true,
        "an omitted authentication flag must not switch off"
    );
    assert_eq!(updated["retry_max_attempts"], 5);
    assert_eq!(updated["retry_delay"], Value::Null);
    assert_eq!(updated["dlp"], Value::Null);
    assert!(updated["guardrails"].is_object());
    assert_eq!(updated["cache_ttl"], 0, "required fields are replaced");
}

async fn put_tolerates_the_same_id_in_the_body_and_refuses_another(app: TestApp) {
    app.create_gateway("acme", "same").await;
    let (status, body) = app
        .put(
            &app.gw_url("acme", "/gateways/same"),
            &minimal_gateway("same"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(
            &app.gw_url("acme", "/gateways/same"),
            &minimal_gateway("other"),
        )
        .await;
    assert_error(status, &body, 400, 7001);
    assert_eq!(body["errors"][0]["path"], json!(["id"]));
}

async fn a_duplicate_id_is_400_with_code_5403(app: TestApp) {
    app.create_gateway("acme", "dup").await;
    let (status, body) = app
        .post(&app.gw_url("acme", "/gateways"), &minimal_gateway("dup"))
        .await;
    assert_error(status, &body, 400, 5403);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
}

async fn unknown_gateways_are_404_on_every_route(app: TestApp) {
    let url = app.gw_url("acme", "/gateways/nope");
    let (s, b) = app.get(&url).await;
    assert_error(s, &b, 404, 7003);
    let (s, b) = app.put(&url, &minimal_gateway("nope")).await;
    assert_error(s, &b, 404, 7003);
    let (s, b) = app.delete(&url).await;
    assert_error(s, &b, 404, 7003);
    let (s, b) = app
        .get(&app.gw_url("acme", "/gateways/nope/url/openai"))
        .await;
    assert_error(s, &b, 404, 7003);
}

async fn the_url_endpoint_returns_the_data_plane_url_of_a_provider(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    for provider in [
        "openai",
        "anthropic",
        "workers-ai",
        "custom-my-llm",
        "compat",
    ] {
        let (status, body) = app
            .get(&app.gw_url("acme", &format!("/gateways/gw/url/{provider}")))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["result"],
            format!("http://gateway.test:8787/v1/acme/gw/{provider}")
        );
    }
    let (s, b) = app
        .get(&app.gw_url("acme", "/gateways/gw/url/not-a-provider"))
        .await;
    assert_error(s, &b, 400, 7002);
}

async fn one_account_never_sees_another_accounts_gateways(app: TestApp) {
    app.create_gateway("acme", "secret").await;
    let (status, list) = app.get(&app.gw_url("globex", "/gateways")).await;
    assert_eq!(status, 200);
    assert_eq!(list["result"], json!([]));
    assert_eq!(list["result_info"]["total_count"], 0);
    let url = app.gw_url("globex", "/gateways/secret");
    let (s, b) = app.get(&url).await;
    assert_error(s, &b, 404, 7003);
    let (s, b) = app.put(&url, &minimal_gateway("secret")).await;
    assert_error(s, &b, 404, 7003);
    let (s, b) = app.delete(&url).await;
    assert_error(s, &b, 404, 7003);
    let (s, _) = app.get(&app.gw_url("acme", "/gateways/secret")).await;
    assert_eq!(s, 200, "the other account's calls changed nothing");
}

async fn the_same_gateway_id_may_exist_in_two_accounts(app: TestApp) {
    let a = app.create_gateway("acme", "shared-name").await;
    let b = app.create_gateway("globex", "shared-name").await;
    assert_ne!(a["internal_id"], b["internal_id"]);
    let (status, _) = app
        .delete(&app.gw_url("acme", "/gateways/shared-name"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get(&app.gw_url("globex", "/gateways/shared-name"))
        .await;
    assert_eq!(status, 200);
}

/// The cache generation of the gateway's document on the bus (the server publishes before it answers).
async fn published_cache_generation(app: &TestApp, account: &str, id: &str) -> i64 {
    let key = GatewayKey::new(account, id);
    let entry = app
        .bus
        .fetch_gateways(std::slice::from_ref(&key))
        .await
        .unwrap()
        .remove(0);
    match entry {
        Some(GatewayEntry::Document(StoredDocument { body, .. })) => {
            serde_json::from_str::<GatewayConfigDocument>(&body)
                .unwrap()
                .cache_generation
        }
        other => panic!("expected a document, got {other:?}"),
    }
}

async fn updates_that_change_settings_raise_the_cache_generation_only_when_asked_to(app: TestApp) {
    let created = app.create_gateway("acme", "cached").await;
    assert_eq!(created["cache_invalidate_on_update"], true);
    assert_eq!(published_cache_generation(&app, "acme", "cached").await, 0);
    app.create_gateway("acme", "bystander").await;

    let url = app.gw_url("acme", "/gateways/cached");
    let mut body = minimal_gateway("cached");
    let put = async |body: &Value| {
        let (status, answer) = app.put(&url, body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["result"].get("cache_generation").is_none(),
            "internal, not part of the API: {answer}"
        );
        published_cache_generation(&app, "acme", "cached").await
    };

    body["cache_ttl"] = json!(300);
    assert_eq!(put(&body).await, 1, "settings changed");
    assert_eq!(
        put(&body).await,
        1,
        "the same settings again change nothing"
    );

    body["spend_limits"] =
        json!({"enabled": true, "rules": [{"limit": 5, "limitType": "cost", "window": 60}]});
    assert_eq!(put(&body).await, 2, "a nested object changed");
    body.as_object_mut().unwrap().remove("spend_limits");
    assert_eq!(
        put(&body).await,
        2,
        "an omitted object keeps its stored value"
    );

    body["cache_invalidate_on_update"] = json!(false);
    body["cache_ttl"] = json!(600);
    assert_eq!(put(&body).await, 2, "not asked to invalidate");
    body["cache_ttl"] = json!(900);
    assert_eq!(put(&body).await, 2, "still not asked to");

    body["cache_invalidate_on_update"] = json!(true);
    assert_eq!(
        put(&body).await,
        3,
        "switching it on is a change of settings that asks for it"
    );

    assert_eq!(
        published_cache_generation(&app, "acme", "bystander").await,
        0,
        "other gateways keep theirs"
    );
}

/// 32 clients creating and then updating their own gateway at once, as Terraform applies (ten at a time by
/// default): every call succeeds. On SQLite most updates used to fail with "database is locked" (500): a
/// transaction that read and then wrote could not wait for another writer's lock.
async fn concurrent_writes_all_succeed(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let writers: Vec<_> = (0..32)
        .map(|i| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                let id = format!("g{i}");
                let mut body = minimal_gateway(&id);
                let (created, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
                assert_eq!(created, 200, "create {id}: {resp}");
                body["cache_ttl"] = json!(60 + i);
                let (updated, resp) = app
                    .send(
                        reqwest::Method::PUT,
                        &app.gw_url("acme", &format!("/gateways/{id}")),
                        Some(&app.admin_token),
                        Some(&body.to_string()),
                    )
                    .await;
                assert_eq!(updated, 200, "update {id}: {resp}");
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for i in 0..32 {
        let (_, got) = app
            .get(&app.gw_url("acme", &format!("/gateways/g{i}")))
            .await;
        assert_eq!(got["result"]["cache_ttl"], 60 + i);
    }
}
