//! Operator routes: tokens through the API.

use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    tokens_are_minted_listed_and_revoked_through_the_api,
    bad_token_requests_are_400s
);

async fn tokens_are_minted_listed_and_revoked_through_the_api(app: TestApp) {
    let (status, created) = app
        .post(&app.url("/admin/tokens"), &json!({"accounts": ["acme"], "scopes": ["ai-gateway:read"], "ttl_seconds": 3600, "description": "ci"}))
        .await;
    assert_eq!(status, 200, "{created}");
    let token = created["result"]["token"].as_str().unwrap().to_owned();
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["result"]["scopes"], json!(["ai-gateway:read"]));
    assert!(
        created["result"]["expires_at"].as_i64().unwrap()
            > created["result"]["created_at"].as_i64().unwrap()
    );

    let (status, _) = app
        .send(
            Method::GET,
            &app.gw_url("acme", "/gateways"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let (status, list) = app.get(&app.url("/admin/tokens")).await;
    assert_eq!(status, 200);
    let listed = list["result"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t["id"] == id.as_str() && t["description"] == "ci")
    );
    assert!(
        !list.to_string().contains(&token),
        "the token text is never listed"
    );

    let (status, revoked) = app.delete(&app.url(&format!("/admin/tokens/{id}"))).await;
    assert_eq!(status, 200);
    assert!(revoked["result"]["revoked_at"].is_i64());
    let (status, body) = app
        .send(
            Method::GET,
            &app.gw_url("acme", "/gateways"),
            Some(&token),
            None,
        )
        .await;
    assert_error(status, &body, 401, 10000);
    let (status, body) = app.delete(&app.url("/admin/tokens/tok_unknown")).await;
    assert_error(status, &body, 404, 7003);
}

async fn bad_token_requests_are_400s(app: TestApp) {
    let cases = [
        (json!({"scopes": ["admin"]}), "accounts"),
        (json!({"accounts": ["acme"]}), "scopes"),
        (json!({"accounts": [], "scopes": ["admin"]}), "accounts"),
        (json!({"accounts": ["acme"], "scopes": ["root"]}), "scopes"),
        (
            json!({"accounts": ["acme"], "scopes": ["admin"], "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (json!({"accounts": [7], "scopes": ["admin"]}), "accounts"),
    ];
    for (body, field) in cases {
        let (status, resp) = app.post(&app.url("/admin/tokens"), &body).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), vec![field.to_owned()], "{body}");
    }
    let (status, resp) = app
        .post(
            &app.url("/admin/tokens"),
            &json!({"accounts": ["a b"], "scopes": ["admin"]}),
        )
        .await;
    assert_error(status, &resp, 400, 7002);
}
