//! Writing log records into the database.
//!
//! Standalone, records arrive on a channel straight from the data plane's `LogSink` and the [`LogWriter`] (on a
//! thread of its own, `writer.rs`) stores them in batches; in split mode the Redis stream consumer
//! (`log_consumer`) hands over the batches the nodes shipped. Both store through [`store_records`] (the consumer
//! through its async twin [`store_batch`]): per-gateway caps, one insert per table and gateway, idempotent by id
//! (`store::log_caps`, `store::logs::insert_batch`). A failed batch is retried with backoff a few times and then
//! dropped and counted: logs are never worth blocking traffic for, and the data plane's channel is bounded anyway.

mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_shared::log::LogRecord;
use prometheus_client::metrics::histogram::Histogram;

pub use writer::{LogWriter, LogWriterSettings};

use crate::db::{AnyConnection, Database};
use crate::error::Error;

/// What this process's log ingest did, on either path (the standalone writer or the stream consumer); shown by
/// `GET /admin/log-ingest`, so that records lost on the control plane's side are counted and visible as the data
/// plane's are in its node status.
#[derive(Debug)]
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
    /// Records per stored batch (`/metrics`).
    pub batch_sizes: Histogram,
    /// Seconds from each stored record's request start to its storing (`/metrics`).
    pub lag: Histogram,
}

impl Default for LogIngestCounters {
    fn default() -> Self {
        Self {
            stored: AtomicU64::default(),
            dropped: AtomicU64::default(),
            rejected: AtomicU64::default(),
            unreadable: AtomicU64::default(),
            trimmed: AtomicU64::default(),
            acknowledged: AtomicU64::default(),
            batch_sizes: Histogram::new([1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0]),
            lag: Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        }
    }
}

impl LogIngestCounters {
    /// Observes a batch as it is stored: its size, and each record's lag behind its request.
    pub fn observe_batch(&self, records: &[LogRecord]) {
        self.batch_sizes.observe(records.len() as f64);
        let now_ms = crate::store::now_ms();
        for record in records {
            let lag_ms = now_ms.saturating_sub(record.created_at_ms).max(0);
            self.lag.observe(lag_ms as f64 / 1000.0);
        }
    }

    /// Counts a batch of `records` stored with `outcome`.
    pub fn count_stored(&self, records: usize, outcome: StoredBatch) {
        self.stored
            .fetch_add((records - outcome.rejected) as u64, Ordering::Relaxed);
        self.rejected
            .fetch_add(outcome.rejected as u64, Ordering::Relaxed);
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
pub fn store_records(
    conn: &mut AnyConnection,
    records: &[LogRecord],
) -> Result<StoredBatch, Error> {
    let stored = store_rows(conn, records)?;
    record_key_uses(conn, records);
    Ok(stored)
}

/// Moves each virtual key's `last_used_at` to its newest record in the batch: one UPDATE per key per batch, never
/// one per record, and none for a batch without keys. Every record counts, stored or not (a record refused at a
/// cap was still a use). A failure is logged and left: the rows are committed, and the next batch of the key
/// moves its time on.
fn record_key_uses(conn: &mut AnyConnection, records: &[LogRecord]) {
    let mut uses: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for r in records {
        if let Some(key) = r.key_id.as_deref() {
            let newest = uses.entry((r.account_id.as_str(), key)).or_insert(i64::MIN);
            *newest = (*newest).max(r.created_at_ms);
        }
    }
    if let Err(error) = crate::store::access::keys::record_uses(conn, &uses) {
        tracing::warn!(%error, keys = uses.len(), "updating the last use of virtual keys failed");
    }
}

/// The rows of one batch (see [`store_records`]).
fn store_rows(conn: &mut AnyConnection, records: &[LogRecord]) -> Result<StoredBatch, Error> {
    let error = match crate::store::log_caps::store_with_caps(conn, records) {
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
    let mut stored = StoredBatch::default();
    for record in records {
        match crate::store::log_caps::store_with_caps(conn, std::slice::from_ref(record)) {
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
}

/// [`store_records`] on the blocking pool, for async callers (the split-mode consumer).
pub async fn store_batch(
    db: &Database,
    records: Arc<Vec<LogRecord>>,
) -> Result<StoredBatch, Error> {
    db.run(move |c| store_records(c, &records)).await
}

/// Whether the database answered and said no (a constraint, a value it cannot hold), rather than failing to
/// answer: only then can storing the records one by one tell the bad one from the rest.
fn refused_by_database(error: &Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error as Diesel};
    match error {
        Error::Database(Diesel::DatabaseError(kind, info)) => {
            !matches!(
                kind,
                Kind::ClosedConnection
                    | Kind::UnableToSendCommand
                    | Kind::SerializationFailure
                    | Kind::ReadOnlyTransaction
            ) && !sqlite_cannot_write(info.message())
        }
        _ => false,
    }
}

/// SQLite's messages for a database that cannot take a write now, whatever the records: diesel reports them (like
/// a trigger's refusal) as an unknown error with SQLite's message. Taken for refusals, one writer that held the
/// lock past `busy_timeout` would send a whole batch down the record-by-record path, each record waiting out
/// `busy_timeout` in turn; they are retried as a batch instead.
fn sqlite_cannot_write(message: &str) -> bool {
    const MESSAGES: [&str; 6] = [
        "database is locked",
        "database table is locked",
        "attempt to write a readonly database",
        "disk I/O error",
        "database or disk is full",
        "unable to open database file",
    ];
    MESSAGES.iter().any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error as Diesel};

    fn database_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::Database(Diesel::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn a_locked_or_unwritable_sqlite_database_is_not_a_refusal() {
        for message in [
            "database is locked",
            "attempt to write a readonly database",
            "disk I/O error",
        ] {
            assert!(
                !refused_by_database(&database_error(DatabaseErrorKind::Unknown, message)),
                "{message}"
            );
        }
        assert!(refused_by_database(&database_error(
            DatabaseErrorKind::Unknown,
            "poisoned"
        )));
        assert!(refused_by_database(&database_error(
            DatabaseErrorKind::CheckViolation,
            "new row violates check"
        )));
        assert!(!refused_by_database(&database_error(
            DatabaseErrorKind::ClosedConnection,
            "closed"
        )));
    }
}
