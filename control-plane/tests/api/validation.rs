//! Bad input: every case is a 4xx in the v4 envelope, never a 5xx.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TEST_MAX_BODY, TestApp, assert_error, error_paths, minimal_gateway};

on_both_backends!(
    each_required_field_missing_is_a_400_naming_the_field,
    wrong_types_are_400s_naming_the_field,
    out_of_range_values_are_400s_naming_the_field,
    malformed_json_is_a_400_with_code_6007,
    bodies_over_the_cap_are_413_whether_declared_or_chunked,
    gateway_ids_must_follow_the_slug_rule,
    bad_query_parameters_are_400s,
    unknown_routes_and_methods_get_the_envelope,
    nul_characters_are_400s_wherever_they_come,
);

const REQUIRED: [&str; 6] = [
    "id",
    "cache_invalidate_on_update",
    "cache_ttl",
    "collect_logs",
    "rate_limiting_interval",
    "rate_limiting_limit",
];

async fn each_required_field_missing_is_a_400_naming_the_field(app: TestApp) {
    for field in REQUIRED {
        let mut body = minimal_gateway("gw");
        body.as_object_mut().unwrap().remove(field);
        let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec![field.to_owned()],
            "create without {field}"
        );
        if field != "id" {
            app.create_gateway("acme", "put-target").await.to_string();
            let (status, resp) = app
                .put(&app.gw_url("acme", "/gateways/put-target"), &body)
                .await;
            assert_error(status, &resp, 400, 7001);
            assert_eq!(
                error_paths(&resp),
                vec![field.to_owned()],
                "PUT without {field}"
            );
            app.delete(&app.gw_url("acme", "/gateways/put-target"))
                .await;
        }
    }
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &json!({})).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(
        error_paths(&resp).len(),
        REQUIRED.len(),
        "every missing field is reported at once: {resp}"
    );
}

async fn wrong_types_are_400s_naming_the_field(app: TestApp) {
    let cases: &[(&str, Value)] = &[
        ("id", json!(42)),
        ("cache_invalidate_on_update", json!("true")),
        ("cache_ttl", json!("60")),
        ("cache_ttl", json!(1.5)),
        ("collect_logs", json!(1)),
        ("collect_logs", Value::Null),
        ("rate_limiting_interval", json!([1])),
        ("rate_limiting_limit", json!({"n": 1})),
        ("rate_limiting_technique", json!(1)),
        ("authentication", json!("yes")),
        ("log_management", json!("10000")),
        ("logpush", json!(0)),
        ("retry_delay", json!(true)),
        ("dlp", json!("on")),
        ("guardrails", json!([])),
        ("otel", json!({})),
        ("spend_limits", json!(5)),
        ("stripe", json!("sk")),
    ];
    for (field, value) in cases {
        let mut body = minimal_gateway("typed");
        body[*field] = value.clone();
        let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
        assert_error(status, &resp, 400, 7001);
        assert!(
            error_paths(&resp).iter().all(|p| p.starts_with(field)),
            "{field}={value}: {resp}"
        );
    }
    let (status, resp) = app
        .post(
            &app.gw_url("acme", "/gateways"),
            &json!([minimal_gateway("x")]),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
}

async fn out_of_range_values_are_400s_naming_the_field(app: TestApp) {
    let cases: &[(&str, Value)] = &[
        ("cache_ttl", json!(-1)),
        ("rate_limiting_interval", json!(-5)),
        ("rate_limiting_limit", json!(-1)),
        ("rate_limiting_limit", json!(1e30)),
        ("log_management", json!(9_999)),
        ("log_management", json!(10_000_001)),
        ("log_management_strategy", json!("KEEP_ALL")),
        ("logpush_public_key", json!("too-short")),
        ("logpush_public_key", json!("k".repeat(1025))),
        ("retry_max_attempts", json!(0)),
        ("retry_max_attempts", json!(6)),
        ("retry_delay", json!(-1)),
        ("retry_delay", json!(5001)),
        ("retry_backoff", json!("random")),
        ("rate_limiting_technique", json!("token-bucket")),
        ("workers_ai_billing_mode", json!("prepaid")),
        (
            "guardrails",
            json!({"prompt": {"S14": "BLOCK"}, "response": {}}),
        ),
        (
            "spend_limits",
            json!({"rules": (0..21).map(|_| json!({"limit": 1, "limitType": "cost", "window": 60})).collect::<Vec<_>>()}),
        ),
        (
            "spend_limits",
            json!({"rules": [{"limit": -1, "limitType": "cost", "window": 60}]}),
        ),
    ];
    for (field, value) in cases {
        let mut body = minimal_gateway("ranged");
        body[*field] = value.clone();
        let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
        assert_error(status, &resp, 400, 7001);
        assert!(
            error_paths(&resp).iter().all(|p| p.starts_with(field)),
            "{field}={value}: {resp}"
        );
    }
    let (status, list) = app.get(&app.gw_url("acme", "/gateways")).await;
    assert_eq!(status, 200);
    assert_eq!(list["result"], json!([]), "no invalid gateway was stored");
}

async fn malformed_json_is_a_400_with_code_6007(app: TestApp) {
    app.create_gateway("acme", "target").await;
    for body in [
        "{",
        "",
        "nonsense",
        "{\"id\": \"x\",}",
        "{\"id\": \"\u{0}\"",
        "\u{feff}{}",
    ] {
        for (method, url) in [
            (reqwest::Method::POST, app.gw_url("acme", "/gateways")),
            (reqwest::Method::PUT, app.gw_url("acme", "/gateways/target")),
        ] {
            let (status, resp) = app
                .send(method.clone(), &url, Some(&app.admin_token), Some(body))
                .await;
            assert_error(status, &resp, 400, 6007);
            let _ = method;
        }
    }
}

async fn bodies_over_the_cap_are_413_whether_declared_or_chunked(app: TestApp) {
    let mut big = minimal_gateway("big");
    big["store_id"] = json!("x".repeat(TEST_MAX_BODY));
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &big).await;
    assert_error(status, &resp, 413, 6008);

    // A chunked body has no Content-Length; the cap still holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; TEST_MAX_BODY / 4])).collect();
    let resp = app
        .client
        .post(app.gw_url("acme", "/gateways"))
        .bearer_auth(&app.admin_token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let resp: Value = resp.json().await.unwrap();
    assert_error(status, &resp, 413, 6008);
    let (_, list) = app.get(&app.gw_url("acme", "/gateways")).await;
    assert_eq!(list["result"], json!([]));
}

async fn gateway_ids_must_follow_the_slug_rule(app: TestApp) {
    let too_long = "a".repeat(65);
    for id in [
        "",
        "UPPER",
        "has space",
        "-leading",
        "trailing-",
        "dou--ble",
        "slash/id",
        "dot.id",
        "ünï",
        too_long.as_str(),
    ] {
        let (status, resp) = app
            .post(&app.gw_url("acme", "/gateways"), &minimal_gateway(id))
            .await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec!["id".to_owned()],
            "id {id:?}: {resp}"
        );
    }
    for id in ["a", "my_gateway-2", &"z".repeat(64)] {
        app.create_gateway("acme", id).await;
    }
}

async fn bad_query_parameters_are_400s(app: TestApp) {
    for query in [
        "page=0",
        "page=-1",
        "page=abc",
        "per_page=0",
        "per_page=101",
        "per_page=1.5",
        "page=99999999999999999999",
    ] {
        let (status, resp) = app
            .get(&app.gw_url("acme", &format!("/gateways?{query}")))
            .await;
        assert_error(status, &resp, 400, 7002);
    }
    let (status, resp) = app
        .get(&app.url("/client/v4/accounts/bad%20account/ai-gateway/gateways"))
        .await;
    assert_error(status, &resp, 400, 7002);
}

async fn unknown_routes_and_methods_get_the_envelope(app: TestApp) {
    let (status, resp) = app.get(&app.gw_url("acme", "/no-such-thing")).await;
    assert_error(status, &resp, 404, 7000);
    let (status, resp) = app
        .send(
            reqwest::Method::PATCH,
            &app.gw_url("acme", "/gateways"),
            Some(&app.admin_token),
            Some("{}"),
        )
        .await;
    assert!(status == 404 || status == 405, "{status}");
    assert_eq!(resp["success"], false);
}

/// PostgreSQL's `text` cannot hold NUL: in a path, a query or any string of a body it is bad input (400), never a
/// database failure (500). On SQLite alike, so that both backends answer the same.
async fn nul_characters_are_400s_wherever_they_come(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    for path in [
        "/gateways/g%00w",
        "/gateways/gw/logs/a%00b",
        "/gateways/gw/logs?search=a%00b",
        "/gateways/gw/logs?filters.key=provider&filters.operator=eq&filters.value=a%00b",
        "/gateways?page=1%00",
    ] {
        let (status, resp) = app.get(&app.gw_url("acme", path)).await;
        assert_error(status, &resp, 400, 7002);
        assert!(
            resp["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{path}: {resp}"
        );
    }
    let mut body = minimal_gateway("other");
    body["authentication"] = json!(false);
    body["nested"] = json!({"list": ["fine", "not\u{0}fine"]});
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["nested.list.1"]);
    let (status, resp) = app
        .send(
            reqwest::Method::PATCH,
            &app.gw_url("acme", "/gateways/gw/logs/01A"),
            Some(&app.admin_token),
            Some(r#"{"metadata": {"k\u0000": "v"}}"#),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["metadata.k\u{0}"]);
}
