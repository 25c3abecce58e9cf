//! `GET /`: the management API's front door, JSON for API clients and HTML for browsers, outside the v4 routes.

use serde_json::Value;

use crate::support::TestApp;

/// What Firefox sends for a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn get_root(app: &TestApp, accept: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    req.send().await.unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clients_get_json_that_names_what_the_server_serves() {
    let app = TestApp::sqlite().await;
    for accept in [None, Some("*/*"), Some("application/json")] {
        let resp = get_root(&app, accept).await;
        assert_eq!(resp.status(), 200, "{accept:?}");
        assert_eq!(header(&resp, "content-type"), Some("application/json"));
        assert_eq!(header(&resp, "vary"), Some("Accept"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["service"], "gatehouse");
        assert_eq!(body["component"], "management API");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["api"], "/client/v4");
        assert_eq!(body["docs"], "/client/v4/docs/");
        assert_eq!(body["openapi"], "/client/v4/openapi.json");
        assert_eq!(body["health"], "/healthz");
    }

    // Every path it names is served here, without a token.
    let body: Value = get_root(&app, None).await.json().await.unwrap();
    for key in ["docs", "openapi", "health"] {
        let path = body[key].as_str().unwrap();
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{key}: {path}");
    }
    // `/client/v4` is the base of the token-protected routes, not a page of its own.
    let resp = app
        .client
        .get(app.url("/client/v4/accounts/acme/ai-gateway/gateways"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the API is under the named base");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_a_self_contained_html_page() {
    let app = TestApp::sqlite().await;
    let resp = get_root(&app, Some(BROWSER_ACCEPT)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&resp, "vary"), Some("Accept"));
    let html = resp.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("Gatehouse"));
    assert!(html.contains(&format!("<code>{}</code>", env!("CARGO_PKG_VERSION"))));
    assert!(html.contains("href=\"/client/v4/docs/\""), "{html}");
    assert!(html.contains("href=\"/healthz\""), "{html}");
    assert!(!html.contains("<script"), "no scripts or external assets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_without_a_body_and_other_methods_keep_the_404_envelope() {
    let app = TestApp::sqlite().await;
    let resp = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert!(resp.bytes().await.unwrap().is_empty());

    let (status, body) = app
        .send(reqwest::Method::POST, &app.url("/"), None, Some("{}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["success"], false);
    assert_eq!(body["errors"][0]["code"], 7000);
}

#[test]
fn the_front_door_is_not_in_the_openapi_document() {
    let doc: Value = serde_json::from_str(
        &gatehouse_control_plane::api::openapi_document()
            .to_pretty_json()
            .unwrap(),
    )
    .unwrap();
    assert!(doc["paths"].get("/").is_none());
}
