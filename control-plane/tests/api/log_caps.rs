//! Per-gateway log caps: STOP_INSERTING refuses at the cap, DELETE_OLDEST makes room; deletes free room.

use std::sync::Arc;

use gatehouse_control_plane::log_ingest::store_batch;
use gatehouse_control_plane::store::{gateways, log_caps};
use gatehouse_shared::gateway::LogManagementStrategy;
use gatehouse_shared::log::LogRecord;

use crate::logs::record;
use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    stop_inserting_keeps_the_first_records_up_to_the_cap,
    delete_oldest_keeps_the_newest_records_at_the_cap,
    a_gateway_without_a_cap_keeps_everything_and_counts_it,
    concurrent_writers_never_store_past_a_cap,
    a_record_the_database_refuses_is_left_out_and_the_rest_stored,
    nul_characters_are_stored_as_replacement_characters,
);

/// Sets a cap below the API's minimum (10,000) straight in the database, so a test can reach it.
async fn set_cap(app: &TestApp, gateway: &str, cap: i64, strategy: LogManagementStrategy) {
    app.create_gateway("acme", gateway).await;
    app.db
        .with_conn(|c| {
            let mut g = gateways::get(c, "acme", gateway)?.unwrap();
            g.settings.log_management = Some(cap);
            g.settings.log_management_strategy = Some(strategy);
            gateways::update_settings(c, "acme", gateway, &g.settings, g.modified_at_ms)
        })
        .unwrap();
}

fn records(gateway: &str, from: i64, n: i64) -> Arc<Vec<LogRecord>> {
    Arc::new(
        (from..from + n)
            .map(|i| {
                let mut r = record(
                    &format!("{gateway}-{i:04}"),
                    1_700_000_000_000 + i,
                    "openai",
                );
                r.gateway_id = gateway.into();
                r
            })
            .collect(),
    )
}

fn stored_ids(app: &TestApp, gateway: &str) -> Vec<String> {
    use diesel::prelude::*;
    use gatehouse_control_plane::schema::logs;
    let gateway = gateway.to_owned();
    app.db
        .with_conn(move |c| {
            Ok(logs::table
                .filter(logs::account_id.eq("acme"))
                .filter(logs::gateway_id.eq(&gateway))
                .order(logs::id.asc())
                .select(logs::id)
                .load::<String>(c)?)
        })
        .unwrap()
}

fn count(app: &TestApp, gateway: &str) -> i64 {
    app.db
        .with_conn(|c| log_caps::stored_count(c, "acme", gateway))
        .unwrap()
}

async fn stop_inserting_keeps_the_first_records_up_to_the_cap(app: TestApp) {
    set_cap(&app, "capped", 5, LogManagementStrategy::StopInserting).await;
    assert_eq!(
        store_batch(&app.db, records("capped", 0, 3))
            .await
            .unwrap()
            .inserted,
        3
    );
    assert_eq!(
        store_batch(&app.db, records("capped", 3, 4))
            .await
            .unwrap()
            .inserted,
        2,
        "only two fit"
    );
    assert_eq!(
        store_batch(&app.db, records("capped", 7, 2))
            .await
            .unwrap()
            .inserted,
        0,
        "full: nothing more"
    );
    assert_eq!(
        store_batch(&app.db, records("capped", 0, 3))
            .await
            .unwrap()
            .inserted,
        0,
        "a redelivery counts nothing"
    );
    assert_eq!(
        stored_ids(&app, "capped"),
        (0..5).map(|i| format!("capped-{i:04}")).collect::<Vec<_>>()
    );
    assert_eq!(count(&app, "capped"), 5);
    // Deleting through the API frees room.
    let resp = app
        .send(
            reqwest::Method::DELETE,
            &app.gw_url("acme", "/gateways/capped/logs?limit=2"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_eq!(count(&app, "capped"), 3);
    assert_eq!(
        store_batch(&app.db, records("capped", 9, 3))
            .await
            .unwrap()
            .inserted,
        2
    );
    assert_eq!(count(&app, "capped"), 5);
}

async fn delete_oldest_keeps_the_newest_records_at_the_cap(app: TestApp) {
    set_cap(&app, "rolling", 5, LogManagementStrategy::DeleteOldest).await;
    assert_eq!(
        store_batch(&app.db, records("rolling", 0, 4))
            .await
            .unwrap()
            .inserted,
        4
    );
    assert_eq!(
        store_batch(&app.db, records("rolling", 4, 4))
            .await
            .unwrap()
            .inserted,
        4
    );
    assert_eq!(
        stored_ids(&app, "rolling"),
        (3..8)
            .map(|i| format!("rolling-{i:04}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(count(&app, "rolling"), 5);
    assert_eq!(
        store_batch(&app.db, records("rolling", 8, 12))
            .await
            .unwrap()
            .inserted,
        12
    );
    assert_eq!(
        stored_ids(&app, "rolling"),
        (15..20)
            .map(|i| format!("rolling-{i:04}"))
            .collect::<Vec<_>>()
    );
}

async fn a_gateway_without_a_cap_keeps_everything_and_counts_it(app: TestApp) {
    app.create_gateway("acme", "open").await;
    assert_eq!(
        store_batch(&app.db, records("open", 0, 30))
            .await
            .unwrap()
            .inserted,
        30
    );
    assert_eq!(
        store_batch(&app.db, records("open", 0, 30))
            .await
            .unwrap()
            .inserted,
        0
    );
    assert_eq!(count(&app, "open"), 30);
    assert_eq!(stored_ids(&app, "open").len(), 30);
}

on_both_backends!(a_bulk_delete_can_order_by_cost_and_the_unfiltered_total_follows_the_count);

async fn a_bulk_delete_can_order_by_cost_and_the_unfiltered_total_follows_the_count(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let mut batch: Vec<LogRecord> = (0..3)
        .map(|i| record(&format!("r{i}"), 1_700_000_000_000 + i, "openai"))
        .collect();
    for (r, cost) in batch.iter_mut().zip([0.5, 3.0, 1.0]) {
        r.cost = Some(cost);
    }
    assert_eq!(
        store_batch(&app.db, Arc::new(batch))
            .await
            .unwrap()
            .inserted,
        3
    );
    let url = |q: &str| app.gw_url("acme", &format!("/gateways/gw/logs{q}"));
    let (status, body) = app
        .send(
            reqwest::Method::DELETE,
            &url("?order_by=cost&limit=1"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stored_ids(&app, "gw"),
        ["r0", "r2"],
        "the most expensive went first"
    );
    let (_, list) = app.get(&url("")).await;
    assert_eq!(list["result_info"]["total_count"], 2);
    let (status, body) = app
        .send(
            reqwest::Method::DELETE,
            &url("?order_by=nonsense"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// Two writers storing the first records of gateways nobody has counted yet: both find no counter row and both
/// create it. Found by the ingest benchmark on PostgreSQL, where the losing insert used to abort its whole batch.
/// PostgreSQL only: split mode runs several writers (one per control plane); standalone SQLite has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_batches_of_a_new_gateway_all_store() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    for round in 0..8 {
        let gateway = format!("race-{round}");
        let (a, b) = (records(&gateway, 0, 50), records(&gateway, 50, 50));
        let (db_a, db_b) = (app.db.clone(), app.db.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { store_batch(&db_a, a).await }),
            tokio::spawn(async move { store_batch(&db_b, b).await }),
        );
        assert_eq!(
            ra.unwrap().unwrap().inserted + rb.unwrap().unwrap().inserted,
            100,
            "round {round}"
        );
        let counted = app
            .db
            .with_conn(move |c| log_caps::stored_count(c, "acme", &gateway))
            .unwrap();
        assert_eq!(counted, 100, "round {round}");
    }
}

/// Eight batches of 30 stored at once into a gateway capped at 100, for each strategy: exactly 100 rows stay and
/// the counter agrees. Without the counter lock, writers of one gateway (two control planes, or one consumer
/// storing two entries at once) read the same count and both fill the same room.
async fn concurrent_writers_never_store_past_a_cap(app: TestApp) {
    for (gateway, strategy) in [
        ("stop", LogManagementStrategy::StopInserting),
        ("oldest", LogManagementStrategy::DeleteOldest),
    ] {
        set_cap(&app, gateway, 100, strategy).await;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (db, batch) = (app.db.clone(), records(gateway, w * 30, 30));
                tokio::spawn(async move { store_batch(&db, batch).await })
            })
            .collect();
        let mut inserted = 0;
        for w in writers {
            inserted += w.await.unwrap().unwrap().inserted;
        }
        match strategy {
            LogManagementStrategy::StopInserting => assert_eq!(inserted, 100, "{gateway}"),
            LogManagementStrategy::DeleteOldest => assert_eq!(inserted, 240, "{gateway}"),
        }
        assert_eq!(stored_ids(&app, gateway).len(), 100, "{gateway}");
        assert_eq!(count(&app, gateway), 100, "{gateway}");
    }
}

/// A record the database will not take (here refused by a test-only constraint on `provider = 'poison'`; in life
/// any value a column cannot hold) costs only itself: the batch is stored record by record, the rest are stored
/// and the refused one is counted. Before, the whole batch failed on every attempt, and in split mode every entry
/// behind it in the stream waited forever.
async fn a_record_the_database_refuses_is_left_out_and_the_rest_stored(app: TestApp) {
    use diesel::RunQueryDsl;
    app.create_gateway("acme", "strict").await;
    app.db
        .with_conn(|c| {
            let sql = match c {
                gatehouse_control_plane::db::AnyConnection::Postgresql(_) => {
                    "ALTER TABLE logs ADD CONSTRAINT test_no_poison CHECK (provider <> 'poison')"
                }
                gatehouse_control_plane::db::AnyConnection::Sqlite(_) => {
                    "CREATE TRIGGER test_no_poison BEFORE INSERT ON logs WHEN NEW.provider = 'poison' \
                     BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                }
            };
            diesel::sql_query(sql).execute(c)?;
            Ok(())
        })
        .unwrap();
    let mut batch = (*records("strict", 0, 10)).clone();
    batch[4].provider = "poison".into();
    let stored = store_batch(&app.db, Arc::new(batch)).await.unwrap();
    assert_eq!(stored.inserted, 9);
    assert_eq!(stored.rejected, 1);
    let ids = stored_ids(&app, "strict");
    assert_eq!(ids.len(), 9);
    assert!(!ids.contains(&"strict-0004".to_owned()));
    assert_eq!(count(&app, "strict"), 9);
}

/// PostgreSQL refuses NUL in text; a record carrying one (a binary body turned to text, a model name sent as
/// `"\u0000"` in JSON) is stored with U+FFFD in its place, on both backends alike.
async fn nul_characters_are_stored_as_replacement_characters(app: TestApp) {
    app.create_gateway("acme", "binary").await;
    let mut batch = (*records("binary", 0, 2)).clone();
    batch[0].model = Some("gpt\u{0}4o".into());
    batch[0].request_head = "\u{0}\u{1}PNG".into();
    batch[0].request_body = Some("\u{0}\u{1}PNG\u{0}".into());
    batch[0].bodies_stored = true;
    let stored = store_batch(&app.db, Arc::new(batch)).await.unwrap();
    assert_eq!((stored.inserted, stored.rejected), (2, 0));
    let (status, body) = app
        .get(&app.gw_url("acme", "/gateways/binary/logs/binary-0000"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["model"], "gpt\u{fffd}4o");
    assert_eq!(body["result"]["request_head"], "\u{fffd}\u{1}PNG");
    let raw = app
        .client
        .get(app.gw_url("acme", "/gateways/binary/logs/binary-0000/request"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.text().await.unwrap(), "\u{fffd}\u{1}PNG\u{fffd}");
}
