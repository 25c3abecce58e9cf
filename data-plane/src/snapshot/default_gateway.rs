//! Asking the control plane for an account's `default` gateway (spec §3.1) from the request path, without waiting
//! on the bus there.
//!
//! A node never writes the database, so the request travels: [`DefaultGatewayRequester::request`] queues the
//! account id (non-blocking, deduplicated per account), the config sync forwards it over the bus, a control plane
//! creates the gateway and publishes it, and the sync applies the document like any other. The requester also
//! hears about every applied change, so a request can wait for the gateway to appear.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_shared::ids::DEFAULT_GATEWAY_ID;
use tokio::sync::{mpsc, watch};

use super::{CompiledGateway, ConfigStore};

/// An account is asked for at most once per this period: requests racing for the same new account send one
/// message, and a lost message (no control plane, Redis down) is sent again on a later request.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(5);
/// Queued requests waiting for the sync to forward them; beyond this, requests are dropped and counted.
const QUEUE_CAPACITY: usize = 256;
/// Past this many remembered accounts, entries older than [`REQUEST_INTERVAL`] are forgotten.
const REMEMBERED_ACCOUNTS: usize = 10_000;

/// The request path's handle. Cheap to clone; every method is non-blocking except [`Self::request_and_wait`],
/// which only awaits.
#[derive(Debug, Clone)]
pub struct DefaultGatewayRequester {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: mpsc::Sender<String>,
    last_asked: Mutex<HashMap<String, Instant>>,
    config: Arc<ConfigStore>,
    /// Bumped by the config sync after each applied change.
    changes: watch::Sender<u64>,
    dropped: AtomicU64,
}

/// The sync's end: the queued account ids.
pub(crate) type DefaultGatewayRequests = mpsc::Receiver<String>;

impl DefaultGatewayRequester {
    pub(crate) fn new(config: Arc<ConfigStore>) -> (Self, DefaultGatewayRequests) {
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        let (changes, _) = watch::channel(0);
        let requester = Self {
            inner: Arc::new(Inner {
                queue,
                last_asked: Mutex::new(HashMap::new()),
                config,
                changes,
                dropped: AtomicU64::new(0),
            }),
        };
        (requester, requests)
    }

    /// Asks for `default` of `account_id` unless this node asked less than [`REQUEST_INTERVAL`] ago. Never
    /// blocks. Returns whether a request was queued. Call it only for an authenticated request (spec §3.1).
    pub fn request(&self, account_id: &str) -> bool {
        let now = Instant::now();
        {
            let mut last_asked = self
                .inner
                .last_asked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last_asked
                .get(account_id)
                .is_some_and(|at| now.duration_since(*at) < REQUEST_INTERVAL)
            {
                return false;
            }
            if last_asked.len() >= REMEMBERED_ACCOUNTS {
                last_asked.retain(|_, at| now.duration_since(*at) < REQUEST_INTERVAL);
            }
            last_asked.insert(account_id.to_owned(), now);
        }
        match self.inner.queue.try_send(account_id.to_owned()) {
            Ok(()) => true,
            Err(_full_or_no_bus) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// [`Self::request`], then waits up to `timeout` for `default` of `account_id` to be in the node's snapshot.
    /// For the first request to a new account: with a control plane up, the gateway arrives in milliseconds.
    pub async fn request_and_wait(
        &self,
        account_id: &str,
        timeout: Duration,
    ) -> Option<Arc<CompiledGateway>> {
        let mut changes = self.inner.changes.subscribe();
        let lookup = || {
            self.inner
                .config
                .load()
                .gateway(account_id, DEFAULT_GATEWAY_ID)
                .cloned()
        };
        if let Some(found) = lookup() {
            return Some(found);
        }
        self.request(account_id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Checked after subscribing, so a change between the lookup and the wait is not missed.
            if let Some(found) = lookup() {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the sync is gone.
                _ => return lookup(),
            }
        }
    }

    /// Requests dropped because the queue was full or no bus is configured.
    pub fn dropped_requests(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Called by the config sync after it applied a change.
    pub(crate) fn snapshot_changed(&self) {
        self.inner
            .changes
            .send_modify(|generation| *generation += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
    use gatehouse_shared::gateway::GatewaySettings;

    fn default_document(account: &str) -> GatewayConfigDocument {
        GatewayConfigDocument {
            schema: 1,
            key: GatewayKey::new(account, DEFAULT_GATEWAY_ID),
            version: 1,
            internal_id: "i".into(),
            is_default: true,
            settings: GatewaySettings::for_default_gateway(),
            provider_configs: vec![],
            custom_providers: vec![],
            cache_generation: 0,
            access: Default::default(),
            routes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn an_account_is_asked_for_once_per_interval_and_the_queue_never_blocks() {
        let config = Arc::new(ConfigStore::new(None));
        let (requester, mut requests) = DefaultGatewayRequester::new(config);
        assert!(requester.request("acme"));
        assert!(!requester.request("acme"), "deduplicated");
        assert!(requester.request("beta"));
        assert_eq!(requests.recv().await.as_deref(), Some("acme"));
        assert_eq!(requests.recv().await.as_deref(), Some("beta"));
        for i in 0..QUEUE_CAPACITY + 10 {
            requester.request(&format!("acct{i}"));
        }
        assert_eq!(
            requester.dropped_requests(),
            10,
            "a full queue drops, never blocks"
        );
    }

    #[tokio::test]
    async fn waiting_returns_the_gateway_once_the_sync_applies_it_or_none_after_the_timeout() {
        let config = Arc::new(ConfigStore::new(None));
        let (requester, mut requests) = DefaultGatewayRequester::new(Arc::clone(&config));
        let sync = {
            let requester = requester.clone();
            tokio::spawn(async move {
                let account = requests.recv().await.unwrap();
                config
                    .apply_gateway(&default_document(&account), "h")
                    .unwrap();
                requester.snapshot_changed();
            })
        };
        let found = requester
            .request_and_wait("acme", Duration::from_secs(5))
            .await
            .expect("applied by the sync");
        assert!(found.is_default);
        sync.await.unwrap();
        assert!(
            requester
                .request_and_wait("nobody", Duration::from_millis(50))
                .await
                .is_none()
        );
    }
}
