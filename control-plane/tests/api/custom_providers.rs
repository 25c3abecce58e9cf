//! Custom providers: account-level upstreams.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    a_custom_provider_goes_through_create_get_patch_list_and_delete,
    slugs_are_unique_per_account_and_base_urls_must_be_https,
    bad_custom_provider_bodies_are_400s_naming_the_field,
);

fn body(slug: &str) -> Value {
    json!({"name": format!("Provider {slug}"), "slug": slug, "base_url": "https://llm.example.com/v1/"})
}

async fn a_custom_provider_goes_through_create_get_patch_list_and_delete(app: TestApp) {
    let url = app.gw_url("acme", "/custom-providers");
    let mut b = body("my-llm");
    b["enable"] = json!(true);
    b["description"] = json!("in-house model");
    let (status, created) = app.post(&url, &b).await;
    assert_eq!(status, 200, "{created}");
    let created = &created["result"];
    assert_eq!(created["slug"], "my-llm");
    assert_eq!(
        created["base_url"], "https://llm.example.com/v1",
        "a trailing slash is dropped"
    );
    assert_eq!(created["enable"], true);
    assert_eq!(created["beta"], false);
    assert!(created["logo"].as_str().is_some_and(|l| !l.is_empty()));
    assert!(created["created_at"].as_i64().unwrap() > 1_700_000_000);
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, got) = app.get(&format!("{url}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(&got["result"], created);

    let (status, patched) = app
        .send(
            reqwest::Method::PATCH,
            &format!("{url}/{id}"),
            Some(&app.admin_token),
            Some(&json!({"enable": false, "position": 3}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["result"]["enable"], false);
    assert_eq!(patched["result"]["position"], 3.0);
    assert_eq!(
        patched["result"]["description"], "in-house model",
        "omitted fields keep their values"
    );

    app.post(&url, &body("beta-one")).await;
    let (_, list) = app.get(&format!("{url}?enable=false")).await;
    assert_eq!(list["result_info"]["total_count"], 2);
    let (_, list) = app.get(&format!("{url}?search=BETA")).await;
    let slugs: Vec<_> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].clone())
        .collect();
    assert_eq!(slugs, [json!("beta-one")]);
    let (status, resp) = app.get(&format!("{url}?enable=maybe")).await;
    assert_error(status, &resp, 400, 7002);

    let (status, deleted) = app.delete(&format!("{url}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["result"]["id"], id.as_str());
    let (status, resp) = app.get(&format!("{url}/{id}")).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app
        .get(&app.gw_url("globex", &format!("/custom-providers/{id}")))
        .await;
    assert_error(status, &resp, 404, 7003);
}

async fn slugs_are_unique_per_account_and_base_urls_must_be_https(app: TestApp) {
    let url = app.gw_url("acme", "/custom-providers");
    assert_eq!(app.post(&url, &body("dup")).await.0, 200);
    let (status, resp) = app.post(&url, &body("dup")).await;
    assert_error(status, &resp, 400, 5403);
    assert_eq!(
        app.post(&app.gw_url("globex", "/custom-providers"), &body("dup"))
            .await
            .0,
        200
    );
    let mut plain = body("plain");
    plain["base_url"] = json!("http://10.0.0.5:8000/v1");
    let (status, resp) = app.post(&url, &plain).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["base_url"]);
}

async fn bad_custom_provider_bodies_are_400s_naming_the_field(app: TestApp) {
    let url = app.gw_url("acme", "/custom-providers");
    for field in ["name", "slug", "base_url"] {
        let mut b = body("x");
        b.as_object_mut().unwrap().remove(field);
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), vec![field.to_owned()]);
    }
    for (field, value) in [
        ("slug", json!("has space")),
        ("slug", json!("-lead")),
        ("slug", json!("a/b")),
        ("base_url", json!("ftp://x")),
        ("base_url", json!("https://h/p?q=1")),
        ("enable", json!("yes")),
        ("position", json!("first")),
        ("name", json!("")),
    ] {
        let mut b = body("x");
        b[field] = value.clone();
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec![field.to_owned()],
            "{field}={value}"
        );
    }
    let (_, created) = app.post(&url, &body("ok")).await;
    let id = created["result"]["id"].as_str().unwrap();
    let (status, resp) = app
        .send(
            reqwest::Method::PATCH,
            &format!("{url}/{id}"),
            Some(&app.admin_token),
            Some(r#"{"name": null}"#),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
}
