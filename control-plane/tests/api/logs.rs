//! The logs API (spec §1.5): list, filters in every encoding, deprecated parameters, aggregates, detail, PATCH,
//! bulk delete, raw bodies, idempotent inserts and isolation.

use gatehouse_shared::log::LogRecord;
use gatehouse_shared::token::Scope;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error};

on_both_backends!(
    the_list_is_newest_first_and_pages_walk_every_log,
    order_by_and_both_direction_parameters_reorder_the_list,
    every_filter_key_and_operator_selects_the_expected_logs,
    the_sdk_encodings_of_filters_all_give_the_same_result,
    bad_filters_and_parameters_are_400_in_the_envelope,
    the_deprecated_flat_parameters_still_filter,
    meta_info_adds_min_and_max_figures_to_result_info,
    the_detail_carries_heads_and_sizes,
    patch_sets_feedback_score_and_metadata_with_range_checks,
    delete_removes_the_matching_logs_up_to_the_limit,
    raw_bodies_are_returned_as_stored_without_an_envelope,
    inserting_the_same_batch_twice_stores_each_log_once,
    logs_are_isolated_by_account_and_gateway,
);

pub fn record(id: &str, created_at_ms: i64, provider: &str) -> LogRecord {
    LogRecord {
        id: id.into(),
        account_id: "acme".into(),
        gateway_id: "gw".into(),
        created_at_ms,
        provider: provider.into(),
        model: None,
        model_type: None,
        path: "chat/completions".into(),
        request_type: Some("provider".into()),
        request_content_type: Some("application/json".into()),
        response_content_type: Some("application/json".into()),
        status_code: 200,
        success: true,
        cached: false,
        duration_ms: 100,
        tokens_in: None,
        tokens_out: None,
        cached_tokens_in: None,
        cost: None,
        custom_cost: false,
        metadata: None,
        event_id: format!("ev-{id}"),
        step: 0,
        user_agent: None,
        authenticated: false,
        request_head: "{\"model\"".into(),
        request_head_complete: false,
        request_size: 42,
        response_head: "{}".into(),
        response_head_complete: true,
        response_size: 2,
        request_body: None,
        response_body: None,
        bodies_stored: false,
        config_hash: None,
        key_id: None,
        user_id: None,
        team_id: None,
        route_id: None,
        route_version_id: None,
        route_path: None,
    }
}

/// Four logs that differ in every filterable field (A oldest, D newest).
fn fixture() -> Vec<LogRecord> {
    let mut a = record("01A", 1_000, "openai");
    a.model = Some("gpt-4o".into());
    a.model_type = Some("chat".into());
    a.response_content_type = Some("text/event-stream".into());
    a.tokens_in = Some(10);
    a.tokens_out = Some(20);
    a.cost = Some(0.01);
    a.metadata = Some(r#"{"user":"alice","n":3}"#.into());
    a.event_id = "ev1".into();
    a.user_agent = Some("curl/8".into());
    a.authenticated = true;
    a.path = "v1/chat/completions".into();

    let mut b = record("01B", 2_000, "anthropic");
    b.model = Some("claude-3".into());
    b.model_type = Some("chat".into());
    b.success = false;
    b.status_code = 500;
    b.cached = true;
    b.duration_ms = 300;
    b.tokens_in = Some(5);
    b.metadata = Some(r#"{"user":"bob"}"#.into());
    b.user_agent = Some("Python-SDK/1".into());
    b.path = "v1/messages".into();

    let mut c = record("01C", 3_000, "openai");
    c.model = Some("text-embedding-3".into());
    c.model_type = Some("embedding".into());
    c.request_type = Some("universal".into());
    c.duration_ms = 50;
    c.tokens_in = Some(100);
    c.tokens_out = Some(0);
    c.cost = Some(0.5);
    c.event_id = "ev1".into();
    c.path = "embeddings".into();

    let mut d = record("01D", 4_000, "groq");
    d.request_content_type = None;
    d.cached = true;
    d.duration_ms = 1_000;
    d.cost = Some(0.0);
    d.metadata = Some(r#"{"team":"x","flag":true}"#.into());
    vec![a, b, c, d]
}

pub fn seed(app: &TestApp, records: &[LogRecord]) -> usize {
    app.db
        .with_conn(|c| gatehouse_control_plane::store::log_caps::store_with_caps(c, records))
        .expect("store_with_caps")
        .inserted
}

pub async fn setup(app: &TestApp) {
    app.create_gateway("acme", "gw").await;
    seed(app, &fixture());
}

pub fn logs_url(app: &TestApp, query: &str) -> String {
    app.gw_url("acme", &format!("/gateways/gw/logs?{query}"))
}

pub fn ids(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result array: {body}"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn list_ids(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = app.get(&logs_url(app, query)).await;
    assert_eq!(status, 200, "{query}: {body}");
    ids(&body)
}

async fn the_list_is_newest_first_and_pages_walk_every_log(app: TestApp) {
    setup(&app).await;
    let (status, body) = app.get(&logs_url(&app, "per_page=2")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["01D", "01C"]);
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 2, "count": 2, "total_count": 4, "total_pages": 2})
    );
    let first = &body["result"][1];
    assert_eq!(first["created_at"], "1970-01-01T00:00:03.000Z");
    assert_eq!(first["model_type"], "embedding");
    assert_eq!(first["tokens_in"], 100);
    assert_eq!(first["cost"], 0.5);
    assert_eq!(list_ids(&app, "per_page=2&page=2").await, ["01B", "01A"]);
    assert!(list_ids(&app, "per_page=2&page=3").await.is_empty());
    let (_, body) = app.get(&logs_url(&app, "")).await;
    assert_eq!(body["result_info"]["per_page"], 20);
    let (_, body) = app
        .get(&logs_url(
            &app,
            "filters.key=id&filters.operator=eq&filters.value=01A",
        ))
        .await;
    assert_eq!(
        body["result"][0]["metadata"], r#"{"user":"alice","n":3}"#,
        "metadata is a JSON string"
    );
    for bad in ["per_page=51", "per_page=0", "page=0"] {
        let (status, body) = app.get(&logs_url(&app, bad)).await;
        assert_error(status, &body, 400, 7002);
    }
}

async fn order_by_and_both_direction_parameters_reorder_the_list(app: TestApp) {
    setup(&app).await;
    assert_eq!(
        list_ids(&app, "order_by_direction=asc").await,
        ["01A", "01B", "01C", "01D"]
    );
    assert_eq!(
        list_ids(&app, "direction=asc").await,
        ["01A", "01B", "01C", "01D"]
    );
    assert_eq!(
        list_ids(&app, "order_by_direction=desc&direction=asc").await,
        ["01D", "01C", "01B", "01A"],
        "order_by_direction wins over the older name"
    );
    // Ties on the ordered column fall back to created_at in the same direction.
    assert_eq!(
        list_ids(&app, "order_by=provider&order_by_direction=asc").await,
        ["01B", "01D", "01A", "01C"]
    );
    assert_eq!(
        list_ids(&app, "order_by=provider").await,
        ["01C", "01A", "01D", "01B"]
    );
    assert_eq!(
        list_ids(&app, "order_by=success&order_by_direction=asc").await[0],
        "01B"
    );
    assert_eq!(list_ids(&app, "order_by=cached").await[..2], ["01D", "01B"]);
    assert_eq!(
        list_ids(&app, "order_by=model_type&order_by_direction=asc&filters.key=model_type&filters.operator=neq&filters.value=").await,
        ["01A", "01B", "01C"]
    );
    assert_eq!(
        list_ids(
            &app,
            "order_by=model&filters.key=model&filters.operator=neq&filters.value="
        )
        .await,
        ["01C", "01A", "01B"]
    );
}

pub fn dotted(key: &str, op: &str, values: &[&str]) -> String {
    let mut q = format!("filters.key={key}&filters.operator={op}");
    for v in values {
        q.push_str(&format!("&filters.value={}", urlencode(v)));
    }
    q
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}

async fn every_filter_key_and_operator_selects_the_expected_logs(app: TestApp) {
    setup(&app).await;
    // Feedback only comes from PATCH.
    for (id, fb) in [("01A", 1), ("01B", -1)] {
        let (status, body) = app
            .send(
                reqwest::Method::PATCH,
                &app.gw_url("acme", &format!("/gateways/gw/logs/{id}")),
                Some(&app.admin_token),
                Some(&json!({"feedback": fb}).to_string()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        ("id", "eq", &["01B"], &["01B"]),
        ("id", "neq", &["01B", "01C"], &["01D", "01A"]),
        ("id", "contains", &["1c"], &["01C"]),
        (
            "created_at",
            "gt",
            &["1970-01-01T00:00:02Z"],
            &["01D", "01C"],
        ),
        ("created_at", "lt", &["2000"], &["01A"]),
        ("created_at", "eq", &["1970-01-01T00:00:03.000Z"], &["01C"]),
        ("created_at", "neq", &["3000"], &["01D", "01B", "01A"]),
        (
            "request_content_type",
            "eq",
            &["application/json"],
            &["01C", "01B", "01A"],
        ),
        (
            "request_content_type",
            "neq",
            &["application/json"],
            &["01D"],
        ),
        ("request_content_type", "eq", &[""], &["01D"]),
        ("response_content_type", "contains", &["EVENT"], &["01A"]),
        ("request_type", "eq", &["universal"], &["01C"]),
        ("success", "eq", &["false"], &["01B"]),
        ("success", "neq", &["false"], &["01D", "01C", "01A"]),
        ("cached", "eq", &["true"], &["01D", "01B"]),
        ("provider", "eq", &["openai"], &["01C", "01A"]),
        (
            "provider",
            "eq",
            &["openai", "groq"],
            &["01D", "01C", "01A"],
        ),
        ("provider", "neq", &["openai"], &["01D", "01B"]),
        ("provider", "contains", &["OPEN"], &["01C", "01A"]),
        ("model", "eq", &["gpt-4o"], &["01A"]),
        ("model", "eq", &[""], &["01D"]),
        ("model", "neq", &["gpt-4o"], &["01D", "01C", "01B"]),
        ("model", "contains", &["claude", "embed"], &["01C", "01B"]),
        ("model_type", "eq", &["embedding"], &["01C"]),
        ("cost", "gt", &["0.005"], &["01C", "01A"]),
        ("cost", "lt", &["0.01"], &["01D"]),
        ("cost", "eq", &["0.5"], &["01C"]),
        ("cost", "neq", &["0.5"], &["01D", "01B", "01A"]),
        ("tokens", "gt", &["29"], &["01C", "01A"]),
        ("tokens", "lt", &["10"], &["01D", "01B"]),
        ("tokens_in", "eq", &["5"], &["01B"]),
        ("tokens_out", "gt", &["0"], &["01A"]),
        ("duration", "gt", &["200"], &["01D", "01B"]),
        ("duration", "lt", &["100"], &["01C"]),
        ("feedback", "eq", &["1"], &["01A"]),
        ("feedback", "lt", &["0"], &["01B"]),
        ("event_id", "eq", &["ev1"], &["01C", "01A"]),
        ("event_id", "contains", &["01d"], &["01D"]),
        ("metadata.key", "eq", &["user"], &["01B", "01A"]),
        ("metadata.key", "neq", &["user"], &["01D", "01C"]),
        ("metadata.value", "eq", &["bob"], &["01B"]),
        ("metadata.value", "eq", &["3"], &["01A"]),
        ("metadata.value", "eq", &["true"], &["01D"]),
        ("metadata.value", "contains", &["ALI"], &["01A"]),
        ("authentication", "eq", &["true"], &["01A"]),
        ("authentication", "neq", &["true"], &["01D", "01C", "01B"]),
        ("user_agent", "contains", &["python"], &["01B"]),
        ("user_agent", "eq", &["curl/8"], &["01A"]),
    ];
    for (key, op, values, want) in cases {
        let q = dotted(key, op, values);
        assert_eq!(list_ids(&app, &q).await, *want, "{q}");
    }
    // Filters AND together.
    let q = format!(
        "{}&{}&{}",
        dotted("provider", "eq", &["openai"]),
        dotted("success", "eq", &["true"]),
        dotted("model_type", "eq", &["chat"])
    );
    assert_eq!(list_ids(&app, &q).await, ["01A"], "{q}");
}

async fn the_sdk_encodings_of_filters_all_give_the_same_result(app: TestApp) {
    setup(&app).await;
    let want = ["01D"];
    let encodings = [
        // TypeScript: interleaved.
        "filters.key=provider&filters.operator=neq&filters.value=openai&filters.key=cached&filters.operator=eq&filters.value=true&filters.key=success&filters.operator=eq&filters.value=true",
        // Python: grouped by field, paired by position.
        "filters.key=provider&filters.key=cached&filters.key=success&filters.operator=neq&filters.operator=eq&filters.operator=eq&filters.value=openai&filters.value=true&filters.value=true",
        // Grouped in another field order.
        "filters.value=openai&filters.value=true&filters.value=true&filters.operator=neq&filters.operator=eq&filters.operator=eq&filters.key=provider&filters.key=cached&filters.key=success",
        // Brackets.
        "filters[0][key]=provider&filters[0][operator]=neq&filters[0][value][]=openai&filters[1][key]=cached&filters[1][operator]=eq&filters[1][value][0]=true&filters[2][key]=success&filters[2][operator]=eq&filters[2][value]=true",
    ];
    for q in encodings {
        assert_eq!(list_ids(&app, q).await, want, "{q}");
    }
    let json_form = json!([
        {"key": "provider", "operator": "neq", "value": ["openai"]},
        {"key": "cached", "operator": "eq", "value": [true]},
        {"key": "success", "operator": "eq", "value": true},
    ]);
    let q = format!("filters={}", urlencode(&json_form.to_string()));
    assert_eq!(list_ids(&app, &q).await, want, "{q}");
    // Several values in one interleaved filter are alternatives.
    assert_eq!(
        list_ids(
            &app,
            "filters.key=provider&filters.operator=eq&filters.value=groq&filters.value=anthropic"
        )
        .await,
        ["01D", "01B"]
    );
}

async fn bad_filters_and_parameters_are_400_in_the_envelope(app: TestApp) {
    setup(&app).await;
    let bad = [
        dotted("nope", "eq", &["x"]),
        dotted("wholesale", "eq", &["true"]),
        dotted("provider", "like", &["x"]),
        dotted("provider", "lt", &["x"]),
        dotted("success", "gt", &["true"]),
        dotted("tokens", "eq", &["abc"]),
        dotted("tokens_in", "gt", &["1.5"]),
        dotted("cost", "lt", &["cheap"]),
        dotted("success", "eq", &["maybe"]),
        dotted("created_at", "gt", &["yesterday"]),
        dotted("provider", "contains", &[""]),
        dotted("provider", "eq", &[]),
        "filters.key=provider".into(),
        "filters.operator=eq&filters.value=x".into(),
        "filters.kee=provider&filters.operator=eq&filters.value=x".into(),
        "filters.key=a&filters.key=b&filters.operator=eq&filters.operator=eq&filters.value=x"
            .into(),
        "filters=[{\"key\":".into(),
        "filters[x][key]=provider".into(),
        "order_by=cost".into(),
        "order_by_direction=up".into(),
        "meta_info=perhaps".into(),
        "min_cost=free".into(),
        "start_date=someday".into(),
        "feedback=2".into(),
    ];
    for q in bad {
        let (status, body) = app.get(&logs_url(&app, &q)).await;
        assert_error(status, &body, 400, 7002);
        assert!(
            body["errors"][0]["message"].as_str().unwrap().len() > 5,
            "{q}: {body}"
        );
    }
}

async fn the_deprecated_flat_parameters_still_filter(app: TestApp) {
    setup(&app).await;
    let cases: &[(&str, &[&str])] = &[
        ("start_date=1970-01-01T00:00:02Z", &["01D", "01C", "01B"]),
        ("end_date=1970-01-01T00:00:02Z", &["01B", "01A"]),
        ("min_cost=0.01&max_cost=0.5", &["01C", "01A"]),
        ("min_tokens_in=6", &["01C", "01A"]),
        ("max_tokens_out=0", &["01C"]),
        ("min_total_tokens=30&max_total_tokens=30", &["01A"]),
        ("min_duration=300", &["01D", "01B"]),
        ("max_duration=99.9", &["01C"]),
        ("success=false", &["01B"]),
        ("cached=true&provider=groq", &["01D"]),
        ("model=gpt-4o", &["01A"]),
        ("model_type=embedding", &["01C"]),
        (
            "request_content_type=application/json&response_content_type=text/event-stream",
            &["01A"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(list_ids(&app, q).await, *want, "{q}");
    }
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &app.gw_url("acme", "/gateways/gw/logs/01C"),
            Some(&app.admin_token),
            Some(r#"{"feedback": -1}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list_ids(&app, "feedback=0").await, ["01C"]);
    assert!(list_ids(&app, "feedback=1").await.is_empty());
}

async fn meta_info_adds_min_and_max_figures_to_result_info(app: TestApp) {
    setup(&app).await;
    let (status, body) = app.get(&logs_url(&app, "meta_info=true&per_page=1")).await;
    assert_eq!(status, 200, "{body}");
    let info = &body["result_info"];
    assert_eq!(info["total_count"], 4);
    assert_eq!(info["count"], 1);
    assert_eq!(info["min_cost"], 0.0);
    assert_eq!(info["max_cost"], 0.5);
    assert_eq!(info["min_duration"], 50);
    assert_eq!(info["max_duration"], 1000);
    assert_eq!(info["min_tokens_in"], 5);
    assert_eq!(info["max_tokens_in"], 100);
    assert_eq!(info["min_tokens_out"], 0);
    assert_eq!(info["max_tokens_out"], 20);
    assert_eq!(info["min_total_tokens"], 0);
    assert_eq!(info["max_total_tokens"], 100);
    let (_, body) = app
        .get(&logs_url(&app, "meta_info=true&provider=openai"))
        .await;
    assert_eq!(body["result_info"]["min_duration"], 50);
    assert_eq!(
        body["result_info"]["max_duration"], 100,
        "aggregates follow the filters"
    );
    let (_, body) = app.get(&logs_url(&app, "")).await;
    assert!(body["result_info"].get("min_cost").is_none(), "{body}");
}

async fn the_detail_carries_heads_and_sizes(app: TestApp) {
    setup(&app).await;
    let (status, body) = app.get(&app.gw_url("acme", "/gateways/gw/logs/01A")).await;
    assert_eq!(status, 200, "{body}");
    let log = &body["result"];
    assert_eq!(log["id"], "01A");
    assert_eq!(log["model"], "gpt-4o");
    assert_eq!(log["request_head"], "{\"model\"");
    assert_eq!(log["request_head_complete"], false);
    assert_eq!(log["request_size"], 42);
    assert_eq!(log["response_head"], "{}");
    assert_eq!(log["response_head_complete"], true);
    assert_eq!(log["response_size"], 2);
    assert_eq!(log["status_code"], 200);
    assert_eq!(log["authentication"], true);
    let (status, body) = app.get(&app.gw_url("acme", "/gateways/gw/logs/nope")).await;
    assert_error(status, &body, 404, 7003);
}

async fn patch(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    app.send(
        reqwest::Method::PATCH,
        &app.gw_url("acme", &format!("/gateways/gw/logs/{id}")),
        Some(&app.admin_token),
        Some(&body.to_string()),
    )
    .await
}

async fn patch_sets_feedback_score_and_metadata_with_range_checks(app: TestApp) {
    setup(&app).await;
    let (status, body) = patch(
        &app,
        "01A",
        json!({"feedback": -1, "score": 87.5, "metadata": {"k": "v", "n": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!({}));
    assert_eq!(body["success"], true);
    let (_, got) = app.get(&app.gw_url("acme", "/gateways/gw/logs/01A")).await;
    assert_eq!(got["result"]["feedback"], -1.0);
    assert_eq!(got["result"]["score"], 87.5);
    let meta: Value = serde_json::from_str(got["result"]["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta, json!({"k": "v", "n": 2}));

    // Omitted fields stay; null clears.
    let (status, _) = patch(&app, "01A", json!({"score": null})).await;
    assert_eq!(status, 200);
    let (_, got) = app.get(&app.gw_url("acme", "/gateways/gw/logs/01A")).await;
    assert_eq!(got["result"]["feedback"], -1.0);
    assert_eq!(got["result"]["score"], Value::Null);
    let (status, _) = patch(&app, "01A", json!({})).await;
    assert_eq!(status, 200);

    for bad in [
        json!({"feedback": 2}),
        json!({"feedback": "up"}),
        json!({"score": 101}),
        json!({"score": -0.5}),
        json!({"metadata": "x"}),
        json!({"metadata": {"a": [1]}}),
        json!({"metadata": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}}),
    ] {
        let (status, body) = patch(&app, "01A", bad.clone()).await;
        assert_error(status, &body, 400, 7001);
    }
    let (status, body) = patch(&app, "nope", json!({"feedback": 1})).await;
    assert_error(status, &body, 404, 7003);
    let (status, body) = app
        .send(
            reqwest::Method::PATCH,
            &app.gw_url("acme", "/gateways/gw/logs/01A"),
            Some(&app.admin_token),
            Some("{not json"),
        )
        .await;
    assert_error(status, &body, 400, 6007);
}

async fn delete_removes_the_matching_logs_up_to_the_limit(app: TestApp) {
    setup(&app).await;
    let url = |q: &str| logs_url(&app, q);
    let (status, body) = app
        .delete(&url(&format!(
            "{}&limit=1",
            dotted("provider", "eq", &["openai", "groq"])
        )))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"success": true}));
    assert_eq!(
        list_ids(&app, "").await,
        ["01C", "01B", "01A"],
        "only the newest match goes"
    );
    let (status, body) = app
        .delete(&url(&format!(
            "{}&order_by_direction=asc&limit=1",
            dotted("cached", "eq", &["false"])
        )))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        list_ids(&app, "").await,
        ["01C", "01B"],
        "ascending: the oldest match goes"
    );
    let (status, body) = app.delete(&url("")).await;
    assert_eq!(status, 200, "{body}");
    assert!(list_ids(&app, "").await.is_empty());
    for bad in [
        "limit=0",
        "limit=10001",
        "limit=x",
        "filters.key=nope&filters.operator=eq&filters.value=1",
    ] {
        let (status, body) = app.delete(&url(bad)).await;
        assert_error(status, &body, 400, 7002);
    }
}

async fn raw_bodies_are_returned_as_stored_without_an_envelope(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let mut json_log = record("01J", 1, "openai");
    json_log.request_body = Some(r#"{"model":"gpt-4o","messages":[]}"#.into());
    json_log.response_body = Some("data: {\"a\":1}\n\ndata: [DONE]\n\n".into());
    json_log.bodies_stored = true;
    let bare = record("01N", 2, "openai");
    seed(&app, &[json_log, bare]);
    let raw = |id: &str, which: &str| {
        let url = app.gw_url("acme", &format!("/gateways/gw/logs/{id}/{which}"));
        let req = app.client.get(url).bearer_auth(&app.admin_token);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ct, resp.text().await.unwrap())
        }
    };
    let (status, ct, text) = raw("01J", "request").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(text, r#"{"model":"gpt-4o","messages":[]}"#);
    let (status, ct, text) = raw("01J", "response").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(text, "data: {\"a\":1}\n\ndata: [DONE]\n\n");
    for (id, which) in [("01N", "request"), ("01N", "response"), ("nope", "request")] {
        let (status, body) = app
            .get(&app.gw_url("acme", &format!("/gateways/gw/logs/{id}/{which}")))
            .await;
        assert_error(status, &body, 404, 7003);
    }
}

async fn inserting_the_same_batch_twice_stores_each_log_once(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    assert_eq!(seed(&app, &fixture()), 4);
    assert_eq!(
        seed(&app, &fixture()),
        0,
        "a redelivered batch adds nothing"
    );
    let mut mixed = fixture();
    mixed.push(record("01E", 5_000, "openai"));
    assert_eq!(seed(&app, &mixed), 1);
    assert_eq!(seed(&app, &[]), 0);
    let (_, body) = app.get(&logs_url(&app, "")).await;
    assert_eq!(body["result_info"]["total_count"], 5);
    // Larger than one statement's worth of rows.
    let many: Vec<LogRecord> = (0..2_500)
        .map(|i| record(&format!("M{i:05}"), 10_000 + i, "openai"))
        .collect();
    assert_eq!(seed(&app, &many), 2_500);
    assert_eq!(seed(&app, &many), 0);
}

async fn logs_are_isolated_by_account_and_gateway(app: TestApp) {
    setup(&app).await;
    app.create_gateway("acme", "other").await;
    app.create_gateway("rival", "gw").await;
    let mut theirs = record("01R", 9_000, "openai");
    theirs.account_id = "rival".into();
    let mut sibling = record("01S", 9_000, "openai");
    sibling.gateway_id = "other".into();
    seed(&app, &[theirs, sibling]);
    assert_eq!(list_ids(&app, "").await, ["01D", "01C", "01B", "01A"]);
    let (_, body) = app.get(&app.gw_url("rival", "/gateways/gw/logs")).await;
    assert_eq!(ids(&body), ["01R"]);
    let (_, body) = app.get(&app.gw_url("acme", "/gateways/other/logs")).await;
    assert_eq!(ids(&body), ["01S"]);
    for path in [
        "/gateways/gw/logs/01R",
        "/gateways/gw/logs/01S",
        "/gateways/gw/logs/01R/request",
    ] {
        let (status, body) = app.get(&app.gw_url("acme", path)).await;
        assert_error(status, &body, 404, 7003);
    }
    let (status, body) = patch(&app, "01R", json!({"score": 1})).await;
    assert_error(status, &body, 404, 7003);
    app.delete(&logs_url(&app, "")).await;
    let (_, body) = app.get(&app.gw_url("rival", "/gateways/gw/logs")).await;
    assert_eq!(
        ids(&body),
        ["01R"],
        "a delete never reaches another account"
    );
    let (status, body) = app.get(&app.gw_url("acme", "/gateways/missing/logs")).await;
    assert_error(status, &body, 404, 7003);
    let (status, body) = app
        .delete(&app.gw_url("acme", "/gateways/missing/logs"))
        .await;
    assert_error(status, &body, 404, 7003);
    let reader = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let url = logs_url(&app, "");
    let (status, _) = app
        .send(reqwest::Method::GET, &url, Some(&reader), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .send(reqwest::Method::DELETE, &url, Some(&reader), None)
        .await;
    assert_error(status, &body, 403, 10000);
    let (status, body) = app
        .send(
            reqwest::Method::GET,
            &app.gw_url("rival", "/gateways/gw/logs"),
            Some(&reader),
            None,
        )
        .await;
    assert_error(status, &body, 403, 10000);
}
