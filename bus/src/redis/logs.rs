//! Log records from data-plane nodes to control planes: the Redis stream `{p}logs`, read through the consumer group
//! `log-writers` (design §4).
//!
//! - A node appends one entry per batch (`XADD … MAXLEN ~ n`), field `records` holding the JSON array of records.
//!   `MAXLEN ~` bounds the stream: past roughly `max_len` entries Redis trims the oldest, consumed or not, so while
//!   no control plane reads, the oldest batches are lost (a reader learns their ids from `XAUTOCLAIM`).
//! - Control planes read new entries with `XREADGROUP … BLOCK` and acknowledge (`XACK`) each entry only after it was
//!   stored. An entry whose consumer died, or whose store failed, stays pending; `XAUTOCLAIM` hands entries idle
//!   past a threshold to a live consumer. Delivery is therefore at least once; the store is idempotent by record id.
//! - The blocking read has a connection of its own without a response timeout (stack notes §5: redis-rs would give
//!   up after 500 ms while Redis keeps the read blocked, and the next entry would go to that abandoned read).
//!   Everything else runs on the usual command connection.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_shared::log::LogRecord;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands as _, AsyncConnectionConfig};
use tokio::runtime::Handle;

use super::keys::{KeyLayout, LOGS_GROUP};
use super::{RedisBusSettings, connect_lazily, on_runtime};
use crate::error::BusError;

/// Stream field that holds a batch.
const RECORDS_FIELD: &str = "records";
/// Slack on top of the block time before a blocking read is given up (the connection is then replaced).
const BLOCKING_READ_SLACK: Duration = Duration::from_secs(10);

/// A batch of records encoded once, so that retries do not encode it again.
#[derive(Debug, Clone)]
pub struct LogBatch {
    json: Arc<str>,
    len: usize,
}

impl LogBatch {
    pub fn encode(records: &[LogRecord]) -> Result<LogBatch, BusError> {
        let json = serde_json::to_string(records).map_err(|e| BusError::corrupt("log batch", e))?;
        Ok(LogBatch {
            json: json.into(),
            len: records.len(),
        })
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One stream entry as a reader gets it.
#[derive(Debug)]
pub struct LogEntry {
    /// The stream id, to acknowledge.
    pub id: String,
    /// The batch, or why it cannot be read (written by a broken or newer peer); acknowledge such an entry too,
    /// or it comes back forever.
    pub records: Result<Vec<LogRecord>, BusError>,
}

/// What one `XAUTOCLAIM` call took over.
#[derive(Debug)]
pub struct ClaimedLogEntries {
    pub entries: Vec<LogEntry>,
    /// Pending entries that the stream no longer holds (trimmed by `MAXLEN` before anyone stored them): lost.
    pub deleted: usize,
    /// Where the next call continues; `"0-0"` when the scan of the pending list is complete.
    pub next: String,
}

/// The log stream of one deployment (one key prefix). Cheap to share behind an `Arc`; all I/O runs on the runtime
/// handed to [`LogStream::new`].
pub struct LogStream {
    client: redis::Client,
    commands: ConnectionManager,
    keys: KeyLayout,
    runtime: Handle,
    max_len: usize,
    /// The blocking reader's own connection, opened on first use and replaced after any error.
    reader: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
}

impl std::fmt::Debug for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream")
            .field("prefix", &self.keys.prefix())
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl LogStream {
    /// The consumer group every control plane reads in.
    pub const GROUP: &'static str = LOGS_GROUP;
    /// Default bound of the stream, in entries (batches of up to a few hundred records each): generous enough to
    /// ride out a long control-plane outage at ordinary traffic, small enough that Redis memory stays bounded.
    pub const DEFAULT_MAX_LEN: usize = 100_000;

    /// Prepares the stream without connecting (a process that starts while Redis is down keeps trying).
    pub fn new(settings: &RedisBusSettings, runtime: Handle) -> Result<LogStream, BusError> {
        let keys = KeyLayout::new(&settings.prefix)?;
        let (client, commands) = connect_lazily(settings, &runtime)?;
        Ok(LogStream {
            client,
            commands,
            keys,
            runtime,
            max_len: Self::DEFAULT_MAX_LEN,
            reader: Arc::default(),
        })
    }

    /// Bounds the stream at about `max_len` entries (`XADD MAXLEN ~`).
    pub fn with_max_len(mut self, max_len: usize) -> LogStream {
        self.max_len = max_len.max(1);
        self
    }

    /// The stream's key (for tests and operators).
    pub fn key(&self) -> String {
        self.keys.logs()
    }

    /// Appends one batch as one entry; returns its stream id.
    pub async fn append(&self, batch: &LogBatch) -> Result<String, BusError> {
        let json = Arc::clone(&batch.json);
        let max_len = self.max_len;
        self.on_bus(move |mut conn, keys| async move {
            let id: String = redis::cmd("XADD")
                .arg(keys.logs())
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*")
                .arg(RECORDS_FIELD)
                .arg(&*json)
                .query_async(&mut conn)
                .await?;
            Ok(id)
        })
        .await
    }

    /// Creates the consumer group (and the stream) unless it exists. From the stream's start: batches shipped
    /// before any control plane ran are read too.
    pub async fn ensure_group(&self) -> Result<(), BusError> {
        self.on_bus(|mut conn, keys| async move { create_group(&mut conn, &keys).await })
            .await
    }

    /// Entries never delivered to any consumer, up to `count`, waiting up to `block` for the first. They become
    /// pending for `consumer` until acknowledged.
    pub async fn read_new(
        &self,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<LogEntry>, BusError> {
        let (client, reader, commands) = (
            self.client.clone(),
            Arc::clone(&self.reader),
            self.commands.clone(),
        );
        let consumer = consumer.to_owned();
        self.on_bus(move |_conn, keys| async move {
            let mut slot = reader.lock().await;
            let result = blocking_read(&client, &mut slot, &keys, &consumer, count, block).await;
            match result {
                Err(BusError::Redis(e)) if e.code() == Some("NOGROUP") => {
                    // First use, or Redis lost the stream: create the group; the next read finds the entries.
                    let mut commands = commands;
                    create_group(&mut commands, &keys).await?;
                    Ok(Vec::new())
                }
                Err(e) => {
                    // Whatever happened (timeout, reset, Redis restarted), start over on a fresh connection.
                    *slot = None;
                    Err(e)
                }
                ok => ok,
            }
        })
        .await
    }

    /// Entries already delivered to `consumer` and not acknowledged (from the start of its pending list), without
    /// waiting: what to retry after a failed store.
    pub async fn read_own_pending(
        &self,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LogEntry>, BusError> {
        let consumer = consumer.to_owned();
        self.on_bus(move |mut conn, keys| async move {
            let options = StreamReadOptions::default()
                .group(LOGS_GROUP, &consumer)
                .count(count.max(1));
            let reply: Result<Option<StreamReadReply>, redis::RedisError> =
                conn.xread_options(&[keys.logs()], &["0"], &options).await;
            match reply {
                Err(e) if e.code() == Some("NOGROUP") => {
                    create_group(&mut conn, &keys).await?;
                    Ok(Vec::new())
                }
                other => Ok(entries(other?)),
            }
        })
        .await
    }

    /// Acknowledges stored entries; returns how many were pending. An empty list sends nothing (`XACK` without ids
    /// is an error).
    pub async fn ack(&self, ids: &[String]) -> Result<usize, BusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.on_bus(move |mut conn, keys| async move {
            let acked: usize = conn.xack(keys.logs(), LOGS_GROUP, &ids).await?;
            Ok(acked)
        })
        .await
    }

    /// Takes over up to `count` pending entries idle for at least `min_idle` (any consumer's, this one's too),
    /// scanning the pending list from `start` (`"0-0"` for its beginning).
    pub async fn claim_idle(
        &self,
        consumer: &str,
        min_idle: Duration,
        start: &str,
        count: usize,
    ) -> Result<ClaimedLogEntries, BusError> {
        let consumer = consumer.to_owned();
        let start = start.to_owned();
        let min_idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        self.on_bus(move |mut conn, keys| async move {
            let options = StreamAutoClaimOptions::default().count(count.max(1));
            let reply: Result<StreamAutoClaimReply, redis::RedisError> = conn
                .xautoclaim_options(
                    keys.logs(),
                    LOGS_GROUP,
                    &consumer,
                    min_idle_ms,
                    &start,
                    options,
                )
                .await;
            let reply = match reply {
                Err(e) if e.code() == Some("NOGROUP") => {
                    create_group(&mut conn, &keys).await?;
                    return Ok(ClaimedLogEntries {
                        entries: Vec::new(),
                        deleted: 0,
                        next: "0-0".to_owned(),
                    });
                }
                other => other?,
            };
            Ok(ClaimedLogEntries {
                entries: reply.claimed.into_iter().map(entry).collect(),
                deleted: reply.deleted_ids.len(),
                next: reply.next_stream_id,
            })
        })
        .await
    }

    /// Removes from the group the consumers other than `this` that hold no pending entry and have not read for
    /// `min_idle` (control planes that are gone: with a node id per process, each restart adds a name to the
    /// group). Losing nothing: a consumer with pending entries is kept until they are claimed, and a live one that
    /// is removed comes back with its next read. Returns the names removed.
    pub async fn forget_idle_consumers(
        &self,
        this: &str,
        min_idle: Duration,
    ) -> Result<Vec<String>, BusError> {
        let this = this.to_owned();
        let min_idle_ms = usize::try_from(min_idle.as_millis()).unwrap_or(usize::MAX);
        self.on_bus(move |mut conn, keys| async move {
            let reply: Result<redis::streams::StreamInfoConsumersReply, redis::RedisError> =
                conn.xinfo_consumers(keys.logs(), LOGS_GROUP).await;
            let consumers = match reply {
                Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
                other => other?.consumers,
            };
            let mut removed = Vec::new();
            for consumer in consumers {
                if consumer.name == this || consumer.pending > 0 || consumer.idle < min_idle_ms {
                    continue;
                }
                let _: usize = conn
                    .xgroup_delconsumer(keys.logs(), LOGS_GROUP, &consumer.name)
                    .await?;
                removed.push(consumer.name);
            }
            Ok(removed)
        })
        .await
    }

    /// How many entries the group has delivered and not had acknowledged (for tests and status).
    pub async fn pending(&self) -> Result<usize, BusError> {
        self.on_bus(|mut conn, keys| async move {
            let reply: Result<redis::streams::StreamPendingReply, redis::RedisError> =
                conn.xpending(keys.logs(), LOGS_GROUP).await;
            match reply {
                Err(e) if e.code() == Some("NOGROUP") => Ok(0),
                other => Ok(other?.count()),
            }
        })
        .await
    }

    async fn on_bus<T, F, Fut>(&self, operation: F) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager, KeyLayout) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<T, BusError>> + Send + 'static,
    {
        on_runtime(
            &self.runtime,
            self.commands.clone(),
            self.keys.clone(),
            operation,
        )
        .await
    }
}

/// `XREADGROUP … BLOCK` on the reader's own connection (opened here when missing), without a response timeout;
/// a local deadline well past the block time guards against a connection that died silently.
async fn blocking_read(
    client: &redis::Client,
    slot: &mut Option<MultiplexedConnection>,
    keys: &KeyLayout,
    consumer: &str,
    count: usize,
    block: Duration,
) -> Result<Vec<LogEntry>, BusError> {
    if slot.is_none() {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(None);
        *slot = Some(
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await?,
        );
    }
    let Some(conn) = slot.as_mut() else {
        return Err(BusError::Closed);
    };
    // BLOCK 0 would mean "forever".
    let block_ms = usize::try_from(block.as_millis())
        .unwrap_or(usize::MAX)
        .max(1);
    let options = StreamReadOptions::default()
        .group(LOGS_GROUP, consumer)
        .count(count.max(1))
        .block(block_ms);
    let streams = [keys.logs()];
    let read = conn.xread_options(&streams, &[">"], &options);
    let reply: Option<StreamReadReply> =
        match tokio::time::timeout(block + BLOCKING_READ_SLACK, read).await {
            Ok(reply) => reply?,
            Err(_) => {
                return Err(BusError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "blocking log stream read timed out",
                ))));
            }
        };
    Ok(entries(reply))
}

async fn create_group(conn: &mut ConnectionManager, keys: &KeyLayout) -> Result<(), BusError> {
    let created: Result<(), redis::RedisError> = conn
        .xgroup_create_mkstream(keys.logs(), LOGS_GROUP, "0")
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn entries(reply: Option<StreamReadReply>) -> Vec<LogEntry> {
    reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(entry)
        .collect()
}

fn entry(raw: StreamId) -> LogEntry {
    let what = format!("log stream entry {}", raw.id);
    let json: Option<String> = raw.get(RECORDS_FIELD);
    let records = match json {
        Some(json) => {
            serde_json::from_str::<Vec<LogRecord>>(&json).map_err(|e| BusError::corrupt(what, e))
        }
        None => Err(BusError::corrupt(what, "no records field")),
    };
    LogEntry {
        id: raw.id,
        records,
    }
}
