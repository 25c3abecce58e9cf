//! Users and teams (issue 14): subjects with their own limits, their lifecycle through the API, validation,
//! isolation, scopes, and deletes refused while keys or users name them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::keys::{create_key, patch, published};
use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths};

on_both_backends!(
    users_and_teams_go_through_create_get_patch_list_and_delete,
    a_user_or_team_that_unrevoked_keys_or_users_name_cannot_be_deleted,
    bad_user_and_team_bodies_are_400s_naming_the_field,
    users_and_teams_are_isolated_by_account_and_need_their_scopes,
);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, account: &str, what: &str, body: &Value) -> Value {
    let (status, created) = app
        .post(&app.gw_url(account, &format!("/{what}")), body)
        .await;
    assert_eq!(status, 200, "{created}");
    created["result"].clone()
}

async fn users_and_teams_go_through_create_get_patch_list_and_delete(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let team = create(
        &app,
        "acme",
        "teams",
        &json!({"name": "Research", "metadata": {"cost_center": 42},
            "limits": {"tpm": 1000, "budget": {"amount_usd": 100, "period": "week"}}}),
    )
    .await;
    let team_id = id_of(&team);
    assert_eq!(team["name"], "Research");
    assert_eq!(team["metadata"], json!({"cost_center": 42}));
    assert_eq!(
        team["limits"],
        json!({"rpm": null, "tpm": 1000, "tpm_kind": "total",
            "budget": {"amount_usd": 100.0, "period": "week"}, "models": []})
    );
    assert!(team["created_at"].as_str().unwrap().ends_with('Z'));

    let user = create(
        &app,
        "acme",
        "users",
        &json!({"name": "alice", "team_id": team_id, "limits": {"rpm": 10}}),
    )
    .await;
    let user_id = id_of(&user);
    assert_eq!(user["team_id"], team_id.as_str());
    assert_eq!(user["metadata"], json!({}));
    assert_eq!(user["limits"]["rpm"], 10);
    create(&app, "acme", "users", &json!({"name": "bob"})).await;

    for (what, id, object) in [("teams", &team_id, &team), ("users", &user_id, &user)] {
        let (status, got) = app.get(&app.gw_url("acme", &format!("/{what}/{id}"))).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(&got["result"], object);
    }
    let doc = published(&app, "acme", "prod").await;
    assert_eq!(doc.access.teams.len(), 1);
    assert_eq!(doc.access.users.len(), 2);

    // PATCH keeps omitted fields; null resets.
    let (status, patched) = patch(
        &app,
        &app.gw_url("acme", &format!("/users/{user_id}")),
        &json!({"team_id": null, "metadata": {"level": "senior"}}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["result"]["team_id"], Value::Null);
    assert_eq!(patched["result"]["name"], "alice");
    assert_eq!(patched["result"]["limits"]["rpm"], 10);
    assert_eq!(patched["result"]["metadata"], json!({"level": "senior"}));
    let (status, patched) = patch(
        &app,
        &app.gw_url("acme", &format!("/teams/{team_id}")),
        &json!({"name": "R&D", "limits": null}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["result"]["name"], "R&D");
    assert_eq!(patched["result"]["metadata"], json!({"cost_center": 42}));
    assert_eq!(
        patched["result"]["limits"],
        json!({"rpm": null, "tpm": null, "tpm_kind": "total", "budget": null, "models": []})
    );
    let doc = published(&app, "acme", "prod").await;
    assert_eq!(doc.access.teams[0].name, "R&D");
    assert!(doc.access.teams[0].limits.is_empty());

    // Lists: oldest first, search by name.
    let (_, users) = app.get(&app.gw_url("acme", "/users")).await;
    assert_eq!(users["result_info"]["total_count"], 2);
    assert_eq!(users["result"][0]["name"], "alice");
    let (_, found) = app.get(&app.gw_url("acme", "/users?search=BO")).await;
    assert_eq!(found["result"].as_array().unwrap().len(), 1);
    assert_eq!(found["result"][0]["name"], "bob");
    let (_, teams) = app.get(&app.gw_url("acme", "/teams?search=r%26d")).await;
    assert_eq!(teams["result"][0]["id"], team_id.as_str());
    let (status, resp) = app.get(&app.gw_url("acme", "/teams?per_page=0")).await;
    assert_error(status, &resp, 400, 7002);

    // Delete returns the object; it is gone afterwards, and from the documents.
    let (status, deleted) = app
        .delete(&app.gw_url("acme", &format!("/users/{user_id}")))
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["result"]["id"], user_id.as_str());
    let (status, deleted) = app
        .delete(&app.gw_url("acme", &format!("/teams/{team_id}")))
        .await;
    assert_eq!(status, 200, "{deleted}");
    for what in ["users", "teams"] {
        let id = if what == "users" { &user_id } else { &team_id };
        let (status, resp) = app.get(&app.gw_url("acme", &format!("/{what}/{id}"))).await;
        assert_error(status, &resp, 404, 7003);
        let (status, resp) = app
            .delete(&app.gw_url("acme", &format!("/{what}/{id}")))
            .await;
        assert_error(status, &resp, 404, 7003);
    }
    let doc = published(&app, "acme", "prod").await;
    assert!(doc.access.teams.is_empty());
    assert_eq!(doc.access.users.len(), 1);
}

async fn a_user_or_team_that_unrevoked_keys_or_users_name_cannot_be_deleted(app: TestApp) {
    let team = create(&app, "acme", "teams", &json!({"name": "t"})).await;
    let team_id = id_of(&team);
    let user = create(
        &app,
        "acme",
        "users",
        &json!({"name": "u", "team_id": team_id}),
    )
    .await;
    let user_id = id_of(&user);
    let key = create_key(&app, "acme", &json!({"name": "k", "user_id": user_id})).await;
    let key_id = id_of(&key);
    let team_key = create_key(&app, "acme", &json!({"name": "tk", "team_id": team_id})).await;
    let team_key_id = id_of(&team_key);

    let (status, resp) = app
        .delete(&app.gw_url("acme", &format!("/users/{user_id}")))
        .await;
    assert_error(status, &resp, 400, 7002);
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&key_id),
        "the error names the key: {message}"
    );
    let (status, resp) = app
        .delete(&app.gw_url("acme", &format!("/teams/{team_id}")))
        .await;
    assert_error(status, &resp, 400, 7002);
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&team_key_id) && message.contains(&user_id),
        "the error names the key and the user: {message}"
    );

    // Once the key is revoked the user can go; the revoked key stays readable, without its user.
    app.delete(&app.gw_url("acme", &format!("/keys/{key_id}")))
        .await;
    let (status, resp) = app
        .delete(&app.gw_url("acme", &format!("/users/{user_id}")))
        .await;
    assert_eq!(status, 200, "{resp}");
    let (status, got) = app
        .get(&app.gw_url("acme", &format!("/keys/{key_id}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["result"]["revoked"], true);
    assert_eq!(got["result"]["user_id"], Value::Null);

    // Moving the team's key elsewhere frees the team.
    let (status, resp) = patch(
        &app,
        &app.gw_url("acme", &format!("/keys/{team_key_id}")),
        &json!({"team_id": null}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = app
        .delete(&app.gw_url("acme", &format!("/teams/{team_id}")))
        .await;
    assert_eq!(status, 200, "{resp}");

    // A key can no longer name what is gone.
    let (status, resp) = app
        .post(
            &app.gw_url("acme", "/keys"),
            &json!({"name": "late", "user_id": user_id, "team_id": team_id}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    let mut paths = error_paths(&resp);
    paths.sort();
    assert_eq!(paths, ["team_id", "user_id"]);
}

async fn bad_user_and_team_bodies_are_400s_naming_the_field(app: TestApp) {
    let common: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": ["x"]}), "name"),
        (json!({"name": "x".repeat(257)}), "name"),
        (json!({"name": "n", "metadata": 3}), "metadata"),
        (json!({"name": "n", "metadata": {"": 1}}), "metadata."),
        (json!({"name": "n", "limits": {"rpm": 0}}), "limits.rpm"),
        (json!({"name": "n", "limits": {"tpm": -1}}), "limits.tpm"),
        (
            json!({"name": "n", "limits": {"tpm_kind": "INPUT"}}),
            "limits.tpm_kind",
        ),
        (
            json!({"name": "n", "limits": {"budget": {"amount_usd": 0, "period": "month"}}}),
            "limits.budget.amount_usd",
        ),
        (
            json!({"name": "n", "limits": {"budget": {"amount_usd": 1, "period": "fortnight"}}}),
            "limits.budget.period",
        ),
        (
            json!({"name": "n", "limits": {"models": [{"model": "a/*", "rpm": 1}, {"model": "a/*", "rpm": 2}]}}),
            "limits.models.1.model",
        ),
    ];
    let mut user_cases = common.clone();
    user_cases.push((json!({"name": "n", "team_id": "no-such-team"}), "team_id"));
    user_cases.push((json!({"name": "n", "team_id": false}), "team_id"));
    for (what, cases) in [("users", &user_cases), ("teams", &common)] {
        let url = app.gw_url("acme", &format!("/{what}"));
        for (body, path) in cases {
            let (status, resp) = app.post(&url, body).await;
            assert_error(status, &resp, 400, 7001);
            assert_eq!(error_paths(&resp), [*path], "POST {what} {body}: {resp}");
        }
        let (_, list) = app.get(&url).await;
        assert_eq!(list["result_info"]["total_count"], 0, "nothing was created");
        let created = create(
            &app,
            "acme",
            what,
            &json!({"name": "ok", "unknown": "ignored"}),
        )
        .await;
        let item = app.gw_url("acme", &format!("/{what}/{}", id_of(&created)));
        for (body, path) in cases.iter().skip(1) {
            let (status, resp) = patch(&app, &item, body).await;
            assert_error(status, &resp, 400, 7001);
            assert_eq!(error_paths(&resp), [*path], "PATCH {what} {body}: {resp}");
        }
        let (status, resp) = patch(&app, &item, &json!({"name": null})).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), ["name"]);
        let (_, got) = app.get(&item).await;
        assert_eq!(got["result"], created, "no PATCH changed anything");
    }
}

async fn users_and_teams_are_isolated_by_account_and_need_their_scopes(app: TestApp) {
    let read = app.token(&["acme"], &[gatehouse_shared::token::Scope::AiGatewayRead]);
    for what in ["users", "teams"] {
        let created = create(&app, "acme", what, &json!({"name": "mine"})).await;
        let id = id_of(&created);
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some("{\"name\":\"x\"}")),
            (Method::DELETE, None),
        ] {
            let (status, resp) = app
                .send(
                    method,
                    &app.gw_url("globex", &format!("/{what}/{id}")),
                    Some(&app.admin_token),
                    body,
                )
                .await;
            assert_error(status, &resp, 404, 7003);
        }
        let (_, list) = app.get(&app.gw_url("globex", &format!("/{what}"))).await;
        assert_eq!(list["result"], json!([]));

        let item = app.gw_url("acme", &format!("/{what}/{id}"));
        let (status, resp) = app.send(Method::GET, &item, None, None).await;
        assert_error(status, &resp, 401, 10000);
        let (status, _) = app.send(Method::GET, &item, Some(&read), None).await;
        assert_eq!(status, 200);
        for (method, url, body) in [
            (
                Method::POST,
                app.gw_url("acme", &format!("/{what}")),
                Some("{\"name\":\"n\"}"),
            ),
            (Method::PATCH, item.clone(), Some("{\"name\":\"n\"}")),
            (Method::DELETE, item.clone(), None),
        ] {
            let (status, resp) = app.send(method, &url, Some(&read), body).await;
            assert_error(status, &resp, 403, 10000);
        }
    }
    // A user cannot join another account's team.
    let theirs = create(&app, "globex", "teams", &json!({"name": "theirs"})).await;
    let (status, resp) = app
        .post(
            &app.gw_url("acme", "/users"),
            &json!({"name": "u", "team_id": theirs["id"]}),
        )
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["team_id"]);
}
