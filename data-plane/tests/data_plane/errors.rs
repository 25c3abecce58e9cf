use crate::client::{Connection, get, get_request};
use crate::harness::RunningDataPlane;

/// The exact bytes Cloudflare's shape gives for our "not found" row.
const NOT_FOUND_BODY: &str = r#"{"success":false,"result":[],"messages":[],"error":[{"code":2000,"message":"Not found"}],"name":"AiGatewayError","httpCode":404,"internalCode":2000,"message":"Not found","description":"Not found"}"#;

#[test]
fn an_unknown_path_gets_the_ai_gateway_error_body_with_404() {
    let data_plane = RunningDataPlane::start();

    // `GET /` is the front door (probes.rs); every other unknown path is this 404.
    for path in [
        "/nope",
        "/healthz/extra",
        "/v1/account-only",
        "/v2/account/gateway/openai/chat/completions?x=1",
    ] {
        let response = get(data_plane.addr, path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(
            String::from_utf8_lossy(&response.body),
            NOT_FOUND_BODY,
            "{path}"
        );
    }
}

#[test]
fn a_probe_path_with_another_method_is_not_found() {
    let data_plane = RunningDataPlane::start();

    let response = Connection::open(data_plane.addr)
        .send(b"DELETE /healthz HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n");

    assert_eq!(response.status, 404);
}

#[test]
fn a_request_body_left_unread_closes_the_connection_after_the_answer() {
    let data_plane = RunningDataPlane::start();
    let mut connection = Connection::open(data_plane.addr);

    // Only part of the announced body is sent: the gateway must answer without waiting for (or draining) it.
    let response = connection.send(
        b"POST /nope HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"model\":",
    );

    assert_eq!(response.status, 404);
    assert!(connection.is_closed_by_server());
}

#[test]
fn a_keep_alive_connection_carries_several_answers() {
    let data_plane = RunningDataPlane::start();
    let mut connection = Connection::open(data_plane.addr);

    let first = connection.send(get_request("/healthz").as_bytes());
    let second = connection.send(get_request("/nope").as_bytes());
    let third = connection.send(get_request("/readyz").as_bytes());

    assert_eq!((first.status, second.status, third.status), (200, 404, 503));
}
