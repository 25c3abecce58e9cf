//! Split mode's log stream consumer against real Redis (`TEST_REDIS_URL`) and PostgreSQL (`TEST_DATABASE_URL`),
//! both required when `CI=true`: every entry stored once and acknowledged with two stores side by side, a record
//! the database refuses left out without holding back the stream, and the counters `GET /admin/log-ingest` shows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use gatehouse_bus::{LogBatch, LogStream, RedisBusSettings};
use gatehouse_control_plane::log_consumer::{LogConsumer, LogConsumerSettings};
use gatehouse_control_plane::store::log_caps;
use gatehouse_shared::token::Scope;

use crate::logs::record;
use crate::support::TestApp;

const ENTRIES: usize = 40;
const PER_ENTRY: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_stored_once_and_acknowledged_and_a_refused_record_holds_nothing_back() {
    let Some(redis_url) = test_redis_url() else {
        return;
    };
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let prefix = unique_prefix("consumer");
    let stream = Arc::new(
        LogStream::new(
            &RedisBusSettings {
                url: redis_url.clone(),
                prefix: prefix.clone(),
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap(),
    );
    app.create_gateway("acme", "gw").await;
    // Refused by the database whatever the batch around it: a test-only constraint.
    app.db
        .with_conn(|c| {
            diesel::sql_query(
                "ALTER TABLE logs ADD CONSTRAINT test_no_poison CHECK (provider <> 'poison')",
            )
            .execute(c)?;
            Ok(())
        })
        .unwrap();
    stream.ensure_group().await.unwrap();
    for e in 0..ENTRIES {
        let batch: Vec<_> = (0..PER_ENTRY)
            .map(|i| {
                let n = e * PER_ENTRY + i;
                let provider = if n == 333 { "poison" } else { "openai" };
                record(
                    &format!("rec-{n:05}"),
                    1_700_000_000_000 + n as i64,
                    provider,
                )
            })
            .collect();
        stream
            .append(&LogBatch::encode(&batch).unwrap())
            .await
            .unwrap();
    }
    // The last entry again, as a redelivery would bring it: stored twice, one row per record.
    let again: Vec<_> = ((ENTRIES - 1) * PER_ENTRY..ENTRIES * PER_ENTRY)
        .map(|n| {
            record(
                &format!("rec-{n:05}"),
                1_700_000_000_000 + n as i64,
                "openai",
            )
        })
        .collect();
    stream
        .append(&LogBatch::encode(&again).unwrap())
        .await
        .unwrap();

    let mut settings = LogConsumerSettings::new("cp-test", Duration::from_secs(30));
    settings.block = Duration::from_millis(200);
    assert_eq!(settings.concurrent_stores, 2);
    let consumer = LogConsumer::spawn(
        app.db.clone(),
        Arc::clone(&stream),
        settings,
        Arc::clone(&app.log_ingest),
        &tokio::runtime::Handle::current(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.log_ingest.acknowledged.load(Ordering::Relaxed) < (ENTRIES + 1) as u64 {
        assert!(
            Instant::now() < deadline,
            "acknowledged only {:?}",
            app.log_ingest
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.stop().await;

    let total = ENTRIES * PER_ENTRY;
    let rows = app
        .db
        .with_conn(|c| log_caps::stored_count(c, "acme", "gw"))
        .unwrap();
    assert_eq!(
        rows,
        total as i64 - 1,
        "every record but the refused one, once"
    );
    let (status, body) = app
        .get(&app.gw_url("acme", "/gateways/gw/logs?per_page=1"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_info"]["total_count"], total as i64 - 1);
    assert_eq!(
        stream.pending().await.unwrap(),
        0,
        "every entry acknowledged"
    );

    let (status, body) = app.get(&app.url("/admin/log-ingest")).await;
    assert_eq!(status, 200, "{body}");
    let ingest = &body["result"];
    assert_eq!(ingest["acknowledged"], ENTRIES + 1);
    assert_eq!(ingest["stored"], total - 1 + PER_ENTRY);
    assert_eq!(ingest["rejected"], 1);
    assert_eq!(ingest["dropped"], 0);
    assert_eq!(ingest["unreadable"], 0);
    assert_eq!(ingest["trimmed"], 0);

    // Operators only.
    let account_admin = app.token(&["acme"], &[Scope::AiGatewayRead, Scope::AiGatewayEdit]);
    let (status, body) = app
        .send(
            reqwest::Method::GET,
            &app.url("/admin/log-ingest"),
            Some(&account_admin),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .send(
            reqwest::Method::GET,
            &app.url("/admin/log-ingest"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    delete_prefix(&redis_url, &prefix);
}
