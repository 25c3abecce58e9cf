//! Creates an account's `default` gateway when a data-plane node asks (spec §3.1: it is created on the first
//! authenticated request that names it). Nodes never write the database, so they ask over the bus.
//!
//! Idempotent: the insert relies on the primary key, so two control planes (or two requests) creating the same
//! gateway at once end with one row; whoever loses the race still publishes the document, which is harmless.

use std::time::Duration;

use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::ids::{DEFAULT_GATEWAY_ID, is_valid_account_id};
use tokio::sync::watch;

use super::ConfigPublisher;
use crate::error::Error;
use crate::store::gateways::{self as gateway_store, GatewayRecord};
use crate::store::now_ms;

/// How long one read of the request queue waits.
const WAIT: Duration = Duration::from_secs(2);
/// Backoff after a failed read (Redis down), capped.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Creates `default` for `account_id` unless it exists, then publishes it. Returns whether it was created.
pub async fn ensure_default_gateway(
    publisher: &ConfigPublisher,
    account_id: &str,
) -> Result<bool, Error> {
    // The account id arrives from the bus; it must be as safe as one from a URL path.
    if !is_valid_account_id(account_id) {
        return Err(Error::BadParameter(format!(
            "invalid account id {account_id:?} in a default-gateway request"
        )));
    }
    let now = now_ms();
    let record = GatewayRecord {
        account_id: account_id.to_owned(),
        id: DEFAULT_GATEWAY_ID.to_owned(),
        internal_id: uuid::Uuid::new_v4().to_string(),
        is_default: true,
        settings: GatewaySettings::for_default_gateway(),
        created_at_ms: now,
        modified_at_ms: now,
    };
    let created = match publisher
        .database()
        .run(move |c| gateway_store::insert(c, &record))
        .await
    {
        Ok(()) => true,
        Err(Error::AlreadyExists(_)) => false,
        Err(e) => return Err(e),
    };
    // Also when it existed: the node asked because it does not have it, so the bus may have lost it.
    publisher
        .publish_gateways(vec![GatewayKey::new(account_id, DEFAULT_GATEWAY_ID)])
        .await?;
    if created {
        tracing::info!(
            account_id,
            "created the default gateway on a data-plane request"
        );
    }
    Ok(created)
}

/// Serves default-gateway requests until `shutdown` turns true.
pub async fn run_consumer(publisher: ConfigPublisher, mut shutdown: watch::Receiver<bool>) {
    let mut retry = FIRST_RETRY;
    loop {
        let next = tokio::select! {
            _ = shutdown.changed() => return,
            next = publisher.bus().next_default_gateway_requests(WAIT) => next,
        };
        match next {
            Ok(mut accounts) => {
                retry = FIRST_RETRY;
                accounts.sort();
                accounts.dedup();
                for account in accounts {
                    if let Err(error) = ensure_default_gateway(&publisher, &account).await {
                        tracing::warn!(%error, account_id = %account, "could not create the default gateway");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading default-gateway requests failed");
                tokio::select! {
                    _ = shutdown.changed() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}
