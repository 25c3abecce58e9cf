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
