//! Applying what the bus holds to the node's [`ConfigStore`]: a full resync from the index, or one announced
//! document. Every document goes through `ConfigStore`'s version check and compile step; one that does not parse,
//! names the wrong gateway or does not compile is refused, reported, and not fetched again at that version, while
//! the previous version stays in service.

use std::sync::Arc;

use gatehouse_bus::{Announcement, BusError, BusIndex, ConfigBus, GatewayEntry, Target};
use gatehouse_shared::config::{DeploymentDocument, GatewayConfigDocument, GatewayKey};

use super::status::StatusBoard;
use crate::snapshot::{Applied, ConfigStore, DefaultGatewayRequester};

/// What a full resync changed, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResyncReport {
    pub applied: usize,
    pub removed: usize,
    pub refused: usize,
    /// Whether a control plane has marked the index complete, i.e. this load saw every gateway.
    pub index_complete: bool,
}

pub(crate) struct Applier {
    pub bus: Arc<dyn ConfigBus>,
    pub config: Arc<ConfigStore>,
    pub board: Arc<StatusBoard>,
    pub requester: DefaultGatewayRequester,
}

impl Applier {
    /// Reads the whole index and applies everything newer than what the node serves: documents, tombstones, the
    /// deployment document, and (when the index is complete) the removal of gateways it no longer lists.
    pub(crate) async fn full_resync(&self) -> Result<ResyncReport, BusError> {
        let index = self.bus.index().await?;
        let mut report = ResyncReport {
            index_complete: index.complete_at.is_some(),
            ..ResyncReport::default()
        };
        for (field, reason) in &index.invalid {
            tracing::warn!(%field, %reason, "unreadable config bus index entry");
        }
        if let Some(entry) = &index.deployment {
            self.deployment_announced(entry.version, &mut report)
                .await?;
        }
        let snapshot = self.config.load();
        let mut wanted = Vec::new();
        for (key, entry) in &index.gateways {
            if snapshot
                .known_version(key)
                .is_some_and(|v| v >= entry.version)
            {
                continue;
            }
            if entry.deleted {
                self.remove(key, entry.version, &mut report);
            } else if !self.board.is_refused(&key.as_path(), entry.version) {
                wanted.push(key.clone());
            }
        }
        if !wanted.is_empty() {
            let fetched = self.bus.fetch_gateways(&wanted).await?;
            for (key, entry) in wanted.iter().zip(fetched) {
                self.apply_gateway_entry(key, entry, &mut report);
            }
        }
        self.remove_unlisted(&index, &mut report);
        self.finish(report);
        Ok(report)
    }

    /// Applies one announcement: fetches the document only when it is newer than what the node serves.
    pub(crate) async fn announced(&self, announcement: &Announcement) -> Result<(), BusError> {
        let mut report = ResyncReport::default();
        match &announcement.target {
            Target::Index => {
                self.full_resync().await?;
                return Ok(());
            }
            Target::Deployment => {
                self.deployment_announced(announcement.version, &mut report)
                    .await?;
            }
            Target::Gateway(key) => {
                let known = self.config.load().known_version(key);
                if known.is_some_and(|v| v >= announcement.version)
                    || self.board.is_refused(&key.as_path(), announcement.version)
                {
                    return Ok(());
                }
                let entry = self
                    .bus
                    .fetch_gateways(std::slice::from_ref(key))
                    .await?
                    .pop()
                    .flatten();
                self.apply_gateway_entry(key, entry, &mut report);
            }
        }
        self.finish(report);
        Ok(())
    }

    async fn deployment_announced(
        &self,
        version: i64,
        report: &mut ResyncReport,
    ) -> Result<(), BusError> {
        let current = self.config.load().deployment.as_ref().map(|d| d.version);
        if current.is_some_and(|v| v >= version) || self.board.is_refused(DEPLOYMENT, version) {
            return Ok(());
        }
        let Some(stored) = self.bus.fetch_deployment().await? else {
            return Ok(());
        };
        match serde_json::from_str::<DeploymentDocument>(&stored.body) {
            Err(e) => {
                report.refused += 1;
                self.board.refuse(
                    DEPLOYMENT,
                    stored.version,
                    format!("the document does not parse: {e}"),
                );
            }
            Ok(doc) if doc.version != stored.version => {
                report.refused += 1;
                self.board.refuse(
                    DEPLOYMENT,
                    stored.version,
                    format!(
                        "the document says version {} but its index entry says {}",
                        doc.version, stored.version
                    ),
                );
            }
            Ok(doc) => {
                if self.config.apply_deployment(&doc, &stored.hash) == Applied::Updated {
                    report.applied += 1;
                }
                self.board.applied(DEPLOYMENT);
            }
        }
        Ok(())
    }

    fn apply_gateway_entry(
        &self,
        key: &GatewayKey,
        entry: Option<GatewayEntry>,
        report: &mut ResyncReport,
    ) {
        let target = key.as_path();
        let stored = match entry {
            // Gone from the index since it was read (Redis wiped?); the next resync sorts it out.
            None => {
                tracing::debug!(%target, "announced document is not on the bus");
                return;
            }
            Some(GatewayEntry::Deleted { version }) => {
                self.remove(key, version, report);
                return;
            }
            Some(GatewayEntry::Document(stored)) => stored,
        };
        let refuse = |message: String| {
            self.board.refuse(&target, stored.version, message);
        };
        let doc: GatewayConfigDocument = match serde_json::from_str(&stored.body) {
            Ok(doc) => doc,
            Err(e) => {
                report.refused += 1;
                return refuse(format!("the document does not parse: {e}"));
            }
        };
        if &doc.key != key {
            report.refused += 1;
            return refuse(format!("the document is for gateway {}", doc.key));
        }
        if doc.version != stored.version {
            report.refused += 1;
            return refuse(format!(
                "the document says version {} but its index entry says {}",
                doc.version, stored.version
            ));
        }
        match self.config.apply_gateway(&doc, &stored.hash) {
            Ok(applied) => {
                if applied == Applied::Updated {
                    report.applied += 1;
                }
                self.board.applied(&target);
            }
            Err(e) => {
                report.refused += 1;
                refuse(e.to_string());
            }
        }
    }

    fn remove(&self, key: &GatewayKey, version: i64, report: &mut ResyncReport) {
        if self.config.remove_gateway(key, version) == Applied::Updated {
            report.removed += 1;
        }
        self.board.applied(&key.as_path());
    }

    /// Once a reconciler marked the index complete, a gateway it does not list was deleted while its tombstone
    /// was lost (Redis wiped); the node drops it at the marker's version, which is newer than anything published
    /// before the marker and older than anything published after it.
    fn remove_unlisted(&self, index: &BusIndex, report: &mut ResyncReport) {
        let Some(complete_at) = index.complete_at else {
            return;
        };
        for (key, version) in self.config.load().gateway_versions() {
            if version < complete_at && !index.gateways.contains_key(&key) {
                tracing::info!(%key, version, "gateway is no longer on the bus; removing it");
                self.remove(&key, complete_at, report);
            }
        }
    }

    fn finish(&self, report: ResyncReport) {
        if report.applied + report.removed > 0 {
            self.requester.snapshot_changed();
            self.board.changed();
        }
    }
}

/// The status target of the deployment document.
const DEPLOYMENT: &str = "deployment";
