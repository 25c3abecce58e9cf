//! The in-process bus for standalone mode: the same contract as Redis, held in one mutex-guarded map, with a
//! broadcast channel for announcements and a bounded queue for default-gateway requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::NodeStatus;
use tokio::sync::{broadcast, mpsc};

use crate::ConfigBus;
use crate::error::BusError;
use crate::model::{
    Announcement, BusIndex, GatewayEntry, IndexEntry, IndexSummary, PublishOutcome, StoredDocument,
    Target,
};
use crate::subscription::{BusEvent, Delivery, EventFeed, Subscription};

/// Pending default-gateway requests kept in memory before the control plane takes them.
const REQUEST_QUEUE_CAPACITY: usize = 1024;
/// Requests handed out per call, like `XREADGROUP COUNT` on Redis.
const REQUESTS_PER_BATCH: usize = 64;

/// The in-process bus. Clones share one bus.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    announcements: broadcast::Sender<Announcement>,
    requests_tx: mpsc::Sender<String>,
    /// One consumer at a time takes requests, as a Redis consumer group hands each entry to one consumer.
    requests_rx: tokio::sync::Mutex<mpsc::Receiver<String>>,
}

#[derive(Debug, Default)]
struct State {
    gateways: BTreeMap<GatewayKey, Slot>,
    deployment: Option<StoredDocument>,
    epoch: Option<String>,
    complete_at: Option<i64>,
    nodes: HashMap<String, (NodeStatus, Instant)>,
}

/// A gateway's slot: its index entry and, unless it is a tombstone, its document body.
#[derive(Debug, Clone)]
struct Slot {
    entry: IndexEntry,
    body: Option<String>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        // A subscriber that is this far behind gets `Lagged` and resyncs from the index.
        let (announcements, _) = broadcast::channel(1024);
        let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                announcements,
                requests_tx,
                requests_rx: tokio::sync::Mutex::new(requests_rx),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (each critical section is a few
        // inserts), so a poisoned lock is still safe to use.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn announce(&self, target: Target, version: i64) {
        // No subscriber is not an error: nodes that start later read the index.
        let _ = self
            .inner
            .announcements
            .send(Announcement { target, version });
    }

    fn publish_slot(&self, key: &GatewayKey, slot: Slot) -> PublishOutcome {
        let version = slot.entry.version;
        {
            let mut state = self.state();
            if let Some(current) = state.gateways.get(key)
                && current.entry.version >= version
            {
                return PublishOutcome::Superseded {
                    current: current.entry.version,
                };
            }
            state.gateways.insert(key.clone(), slot);
        }
        self.announce(Target::Gateway(key.clone()), version);
        PublishOutcome::Written
    }
}

#[async_trait]
impl ConfigBus for MemoryBus {
    async fn publish_gateway(
        &self,
        key: &GatewayKey,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError> {
        Ok(self.publish_slot(
            key,
            Slot {
                entry: IndexEntry {
                    version: document.version,
                    hash: document.hash.clone(),
                    deleted: false,
                },
                body: Some(document.body.clone()),
            },
        ))
    }

    async fn publish_tombstone(
        &self,
        key: &GatewayKey,
        version: i64,
    ) -> Result<PublishOutcome, BusError> {
        Ok(self.publish_slot(
            key,
            Slot {
                entry: IndexEntry {
                    version,
                    hash: String::new(),
                    deleted: true,
                },
                body: None,
            },
        ))
    }

    async fn publish_deployment(
        &self,
        document: &StoredDocument,
    ) -> Result<PublishOutcome, BusError> {
        {
            let mut state = self.state();
            if let Some(current) = &state.deployment
                && current.version >= document.version
            {
                return Ok(PublishOutcome::Superseded {
                    current: current.version,
                });
            }
            state.deployment = Some(document.clone());
        }
        self.announce(Target::Deployment, document.version);
        Ok(PublishOutcome::Written)
    }

    async fn begin_reconcile(&self) -> Result<String, BusError> {
        let mut state = self.state();
        Ok(state
            .epoch
            .get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string())
            .clone())
    }

    async fn mark_index_complete(&self, epoch: &str, version: i64) -> Result<bool, BusError> {
        {
            let mut state = self.state();
            if state.epoch.as_deref() != Some(epoch) {
                return Ok(false);
            }
            state.complete_at = Some(version);
        }
        self.announce(Target::Index, version);
        Ok(true)
    }

    async fn index(&self) -> Result<BusIndex, BusError> {
        let state = self.state();
        Ok(BusIndex {
            gateways: state
                .gateways
                .iter()
                .map(|(k, slot)| (k.clone(), slot.entry.clone()))
                .collect(),
            deployment: state.deployment.as_ref().map(deployment_entry),
            complete_at: state.complete_at,
            invalid: Vec::new(),
        })
    }

    async fn index_summary(&self) -> Result<IndexSummary, BusError> {
        let state = self.state();
        Ok(IndexSummary {
            deployment: state.deployment.as_ref().map(deployment_entry),
            complete_at: state.complete_at,
        })
    }

    async fn fetch_gateways(
        &self,
        keys: &[GatewayKey],
    ) -> Result<Vec<Option<GatewayEntry>>, BusError> {
        let state = self.state();
        Ok(keys
            .iter()
            .map(|key| {
                let slot = state.gateways.get(key)?;
                if slot.entry.deleted {
                    return Some(GatewayEntry::Deleted {
                        version: slot.entry.version,
                    });
                }
                Some(GatewayEntry::Document(StoredDocument {
                    version: slot.entry.version,
                    hash: slot.entry.hash.clone(),
                    body: slot.body.clone()?,
                }))
            })
            .collect())
    }

    async fn fetch_deployment(&self) -> Result<Option<StoredDocument>, BusError> {
        Ok(self.state().deployment.clone())
    }

    async fn subscribe(&self) -> Result<Subscription, BusError> {
        // Subscribe to the broadcast before reporting `Connected`, so nothing published after that event is missed.
        let mut announcements = self.inner.announcements.subscribe();
        let (mut feed, events, dropped) = EventFeed::channel();
        let feeder = tokio::spawn(async move {
            if feed.deliver(BusEvent::Connected) == Delivery::SubscriberGone {
                return;
            }
            loop {
                let event = match announcements.recv().await {
                    Ok(a) => BusEvent::Announcement(a),
                    Err(broadcast::error::RecvError::Lagged(_)) => BusEvent::Lagged,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if feed.deliver(event) == Delivery::SubscriberGone {
                    return;
                }
            }
        });
        Ok(Subscription::new(events, feeder.abort_handle(), dropped))
    }

    async fn report_node_status(&self, status: &NodeStatus, ttl: Duration) -> Result<(), BusError> {
        let expires = Instant::now() + ttl;
        self.state()
            .nodes
            .insert(status.node_id.clone(), (status.clone(), expires));
        Ok(())
    }

    async fn remove_node_status(&self, node_id: &str) -> Result<(), BusError> {
        self.state().nodes.remove(node_id);
        Ok(())
    }

    async fn node_statuses(&self) -> Result<Vec<NodeStatus>, BusError> {
        let now = Instant::now();
        let mut state = self.state();
        state.nodes.retain(|_, (_, expires)| *expires > now);
        let mut statuses: Vec<NodeStatus> = state.nodes.values().map(|(s, _)| s.clone()).collect();
        statuses.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(statuses)
    }

    async fn request_default_gateway(&self, account_id: &str) -> Result<(), BusError> {
        self.inner
            .requests_tx
            .try_send(account_id.to_owned())
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => BusError::Full("default-gateway requests"),
                mpsc::error::TrySendError::Closed(_) => BusError::Closed,
            })
    }

    async fn next_default_gateway_requests(&self, wait: Duration) -> Result<Vec<String>, BusError> {
        let mut rx = self.inner.requests_rx.lock().await;
        let first = match tokio::time::timeout(wait, rx.recv()).await {
            Err(_elapsed) => return Ok(Vec::new()),
            Ok(None) => return Err(BusError::Closed),
            Ok(Some(account)) => account,
        };
        let mut batch = vec![first];
        while batch.len() < REQUESTS_PER_BATCH {
            match rx.try_recv() {
                Ok(account) => batch.push(account),
                Err(_) => break,
            }
        }
        Ok(batch)
    }
}

fn deployment_entry(doc: &StoredDocument) -> IndexEntry {
    IndexEntry {
        version: doc.version,
        hash: doc.hash.clone(),
        deleted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_one_bus() {
        let a = MemoryBus::new();
        let b = a.clone();
        let key = GatewayKey::new("acme", "gw");
        a.publish_tombstone(&key, 3).await.unwrap();
        assert_eq!(
            b.index().await.unwrap().gateways[&key].version,
            3,
            "a clone sees the same index"
        );
    }
}
