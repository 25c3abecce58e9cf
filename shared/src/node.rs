//! What a data-plane node reports about itself through the config bus, and the control plane shows operators
//! (`GET /admin/nodes`): which document versions it serves and what failed to apply.
//!
//! Same wire rules as the config documents: unknown fields are ignored, new fields get `#[serde(default)]`, and
//! `fixtures/node-status-v1.json` must keep parsing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One node's view of its configuration at `reported_at_ms`. Written with a TTL, so a node that stops reporting
/// disappears from the listing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Chosen by the operator (`--node-id`) or generated at start (host name and a random suffix).
    pub node_id: String,
    /// Milliseconds since the epoch when this node process started, to tell a restarted node from its predecessor.
    #[serde(default)]
    pub started_at_ms: i64,
    /// Milliseconds since the epoch when this report was written ("last seen").
    pub reported_at_ms: i64,
    /// Whether the node has completed its first full load (what `/readyz` answers).
    #[serde(default)]
    pub ready: bool,
    /// `{account_id}/{gateway_id}` → the version the node serves.
    #[serde(default)]
    pub gateways: BTreeMap<String, i64>,
    /// The version of the deployment document (token keys, revocations) the node serves.
    #[serde(default)]
    pub deployment_version: Option<i64>,
    /// The most recent failure to load or apply a document, kept after it is fixed so operators can see it.
    #[serde(default)]
    pub last_error: Option<NodeError>,
    /// Documents the node refuses right now (it serves their previous version, or nothing).
    #[serde(default)]
    pub failing: Vec<NodeError>,
    /// What happened to the node's log records since it started.
    #[serde(default)]
    pub logs: LogCounts,
}

/// Counters of a node's log records: handed to the log channel, dropped (channel full or the stream unreachable
/// long enough), and shipped to the log stream (split mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogCounts {
    #[serde(default)]
    pub submitted: u64,
    #[serde(default)]
    pub dropped: u64,
    #[serde(default)]
    pub shipped: u64,
}

/// A document (or the bus itself) that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeError {
    /// `{account_id}/{gateway_id}`, `deployment`, or `bus` for a failure to reach the bus.
    pub target: String,
    /// The version that failed, when known.
    #[serde(default)]
    pub version: Option<i64>,
    pub message: String,
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_node_status_format_keeps_parsing() {
        let status: NodeStatus =
            serde_json::from_str(include_str!("../fixtures/node-status-v1.json")).unwrap();
        assert_eq!(status.node_id, "node-a");
        assert_eq!(status.gateways["acme/prod"], 42);
        assert_eq!(status.deployment_version, Some(7));
        assert_eq!(status.failing.len(), 1);
        assert_eq!(
            status.last_error.unwrap().message,
            "expected value at line 1 column 1"
        );
    }
}
