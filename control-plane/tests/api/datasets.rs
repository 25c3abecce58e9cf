//! Datasets (spec §1.4, §3.11): CRUD in Cloudflare's envelopes, paging, validation of the filters with the field
//! path of each problem, the limit of ten per gateway, account isolation, and the cascade from the gateway.

use gatehouse_shared::token::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    a_dataset_goes_through_create_get_list_put_and_delete,
    lists_page_filter_and_answer_empty_pages_past_the_end,
    bad_dataset_bodies_are_400s_naming_the_field,
    the_eleventh_dataset_of_a_gateway_is_refused_naming_the_limit,
    unknown_gateways_and_datasets_and_other_accounts_are_404s,
    deleting_a_gateway_deletes_its_datasets_and_evaluations,
);

pub fn datasets_url(app: &TestApp, account: &str, gateway: &str) -> String {
    app.gw_url(account, &format!("/gateways/{gateway}/datasets"))
}

/// The filters of a dataset of one model.
pub fn model_is(model: &str) -> Value {
    json!([{"key": "model", "operator": "eq", "value": [model]}])
}

/// Creates a dataset; panics unless it succeeds. Returns the `result`.
pub async fn create_dataset(
    app: &TestApp,
    account: &str,
    gateway: &str,
    name: &str,
    filters: Value,
) -> Value {
    let (status, body) = app
        .post(
            &datasets_url(app, account, gateway),
            &json!({"name": name, "enable": true, "filters": filters}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    body["result"].clone()
}

async fn a_dataset_goes_through_create_get_list_put_and_delete(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let url = datasets_url(&app, "acme", "gw");
    let filters = json!([
        {"key": "model", "operator": "contains", "value": ["gpt"]},
        {"key": "cost", "operator": "lt", "value": [0.5]},
        {"key": "created_at", "operator": "gt", "value": ["2026-01-01T00:00:00Z"]},
        {"key": "success", "operator": "eq", "value": [true]},
    ]);
    let created = create_dataset(&app, "acme", "gw", "cheap gpt", filters.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "cheap gpt");
    assert_eq!(created["enable"], true);
    assert_eq!(created["gateway_id"], "gw");
    assert_eq!(created["account_id"], "acme");
    assert_eq!(created["filters"], filters);
    for field in ["created_at", "modified_at"] {
        let at = created[field].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{field}: {at}"
        );
    }

    let (status, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["result"], created);

    let (status, list) = app.get(&url).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["result"], json!([created]));
    assert_eq!(list["result_info"]["total_count"], 1);

    let (status, put) = app
        .put(
            &format!("{url}/{id}"),
            &json!({"name": "renamed", "enable": false, "filters": model_is("gpt-4o")}),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["result"]["id"], id.as_str());
    assert_eq!(put["result"]["name"], "renamed");
    assert_eq!(put["result"]["enable"], false);
    assert_eq!(put["result"]["filters"], model_is("gpt-4o"));
    assert_eq!(put["result"]["created_at"], created["created_at"]);
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(got["result"], put["result"]);

    let (status, deleted) = app.delete(&format!("{url}/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted["result"], put["result"],
        "DELETE returns the deleted object"
    );
    let (status, gone) = app.get(&format!("{url}/{id}")).await;
    assert_error(status, &gone, 404, 7003);
    let (status, again) = app.delete(&format!("{url}/{id}")).await;
    assert_error(status, &again, 404, 7003);
}

async fn lists_page_filter_and_answer_empty_pages_past_the_end(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let url = datasets_url(&app, "acme", "gw");
    for name in ["alpha", "beta", "gamma"] {
        create_dataset(&app, "acme", "gw", name, model_is(&format!("{name}-model"))).await;
    }
    let (status, off) = app
        .post(
            &url,
            &json!({"name": "off", "enable": false, "filters": model_is("x")}),
        )
        .await;
    assert_eq!(status, 200, "{off}");
    let names = |list: &Value| -> Vec<String> {
        list["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page1) = app.get(&format!("{url}?page=1&per_page=3")).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(names(&page1), ["alpha", "beta", "gamma"], "oldest first");
    assert_eq!(page1["result_info"]["total_count"], 4);
    assert_eq!(page1["result_info"]["per_page"], 3);
    let (_, page2) = app.get(&format!("{url}?page=2&per_page=3")).await;
    assert_eq!(names(&page2), ["off"]);
    let (status, past) = app.get(&format!("{url}?page=9&per_page=3")).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["result"], json!([]));
    assert_eq!(past["result_info"]["total_count"], 4);

    let (_, by_name) = app.get(&format!("{url}?name=beta")).await;
    assert_eq!(names(&by_name), ["beta"]);
    let (_, disabled) = app.get(&format!("{url}?enable=false")).await;
    assert_eq!(names(&disabled), ["off"]);
    let (_, enabled) = app.get(&format!("{url}?enable=true")).await;
    assert_eq!(names(&enabled), ["alpha", "beta", "gamma"]);
    let (_, searched) = app.get(&format!("{url}?search=GAMMA")).await;
    assert_eq!(
        names(&searched),
        ["gamma"],
        "search looks in names, ignoring case"
    );
    let (_, in_filters) = app.get(&format!("{url}?search=beta-model")).await;
    assert_eq!(names(&in_filters), ["beta"], "search looks in filters");

    for bad in ["per_page=0", "per_page=101", "page=0", "enable=maybe"] {
        let (status, body) = app.get(&format!("{url}?{bad}")).await;
        assert_error(status, &body, 400, 7002);
    }
}

async fn bad_dataset_bodies_are_400s_naming_the_field(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let url = datasets_url(&app, "acme", "gw");
    let filter = |key: &str, operator: &str, value: Value| json!({"name": "d", "enable": true, "filters": [{"key": key, "operator": operator, "value": value}]});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["name", "enable", "filters"]),
        (json!({"name": "d", "enable": true}), vec!["filters"]),
        (json!({"name": "d", "filters": []}), vec!["enable"]),
        (json!({"enable": true, "filters": []}), vec!["name"]),
        (
            json!({"name": 3, "enable": "yes", "filters": {}}),
            vec!["name", "enable", "filters"],
        ),
        (
            json!({"name": "", "enable": true, "filters": []}),
            vec!["name"],
        ),
        (
            json!({"name": "d", "enable": true, "filters": null}),
            vec!["filters"],
        ),
        (
            json!({"name": "d", "enable": true, "filters": ["model"]}),
            vec!["filters.0"],
        ),
        (
            json!({"name": "d", "enable": true, "filters": [{}]}),
            vec!["filters.0.key", "filters.0.operator", "filters.0.value"],
        ),
        (
            filter("event_id", "eq", json!(["x"])),
            vec!["filters.0.key"],
        ),
        (
            filter("model", "neq", json!(["x"])),
            vec!["filters.0.operator"],
        ),
        (
            json!({"name": "d", "enable": true, "filters": [{"key": "model", "operator": 1, "value": ["x"]}]}),
            vec!["filters.0.operator"],
        ),
        (
            filter("model", "lt", json!(["x"])),
            vec!["filters.0.operator"],
        ),
        (
            filter("cost", "contains", json!([1])),
            vec!["filters.0.operator"],
        ),
        (
            filter("success", "gt", json!([true])),
            vec!["filters.0.operator"],
        ),
        (filter("model", "eq", json!([])), vec!["filters.0.value"]),
        (
            filter("model", "eq", json!("gpt-4o")),
            vec!["filters.0.value"],
        ),
        (filter("model", "eq", json!([4])), vec!["filters.0.value.0"]),
        (
            filter("cost", "gt", json!(["x"])),
            vec!["filters.0.value.0"],
        ),
        (
            filter("duration", "lt", json!([10, 2.5])),
            vec!["filters.0.value.1"],
        ),
        (
            filter("cached", "eq", json!(["no"])),
            vec!["filters.0.value.0"],
        ),
        (
            filter("created_at", "gt", json!(["last week"])),
            vec!["filters.0.value.0"],
        ),
        (
            filter("model", "eq", json!([null])),
            vec!["filters.0.value.0"],
        ),
        (
            filter("model", "eq", json!([{"a": 1}])),
            vec!["filters.0.value.0"],
        ),
    ];
    for (body, want) in cases {
        let (status, resp) = app.post(&url, &body).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), want, "{body} → {resp}");
        // PUT reads the same body.
        let created = create_dataset(&app, "acme", "gw", "ok", json!([])).await;
        let (status, resp) = app
            .put(&format!("{url}/{}", created["id"].as_str().unwrap()), &body)
            .await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), want, "PUT {body}");
        app.delete(&format!("{url}/{}", created["id"].as_str().unwrap()))
            .await;
    }
    // The message names what was wrong.
    let (_, resp) = app
        .post(&url, &filter("cost", "contains", json!([1])))
        .await;
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("contains") && message.contains("cost"),
        "{message}"
    );

    for raw in ["{", "", "[1, 2"] {
        let (status, resp) = app
            .send(Method::POST, &url, Some(&app.admin_token), Some(raw))
            .await;
        assert_error(status, &resp, 400, 6007);
    }
    let (status, resp) = app
        .send(Method::POST, &url, Some(&app.admin_token), Some("[1]"))
        .await;
    assert_error(status, &resp, 400, 7001);
    let (_, list) = app.get(&url).await;
    assert_eq!(list["result"], json!([]), "nothing was stored");
}

async fn the_eleventh_dataset_of_a_gateway_is_refused_naming_the_limit(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("acme", "other").await;
    let mut last = Value::Null;
    for i in 0..10 {
        last = create_dataset(&app, "acme", "gw", &format!("d{i}"), json!([])).await;
    }
    let url = datasets_url(&app, "acme", "gw");
    let body = json!({"name": "d10", "enable": true, "filters": []});
    let (status, resp) = app.post(&url, &body).await;
    assert_error(status, &resp, 400, 7002);
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("10 datasets"), "{message}");
    // Another gateway has its own ten.
    create_dataset(&app, "acme", "other", "d0", json!([])).await;
    // Deleting one makes room.
    app.delete(&format!("{url}/{}", last["id"].as_str().unwrap()))
        .await;
    let (status, resp) = app.post(&url, &body).await;
    assert_eq!(status, 200, "{resp}");
}

async fn unknown_gateways_and_datasets_and_other_accounts_are_404s(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let created = create_dataset(&app, "acme", "gw", "mine", json!([])).await;
    let id = created["id"].as_str().unwrap();
    let body = json!({"name": "x", "enable": true, "filters": []});

    // Unknown gateway.
    let missing = datasets_url(&app, "acme", "nope");
    let (status, resp) = app.get(&missing).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.post(&missing, &body).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.get(&format!("{missing}/{id}")).await;
    assert_error(status, &resp, 404, 7003);

    // Unknown dataset.
    let url = datasets_url(&app, "acme", "gw");
    let (status, resp) = app.get(&format!("{url}/nope")).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.put(&format!("{url}/nope"), &body).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.delete(&format!("{url}/nope")).await;
    assert_error(status, &resp, 404, 7003);

    // Another account, even with a token valid for both, sees nothing of acme's.
    app.create_gateway("globex", "gw").await;
    let theirs = datasets_url(&app, "globex", "gw");
    for (method, url) in [
        (Method::GET, format!("{theirs}/{id}")),
        (Method::PUT, format!("{theirs}/{id}")),
        (Method::DELETE, format!("{theirs}/{id}")),
    ] {
        let b = (method == Method::PUT).then(|| body.to_string());
        let (status, resp) = app
            .send(method, &url, Some(&app.admin_token), b.as_deref())
            .await;
        assert_error(status, &resp, 404, 7003);
    }
    let (_, list) = app.get(&theirs).await;
    assert_eq!(list["result"], json!([]));
    // A token of another account is refused outright, a read token cannot write.
    let globex = app.token(&["globex"], &[Scope::AiGatewayRead, Scope::AiGatewayEdit]);
    let (status, resp) = app.send(Method::GET, &url, Some(&globex), None).await;
    assert_error(status, &resp, 403, 10000);
    let reader = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let (status, resp) = app
        .send(Method::POST, &url, Some(&reader), Some(&body.to_string()))
        .await;
    assert_error(status, &resp, 403, 10000);
    let (status, _) = app.send(Method::GET, &url, Some(&reader), None).await;
    assert_eq!(status, 200);
    let (_, still) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(still["result"], created);
}

async fn deleting_a_gateway_deletes_its_datasets_and_evaluations(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let dataset = create_dataset(&app, "acme", "gw", "all", json!([])).await;
    let (status, evaluation) = app
        .post(
            &app.gw_url("acme", "/gateways/gw/evaluations"),
            &json!({"name": "e", "dataset_ids": [dataset["id"]], "evaluation_type_ids": ["speed"]}),
        )
        .await;
    assert_eq!(status, 200, "{evaluation}");
    let (status, _) = app.delete(&app.gw_url("acme", "/gateways/gw")).await;
    assert_eq!(status, 200);
    let counts = app
        .db
        .with_conn(|c| {
            use diesel::prelude::*;
            use gatehouse_control_plane::schema::{datasets, evaluation_results, evaluations};
            let d: i64 = datasets::table.count().get_result(c)?;
            let e: i64 = evaluations::table.count().get_result(c)?;
            let r: i64 = evaluation_results::table.count().get_result(c)?;
            Ok((d, e, r))
        })
        .unwrap();
    assert_eq!(counts, (0, 0, 0), "the cascade removed every row");
    // A new gateway of the same id starts empty.
    app.create_gateway("acme", "gw").await;
    let (status, list) = app.get(&datasets_url(&app, "acme", "gw")).await;
    assert_eq!(status, 200);
    assert_eq!(list["result"], json!([]));
}
