//! The log shipper of a split-mode node: a pingora background service that drains the [`LogSink`]'s channel in
//! batches (up to 500 records, or 100 ms after the first) and appends each batch to the Redis log stream.
//!
//! While Redis is down the shipper retries the batch in hand with backoff and reads nothing else, so it holds at
//! most one batch; the bounded channel fills, and the request path's `try_send` then drops and counts new records
//! (`LogSinkCounters::dropped`). No request ever waits on Redis. At shutdown the shipper keeps shipping what
//! arrives until the channel has been quiet briefly, within a bounded time; what it cannot ship is counted.
//!
//! [`LogSink`]: crate::logs::LogSink

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_bus::{LogBatch, LogStream};
use gatehouse_shared::log::LogRecord;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Records per stream entry.
const MAX_BATCH: usize = 500;
/// How long a batch waits for more records after its first.
const LINGER: Duration = Duration::from_millis(100);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// At shutdown: the channel counts as drained after this long without a record…
const QUIET: Duration = Duration::from_millis(200);
/// …and the shipper gives up on what is left after this long.
const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// What the shipper did.
#[derive(Debug, Default)]
pub(crate) struct LogShipperCounters {
    pub(crate) shipped: AtomicU64,
    /// Records lost after they left the channel (unshippable at shutdown, or not encodable).
    pub(crate) dropped: AtomicU64,
}

/// The background service; built by `DataPlane::run_until` when the node has a log stream.
pub(crate) struct LogShipper {
    stream: Arc<LogStream>,
    records: Mutex<Option<mpsc::Receiver<LogRecord>>>,
    counters: Arc<LogShipperCounters>,
}

impl LogShipper {
    pub(crate) fn new(
        stream: Arc<LogStream>,
        records: mpsc::Receiver<LogRecord>,
        counters: Arc<LogShipperCounters>,
    ) -> Self {
        Self {
            stream,
            records: Mutex::new(Some(records)),
            counters,
        }
    }

    /// Encodes a batch; a record that cannot be encoded (never expected) loses its batch, counted.
    fn encode(&self, batch: &[LogRecord]) -> Option<LogBatch> {
        match LogBatch::encode(batch) {
            Ok(encoded) => Some(encoded),
            Err(error) => {
                tracing::error!(%error, records = batch.len(), "cannot encode log records; dropping them");
                self.counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                None
            }
        }
    }

    /// Appends `batch`, retrying with backoff until it succeeds or `shutdown` fires (then returns false, unsent).
    async fn ship(&self, batch: &LogBatch, shutdown: &mut ShutdownWatch) -> bool {
        let mut delay = FIRST_RETRY;
        loop {
            match self.stream.append(batch).await {
                Ok(_) => {
                    self.counters
                        .shipped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, records = batch.len(), retry_in = ?delay, "cannot ship log records; holding them");
                }
            }
            if *shutdown.borrow() {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return false,
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// After shutdown: ships what arrives until the channel is quiet or the time is up; the rest is counted.
    async fn flush(&self, records: &mut mpsc::Receiver<LogRecord>, mut held: Vec<LogRecord>) {
        let deadline = Instant::now() + FINAL_FLUSH;
        loop {
            while held.len() < MAX_BATCH {
                match records.try_recv() {
                    Ok(r) => held.push(r),
                    Err(_) => break,
                }
            }
            if held.is_empty() {
                match tokio::time::timeout(QUIET, records.recv()).await {
                    Ok(Some(r)) => held.push(r),
                    Ok(None) | Err(_) => return,
                }
                continue;
            }
            let batch = std::mem::take(&mut held);
            let sent = match self.encode(&batch) {
                Some(encoded) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    matches!(
                        tokio::time::timeout(remaining, self.stream.append(&encoded)).await,
                        Ok(Ok(_))
                    )
                }
                None => continue,
            };
            if sent {
                self.counters
                    .shipped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            } else {
                self.counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            if !sent || Instant::now() >= deadline {
                let mut left = 0u64;
                while records.try_recv().is_ok() {
                    left += 1;
                }
                self.counters.dropped.fetch_add(left, Ordering::Relaxed);
                tracing::warn!(
                    dropped = left + if sent { 0 } else { batch.len() as u64 },
                    "log records not shipped at shutdown"
                );
                return;
            }
        }
    }
}

#[async_trait]
impl BackgroundService for LogShipper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut records) = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return;
        };
        loop {
            let first = tokio::select! {
                r = records.recv() => r,
                _ = shutdown.changed() => break,
            };
            let Some(first) = first else { return };
            let mut batch = Vec::with_capacity(MAX_BATCH);
            batch.push(first);
            let linger_until = Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(linger_until, records.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) | Err(_) => break,
                }
            }
            let Some(encoded) = self.encode(&batch) else {
                continue;
            };
            if !self.ship(&encoded, &mut shutdown).await {
                // Shutting down with the batch unsent: one more try in the final flush.
                self.flush(&mut records, batch).await;
                return;
            }
        }
        self.flush(&mut records, Vec::new()).await;
    }
}
