//! The wire shapes of dynamic routing (spec §1.7): routes, versions, deployments and their envelopes.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `"true"` or `"false"`: Cloudflare sends a version's `active` flag as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Active {
    #[serde(rename = "true")]
    True,
    #[serde(rename = "false")]
    False,
}

impl From<bool> for Active {
    fn from(b: bool) -> Self {
        if b { Active::True } else { Active::False }
    }
}

/// One element of a route's graph (spec §1.7, §3.12), documented for readers; the API stores elements as they
/// are sent and checks them with `gatehouse_shared::routes::RouteGraph::parse`.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteElement {
    /// Unique in the route.
    pub id: String,
    #[serde(rename = "type")]
    pub element_type: RouteElementType,
    /// By type. `conditional`: `{conditions}`, a MongoDB-like query over `metadata.*`, `body.*`, `headers.*`
    /// (`$eq $ne $gt $gte $lt $lte $in $nin $exists $not $and $or $nor`). `rate`: `{key, limit, limitType:
    /// "count"|"cost", window}` (`key` a field path whose value partitions the counter; `window` seconds; a cost
    /// limit in USD). `model`: `{provider, model, retries (0–5), timeout (ms to the first byte)}`, and Gatehouse's
    /// extensions: `targets` [{provider, model, weight, priority}] (up to 16; `provider`/`model` then optional and
    /// one of them), `balance` (`weighted` | `least_latency` with `latency_tolerance` | `priority` with
    /// `sla_tpot_ms`), `sticky` (a field path keeping a session on one target), `circuit_breaker` ({failures,
    /// error_rate, min_requests, window, cooldown} or false), `retry_on` and `fallback_on` (statuses; defaults
    /// 429, 500, 502, 503 and 401, 403, 404, 429, 500, 502, 503), `health_check` ({interval} seconds).
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Value>,
    /// `{label: {"elementId": id}}`. start: `next`; conditional: `true`, `false`; percentage: up to five weights
    /// such as `"25%"` and `else`; rate and model: `success`, `fallback`; end: none.
    #[schema(value_type = Object)]
    pub outputs: Value,
}

/// The kinds of route element.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteElementType {
    Start,
    Conditional,
    Percentage,
    Rate,
    Model,
    End,
}

/// A deployment: which version went live, and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteDeployment {
    #[schema(format = "uuid")]
    pub deployment_id: String,
    #[schema(format = "uuid")]
    pub version_id: String,
    #[schema(format = "date-time")]
    pub created_at: String,
    pub comment: Option<String>,
}

/// A version of a route's element graph.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteVersion {
    #[schema(format = "uuid")]
    pub version_id: String,
    /// `"true"` for the deployed version.
    pub active: Active,
    #[schema(format = "date-time")]
    pub created_at: String,
    /// The element graph, serialized as JSON.
    pub data: String,
    /// Whether the graph passes validation now (a custom provider it names may have been deleted since).
    pub is_valid: bool,
    pub comment: Option<String>,
}

/// A dynamic route, with its deployed version's elements.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Route {
    #[schema(format = "uuid")]
    pub id: String,
    pub account_tag: String,
    /// Invoked as `model: "dynamic/<name>"`.
    pub name: String,
    pub gateway_id: String,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
    /// The deployed version's elements, as they were sent.
    #[schema(value_type = Vec<RouteElement>)]
    pub elements: Value,
    pub deployment: RouteDeployment,
    pub version: RouteVersion,
}

/// One version with its route's fields (`GET .../versions/{version_id}`, `POST .../versions`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteVersionDetail {
    /// The route's id.
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    pub gateway_id: String,
    /// When the version was created.
    #[schema(format = "date-time")]
    pub created_at: String,
    /// When the route last changed.
    #[schema(format = "date-time")]
    pub modified_at: String,
    /// This version's elements, as they were sent.
    #[schema(value_type = Vec<RouteElement>)]
    pub elements: Value,
    #[schema(format = "uuid")]
    pub version_id: String,
    pub active: Active,
    /// The element graph, serialized as JSON.
    pub data: String,
    pub is_valid: bool,
    pub comment: Option<String>,
}

/// `{success, data: {routes, page, per_page, order_by, order_by_direction}}`: the list envelope of dynamic routing
/// (no `result`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteListEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub data: RouteList,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    pub routes: Vec<Route>,
    pub page: i64,
    pub per_page: i64,
    pub order_by: String,
    pub order_by_direction: String,
    /// Items on this page.
    pub count: i64,
    /// Items across all pages.
    pub total_count: i64,
}

/// `{success, route}`: PATCH's envelope (no `result`; Terraform reads `route` at the top level).
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteUpdateEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub route: Route,
}

/// The create body.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateRouteBody {
    /// 1..64 letters, digits, `_`, `-` and `.`; unique in the gateway.
    pub name: String,
    /// The element graph: `{id, type, properties?, outputs: {label: {elementId}}}` per element (spec §1.7).
    #[schema(value_type = Vec<RouteElement>)]
    pub elements: Value,
    /// Noted on the first version and its deployment.
    pub comment: Option<String>,
}

/// The PATCH body: `name` and/or `elements` (a new version, deployed at once).
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateRouteBody {
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<RouteElement>>)]
    pub elements: Option<Value>,
    pub comment: Option<String>,
}
