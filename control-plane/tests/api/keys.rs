//! Virtual keys (issue 14): the lifecycle through the API (the secret shown once, rotation, revocation), what the
//! published gateway documents carry, validation, account isolation and scopes.

use std::sync::Arc;

use gatehouse_bus::{ConfigBus, GatewayEntry, StoredDocument};
use gatehouse_control_plane::propagation::{ConfigPublisher, Reconciler, ReconcilerSettings};
use gatehouse_shared::access::{BudgetPeriod, TpmKind, secret_hash};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::token::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    a_key_goes_through_create_get_patch_rotate_and_revoke,
    the_published_documents_carry_each_gateway_s_working_keys_and_every_user_and_team,
    bad_key_bodies_are_400s_naming_the_field,
    keys_of_another_account_are_404_and_its_users_cannot_be_named,
    reading_keys_needs_the_read_scope_and_writing_them_the_edit_scope,
    key_lists_page_search_by_name_and_leave_revoked_keys_out,
);

pub async fn patch(app: &TestApp, url: &str, body: &Value) -> (u16, Value) {
    app.send(
        Method::PATCH,
        url,
        Some(&app.admin_token),
        Some(&body.to_string()),
    )
    .await
}

/// The published document of `account/gateway`.
pub async fn published(app: &TestApp, account: &str, gateway: &str) -> GatewayConfigDocument {
    let key = GatewayKey::new(account, gateway);
    match app
        .bus
        .fetch_gateways(std::slice::from_ref(&key))
        .await
        .unwrap()
        .remove(0)
    {
        Some(GatewayEntry::Document(StoredDocument { body, .. })) => {
            serde_json::from_str(&body).unwrap()
        }
        other => panic!("expected a document for {key}, got {other:?}"),
    }
}

/// Creates a key; panics unless it succeeds. Returns the result (with the secret in `key`).
pub async fn create_key(app: &TestApp, account: &str, body: &Value) -> Value {
    let (status, created) = app.post(&app.gw_url(account, "/keys"), body).await;
    assert_eq!(status, 200, "{created}");
    created["result"].clone()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn a_key_goes_through_create_get_patch_rotate_and_revoke(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let url = app.gw_url("acme", "/keys");
    let created = create_key(
        &app,
        "acme",
        &json!({"name": "ci", "models": ["openai/*"], "metadata": {"owner": "ci", "n": 3, "on": true},
            "limits": {"rpm": 60, "tpm": 1000, "tpm_kind": "output",
                "budget": {"amount_usd": 12.5, "period": "month"},
                "models": [{"model": "openai/gpt-4o*", "rpm": 5}]}}),
    )
    .await;
    let id = id_of(&created);
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ghk_"), "{created}");
    let preview = created["preview"].as_str().unwrap();
    assert!(
        preview.starts_with("ghk_") && preview.contains('…') && preview.len() < secret.len(),
        "{preview}"
    );
    assert!(
        !preview.contains(&secret[4..20]),
        "the preview does not reveal the secret"
    );
    assert_eq!(created["gateways"], json!([]));
    assert_eq!(created["user_id"], Value::Null);
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(created["revoked"], false);
    assert_eq!(
        created["metadata"],
        json!({"owner": "ci", "n": 3, "on": true})
    );
    assert_eq!(
        created["limits"],
        json!({"rpm": 60, "tpm": 1000, "tpm_kind": "output",
            "budget": {"amount_usd": 12.5, "period": "month"},
            "models": [{"model": "openai/gpt-4o*", "rpm": 5, "tpm": null, "budget": null}]})
    );

    // The document carries the hash, never the secret.
    let doc = published(&app, "acme", "prod").await;
    let entry = &doc.access.keys[0];
    assert_eq!(entry.id, id);
    assert_eq!(entry.secret_hash, secret_hash(&secret));
    assert_eq!(entry.models, ["openai/*"]);
    assert_eq!(entry.limits.rpm, Some(60));
    assert_eq!(entry.limits.tpm_kind, TpmKind::Output);
    assert_eq!(
        entry.limits.budget.as_ref().unwrap().period,
        BudgetPeriod::Month
    );
    let stored_body = app
        .bus
        .fetch_gateways(&[GatewayKey::new("acme", "prod")])
        .await
        .unwrap()
        .remove(0);
    assert!(
        !format!("{stored_body:?}").contains(&secret),
        "the secret is never published"
    );

    // Get and list never show the secret.
    let (status, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(status, 200, "{got}");
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("key");
    assert_eq!(got["result"], without_secret);
    let (_, list) = app.get(&url).await;
    assert_eq!(list["result"], json!([without_secret]));
    assert!(!list.to_string().contains(&secret) && !got.to_string().contains(&secret));

    // PATCH: omitted fields keep their values, null resets, limits are replaced whole.
    let (status, patched) = patch(
        &app,
        &format!("{url}/{id}"),
        &json!({"name": "ci-2", "models": null, "gateways": ["prod"], "limits": {"tpm": 10},
            "expires_at": "2100-01-01T00:00:00Z", "an_unknown_field": 1}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let patched = &patched["result"];
    assert!(patched.get("key").is_none(), "{patched}");
    assert_eq!(patched["name"], "ci-2");
    assert_eq!(patched["models"], json!([]));
    assert_eq!(patched["gateways"], json!(["prod"]));
    assert_eq!(patched["metadata"], created["metadata"]);
    assert_eq!(
        patched["limits"],
        json!({"rpm": null, "tpm": 10, "tpm_kind": "total", "budget": null, "models": []})
    );
    assert_eq!(patched["expires_at"], "2100-01-01T00:00:00.000Z");
    assert_eq!(
        patched["preview"], created["preview"],
        "a PATCH keeps the secret"
    );
    assert!(patched["modified_at"].as_str() >= created["modified_at"].as_str());
    let doc = published(&app, "acme", "prod").await;
    assert_eq!(doc.access.keys[0].name, "ci-2");
    assert_eq!(doc.access.keys[0].expires_at_ms, Some(4_102_444_800_000));
    assert_eq!(doc.access.keys[0].secret_hash, secret_hash(&secret));

    // Rotate: a new secret, shown once; the document carries only the new hash.
    let (status, rotated) = app.post(&format!("{url}/{id}/rotate"), &json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["result"]["key"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("ghk_") && new_secret != secret);
    assert_ne!(rotated["result"]["preview"], created["preview"]);
    assert_eq!(rotated["result"]["name"], "ci-2");
    let doc = published(&app, "acme", "prod").await;
    assert_eq!(doc.access.keys.len(), 1);
    assert_eq!(doc.access.keys[0].secret_hash, secret_hash(&new_secret));
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert!(got["result"].get("key").is_none());
    assert_eq!(got["result"]["preview"], rotated["result"]["preview"]);

    // Revoke: the key leaves the document and the default list, and stays readable.
    let (status, revoked) = app.delete(&format!("{url}/{id}")).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["result"]["revoked"], true);
    assert!(revoked["result"].get("key").is_none());
    assert!(published(&app, "acme", "prod").await.access.keys.is_empty());
    let (status, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["result"]["revoked"], true);
    let (_, list) = app.get(&url).await;
    assert_eq!(list["result"], json!([]));
    assert_eq!(list["result_info"]["total_count"], 0);
    let (_, list) = app.get(&format!("{url}?include_revoked=true")).await;
    assert_eq!(list["result"][0]["id"], id.as_str());

    // A revoked key cannot be changed or rotated; revoking it again changes nothing.
    let (status, resp) = patch(&app, &format!("{url}/{id}"), &json!({"name": "back"})).await;
    assert_error(status, &resp, 400, 7002);
    let (status, resp) = app.post(&format!("{url}/{id}/rotate"), &json!({})).await;
    assert_error(status, &resp, 400, 7002);
    let (status, again) = app.delete(&format!("{url}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(again["result"], revoked["result"]);

    // Unknown ids.
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::PATCH, ""),
        (Method::DELETE, ""),
        (Method::POST, "/rotate"),
    ] {
        let (status, resp) = app
            .send(
                method.clone(),
                &format!("{url}/no-such-key{suffix}"),
                Some(&app.admin_token),
                Some("{}"),
            )
            .await;
        assert_error(status, &resp, 404, 7003);
    }
}

async fn the_published_documents_carry_each_gateway_s_working_keys_and_every_user_and_team(
    app: TestApp,
) {
    app.create_gateway("acme", "prod").await;
    app.create_gateway("acme", "staging").await;
    let (_, team) = app
        .post(
            &app.gw_url("acme", "/teams"),
            &json!({"name": "research", "limits": {"tpm": 500}}),
        )
        .await;
    let team_id = id_of(&team["result"]);
    let (_, user) = app
        .post(
            &app.gw_url("acme", "/users"),
            &json!({"name": "alice", "team_id": team_id, "limits": {"rpm": 7}}),
        )
        .await;
    let user_id = id_of(&user["result"]);
    let everywhere = create_key(
        &app,
        "acme",
        &json!({"name": "everywhere", "user_id": user_id}),
    )
    .await;
    let prod_only = create_key(
        &app,
        "acme",
        &json!({"name": "prod-only", "gateways": ["prod"], "expires_at": "2100-01-01T00:00:00Z"}),
    )
    .await;
    let staging_only = create_key(
        &app,
        "acme",
        &json!({"name": "staging-only", "gateways": ["staging"], "team_id": team_id}),
    )
    .await;
    let soon_expired = create_key(
        &app,
        "acme",
        &json!({"name": "expiring", "expires_at": "2100-01-01T00:00:00Z"}),
    )
    .await;
    let revoked = create_key(&app, "acme", &json!({"name": "revoked"})).await;
    app.delete(&app.gw_url("acme", &format!("/keys/{}", id_of(&revoked))))
        .await;
    // Another account's keys never appear.
    app.create_gateway("globex", "prod").await;
    create_key(&app, "globex", &json!({"name": "theirs"})).await;

    // Expired without any write: the next document leaves it out (nodes check the expiry themselves meanwhile).
    app.db
        .with_conn(|c| {
            use diesel::RunQueryDsl as _;
            diesel::sql_query(format!(
                "UPDATE virtual_keys SET expires_at = 1000 WHERE id = '{}'",
                id_of(&soon_expired)
            ))
            .execute(c)?;
            Ok(())
        })
        .unwrap();
    let publisher = ConfigPublisher::new(app.db.clone(), Arc::new(app.bus.clone()));
    publisher.publish_account("acme").await.unwrap();

    let ids = |doc: &GatewayConfigDocument| -> Vec<String> {
        doc.access.keys.iter().map(|k| k.name.clone()).collect()
    };
    let prod = published(&app, "acme", "prod").await;
    let mut names = ids(&prod);
    names.sort();
    assert_eq!(names, ["everywhere", "prod-only"]);
    let staging = published(&app, "acme", "staging").await;
    let mut names = ids(&staging);
    names.sort();
    assert_eq!(names, ["everywhere", "staging-only"]);
    for doc in [&prod, &staging] {
        assert_eq!(doc.access.users.len(), 1);
        assert_eq!(doc.access.users[0].id, user_id);
        assert_eq!(doc.access.users[0].name, "alice");
        assert_eq!(doc.access.users[0].limits.rpm, Some(7));
        assert_eq!(doc.access.teams.len(), 1);
        assert_eq!(doc.access.teams[0].id, team_id);
        assert_eq!(doc.access.teams[0].limits.tpm, Some(500));
        let mut sorted = doc.access.keys.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(doc.access.keys, sorted, "keys are ordered by id");
    }
    let entry = |doc: &GatewayConfigDocument, name: &str| {
        doc.access
            .keys
            .iter()
            .find(|k| k.name == name)
            .unwrap()
            .clone()
    };
    let e = entry(&prod, "everywhere");
    assert_eq!(e.id, id_of(&everywhere));
    assert_eq!(e.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(
        e.team_id.as_deref(),
        Some(team_id.as_str()),
        "a key without a team of its own carries its user's"
    );
    assert_eq!(e.expires_at_ms, None);
    assert_eq!(
        entry(&prod, "prod-only").expires_at_ms,
        Some(4_102_444_800_000)
    );
    assert_eq!(
        entry(&staging, "staging-only").team_id.as_deref(),
        Some(team_id.as_str())
    );
    assert_eq!(entry(&staging, "staging-only").id, id_of(&staging_only));
    assert_eq!(entry(&prod, "prod-only").id, id_of(&prod_only));
    let globex = published(&app, "globex", "prod").await;
    assert_eq!(ids(&globex), ["theirs"]);
    assert!(globex.access.users.is_empty());

    // The reconciler builds the same documents from the database: nothing to republish.
    let reconciler = Reconciler::new(publisher, ReconcilerSettings::default());
    let pass = reconciler.reconcile_gateways().await.unwrap();
    assert_eq!(pass.republished, 0, "{pass:?}");

    // A change to a user reaches every gateway document of the account.
    let (status, _) = patch(
        &app,
        &app.gw_url("acme", &format!("/users/{user_id}")),
        &json!({"limits": {"rpm": 8}}),
    )
    .await;
    assert_eq!(status, 200);
    for gateway in ["prod", "staging"] {
        let doc = published(&app, "acme", gateway).await;
        assert_eq!(doc.access.users[0].limits.rpm, Some(8), "{gateway}");
    }
}

async fn bad_key_bodies_are_400s_naming_the_field(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let url = app.gw_url("acme", "/keys");
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": null}), "name"),
        (json!({"name": "x".repeat(257)}), "name"),
        (json!({"name": "k", "gateways": "prod"}), "gateways"),
        (
            json!({"name": "k", "gateways": ["prod", "nope"]}),
            "gateways.1",
        ),
        (
            json!({"name": "k", "gateways": ["Not An Id"]}),
            "gateways.0",
        ),
        (
            json!({"name": "k", "gateways": ["prod", "prod"]}),
            "gateways.1",
        ),
        (json!({"name": "k", "models": [""]}), "models.0"),
        (
            json!({"name": "k", "models": ["openai/gpt 4o"]}),
            "models.0",
        ),
        (json!({"name": "k", "models": [1]}), "models.0"),
        (json!({"name": "k", "user_id": "no-such-user"}), "user_id"),
        (json!({"name": "k", "team_id": "no-such-team"}), "team_id"),
        (json!({"name": "k", "user_id": 5}), "user_id"),
        (json!({"name": "k", "metadata": "x"}), "metadata"),
        (json!({"name": "k", "metadata": {"a": [1]}}), "metadata.a"),
        (json!({"name": "k", "metadata": {"a": null}}), "metadata.a"),
        (
            json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "expires_at": "next week"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "expires_at": 4_102_444_800_i64}),
            "expires_at",
        ),
        (json!({"name": "k", "limits": []}), "limits"),
        (json!({"name": "k", "limits": {"rpm": 0}}), "limits.rpm"),
        (json!({"name": "k", "limits": {"rpm": -10}}), "limits.rpm"),
        (json!({"name": "k", "limits": {"rpm": "60"}}), "limits.rpm"),
        (json!({"name": "k", "limits": {"tpm": 0}}), "limits.tpm"),
        (json!({"name": "k", "limits": {"tpm": 2.5}}), "limits.tpm"),
        (
            json!({"name": "k", "limits": {"tpm_kind": "both"}}),
            "limits.tpm_kind",
        ),
        (
            json!({"name": "k", "limits": {"budget": {"amount_usd": 0, "period": "day"}}}),
            "limits.budget.amount_usd",
        ),
        (
            json!({"name": "k", "limits": {"budget": {"amount_usd": -1, "period": "day"}}}),
            "limits.budget.amount_usd",
        ),
        (
            json!({"name": "k", "limits": {"budget": {"amount_usd": "5", "period": "day"}}}),
            "limits.budget.amount_usd",
        ),
        (
            json!({"name": "k", "limits": {"budget": {"amount_usd": 5, "period": "year"}}}),
            "limits.budget.period",
        ),
        (
            json!({"name": "k", "limits": {"budget": {"amount_usd": 5}}}),
            "limits.budget.period",
        ),
        (
            json!({"name": "k", "limits": {"models": [{"model": "", "rpm": 1}]}}),
            "limits.models.0.model",
        ),
        (
            json!({"name": "k", "limits": {"models": [{"model": "openai/*"}]}}),
            "limits.models.0.model",
        ),
        (
            json!({"name": "k", "limits": {"models": [{"model": "openai/*", "tpm": 0}]}}),
            "limits.models.0.tpm",
        ),
    ];
    for (body, path) in &cases {
        let (status, resp) = app.post(&url, body).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), [*path], "POST {body}: {resp}");
    }
    let (_, list) = app.get(&url).await;
    assert_eq!(list["result_info"]["total_count"], 0, "nothing was created");

    // The same checks on PATCH (where only `name` is optional).
    let key = create_key(&app, "acme", &json!({"name": "k"})).await;
    let key_url = format!("{url}/{}", id_of(&key));
    for (body, path) in cases.iter().skip(1) {
        let (status, resp) = patch(&app, &key_url, body).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), [*path], "PATCH {body}: {resp}");
    }
    let (_, got) = app.get(&key_url).await;
    let mut unchanged = key.clone();
    unchanged.as_object_mut().unwrap().remove("key");
    assert_eq!(got["result"], unchanged, "no PATCH changed anything");

    // Every problem at once, bodies that are not JSON objects, and an oversized body.
    let (status, resp) = app
        .post(
            &url,
            &json!({"name": "", "limits": {"rpm": 0, "budget": {"amount_usd": -1, "period": "day"}}}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    let mut paths = error_paths(&resp);
    paths.sort();
    assert_eq!(paths, ["limits.budget.amount_usd", "limits.rpm", "name"]);
    let (status, resp) = app
        .send(
            Method::POST,
            &url,
            Some(&app.admin_token),
            Some("{\"name\":"),
        )
        .await;
    assert_error(status, &resp, 400, 6007);
    let (status, resp) = app
        .send(Method::POST, &url, Some(&app.admin_token), Some("[]"))
        .await;
    assert_error(status, &resp, 400, 7001);
    let huge = json!({"name": "k", "metadata": {"a": "x".repeat(crate::support::TEST_MAX_BODY)}});
    let (status, resp) = app.post(&url, &huge).await;
    assert_error(status, &resp, 413, 6008);
}

async fn keys_of_another_account_are_404_and_its_users_cannot_be_named(app: TestApp) {
    let key = create_key(&app, "acme", &json!({"name": "mine"})).await;
    let id = id_of(&key);
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some("{\"name\":\"x\"}")),
        (Method::DELETE, "", None),
        (Method::POST, "/rotate", None),
    ] {
        let (status, resp) = app
            .send(
                method.clone(),
                &app.gw_url("globex", &format!("/keys/{id}{suffix}")),
                Some(&app.admin_token),
                body,
            )
            .await;
        assert_error(status, &resp, 404, 7003);
    }
    let (_, list) = app.get(&app.gw_url("globex", "/keys")).await;
    assert_eq!(list["result"], json!([]));
    let (_, got) = app.get(&app.gw_url("acme", &format!("/keys/{id}"))).await;
    assert_eq!(got["result"]["revoked"], false, "nothing happened to it");

    // Another account's user, team and gateway cannot be named.
    app.create_gateway("globex", "theirs").await;
    let (_, user) = app
        .post(&app.gw_url("globex", "/users"), &json!({"name": "bob"}))
        .await;
    let (_, team) = app
        .post(&app.gw_url("globex", "/teams"), &json!({"name": "t"}))
        .await;
    let (status, resp) = app
        .post(
            &app.gw_url("acme", "/keys"),
            &json!({"name": "k", "user_id": user["result"]["id"], "team_id": team["result"]["id"],
                "gateways": ["theirs"]}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    let mut paths = error_paths(&resp);
    paths.sort();
    assert_eq!(paths, ["gateways.0", "team_id", "user_id"]);
}

async fn reading_keys_needs_the_read_scope_and_writing_them_the_edit_scope(app: TestApp) {
    let key = create_key(&app, "acme", &json!({"name": "k"})).await;
    let id = id_of(&key);
    let read = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let edit = app.token(&["acme"], &[Scope::AiGatewayEdit]);
    let run = app.token(&["acme"], &[Scope::AiGatewayRun]);
    let other = app.token(&["globex"], &[Scope::AiGatewayEdit]);
    let reads = [
        (Method::GET, app.gw_url("acme", "/keys"), None),
        (
            Method::GET,
            app.gw_url("acme", &format!("/keys/{id}")),
            None,
        ),
    ];
    let writes = [
        (
            Method::POST,
            app.gw_url("acme", "/keys"),
            Some("{\"name\":\"n\"}"),
        ),
        (
            Method::PATCH,
            app.gw_url("acme", &format!("/keys/{id}")),
            Some("{\"name\":\"n\"}"),
        ),
        (
            Method::POST,
            app.gw_url("acme", &format!("/keys/{id}/rotate")),
            None,
        ),
        (
            Method::DELETE,
            app.gw_url("acme", &format!("/keys/{id}")),
            None,
        ),
    ];
    for (method, url, body) in reads.iter().chain(writes.iter()) {
        let (status, resp) = app.send(method.clone(), url, None, *body).await;
        assert_error(status, &resp, 401, 10000);
        let (status, resp) = app
            .send(method.clone(), url, Some("not-a-token"), *body)
            .await;
        assert_error(status, &resp, 401, 10000);
        for token in [&run, &other] {
            let (status, resp) = app.send(method.clone(), url, Some(token), *body).await;
            assert_error(status, &resp, 403, 10000);
        }
    }
    for (method, url, body) in &reads {
        let (status, resp) = app.send(method.clone(), url, Some(&read), *body).await;
        assert_eq!(status, 200, "{method} {url}: {resp}");
    }
    for (method, url, body) in &writes {
        let (status, resp) = app.send(method.clone(), url, Some(&read), *body).await;
        assert_error(status, &resp, 403, 10000);
    }
    // Edit implies read, and may write.
    for (method, url, body) in reads.iter().chain(writes.iter()) {
        let (status, resp) = app.send(method.clone(), url, Some(&edit), *body).await;
        assert_eq!(status, 200, "{method} {url}: {resp}");
    }
}

async fn key_lists_page_search_by_name_and_leave_revoked_keys_out(app: TestApp) {
    let url = app.gw_url("acme", "/keys");
    let mut ids = Vec::new();
    for name in ["alpha", "Beta", "gamma", "alphabet", "delta"] {
        ids.push(id_of(
            &create_key(&app, "acme", &json!({"name": name})).await,
        ));
    }
    let (_, page) = app.get(&format!("{url}?per_page=2&page=2")).await;
    let names: Vec<_> = page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(names, ["gamma", "alphabet"], "oldest first");
    assert_eq!(page["result_info"]["total_count"], 5);
    assert_eq!(page["result_info"]["total_pages"], 3);
    let (_, past) = app.get(&format!("{url}?per_page=2&page=9")).await;
    assert_eq!(past["result"], json!([]));

    let (_, found) = app.get(&format!("{url}?search=ALPHA")).await;
    let names: Vec<_> = found["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(names, ["alpha", "alphabet"]);
    let (_, found) = app.get(&format!("{url}?search=%25")).await;
    assert_eq!(found["result"], json!([]), "wildcards match literally");

    app.delete(&format!("{url}/{}", ids[0])).await;
    let (_, found) = app.get(&format!("{url}?search=alpha")).await;
    assert_eq!(found["result_info"]["total_count"], 1);
    let (_, found) = app
        .get(&format!("{url}?search=alpha&include_revoked=true"))
        .await;
    assert_eq!(found["result_info"]["total_count"], 2);

    for bad in [
        "page=0",
        "per_page=101",
        "per_page=x",
        "include_revoked=maybe",
    ] {
        let (status, resp) = app.get(&format!("{url}?{bad}")).await;
        assert_error(status, &resp, 400, 7002);
    }
}
