//! The Redis bus: documents, index and node status on one `ConnectionManager`, announcements on a dedicated
//! pub/sub connection, default-gateway requests on a stream. `keys.rs` lists every key.
//!
//! All I/O runs on the runtime handed to [`RedisBus::new`]: redis-rs spawns each connection's driver task on
//! whatever runtime first polls it, so a bus used from pingora's runtime and from actix's would otherwise bind its
//! connections to whichever came first (and lose them when that runtime stops). Each operation is therefore spawned
//! onto the bus runtime and awaited from the caller's.

mod keys;
mod logs;
mod requests;
mod scripts;
mod subscriber;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::NodeStatus;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;

use crate::ConfigBus;
use crate::error::BusError;
use crate::model::{
    Announcement, BusIndex, CompleteMarker, GatewayEntry, IndexEntry, IndexSummary, PublishOutcome,
    StoredDocument, Target, fields, parse_index,
};
use crate::subscription::{EventFeed, Subscription};
use keys::KeyLayout;
pub use logs::{ClaimedLogEntries, LogBatch, LogEntry, LogStream};
use requests::RequestReader;

/// Where the bus lives.
#[derive(Debug, Clone)]
pub struct RedisBusSettings {
    /// `redis://[user:password@]host:port/[db]` (or `rediss://`).
    pub url: String,
    /// Every key and channel starts with this.
    pub prefix: String,
}

/// Time limit of one ordinary command. Larger than redis-rs's 500 ms default because a full index or a large
/// document may take longer under load; blocking reads use their own connection (`requests.rs`).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys per `MGET`/`HMGET` when fetching many documents at once.
const FETCH_CHUNK: usize = 256;

/// The production bus.
pub struct RedisBus {
    client: redis::Client,
    commands: ConnectionManager,
    keys: KeyLayout,
    runtime: Handle,
    /// The name this instance reads default-gateway requests under, unique per process.
    consumer: String,
    requests: std::sync::Arc<tokio::sync::Mutex<RequestReader>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password; the prefix is enough to tell buses apart.
        f.debug_struct("RedisBus")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Prepares the bus without connecting: a node or control plane that starts while Redis is down keeps
    /// trying instead of failing. Connections and their tasks live on `runtime`, which must outlive the bus.
    pub fn new(settings: &RedisBusSettings, runtime: Handle) -> Result<Self, BusError> {
        let keys = KeyLayout::new(&settings.prefix)?;
        let (client, commands) = connect_lazily(settings, &runtime)?;
        Ok(Self {
            client,
            commands,
            keys,
            runtime,
            consumer: format!("cp-{}", uuid::Uuid::new_v4().simple()),
            requests: std::sync::Arc::new(tokio::sync::Mutex::new(RequestReader::new())),
        })
    }

    /// Runs `operation` on the bus runtime with a handle to the command connection.
    ///
    /// An operation that fails because the connection died is run once more: the `ConnectionManager` only starts
    /// reconnecting when a command fails, so without the retry the first command after every Redis outage would
    /// fail (a node's resync after reconnecting, for one). Every operation is safe to repeat: writes are
    /// compare-and-set or idempotent.
    async fn on_bus<T, F, Fut>(&self, operation: F) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager, KeyLayout) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<T, BusError>> + Send + 'static,
    {
        on_runtime(
            &self.runtime,
            self.commands.clone(),
            self.keys.clone(),
            operation,
        )
        .await
    }

    async fn publish(
        &self,
        field: String,
        document_key: String,
        entry: IndexEntry,
        body: Option<String>,
        target: Target,
    ) -> Result<PublishOutcome, BusError> {
        let announcement = Announcement {
            target,
            version: entry.version,
        }
        .to_wire();
        self.on_bus(move |mut conn, keys| async move {
            let reply: Vec<i64> = scripts::PUBLISH
                .key(keys.index())
                .key(document_key)
                .arg(field)
                .arg(entry.version)
                .arg(entry.to_wire())
                .arg(body.as_deref().unwrap_or(""))
                .arg(if body.is_none() { "1" } else { "0" })
                .arg(keys.announcements())
                .arg(announcement)
                .invoke_async(&mut conn)
                .await?;
            match reply.as_slice() {
                [1] => Ok(PublishOutcome::Written),
                [0, current] => Ok(PublishOutcome::Superseded { current: *current }),
                other => Err(BusError::corrupt(
                    "publish script reply",
                    format!("{other:?}"),
                )),
            }
        })
        .await
    }
}

/// The client of `settings.url` and a command connection on `runtime` that connects on first use.
fn connect_lazily(
    settings: &RedisBusSettings,
    runtime: &Handle,
) -> Result<(redis::Client, ConnectionManager), BusError> {
    let client = redis::Client::open(settings.url.as_str())
        .map_err(|e| BusError::Settings(format!("invalid Redis URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        // Few, quick retries: a caller waiting on a down Redis should hear so in about a second; the next call
        // tries again.
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_millis(500));
    let commands = {
        let _inside = runtime.enter();
        ConnectionManager::new_lazy_with_config(client.clone(), config)?
    };
    Ok((client, commands))
}

/// Runs `operation` on `runtime` (see [`RedisBus::on_bus`]), once more when the connection was lost.
async fn on_runtime<T, F, Fut>(
    runtime: &Handle,
    conn: ConnectionManager,
    keys: KeyLayout,
    operation: F,
) -> Result<T, BusError>
where
    T: Send + 'static,
    F: FnOnce(ConnectionManager, KeyLayout) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, BusError>> + Send + 'static,
{
    let task = async move {
        match operation.clone()(conn.clone(), keys.clone()).await {
            Err(BusError::Redis(e)) if connection_lost(&e) => {
                tracing::debug!(error = %e, "redis connection lost; retrying once on a new one");
                operation(conn, keys).await
            }
            other => other,
        }
    };
    match runtime.spawn(task).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_cancelled) => Err(BusError::Closed),
    }
}

/// Whether a command failed because the connection is gone (as opposed to a Redis error or a timeout, where a
/// retry would only double the wait).
fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error() && !e.is_timeout()
}

fn lossy(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[async_trait]
impl ConfigBus for RedisBus {
    async fn publish_gateway(
        &self,
        key: &GatewayKey,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError> {
        let entry = IndexEntry {
            version: document.version,
            hash: document.hash.clone(),
            deleted: false,
        };
        self.publish(
            key.as_path(),
            self.keys.gateway_document(key),
            entry,
            Some(document.body.clone()),
            Target::Gateway(key.clone()),
        )
        .await
    }

    async fn publish_tombstone(
        &self,
        key: &GatewayKey,
        version: i64,
    ) -> Result<PublishOutcome, BusError> {
        let entry = IndexEntry {
            version,
            hash: String::new(),
            deleted: true,
        };
        self.publish(
            key.as_path(),
            self.keys.gateway_document(key),
            entry,
            None,
            Target::Gateway(key.clone()),
        )
        .await
    }

    async fn publish_deployment(
        &self,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError> {
        let entry = IndexEntry {
            version: document.version,
            hash: document.hash.clone(),
            deleted: false,
        };
        self.publish(
            fields::DEPLOYMENT.to_owned(),
            self.keys.deployment_document(),
            entry,
            Some(document.body.clone()),
            Target::Deployment,
        )
        .await
    }

    async fn begin_reconcile(&self) -> Result<String, BusError> {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        self.on_bus(move |mut conn, keys| async move {
            let (_, epoch): (i64, Option<String>) = redis::pipe()
                .atomic()
                .hset_nx(keys.index(), fields::EPOCH, fresh)
                .hget(keys.index(), fields::EPOCH)
                .query_async(&mut conn)
                .await?;
            epoch.ok_or_else(|| BusError::corrupt("index epoch", "missing right after HSETNX"))
        })
        .await
    }

    async fn mark_index_complete(&self, epoch: &str, version: i64) -> Result<bool, BusError> {
        let marker = serde_json::to_string(&CompleteMarker {
            epoch: epoch.to_owned(),
            version,
        })
        .unwrap_or_default();
        let announcement = Announcement {
            target: Target::Index,
            version,
        }
        .to_wire();
        let epoch = epoch.to_owned();
        self.on_bus(move |mut conn, keys| async move {
            let set: i64 = scripts::MARK_COMPLETE
                .key(keys.index())
                .arg(epoch)
                .arg(marker)
                .arg(keys.announcements())
                .arg(announcement)
                .invoke_async(&mut conn)
                .await?;
            Ok(set == 1)
        })
        .await
    }

    async fn index(&self) -> Result<BusIndex, BusError> {
        self.on_bus(|mut conn, keys| async move {
            let raw: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
                .arg(keys.index())
                .query_async(&mut conn)
                .await?;
            let text: Vec<(String, String)> = raw
                .into_iter()
                .map(|(f, v)| {
                    (
                        String::from_utf8_lossy(&f).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect();
            Ok(parse_index(
                text.iter().map(|(f, v)| (f.as_str(), v.as_str())),
            ))
        })
        .await
    }

    async fn index_summary(&self) -> Result<IndexSummary, BusError> {
        self.on_bus(|mut conn, keys| async move {
            let (deployment, complete): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
                .arg(keys.index())
                .arg(fields::DEPLOYMENT)
                .arg(fields::COMPLETE)
                .query_async(&mut conn)
                .await?;
            let mut pairs = Vec::new();
            if let Some(d) = lossy(deployment) {
                pairs.push((fields::DEPLOYMENT, d));
            }
            if let Some(c) = lossy(complete) {
                pairs.push((fields::COMPLETE, c));
            }
            let index = parse_index(pairs.iter().map(|(f, v)| (*f, v.as_str())));
            Ok(IndexSummary {
                deployment: index.deployment,
                complete_at: index.complete_at,
            })
        })
        .await
    }

    async fn fetch_gateways(
        &self,
        keys: &[GatewayKey],
    ) -> Result<Vec<Option<GatewayEntry>>, BusError> {
        let mut all = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(FETCH_CHUNK) {
            let chunk = chunk.to_vec();
            let fetched = self
                .on_bus(move |mut conn, layout| async move {
                    let fields: Vec<String> = chunk.iter().map(GatewayKey::as_path).collect();
                    let documents: Vec<String> =
                        chunk.iter().map(|k| layout.gateway_document(k)).collect();
                    // One MULTI: the entry and the body come from the same moment.
                    let (entries, bodies): (Vec<Option<Vec<u8>>>, Vec<Option<Vec<u8>>>) =
                        redis::pipe()
                            .atomic()
                            .cmd("HMGET")
                            .arg(layout.index())
                            .arg(&fields)
                            .cmd("MGET")
                            .arg(&documents)
                            .query_async(&mut conn)
                            .await?;
                    Ok(fields
                        .iter()
                        .zip(entries)
                        .zip(bodies)
                        .map(|((field, entry), body)| {
                            gateway_entry(field, lossy(entry)?, lossy(body))
                        })
                        .collect::<Vec<_>>())
                })
                .await?;
            all.extend(fetched);
        }
        Ok(all)
    }

    async fn fetch_deployment(&self) -> Result<Option<StoredDocument>, BusError> {
        self.on_bus(|mut conn, keys| async move {
            let (entry, body): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::pipe()
                .atomic()
                .hget(keys.index(), fields::DEPLOYMENT)
                .get(keys.deployment_document())
                .query_async(&mut conn)
                .await?;
            let (Some(entry), Some(body)) = (lossy(entry), lossy(body)) else {
                return Ok(None);
            };
            let entry = IndexEntry::parse_wire(fields::DEPLOYMENT, &entry)?;
            Ok(Some(StoredDocument {
                version: entry.version,
                hash: entry.hash,
                body,
            }))
        })
        .await
    }

    async fn subscribe(&self) -> Result<Subscription, BusError> {
        let (feed, events, dropped) = EventFeed::channel();
        let feeder = self.runtime.spawn(subscriber::run(
            self.client.clone(),
            self.keys.announcements(),
            feed,
        ));
        Ok(Subscription::new(events, feeder.abort_handle(), dropped))
    }

    async fn report_node_status(&self, status: &NodeStatus, ttl: Duration) -> Result<(), BusError> {
        let json =
            serde_json::to_string(status).map_err(|e| BusError::corrupt("node status", e))?;
        let node_id = status.node_id.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let seen_ms = status.reported_at_ms;
        self.on_bus(move |mut conn, keys| async move {
            let () = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(keys.node_status(&node_id))
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .ignore()
                .zadd(keys.node_registry(), &node_id, seen_ms)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn remove_node_status(&self, node_id: &str) -> Result<(), BusError> {
        let node_id = node_id.to_owned();
        self.on_bus(move |mut conn, keys| async move {
            let () = redis::pipe()
                .atomic()
                .del(keys.node_status(&node_id))
                .ignore()
                .zrem(keys.node_registry(), &node_id)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn node_statuses(&self) -> Result<Vec<NodeStatus>, BusError> {
        self.on_bus(|mut conn, keys| async move {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(keys.node_registry())
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let status_keys: Vec<String> = ids.iter().map(|id| keys.node_status(id)).collect();
            let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&status_keys)
                .query_async(&mut conn)
                .await?;
            let mut statuses = Vec::new();
            let mut expired = Vec::new();
            for (id, raw) in ids.into_iter().zip(raw) {
                match raw.map(|b| serde_json::from_slice::<NodeStatus>(&b)) {
                    Some(Ok(status)) => statuses.push(status),
                    Some(Err(error)) => {
                        tracing::warn!(node_id = %id, %error, "unreadable node status");
                    }
                    None => expired.push(id),
                }
            }
            if !expired.is_empty() {
                // The status key's TTL ran out; the registry entry goes with it.
                let _: i64 = redis::cmd("ZREM")
                    .arg(keys.node_registry())
                    .arg(&expired)
                    .query_async(&mut conn)
                    .await?;
            }
            statuses.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            Ok(statuses)
        })
        .await
    }

    async fn request_default_gateway(&self, account_id: &str) -> Result<(), BusError> {
        let account_id = account_id.to_owned();
        self.on_bus(move |mut conn, keys| async move {
            requests::append(&mut conn, &keys, &account_id).await
        })
        .await
    }

    async fn next_default_gateway_requests(&self, wait: Duration) -> Result<Vec<String>, BusError> {
        let client = self.client.clone();
        let consumer = self.consumer.clone();
        let reader = std::sync::Arc::clone(&self.requests);
        self.on_bus(move |_conn, keys| async move {
            reader
                .lock()
                .await
                .next(&client, &keys, &consumer, wait)
                .await
        })
        .await
    }
}

/// Turns a gateway's index entry and body into what `fetch_gateways` returns; `None` when the entry is unreadable
/// or lists a body that is missing (the node reports it and resyncs later).
fn gateway_entry(field: &str, entry: String, body: Option<String>) -> Option<GatewayEntry> {
    let entry = match IndexEntry::parse_wire(field, &entry) {
        Ok(e) => e,
        Err(error) => {
            tracing::warn!(%error, "unreadable index entry");
            return None;
        }
    };
    if entry.deleted {
        return Some(GatewayEntry::Deleted {
            version: entry.version,
        });
    }
    Some(GatewayEntry::Document(StoredDocument {
        version: entry.version,
        hash: entry.hash,
        body: body?,
    }))
}
