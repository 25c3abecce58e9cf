//! Evaluations (spec §1.3, §1.6, §3.10): the evaluators, creation in progress, the background run's results checked
//! against logs stored through the ingest path, the match semantics (datasets ORed, filters ANDed), validation,
//! paging, isolation, and an evaluation a stopped process left unfinished being run at the next start.

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_control_plane::api::AppState;
use gatehouse_control_plane::log_ingest::store_records;
use gatehouse_control_plane::propagation::ConfigPublisher;
use gatehouse_control_plane::server::{ApiSettings, ControlPlaneServer};
use gatehouse_control_plane::store::evaluations as store;
use gatehouse_shared::log::LogRecord;
use reqwest::Method;
use serde_json::{Value, json};

use crate::datasets::{create_dataset, model_is};
use crate::logs::record;
use crate::on_both_backends;
use crate::support::{TEST_MAX_BODY, TestApp, assert_error, error_paths};

on_both_backends!(
    evaluation_types_are_listed_paged_and_ordered,
    an_evaluation_starts_in_progress_and_is_processed_with_cost_speed_and_feedback,
    datasets_are_ored_filters_anded_and_other_gateways_and_accounts_left_out,
    evaluations_list_get_delete_and_page,
    bad_evaluation_bodies_are_400s_naming_the_field,
    unknown_gateways_and_other_accounts_are_404s,
    an_evaluation_left_unprocessed_by_a_stopped_process_runs_at_the_next_start,
);

fn evaluations_url(app: &TestApp, account: &str, gateway: &str) -> String {
    app.gw_url(account, &format!("/gateways/{gateway}/evaluations"))
}

fn log(id: &str, model: &str, provider: &str, cost: Option<f64>, duration_ms: u64) -> LogRecord {
    LogRecord {
        model: Some(model.into()),
        cost,
        duration_ms,
        ..record(id, 1_700_000_000_000, provider)
    }
}

/// Stores logs the way the log writer does.
fn ingest(app: &TestApp, records: &[LogRecord]) {
    let stored = app
        .db
        .with_conn(|c| store_records(c, records))
        .expect("store_records");
    assert_eq!(stored.inserted, records.len());
}

/// Gives a log feedback through the logs API, as a client does.
async fn feedback(app: &TestApp, account: &str, id: &str, value: f64) {
    let (status, body) = app
        .send(
            Method::PATCH,
            &app.gw_url(account, &format!("/gateways/gw/logs/{id}")),
            Some(&app.admin_token),
            Some(&json!({"feedback": value}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// acme/gw: three gpt-4o logs (two with a cost, feedback 👍 👎 👍) and one claude log (cost, no feedback); a gpt-4o
/// log in another gateway and one in another account, which no evaluation of acme/gw may count.
async fn seed_logs(app: &TestApp) {
    app.create_gateway("acme", "gw").await;
    let mut elsewhere = log("01E", "gpt-4o", "openai", Some(9.0), 9_000);
    elsewhere.gateway_id = "other".into();
    let mut foreign = log("01F", "gpt-4o", "openai", Some(9.0), 9_000);
    foreign.account_id = "globex".into();
    ingest(
        app,
        &[
            log("01A", "gpt-4o", "openai", Some(0.001), 100),
            log("01B", "gpt-4o", "openai", Some(0.003), 300),
            log("01C", "gpt-4o", "openai", None, 200),
            log("01D", "claude-3-5-haiku", "anthropic", Some(0.01), 1000),
            elsewhere,
            foreign,
        ],
    );
    feedback(app, "acme", "01A", 1.0).await;
    feedback(app, "acme", "01B", -1.0).await;
    feedback(app, "acme", "01C", 1.0).await;
}

/// Creates an evaluation; panics unless it succeeds. Returns the `result`.
async fn create_evaluation(
    app: &TestApp,
    name: &str,
    datasets: &[&Value],
    types: &[&str],
) -> Value {
    let ids: Vec<&Value> = datasets.iter().map(|d| &d["id"]).collect();
    let (status, body) = app
        .post(
            &evaluations_url(app, "acme", "gw"),
            &json!({"name": name, "dataset_ids": ids, "evaluation_type_ids": types}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

/// Polls `GET …/evaluations/{id}` on `addr` until it is processed (at most 15 s).
async fn processed(app: &TestApp, addr: SocketAddr, id: &str) -> Value {
    let url =
        format!("http://{addr}/client/v4/accounts/acme/ai-gateway/gateways/gw/evaluations/{id}");
    for _ in 0..150 {
        let (status, body) = app.get(&url).await;
        assert_eq!(status, 200, "{body}");
        if body["result"]["processed"] == true {
            return body["result"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("evaluation {id} was not processed within 15 s");
}

/// `(evaluation_type_id, result, status, total_logs)` of each result.
fn results(evaluation: &Value) -> Vec<(String, String, i64, i64)> {
    evaluation["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["evaluation_type_id"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
                r["total_logs"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn row(id: &str, result: &str, status: i64, total: i64) -> (String, String, i64, i64) {
    (id.into(), result.into(), status, total)
}

async fn evaluation_types_are_listed_paged_and_ordered(app: TestApp) {
    let url = app.gw_url("acme", "/evaluation-types");
    let (status, body) = app.get(&url).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cost", "speed", "performance"]);
    assert_eq!(body["result_info"]["total_count"], 3);
    let first = &body["result"][0];
    for field in ["name", "description", "type", "created_at", "modified_at"] {
        assert!(first[field].is_string(), "{field}: {first}");
    }
    assert_eq!(first["enable"], true);
    assert_eq!(first["mandatory"], false);

    let (_, by_id) = app
        .get(&format!("{url}?order_by=id&order_by_direction=desc"))
        .await;
    assert_eq!(by_id["result"][0]["id"], "speed");
    let (status, past) = app.get(&format!("{url}?page=2&per_page=5")).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["result"], json!([]));
    for bad in [
        "per_page=4",
        "per_page=51",
        "order_by=price",
        "order_by_direction=up",
    ] {
        let (status, body) = app.get(&format!("{url}?{bad}")).await;
        assert_error(status, &body, 400, 7002);
    }
}

async fn an_evaluation_starts_in_progress_and_is_processed_with_cost_speed_and_feedback(
    app: TestApp,
) {
    seed_logs(&app).await;
    let gpt = create_dataset(&app, "acme", "gw", "gpt", model_is("gpt-4o")).await;
    let created = create_evaluation(
        &app,
        "gpt check",
        &[&gpt],
        &["cost", "speed", "performance"],
    )
    .await;
    assert_eq!(created["name"], "gpt check");
    assert_eq!(created["gateway_id"], "gw");
    assert_eq!(
        created["datasets"],
        json!([gpt]),
        "the full dataset objects"
    );
    let id = created["id"].as_str().unwrap();
    // Created answers at once; the run may or may not have finished by the time we read it back.
    if created["processed"] == false {
        assert!(
            created["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == 0 && r["status_description"] == "in progress"),
            "{created}"
        );
    }
    assert_eq!(
        created["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["evaluation_type_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["cost", "speed", "performance"]
    );

    let done = processed(&app, app.addr, id).await;
    assert_eq!(done["total_logs"], 3);
    assert_eq!(
        results(&done),
        [
            // (0.001 + 0.003) / 2: the log without a cost is left out.
            row("cost", "0.002", 1, 2),
            // (100 + 300 + 200) / 3 ms.
            row("speed", "200", 1, 3),
            // Two thumbs-up among three logs with feedback.
            row("performance", "66.67", 1, 3),
        ]
    );
    assert!(
        done["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status_description"] == "completed" && r["evaluation_id"] == id)
    );
    // The results stay as computed: new logs do not change a processed evaluation.
    ingest(&app, &[log("01G", "gpt-4o", "openai", Some(5.0), 5)]);
    let (_, later) = app
        .get(&format!("{}/{id}", evaluations_url(&app, "acme", "gw")))
        .await;
    assert_eq!(later["result"], done);

    // An evaluation over logs without the needed fields completes with zeros and says so.
    let none = create_dataset(&app, "acme", "gw", "none", model_is("nothing")).await;
    let empty = create_evaluation(&app, "empty", &[&none], &["performance", "cost"]).await;
    let empty = processed(&app, app.addr, empty["id"].as_str().unwrap()).await;
    assert_eq!(empty["total_logs"], 0);
    assert_eq!(
        results(&empty),
        [row("performance", "0", 1, 0), row("cost", "0", 1, 0)]
    );
    assert_eq!(
        empty["results"][0]["status_description"],
        "completed: no log with feedback"
    );
}

async fn datasets_are_ored_filters_anded_and_other_gateways_and_accounts_left_out(app: TestApp) {
    seed_logs(&app).await;
    let gpt = create_dataset(&app, "acme", "gw", "gpt", model_is("gpt-4o")).await;
    let claude = create_dataset(
        &app,
        "acme",
        "gw",
        "anthropic",
        json!([{"key": "provider", "operator": "eq", "value": ["anthropic"]}]),
    )
    .await;
    let union = create_evaluation(&app, "union", &[&gpt, &claude], &["cost", "speed"]).await;
    let union = processed(&app, app.addr, union["id"].as_str().unwrap()).await;
    assert_eq!(union["total_logs"], 4);
    assert_eq!(
        results(&union),
        [
            // (0.001 + 0.003 + 0.01) / 3
            row("cost", "0.0046666667", 1, 3),
            // (100 + 300 + 200 + 1000) / 4
            row("speed", "400", 1, 4),
        ]
    );

    // Filters AND: a `gpt` model (any case) and faster than 250 ms; values of one filter OR.
    let fast = create_dataset(
        &app,
        "acme",
        "gw",
        "fast gpt",
        json!([
            {"key": "model", "operator": "contains", "value": ["GPT"]},
            {"key": "duration", "operator": "lt", "value": [250]},
            {"key": "provider", "operator": "eq", "value": ["openai", "anthropic"]},
        ]),
    )
    .await;
    let overlap = create_evaluation(
        &app,
        "overlap",
        &[&fast, &gpt],
        &["speed", "performance", "cost"],
    )
    .await;
    let overlap = processed(&app, app.addr, overlap["id"].as_str().unwrap()).await;
    assert_eq!(
        overlap["total_logs"], 3,
        "a log two datasets match counts once"
    );
    let fast_only =
        create_evaluation(&app, "fast", &[&fast], &["speed", "performance", "cost"]).await;
    let fast_only = processed(&app, app.addr, fast_only["id"].as_str().unwrap()).await;
    assert_eq!(fast_only["total_logs"], 2);
    assert_eq!(
        results(&fast_only),
        [
            row("speed", "150", 1, 2),
            row("performance", "100", 1, 2),
            row("cost", "0.001", 1, 1),
        ]
    );

    // A dataset without filters takes every log of this gateway, and none of another gateway or account.
    let all = create_dataset(&app, "acme", "gw", "all", json!([])).await;
    let every = create_evaluation(&app, "every", &[&all], &["speed"]).await;
    let every = processed(&app, app.addr, every["id"].as_str().unwrap()).await;
    assert_eq!(every["total_logs"], 4);
    assert_eq!(results(&every), [row("speed", "400", 1, 4)]);
}

async fn evaluations_list_get_delete_and_page(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let all = create_dataset(&app, "acme", "gw", "all", json!([])).await;
    let url = evaluations_url(&app, "acme", "gw");
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let e = create_evaluation(&app, name, &[&all], &["speed"]).await;
        ids.push(e["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        processed(&app, app.addr, id).await;
    }
    let names = |list: &Value| -> Vec<String> {
        list["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page1) = app.get(&format!("{url}?per_page=2")).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(names(&page1), ["one", "two"]);
    assert_eq!(page1["result_info"]["total_count"], 3);
    let (_, page2) = app.get(&format!("{url}?per_page=2&page=2")).await;
    assert_eq!(names(&page2), ["three"]);
    let (status, past) = app.get(&format!("{url}?per_page=2&page=5")).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["result"], json!([]));
    let (_, by_name) = app.get(&format!("{url}?name=two")).await;
    assert_eq!(names(&by_name), ["two"]);
    let (_, searched) = app.get(&format!("{url}?search=HRE")).await;
    assert_eq!(names(&searched), ["three"]);
    let (_, done) = app.get(&format!("{url}?processed=true")).await;
    assert_eq!(done["result_info"]["total_count"], 3);
    let (_, pending) = app.get(&format!("{url}?processed=false")).await;
    assert_eq!(pending["result"], json!([]));
    assert_eq!(
        page1["result"][0]["results"][0]["evaluation_type_id"],
        "speed"
    );

    let (status, got) = app.get(&format!("{url}/{}", ids[1])).await;
    assert_eq!(status, 200, "{got}");
    let (status, deleted) = app.delete(&format!("{url}/{}", ids[1])).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted["result"], got["result"],
        "DELETE returns the deleted object"
    );
    let (status, gone) = app.get(&format!("{url}/{}", ids[1])).await;
    assert_error(status, &gone, 404, 7003);
    let (status, again) = app.delete(&format!("{url}/{}", ids[1])).await;
    assert_error(status, &again, 404, 7003);
    let (_, rest) = app.get(&url).await;
    assert_eq!(names(&rest), ["one", "three"]);

    // Deleting a dataset leaves the evaluations made from it, with their copy of it.
    app.delete(&format!(
        "{}/{}",
        crate::datasets::datasets_url(&app, "acme", "gw"),
        all["id"].as_str().unwrap()
    ))
    .await;
    let (status, kept) = app.get(&format!("{url}/{}", ids[0])).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["result"]["datasets"], json!([all]));

    for bad in ["per_page=0", "per_page=101", "processed=yes"] {
        let (status, body) = app.get(&format!("{url}?{bad}")).await;
        assert_error(status, &body, 400, 7002);
    }
}

async fn bad_evaluation_bodies_are_400s_naming_the_field(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("acme", "other").await;
    let url = evaluations_url(&app, "acme", "gw");
    let mut ds = Vec::new();
    for i in 0..6 {
        let d = create_dataset(&app, "acme", "gw", &format!("d{i}"), json!([])).await;
        ds.push(d["id"].as_str().unwrap().to_owned());
    }
    let elsewhere = create_dataset(&app, "acme", "other", "x", json!([])).await;
    let body = |datasets: Value, types: Value| json!({"name": "e", "dataset_ids": datasets, "evaluation_type_ids": types});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({}),
            vec!["name", "dataset_ids", "evaluation_type_ids"],
        ),
        (
            json!({"name": "e", "dataset_ids": [ds[0]]}),
            vec!["evaluation_type_ids"],
        ),
        (
            json!({"name": "e", "evaluation_type_ids": ["cost"]}),
            vec!["dataset_ids"],
        ),
        (
            json!({"name": 1, "dataset_ids": ds[0], "evaluation_type_ids": "cost"}),
            vec!["name", "dataset_ids", "evaluation_type_ids"],
        ),
        (body(json!([]), json!(["cost"])), vec!["dataset_ids"]),
        (body(json!(ds), json!(["cost"])), vec!["dataset_ids"]),
        (body(json!(null), json!(["cost"])), vec!["dataset_ids"]),
        (
            body(json!([ds[0], 7]), json!(["cost"])),
            vec!["dataset_ids.1"],
        ),
        (
            body(json!([ds[0], ds[0]]), json!(["cost"])),
            vec!["dataset_ids.1"],
        ),
        (body(json!([ds[0]]), json!([])), vec!["evaluation_type_ids"]),
        (
            body(json!([ds[0]]), json!(["cost", "quality"])),
            vec!["evaluation_type_ids.1"],
        ),
        (
            body(json!([ds[0]]), json!(["speed", "speed"])),
            vec!["evaluation_type_ids.1"],
        ),
        (
            body(json!([ds[0]]), json!([true])),
            vec!["evaluation_type_ids.0"],
        ),
        // Datasets are looked up once the body is well formed.
        (
            body(json!([ds[0], "nope"]), json!(["cost"])),
            vec!["dataset_ids.1"],
        ),
        (
            body(json!([elsewhere["id"], ds[1]]), json!(["cost"])),
            vec!["dataset_ids.0"],
        ),
    ];
    for (b, want) in cases {
        let (status, resp) = app.post(&url, &b).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(error_paths(&resp), want, "{b} → {resp}");
    }
    let (_, resp) = app
        .post(&url, &body(json!([ds[0]]), json!(["quality"])))
        .await;
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("quality") && message.contains("'cost'"),
        "{message}"
    );
    let (_, resp) = app
        .post(&url, &body(json!(["nope"]), json!(["cost"])))
        .await;
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("nope"), "{message}");

    for raw in ["{", "", "{\"name\": }"] {
        let (status, resp) = app
            .send(Method::POST, &url, Some(&app.admin_token), Some(raw))
            .await;
        assert_error(status, &resp, 400, 6007);
    }
    // Five datasets is the most.
    let (status, resp) = app
        .post(
            &url,
            &body(json!(ds[..5]), json!(["cost", "speed", "performance"])),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    let (_, list) = app.get(&url).await;
    assert_eq!(
        list["result_info"]["total_count"], 1,
        "only the valid one was stored"
    );
}

async fn unknown_gateways_and_other_accounts_are_404s(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("globex", "gw").await;
    let all = create_dataset(&app, "acme", "gw", "all", json!([])).await;
    let mine = create_evaluation(&app, "mine", &[&all], &["speed"]).await;
    let id = mine["id"].as_str().unwrap();
    let body = json!({"name": "e", "dataset_ids": [all["id"]], "evaluation_type_ids": ["speed"]});

    let missing = evaluations_url(&app, "acme", "nope");
    let (status, resp) = app.get(&missing).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.post(&missing, &body).await;
    assert_error(status, &resp, 404, 7003);

    // Another account's gateway of the same id does not hold acme's evaluation or dataset.
    let theirs = evaluations_url(&app, "globex", "gw");
    let (status, resp) = app.get(&format!("{theirs}/{id}")).await;
    assert_error(status, &resp, 404, 7003);
    let (status, resp) = app.delete(&format!("{theirs}/{id}")).await;
    assert_error(status, &resp, 404, 7003);
    let (_, list) = app.get(&theirs).await;
    assert_eq!(list["result"], json!([]));
    let (status, resp) = app.post(&theirs, &body).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["dataset_ids.0"]);
    let (status, resp) = app
        .get(&format!("{}/nope", evaluations_url(&app, "acme", "gw")))
        .await;
    assert_error(status, &resp, 404, 7003);
    let (status, still) = app
        .get(&format!("{}/{id}", evaluations_url(&app, "acme", "gw")))
        .await;
    assert_eq!(status, 200, "{still}");
}

/// A second management API over `app`'s database, as a restarted process would be: a runner of its own, which runs
/// what it finds unprocessed at start. Returns its address and what stops it.
fn restart(
    app: &TestApp,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let bus = gatehouse_bus::MemoryBus::new();
    let state = AppState {
        db: app.db.clone(),
        keyring: app.keyring.clone(),
        public_inference_url: "http://gateway.test:8787".into(),
        max_body_bytes: TEST_MAX_BODY,
        master_key: app.master_key.clone(),
        allow_http_custom_providers: false,
        publisher: ConfigPublisher::new(app.db.clone(), std::sync::Arc::new(bus)),
        log_ingest: std::sync::Arc::default(),
    };
    let server = ControlPlaneServer::bind(
        &ApiSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
        },
        state,
    )
    .expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        server
            .run(async move {
                let _ = stopped.await;
            })
            .expect("server run");
    });
    (addr, stop, thread)
}

async fn an_evaluation_left_unprocessed_by_a_stopped_process_runs_at_the_next_start(app: TestApp) {
    seed_logs(&app).await;
    let gpt = create_dataset(&app, "acme", "gw", "gpt", model_is("gpt-4o")).await;
    // What a process leaves when it stops after the create committed and before its run wrote: the evaluation and
    // its in-progress results, stored as the create stores them, with no runner told about it.
    let snapshot = json!([{
        "id": gpt["id"], "name": "gpt", "enable": true, "filters": gpt["filters"],
        "created_at": 1_700_000_000_000_i64, "modified_at": 1_700_000_000_000_i64,
    }]);
    let evaluation = store::Evaluation {
        row: store::EvaluationRow {
            id: "left-behind".into(),
            account_id: "acme".into(),
            gateway_id: "gw".into(),
            name: "interrupted".into(),
            datasets: snapshot.to_string(),
            processed: false,
            total_logs: 0,
            created_at: 1_700_000_000_000,
            modified_at: 1_700_000_000_000,
        },
        results: ["cost", "performance"]
            .iter()
            .enumerate()
            .map(|(i, t)| store::ResultRow {
                id: format!("left-behind-{t}"),
                evaluation_id: "left-behind".into(),
                evaluation_type_id: (*t).into(),
                position: i32::try_from(i).unwrap(),
                result: String::new(),
                status: 0,
                status_description: "in progress".into(),
                total_logs: 0,
                created_at: 1_700_000_000_000,
                modified_at: 1_700_000_000_000,
            })
            .collect(),
    };
    let inserted = app
        .db
        .with_conn(|c| c.write_transaction(|c| store::insert(c, &evaluation)))
        .unwrap();
    assert!(inserted);
    let url = format!("{}/left-behind", evaluations_url(&app, "acme", "gw"));
    let (_, before) = app.get(&url).await;
    assert_eq!(before["result"]["processed"], false, "{before}");

    let (addr, stop, thread) = restart(&app);
    let done = processed(&app, addr, "left-behind").await;
    assert_eq!(done["total_logs"], 3);
    assert_eq!(
        results(&done),
        [
            row("cost", "0.002", 1, 2),
            row("performance", "66.67", 1, 3)
        ]
    );
    // Running it again (another process that found it too) writes nothing: the first to finish counts.
    let pending = store::PendingEvaluation {
        account_id: "acme".into(),
        gateway_id: "gw".into(),
        id: "left-behind".into(),
    };
    let wrote = app
        .db
        .with_conn(|c| gatehouse_control_plane::evaluations::run_one(c, &pending))
        .unwrap();
    assert!(!wrote);
    let wrote = app
        .db
        .with_conn(|c| store::complete(c, &pending, 99, &[], 0))
        .unwrap();
    assert!(!wrote, "a processed evaluation is not written again");
    let (_, after) = app.get(&url).await;
    assert_eq!(after["result"], done);
    let _ = stop.send(());
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}
