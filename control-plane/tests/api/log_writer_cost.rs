//! What the standalone log writer costs in CPU per record, on SQLite (the embedded default). Not a test: ignored,
//! run by hand in release, where its figures mean something:
//!
//! ```text
//! cargo test --release -p gatehouse-control-plane --test api log_writer_cost -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Each scenario feeds pre-built records (~1 KB of bodies, every optional field set, as a logged chat completion
//! carries) through the writer's real channel into a fresh database and reads the whole process's CPU time
//! (utime + stime, `/proc/self/stat`) before and after, less that of the same feeding into a channel that is only
//! drained: what remains is the writer's, per record. `paced` sends 2,000 records a second (batches form by the
//! writer's linger, as under steady traffic); `burst` queues them all first (full batches, as after a stall).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_control_plane::log_ingest::{LogIngestCounters, LogWriter, LogWriterSettings};
use gatehouse_control_plane::store::log_caps;
use gatehouse_shared::log::LogRecord;
use tokio::sync::mpsc;

use crate::support::TestApp;

const PACED_RATE: u64 = 2_000;
const PACED_RECORDS: usize = 20_000;
const BURST_RECORDS: usize = 40_000;

/// CPU seconds of this process so far (every thread, live or exited).
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn records(n: usize, salt: &str) -> Vec<LogRecord> {
    let base = 1_700_000_000_000_i64;
    (0..n)
        .map(|i| {
            let id = format!("01JCOST{salt}{i:019}");
            let request_body = format!(
                r#"{{"model":"gpt-4o-mini","messages":[{{"role":"system","content":"You are a terse assistant."}},{{"role":"user","content":"Request {i}: explain connection pooling to a backend engineer who knows TCP, with one concrete failure it prevents under load and one way to observe it."}}],"max_tokens":256,"temperature":0.2}}"#
            );
            let response_body = format!(
                r#"{{"id":"chatcmpl-{i:016x}","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"Connection pooling keeps a slow dependency from taking the caller down with it: without it every request opens a new connection, a burst of retries multiplies the handshakes and the workers end up blocked. You see it working when the dependency's error rate rises but your own latency stays flat, and its counters move in your dashboards."}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":61,"completion_tokens":74,"total_tokens":135}}}}"#
            );
            let mut r = crate::logs::record(&id, base + i as i64, "openai");
            r.model = Some("gpt-4o-mini".into());
            r.model_type = Some("chat".into());
            r.tokens_in = Some(61);
            r.tokens_out = Some(74);
            r.cached_tokens_in = Some(0);
            r.cost = Some(0.000_053_55);
            r.metadata = Some(format!(r#"{{"team":"ml","trace":{i}}}"#));
            r.user_agent = Some("OpenAI/Python 1.82.0".into());
            r.authenticated = true;
            r.config_hash = Some("3f2a9c0e5b7d".into());
            r.request_head = request_body.chars().take(512).collect();
            r.request_head_complete = true;
            r.request_size = request_body.len() as u64;
            r.response_head = response_body.chars().take(512).collect();
            r.response_head_complete = false;
            r.response_size = response_body.len() as u64;
            r.request_body = Some(request_body);
            r.response_body = Some(response_body);
            r.bodies_stored = true;
            r
        })
        .collect()
}

/// Sends `records` at `rate` a second (every millisecond its share), or all at once when `rate` is `None`.
async fn feed(tx: &mpsc::Sender<LogRecord>, records: Vec<LogRecord>, rate: Option<u64>) {
    let Some(rate) = rate else {
        for r in records {
            tx.try_send(r).expect("room for the burst");
        }
        return;
    };
    let per_ms = (rate / 1000).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut records = records.into_iter();
    loop {
        tick.tick().await;
        for _ in 0..per_ms {
            let Some(r) = records.next() else { return };
            tx.try_send(r).expect("the writer keeps up");
        }
    }
}

/// CPU seconds spent feeding `n` records to a channel that is only drained.
async fn baseline(n: usize, rate: Option<u64>) -> f64 {
    let recs = records(n, "B");
    let (tx, mut rx) = mpsc::channel(n);
    let drain = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(500);
        while rx.recv_many(&mut buf, 500).await > 0 {
            buf.clear();
        }
    });
    let before = process_cpu();
    feed(&tx, recs, rate).await;
    drop(tx);
    drain.await.unwrap();
    process_cpu() - before
}

/// Runs a scenario; returns the writer's CPU µs per record.
async fn scenario(label: &str, n: usize, rate: Option<u64>) -> f64 {
    let app = TestApp::sqlite().await;
    app.create_gateway("acme", "gw").await;
    let recs = records(n, "W");
    let counters = Arc::new(LogIngestCounters::default());
    let (tx, rx) = mpsc::channel(n);
    let writer = LogWriter::spawn(
        app.db.clone(),
        rx,
        LogWriterSettings::default(),
        Arc::clone(&counters),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let before = process_cpu();
    feed(&tx, recs, rate).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while counters.stored.load(std::sync::atomic::Ordering::Relaxed) < n as u64 {
        assert!(Instant::now() < deadline, "stored {counters:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cpu = process_cpu() - before;
    let wall = started.elapsed();
    writer.stop().await;
    let stored = app
        .db
        .with_conn(|c| log_caps::stored_count(c, "acme", "gw"))
        .unwrap();
    assert_eq!(stored, n as i64);
    let base = baseline(n, rate).await;
    let per_record = (cpu - base) / n as f64 * 1e6;
    println!(
        "{label:>6}: {n} records in {:.2} s wall, {:.2} s CPU ({:.2} s of it feeding): {per_record:.1} µs CPU per record",
        wall.as_secs_f64(),
        cpu,
        base,
    );
    per_record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand in release (see the module comment)"]
async fn log_writer_cost() {
    // Three runs each, and the least: other work on the machine only ever adds.
    let mut paced = Vec::new();
    let mut burst = Vec::new();
    for _ in 0..3 {
        paced.push(scenario("paced", PACED_RECORDS, Some(PACED_RATE)).await);
        burst.push(scenario("burst", BURST_RECORDS, None).await);
    }
    let least = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "least µs CPU per record: paced {:.1}, burst {:.1}",
        least(&paced),
        least(&burst)
    );
}
