//! `ingest`: records/s through `store_batch`, and through split mode's whole path from a Redis log stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use gatehouse_bench::client::http_client;
use gatehouse_bus::testing::{delete_prefix, unique_prefix};
use gatehouse_bus::{LogBatch, LogStream, RedisBusSettings};
use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::log_consumer::{LogConsumer, LogConsumerSettings};
use gatehouse_control_plane::log_ingest::LogIngestCounters;
use gatehouse_shared::log::LogRecord;
use serde_json::{Value, json};

use crate::BATCH;
use crate::records::{now_ms, record, store_all};
use crate::setup::Api;

pub(crate) async fn ingest(
    db: &Database,
    api: &Api,
    records: usize,
    writer_counts: &[usize],
) -> Result<Value> {
    let client = http_client();
    let mut rows = Vec::new();
    println!(
        "ingest into PostgreSQL through log_ingest::store_batch, batches of {BATCH}, {records} records per run"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>12}  target",
        "writers", "records", "seconds", "records/s"
    );
    for &writers in writer_counts {
        let gateway = format!("ingest-{writers}");
        api.create_gateway(&client, &gateway).await?;
        let now = now_ms();
        let pre: Vec<Arc<Vec<LogRecord>>> = (0..records.div_ceil(BATCH))
            .map(|b| {
                let from = (b * BATCH) as u64;
                let to = (from + BATCH as u64).min(records as u64);
                Arc::new(
                    (from..to)
                        .map(|i| record(&gateway, i, records as u64, now, writers as u64))
                        .collect(),
                )
            })
            .collect();
        let (inserted, elapsed) = store_all(
            db,
            &gateway,
            records,
            writers,
            None,
            Some(Arc::new(pre)),
            false,
        )
        .await?;
        ensure!(
            inserted == records,
            "{writers} writers stored {inserted} of {records}"
        );
        let rate = inserted as f64 / elapsed.as_secs_f64();
        println!(
            "{writers:>8} {inserted:>10} {:>10.2} {rate:>12.0}  >= 5,000/s: {}",
            elapsed.as_secs_f64(),
            if rate >= 5000.0 { "met" } else { "MISSED" }
        );
        rows.push(json!({"writers": writers, "records": inserted,
            "seconds": elapsed.as_secs_f64(), "records_per_s": rate}));
    }
    Ok(json!({"mode": "ingest", "batch": BATCH, "runs": rows}))
}

/// Split mode's ingest end to end on the control plane's side: `records` appended to a Redis log stream (under a
/// prefix of its own) as entries of 500, as nodes ship them (not timed), then the real `LogConsumer` started and
/// timed until it has acknowledged every entry, for each count of concurrent stores.
pub(crate) async fn ingest_from_stream(
    db: &Database,
    api: &Api,
    redis_url: &str,
    records: usize,
    concurrent_stores: &[usize],
) -> Result<Value> {
    let client = http_client();
    let mut rows = Vec::new();
    println!(
        "ingest from a Redis log stream through LogConsumer, entries of {BATCH}, {records} records per run"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>12}  target",
        "stores", "records", "seconds", "records/s"
    );
    for &stores in concurrent_stores {
        let gateway = format!("stream-{stores}");
        api.create_gateway(&client, &gateway).await?;
        let prefix = unique_prefix("bench-logs");
        let stream = Arc::new(LogStream::new(
            &RedisBusSettings {
                url: redis_url.to_owned(),
                prefix: prefix.clone(),
            },
            tokio::runtime::Handle::current(),
        )?);
        stream.ensure_group().await?;
        let now = now_ms();
        let entries = records.div_ceil(BATCH);
        for b in 0..entries {
            let from = (b * BATCH) as u64;
            let to = (from + BATCH as u64).min(records as u64);
            let batch: Vec<LogRecord> = (from..to)
                .map(|i| record(&gateway, i, records as u64, now, 100 + stores as u64))
                .collect();
            stream.append(&LogBatch::encode(&batch)?).await?;
        }
        let counters = Arc::new(LogIngestCounters::default());
        let mut settings =
            LogConsumerSettings::new(format!("bench-{stores}"), Duration::from_secs(30));
        settings.concurrent_stores = stores;
        settings.block = Duration::from_millis(100);
        let started = Instant::now();
        let consumer = LogConsumer::spawn(
            db.clone(),
            Arc::clone(&stream),
            settings,
            Arc::clone(&counters),
            &tokio::runtime::Handle::current(),
        );
        let deadline = started + Duration::from_secs(600);
        while counters.acknowledged.load(Ordering::Relaxed) < entries as u64 {
            ensure!(
                Instant::now() < deadline,
                "the consumer acknowledged {:?} of {entries} entries in 600 s",
                counters.acknowledged
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        consumer.stop().await;
        delete_prefix(redis_url, &prefix);
        let stored = counters.stored.load(Ordering::Relaxed) as usize;
        ensure!(
            stored == records,
            "{stores} stores: stored {stored} of {records}"
        );
        let rate = stored as f64 / elapsed.as_secs_f64();
        println!(
            "{stores:>8} {stored:>10} {:>10.2} {rate:>12.0}  >= 5,000/s: {}",
            elapsed.as_secs_f64(),
            if rate >= 5000.0 { "met" } else { "MISSED" }
        );
        rows.push(json!({"concurrent_stores": stores, "records": stored,
            "seconds": elapsed.as_secs_f64(), "records_per_s": rate}));
    }
    Ok(json!({"entry_records": BATCH, "runs": rows}))
}
