//! Target health (issue 15, a Gatehouse extension): `GET /accounts/{account_id}/ai-gateway/gateways/{gateway_id}/targets`,
//! the circuit breaker and latencies of every provider/model behind the gateway's dynamic routes, as each data-plane
//! node reports them.
//!
//! Health is per node (each node has its own breakers, fed by its own traffic): nothing is merged into one verdict,
//! the list shows every live node's view of each target and a summary counts them. The data comes from the node
//! status reports on the config bus (the ones `GET /admin/nodes` reads), not from the database: a target appears
//! once some node holding it reports, and disappears with the reports of the nodes that held it (their TTL), or
//! when no route names it any more. Each node reports at most 1,000 targets (unhealthy ones first; see
//! `gatehouse_shared::node::MAX_REPORTED_TARGETS`).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_shared::node::{NodeStatus, TargetHealthReport, TargetKey};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope, rfc3339};
use super::request::{Caller, query_pairs, query_value};
use crate::error::Error;
use crate::store::gateways;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_targets);
}

/// One routed target of a gateway: a provider and model behind a `model` element of a dynamic route, with its
/// health on every node that reports it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TargetHealth {
    /// The route's id (see `GET .../routes`).
    pub route_id: String,
    /// The `model` element's id within the route.
    pub element_id: String,
    pub provider: String,
    pub model: String,
    /// Each live node's view of the target, by node id.
    pub nodes: Vec<NodeTargetHealth>,
    pub summary: TargetSummary,
}

/// A target's health on one node, as of the node's last report (nodes report every few seconds).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeTargetHealth {
    pub node_id: String,
    /// When the node wrote this report (RFC 3339).
    pub reported_at: String,
    /// The circuit breaker: `closed` (in rotation), `open` (out until its cooldown is over) or `half_open` (trial
    /// requests decide).
    #[schema(example = "closed")]
    pub circuit: String,
    /// Whether the node would send the target a request now (closed, half-open, or open with its cooldown over).
    pub available: bool,
    /// Mean time to first byte of the node's successful attempts over the last minute, milliseconds (to the
    /// microsecond); null without a sample in that minute.
    pub ttft_ms: Option<f64>,
    /// Mean time per output token of the node's finished answers over the last minute, milliseconds (to the
    /// microsecond); null without a sample in that minute.
    pub tpot_ms: Option<f64>,
    /// Attempts that succeeded since the node started.
    pub successes: u64,
    /// Attempts that failed (no answer, 429 or 5xx) since the node started.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The node's last failure on the target (RFC 3339); null when it never failed there.
    pub last_failure_at: Option<String>,
}

/// Counts over the nodes that report a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct TargetSummary {
    /// Nodes that report the target.
    pub nodes: u32,
    /// Nodes on which its circuit is open.
    pub open: u32,
    /// Nodes on which its circuit is half-open (trial requests).
    pub half_open: u32,
    /// Nodes that would send it a request now.
    pub available: u32,
}

fn microseconds_as_ms(us: u64) -> f64 {
    // Exact for any latency below 2^53 µs (285 years).
    us as f64 / 1000.0
}

fn node_view(status: &NodeStatus, t: &TargetHealthReport) -> NodeTargetHealth {
    NodeTargetHealth {
        node_id: status.node_id.clone(),
        reported_at: rfc3339(status.reported_at_ms),
        circuit: t.circuit.clone(),
        available: t.available,
        ttft_ms: t.ttft_us.map(microseconds_as_ms),
        tpot_ms: t.tpot_us.map(microseconds_as_ms),
        successes: t.successes,
        failures: t.failures,
        consecutive_failures: t.consecutive_failures,
        last_failure_at: t.last_failure_ms.map(rfc3339),
    }
}

/// Groups the gateway's targets across node reports: one item per target key, sorted by route id, element id,
/// provider and model, its nodes sorted by node id. `route_id` keeps only that route's targets.
pub fn aggregate(
    statuses: &[NodeStatus],
    account_id: &str,
    gateway_id: &str,
    route_id: Option<&str>,
) -> Vec<TargetHealth> {
    let mut by_target: BTreeMap<(&str, &str, &str, &str), Vec<NodeTargetHealth>> = BTreeMap::new();
    for status in statuses {
        for t in &status.targets {
            // The key is what the node built; the report's other parts are a convenience copy of it.
            let Some(key) = TargetKey::parse(&t.key) else {
                continue;
            };
            if key.account_id != account_id
                || key.gateway_id != gateway_id
                || route_id.is_some_and(|r| r != key.route_id)
            {
                continue;
            }
            by_target
                .entry((key.route_id, key.element_id, key.provider, key.model))
                .or_default()
                .push(node_view(status, t));
        }
    }
    by_target
        .into_iter()
        .map(|((route_id, element_id, provider, model), mut nodes)| {
            nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            let count = |f: &dyn Fn(&NodeTargetHealth) -> bool| {
                u32::try_from(nodes.iter().filter(|n| f(n)).count()).unwrap_or(u32::MAX)
            };
            let summary = TargetSummary {
                nodes: count(&|_| true),
                open: count(&|n| n.circuit == "open"),
                half_open: count(&|n| n.circuit == "half_open"),
                available: count(&|n| n.available),
            };
            TargetHealth {
                route_id: route_id.to_owned(),
                element_id: element_id.to_owned(),
                provider: provider.to_owned(),
                model: model.to_owned(),
                nodes,
                summary,
            }
        })
        .collect()
}

/// List the health of a gateway's routed targets on every data-plane node (Gatehouse extension).
///
/// One item per provider/model behind a `model` element of the gateway's dynamic routes that some live node
/// reports, sorted by route id, element id, provider and model. Health is per node: each item lists every node's
/// circuit breaker and recent latencies for the target, and a summary counts the nodes. Nodes report every few
/// seconds, so a change shows within one report interval.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "gatehouse-list-gateway-route-targets",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("route_id" = Option<String>, Query, description = "Only this route's targets (its id)"),
    ),
    responses(
        (status = 200, body = Envelope<Vec<TargetHealth>>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope, description = "The config bus is unreachable"),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/targets")]
async fn list_targets(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let route_id = query_value(&pairs, "route_id")
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let (account, gateway) = (account_id.clone(), gateway_id.clone());
    let found = state
        .db
        .run(move |c| gateways::get(c, &account, &gateway))
        .await?;
    if found.is_none() {
        return Err(Error::NotFound(format!("gateway '{gateway_id}' not found")));
    }
    let statuses = state.publisher.bus().node_statuses().await?;
    Ok(envelope::ok(aggregate(
        &statuses,
        &account_id,
        &gateway_id,
        route_id.as_deref(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(key: &str, circuit: &str, available: bool) -> TargetHealthReport {
        TargetHealthReport {
            key: key.into(),
            circuit: circuit.into(),
            available,
            ttft_us: Some(182_400),
            last_failure_ms: Some(1_000),
            ..TargetHealthReport::default()
        }
    }

    fn node(id: &str, targets: Vec<TargetHealthReport>) -> NodeStatus {
        NodeStatus {
            node_id: id.into(),
            reported_at_ms: 2_000,
            targets,
            ..NodeStatus::default()
        }
    }

    #[test]
    fn targets_are_grouped_per_key_across_nodes_and_filtered_by_gateway_and_route() {
        let statuses = [
            node(
                "node-b",
                vec![
                    report("acme/prod/r2/m/openai/gpt-4o", "open", false),
                    report("acme/prod/r1/m/workers-ai/@cf/meta/llama", "closed", true),
                    report("acme/prodx/r1/m/openai/gpt-4o", "closed", true),
                    report("other/prod/r1/m/openai/gpt-4o", "closed", true),
                    report("malformed", "closed", true),
                ],
            ),
            node(
                "node-a",
                vec![report("acme/prod/r2/m/openai/gpt-4o", "half_open", true)],
            ),
        ];
        let all = aggregate(&statuses, "acme", "prod", None);
        let names: Vec<_> = all
            .iter()
            .map(|t| format!("{}/{}/{}/{}", t.route_id, t.element_id, t.provider, t.model))
            .collect();
        assert_eq!(
            names,
            ["r1/m/workers-ai/@cf/meta/llama", "r2/m/openai/gpt-4o"]
        );
        let r2 = &all[1];
        assert_eq!(
            r2.nodes
                .iter()
                .map(|n| n.node_id.as_str())
                .collect::<Vec<_>>(),
            ["node-a", "node-b"]
        );
        assert_eq!(
            r2.summary,
            TargetSummary {
                nodes: 2,
                open: 1,
                half_open: 1,
                available: 1
            }
        );
        assert_eq!(r2.nodes[0].ttft_ms, Some(182.4));
        assert_eq!(r2.nodes[0].tpot_ms, None);
        assert_eq!(r2.nodes[0].reported_at, "1970-01-01T00:00:02.000Z");
        assert_eq!(
            r2.nodes[0].last_failure_at.as_deref(),
            Some("1970-01-01T00:00:01.000Z")
        );
        let only_r1 = aggregate(&statuses, "acme", "prod", Some("r1"));
        assert_eq!(only_r1.len(), 1);
        assert_eq!(only_r1[0].summary.nodes, 1);
        assert!(aggregate(&statuses, "acme", "prod", Some("r9")).is_empty());
        assert!(aggregate(&statuses, "acme", "staging", None).is_empty());
    }
}
