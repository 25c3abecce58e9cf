//! Dynamic routes (spec §1.7, §3.12): the element graph as the management API carries it, its validation, and what
//! a node needs to run it. Both planes parse a graph with [`RouteGraph::parse`], so a version the API accepted is
//! one every node can execute, and the API's 400 names the same element and problem a node would trip on.
//!
//! The wire shape is Cloudflare's: `{id, type, properties?, outputs: {label: {elementId}}}` per element, with
//! `elementId` in camelCase. The API stores the elements as the client sent them (Terraform compares its own
//! normalised JSON); this module reads them, it never rewrites them.
//!
//! Choices the spec leaves to us ([inferred], also in ARCHITECTURE.md):
//! - Only `start.next` is a required output. A path that reaches a missing output, or `end` before any model
//!   answered, ends the request with an error (after the last model's error when one failed).
//! - `percentage` labels are weights: `"25%"` or `"25"` (0–100), at most five of them, plus `else`, which takes
//!   what the labels leave of 100. Without `else` the labels are relative shares (normalised to their sum).
//! - `rate.key` is a field path (`metadata.user_id`, `headers.x-team`, `body.user`) whose value partitions the
//!   counter; any other string is one counter for the whole route. A request without the field counts under `""`.
//! - `model.timeout` is milliseconds to the first byte (0 = the gateway's own); `model.retries` 0–5 retries of
//!   the same model before its `fallback` output is taken.
//! - Once a model answered, its `success` output is only followed to check that the route ends there: the answer
//!   is the response. A `success` output that reaches another model is refused at validation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod condition;
pub mod model;

pub use condition::{Condition, ConditionError, FieldPath, FieldRoot};
pub use model::{Balance, BreakerSettings, HealthCheck, ModelElement, ModelTarget};

/// At most this many labelled outputs on a `percentage` element (spec §3.12), `else` aside.
pub const MAX_PERCENTAGE_OUTPUTS: usize = 5;
/// At most this many retries on a `model` element (the gateway-level `retry_max_attempts` cap, spec §3.4).
pub const MAX_MODEL_RETRIES: u32 = 5;
/// At most this many elements in a graph: enough for any hand-made route, bounded so validation stays cheap.
pub const MAX_ELEMENTS: usize = 256;
/// The `percentage` output label that takes the rest.
pub const ELSE: &str = "else";

/// A deployed route as the config document carries it to the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub id: String,
    pub name: String,
    pub version_id: String,
    /// The deployed version's elements, as stored.
    pub elements: Value,
}

/// An output's target on the wire: `{"elementId": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "elementId")]
    pub element_id: String,
}

/// One element as the wire carries it. Parsed leniently (unknown fields are kept by the stored JSON and ignored
/// here), checked by [`RouteGraph::parse`].
#[derive(Debug, Clone, Deserialize)]
struct WireElement {
    id: Value,
    #[serde(rename = "type")]
    kind: Value,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    outputs: Option<Value>,
}

/// What a `rate` element counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitType {
    /// Requests per window.
    Count,
    /// USD per window.
    Cost,
}

/// An element, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Start {
        next: usize,
    },
    Conditional {
        condition: Condition,
        on_true: Option<usize>,
        on_false: Option<usize>,
    },
    Percentage {
        /// Cumulative upper bounds in [0, 1] with their target, ascending; the last bound is 1.
        buckets: Vec<(f64, Option<usize>)>,
    },
    Rate {
        key: RateKey,
        limit: f64,
        limit_type: RateLimitType,
        window_seconds: f64,
        success: Option<usize>,
        fallback: Option<usize>,
    },
    Model {
        model: ModelElement,
        success: Option<usize>,
        fallback: Option<usize>,
    },
    End,
}

/// What partitions a `rate` element's counter.
#[derive(Debug, Clone, PartialEq)]
pub enum RateKey {
    /// The value of a request field (its JSON text; `""` when absent).
    Field(FieldPath),
    /// One counter for the route (a key that is not a field path).
    Constant(String),
}

/// A validated element graph, elements addressed by index.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteGraph {
    /// The element ids, in wire order (index = position in `elements`).
    pub ids: Vec<String>,
    pub elements: Vec<Element>,
    pub start: usize,
}

/// Why a graph is invalid, naming the element when one is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub element: Option<String>,
    pub message: String,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.element {
            Some(id) => write!(f, "element '{id}': {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RouteError {}

fn graph_error(message: impl Into<String>) -> RouteError {
    RouteError {
        element: None,
        message: message.into(),
    }
}

impl RouteGraph {
    /// Parses and validates `elements` (the wire array). `known_provider` says whether a `model` element's provider
    /// slug can be routed (built-in slugs and the account's `custom-{slug}` providers).
    pub fn parse(
        elements: &Value,
        known_provider: &dyn Fn(&str) -> bool,
    ) -> Result<Self, RouteError> {
        let Value::Array(items) = elements else {
            return Err(graph_error("elements must be an array of elements"));
        };
        if items.is_empty() {
            return Err(graph_error("elements must not be empty"));
        }
        if items.len() > MAX_ELEMENTS {
            return Err(graph_error(format!(
                "a route has at most {MAX_ELEMENTS} elements"
            )));
        }
        let mut wire = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let w: WireElement = serde_json::from_value(item.clone()).map_err(|e| {
                graph_error(format!(
                    "elements[{i}] is not an element (id, type, outputs): {e}"
                ))
            })?;
            let id = match &w.id {
                Value::String(s) if !s.trim().is_empty() => s.clone(),
                _ => {
                    return Err(graph_error(format!(
                        "elements[{i}].id must be a non-empty string"
                    )));
                }
            };
            if index.insert(id.clone(), i).is_some() {
                return Err(RouteError {
                    element: Some(id),
                    message: "the id is used by two elements".into(),
                });
            }
            ids.push(id);
            wire.push(w);
        }
        let mut parsed = Vec::with_capacity(wire.len());
        let mut start = None;
        for (i, w) in wire.iter().enumerate() {
            let id = &ids[i];
            let fail = |message: String| RouteError {
                element: Some(id.clone()),
                message,
            };
            let outputs = Outputs::read(w.outputs.as_ref(), &index).map_err(fail)?;
            let props = Props(w.properties.as_ref());
            let kind = w.kind.as_str().unwrap_or_default();
            let element = match kind {
                "start" => {
                    if start.replace(i).is_some() {
                        return Err(fail("a route has exactly one start element".into()));
                    }
                    outputs.only(&["next"]).map_err(fail)?;
                    let next = outputs
                        .get("next")
                        .ok_or_else(|| fail("a start element needs outputs.next".into()))?;
                    Element::Start { next }
                }
                "conditional" => {
                    outputs.only(&["true", "false"]).map_err(fail)?;
                    let raw = props
                        .value("conditions")
                        .or_else(|| props.value("condition"));
                    let condition = match raw {
                        None | Some(Value::Null) => {
                            return Err(fail(
                                "a conditional element needs properties.conditions".into(),
                            ));
                        }
                        Some(v) => Condition::compile(v).map_err(|e| fail(e.to_string()))?,
                    };
                    Element::Conditional {
                        condition,
                        on_true: outputs.get("true"),
                        on_false: outputs.get("false"),
                    }
                }
                "percentage" => Element::Percentage {
                    buckets: percentage_buckets(&outputs).map_err(fail)?,
                },
                "rate" => {
                    outputs.only(&["success", "fallback"]).map_err(fail)?;
                    let key = props.string("key").map_err(fail)?;
                    let limit = props.number("limit").map_err(fail)?;
                    if limit < 0.0 {
                        return Err(fail("properties.limit must be 0 or more".into()));
                    }
                    let limit_type = match props.value("limitType").and_then(Value::as_str) {
                        Some("count") => RateLimitType::Count,
                        Some("cost") => RateLimitType::Cost,
                        _ => {
                            return Err(fail(
                                "properties.limitType must be \"count\" or \"cost\"".into(),
                            ));
                        }
                    };
                    let window_seconds = props.number("window").map_err(fail)?;
                    if !(1.0..=31_536_000.0).contains(&window_seconds) {
                        return Err(fail(
                            "properties.window must be 1 to 31536000 seconds".into(),
                        ));
                    }
                    Element::Rate {
                        key: match FieldPath::parse(&key) {
                            Some(path) => RateKey::Field(path),
                            None => RateKey::Constant(key),
                        },
                        limit,
                        limit_type,
                        window_seconds,
                        success: outputs.get("success"),
                        fallback: outputs.get("fallback"),
                    }
                }
                "model" => {
                    outputs.only(&["success", "fallback"]).map_err(fail)?;
                    Element::Model {
                        model: model::parse(
                            w.properties.as_ref(),
                            known_provider,
                            MAX_MODEL_RETRIES,
                        )
                        .map_err(fail)?,
                        success: outputs.get("success"),
                        fallback: outputs.get("fallback"),
                    }
                }
                "end" => Element::End,
                "" => return Err(fail("type must be a string".into())),
                other => {
                    return Err(fail(format!(
                        "unknown type '{other}' (start, conditional, percentage, rate, model or end)"
                    )));
                }
            };
            parsed.push(element);
        }
        let start = start.ok_or_else(|| graph_error("a route needs one start element"))?;
        let graph = RouteGraph {
            ids,
            elements: parsed,
            start,
        };
        graph.check_shape()?;
        Ok(graph)
    }

    /// A route of one `model` element (start → model → end) for a catalog model with `routing`: its properties,
    /// with `target` (`{provider}/{model}`) as the element's own provider and model.
    pub fn single_model(
        target: &str,
        routing: &Value,
        known_provider: &dyn Fn(&str) -> bool,
    ) -> Result<Self, RouteError> {
        let Value::Object(props) = routing else {
            return Err(graph_error(
                "routing must be an object of model properties (targets, balance, …)",
            ));
        };
        let mut props = props.clone();
        if let Some((provider, model)) = target.split_once('/') {
            props.insert("provider".into(), Value::String(provider.into()));
            props.insert("model".into(), Value::String(model.into()));
        }
        let elements = serde_json::json!([
            {"id": "start", "type": "start", "outputs": {"next": {"elementId": "model"}}},
            {"id": "model", "type": "model", "properties": props, "outputs": {"success": {"elementId": "end"}}},
            {"id": "end", "type": "end", "outputs": {}},
        ]);
        Self::parse(&elements, known_provider)
    }

    /// The top-level body keys the route's conditions, rate keys and sticky fields read (`body.max_tokens` →
    /// `max_tokens`): a node parses only those out of a request body.
    pub fn body_keys(&self) -> Vec<String> {
        let mut paths = Vec::new();
        for e in &self.elements {
            match e {
                Element::Conditional { condition, .. } => condition.paths(&mut paths),
                Element::Rate {
                    key: RateKey::Field(p),
                    ..
                } => paths.push(p),
                Element::Model { model, .. } => paths.extend(model.sticky.as_ref()),
                _ => {}
            }
        }
        let mut keys: Vec<String> = paths
            .into_iter()
            .filter(|p| p.root == FieldRoot::Body)
            .filter_map(|p| p.segments.first().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn outputs_of(&self, i: usize) -> Vec<usize> {
        match &self.elements[i] {
            Element::Start { next } => vec![*next],
            Element::Conditional {
                on_true, on_false, ..
            } => on_true.iter().chain(on_false).copied().collect(),
            Element::Percentage { buckets } => buckets.iter().filter_map(|(_, t)| *t).collect(),
            Element::Rate {
                success, fallback, ..
            }
            | Element::Model {
                success, fallback, ..
            } => success.iter().chain(fallback).copied().collect(),
            Element::End => Vec::new(),
        }
    }

    /// No cycles, an `end` reachable from `start`, and no model's `success` output leading to another model.
    fn check_shape(&self) -> Result<(), RouteError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let n = self.elements.len();
        let mut mark = vec![Mark::New; n];
        // Iterative depth-first search: (element, next output to visit).
        let mut stack: Vec<(usize, Vec<usize>, usize)> =
            vec![(self.start, self.outputs_of(self.start), 0)];
        mark[self.start] = Mark::Open;
        let mut end_reached = matches!(self.elements[self.start], Element::End);
        while let Some((node, outs, at)) = stack.last_mut() {
            if *at == outs.len() {
                mark[*node] = Mark::Done;
                stack.pop();
                continue;
            }
            let next = outs[*at];
            *at += 1;
            match mark[next] {
                Mark::Open => {
                    return Err(RouteError {
                        element: Some(self.ids[next].clone()),
                        message: "the graph has a cycle through this element".into(),
                    });
                }
                Mark::Done => {}
                Mark::New => {
                    mark[next] = Mark::Open;
                    end_reached |= matches!(self.elements[next], Element::End);
                    stack.push((next, self.outputs_of(next), 0));
                }
            }
        }
        if !end_reached {
            return Err(graph_error("no end element is reachable from start"));
        }
        for (i, e) in self.elements.iter().enumerate() {
            if let Element::Model {
                success: Some(s), ..
            } = e
                && let Some(other) = self.first_model_from(*s)
            {
                return Err(RouteError {
                    element: Some(self.ids[i].clone()),
                    message: format!(
                        "outputs.success reaches the model element '{}': a model's answer is the response, \
                         so success must lead to end",
                        self.ids[other]
                    ),
                });
            }
        }
        Ok(())
    }

    /// A model element reachable from `from` (the graph is acyclic by now).
    fn first_model_from(&self, from: usize) -> Option<usize> {
        let mut seen = vec![false; self.elements.len()];
        let mut todo = vec![from];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            if matches!(self.elements[i], Element::Model { .. }) {
                return Some(i);
            }
            todo.extend(self.outputs_of(i));
        }
        None
    }
}

/// An element's outputs, resolved to indices.
struct Outputs(BTreeMap<String, usize>, Vec<String>);

impl Outputs {
    fn read(raw: Option<&Value>, index: &HashMap<String, usize>) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        let mut order = Vec::new();
        let map = match raw {
            None | Some(Value::Null) => return Ok(Self(out, order)),
            Some(Value::Object(map)) => map,
            Some(_) => return Err("outputs must be an object of {label: {elementId}}".into()),
        };
        for (label, target) in map {
            let id = target
                .get("elementId")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("outputs.{label} must be {{\"elementId\": \"…\"}}"))?;
            let i = *index.get(id).ok_or_else(|| {
                format!("outputs.{label} points at '{id}', which is not an element of the route")
            })?;
            out.insert(label.clone(), i);
            order.push(label.clone());
        }
        Ok(Self(out, order))
    }

    fn get(&self, label: &str) -> Option<usize> {
        self.0.get(label).copied()
    }

    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.1.iter().find(|l| !allowed.contains(&l.as_str())) {
            Some(l) => Err(format!(
                "unknown output '{l}' (expected {})",
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// `percentage` outputs as cumulative buckets over [0, 1].
fn percentage_buckets(outputs: &Outputs) -> Result<Vec<(f64, Option<usize>)>, String> {
    let mut weights: Vec<(f64, usize)> = Vec::new();
    let mut rest = None;
    for label in &outputs.1 {
        let target = outputs.0[label];
        if label == ELSE {
            rest = Some(target);
            continue;
        }
        let number = label.trim().trim_end_matches('%').trim();
        let weight: f64 = number
            .parse()
            .ok()
            .filter(|w: &f64| (0.0..=100.0).contains(w))
            .ok_or_else(|| {
                format!("output label '{label}' is not a percentage from 0% to 100% or 'else'")
            })?;
        weights.push((weight, target));
    }
    if weights.len() > MAX_PERCENTAGE_OUTPUTS {
        return Err(format!(
            "a percentage element has at most {MAX_PERCENTAGE_OUTPUTS} labelled outputs besides else"
        ));
    }
    let sum: f64 = weights.iter().map(|(w, _)| w).sum();
    if sum > 100.0 + 1e-9 {
        return Err(format!("the percentages add up to {sum}%, more than 100%"));
    }
    if weights.is_empty() && rest.is_none() {
        return Err("a percentage element needs at least one output".into());
    }
    let total = if rest.is_some() { 100.0 } else { sum };
    if total <= 0.0 {
        return Err("the percentages add up to 0%".into());
    }
    let mut buckets = Vec::with_capacity(weights.len() + 1);
    let mut acc = 0.0;
    for (w, t) in weights {
        acc += w / total;
        buckets.push((acc.min(1.0), Some(t)));
    }
    match rest {
        Some(t) => buckets.push((1.0, Some(t))),
        None => {
            if let Some(last) = buckets.last_mut() {
                last.0 = 1.0;
            }
        }
    }
    Ok(buckets)
}

impl Element {
    /// The percentage bucket a request falls in, from a point in [0, 1) (see [`split_point`]).
    pub fn percentage_target(buckets: &[(f64, Option<usize>)], point: f64) -> Option<usize> {
        buckets
            .iter()
            .find(|(bound, _)| point < *bound)
            .or(buckets.last())
            .and_then(|(_, t)| *t)
    }
}

/// A point in [0, 1) for a request id and element id: the same pair always gives the same point (so a percentage
/// split is reproducible per request), and different request ids spread evenly.
pub fn split_point(request_id: &str, element_id: &str) -> f64 {
    let h = stable_hash(request_id.bytes().chain([0u8]).chain(element_id.bytes()));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A hash that is the same on every node and every run (FNV-1a, then splitmix64's finaliser: FNV alone leaves the
/// high bits poorly mixed for inputs that differ at the end). For splits and sticky sessions, never for secrets.
pub fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// splitmix64's finaliser.
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Reads `properties`.
struct Props<'a>(Option<&'a Value>);

impl Props<'_> {
    fn value(&self, name: &str) -> Option<&Value> {
        self.0.and_then(|p| p.get(name))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        match self.value(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(format!("properties.{name} is required")),
            Some(_) => Err(format!("properties.{name} must be a string")),
        }
    }

    fn number(&self, name: &str) -> Result<f64, String> {
        match self.value(name) {
            Some(v @ Value::Number(_)) => v
                .as_f64()
                .ok_or_else(|| format!("properties.{name} is out of range")),
            None | Some(Value::Null) => Err(format!("properties.{name} is required")),
            Some(_) => Err(format!("properties.{name} must be a number")),
        }
    }
}

#[cfg(test)]
mod tests;
