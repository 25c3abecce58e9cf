//! The reconciler: makes the bus match the database, whatever was lost on the way (a crash between commit and
//! publish, Redis down or wiped, a `gatehouse token revoke` run in another process).
//!
//! Two rhythms: the deployment document is cheap to build and carries revocations, so it is compared every few
//! seconds; gateways are compared on a longer period, and at once when the bus index lost its completeness
//! marker (Redis restarted empty). Every control plane runs one; they agree through the bus's compare-and-set.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_bus::BusIndex;
use gatehouse_shared::config::GatewayKey;
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval};

use super::ConfigPublisher;
use crate::documents;
use crate::error::Error;
use crate::store::config_versions::{next_version, raise_to_at_least};
use crate::store::{gateways as gateway_store, now_ms};

/// Gateways republished per transaction during a pass.
const REPUBLISH_BATCH: usize = 100;

/// How often the reconciler compares.
#[derive(Debug, Clone, Copy)]
pub struct ReconcilerSettings {
    /// Deployment document (revocations made outside this process show up within this period).
    pub deployment_interval: Duration,
    /// Every gateway document.
    pub gateway_interval: Duration,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        Self {
            deployment_interval: Duration::from_secs(5),
            gateway_interval: Duration::from_secs(60),
        }
    }
}

/// What a deployment pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentPass {
    pub republished: bool,
    /// Whether the bus index carries its completeness marker; if not, a gateway pass should run now.
    pub index_complete: bool,
}

/// What a gateway pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatewayPass {
    /// Gateways whose document (or tombstone) was published because the bus lacked it or had it stale.
    pub republished: usize,
    pub marked_complete: bool,
}

/// Compares and republishes; [`Reconciler::run`] drives it on timers.
#[derive(Debug, Clone)]
pub struct Reconciler {
    publisher: ConfigPublisher,
    settings: ReconcilerSettings,
}

impl Reconciler {
    pub fn new(publisher: ConfigPublisher, settings: ReconcilerSettings) -> Self {
        Self {
            publisher,
            settings,
        }
    }

    /// Runs both passes at start and then on their timers, until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut deployment_tick = interval(self.settings.deployment_interval);
        deployment_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Both passes run at start: a control plane that crashed between a commit and its publish repairs that
        // on its way back up.
        let mut gateway_tick = interval(self.settings.gateway_interval);
        gateway_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = deployment_tick.tick() => match self.reconcile_deployment().await {
                    Ok(pass) => {
                        if pass.republished {
                            tracing::info!("reconciler republished the deployment document");
                        }
                        if !pass.index_complete {
                            gateway_tick.reset_immediately();
                        }
                    }
                    Err(error) => tracing::warn!(%error, "reconciling the deployment document failed"),
                },
                _ = gateway_tick.tick() => match self.reconcile_gateways().await {
                    Ok(pass) if pass.republished > 0 || pass.marked_complete => tracing::info!(
                        republished = pass.republished,
                        marked_complete = pass.marked_complete,
                        "reconciler brought the bus up to date",
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reconciling gateway documents failed"),
                },
            }
        }
    }

    /// Republishes the deployment document if the bus lacks it or holds other content.
    pub async fn reconcile_deployment(&self) -> Result<DeploymentPass, Error> {
        let summary = self.publisher.bus().index_summary().await?;
        let floor = summary
            .deployment
            .as_ref()
            .map(|d| d.version)
            .max(summary.complete_at);
        let current_hash = self
            .publisher
            .database()
            .run(move |c| {
                if let Some(floor) = floor {
                    keep_counter_above(c, floor)?;
                }
                let document = documents::deployment_document(c, 0, now_ms())?;
                Ok(documents::stored_deployment(&document)?.hash)
            })
            .await?;
        let stale = summary.deployment.as_ref().map(|d| &d.hash) != Some(&current_hash);
        if stale {
            self.publisher.publish_deployment().await?;
        }
        Ok(DeploymentPass {
            republished: stale,
            index_complete: summary.complete_at.is_some(),
        })
    }

    /// Republishes every gateway whose bus entry is missing or stale, tombstones entries of gateways that no
    /// longer exist, and marks the index complete if it was not.
    pub async fn reconcile_gateways(&self) -> Result<GatewayPass, Error> {
        let bus = self.publisher.bus();
        let epoch = bus.begin_reconcile().await?;
        let index = bus.index().await?;
        for (field, reason) in &index.invalid {
            tracing::warn!(%field, %reason, "unreadable config bus index entry; republishing over it");
        }
        let floor = index.max_version();
        let database = self
            .publisher
            .database()
            .run(move |c| {
                if let Some(floor) = floor {
                    keep_counter_above(c, floor)?;
                }
                current_hashes(c)
            })
            .await?;
        let stale = stale_keys(&index, &database);
        for batch in stale.chunks(REPUBLISH_BATCH) {
            self.publisher.publish_gateways(batch.to_vec()).await?;
        }
        let mut pass = GatewayPass {
            republished: stale.len(),
            marked_complete: false,
        };
        if index.complete_at.is_none() {
            let version = self
                .publisher
                .database()
                .run(|c| c.write_transaction(next_version))
                .await?;
            pass.marked_complete = bus.mark_index_complete(&epoch, version).await?;
        }
        Ok(pass)
    }
}

fn keep_counter_above(c: &mut crate::db::AnyConnection, floor: i64) -> Result<(), Error> {
    if raise_to_at_least(c, floor)? {
        tracing::warn!(
            floor,
            "the config version counter was behind the bus (a restored database?); raised it"
        );
    }
    Ok(())
}

/// The content hash every gateway's document would have now.
fn current_hashes(c: &mut crate::db::AnyConnection) -> Result<BTreeMap<GatewayKey, String>, Error> {
    let mut hashes = BTreeMap::new();
    for key in gateway_store::all_keys(c)? {
        // Deleted between the listing and this read: the next pass sees it gone.
        if let Some(document) = documents::gateway_document(c, &key, 0)? {
            hashes.insert(key, documents::stored_gateway(&document)?.hash);
        }
    }
    Ok(hashes)
}

/// Keys whose bus entry does not match the database: missing, a tombstone, or another hash for a gateway that
/// exists; a live entry for one that does not.
pub(crate) fn stale_keys(
    index: &BusIndex,
    database: &BTreeMap<GatewayKey, String>,
) -> Vec<GatewayKey> {
    let changed = database
        .iter()
        .filter_map(|(key, hash)| match index.gateways.get(key) {
            Some(entry) if !entry.deleted && &entry.hash == hash => None,
            _ => Some(key.clone()),
        });
    let gone = index
        .gateways
        .iter()
        .filter(|(key, entry)| !entry.deleted && !database.contains_key(key))
        .map(|(key, _)| key.clone());
    changed.chain(gone).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_bus::IndexEntry;

    fn key(id: &str) -> GatewayKey {
        GatewayKey::new("acme", id)
    }

    fn live(hash: &str) -> IndexEntry {
        IndexEntry {
            version: 1,
            hash: hash.into(),
            deleted: false,
        }
    }

    fn tombstone() -> IndexEntry {
        IndexEntry {
            version: 2,
            hash: String::new(),
            deleted: true,
        }
    }

    #[test]
    fn the_reconciler_republishes_exactly_what_differs_from_the_database() {
        // (gateway, bus entry, database hash, republished?)
        let cases: [(&str, Option<IndexEntry>, Option<&str>, bool); 7] = [
            ("same", Some(live("h")), Some("h"), false),
            ("missing-on-bus", None, Some("h"), true),
            ("stale-on-bus", Some(live("old")), Some("new"), true),
            ("recreated", Some(tombstone()), Some("h"), true),
            ("deleted-not-tombstoned", Some(live("h")), None, true),
            ("tombstoned", Some(tombstone()), None, false),
            ("never-existed", None, None, false),
        ];
        let mut index = BusIndex::default();
        let mut database = BTreeMap::new();
        for (id, entry, hash, _) in &cases {
            if let Some(entry) = entry {
                index.gateways.insert(key(id), entry.clone());
            }
            if let Some(hash) = hash {
                database.insert(key(id), (*hash).to_owned());
            }
        }
        let stale = stale_keys(&index, &database);
        for (id, _, _, expected) in cases {
            assert_eq!(stale.contains(&key(id)), expected, "{id}");
        }
    }
}
