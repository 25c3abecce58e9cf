//! Routing: a `/compat` request for `model: "dynamic/{name}"` walks the gateway's deployed route of that name
//! (spec §3.12) and comes out with the models to try, in fallback order; planning then builds one step per model
//! (`plan/compat.rs`) and the attempt loop tries them as it tries a universal request's steps.
//!
//! The walk, from `start`: a `conditional` takes `true` or `false` by its condition over the request's metadata,
//! body and headers; a `percentage` takes the bucket of the request's split point (a hash of the request id and the
//! element id, so one request always takes the same branch); a `rate` counts the request (or reads the cost spent)
//! under its key in the shared limit store and takes `success` within the limit, `fallback` beyond it; a `model`
//! adds its targets in the order its balancing chose (`balance.rs`: weighted, least latency or priority, sticky,
//! targets with an open circuit left out) and the walk continues at its `fallback` output (its `success` leads to
//! `end`, which the graph's validation guarantees). The walk ends at `end` or at an output that is not connected.
//!
//! Decided here ([inferred], in ARCHITECTURE.md): the whole walk happens before the first attempt, so a `rate`
//! element on a fallback path counts the request even when the first model answers; a `rate` window is sliding; a
//! route that ends before any model is a 400 (a 429 when a `rate` element without a `fallback` refused it); the
//! limit store failing admits the request, as every other limit does.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use gatehouse_bus::limits::{Admission, LimitStore, SpendWindow, WindowTechnique};
use gatehouse_shared::gateway::CatalogModelType;
use gatehouse_shared::routes::condition::Fields;
use gatehouse_shared::routes::{
    Balance, Element, FieldPath, FieldRoot, RateKey, RateLimitType, split_point,
};
use http::StatusCode;
use pingora::http::RequestHeader;
use serde_json::{Map, Value};

use crate::balance::{self, Candidate};
use crate::dialect::ProviderError;
use crate::error::{AiGatewayError, code};
use crate::health::TargetPolicy;
use crate::snapshot::CompiledGateway;
use crate::snapshot::routes::CompiledRoute;

/// The `model` prefix that names a route.
pub(crate) const DYNAMIC_PREFIX: &str = "dynamic/";

/// A model the walk chose.
#[derive(Debug, Clone)]
pub(crate) struct RoutedModel {
    /// `{provider}/{model}`, as `/compat` names models.
    pub target: Arc<str>,
    /// Attempts beyond the first on this model.
    pub retries: u32,
    /// Time to the first byte, when the element sets one.
    pub timeout: Option<Duration>,
    /// The target's health and fallback statuses.
    pub policy: Option<Arc<TargetPolicy>>,
}

/// Where the walk went and what it chose.
#[derive(Debug)]
pub(crate) struct RoutePlan {
    pub route: Arc<CompiledRoute>,
    pub models: Vec<RoutedModel>,
    /// The elements walked, in order (indices into the route's graph).
    pub path: Vec<usize>,
    /// The cost windows of the `rate` elements the request passed, charged its cost afterwards.
    pub cost_windows: Vec<SpendWindow>,
}

impl RoutePlan {
    /// The path as element ids joined by `>`, for logs.
    pub(crate) fn trace(&self) -> String {
        let ids = &self.route.graph.ids;
        let mut out = String::new();
        for (n, &i) in self.path.iter().enumerate() {
            if n > 0 {
                out.push('>');
            }
            out.push_str(&ids[i]);
        }
        out
    }
}

/// What a route's conditions, rate keys and sticky fields read of the request.
pub(crate) struct RequestFields<'a> {
    header: &'a RequestHeader,
    body: &'a [u8],
    /// The top-level body keys the route reads: only they are parsed out of the body.
    body_keys: &'a [String],
    metadata: Option<&'a str>,
    parsed_body: OnceLock<Value>,
    parsed_metadata: OnceLock<Value>,
}

impl<'a> RequestFields<'a> {
    pub(crate) fn new(header: &'a RequestHeader, body: &'a [u8], body_keys: &'a [String]) -> Self {
        let metadata = header
            .headers
            .get(crate::proxy::controls::METADATA)
            .and_then(|v| v.to_str().ok());
        Self {
            header,
            body,
            body_keys,
            metadata,
            parsed_body: OnceLock::new(),
            parsed_metadata: OnceLock::new(),
        }
    }
}

impl Fields for RequestFields<'_> {
    fn test_field(&self, path: &FieldPath, test: &mut dyn FnMut(Option<&Value>) -> bool) -> bool {
        match path.root {
            FieldRoot::Headers => {
                let value = self
                    .header
                    .headers
                    .get(path.segments[0].as_str())
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()));
                test(value.as_ref())
            }
            // Parsed only when a condition or key reads them, and once; of the body only the keys the route reads
            // (a chat body's `messages` are skipped, not built).
            FieldRoot::Body => test(
                path.descend(
                    self.parsed_body
                        .get_or_init(|| pick_top_level(self.body, self.body_keys)),
                ),
            ),
            FieldRoot::Metadata => test(path.descend(self.parsed_metadata.get_or_init(|| {
                Value::Object(
                    self.metadata
                        .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
                        .unwrap_or_default(),
                )
            }))),
        }
    }
}

impl RequestFields<'_> {
    /// The field's value as text: a string as it is, another value as its JSON, `""` when absent or null.
    fn text(&self, path: &FieldPath) -> String {
        let mut out = String::new();
        self.test_field(path, &mut |v| {
            match v {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => out = other.to_string(),
            }
            true
        });
        out
    }
}

/// The body's top-level `keys` as an object (`Null` when the body is not a JSON object): one pass that skips every
/// other value without building it.
fn pick_top_level(body: &[u8], keys: &[String]) -> Value {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    struct Pick<'k>(&'k [String]);
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<Key<'de>>()? {
                match self.0.iter().find(|k| **k == *key.0) {
                    Some(k) => {
                        out.insert(k.clone(), map.next_value::<Value>()?);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }
    impl<'de> DeserializeSeed<'de> for Pick<'_> {
        type Value = Map<String, Value>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    /// A key, borrowed from the body unless it holds an escape.
    struct Key<'de>(std::borrow::Cow<'de, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                    Ok(Key(std::borrow::Cow::Borrowed(s)))
                }
                fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                    Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }
    if keys.is_empty() {
        return Value::Null;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    Pick(keys)
        .deserialize(&mut de)
        .map_or(Value::Null, Value::Object)
}

/// Walks the route `name` of `gateway` for one request.
pub(crate) async fn plan(
    limits: &dyn LimitStore,
    gateway: &CompiledGateway,
    name: &str,
    request: (&RequestHeader, &[u8]),
    request_id: &str,
) -> Result<RoutePlan, AiGatewayError> {
    let route = match gateway.routes.as_ref().and_then(|r| r.get(name)) {
        None => return Err(unknown_route(name)),
        Some(Err(reason)) => {
            return Err(openai_refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "route_unavailable",
                format!("The route '{name}' cannot be served by this node: {reason}"),
                None,
            ));
        }
        Some(Ok(route)) => Arc::clone(route),
    };
    walk(limits, route, request, request_id).await
}

/// The route a plain `model` name stands for on `/compat`: a catalog model with `routing` (issue 15), of the type
/// the operation needs (`rest` is the path after `compat/`).
pub(crate) fn catalog_route(
    gateway: &CompiledGateway,
    model: &str,
    rest: &str,
) -> Option<Arc<CompiledRoute>> {
    let model_type = if rest.trim_end_matches('/').ends_with("embeddings") {
        CatalogModelType::Embedding
    } else {
        CatalogModelType::Chat
    };
    gateway
        .routes
        .as_ref()?
        .catalog(model, model_type)
        .map(Arc::clone)
}

/// Walks `route` for one request.
pub(crate) async fn walk(
    limits: &dyn LimitStore,
    route: Arc<CompiledRoute>,
    (header, body): (&RequestHeader, &[u8]),
    request_id: &str,
) -> Result<RoutePlan, AiGatewayError> {
    let fields = &RequestFields::new(header, body, &route.body_keys);
    let graph = &route.graph;
    let mut models = Vec::new();
    let mut path = Vec::with_capacity(8);
    let mut cost_windows = Vec::new();
    let mut refusal = None;
    let mut at = Some(graph.start);
    // The graph is acyclic (checked when it was parsed); the bound only makes that visible here.
    while let Some(i) = at.take() {
        if path.len() > graph.elements.len() {
            break;
        }
        path.push(i);
        at = match &graph.elements[i] {
            Element::Start { next } => Some(*next),
            Element::Conditional {
                condition,
                on_true,
                on_false,
            } => {
                if condition.matches(fields) {
                    *on_true
                } else {
                    *on_false
                }
            }
            Element::Percentage { buckets } => {
                Element::percentage_target(buckets, split_point(request_id, &graph.ids[i]))
            }
            Element::Rate {
                key: rate_key,
                limit,
                limit_type,
                window_seconds,
                success,
                fallback,
            } => {
                // The counter's name: the element's prefix (built with the route) and the request's partition.
                let mut counter = route.counter_prefixes[i].clone().unwrap_or_default();
                push_partition(&mut counter, rate_key, fields);
                let window = Duration::from_secs_f64(*window_seconds);
                let within = match limit_type {
                    RateLimitType::Count => count_within(limits, &counter, *limit, window).await,
                    RateLimitType::Cost => {
                        let w = SpendWindow {
                            key: counter,
                            window,
                            technique: WindowTechnique::Sliding,
                        };
                        let within = cost_within(limits, &w, *limit).await;
                        if within.is_ok() {
                            cost_windows.push(w);
                        }
                        within
                    }
                };
                match within {
                    Ok(()) => *success,
                    Err(retry_after) => {
                        if fallback.is_none() {
                            refusal = Some(rate_refused(
                                &route,
                                &graph.ids[i],
                                *limit,
                                *limit_type,
                                window,
                                retry_after,
                            ));
                        }
                        *fallback
                    }
                }
            }
            Element::Model {
                model, fallback, ..
            } => {
                let state = route.targets[i].as_ref();
                let sticky = model
                    .sticky
                    .as_ref()
                    .map(|path| balance::sticky_hash(&fields.text(path)));
                let chosen = match state {
                    Some(state) => {
                        let latencies = matches!(
                            model.balance,
                            Balance::LeastLatency { .. }
                                | Balance::Priority {
                                    sla_tpot_ms: Some(_)
                                }
                        );
                        let candidates: Vec<Candidate> = model
                            .targets
                            .iter()
                            .zip(&state.policies)
                            .map(|(t, p)| Candidate {
                                weight: t.weight,
                                priority: t.priority,
                                health: p.health.view_with(latencies),
                            })
                            .collect();
                        balance::order(
                            &candidates,
                            &model.balance,
                            &state.round_robin,
                            sticky.filter(|_| candidates.len() > 1),
                            fallback.is_none(),
                        )
                    }
                    None => (0..model.targets.len()).collect(),
                };
                for t in chosen {
                    models.push(RoutedModel {
                        target: match state {
                            Some(s) => Arc::clone(&s.names[t]),
                            None => Arc::from(model.targets[t].name()),
                        },
                        retries: model.retries,
                        timeout: (model.timeout_ms > 0)
                            .then(|| Duration::from_millis(model.timeout_ms)),
                        policy: state.map(|s| Arc::clone(&s.policies[t])),
                    });
                }
                *fallback
            }
            Element::End => None,
        };
    }
    let plan = RoutePlan {
        route,
        models,
        path,
        cost_windows,
    };
    if plan.models.is_empty() {
        return Err(refusal.unwrap_or_else(|| {
            openai_refusal(
                StatusCode::BAD_REQUEST,
                "route_without_model",
                format!(
                    "The route '{}' chose no model for this request (path: {})",
                    plan.route.name,
                    plan.trace()
                ),
                None,
            )
        }));
    }
    Ok(plan)
}

/// Appends what a `rate` element's counter is partitioned by: a string field's value, another field's JSON,
/// nothing when absent; a long value (or one with the separator `:`) as its hash, so a counter name stays short.
fn push_partition(counter: &mut String, key: &RateKey, fields: &RequestFields<'_>) {
    let RateKey::Field(path) = key else {
        return;
    };
    let text = fields.text(path);
    if text.len() <= 128 && !text.contains(':') {
        counter.push_str(&text);
        return;
    }
    use sha2::{Digest, Sha256};
    counter.push_str("sha256-");
    counter.push_str(&hex::encode(&Sha256::digest(text.as_bytes())[..16]));
}

/// Counts the request under `counter` if it stays within `limit` per `window`; `Err` carries when a request could
/// pass again.
async fn count_within(
    limits: &dyn LimitStore,
    counter: &str,
    limit: f64,
    window: Duration,
) -> Result<(), Duration> {
    match limits
        .admit_request(
            counter,
            limit.floor() as u64,
            window,
            WindowTechnique::Sliding,
        )
        .await
    {
        Ok(Admission::Admitted) => Ok(()),
        Ok(Admission::Limited { retry_after }) => Err(retry_after),
        Err(error) => {
            tracing::warn!(%error, "route rate store failed; admitting the request");
            Ok(())
        }
    }
}

/// Whether the cost spent in `window` is below `limit_usd`.
async fn cost_within(
    limits: &dyn LimitStore,
    window: &SpendWindow,
    limit_usd: f64,
) -> Result<(), Duration> {
    match limits.spent(std::slice::from_ref(window)).await {
        Ok(spent)
            if spent.first().copied().unwrap_or(0)
                >= gatehouse_bus::limits::nano_usd(Some(limit_usd)) =>
        {
            Err(window.window)
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, "route spend store failed; admitting the request");
            Ok(())
        }
    }
}

fn rate_refused(
    route: &CompiledRoute,
    element: &str,
    limit: f64,
    limit_type: RateLimitType,
    window: Duration,
    retry_after: Duration,
) -> AiGatewayError {
    let what = match limit_type {
        RateLimitType::Count => format!("{limit} requests"),
        RateLimitType::Cost => format!("${limit}"),
    };
    openai_refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        format!(
            "Rate limit reached on route '{}' (element '{element}': {what} per {} s)",
            route.name,
            window.as_secs_f64()
        ),
        Some(retry_after),
    )
}

/// A request to a route the gateway does not have: OpenAI's 404 for an unknown model.
fn unknown_route(name: &str) -> AiGatewayError {
    openai_refusal(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!("The route 'dynamic/{name}' does not exist on this gateway"),
        None,
    )
}

/// A refusal in OpenAI's shape (the client of `/compat` is an OpenAI SDK), with `model` as the parameter at fault.
fn openai_refusal(
    status: StatusCode,
    error_code: &str,
    message: String,
    retry_after: Option<Duration>,
) -> AiGatewayError {
    let mut e = ProviderError::new(status.as_u16(), message);
    e.code = Some(error_code.to_owned());
    e.param = Some("model".to_owned());
    AiGatewayError {
        code: if status == StatusCode::TOO_MANY_REQUESTS {
            code::RATE_LIMITED
        } else {
            code::BAD_REQUEST
        },
        retry_after_secs: retry_after.map(|d| d.as_millis().div_ceil(1000).max(1) as u64),
        ..AiGatewayError::openai(e)
    }
}

#[cfg(test)]
mod tests;
