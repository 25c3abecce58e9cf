//! Writing log records into the database in batches.
//!
//! Standalone, records arrive on a channel straight from the data plane's `LogSink`; in split mode the Redis stream
//! consumer (`log_consumer`) hands over the batches the nodes shipped. Both store through [`store_batch`]. The
//! writer takes what is waiting, up to `max_batch` records or `linger` after the first, and stores them with one
//! multi-row insert per table (`store::logs::insert_batch`, idempotent by id). A failed batch is retried with
//! backoff a few times and then dropped and counted: logs are never worth blocking traffic for, and the data
//! plane's channel is bounded anyway. The writer stores one batch at a time: the embedded default runs on SQLite,
//! which takes one writer at a time anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_shared::log::LogRecord;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::db::Database;
use crate::error::Error;

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

/// What this process's log ingest did, on either path (the standalone writer or the stream consumer); shown by
/// `GET /admin/log-ingest`, so that records lost on the control plane's side are counted and visible as the data
/// plane's are in its node status.
#[derive(Debug, Default)]
pub struct LogIngestCounters {
    /// Records in batches stored (a redelivered record counts again; its row is not duplicated).
    pub stored: AtomicU64,
    /// Records given up after every attempt to store their batch failed (the standalone writer; the consumer
    /// leaves them pending in the stream instead).
    pub dropped: AtomicU64,
    /// Records the database refused on their own: their batch was stored without them.
    pub rejected: AtomicU64,
    /// Stream entries that could not be decoded (acknowledged and skipped).
    pub unreadable: AtomicU64,
    /// Stream entries trimmed (`MAXLEN`) before any control plane stored them.
    pub trimmed: AtomicU64,
    /// Stream entries acknowledged after their records were stored.
    pub acknowledged: AtomicU64,
}

impl LogIngestCounters {
    /// Counts a batch of `records` stored with `outcome`.
    pub fn count_stored(&self, records: usize, outcome: StoredBatch) {
        self.stored
            .fetch_add((records - outcome.rejected) as u64, Ordering::Relaxed);
        self.rejected
            .fetch_add(outcome.rejected as u64, Ordering::Relaxed);
    }
}

/// A running writer.
#[derive(Debug)]
pub struct LogWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LogWriter {
    /// Starts the writer on `runtime`.
    pub fn spawn(
        db: Database,
        records: mpsc::Receiver<LogRecord>,
        settings: LogWriterSettings,
        counters: Arc<LogIngestCounters>,
        runtime: &tokio::runtime::Handle,
    ) -> LogWriter {
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(run(db, records, settings, stopped, counters));
        LogWriter { stop, task }
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
    counters: Arc<LogIngestCounters>,
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

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredBatch {
    /// New rows (a redelivered record is not new; one refused by a storage cap is not stored).
    pub inserted: usize,
    /// Records the database refused on their own, left out so that the rest could be stored.
    pub rejected: usize,
}

/// Stores one batch: the single entry point of every ingest path (the standalone writer and the Redis stream
/// consumer), so per-gateway storage caps apply the same way to both. Idempotent by record id.
///
/// A batch the database refuses (as opposed to a database that cannot be reached) is stored again record by
/// record, and only the records refused on their own are left out, counted and logged: one bad record must not
/// hold back the batch, nor, in split mode, every entry behind it in the stream forever. An error reaching the
/// database is returned as it is; the caller retries the whole batch.
pub async fn store_batch(
    db: &Database,
    records: Arc<Vec<LogRecord>>,
) -> Result<StoredBatch, Error> {
    let whole = Arc::clone(&records);
    let error = match db
        .run(move |c| crate::store::log_caps::store_with_caps(c, &whole))
        .await
    {
        Ok(outcome) => {
            if outcome.refused_at_cap > 0 || outcome.evicted > 0 {
                tracing::debug!(?outcome, "log storage caps applied");
            }
            return Ok(StoredBatch {
                inserted: outcome.inserted,
                rejected: 0,
            });
        }
        Err(error) if refused_by_database(&error) => error,
        Err(error) => return Err(error),
    };
    tracing::warn!(%error, records = records.len(), "the database refused a log batch; storing its records one by one");
    db.run(move |c| {
        let mut stored = StoredBatch::default();
        for record in records.iter() {
            match crate::store::log_caps::store_with_caps(c, std::slice::from_ref(record)) {
                Ok(outcome) => stored.inserted += outcome.inserted,
                Err(error) if refused_by_database(&error) => {
                    tracing::error!(%error, id = %record.id, gateway = %record.gateway_id,
                        "the database refused a log record; it is not stored");
                    stored.rejected += 1;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(stored)
    })
    .await
}

/// Whether the database answered and said no (a constraint, a value it cannot hold), rather than failing to
/// answer: only then can storing the records one by one tell the bad one from the rest.
fn refused_by_database(error: &Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error as Diesel};
    match error {
        Error::Database(Diesel::DatabaseError(kind, _)) => !matches!(
            kind,
            Kind::ClosedConnection
                | Kind::UnableToSendCommand
                | Kind::SerializationFailure
                | Kind::ReadOnlyTransaction
        ),
        _ => false,
    }
}

async fn write(
    db: &Database,
    batch: Vec<LogRecord>,
    settings: LogWriterSettings,
    counters: &LogIngestCounters,
) {
    let batch = Arc::new(batch);
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=settings.attempts.max(1) {
        match store_batch(db, Arc::clone(&batch)).await {
            Ok(outcome) => {
                counters.count_stored(batch.len(), outcome);
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
