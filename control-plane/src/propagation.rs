//! Config propagation, the control plane's side (design §2): publishing documents after commits
//! ([`ConfigPublisher`]), the [`Reconciler`] that repairs whatever publishing missed, the consumer of
//! default-gateway requests, and the convergence check behind `GET /admin/nodes`.
//!
//! The background work runs on a runtime the caller chooses ([`spawn_background`]), not on actix's workers.

mod default_gateways;
mod publisher;
mod reconciler;

use std::time::Duration;

use gatehouse_bus::BusIndex;
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::node::NodeStatus;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use default_gateways::ensure_default_gateway;
pub use publisher::ConfigPublisher;
pub use reconciler::{DeploymentPass, GatewayPass, Reconciler, ReconcilerSettings};

/// The reconciler and the default-gateway consumer, running.
#[derive(Debug)]
pub struct BackgroundTasks {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the reconciler and the default-gateway consumer on `runtime`.
pub fn spawn_background(
    publisher: &ConfigPublisher,
    settings: ReconcilerSettings,
    runtime: &tokio::runtime::Handle,
) -> BackgroundTasks {
    let (stop, stopped) = watch::channel(false);
    let reconciler = Reconciler::new(publisher.clone(), settings);
    let tasks = vec![
        runtime.spawn(reconciler.run(stopped.clone())),
        runtime.spawn(default_gateways::run_consumer(publisher.clone(), stopped)),
    ];
    BackgroundTasks { stop, tasks }
}

impl BackgroundTasks {
    /// Signals the tasks and waits (briefly) for them to finish what they are doing.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a config propagation task did not stop within 5 s");
            }
        }
    }
}

/// Whether a node serves exactly what the bus index holds: every live gateway at (at least) its indexed version,
/// no gateway the index has deleted (or, once the index is complete, does not list), and the deployment document.
pub fn is_converged(node: &NodeStatus, index: &BusIndex) -> bool {
    if !node.ready || !node.failing.is_empty() {
        return false;
    }
    let deployment_ok = match &index.deployment {
        Some(entry) => node.deployment_version.is_some_and(|v| v >= entry.version),
        None => true,
    };
    let indexed_ok = index.gateways.iter().all(|(key, entry)| {
        let served = node.gateways.get(&key.as_path()).copied();
        match (entry.deleted, served) {
            (false, Some(v)) => v >= entry.version,
            (false, None) => false,
            (true, Some(v)) => v > entry.version,
            (true, None) => true,
        }
    });
    let nothing_extra = index.complete_at.is_none()
        || node.gateways.keys().all(|path| {
            GatewayKey::parse_path(path).is_some_and(|key| index.gateways.contains_key(&key))
        });
    deployment_ok && indexed_ok && nothing_extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_bus::IndexEntry;

    fn index(entries: &[(&str, i64, bool)], deployment: Option<i64>, complete: bool) -> BusIndex {
        BusIndex {
            gateways: entries
                .iter()
                .map(|(id, version, deleted)| {
                    (
                        GatewayKey::new("acme", *id),
                        IndexEntry {
                            version: *version,
                            hash: "h".into(),
                            deleted: *deleted,
                        },
                    )
                })
                .collect(),
            deployment: deployment.map(|version| IndexEntry {
                version,
                hash: "d".into(),
                deleted: false,
            }),
            complete_at: complete.then_some(100),
            invalid: vec![],
        }
    }

    fn node(gateways: &[(&str, i64)], deployment: Option<i64>) -> NodeStatus {
        NodeStatus {
            node_id: "n".into(),
            ready: true,
            gateways: gateways
                .iter()
                .map(|(id, v)| (format!("acme/{id}"), *v))
                .collect(),
            deployment_version: deployment,
            ..NodeStatus::default()
        }
    }

    #[test]
    fn a_node_is_converged_only_when_it_serves_what_the_index_holds() {
        let idx = index(&[("a", 5, false), ("gone", 6, true)], Some(3), true);
        let cases = [
            ("exact", node(&[("a", 5)], Some(3)), true),
            ("behind on a gateway", node(&[("a", 4)], Some(3)), false),
            ("missing a gateway", node(&[], Some(3)), false),
            (
                "still serving a deleted one",
                node(&[("a", 5), ("gone", 2)], Some(3)),
                false,
            ),
            (
                "serving one the complete index lacks",
                node(&[("a", 5), ("x", 1)], Some(3)),
                false,
            ),
            (
                "behind on the deployment",
                node(&[("a", 5)], Some(2)),
                false,
            ),
            ("without the deployment", node(&[("a", 5)], None), false),
        ];
        for (name, status, expected) in cases {
            assert_eq!(is_converged(&status, &idx), expected, "{name}");
        }
        let incomplete = index(&[("a", 5, false)], None, false);
        assert!(
            is_converged(&node(&[("a", 5), ("x", 1)], None), &incomplete),
            "an incomplete index cannot say a gateway is extra"
        );
        let mut failing = node(&[("a", 5)], Some(3));
        failing.failing.push(gatehouse_shared::node::NodeError {
            target: "acme/b".into(),
            version: Some(9),
            message: "bad".into(),
            at_ms: 0,
        });
        assert!(
            !is_converged(&failing, &idx),
            "a refused document is not converged"
        );
        let mut not_ready = node(&[("a", 5)], Some(3));
        not_ready.ready = false;
        assert!(!is_converged(&not_ready, &idx));
    }
}
