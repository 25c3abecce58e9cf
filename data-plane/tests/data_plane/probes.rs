use serde_json::json;

use crate::client::get;
use crate::harness::RunningDataPlane;

#[test]
fn healthz_answers_200_with_status_ok_as_json() {
    let data_plane = RunningDataPlane::start();

    let response = get(data_plane.addr, "/healthz");

    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body, br#"{"status":"ok"}"#);
}

#[test]
fn healthz_answers_even_before_the_first_config_load() {
    let data_plane = RunningDataPlane::start();

    assert!(!data_plane.readiness.is_ready());
    assert_eq!(get(data_plane.addr, "/healthz").status, 200);
}

#[test]
fn readyz_answers_503_until_the_first_config_load() {
    let data_plane = RunningDataPlane::start();

    let before = get(data_plane.addr, "/readyz");
    assert_eq!(before.status, 503);
    assert_eq!(before.header("content-type"), Some("application/json"));
    assert_eq!(
        before.json(),
        json!({
            "success": false, "result": [], "messages": [],
            "error": [{"code": 2900, "message": "Gateway node is not ready: configuration not loaded yet"}],
            "name": "AiGatewayError", "httpCode": 503, "internalCode": 2900,
            "message": "Gateway node is not ready: configuration not loaded yet",
            "description": "Gateway node is not ready: configuration not loaded yet",
        })
    );

    data_plane.readiness.set_ready();

    let after = get(data_plane.addr, "/readyz");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, br#"{"status":"ready"}"#);
}

#[test]
fn the_front_door_says_what_this_is_as_json_or_html() {
    let data_plane = RunningDataPlane::start();

    let json = get(data_plane.addr, "/");
    assert_eq!(json.status, 200);
    assert_eq!(json.header("vary"), Some("Accept"));
    let body = json.json();
    assert_eq!(body["service"], "gatehouse");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["health"], "/healthz");
    assert_eq!(body["ready"], "/readyz");

    let html = crate::client::Connection::open(data_plane.addr).send(
        b"GET / HTTP/1.1\r\nHost: gatehouse.test\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\n\r\n",
    );
    assert_eq!(html.status, 200);
    assert!(
        html.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        html.header("content-type")
    );
    let page = String::from_utf8_lossy(&html.body);
    assert!(page.contains("/readyz") && page.contains(env!("CARGO_PKG_VERSION")));

    // Only GET: anything else at `/` stays an unknown endpoint.
    let post = crate::client::Connection::open(data_plane.addr)
        .send(b"POST / HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 404);
}
