//! The standalone log writer under load and stalled: every record of a burst stored exactly once, and requests that
//! never wait for it, even while it cannot write.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, RunQueryDsl as _};
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::logs::{Keep, logs_get_json, start_with_gateway};
use crate::support::{Gatehouse, mint_token};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;

/// One logged chat completion through `acme/gw`; its status, its `cf-aig-log-id` (when it has one) and how long it
/// took, body included.
async fn chat(gh: &Gatehouse, http: &reqwest::Client) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let resp = http
        .post(gh.inference_url("/v1/acme/gw/openai/chat/completions"))
        .header("authorization", "Bearer sk")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("cf-aig-log-id")
        .map(|v| v.to_str().unwrap().to_owned());
    resp.bytes().await.unwrap();
    (status, id, started.elapsed())
}

/// Sends until the gateway routes (the node loads it after its creation); returns the log id of the first 200.
async fn until_routable(gh: &Gatehouse, http: &reqwest::Client) -> String {
    let started = Instant::now();
    loop {
        if let (200, Some(id), _) = chat(gh, http).await {
            return id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway never became routable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The unfiltered `total_count` of `acme/gw`'s logs (the stored count, kept with the rows).
async fn stored(gh: &Gatehouse, http: &reqwest::Client, token: &str) -> u64 {
    let body = logs_get_json(gh, http, token, "?per_page=1").await;
    body["result_info"]["total_count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}"))
}

/// Polls until `n` logs are stored, for at most `within`; returns how many there are at the end.
async fn until_stored(
    gh: &Gatehouse,
    http: &reqwest::Client,
    token: &str,
    n: u64,
    within: Duration,
) -> u64 {
    let started = Instant::now();
    loop {
        let count = stored(gh, http, token).await;
        if count >= n || started.elapsed() > within {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An operator's `GET {path}` `result`.
async fn admin(gh: &Gatehouse, http: &reqwest::Client, token: &str, path: &str) -> Value {
    let body: Value = http
        .get(gh.api_url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["result"].clone()
}

/// The standalone database file of a test's data dir.
fn database_file(keep: &Keep) -> String {
    keep.dir
        .path()
        .join("gatehouse.sqlite")
        .to_str()
        .unwrap()
        .to_owned()
}

const BURST: usize = 20_000;
const IN_FLIGHT: usize = 64;

/// 20,000 logged requests as fast as 64 connections send them: every one is stored once, by the id its response
/// named. A record lost (dropped by a full channel, given up by the writer) is missing from the table; one written
/// twice is counted twice by the writer's `stored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logged_requests_is_stored_exactly_once() {
    let (gh, token, http, keep) = start_with_gateway().await;
    let operator = mint_token(keep.dir.path(), "*", &["admin"]);
    let mut ids = vec![until_routable(&gh, &http).await];

    let started = Instant::now();
    let sent = tokio::time::timeout(
        Duration::from_secs(150),
        futures_util::stream::iter(0..BURST)
            .map(|_| chat(&gh, &http))
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("20,000 requests within 150 s");
    let sending = started.elapsed();
    for (status, id, _) in sent {
        assert_eq!(status, 200);
        ids.push(id.expect("a logged request names its log"));
    }
    let expected: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        expected.len(),
        BURST + 1,
        "every response named its own log"
    );

    let count = until_stored(
        &gh,
        &http,
        &token,
        expected.len() as u64,
        Duration::from_secs(60),
    )
    .await;
    let node = admin(&gh, &http, &operator, "/admin/nodes").await;
    let ingest = admin(&gh, &http, &operator, "/admin/log-ingest").await;
    eprintln!(
        "sent {BURST} in {:.1} s; stored {count} {:.1} s after the first; node logs {}; ingest {ingest}",
        sending.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        node[0]["logs"]
    );
    assert_eq!(
        count,
        expected.len() as u64,
        "node: {node}; ingest: {ingest}"
    );
    assert_eq!(node[0]["logs"]["dropped"], 0, "{node}");
    assert_eq!(
        ingest["stored"],
        expected.len(),
        "each written once: {ingest}"
    );
    assert_eq!(ingest["dropped"], 0, "{ingest}");
    assert_eq!(ingest["rejected"], 0, "{ingest}");

    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let mut db = diesel::SqliteConnection::establish(&database_file(&keep)).unwrap();
    let rows: Vec<Id> =
        diesel::sql_query("SELECT id FROM logs WHERE account_id = 'acme' AND gateway_id = 'gw'")
            .load(&mut db)
            .unwrap();
    let stored: HashSet<String> = rows.into_iter().map(|r| r.id).collect();
    assert_eq!(stored.len(), expected.len());
    assert!(
        stored == expected,
        "{} ids answered but not stored, {} stored but never answered",
        expected.difference(&stored).count(),
        stored.difference(&expected).count()
    );
    assert!(gh.terminate().success());
}

/// How long the test holds the database's write lock: longer than SQLite's `busy_timeout` (5 s), so the writer's
/// first attempt fails ("database is locked") and its retry (the next of 5 attempts, 100 ms later) stores the batch;
/// shorter than what the retries cover (~26 s).
const STALL: Duration = Duration::from_secs(8);
/// How long a request may take while the writer is stalled: a fraction of the stall, ample for a debug build.
const PROMPT: Duration = Duration::from_secs(2);
const DURING_STALL: usize = 20;

/// While another connection holds the standalone database's write lock, the writer cannot store anything; requests
/// are answered promptly all the same, and their records are stored once the lock is released, none lost. Were the
/// request path to wait for its record to be stored (or for the writer to take it), each request would take the
/// rest of the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_complete_while_the_log_writer_is_stalled() {
    let (gh, token, http, keep) = start_with_gateway().await;
    let operator = mint_token(keep.dir.path(), "*", &["admin"]);
    until_routable(&gh, &http).await;
    assert_eq!(
        until_stored(&gh, &http, &token, 1, Duration::from_secs(10)).await,
        1
    );

    // The lock, held on a thread of its own until told to let go.
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let file = database_file(&keep);
    let locker = std::thread::spawn(move || {
        let mut db = diesel::SqliteConnection::establish(&file).unwrap();
        db.batch_execute("PRAGMA busy_timeout = 5000; BEGIN EXCLUSIVE;")
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        db.batch_execute("COMMIT;").unwrap();
    });
    locked.recv().unwrap();
    let locked_at = Instant::now();

    for n in 0..DURING_STALL {
        let (status, id, took) = chat(&gh, &http).await;
        assert_eq!(status, 200, "request {n}");
        assert!(id.is_some(), "request {n} is logged");
        assert!(
            took < PROMPT,
            "request {n} took {took:?} while the writer was stalled"
        );
    }
    let answered = locked_at.elapsed();
    assert!(
        answered < STALL,
        "{DURING_STALL} requests took {answered:?}"
    );
    // The stall is real: nothing of them is stored while the lock is held.
    assert_eq!(stored(&gh, &http, &token).await, 1);

    tokio::time::sleep(STALL.saturating_sub(locked_at.elapsed())).await;
    assert_eq!(
        stored(&gh, &http, &token).await,
        1,
        "stored through the lock"
    );
    release.send(()).unwrap();
    locker.join().unwrap();

    let count = until_stored(
        &gh,
        &http,
        &token,
        1 + DURING_STALL as u64,
        Duration::from_secs(30),
    )
    .await;
    let ingest = admin(&gh, &http, &operator, "/admin/log-ingest").await;
    assert_eq!(
        count,
        1 + DURING_STALL as u64,
        "every record of the stall arrives: {ingest}"
    );
    assert_eq!(ingest["dropped"], 0, "{ingest}");
    assert_eq!(ingest["rejected"], 0, "{ingest}");
    assert!(gh.terminate().success());
}
