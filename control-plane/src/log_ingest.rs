//! Writing log records into the database in batches.
//!
//! Records arrive on a channel (standalone: straight from the data plane's `LogSink`; split mode: from the Redis
//! stream consumer, next step). The writer takes what is waiting, up to `max_batch` records or `linger` after the
//! first, and stores them with one multi-row insert per table (`store::logs::insert_batch`, idempotent by id). A
//! failed batch is retried with backoff a few times and then dropped and counted: logs are never worth blocking
//! traffic for, and the data plane's channel is bounded anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_shared::log::LogRecord;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::db::Database;

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct LogWriterSettings {
    pub max_batch: usize,
    /// How long to wait for more records after the first of a batch.
    pub linger: Duration,
    /// Attempts per batch before it is dropped.
    pub attempts: u32,
}

impl Default for LogWriterSettings {
    fn default() -> Self {
        Self {
            max_batch: 500,
            linger: Duration::from_millis(100),
            attempts: 5,
        }
    }
}

/// What the writer did, for status reports and tests.
#[derive(Debug, Default)]
pub struct LogWriterCounters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
}

/// A running writer.
#[derive(Debug)]
pub struct LogWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counters: Arc<LogWriterCounters>,
}

impl LogWriter {
    /// Starts the writer on `runtime`.
    pub fn spawn(
        db: Database,
        records: mpsc::Receiver<LogRecord>,
        settings: LogWriterSettings,
        runtime: &tokio::runtime::Handle,
    ) -> LogWriter {
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(LogWriterCounters::default());
        let task = runtime.spawn(run(db, records, settings, stopped, Arc::clone(&counters)));
        LogWriter {
            stop,
            task,
            counters,
        }
    }

    pub fn counters(&self) -> Arc<LogWriterCounters> {
        Arc::clone(&self.counters)
    }

    /// Writes what is already queued, then stops.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the log writer did not finish within 10 s");
        }
    }
}

async fn run(
    db: Database,
    mut records: mpsc::Receiver<LogRecord>,
    settings: LogWriterSettings,
    mut stopped: watch::Receiver<bool>,
    counters: Arc<LogWriterCounters>,
) {
    loop {
        let first = tokio::select! {
            r = records.recv() => r,
            _ = stopped.changed() => {
                // Stop: take what is queued without waiting, write it, end.
                let mut rest = Vec::new();
                while let Ok(r) = records.try_recv() {
                    rest.push(r);
                }
                for batch in rest.chunks(settings.max_batch.max(1)) {
                    write(&db, batch.to_vec(), settings, &counters).await;
                }
                return;
            }
        };
        let Some(first) = first else { return };
        let mut batch = Vec::with_capacity(settings.max_batch);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + settings.linger;
        while batch.len() < settings.max_batch {
            match tokio::time::timeout_at(deadline, records.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        write(&db, batch, settings, &counters).await;
    }
}

/// Stores one batch: the single entry point of every ingest path (the standalone writer and the Redis stream
/// consumer), so per-gateway storage caps apply the same way to both. Idempotent by record id.
pub async fn store_batch(
    db: &Database,
    records: Arc<Vec<LogRecord>>,
) -> Result<usize, crate::Error> {
    let outcome = db
        .run(move |c| crate::store::log_caps::store_with_caps(c, &records))
        .await?;
    if outcome.refused_at_cap > 0 || outcome.evicted > 0 {
        tracing::debug!(?outcome, "log storage caps applied");
    }
    Ok(outcome.inserted)
}

async fn write(
    db: &Database,
    batch: Vec<LogRecord>,
    settings: LogWriterSettings,
    counters: &LogWriterCounters,
) {
    let batch = Arc::new(batch);
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=settings.attempts.max(1) {
        match store_batch(db, Arc::clone(&batch)).await {
            Ok(_) => {
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) if attempt < settings.attempts => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "writing log records failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "writing log records failed; dropping the batch");
                counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }
}
