//! The node's status report (design §2: `{node_id, versions applied, last error, at}` with a TTL): what failed is
//! collected on a [`StatusBoard`] as documents are applied, and [`run_reporter`] writes it to the bus after changes
//! and on a timer. Each report also carries the node's target health (issue 15), at most
//! [`gatehouse_shared::node::MAX_REPORTED_TARGETS`] targets; it is current as of each write (a circuit that opens
//! shows in the next periodic report, not at once).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gatehouse_bus::ConfigBus;
use gatehouse_shared::node::{NodeError, NodeStatus, cap_targets};
use pingora::server::ShutdownWatch;
use tokio::sync::Notify;

use crate::readiness::ReadinessHandle;
use crate::snapshot::ConfigStore;

/// Reports closer together than this are merged: a burst of applied documents costs one write.
const MIN_REPORT_SPACING: Duration = Duration::from_millis(25);

/// Failures and the identity of this node, shared by the applier (writes) and the reporter (reads).
#[derive(Debug)]
pub(crate) struct StatusBoard {
    node_id: String,
    started_at_ms: i64,
    /// The node's log counters, shown in every report.
    logs: crate::logs::LogCounterSource,
    state: Mutex<Failures>,
    changed: Notify,
}

/// What `/metrics` shows of a node's failures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureSummary {
    pub failing: usize,
    pub last_error_at_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct Failures {
    last_error: Option<NodeError>,
    /// target → the refused version and why.
    failing: BTreeMap<String, NodeError>,
}

impl StatusBoard {
    pub(crate) fn new(node_id: String, logs: crate::logs::LogCounterSource) -> Self {
        Self {
            node_id,
            started_at_ms: now_ms(),
            logs,
            state: Mutex::new(Failures::default()),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, Failures> {
        // Each critical section is a map insert or removal; a poisoned lock holds consistent data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A document was refused: it stays failing (and is not fetched again) until a newer version applies.
    pub(crate) fn refuse(&self, target: &str, version: i64, message: String) {
        tracing::warn!(%target, version, %message, "config document refused; the previous version stays in service");
        let error = NodeError {
            target: target.to_owned(),
            version: Some(version),
            message,
            at_ms: now_ms(),
        };
        let mut state = self.state();
        state.failing.insert(target.to_owned(), error.clone());
        state.last_error = Some(error);
        drop(state);
        self.changed();
    }

    /// Whether this exact version of `target` was refused already.
    pub(crate) fn is_refused(&self, target: &str, version: i64) -> bool {
        self.state()
            .failing
            .get(target)
            .is_some_and(|e| e.version == Some(version))
    }

    /// `target` applied (or was removed): it is no longer failing.
    pub(crate) fn applied(&self, target: &str) {
        let removed = self.state().failing.remove(target).is_some();
        if removed {
            self.changed();
        }
    }

    /// The bus could not be read; kept as the last error (a node that cannot reach the bus cannot report it
    /// either, but it will once the bus is back).
    pub(crate) fn bus_failed(&self, message: String) {
        self.state().last_error = Some(NodeError {
            target: "bus".into(),
            version: None,
            message,
            at_ms: now_ms(),
        });
    }

    /// Something changed that the next report should show soon.
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// How many documents are refused now, and when the last failure was (for `/metrics`).
    pub(crate) fn failures(&self) -> FailureSummary {
        let state = self.state();
        FailureSummary {
            failing: state.failing.len(),
            last_error_at_ms: state.last_error.as_ref().map(|e| e.at_ms),
        }
    }

    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(crate) fn report(&self, config: &ConfigStore, ready: bool) -> NodeStatus {
        let snapshot = config.load();
        let mut targets = config.health().reports();
        let targets_omitted = cap_targets(&mut targets);
        let state = self.state();
        NodeStatus {
            node_id: self.node_id.clone(),
            started_at_ms: self.started_at_ms,
            reported_at_ms: now_ms(),
            ready,
            gateways: snapshot
                .gateway_versions()
                .into_iter()
                .map(|(key, version)| (key.as_path(), version))
                .collect(),
            deployment_version: snapshot.deployment.as_ref().map(|d| d.version),
            last_error: state.last_error.clone(),
            failing: state.failing.values().cloned().collect(),
            logs: self.logs.snapshot(),
            targets,
            targets_omitted,
        }
    }
}

/// Writes the status after every change (merged over [`MIN_REPORT_SPACING`]) and every `interval`, each time with
/// `ttl`; removes it when the node shuts down.
pub(crate) async fn run_reporter(
    bus: Arc<dyn ConfigBus>,
    board: Arc<StatusBoard>,
    config: Arc<ConfigStore>,
    readiness: ReadinessHandle,
    interval: Duration,
    ttl: Duration,
    mut shutdown: ShutdownWatch,
) {
    let mut reporting_failed = false;
    loop {
        let report = board.report(&config, readiness.is_ready());
        match bus.report_node_status(&report, ttl).await {
            Ok(()) => reporting_failed = false,
            Err(error) => {
                // Logged once per outage, not once per attempt.
                if !reporting_failed {
                    tracing::warn!(%error, "could not report node status");
                }
                reporting_failed = true;
            }
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            () = board.changed.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        tokio::time::sleep(MIN_REPORT_SPACING).await;
    }
    if let Err(error) = bus.remove_node_status(board.node_id()).await {
        tracing::debug!(%error, "could not remove node status at shutdown");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use gatehouse_shared::node::MAX_REPORTED_TARGETS;

    use super::*;

    #[test]
    fn reports_carry_target_health_up_to_the_cap() {
        let board = StatusBoard::new("node-a".into(), crate::logs::LogCounterSource::default());
        let config = ConfigStore::new(None);
        let health = config.health();
        health
            .target("acme/prod/r1/m1/openai/gpt-4o-mini")
            .record(false, None, None);
        let report = board.report(&config, true);
        assert_eq!(report.targets.len(), 1);
        let target = &report.targets[0];
        assert_eq!(
            (
                target.route_id.as_str(),
                target.provider.as_str(),
                target.failures
            ),
            ("r1", "openai", 1)
        );
        assert_eq!(report.targets_omitted, 0);

        for i in 0..MAX_REPORTED_TARGETS + 4 {
            health.target(&format!("acme/prod/r2/m1/openai/model-{i:05}"));
        }
        let report = board.report(&config, true);
        assert_eq!(report.targets.len(), MAX_REPORTED_TARGETS);
        assert_eq!(report.targets_omitted, 5);
        assert!(
            report
                .targets
                .iter()
                .any(|t| t.key == "acme/prod/r1/m1/openai/gpt-4o-mini"),
            "a target that failed is kept before the quiet ones"
        );
    }
}
