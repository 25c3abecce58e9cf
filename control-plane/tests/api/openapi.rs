//! The committed OpenAPI document matches what the code generates, and the server serves it.

use serde_json::Value;

use crate::support::TestApp;

const COMMITTED: &str = include_str!("../../../openapi/openapi.json");

fn generated() -> String {
    gatehouse_control_plane::api::openapi_document()
        .to_pretty_json()
        .unwrap()
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = generated();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
        std::fs::write(path, format!("{generated}\n")).unwrap();
        return;
    }
    assert!(
        COMMITTED.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p gatehouse-control-plane --test api openapi` \
         (or `cargo run -- openapi > openapi/openapi.json`) and commit the result"
    );
}

#[test]
fn every_route_is_documented_with_a_summary() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways",
            &["get", "post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{id}",
            &["get", "put", "delete"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/url/{provider}",
            &["get"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/keys",
            &["get", "post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/keys/{id}",
            &["get", "patch", "delete"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/keys/{id}/rotate",
            &["post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/users",
            &["get", "post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/users/{id}",
            &["get", "patch", "delete"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/teams",
            &["get", "post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/teams/{id}",
            &["get", "patch", "delete"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/usage",
            &["get"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/analytics",
            &["get"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/analytics",
            &["get"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/evaluation-types",
            &["get"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets",
            &["get", "post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets/{id}",
            &["get", "put", "delete"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/evaluations",
            &["get", "post"][..],
        ),
        (
            "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/evaluations/{id}",
            &["get", "delete"][..],
        ),
        ("/admin/tokens", &["get", "post"][..]),
        ("/admin/tokens/{id}", &["delete"][..]),
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
    ] {
        for method in methods {
            let op = &paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} is not documented"))[method];
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
    }
    for schema in [
        "Gateway",
        "GatewayBody",
        "ErrorEnvelope",
        "ResultInfo",
        "VirtualKey",
        "VirtualKeyWithSecret",
        "VirtualKeyBody",
        "User",
        "UserBody",
        "Team",
        "TeamBody",
        "SubjectLimits",
        "UsageEnvelope",
        "UsageRow",
        "UsageResultInfo",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_document_and_swagger_ui() {
    let app = TestApp::sqlite().await;
    let served: Value = app
        .client
        .get(app.url("/client/v4/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, serde_json::from_str::<Value>(&generated()).unwrap());
    let ui = app
        .client
        .get(app.url("/client/v4/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(
        ui.text().await.unwrap().contains("swagger"),
        "Swagger UI is served from the binary"
    );
}
