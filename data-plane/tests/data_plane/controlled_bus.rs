//! A config bus the test steers: it delegates to a real bus and can drop announcements, hold index reads, inject
//! subscription events, count fetches, and swap the bus behind it (a Redis that came back empty).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_bus::{
    BusError, BusEvent, BusIndex, ConfigBus, GatewayEntry, IndexSummary, MemoryBus, PublishOutcome,
    StoredDocument, Subscription,
};
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::NodeStatus;
use tokio::sync::{broadcast, watch};

#[derive(Debug)]
pub struct ControlledBus {
    inner: Mutex<Arc<dyn ConfigBus>>,
    drop_announcements: Arc<AtomicBool>,
    /// Index reads wait while this is false.
    index_open: watch::Sender<bool>,
    injected: broadcast::Sender<BusEvent>,
    pub gateway_fetches: AtomicUsize,
}

impl ControlledBus {
    pub fn over(inner: MemoryBus) -> Arc<Self> {
        let (index_open, _) = watch::channel(true);
        let (injected, _) = broadcast::channel(16);
        Arc::new(Self {
            inner: Mutex::new(Arc::new(inner)),
            drop_announcements: Arc::new(AtomicBool::new(false)),
            index_open,
            injected,
            gateway_fetches: AtomicUsize::new(0),
        })
    }

    fn inner(&self) -> Arc<dyn ConfigBus> {
        Arc::clone(&self.inner.lock().unwrap())
    }

    pub fn drop_announcements(&self, drop: bool) {
        self.drop_announcements.store(drop, Ordering::SeqCst);
    }

    pub fn hold_index_reads(&self, hold: bool) {
        self.index_open.send_replace(!hold);
    }

    /// Delivers `event` to every subscriber, as if the bus had sent it.
    pub fn inject(&self, event: BusEvent) {
        let _ = self.injected.send(event);
    }

    /// Replaces the bus behind this one (subscriptions keep listening to the old one; inject `Connected`).
    pub fn swap(&self, inner: MemoryBus) {
        *self.inner.lock().unwrap() = Arc::new(inner);
    }
}

#[async_trait]
impl ConfigBus for ControlledBus {
    async fn publish_gateway(
        &self,
        key: &GatewayKey,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError> {
        self.inner().publish_gateway(key, document).await
    }

    async fn publish_tombstone(
        &self,
        key: &GatewayKey,
        version: i64,
    ) -> Result<PublishOutcome, BusError> {
        self.inner().publish_tombstone(key, version).await
    }

    async fn publish_deployment(
        &self,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError> {
        self.inner().publish_deployment(document).await
    }

    async fn begin_reconcile(&self) -> Result<String, BusError> {
        self.inner().begin_reconcile().await
    }

    async fn mark_index_complete(&self, epoch: &str, version: i64) -> Result<bool, BusError> {
        self.inner().mark_index_complete(epoch, version).await
    }

    async fn index(&self) -> Result<BusIndex, BusError> {
        let mut open = self.index_open.subscribe();
        open.wait_for(|open| *open)
            .await
            .map_err(|_| BusError::Closed)?;
        self.inner().index().await
    }

    async fn index_summary(&self) -> Result<IndexSummary, BusError> {
        self.inner().index_summary().await
    }

    async fn fetch_gateways(
        &self,
        keys: &[GatewayKey],
    ) -> Result<Vec<Option<GatewayEntry>>, BusError> {
        self.gateway_fetches.fetch_add(keys.len(), Ordering::SeqCst);
        self.inner().fetch_gateways(keys).await
    }

    async fn fetch_deployment(&self) -> Result<Option<StoredDocument>, BusError> {
        self.inner().fetch_deployment().await
    }

    async fn subscribe(&self) -> Result<Subscription, BusError> {
        let mut upstream = self.inner().subscribe().await?;
        let mut injected = self.injected.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let dropping = Arc::clone(&self.drop_announcements);
        let feeder = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    e = upstream.next() => match e { Some(e) => e, None => return },
                    e = injected.recv() => match e { Ok(e) => e, Err(_) => continue },
                };
                if matches!(event, BusEvent::Announcement(_)) && dropping.load(Ordering::SeqCst) {
                    continue;
                }
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(Subscription::from_channel(rx, Some(feeder.abort_handle())))
    }

    async fn report_node_status(&self, status: &NodeStatus, ttl: Duration) -> Result<(), BusError> {
        self.inner().report_node_status(status, ttl).await
    }

    async fn remove_node_status(&self, node_id: &str) -> Result<(), BusError> {
        self.inner().remove_node_status(node_id).await
    }

    async fn node_statuses(&self) -> Result<Vec<NodeStatus>, BusError> {
        self.inner().node_statuses().await
    }

    async fn request_default_gateway(&self, account_id: &str) -> Result<(), BusError> {
        self.inner().request_default_gateway(account_id).await
    }

    async fn next_default_gateway_requests(&self, wait: Duration) -> Result<Vec<String>, BusError> {
        self.inner().next_default_gateway_requests(wait).await
    }
}
