//! The standalone log writer: records from the data plane's `LogSink` channel into the database, on a thread of
//! its own.
//!
//! Why a thread: in standalone the writer shares the process (and, when pinned, the core) with the proxy. Run as a
//! task it hopped between a tokio runtime and the blocking pool for every batch, took a pooled connection (and
//! r2d2's `SELECT 1` check) each time, and so prepared its statements anew on whichever connection it got. On its
//! own thread it keeps one connection of its own for its life, with the statements that connection has prepared
//! (`store::logs` picks statements the cache keeps), and nothing it does runs on the runtimes that serve requests.
//!
//! Batching: the writer waits for a first record, then sleeps until `linger` has passed since, without watching the
//! channel, and takes what came (up to `max_batch`). A receiver that waits on the channel is woken by every send,
//! and each wake is a syscall on the sending thread, which is the request path's `logging` phase; sleeping through
//! the linger costs one wake per batch instead of one per record. Under load a batch fills before its linger ends
//! (checked every 10 ms, without a wake). One transaction per gateway per batch.
//!
//! The request path never waits for any of this: `LogSink::submit` is a `try_send`, and while the writer is slow
//! or stalled (a locked database, a long checkpoint) records wait in the channel, or beyond its capacity are dropped
//! and counted on the data plane's side.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gatehouse_shared::log::LogRecord;
use tokio::sync::{mpsc, oneshot, watch};

use super::{LogIngestCounters, store_records};
use crate::db::{AnyConnection, Database};
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

/// How often a lingering writer looks whether a full batch is waiting (a length check, no wake-up of a sender).
const FULL_BATCH_CHECK: Duration = Duration::from_millis(10);

/// A running writer.
#[derive(Debug)]
pub struct LogWriter {
    stop: watch::Sender<bool>,
    finished: oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl LogWriter {
    /// Starts the writer on a thread of its own (`gatehouse-log-writer`).
    pub fn spawn(
        db: Database,
        records: mpsc::Receiver<LogRecord>,
        settings: LogWriterSettings,
        counters: Arc<LogIngestCounters>,
    ) -> Result<LogWriter, Error> {
        let (stop, stopped) = watch::channel(false);
        let (done, finished) = oneshot::channel();
        // Its own single-threaded runtime serves only its waits on the channel, its linger and the stop signal.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Internal(format!("log writer runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("gatehouse-log-writer".into())
            .spawn(move || {
                let mut writer = Writer {
                    db,
                    conn: None,
                    settings,
                    counters,
                };
                writer.run(&runtime, records, stopped);
                let _ = done.send(());
            })
            .map_err(|e| Error::Internal(format!("log writer thread: {e}")))?;
        Ok(LogWriter {
            stop,
            finished,
            thread,
        })
    }

    /// Writes what is already queued, then stops.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(10), self.finished).await {
            // The thread has sent its last word: joining it does not block.
            Ok(Ok(())) => {
                let _ = self.thread.join();
            }
            Ok(Err(_)) => {
                tracing::error!("the log writer thread ended without finishing (a panic)")
            }
            Err(_) => tracing::warn!("the log writer did not finish within 10 s"),
        }
    }
}

/// What the writer waits for next.
enum Next {
    /// A batch is ready.
    Batch,
    /// Stop: what is queued now is to be written, then the writer ends.
    Stop,
    /// Every sender is gone and the channel is empty.
    Closed,
}

struct Writer {
    db: Database,
    /// The writer's own connection, opened on first use and again after a failure.
    conn: Option<AnyConnection>,
    settings: LogWriterSettings,
    counters: Arc<LogIngestCounters>,
}

impl Writer {
    fn run(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        mut records: mpsc::Receiver<LogRecord>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let max = self.settings.max_batch.max(1);
        let mut batch = Vec::with_capacity(max);
        loop {
            let next = runtime.block_on(next_batch(
                &mut records,
                &mut stopped,
                &mut batch,
                max,
                self.settings.linger,
            ));
            if !batch.is_empty() {
                self.write(&batch);
                batch.clear();
            }
            match next {
                Next::Batch => {}
                Next::Closed => return,
                Next::Stop => {
                    // Take what is queued now without waiting, write it, end (a sender still sending cannot keep
                    // the writer going).
                    let queued = records.len();
                    for r in std::iter::from_fn(|| records.try_recv().ok()).take(queued) {
                        batch.push(r);
                        if batch.len() == max {
                            self.write(&batch);
                            batch.clear();
                        }
                    }
                    if !batch.is_empty() {
                        self.write(&batch);
                    }
                    return;
                }
            }
        }
    }

    /// Stores a batch, retrying with backoff; after the last attempt it is dropped and counted. A failed attempt
    /// closes the connection, so the next one starts on a fresh one (a database restarted or failed over leaves
    /// the old one dead).
    fn write(&mut self, batch: &[LogRecord]) {
        let attempts = self.settings.attempts.max(1);
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=attempts {
            match self.store(batch) {
                Ok(outcome) => {
                    self.counters.observe_batch(batch);
                    self.counters.count_stored(batch.len(), outcome);
                    return;
                }
                Err(e) if attempt < attempts => {
                    self.conn = None;
                    tracing::warn!(error = %e, attempt, records = batch.len(), "writing log records failed; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    self.conn = None;
                    tracing::error!(error = %e, records = batch.len(), "writing log records failed; dropping the batch");
                    self.counters
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }

    fn store(&mut self, batch: &[LogRecord]) -> Result<super::StoredBatch, Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => empty.insert(self.db.dedicated_connection()?),
        };
        store_records(conn, batch)
    }
}

/// Fills `batch` with the next batch: waits for a first record, then lingers (see the module comment).
async fn next_batch(
    records: &mut mpsc::Receiver<LogRecord>,
    stopped: &mut watch::Receiver<bool>,
    batch: &mut Vec<LogRecord>,
    max: usize,
    linger: Duration,
) -> Next {
    if *stopped.borrow_and_update() {
        return Next::Stop;
    }
    tokio::select! {
        biased;
        _ = stopped.changed() => return Next::Stop,
        n = records.recv_many(batch, max) => if n == 0 { return Next::Closed },
    }
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() + records.len() < max {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::select! {
            biased;
            // Stopping ends the linger; the loop writes this batch and then sees the stop.
            _ = stopped.changed() => break,
            () = tokio::time::sleep_until(deadline.min(now + FULL_BATCH_CHECK)) => {}
        }
    }
    while batch.len() < max {
        match records.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    Next::Batch
}
