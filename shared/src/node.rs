//! What a data-plane node reports about itself through the config bus, and the control plane shows operators
//! (`GET /admin/nodes`): which document versions it serves and what failed to apply, and the health of its routed
//! targets (`GET .../gateways/{gateway_id}/targets`).
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
    /// The health of the node's routed targets (dynamic routes), sorted by key; at most [`MAX_REPORTED_TARGETS`]
    /// (see [`cap_targets`] for which are left out). Empty in reports of nodes older than this field.
    #[serde(default)]
    pub targets: Vec<TargetHealthReport>,
    /// Targets the node holds but left out of `targets` because of the cap.
    #[serde(default)]
    pub targets_omitted: u64,
}

/// Most targets one node report carries. A report is written every few seconds with a TTL and read whole by the
/// control plane; at about 300 bytes a target this keeps it near 300 kB however many routes the deployment has.
pub const MAX_REPORTED_TARGETS: usize = 1_000;

/// One routed target's health on one node: a provider/model behind a `model` element of a dynamic route, with its
/// circuit breaker and recent latencies.
///
/// Latencies are integer **microseconds** (the report derives `Eq`, so no floats; milliseconds would round a fast
/// model's time per output token to 0 or 1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetHealthReport {
    /// `{account_id}/{gateway_id}/{route_id}/{element_id}/{provider}/{model}` (see [`TargetKey::parse`]).
    pub key: String,
    /// The route's id (not its name: a renamed route keeps its targets' health).
    #[serde(default)]
    pub route_id: String,
    /// The `model` element's id within the route.
    #[serde(default)]
    pub element_id: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub model: String,
    /// `closed`, `open` or `half_open`.
    #[serde(default)]
    pub circuit: String,
    /// Whether the target may take a request now (closed, half-open, or open with its cooldown over).
    #[serde(default)]
    pub available: bool,
    /// Mean time to first byte of successful attempts over the last minute, microseconds (rounded); `None`
    /// without a sample in that minute.
    #[serde(default)]
    pub ttft_us: Option<u64>,
    /// Mean time per output token of finished answers over the last minute, microseconds (rounded).
    #[serde(default)]
    pub tpot_us: Option<u64>,
    /// Attempts that succeeded since the node started.
    #[serde(default)]
    pub successes: u64,
    /// Attempts that failed (no answer, 429 or 5xx) since the node started.
    #[serde(default)]
    pub failures: u64,
    /// Failures since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Milliseconds since the epoch of the last failure.
    #[serde(default)]
    pub last_failure_ms: Option<i64>,
}

/// A target key's parts. Account and gateway ids never contain `/`, and route ids are UUIDs; the model may
/// (`@cf/meta/llama-3.1-8b-instruct`), so the first four segments are account, gateway, route and element, the
/// fifth the provider and the rest the model. (An element id containing `/` therefore does not parse back as
/// written; its key stays unique all the same.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetKey<'a> {
    pub account_id: &'a str,
    pub gateway_id: &'a str,
    pub route_id: &'a str,
    pub element_id: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
}

impl<'a> TargetKey<'a> {
    /// Splits a key; `None` when it has fewer than six segments.
    pub fn parse(key: &'a str) -> Option<Self> {
        let mut parts = key.splitn(6, '/');
        Some(Self {
            account_id: parts.next()?,
            gateway_id: parts.next()?,
            route_id: parts.next()?,
            element_id: parts.next()?,
            provider: parts.next()?,
            model: parts.next()?,
        })
    }
}

impl TargetHealthReport {
    /// Whether the target belongs to gateway `{account_id}/{gateway_id}`.
    pub fn is_of_gateway(&self, account_id: &str, gateway_id: &str) -> bool {
        TargetKey::parse(&self.key)
            .is_some_and(|k| k.account_id == account_id && k.gateway_id == gateway_id)
    }
}

/// Bounds `targets` to [`MAX_REPORTED_TARGETS`] and returns how many were left out. Targets whose circuit is not
/// closed are kept first (they are what an operator looks for), then those that failed most recently, then the
/// rest by key; what is kept is sorted by key again.
pub fn cap_targets(targets: &mut Vec<TargetHealthReport>) -> u64 {
    if targets.len() <= MAX_REPORTED_TARGETS {
        return 0;
    }
    let omitted = targets.len() - MAX_REPORTED_TARGETS;
    targets.sort_by(|a, b| {
        (a.circuit == "closed")
            .cmp(&(b.circuit == "closed"))
            .then_with(|| b.last_failure_ms.cmp(&a.last_failure_ms))
            .then_with(|| a.key.cmp(&b.key))
    });
    targets.truncate(MAX_REPORTED_TARGETS);
    targets.sort_by(|a, b| a.key.cmp(&b.key));
    u64::try_from(omitted).unwrap_or(u64::MAX)
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
        assert!(status.targets.is_empty(), "reports before target health");
        assert_eq!(status.targets_omitted, 0);
    }

    #[test]
    fn target_health_round_trips_in_a_node_status() {
        let status: NodeStatus =
            serde_json::from_str(include_str!("../fixtures/node-status-v2-targets.json")).unwrap();
        assert_eq!(status.targets.len(), 2);
        let t = &status.targets[1];
        assert_eq!(
            (
                t.route_id.as_str(),
                t.element_id.as_str(),
                t.provider.as_str()
            ),
            ("3f1c", "m1", "workers-ai")
        );
        assert_eq!(t.model, "@cf/meta/llama-3.1-8b-instruct");
        assert_eq!((t.circuit.as_str(), t.available), ("open", false));
        assert_eq!((t.ttft_us, t.tpot_us), (None, Some(12_500)));
        assert_eq!(t.last_failure_ms, Some(1_795_000_004_000));
        assert!(t.is_of_gateway("acme", "prod"));
        assert!(!t.is_of_gateway("acme", "pro"));
        assert!(!t.is_of_gateway("acm", "e/prod"));
        assert_eq!(status.targets_omitted, 3);
        let again: NodeStatus =
            serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(again, status);
    }

    #[test]
    fn target_keys_split_into_six_parts_with_slashes_left_in_the_model() {
        let key = TargetKey::parse("acme/prod/r1/m1/workers-ai/@cf/meta/llama").unwrap();
        assert_eq!(
            key,
            TargetKey {
                account_id: "acme",
                gateway_id: "prod",
                route_id: "r1",
                element_id: "m1",
                provider: "workers-ai",
                model: "@cf/meta/llama",
            }
        );
        assert_eq!(TargetKey::parse("acme/prod/r1/m1/openai"), None);
        assert_eq!(TargetKey::parse("k"), None);
    }

    #[test]
    fn a_report_keeps_at_most_the_cap_unhealthy_targets_first() {
        let target = |i: usize, circuit: &str, last_failure_ms: Option<i64>| TargetHealthReport {
            key: format!("acme/prod/r/m/openai/model-{i:05}"),
            circuit: circuit.into(),
            last_failure_ms,
            ..TargetHealthReport::default()
        };
        let mut few: Vec<_> = (0..3).map(|i| target(i, "closed", None)).collect();
        assert_eq!(cap_targets(&mut few), 0);
        assert_eq!(few.len(), 3);

        let n = MAX_REPORTED_TARGETS + 10;
        let mut many: Vec<_> = (0..n).map(|i| target(i, "closed", None)).collect();
        many[n - 1].circuit = "open".into();
        many[n - 2].circuit = "half_open".into();
        many[n - 3].last_failure_ms = Some(5);
        assert_eq!(cap_targets(&mut many), 10);
        assert_eq!(many.len(), MAX_REPORTED_TARGETS);
        assert!(
            many.windows(2).all(|w| w[0].key < w[1].key),
            "sorted by key"
        );
        let kept = |i: usize| many.iter().any(|t| t.key == target(i, "", None).key);
        assert!(kept(n - 1) && kept(n - 2) && kept(n - 3));
        assert!(kept(0) && !kept(n - 4), "then the first keys");
    }
}
