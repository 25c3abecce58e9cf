//! Provider configs: stored keys, sealed at rest, never returned.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    a_key_is_stored_listed_rotated_and_deleted_without_its_secret_ever_returned,
    one_default_key_per_provider_and_unique_aliases,
    bad_provider_config_bodies_are_400s_naming_the_field,
    provider_configs_belong_to_their_gateway_and_account,
);

const SECRET: &str = "sk-live-abcdefghijklmnopqrstuvwxyz-0123456789";
const ROTATED: &str = "sk-live-ROTATEDROTATEDROTATEDROTATED-9876";

fn body(alias: &str, default: bool, provider: &str, secret: &str) -> Value {
    json!({"alias": alias, "default_config": default, "provider_slug": provider, "secret": secret})
}

async fn a_key_is_stored_listed_rotated_and_deleted_without_its_secret_ever_returned(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let url = app.gw_url("acme", "/gateways/gw/provider_configs");
    let (status, created) = app
        .post(&url, &body("default", true, "openai", SECRET))
        .await;
    assert_eq!(status, 200, "{created}");
    let created = &created["result"];
    assert_eq!(created["alias"], "default");
    assert_eq!(created["provider_slug"], "openai");
    assert_eq!(created["gateway_id"], "gw");
    assert_eq!(created["secret_preview"], "sk-l...6789");
    assert_eq!(created["rate_limit_period"], 60.0);
    assert!(created.get("secret").is_none());
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, list) = app.get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    assert_eq!(list["result_info"]["total_count"], 1);

    let (status, rotated) = app
        .put(&format!("{url}/{id}"), &json!({"secret": ROTATED}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["result"]["secret_preview"], "sk-l...9876");

    // At rest the secret is sealed: the stored text does not contain it, and it opens with the master key.
    let rows = app
        .db
        .with_conn(|c| {
            gatehouse_control_plane::store::provider_configs::all_for_gateway(c, "acme", "gw")
        })
        .unwrap();
    assert!(!rows[0].sealed_secret.contains("ROTATED"));
    assert_eq!(
        app.master_key.open(&rows[0].sealed_secret).unwrap(),
        ROTATED.as_bytes()
    );

    let (status, deleted) = app.delete(&format!("{url}/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["result"]["id"], id.as_str());
    let (status, body) = app.delete(&format!("{url}/{id}")).await;
    assert_error(status, &body, 404, 7003);
    for response in [&list, &rotated, &deleted] {
        let text = response.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains(ROTATED),
            "a secret leaked: {text}"
        );
    }
}

async fn one_default_key_per_provider_and_unique_aliases(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let url = app.gw_url("acme", "/gateways/gw/provider_configs");
    assert_eq!(
        app.post(&url, &body("first", true, "openai", SECRET))
            .await
            .0,
        200
    );
    assert_eq!(
        app.post(&url, &body("second", true, "openai", SECRET))
            .await
            .0,
        200
    );
    assert_eq!(
        app.post(&url, &body("other", true, "anthropic", SECRET))
            .await
            .0,
        200
    );
    let (_, list) = app.get(&url).await;
    let defaults: Vec<(String, String)> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["default_config"] == true)
        .map(|c| {
            (
                c["provider_slug"].as_str().unwrap().to_owned(),
                c["alias"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        defaults,
        [
            ("openai".to_owned(), "second".to_owned()),
            ("anthropic".to_owned(), "other".to_owned())
        ]
    );
    let (status, resp) = app
        .post(&url, &body("first", false, "openai", SECRET))
        .await;
    assert_error(status, &resp, 400, 5403);
    assert_eq!(
        app.post(&url, &body("first", false, "anthropic", SECRET))
            .await
            .0,
        200,
        "aliases are per provider"
    );
}

async fn bad_provider_config_bodies_are_400s_naming_the_field(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let url = app.gw_url("acme", "/gateways/gw/provider_configs");
    let full = body("a", true, "openai", SECRET);
    for field in ["alias", "default_config", "provider_slug", "secret"] {
        let mut b = full.clone();
        b.as_object_mut().unwrap().remove(field);
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec![field.to_owned()],
            "without {field}"
        );
    }
    let cases: &[(&str, Value)] = &[
        ("alias", json!("has space")),
        ("alias", json!(7)),
        ("default_config", json!("yes")),
        ("provider_slug", json!("not-a-provider")),
        ("provider_slug", json!("compat")),
        ("secret", json!("")),
        ("secret", Value::Null),
        ("rate_limit", json!(-1)),
        ("rate_limit_period", json!(0)),
    ];
    for (field, value) in cases {
        let mut b = full.clone();
        b[*field] = value.clone();
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec![(*field).to_owned()],
            "{field}={value}"
        );
    }
    let mut by_reference = full.clone();
    by_reference.as_object_mut().unwrap().remove("secret");
    by_reference["secret_id"] = json!("store-secret-1");
    let (status, resp) = app.post(&url, &by_reference).await;
    assert_error(status, &resp, 400, 7001);
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("secret_id")
    );
    let (status, resp) = app.put(&format!("{url}/nope"), &json!({})).await;
    assert_error(status, &resp, 400, 7001);
    let (status, resp) = app
        .put(&format!("{url}/nope"), &json!({"secret": "x"}))
        .await;
    assert_error(status, &resp, 404, 7003);
}

async fn provider_configs_belong_to_their_gateway_and_account(app: TestApp) {
    let (status, resp) = app
        .post(
            &app.gw_url("acme", "/gateways/missing/provider_configs"),
            &body("a", true, "openai", SECRET),
        )
        .await;
    assert_error(status, &resp, 404, 7003);
    app.create_gateway("acme", "gw").await;
    let (_, created) = app
        .post(
            &app.gw_url("acme", "/gateways/gw/provider_configs"),
            &body("a", true, "openai", SECRET),
        )
        .await;
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    app.create_gateway("globex", "gw").await;
    let (status, list) = app
        .get(&app.gw_url("globex", "/gateways/gw/provider_configs"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["result"], json!([]));
    let (status, resp) = app
        .delete(&app.gw_url("globex", &format!("/gateways/gw/provider_configs/{id}")))
        .await;
    assert_error(status, &resp, 404, 7003);
    // Deleting the gateway deletes its keys; a new gateway with the same id starts with none.
    assert_eq!(app.delete(&app.gw_url("acme", "/gateways/gw")).await.0, 200);
    app.create_gateway("acme", "gw").await;
    let (_, list) = app
        .get(&app.gw_url("acme", "/gateways/gw/provider_configs"))
        .await;
    assert_eq!(list["result"], json!([]));
}
