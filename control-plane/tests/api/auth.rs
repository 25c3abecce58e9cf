//! Tokens on the management API: 401 for missing or bad tokens, 403 for the wrong account or scope.

use std::time::Duration;

use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::keyring::{Keyring, TokenRequest};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::token::Scope;
use reqwest::Method;

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, minimal_gateway};

on_both_backends!(
    requests_without_a_valid_token_are_401_with_code_10000,
    a_token_signed_by_another_key_is_refused,
    an_expired_token_is_refused,
    a_revoked_token_stops_working_at_once,
    a_token_for_another_account_is_403,
    a_read_only_token_reads_but_cannot_write,
    a_run_only_token_cannot_use_the_management_api,
);

async fn requests_without_a_valid_token_are_401_with_code_10000(app: TestApp) {
    let url = app.gw_url("acme", "/gateways");
    let (status, body) = app.send(Method::GET, &url, None, None).await;
    assert_error(status, &body, 401, 10000);
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Token abc",
    ] {
        let resp = app
            .client
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_error(status, &body, 401, 10000);
    }
    // A valid token with its payload altered no longer matches its signature.
    let mut parts: Vec<String> = app.admin_token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let (status, body) = app
        .send(Method::GET, &url, Some(&parts.join(".")), None)
        .await;
    assert_error(status, &body, 401, 10000);
    let (status, body) = app
        .send(
            Method::POST,
            &url,
            None,
            Some(&minimal_gateway("x").to_string()),
        )
        .await;
    assert_error(status, &body, 401, 10000);
}

async fn a_token_signed_by_another_key_is_refused(app: TestApp) {
    // Another deployment: its own database, master key and signing key, with the same key id.
    let dir = tempfile::tempdir().unwrap();
    let other_db = Database::connect(&format!(
        "sqlite://{}",
        dir.path().join("o.sqlite").display()
    ))
    .unwrap();
    other_db.migrate().unwrap();
    let other = Keyring::load_or_create(
        &other_db,
        &MasterKey::from_base64(&MasterKey::generate_base64()).unwrap(),
    )
    .unwrap();
    let forged = other
        .mint(
            &other_db,
            TokenRequest {
                accounts: vec!["*".into()],
                scopes: Scope::ALL.to_vec(),
                ttl: None,
                description: String::new(),
            },
        )
        .unwrap()
        .token;
    let (status, body) = app
        .send(
            Method::GET,
            &app.gw_url("acme", "/gateways"),
            Some(&forged),
            None,
        )
        .await;
    assert_error(status, &body, 401, 10000);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );
}

async fn an_expired_token_is_refused(app: TestApp) {
    let token = app.token_with_ttl(Duration::from_millis(1));
    // Expiry has whole-second resolution.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = app
        .send(
            Method::GET,
            &app.gw_url("acme", "/gateways"),
            Some(&token),
            None,
        )
        .await;
    assert_error(status, &body, 401, 10000);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

async fn a_revoked_token_stops_working_at_once(app: TestApp) {
    let token = app.token(&["acme"], &[Scope::AiGatewayEdit]);
    let url = app.gw_url("acme", "/gateways");
    let (status, _) = app.send(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, 200);
    let claims = app.keyring.verifier().verify(&token).unwrap();
    let (status, _) = app
        .send(
            Method::DELETE,
            &app.url(&format!("/admin/tokens/{}", claims.jti)),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.send(Method::GET, &url, Some(&token), None).await;
    assert_error(status, &body, 401, 10000);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
}

async fn a_token_for_another_account_is_403(app: TestApp) {
    app.create_gateway("globex", "theirs").await;
    let token = app.token(&["acme"], &[Scope::AiGatewayEdit]);
    for (method, path, body) in [
        (Method::GET, "/gateways", None),
        (Method::GET, "/gateways/theirs", None),
        (
            Method::POST,
            "/gateways",
            Some(minimal_gateway("mine").to_string()),
        ),
        (
            Method::PUT,
            "/gateways/theirs",
            Some(minimal_gateway("theirs").to_string()),
        ),
        (Method::DELETE, "/gateways/theirs", None),
        (Method::GET, "/gateways/theirs/url/openai", None),
    ] {
        let (status, resp) = app
            .send(
                method,
                &app.gw_url("globex", path),
                Some(&token),
                body.as_deref(),
            )
            .await;
        assert_error(status, &resp, 403, 10000);
    }
    let (status, _) = app.get(&app.gw_url("globex", "/gateways/theirs")).await;
    assert_eq!(status, 200, "nothing was changed or deleted");
}

async fn a_read_only_token_reads_but_cannot_write(app: TestApp) {
    app.create_gateway("acme", "ro").await;
    let token = app.token(&["acme"], &[Scope::AiGatewayRead]);
    for path in ["/gateways", "/gateways/ro", "/gateways/ro/url/openai"] {
        let (status, body) = app
            .send(Method::GET, &app.gw_url("acme", path), Some(&token), None)
            .await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/gateways",
            Some(minimal_gateway("new").to_string()),
        ),
        (
            Method::PUT,
            "/gateways/ro",
            Some(minimal_gateway("ro").to_string()),
        ),
        (Method::DELETE, "/gateways/ro", None),
    ] {
        let (status, resp) = app
            .send(
                method,
                &app.gw_url("acme", path),
                Some(&token),
                body.as_deref(),
            )
            .await;
        assert_error(status, &resp, 403, 10000);
    }
    let (status, resp) = app
        .send(Method::GET, &app.url("/admin/tokens"), Some(&token), None)
        .await;
    assert_error(status, &resp, 403, 10000);
}

async fn a_run_only_token_cannot_use_the_management_api(app: TestApp) {
    let token = app.token(&["acme"], &[Scope::AiGatewayRun]);
    let (status, resp) = app
        .send(
            Method::GET,
            &app.gw_url("acme", "/gateways"),
            Some(&token),
            None,
        )
        .await;
    assert_error(status, &resp, 403, 10000);
}
