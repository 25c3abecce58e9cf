//! A gateway's deployed dynamic routes (spec §1.7, §3.12), parsed once per document: a request finds its route by
//! name in a map and walks a graph of indices (`proxy/phase/route.rs`). Each `model` element carries its targets'
//! health (from the node's `HealthTable`, which outlives documents) and its round-robin state.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::gateway::{
    CatalogModel, CatalogModelLocation, CatalogModelType, GatewaySettings,
};
use gatehouse_shared::routes::{Element, RateLimitType, RouteEntry, RouteGraph};

use crate::balance::RoundRobin;
use crate::health::{HealthTable, TargetPolicy};

/// A deployed route, ready to walk.
#[derive(Debug)]
pub struct CompiledRoute {
    pub id: String,
    pub name: String,
    pub version_id: String,
    pub graph: RouteGraph,
    /// For each element of the graph (same index): a `model` element's target states, `None` for the others.
    pub targets: Vec<Option<ElementTargets>>,
    /// For each `rate` element (same index): its counter name up to the request's partition,
    /// `route:{account}:{gateway}:{route}:{element}:`.
    pub counter_prefixes: Vec<Option<String>>,
    /// The top-level body keys the route reads (`RouteGraph::body_keys`).
    pub body_keys: Vec<String>,
}

impl CompiledRoute {
    fn new(
        gateway: &GatewayKey,
        id: String,
        name: String,
        version_id: String,
        graph: RouteGraph,
        health: &HealthTable,
    ) -> Self {
        let targets = element_targets(gateway, &id, &graph, health);
        let counter_prefixes = graph
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| {
                matches!(e, Element::Rate { .. }).then(|| {
                    format!(
                        "route:{}:{}:{id}:{}:",
                        gateway.account_id, gateway.gateway_id, graph.ids[i]
                    )
                })
            })
            .collect();
        let body_keys = graph.body_keys();
        Self {
            id,
            name,
            version_id,
            graph,
            targets,
            counter_prefixes,
            body_keys,
        }
    }
}

/// The node-side state of one `model` element's targets.
#[derive(Debug)]
pub struct ElementTargets {
    /// Same order as the element's `targets`.
    pub policies: Vec<Arc<TargetPolicy>>,
    /// Each target's `{provider}/{model}`.
    pub names: Vec<Arc<str>>,
    pub round_robin: RoundRobin,
}

/// The routes of a gateway by name. A route this node cannot read (a document from a newer control plane, say)
/// keeps its reason, so a request to it is told why instead of being served a different route or none.
#[derive(Debug, Default)]
pub struct CompiledRoutes {
    by_name: HashMap<String, Result<Arc<CompiledRoute>, String>>,
    /// Catalog models with `routing` (issue 15), by name and type: each a route of one model element.
    catalog: HashMap<(String, CatalogModelType), Arc<CompiledRoute>>,
    /// Whether some route has a `rate` element that counts cost: requests through it need their cost known.
    pub counts_cost: bool,
}

impl CompiledRoutes {
    /// `None` when the document has no route.
    pub fn compile(
        gateway: &GatewayKey,
        entries: &[RouteEntry],
        settings: &GatewaySettings,
        health: &HealthTable,
    ) -> Option<Arc<Self>> {
        let regional_only = settings.regional_only.unwrap_or(false);
        let routed_catalog: Vec<&CatalogModel> = settings
            .models
            .iter()
            .flatten()
            .filter(|m| m.routing.is_some())
            .filter(|m| !(regional_only && m.location == CatalogModelLocation::Global))
            .collect();
        if entries.is_empty() && routed_catalog.is_empty() {
            return None;
        }
        let mut routes = Self::default();
        for m in routed_catalog {
            let Some(routing) = m.routing.as_ref() else {
                continue;
            };
            match RouteGraph::single_model(&m.target, routing, &|_| true) {
                Ok(graph) => {
                    let id = format!("catalog:{}", m.name);
                    let route = CompiledRoute::new(
                        gateway,
                        id,
                        m.name.clone(),
                        String::new(),
                        graph,
                        health,
                    );
                    routes
                        .catalog
                        .insert((m.name.clone(), m.model_type), Arc::new(route));
                }
                // The control plane checked it; a node that cannot read it serves the name's `target` alone.
                Err(e) => tracing::warn!(model = %m.name, error = %e, "catalog routing not served"),
            }
        }
        for entry in entries {
            // The control plane checked providers against the account's; a node routes what it was given.
            let compiled = RouteGraph::parse(&entry.elements, &|_| true)
                .map(|graph| {
                    routes.counts_cost |= graph.elements.iter().any(|e| {
                        matches!(
                            e,
                            Element::Rate {
                                limit_type: RateLimitType::Cost,
                                ..
                            }
                        )
                    });
                    Arc::new(CompiledRoute::new(
                        gateway,
                        entry.id.clone(),
                        entry.name.clone(),
                        entry.version_id.clone(),
                        graph,
                        health,
                    ))
                })
                .map_err(|e| {
                    tracing::warn!(route = %entry.name, version = %entry.version_id, error = %e, "route not served");
                    e.to_string()
                });
            routes.by_name.insert(entry.name.clone(), compiled);
        }
        Some(Arc::new(routes))
    }

    pub fn get(&self, name: &str) -> Option<&Result<Arc<CompiledRoute>, String>> {
        self.by_name.get(name)
    }

    /// The catalog model `name` of `model_type`, when it has `routing`.
    pub fn catalog(&self, name: &str, model_type: CatalogModelType) -> Option<&Arc<CompiledRoute>> {
        self.catalog.get(&(name.to_owned(), model_type))
    }

    /// Every compiled route (for the prober).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.by_name
            .values()
            .filter_map(|r| r.as_ref().ok())
            .chain(self.catalog.values())
    }
}

/// A route or element id as one segment of a health key (`TargetKey::parse` splits on `/`; ids are the client's).
fn key_segment(id: &str) -> std::borrow::Cow<'_, str> {
    if id.contains(['/', '%']) {
        id.replace('%', "%25").replace('/', "%2F").into()
    } else {
        id.into()
    }
}

/// Health is keyed by account, gateway, route, element and target, so a new version of a route keeps the health
/// of the targets it still names.
fn element_targets(
    gateway: &GatewayKey,
    route_id: &str,
    graph: &RouteGraph,
    health: &HealthTable,
) -> Vec<Option<ElementTargets>> {
    graph
        .elements
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Element::Model { model, .. } => Some(ElementTargets {
                policies: model
                    .targets
                    .iter()
                    .map(|t| {
                        Arc::new(TargetPolicy {
                            health: health.target(&format!(
                                "{}/{}/{}/{}/{}/{}",
                                gateway.account_id,
                                gateway.gateway_id,
                                key_segment(route_id),
                                key_segment(&graph.ids[i]),
                                t.provider,
                                t.model
                            )),
                            breaker: model.breaker,
                            retry_on: model.retry_on.clone(),
                            fallback_on: model.fallback_on.clone(),
                        })
                    })
                    .collect(),
                names: model.targets.iter().map(|t| Arc::from(t.name())).collect(),
                round_robin: RoundRobin::default(),
            }),
            _ => None,
        })
        .collect()
}
