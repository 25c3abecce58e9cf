//! The control plane's log ingest on PostgreSQL (`TEST_DATABASE_URL`) and, for split mode's stream consumer, Redis
//! (`TEST_REDIS_URL`), both required when `CI=true`: every entry stored once and acknowledged with two stores side
//! by side, a record the database refuses left out without holding back the stream, batches the writer gives up on
//! counted as dropped, and the counters `GET /admin/log-ingest` shows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use gatehouse_bus::{LogBatch, LogStream, RedisBusSettings};
use gatehouse_control_plane::log_consumer::{LogConsumer, LogConsumerSettings};
use gatehouse_control_plane::log_ingest::{LogWriter, LogWriterSettings};
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

/// Runs `sql` on the server's admin database (the test's own database is named in it).
fn admin_sql(sql: &str) {
    use diesel::Connection as _;
    let url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let mut admin = diesel::PgConnection::establish(&url).expect("connect to TEST_DATABASE_URL");
    diesel::sql_query(sql).execute(&mut admin).expect(sql);
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The embedded default's writer: while the database cannot take writes (here read-only, in life down or failing
/// over) it retries a batch and then gives it up, and `GET /admin/log-ingest` counts it as dropped; once the
/// database takes writes again, new batches are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_the_writer_gives_up_on_are_counted_as_dropped() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    app.create_gateway("acme", "gw").await;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let name = app
        .db
        .with_conn(|c| {
            Ok(diesel::sql_query("SELECT current_database() AS name").get_result::<Name>(c)?)
        })
        .unwrap()
        .name;
    // New sessions are read-only; ending the current ones makes the pool open new ones.
    let terminate =
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
    admin_sql(&format!(
        "ALTER DATABASE \"{name}\" SET default_transaction_read_only = on"
    ));
    admin_sql(&terminate);

    let (records, queue) = tokio::sync::mpsc::channel(16);
    let writer = LogWriter::spawn(
        app.db.clone(),
        queue,
        LogWriterSettings {
            max_batch: 10,
            linger: Duration::from_millis(20),
            attempts: 3,
        },
        Arc::clone(&app.log_ingest),
    )
    .unwrap();
    for n in 0..4 {
        records
            .send(record(
                &format!("lost-{n}"),
                1_700_000_000_000 + n,
                "openai",
            ))
            .await
            .unwrap();
    }
    let counters = Arc::clone(&app.log_ingest);
    until("the writer never gave the batch up", || {
        counters.dropped.load(Ordering::Relaxed) == 4
    })
    .await;

    admin_sql(&format!(
        "ALTER DATABASE \"{name}\" RESET default_transaction_read_only"
    ));
    admin_sql(&terminate);
    for n in 0..3 {
        records
            .send(record(
                &format!("kept-{n}"),
                1_700_000_001_000 + n,
                "openai",
            ))
            .await
            .unwrap();
    }
    until("the writer never stored the later batch", || {
        counters.stored.load(Ordering::Relaxed) == 3
    })
    .await;
    writer.stop().await;

    let (status, body) = app.get(&app.url("/admin/log-ingest")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["dropped"], 4);
    assert_eq!(body["result"]["stored"], 3);
    assert_eq!(
        body["result"]["rejected"], 0,
        "not refused: unreachable for writes"
    );
    let rows = app
        .db
        .with_conn(|c| log_caps::stored_count(c, "acme", "gw"))
        .unwrap();
    assert_eq!(rows, 3);
}
