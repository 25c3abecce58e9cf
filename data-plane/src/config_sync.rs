//! The config sync: a pingora background service that keeps the node's [`ConfigStore`] equal to what the config
//! bus holds (design §2). No request ever waits on it; requests only load the snapshot it swaps in.
//!
//! Order of work: subscribe first, and on [`BusEvent::Connected`] read the whole index and every newer document,
//! so nothing published in between is missed. The node becomes ready (`/readyz`) after the first such load of a
//! complete index (one a control plane's reconciler has marked complete): a node that starts while Redis is
//! empty, or before any control plane ran, would otherwise take traffic with nothing to serve it. Afterwards, announcements
//! newer than what the node serves are fetched and applied; a full resync runs again after every reconnect, when
//! the subscriber lagged, when a reconciler marks the index complete, and on a timer, so a lost announcement
//! costs one timer period. The node reports its status (`status.rs`) and forwards default-gateway requests.

mod apply;
mod status;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_bus::{Announcement, BusEvent, ConfigBus, Subscription, Target};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::time::{MissedTickBehavior, interval};

use crate::readiness::ReadinessHandle;
use crate::snapshot::default_gateway::DefaultGatewayRequests;
use crate::snapshot::{ConfigStore, DefaultGatewayRequester};
use apply::Applier;
pub(crate) use status::StatusBoard;

/// How the node syncs and reports.
#[derive(Debug, Clone)]
pub struct ConfigSyncSettings {
    /// How this node appears in `GET /admin/nodes`; unique per node, stable across restarts if you want a
    /// restarted node to replace its old entry at once.
    pub node_id: String,
    /// Full resync period, the upper bound on how long a lost announcement delays a change.
    pub resync_interval: Duration,
    /// How often the status is rewritten when nothing changes.
    pub status_interval: Duration,
    /// How long a status outlives its node's last report.
    pub status_ttl: Duration,
}

impl ConfigSyncSettings {
    pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);
    pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(5);
    pub const DEFAULT_STATUS_TTL: Duration = Duration::from_secs(20);

    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            resync_interval: Self::DEFAULT_RESYNC_INTERVAL,
            status_interval: Self::DEFAULT_STATUS_INTERVAL,
            status_ttl: Self::DEFAULT_STATUS_TTL,
        }
    }
}

/// A node id for when the operator sets none: the host name and a random suffix (unique across restarts).
pub fn generated_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let random = ulid::Ulid::generate().to_string().to_lowercase();
    format!("{host}-{}", &random[random.len() - 8..])
}

/// Wait before retrying after the bus refused a subscription, a resync or a fetch.
const RETRY: Duration = Duration::from_secs(1);

/// The background service. Built by `DataPlane::run_until` when a bus is configured.
pub(crate) struct ConfigSync {
    bus: Arc<dyn ConfigBus>,
    config: Arc<ConfigStore>,
    readiness: ReadinessHandle,
    settings: ConfigSyncSettings,
    requester: DefaultGatewayRequester,
    /// Taken when the service starts.
    requests: Mutex<Option<DefaultGatewayRequests>>,
    /// What the node applied and refused, reported with its log counters (also read by `/metrics`).
    board: Arc<StatusBoard>,
}

impl ConfigSync {
    pub(crate) fn new(
        bus: Arc<dyn ConfigBus>,
        config: Arc<ConfigStore>,
        readiness: ReadinessHandle,
        settings: ConfigSyncSettings,
        requester: DefaultGatewayRequester,
        requests: DefaultGatewayRequests,
        board: Arc<StatusBoard>,
    ) -> Self {
        Self {
            board,
            bus,
            config,
            readiness,
            settings,
            requester,
            requests: Mutex::new(Some(requests)),
        }
    }

    async fn sync(&self, applier: &Applier, mut shutdown: ShutdownWatch) {
        let mut subscription: Option<Subscription> = None;
        let mut resync = interval(self.settings.resync_interval);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first full load follows `Connected`, not the timer.
        resync.reset();
        loop {
            let Some(events) = subscription.as_mut() else {
                match self.bus.subscribe().await {
                    Ok(s) => subscription = Some(s),
                    Err(error) => {
                        applier.board.bus_failed(error.to_string());
                        tracing::warn!(%error, "cannot subscribe to the config bus");
                        if wait_or_stop(&mut shutdown, RETRY).await {
                            return;
                        }
                    }
                }
                continue;
            };
            let synced = tokio::select! {
                _ = shutdown.changed() => return,
                event = events.next() => match event {
                    Some(BusEvent::Connected | BusEvent::Lagged) => self.full_resync(applier).await,
                    // The index was marked complete: re-read it (here, so readiness follows).
                    Some(BusEvent::Announcement(Announcement { target: Target::Index, .. })) => {
                        self.full_resync(applier).await
                    }
                    Some(BusEvent::Announcement(announcement)) => {
                        match applier.announced(&announcement).await {
                            Ok(()) => true,
                            Err(error) => {
                                applier.board.bus_failed(error.to_string());
                                tracing::warn!(%error, target = %announcement.target, "fetching an announced document failed");
                                false
                            }
                        }
                    }
                    None => {
                        // The bus dropped the subscription; subscribe again after a pause.
                        subscription = None;
                        if wait_or_stop(&mut shutdown, RETRY).await {
                            return;
                        }
                        true
                    }
                },
                _ = resync.tick() => self.full_resync(applier).await,
            };
            if !synced {
                // Try again soon rather than a whole resync period later.
                resync.reset_after(RETRY);
            }
        }
    }

    /// Returns false when the bus could not be read.
    async fn full_resync(&self, applier: &Applier) -> bool {
        match applier.full_resync().await {
            Ok(report) if !self.readiness.is_ready() && !report.index_complete => {
                tracing::info!(
                    "config loaded, but no control plane has marked the index complete yet; not ready"
                );
                true
            }
            Ok(report) => {
                if !self.readiness.is_ready() {
                    tracing::info!(
                        gateways = self.config.load().gateway_versions().len(),
                        "first config load complete; ready"
                    );
                    self.readiness.set_ready();
                    applier.board.changed();
                } else if report.applied + report.removed + report.refused > 0 {
                    tracing::info!(?report, "config resync changed the snapshot");
                }
                true
            }
            Err(error) => {
                applier.board.bus_failed(error.to_string());
                tracing::warn!(%error, "config resync failed; serving the last config");
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for ConfigSync {
    async fn start(&self, shutdown: ShutdownWatch) {
        let board = Arc::clone(&self.board);
        let reporter = tokio::spawn(status::run_reporter(
            Arc::clone(&self.bus),
            Arc::clone(&board),
            Arc::clone(&self.config),
            self.readiness.clone(),
            self.settings.status_interval,
            self.settings.status_ttl,
            shutdown.clone(),
        ));
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let forwarder = requests.map(|requests| {
            tokio::spawn(forward_default_gateway_requests(
                Arc::clone(&self.bus),
                requests,
                shutdown.clone(),
            ))
        });
        let applier = Applier {
            bus: Arc::clone(&self.bus),
            config: Arc::clone(&self.config),
            board,
            requester: self.requester.clone(),
        };
        self.sync(&applier, shutdown).await;
        // The reporter removes the node's status on its way out.
        let _ = reporter.await;
        if let Some(forwarder) = forwarder {
            forwarder.abort();
        }
    }
}

/// Sends queued default-gateway requests over the bus, one at a time (they are rare: one per new account).
async fn forward_default_gateway_requests(
    bus: Arc<dyn ConfigBus>,
    mut requests: DefaultGatewayRequests,
    mut shutdown: ShutdownWatch,
) {
    loop {
        let account = tokio::select! {
            _ = shutdown.changed() => return,
            account = requests.recv() => match account {
                Some(a) => a,
                None => return,
            },
        };
        if let Err(error) = bus.request_default_gateway(&account).await {
            // The request path asks again after its dedup interval if the gateway does not appear.
            tracing::warn!(%error, account_id = %account, "could not send a default-gateway request");
        }
    }
}

/// Sleeps for `period` unless shutdown comes first; returns true on shutdown.
async fn wait_or_stop(shutdown: &mut ShutdownWatch, period: Duration) -> bool {
    tokio::select! {
        _ = shutdown.changed() => true,
        () = tokio::time::sleep(period) => false,
    }
}
