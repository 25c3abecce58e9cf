//! Dynamic routes (spec §1.7): routes, versions and deployments, their Cloudflare envelopes, validation of the element
//! graph, and the deployed routes in the gateway's config document.

use gatehouse_bus::{ConfigBus, GatewayEntry, StoredDocument};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::token::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    a_route_goes_through_create_get_list_patch_and_delete,
    versions_are_drafts_until_deployed_and_an_older_deployment_is_a_rollback,
    lists_page_and_answer_empty_pages_past_the_end,
    bad_route_bodies_are_400s_naming_the_field_or_the_element,
    custom_providers_of_the_account_are_known_and_is_valid_follows_them,
    unknown_ids_are_404s_and_other_accounts_see_nothing,
    route_names_are_unique_in_a_gateway,
    the_gateway_document_carries_the_deployed_routes,
);

fn to(id: &str) -> Value {
    json!({"elementId": id})
}

/// start → model (provider/model) → end, as the SDKs send it.
fn graph(provider: &str, model: &str) -> Value {
    json!([
        {"id": "s", "type": "start", "outputs": {"next": to("m1")}},
        {"id": "m1", "type": "model",
         "properties": {"provider": provider, "model": model, "retries": 1, "timeout": 5000},
         "outputs": {"success": to("e"), "fallback": to("e")}},
        {"id": "e", "type": "end", "outputs": {}},
    ])
}

fn routes_url(app: &TestApp, account: &str, gateway: &str) -> String {
    app.gw_url(account, &format!("/gateways/{gateway}/routes"))
}

async fn patch(app: &TestApp, url: &str, body: &Value) -> (u16, Value) {
    app.send(
        Method::PATCH,
        url,
        Some(&app.admin_token),
        Some(&body.to_string()),
    )
    .await
}

/// Creates a route; panics unless it succeeds. Returns the `result`.
async fn create(app: &TestApp, account: &str, gateway: &str, name: &str, elements: Value) -> Value {
    let (status, body) = app
        .post(
            &routes_url(app, account, gateway),
            &json!({"name": name, "elements": elements}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    body["result"].clone()
}

/// The route's `data` parsed back.
fn data(version: &Value) -> Value {
    serde_json::from_str(version["data"].as_str().expect("data is a string")).unwrap()
}

async fn a_route_goes_through_create_get_list_patch_and_delete(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let url = routes_url(&app, "acme", "prod");
    let elements = graph("openai", "gpt-4o-mini");
    let created = create(&app, "acme", "prod", "support-bot", elements.clone()).await;
    assert_eq!(created["name"], "support-bot");
    assert_eq!(created["gateway_id"], "prod");
    assert_eq!(created["account_tag"], "acme");
    assert_eq!(created["elements"], elements, "elements come back as sent");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let version = &created["version"];
    assert_eq!(version["active"], "true", "active is a string");
    assert_eq!(version["is_valid"], true);
    assert_eq!(data(version), elements);
    assert_eq!(created["deployment"]["version_id"], version["version_id"]);
    assert!(created["deployment"]["deployment_id"].is_string());
    let id = created["id"].as_str().unwrap().to_owned();
    let first_version = version["version_id"].as_str().unwrap().to_owned();

    let (status, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(&got["result"], &created);

    let (status, list) = app.get(&url).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["success"], true);
    assert!(list.get("result").is_none(), "lists answer `data`: {list}");
    assert_eq!(list["data"]["routes"], json!([created.clone()]));
    assert_eq!(list["data"]["page"], 1);
    assert_eq!(list["data"]["per_page"], 20);
    assert_eq!(list["data"]["order_by"], "created_at");
    assert_eq!(list["data"]["order_by_direction"], "desc");

    // PATCH name: the top-level `route`, the same version.
    let (status, renamed) = patch(&app, &format!("{url}/{id}"), &json!({"name": "helpdesk"})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["success"], true);
    assert!(
        renamed.get("result").is_none(),
        "PATCH answers `route`: {renamed}"
    );
    assert_eq!(renamed["route"]["name"], "helpdesk");
    assert_eq!(
        renamed["route"]["version"]["version_id"],
        first_version.as_str()
    );
    assert_eq!(renamed["route"]["elements"], elements);

    // PATCH elements (as Terraform sends it): a new version, deployed.
    let changed = graph("anthropic", "claude-3-5-haiku");
    let (status, updated) = patch(
        &app,
        &format!("{url}/{id}"),
        &json!({"name": "helpdesk", "elements": changed}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    let route = &updated["route"];
    assert_eq!(route["elements"], changed);
    assert_ne!(route["version"]["version_id"], first_version.as_str());
    assert_eq!(
        route["deployment"]["version_id"],
        route["version"]["version_id"]
    );
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(got["result"]["elements"], changed);
    assert_eq!(got["result"]["name"], "helpdesk");
    let (_, versions) = app.get(&format!("{url}/{id}/versions")).await;
    let active: Vec<_> = versions["data"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["active"].clone())
        .collect();
    assert_eq!(active, [json!("true"), json!("false")], "newest first");

    let (status, deleted) = app.delete(&format!("{url}/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["result"]["id"], id.as_str());
    assert_eq!(deleted["result"]["name"], "helpdesk");
    assert_eq!(deleted["result"]["elements"], changed);
    let (status, resp) = app.get(&format!("{url}/{id}")).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.get(&format!("{url}/{id}/versions")).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.delete(&format!("{url}/{id}")).await;
    assert_error(status, &resp, 404, 7003);
    let (_, list) = app.get(&url).await;
    assert_eq!(list["data"]["routes"], json!([]));
}

async fn versions_are_drafts_until_deployed_and_an_older_deployment_is_a_rollback(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let url = routes_url(&app, "acme", "prod");
    let v1_elements = graph("openai", "gpt-4o-mini");
    let created = create(&app, "acme", "prod", "r", v1_elements.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let v1 = created["version"]["version_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let v2_elements = graph("openai", "gpt-4o");
    let (status, v2) = app
        .post(
            &format!("{url}/{id}/versions"),
            &json!({"elements": v2_elements, "comment": "bigger model"}),
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    let v2 = &v2["result"];
    assert_eq!(v2["id"], id.as_str());
    assert_eq!(v2["name"], "r");
    assert_eq!(v2["gateway_id"], "prod");
    assert_eq!(v2["elements"], v2_elements);
    assert_eq!(v2["active"], "false");
    assert_eq!(v2["is_valid"], true);
    assert_eq!(v2["comment"], "bigger model");
    assert_eq!(data(v2), v2_elements);
    let v2_id = v2["version_id"].as_str().unwrap().to_owned();

    // Not deployed: the route still serves version 1.
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(got["result"]["elements"], v1_elements);
    assert_eq!(got["result"]["version"]["version_id"], v1.as_str());

    let (status, listed) = app.get(&format!("{url}/{id}/versions")).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed.get("result").is_none());
    let versions = listed["data"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version_id"], v2_id.as_str());
    assert_eq!(versions[0]["active"], "false");
    assert_eq!(versions[1]["version_id"], v1.as_str());
    assert_eq!(versions[1]["active"], "true");
    assert!(
        versions
            .iter()
            .all(|v| v["data"].is_string() && v["is_valid"] == true)
    );

    let (status, got) = app.get(&format!("{url}/{id}/versions/{v1}")).await;
    assert_eq!(status, 200, "{got}");
    let got = &got["result"];
    assert_eq!(got["version_id"], v1.as_str());
    assert_eq!(got["active"], "true");
    assert_eq!(got["elements"], v1_elements);
    assert_eq!(data(got), v1_elements);

    // Deploy version 2, then roll back to version 1.
    let (status, deployed) = app
        .post(
            &format!("{url}/{id}/deployments"),
            &json!({"version_id": v2_id}),
        )
        .await;
    assert_eq!(status, 200, "{deployed}");
    assert_eq!(deployed["result"]["id"], id.as_str());
    assert_eq!(deployed["result"]["elements"], v2_elements);
    assert_eq!(
        deployed["result"]["deployment"]["version_id"],
        v2_id.as_str()
    );
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(got["result"]["elements"], v2_elements);
    let (_, got) = app.get(&format!("{url}/{id}/versions/{v1}")).await;
    assert_eq!(got["result"]["active"], "false");

    let (status, rolled_back) = app
        .post(
            &format!("{url}/{id}/deployments"),
            &json!({"version_id": v1, "comment": "rollback"}),
        )
        .await;
    assert_eq!(status, 200, "{rolled_back}");
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(got["result"]["elements"], v1_elements);
    assert_eq!(got["result"]["version"]["version_id"], v1.as_str());
    assert_eq!(got["result"]["version"]["active"], "true");

    let (status, listed) = app.get(&format!("{url}/{id}/deployments")).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed.get("result").is_none());
    assert_eq!(listed["data"]["order_by"], "created_at");
    let deployments = listed["data"]["deployments"].as_array().unwrap();
    let deployed_versions: Vec<_> = deployments
        .iter()
        .map(|d| d["version_id"].clone())
        .collect();
    assert_eq!(
        deployed_versions,
        [json!(v1), json!(v2_id), json!(v1)],
        "newest first"
    );
    assert_eq!(deployments[0]["comment"], "rollback");
    assert!(
        deployments
            .iter()
            .all(|d| d["deployment_id"].is_string() && d["created_at"].is_string())
    );
    assert_eq!(
        got["result"]["deployment"]["deployment_id"],
        deployments[0]["deployment_id"]
    );
}

async fn lists_page_and_answer_empty_pages_past_the_end(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let url = routes_url(&app, "acme", "prod");
    let mut id = String::new();
    for name in ["a", "b", "c"] {
        id = create(&app, "acme", "prod", name, graph("openai", "gpt-4o")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let names = |list: &Value| -> Vec<String> {
        list["data"]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page1) = app.get(&format!("{url}?page=1&per_page=2")).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["data"]["per_page"], 2);
    assert_eq!(page1["data"]["total_count"], 3);
    let (_, page2) = app.get(&format!("{url}?page=2&per_page=2")).await;
    let mut all = names(&page1);
    all.extend(names(&page2));
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    let (status, past) = app.get(&format!("{url}?page=7&per_page=2")).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["data"]["routes"], json!([]));
    assert_eq!(past["data"]["page"], 7);

    let (status, past) = app
        .get(&format!("{url}/{id}/versions?page=3&per_page=1"))
        .await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["data"]["versions"], json!([]));
    let (status, past) = app.get(&format!("{url}/{id}/deployments?page=3")).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["data"]["deployments"], json!([]));

    for bad in ["page=0", "per_page=0", "per_page=101", "page=x"] {
        let (status, resp) = app.get(&format!("{url}?{bad}")).await;
        assert_error(status, &resp, 400, 7002);
    }
}

async fn bad_route_bodies_are_400s_naming_the_field_or_the_element(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let url = routes_url(&app, "acme", "prod");
    let good = json!({"name": "r", "elements": graph("openai", "gpt-4o")});
    for field in ["name", "elements"] {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), [field]);
    }
    for (field, value) in [
        ("name", json!(5)),
        ("name", json!(null)),
        ("name", json!("")),
        ("name", json!("has space")),
        ("name", json!("a/b")),
        ("name", json!("x".repeat(65))),
        ("elements", json!("start")),
        ("elements", json!({"id": "s"})),
        ("elements", json!(null)),
    ] {
        let mut b = good.clone();
        b[field] = value.clone();
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), [field], "{field} = {value}: {resp}");
    }
    let (status, resp) = app
        .send(
            Method::POST,
            &url,
            Some(&app.admin_token),
            Some("{\"name\": "),
        )
        .await;
    assert_error(status, &resp, 400, 6007);

    // Invalid graphs: the message names the element and the problem.
    let (status, resp) = app
        .post(&url, &json!({"name": "r", "elements": graph("nope", "m")}))
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["elements.1"]);
    assert_eq!(
        resp["errors"][0]["message"],
        "element 'm1': unknown provider 'nope'"
    );
    let mut dangling = graph("openai", "gpt-4o");
    dangling[0]["outputs"]["next"] = to("missing");
    let (status, resp) = app
        .post(&url, &json!({"name": "r", "elements": dangling}))
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["elements.0"]);
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("element 's': "),
        "{resp}"
    );
    for elements in [
        json!([]),
        json!([{"id": "e", "type": "end", "outputs": {}}]),
    ] {
        let (status, resp) = app
            .post(&url, &json!({"name": "r", "elements": elements}))
            .await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), ["elements"], "{resp}");
    }
    let mut bad_type = graph("openai", "gpt-4o");
    bad_type[2]["type"] = json!("finish");
    let (status, resp) = app
        .post(&url, &json!({"name": "r", "elements": bad_type}))
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["elements.2"]);
    let (_, list) = app.get(&url).await;
    assert_eq!(list["data"]["routes"], json!([]), "nothing was stored");

    // The same checks on versions, PATCH and deployments.
    let id = create(&app, "acme", "prod", "r", graph("openai", "gpt-4o")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, resp) = app
        .post(
            &format!("{url}/{id}/versions"),
            &json!({"elements": graph("nope", "m")}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["elements.1"]);
    let (status, resp) = app.post(&format!("{url}/{id}/versions"), &json!({})).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["elements"]);
    let (status, resp) = patch(&app, &format!("{url}/{id}"), &json!({})).await;
    assert_error(status, &resp, 400, 7001);
    let (status, resp) = patch(&app, &format!("{url}/{id}"), &json!({"name": 1})).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["name"]);
    let (status, resp) = patch(
        &app,
        &format!("{url}/{id}"),
        &json!({"elements": graph("nope", "m")}),
    )
    .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["elements.1"]);
    let (status, resp) = app
        .post(&format!("{url}/{id}/deployments"), &json!({}))
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["version_id"]);
    let (status, resp) = app
        .post(
            &format!("{url}/{id}/deployments"),
            &json!({"version_id": 7}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    let (_, versions) = app.get(&format!("{url}/{id}/versions")).await;
    assert_eq!(versions["data"]["versions"].as_array().unwrap().len(), 1);
}

async fn custom_providers_of_the_account_are_known_and_is_valid_follows_them(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    app.create_gateway("globex", "prod").await;
    let (status, provider) = app
        .post(
            &app.gw_url("acme", "/custom-providers"),
            &json!({"name": "Mine", "slug": "my-llm", "base_url": "https://llm.example.com/v1", "enable": true}),
        )
        .await;
    assert_eq!(status, 200, "{provider}");
    let provider_id = provider["result"]["id"].as_str().unwrap().to_owned();

    // Another account's custom provider is unknown.
    let (status, resp) = app
        .post(
            &routes_url(&app, "globex", "prod"),
            &json!({"name": "r", "elements": graph("custom-my-llm", "m")}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(
        resp["errors"][0]["message"],
        "element 'm1': unknown provider 'custom-my-llm'"
    );

    let url = routes_url(&app, "acme", "prod");
    let created = create(&app, "acme", "prod", "r", graph("custom-my-llm", "m")).await;
    assert_eq!(created["version"]["is_valid"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    let custom_version = created["version"]["version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, v2) = app
        .post(
            &format!("{url}/{id}/versions"),
            &json!({"elements": graph("openai", "gpt-4o")}),
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    let v2 = v2["result"]["version_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("{url}/{id}/deployments"),
            &json!({"version_id": v2}),
        )
        .await;
    assert_eq!(status, 200);

    // The custom provider goes away: the version that names it is no longer valid, nor deployable.
    let (status, _) = app
        .delete(&app.gw_url("acme", &format!("/custom-providers/{provider_id}")))
        .await;
    assert_eq!(status, 200);
    let (_, got) = app
        .get(&format!("{url}/{id}/versions/{custom_version}"))
        .await;
    assert_eq!(got["result"]["is_valid"], false, "{got}");
    let (_, listed) = app.get(&format!("{url}/{id}/versions")).await;
    let valid: Vec<_> = listed["data"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["is_valid"].clone())
        .collect();
    assert_eq!(valid, [json!(true), json!(false)]);
    let (status, resp) = app
        .post(
            &format!("{url}/{id}/deployments"),
            &json!({"version_id": custom_version}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["version_id"]);
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("element 'm1': unknown provider 'custom-my-llm'"),
        "{resp}"
    );
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(
        got["result"]["version"]["version_id"],
        v2.as_str(),
        "still deployed"
    );
}

async fn unknown_ids_are_404s_and_other_accounts_see_nothing(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    app.create_gateway("globex", "prod").await;
    let url = routes_url(&app, "acme", "prod");
    let created = create(&app, "acme", "prod", "r", graph("openai", "gpt-4o")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let version = created["version"]["version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = "00000000-0000-4000-8000-000000000000";

    for (status, resp) in [
        app.get(&format!("{url}/{missing}")).await,
        app.get(&format!("{url}/{missing}/versions")).await,
        app.get(&format!("{url}/{missing}/deployments")).await,
        app.get(&format!("{url}/{id}/versions/{missing}")).await,
        app.delete(&format!("{url}/{missing}")).await,
        patch(&app, &format!("{url}/{missing}"), &json!({"name": "x"})).await,
        app.post(
            &format!("{url}/{missing}/versions"),
            &json!({"elements": graph("openai", "m")}),
        )
        .await,
        app.post(
            &format!("{url}/{id}/deployments"),
            &json!({"version_id": missing}),
        )
        .await,
        // A gateway that does not exist.
        app.get(&routes_url(&app, "acme", "nope")).await,
        app.post(
            &routes_url(&app, "acme", "nope"),
            &json!({"name": "r", "elements": graph("openai", "m")}),
        )
        .await,
        // The same ids under another gateway or another account.
        app.get(&format!("{}/{id}", routes_url(&app, "globex", "prod")))
            .await,
        app.get(&format!(
            "{}/{id}/versions/{version}",
            routes_url(&app, "globex", "prod")
        ))
        .await,
        app.delete(&format!("{}/{id}", routes_url(&app, "globex", "prod")))
            .await,
    ] {
        assert_error(status, &resp, 404, 7003);
    }
    let (_, list) = app.get(&routes_url(&app, "globex", "prod")).await;
    assert_eq!(list["data"]["routes"], json!([]));

    // A token for another account is refused; a read-only token cannot write.
    let globex = app.token(&["globex"], &[Scope::AiGatewayEdit]);
    let (status, resp) = app
        .send(Method::GET, &format!("{url}/{id}"), Some(&globex), None)
        .await;
    assert_error(status, &resp, 403, 10000);
    let reader = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let (status, _) = app
        .send(
            Method::GET,
            &format!("{url}/{id}/versions"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, resp) = app
        .send(Method::DELETE, &format!("{url}/{id}"), Some(&reader), None)
        .await;
    assert_error(status, &resp, 403, 10000);
    let (status, resp) = app.send(Method::GET, &url, None, None).await;
    assert_error(status, &resp, 401, 10000);
    let (_, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(got["result"]["id"], id.as_str(), "still there");

    // Deleting the gateway deletes its routes: a new gateway with the same id starts with none.
    assert_eq!(
        app.delete(&app.gw_url("acme", "/gateways/prod")).await.0,
        200
    );
    app.create_gateway("acme", "prod").await;
    let (_, list) = app.get(&url).await;
    assert_eq!(list["data"]["routes"], json!([]));
    let (status, resp) = app.get(&format!("{url}/{id}")).await;
    assert_error(status, &resp, 404, 7003);
}

async fn route_names_are_unique_in_a_gateway(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    app.create_gateway("acme", "staging").await;
    let url = routes_url(&app, "acme", "prod");
    create(&app, "acme", "prod", "shared", graph("openai", "gpt-4o")).await;
    let (status, resp) = app
        .post(
            &url,
            &json!({"name": "shared", "elements": graph("openai", "gpt-4o")}),
        )
        .await;
    assert_error(status, &resp, 400, 5403);
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("'shared'"),
        "{resp}"
    );
    // Another gateway may use the name.
    create(&app, "acme", "staging", "shared", graph("openai", "gpt-4o")).await;
    // Renaming onto a taken name is refused the same way; renaming to its own name is fine.
    let other = create(&app, "acme", "prod", "other", graph("openai", "gpt-4o")).await;
    let other_url = format!("{url}/{}", other["id"].as_str().unwrap());
    let (status, resp) = patch(&app, &other_url, &json!({"name": "shared"})).await;
    assert_error(status, &resp, 400, 5403);
    let (status, same) = patch(&app, &other_url, &json!({"name": "other"})).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["route"]["name"], "other");
}

async fn fetch_document(app: &TestApp, key: &GatewayKey) -> GatewayConfigDocument {
    match app
        .bus
        .fetch_gateways(std::slice::from_ref(key))
        .await
        .unwrap()
        .remove(0)
    {
        Some(GatewayEntry::Document(StoredDocument { body, .. })) => {
            serde_json::from_str(&body).unwrap()
        }
        other => panic!("expected a document, got {other:?}"),
    }
}

async fn the_gateway_document_carries_the_deployed_routes(app: TestApp) {
    let key = GatewayKey::new("acme", "prod");
    app.create_gateway("acme", "prod").await;
    let url = routes_url(&app, "acme", "prod");
    assert!(fetch_document(&app, &key).await.routes.is_empty());

    let v1_elements = graph("openai", "gpt-4o-mini");
    let b = create(&app, "acme", "prod", "b-route", v1_elements.clone()).await;
    let a = create(
        &app,
        "acme",
        "prod",
        "a-route",
        graph("anthropic", "claude"),
    )
    .await;
    let doc = fetch_document(&app, &key).await;
    let names: Vec<_> = doc.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a-route", "b-route"], "sorted by name");
    assert_eq!(doc.routes[1].id, b["id"].as_str().unwrap());
    assert_eq!(
        doc.routes[1].version_id,
        b["version"]["version_id"].as_str().unwrap()
    );
    assert_eq!(doc.routes[1].elements, v1_elements);

    // A draft version does not change what is deployed; deploying it does.
    let b_id = b["id"].as_str().unwrap();
    let v2_elements = graph("openai", "gpt-4o");
    let (_, v2) = app
        .post(
            &format!("{url}/{b_id}/versions"),
            &json!({"elements": v2_elements}),
        )
        .await;
    let v2 = v2["result"]["version_id"].as_str().unwrap().to_owned();
    assert_eq!(
        fetch_document(&app, &key).await.routes[1].elements,
        v1_elements
    );
    app.post(
        &format!("{url}/{b_id}/deployments"),
        &json!({"version_id": v2}),
    )
    .await;
    let doc = fetch_document(&app, &key).await;
    assert_eq!(doc.routes[1].version_id, v2);
    assert_eq!(doc.routes[1].elements, v2_elements);

    // A rename and a PATCH with elements are published.
    patch(&app, &format!("{url}/{b_id}"), &json!({"name": "0-first"})).await;
    let changed = graph("openai", "o3-mini");
    patch(
        &app,
        &format!("{url}/{b_id}"),
        &json!({"elements": changed}),
    )
    .await;
    let doc = fetch_document(&app, &key).await;
    assert_eq!(doc.routes[0].name, "0-first");
    assert_eq!(doc.routes[0].elements, changed);

    // Deleted routes leave the document.
    app.delete(&format!("{url}/{}", a["id"].as_str().unwrap()))
        .await;
    let doc = fetch_document(&app, &key).await;
    let names: Vec<_> = doc.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["0-first"]);
}
