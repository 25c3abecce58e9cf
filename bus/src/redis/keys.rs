//! Every Redis key and channel the bus uses, in one place. All start with the deployment's prefix, so several
//! deployments (and test runs) can share one Redis.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}config:index` | hash | `{account}/{gateway}` and `deployment` → `{"version","hash","deleted"}`; `~epoch`, `~complete` |
//! | `{p}config:gateway:{account}/{gateway}` | string | a gateway document (absent for a tombstone) |
//! | `{p}config:deployment` | string | the deployment document |
//! | `{p}config:announcements` | pub/sub channel | `{"key","version"}` after every write |
//! | `{p}node:{node_id}` | string with TTL | a node's status |
//! | `{p}nodes` | sorted set | node ids by last report (ms), to list statuses without `SCAN` |
//! | `{p}default-gateway-requests` | stream, group `control-plane` | `account` fields |
//! | `{p}logs` | stream, group `log-writers` | one entry per shipped batch: `records` = JSON array of log records |
//! | `{p}limits:…` | hashes, sorted sets (with TTL) | rate and spend counters: the table is in `limits.rs` |
//! | `{p}cache:{hex}` | string with TTL | one cached response (`response_cache.rs`) |

use gatehouse_shared::config::GatewayKey;

use crate::error::BusError;

/// The consumer group control planes share, so each default-gateway request goes to one of them.
pub(crate) const REQUESTS_GROUP: &str = "control-plane";
/// Roughly how many default-gateway requests the stream keeps (`XADD MAXLEN ~`); they are consumed in
/// milliseconds, so this only bounds growth while no control plane runs.
pub(crate) const REQUESTS_MAX_LEN: usize = 10_000;

/// The consumer group control planes share, so each log batch is written by one of them.
pub(crate) const LOGS_GROUP: &str = "log-writers";

#[derive(Debug, Clone)]
pub(crate) struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    pub(crate) fn new(prefix: &str) -> Result<Self, BusError> {
        if prefix.is_empty() {
            return Err(BusError::Settings(
                "the Redis key prefix must not be empty (keys of several deployments would mix)"
                    .into(),
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn index(&self) -> String {
        format!("{}config:index", self.prefix)
    }

    pub(crate) fn gateway_document(&self, key: &GatewayKey) -> String {
        format!("{}config:gateway:{}", self.prefix, key.as_path())
    }

    pub(crate) fn deployment_document(&self) -> String {
        format!("{}config:deployment", self.prefix)
    }

    pub(crate) fn announcements(&self) -> String {
        format!("{}config:announcements", self.prefix)
    }

    pub(crate) fn node_status(&self, node_id: &str) -> String {
        format!("{}node:{node_id}", self.prefix)
    }

    pub(crate) fn node_registry(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    pub(crate) fn default_gateway_requests(&self) -> String {
        format!("{}default-gateway-requests", self.prefix)
    }

    pub(crate) fn logs(&self) -> String {
        format!("{}logs", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_channel_starts_with_the_prefix() {
        let keys = KeyLayout::new("t1:").unwrap();
        let gw = GatewayKey::new("acme", "prod");
        for k in [
            keys.index(),
            keys.gateway_document(&gw),
            keys.deployment_document(),
            keys.announcements(),
            keys.node_status("n1"),
            keys.node_registry(),
            keys.default_gateway_requests(),
            keys.logs(),
        ] {
            assert!(k.starts_with("t1:"), "{k}");
        }
        assert_eq!(keys.gateway_document(&gw), "t1:config:gateway:acme/prod");
    }

    #[test]
    fn an_empty_prefix_is_refused() {
        assert!(matches!(KeyLayout::new(""), Err(BusError::Settings(_))));
    }
}
