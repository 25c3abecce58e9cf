//! The config bus: how the control plane hands config documents to data-plane nodes (design §2), how nodes report
//! what they serve, and how a node asks the control plane to create an account's `default` gateway.
//!
//! [`ConfigBus`] is the contract; [`RedisBus`] (production, many nodes) and [`MemoryBus`] (standalone, one process)
//! implement it and pass the same conformance suite (`tests/conformance`).
//!
//! What the bus guarantees:
//! - A document is written together with its index entry, and only if its version is newer than the indexed one
//!   (compare-and-set), so two control planes that publish out of order never move a gateway backwards. The
//!   announcement is sent after the write, so a node that hears it can fetch the document.
//! - A deletion leaves a tombstone in the index; a node that missed the announcement still learns of it.
//! - Announcements are fire-and-forget. A subscriber gets [`BusEvent::Connected`] each time its subscription is
//!   (re)established and [`BusEvent::Lagged`] when it fell behind; both mean "re-read the index", which is what
//!   makes a lost announcement cost one resync instead of correctness.
//!
//! Log records travel apart from config: [`LogStream`] is a Redis stream the data-plane nodes append batches to
//! and the control planes read through one consumer group (`redis/logs.rs`). Traffic policies keep their state in
//! stores of their own: [`limits`], [`response_cache`], and [`replay`] (one-time values such as DPoP proof ids).
//!
//! What the bus does not do: parse documents. Bodies are opaque text, so a malformed document reaches the node,
//! which reports it and keeps serving the previous version.

mod error;
pub mod limits;
mod memory;
mod model;
mod redis;
pub mod replay;
pub mod response_cache;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::NodeStatus;

pub use error::BusError;
pub use memory::MemoryBus;
pub use model::{
    Announcement, BusIndex, GatewayEntry, IndexEntry, IndexSummary, PublishOutcome, StoredDocument,
    Target,
};
pub use redis::{ClaimedLogEntries, LogBatch, LogEntry, LogStream, RedisBus, RedisBusSettings};
pub use subscription::{BusEvent, Subscription};

/// The contract both bus implementations keep. Every method is safe to call from any tokio runtime.
#[async_trait]
pub trait ConfigBus: Send + Sync + std::fmt::Debug + 'static {
    /// Writes a gateway document and its index entry, then announces it, unless the index already holds this
    /// version or a newer one (then nothing is written and [`PublishOutcome::Superseded`] says which version won).
    async fn publish_gateway(
        &self,
        key: &GatewayKey,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError>;

    /// Replaces a gateway's document with a tombstone at `version` (same compare-and-set), then announces it.
    async fn publish_tombstone(
        &self,
        key: &GatewayKey,
        version: i64,
    ) -> Result<PublishOutcome, BusError>;

    /// Writes the deployment document (token keys and revocations), same compare-and-set, then announces it.
    async fn publish_deployment(
        &self,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError>;

    /// Starts a reconciler pass: returns the index's epoch, creating one when the index has none (it was never
    /// written, or Redis lost it). [`ConfigBus::mark_index_complete`] succeeds only with the same epoch.
    async fn begin_reconcile(&self) -> Result<String, BusError>;

    /// Records that the index now has an entry (live or tombstone) for every gateway the database knew when the
    /// pass began, at `version`, and announces [`Target::Index`] so nodes drop gateways absent from it. Returns
    /// false, writing nothing, when the index lost its epoch since `begin_reconcile` (it was wiped mid-pass).
    async fn mark_index_complete(&self, epoch: &str, version: i64) -> Result<bool, BusError>;

    /// Every index entry. Entries that do not parse are listed in [`BusIndex::invalid`], not dropped silently.
    async fn index(&self) -> Result<BusIndex, BusError>;

    /// The deployment entry and the completeness marker only: what a frequent reconciler tick needs.
    async fn index_summary(&self) -> Result<IndexSummary, BusError>;

    /// Index entry and document of each key, read atomically per call. `None`: the index has no entry for it, or
    /// lists a document that is missing.
    async fn fetch_gateways(
        &self,
        keys: &[GatewayKey],
    ) -> Result<Vec<Option<GatewayEntry>>, BusError>;

    /// The deployment document, if one was published.
    async fn fetch_deployment(&self) -> Result<Option<StoredDocument>, BusError>;

    /// Announcements from now on. The first event is [`BusEvent::Connected`] once the subscription is live; read
    /// the index after it, not before, so that nothing published in between is missed.
    async fn subscribe(&self) -> Result<Subscription, BusError>;

    /// Writes (replaces) a node's status; it disappears after `ttl` unless written again.
    async fn report_node_status(&self, status: &NodeStatus, ttl: Duration) -> Result<(), BusError>;

    /// Removes a node's status at once (a node that stops cleanly).
    async fn remove_node_status(&self, node_id: &str) -> Result<(), BusError>;

    /// The statuses of every node that reported within its TTL, ordered by node id.
    async fn node_statuses(&self) -> Result<Vec<NodeStatus>, BusError>;

    /// Asks the control plane to create the `default` gateway of `account_id` (spec §3.1). Delivery is at most
    /// once and to one control plane; the asking node asks again if the gateway does not appear.
    async fn request_default_gateway(&self, account_id: &str) -> Result<(), BusError>;

    /// The next requests for default gateways (account ids), waiting up to `wait` for one to arrive. Each request
    /// goes to one caller, also when several control planes consume.
    async fn next_default_gateway_requests(&self, wait: Duration) -> Result<Vec<String>, BusError>;
}
