//! Split mode: the control plane's reader of the Redis log stream (design §4).
//!
//! Each control plane reads as its own consumer of the group `log-writers`, so every batch goes to one of them. An
//! entry is stored with [`crate::log_ingest::store_batch`] and acknowledged only after that returned Ok; a failed
//! store leaves it pending, and the consumer re-reads its own pending entries (with backoff) before new ones. At
//! start and every `claim_interval` it takes over entries pending longer than `claim_idle` with `XAUTOCLAIM` (a
//! control plane that died between read and acknowledgement). Delivery is at least once; the store is idempotent
//! by record id, so a batch stored twice yields one row per record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use gatehouse_bus::{LogEntry, LogStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::db::Database;
use crate::log_ingest::{LogIngestCounters, store_batch};

/// How the consumer reads.
#[derive(Debug, Clone)]
pub struct LogConsumerSettings {
    /// This process's consumer name in the group; unique per control plane.
    pub consumer: String,
    /// Stream entries per read (each holds up to a shipper's batch of records).
    pub entries_per_read: usize,
    /// How long one read waits for new entries (also how quickly a stop is noticed).
    pub block: Duration,
    /// Pending entries idle this long are taken over from whichever consumer holds them.
    pub claim_idle: Duration,
    /// How often pending entries are checked for takeover.
    pub claim_interval: Duration,
    /// Entries stored at the same time. With one, PostgreSQL idles while the consumer reads, decodes and
    /// acknowledges, and the consumer idles while PostgreSQL commits: through this whole path a 2-core machine
    /// measured 3,600–4,200 records/s with one and 5,900–7,500 with two (bench/README.md, "Logs").
    pub concurrent_stores: usize,
}

impl LogConsumerSettings {
    pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);

    /// Defaults for `consumer`, taking over entries idle for `claim_idle` and checking every third of it.
    pub fn new(consumer: impl Into<String>, claim_idle: Duration) -> Self {
        Self {
            consumer: consumer.into(),
            entries_per_read: 16,
            block: Duration::from_secs(1),
            claim_idle,
            claim_interval: (claim_idle / 3).max(Duration::from_millis(500)),
            concurrent_stores: 2,
        }
    }
}

/// A running consumer.
#[derive(Debug)]
pub struct LogConsumer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LogConsumer {
    /// Starts the consumer on `runtime`.
    pub fn spawn(
        db: Database,
        stream: Arc<LogStream>,
        settings: LogConsumerSettings,
        counters: Arc<LogIngestCounters>,
        runtime: &tokio::runtime::Handle,
    ) -> LogConsumer {
        let (stop, stopped) = watch::channel(false);
        let consumer = Consumer {
            db,
            stream,
            settings,
            counters,
        };
        let task = runtime.spawn(consumer.run(stopped));
        LogConsumer { stop, task }
    }

    /// Finishes the entries in hand, then stops. Entries read and not stored stay pending for another consumer.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the log stream consumer did not finish within 10 s");
        }
    }
}

struct Consumer {
    db: Database,
    stream: Arc<LogStream>,
    settings: LogConsumerSettings,
    counters: Arc<LogIngestCounters>,
}

/// A consumer of the group that has not read for this long and holds nothing pending belongs to a control plane
/// that is gone (a live one reads at least every `block`).
const FORGET_CONSUMERS_AFTER: Duration = Duration::from_secs(3600);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

impl Consumer {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut next_claim = Instant::now();
        let mut retry_own = false;
        let mut delay = FIRST_RETRY;
        while !*stopped.borrow() {
            let mut healthy = true;
            if Instant::now() >= next_claim {
                healthy = self.claim_idle(&stopped).await;
                next_claim = Instant::now() + self.settings.claim_interval;
            }
            if healthy {
                let read = if retry_own {
                    self.stream
                        .read_own_pending(&self.settings.consumer, self.settings.entries_per_read)
                        .await
                } else {
                    self.stream
                        .read_new(
                            &self.settings.consumer,
                            self.settings.entries_per_read,
                            self.settings.block,
                        )
                        .await
                };
                healthy = match read {
                    Ok(entries) => {
                        if retry_own && entries.is_empty() {
                            retry_own = false;
                        }
                        self.handle(entries).await
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the log stream; retrying");
                        false
                    }
                };
            }
            if healthy {
                delay = FIRST_RETRY;
                continue;
            }
            // Redis or the database failed: whatever was read and not stored is pending under this consumer.
            retry_own = true;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stopped.changed() => {}
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// Takes over entries idle past the threshold, scanning the whole pending list; false when Redis or the
    /// database failed.
    async fn claim_idle(&self, stopped: &watch::Receiver<bool>) -> bool {
        let mut start = "0-0".to_owned();
        loop {
            let claimed = match self
                .stream
                .claim_idle(
                    &self.settings.consumer,
                    self.settings.claim_idle,
                    &start,
                    self.settings.entries_per_read,
                )
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim idle log stream entries");
                    return false;
                }
            };
            if claimed.deleted > 0 {
                tracing::error!(
                    entries = claimed.deleted,
                    "log batches were trimmed from the stream (MAXLEN) before any control plane stored them"
                );
                self.counters
                    .trimmed
                    .fetch_add(claimed.deleted as u64, Ordering::Relaxed);
            }
            if !claimed.entries.is_empty() {
                tracing::info!(
                    entries = claimed.entries.len(),
                    "took over idle log stream entries"
                );
            }
            if !self.handle(claimed.entries).await {
                return false;
            }
            if claimed.next == "0-0" {
                // The whole pending list was scanned: whoever still holds nothing is gone or alive, not dying.
                self.forget_gone_consumers().await;
                return true;
            }
            if *stopped.borrow() {
                return true;
            }
            start = claimed.next;
        }
    }

    /// Removes the names of control planes gone for [`FORGET_CONSUMERS_AFTER`] from the group (a failure is only
    /// logged: the names cost Redis a few bytes each, nothing more).
    async fn forget_gone_consumers(&self) {
        match self
            .stream
            .forget_idle_consumers(&self.settings.consumer, FORGET_CONSUMERS_AFTER)
            .await
        {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(consumers = ?removed, "removed log stream consumers gone for an hour");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot list the log stream's consumers"),
        }
    }

    /// Stores the entries, up to `concurrent_stores` at a time, acknowledging each once stored (they are unrelated:
    /// any order will do). After a failed store no further entry is started; false then, leaving the failed entry
    /// and those not started pending.
    async fn handle(&self, entries: Vec<LogEntry>) -> bool {
        let failed = AtomicBool::new(false);
        stream::iter(entries)
            .map(|entry| {
                let failed = &failed;
                async move {
                    if failed.load(Ordering::Relaxed) {
                        return false;
                    }
                    let done = self.store_and_ack(entry).await;
                    if !done {
                        failed.store(true, Ordering::Relaxed);
                    }
                    done
                }
            })
            .buffer_unordered(self.settings.concurrent_stores.max(1))
            .fold(true, |all, done| std::future::ready(all && done))
            .await
    }

    async fn store_and_ack(&self, entry: LogEntry) -> bool {
        let records = match entry.records {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "skipping an unreadable log stream entry");
                self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                return self.ack(entry.id).await;
            }
        };
        let count = records.len();
        if count > 0 {
            let records = Arc::new(records);
            match store_batch(&self.db, Arc::clone(&records)).await {
                Ok(outcome) => {
                    self.counters.observe_batch(&records);
                    self.counters.count_stored(count, outcome);
                }
                Err(error) => {
                    tracing::warn!(%error, entry = %entry.id, "storing log records failed; the entry stays pending");
                    return false;
                }
            }
        }
        self.ack(entry.id).await
    }

    async fn ack(&self, id: String) -> bool {
        match self.stream.ack(&[id]).await {
            Ok(_) => {
                self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                // Stored but not acknowledged: it is delivered again and stored again, harmlessly.
                tracing::warn!(%error, "cannot acknowledge a log stream entry");
                false
            }
        }
    }
}
