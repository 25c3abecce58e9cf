//! Logs and virtual keys (issue 14): each log carries its key, user and team, the logs API filters by them, and
//! the log ingest moves a key's `last_used_at` forward.

use gatehouse_control_plane::log_ingest::store_records;
use gatehouse_shared::log::LogRecord;
use serde_json::{Value, json};

use crate::keys::create_key;
use crate::logs::record;
use crate::on_both_backends;
use crate::support::{TestApp, assert_error};

on_both_backends!(
    logs_carry_their_key_user_and_team_and_filter_by_them,
    logs_carry_the_route_that_chose_their_model_and_filter_by_it,
    ingesting_logs_moves_a_key_s_last_used_at_to_its_newest_request,
);

fn keyed(
    id: &str,
    at: i64,
    key: Option<&str>,
    user: Option<&str>,
    team: Option<&str>,
) -> LogRecord {
    LogRecord {
        key_id: key.map(str::to_owned),
        user_id: user.map(str::to_owned),
        team_id: team.map(str::to_owned),
        ..record(id, at, "openai")
    }
}

fn ingest(app: &TestApp, records: Vec<LogRecord>) {
    app.db
        .with_conn(|c| store_records(c, &records))
        .expect("stored");
}

fn ids(list: &Value) -> Vec<String> {
    list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn logs_carry_their_key_user_and_team_and_filter_by_them(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let t = 1_800_000_000_000;
    ingest(
        &app,
        vec![
            keyed("01A", t, Some("k1"), Some("u1"), Some("t1")),
            keyed("01B", t + 1, Some("k2"), Some("u1"), None),
            keyed("01C", t + 2, Some("k3"), None, Some("t1")),
            keyed("01D", t + 3, None, None, None),
        ],
    );
    let url = app.gw_url("acme", "/gateways/gw/logs");
    let (status, list) = app.get(&url).await;
    assert_eq!(status, 200, "{list}");
    let first = &list["result"][3];
    assert_eq!(first["id"], "01A");
    assert_eq!(
        (&first["key_id"], &first["user_id"], &first["team_id"]),
        (&json!("k1"), &json!("u1"), &json!("t1"))
    );
    let keyless = &list["result"][0];
    assert_eq!(keyless["id"], "01D");
    for field in ["key_id", "user_id", "team_id"] {
        assert!(
            keyless.get(field).is_none(),
            "{field} is absent without a key: {keyless}"
        );
    }
    let (_, detail) = app.get(&format!("{url}/01B")).await;
    assert_eq!(detail["result"]["key_id"], "k2");

    for (query, want) in [
        (
            "filters.key=key_id&filters.operator=eq&filters.value=k1",
            vec!["01A"],
        ),
        (
            "filters.key=key_id&filters.operator=eq&filters.value=k1&filters.value=k3",
            vec!["01C", "01A"],
        ),
        (
            "filters.key=key_id&filters.operator=neq&filters.value=k1",
            vec!["01D", "01C", "01B"],
        ),
        (
            "filters.key=key_id&filters.operator=eq&filters.value=",
            vec!["01D"],
        ),
        (
            "filters.key=user_id&filters.operator=eq&filters.value=u1",
            vec!["01B", "01A"],
        ),
        (
            "filters.key=team_id&filters.operator=eq&filters.value=t1",
            vec!["01C", "01A"],
        ),
        (
            "filters.key=key_id&filters.operator=contains&filters.value=K",
            vec!["01C", "01B", "01A"],
        ),
        ("key_id=k2", vec!["01B"]),
        ("user_id=u1&team_id=t1", vec!["01A"]),
        (
            "filters=%5B%7B%22key%22%3A%22team_id%22%2C%22operator%22%3A%22eq%22%2C%22value%22%3A%5B%22t1%22%5D%7D%5D",
            vec!["01C", "01A"],
        ),
    ] {
        let (status, list) = app.get(&format!("{url}?{query}")).await;
        assert_eq!(status, 200, "{query}: {list}");
        assert_eq!(ids(&list), want, "{query}");
        assert_eq!(list["result_info"]["total_count"], want.len(), "{query}");
    }
    let (status, resp) = app
        .get(&format!(
            "{url}?filters.key=key_id&filters.operator=gt&filters.value=k1"
        ))
        .await;
    assert_error(status, &resp, 400, 7002);

    // The bulk delete takes the same filters.
    let (status, _) = app
        .delete(&format!(
            "{url}?filters.key=key_id&filters.operator=eq&filters.value=k2"
        ))
        .await;
    assert_eq!(status, 200);
    let (_, list) = app.get(&url).await;
    assert_eq!(ids(&list), ["01D", "01C", "01A"]);
}

async fn ingesting_logs_moves_a_key_s_last_used_at_to_its_newest_request(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let key = create_key(&app, "acme", &json!({"name": "used"})).await;
    let idle = create_key(&app, "acme", &json!({"name": "idle"})).await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let key_url = app.gw_url("acme", &format!("/keys/{key_id}"));
    let t = 1_800_000_000_000;
    ingest(
        &app,
        vec![
            keyed("02A", t + 500, Some(&key_id), None, None),
            keyed("02B", t + 900, Some(&key_id), None, None),
            keyed("02C", t + 100, Some(&key_id), None, None),
            keyed("02D", t + 2000, None, None, None),
            // Another account's record naming the same id changes nothing here.
            LogRecord {
                account_id: "globex".into(),
                ..keyed("02E", t + 5000, Some(&key_id), None, None)
            },
        ],
    );
    let (_, got) = app.get(&key_url).await;
    assert_eq!(got["result"]["last_used_at"], "2027-01-15T08:00:00.900Z");
    let (_, other) = app
        .get(&app.gw_url("acme", &format!("/keys/{}", idle["id"].as_str().unwrap())))
        .await;
    assert_eq!(other["result"]["last_used_at"], Value::Null);

    // An older batch (a redelivery, or a slower node) never moves it back; a newer one moves it on.
    ingest(&app, vec![keyed("02F", t, Some(&key_id), None, None)]);
    let (_, got) = app.get(&key_url).await;
    assert_eq!(got["result"]["last_used_at"], "2027-01-15T08:00:00.900Z");
    ingest(
        &app,
        vec![keyed("02G", t + 60_000, Some(&key_id), None, None)],
    );
    let (_, got) = app.get(&key_url).await;
    assert_eq!(got["result"]["last_used_at"], "2027-01-15T08:01:00.000Z");
    assert_eq!(
        got["result"]["modified_at"], key["modified_at"],
        "a use is not a modification"
    );
}

async fn logs_carry_the_route_that_chose_their_model_and_filter_by_it(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let t = 1_800_000_000_000;
    let routed = |id: &str, at: i64, route: &str, path: &str| LogRecord {
        route_id: Some(route.into()),
        route_version_id: Some(format!("{route}-v1")),
        route_path: Some(path.into()),
        ..record(id, at, "openai")
    };
    ingest(
        &app,
        vec![
            routed("01A", t, "r1", "start>tier>gold"),
            routed("01B", t + 1, "r2", "start>model"),
            record("01C", t + 2, "openai"),
        ],
    );
    let url = app.gw_url("acme", "/gateways/gw/logs");
    let (_, detail) = app.get(&format!("{url}/01A")).await;
    let r = &detail["result"];
    assert_eq!(
        (&r["route_id"], &r["route_version_id"], &r["route_path"]),
        (&json!("r1"), &json!("r1-v1"), &json!("start>tier>gold")),
        "{detail}"
    );
    let (_, list) = app.get(&url).await;
    assert!(
        list["result"][0].get("route_id").is_none(),
        "absent when no route chose the model"
    );
    for (query, want) in [
        ("route_id=r1", vec!["01A"]),
        (
            "filters.key=route_id&filters.operator=eq&filters.value=r2",
            vec!["01B"],
        ),
        (
            "filters.key=route_id&filters.operator=eq&filters.value=",
            vec!["01C"],
        ),
    ] {
        let (status, list) = app.get(&format!("{url}?{query}")).await;
        assert_eq!(status, 200, "{query}: {list}");
        assert_eq!(ids(&list), want, "{query}");
    }
}
