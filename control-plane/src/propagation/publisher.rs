//! [`ConfigPublisher`]: rebuilds and publishes the documents a committed change affects.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_bus::{ConfigBus, PublishOutcome};
use gatehouse_shared::config::GatewayKey;

use crate::db::Database;
use crate::documents;
use crate::error::Error;
use crate::store::config_versions::next_version;
use crate::store::{gateways as gateway_store, now_ms};

/// How long an API call waits for its publish before it answers anyway; the reconciler finishes the job.
const AFTER_COMMIT_DEADLINE: Duration = Duration::from_secs(3);

/// Publishes config documents after changes. Cheap to clone; lives in `AppState`.
///
/// Every publish takes a version from the counter in the same transaction that reads the state it builds from,
/// then writes with the bus's compare-and-set: publishes that race (two control planes, or an API call and the
/// reconciler) can land in any order and the newest state still wins.
#[derive(Clone)]
pub struct ConfigPublisher {
    db: Database,
    bus: Arc<dyn ConfigBus>,
}

impl std::fmt::Debug for ConfigPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigPublisher")
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

impl ConfigPublisher {
    pub fn new(db: Database, bus: Arc<dyn ConfigBus>) -> Self {
        Self { db, bus }
    }

    pub fn bus(&self) -> &Arc<dyn ConfigBus> {
        &self.bus
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// After a gateway was created or changed (settings, provider configs): republish its document.
    pub async fn gateway_changed(&self, key: &GatewayKey) {
        let outcome = self.publish_gateways(vec![key.clone()]);
        after_commit(&format!("gateway {key}"), outcome).await;
    }

    /// After a gateway was deleted: publish its tombstone (or its document, if it was re-created meanwhile).
    pub async fn gateway_deleted(&self, key: &GatewayKey) {
        self.gateway_changed(key).await;
    }

    /// After an account-wide change (custom providers): republish every gateway of the account.
    pub async fn account_changed(&self, account_id: &str) {
        let outcome = self.publish_account(account_id);
        after_commit(&format!("account {account_id}"), outcome).await;
    }

    /// After signing keys or token revocations changed: republish the deployment document.
    pub async fn deployment_changed(&self) {
        after_commit("the deployment document", self.publish_deployment()).await;
    }

    /// Builds and publishes the current state of each key: its document, or a tombstone when it does not exist.
    pub async fn publish_gateways(
        &self,
        keys: Vec<GatewayKey>,
    ) -> Result<Vec<PublishOutcome>, Error> {
        let (version, built) = self
            .db
            .run(move |c| {
                c.write_transaction(|c| {
                    let version = next_version(c)?;
                    let mut built = Vec::with_capacity(keys.len());
                    for key in keys {
                        let document = documents::gateway_document(c, &key, version)?;
                        built.push((key, document));
                    }
                    Ok((version, built))
                })
            })
            .await?;
        let mut outcomes = Vec::with_capacity(built.len());
        for (key, document) in built {
            let outcome = match document {
                Some(document) => {
                    let stored = documents::stored_gateway(&document)?;
                    self.bus.publish_gateway(&key, &stored).await?
                }
                None => self.bus.publish_tombstone(&key, version).await?,
            };
            tracing::debug!(%key, version, ?outcome, "published gateway document");
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Republishes every gateway of one account; returns how many.
    pub async fn publish_account(&self, account_id: &str) -> Result<usize, Error> {
        let account = account_id.to_owned();
        let ids = self
            .db
            .run(move |c| gateway_store::ids_of_account(c, &account))
            .await?;
        let keys: Vec<GatewayKey> = ids
            .into_iter()
            .map(|id| GatewayKey::new(account_id, id))
            .collect();
        let count = keys.len();
        if count > 0 {
            self.publish_gateways(keys).await?;
        }
        Ok(count)
    }

    /// Builds and publishes the deployment document.
    pub async fn publish_deployment(&self) -> Result<PublishOutcome, Error> {
        let document = self
            .db
            .run(|c| {
                c.write_transaction(|c| {
                    let version = next_version(c)?;
                    documents::deployment_document(c, version, now_ms())
                })
            })
            .await?;
        let stored = documents::stored_deployment(&document)?;
        let outcome = self.bus.publish_deployment(&stored).await?;
        tracing::debug!(
            version = document.version,
            ?outcome,
            "published deployment document"
        );
        Ok(outcome)
    }
}

/// Runs a publish that follows a commit. It never fails the caller: the change is committed, and the reconciler
/// republishes whatever the bus lacks. A publish cut off by the deadline is harmless for the same reason.
async fn after_commit<T>(what: &str, publish: impl std::future::Future<Output = Result<T, Error>>) {
    match tokio::time::timeout(AFTER_COMMIT_DEADLINE, publish).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "publishing {what} failed after commit; the reconciler will republish it");
        }
        Err(_) => tracing::warn!(
            "publishing {what} took longer than {AFTER_COMMIT_DEADLINE:?}; the reconciler will republish it"
        ),
    }
}
