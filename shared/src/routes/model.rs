//! The `model` element: Cloudflare's `provider`, `model`, `retries`, `timeout`, and Gatehouse's extensions for
//! one model name served by several targets (issue 15), all optional:
//!
//! ```json
//! {"id": "m", "type": "model", "properties": {
//!   "provider": "openai", "model": "gpt-4o-mini", "retries": 1, "timeout": 10000,
//!   "targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 3, "priority": 0},
//!               {"provider": "azure-openai", "model": "gpt-4o-mini", "weight": 1, "priority": 1}],
//!   "balance": "weighted",              // or "least_latency", "priority"
//!   "latency_tolerance": 0.1,           // least_latency: within 10% of the fastest counts as as fast
//!   "sla_tpot_ms": 80,                  // priority: slower per output token than this = degraded
//!   "sticky": "metadata.session_id",    // the same value keeps the same target while it is healthy
//!   "circuit_breaker": {"failures": 5, "error_rate": 0.5, "min_requests": 10, "window": 30, "cooldown": 30},
//!   "retry_on": [429, 500, 502, 503],   // statuses that retry the same target
//!   "fallback_on": [401, 403, 404, 429, 500, 502, 503],   // statuses that move on to the next target
//!   "health_check": {"interval": 30}    // an active probe every 30 s, off the request path
//! }, "outputs": {"success": {"elementId": "end"}, "fallback": {"elementId": "other"}}}
//! ```
//!
//! With `targets`, the element's own `provider`/`model` may be left out; when given they must name one of the
//! targets (they are what Cloudflare's schema and Terraform carry). Without `targets` the element is one target.

use serde_json::Value;

use super::FieldPath;

/// At most this many targets behind one model element.
pub const MAX_TARGETS: usize = 16;
/// The statuses that retry the same target when a route does not say (issue 15).
pub const DEFAULT_RETRY_ON: [u16; 4] = [429, 500, 502, 503];
/// The statuses that move on to the next target when a route does not say (issue 15).
pub const DEFAULT_FALLBACK_ON: [u16; 7] = [401, 403, 404, 429, 500, 502, 503];

/// One provider and model a model element may send a request to.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTarget {
    pub provider: String,
    pub model: String,
    /// Share of traffic under `weighted` balancing (0 takes none while another target is healthy).
    pub weight: u32,
    /// `priority` balancing: 0 first, then 1, …
    pub priority: u32,
}

impl ModelTarget {
    /// `{provider}/{model}`, as `/compat` names it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// How a request picks among an element's targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Balance {
    /// Smooth weighted round robin over the healthy targets.
    Weighted,
    /// The target with the lowest recent latency; those within `tolerance` (a fraction) of it share the traffic.
    LeastLatency { tolerance: f64 },
    /// The healthy, non-degraded target of the lowest priority number; `sla_tpot_ms` marks a slow one degraded.
    Priority { sla_tpot_ms: Option<f64> },
}

/// When a target's circuit opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// An error rate over `window_seconds` that opens it, once `min_requests` were seen in the window.
    pub error_rate: f64,
    pub min_requests: u32,
    pub window_seconds: f64,
    /// How long an open circuit keeps the target out before a trial request.
    pub cooldown_seconds: f64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            error_rate: 0.5,
            min_requests: 10,
            window_seconds: 30.0,
            cooldown_seconds: 30.0,
        }
    }
}

/// An active health check of every target of the element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthCheck {
    pub interval_seconds: f64,
}

/// A checked `model` element.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelElement {
    /// At least one.
    pub targets: Vec<ModelTarget>,
    pub retries: u32,
    pub timeout_ms: u64,
    pub balance: Balance,
    pub sticky: Option<FieldPath>,
    /// `None`: `circuit_breaker: false`, targets are never taken out.
    pub breaker: Option<BreakerSettings>,
    pub retry_on: Vec<u16>,
    pub fallback_on: Vec<u16>,
    pub health_check: Option<HealthCheck>,
}

/// Reads `properties`; errors name the property.
pub(super) fn parse(
    props: Option<&Value>,
    known_provider: &dyn Fn(&str) -> bool,
    max_retries: u32,
) -> Result<ModelElement, String> {
    let get = |name: &str| props.and_then(|p| p.get(name)).filter(|v| !v.is_null());
    let own = match (get("provider"), get("model")) {
        (None, None) => None,
        (Some(Value::String(p)), Some(Value::String(m))) => Some((p.clone(), m.clone())),
        (Some(Value::String(_)), None) => return Err("properties.model is required".into()),
        (None, Some(Value::String(_))) => return Err("properties.provider is required".into()),
        _ => return Err("properties.provider and properties.model must be strings".into()),
    };
    let targets = match get("targets") {
        None => {
            let (provider, model) = own.clone().ok_or("properties.provider is required")?;
            vec![ModelTarget {
                provider,
                model,
                weight: 1,
                priority: 0,
            }]
        }
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_TARGETS => items
            .iter()
            .enumerate()
            .map(|(i, t)| target(i, t))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(format!(
                "properties.targets must be an array of 1 to {MAX_TARGETS} {{provider, model}} objects"
            ));
        }
    };
    for t in &targets {
        if t.provider.trim().is_empty() || t.model.trim().is_empty() {
            return Err("properties.provider and properties.model must not be empty".into());
        }
        if !known_provider(&t.provider) {
            return Err(format!("unknown provider '{}'", t.provider));
        }
    }
    if let (Some((p, m)), Some(_)) = (&own, get("targets"))
        && !targets.iter().any(|t| &t.provider == p && &t.model == m)
    {
        return Err(format!(
            "properties.provider and properties.model ('{p}/{m}') must name one of properties.targets"
        ));
    }
    if targets.iter().all(|t| t.weight == 0) {
        return Err("at least one target needs a weight above 0".into());
    }
    let retries = whole(get("retries"), "retries", 0, u64::from(max_retries))? as u32;
    let timeout_ms = whole(get("timeout"), "timeout", 0, 3_600_000)?;
    let balance = match get("balance").map(|v| v.as_str().ok_or(v)) {
        None | Some(Ok("weighted")) => Balance::Weighted,
        Some(Ok("least_latency")) => Balance::LeastLatency {
            tolerance: fraction(get("latency_tolerance"), "latency_tolerance", 0.1)?,
        },
        Some(Ok("priority")) => {
            Balance::Priority {
                sla_tpot_ms: match get("sla_tpot_ms") {
                    None => None,
                    Some(v) => Some(v.as_f64().filter(|n| *n > 0.0 && *n <= 60_000.0).ok_or(
                        "properties.sla_tpot_ms must be a number of milliseconds above 0",
                    )?),
                },
            }
        }
        _ => {
            return Err(
                "properties.balance must be \"weighted\", \"least_latency\" or \"priority\"".into(),
            );
        }
    };
    let sticky = match get("sticky") {
        None => None,
        Some(Value::String(path)) => Some(FieldPath::parse(path).ok_or_else(|| {
            format!(
                "properties.sticky '{path}' is not a field path (metadata.…, body.… or headers.…)"
            )
        })?),
        Some(_) => {
            return Err(
                "properties.sticky must be a field path such as \"metadata.session_id\"".into(),
            );
        }
    };
    let breaker = match get("circuit_breaker") {
        None | Some(Value::Bool(true)) => Some(BreakerSettings::default()),
        Some(Value::Bool(false)) => None,
        Some(v @ Value::Object(_)) => Some(breaker(v)?),
        Some(_) => {
            return Err("properties.circuit_breaker must be an object, true or false".into());
        }
    };
    let retry_on = statuses(get("retry_on"), "retry_on", &DEFAULT_RETRY_ON)?;
    let fallback_on = statuses(get("fallback_on"), "fallback_on", &DEFAULT_FALLBACK_ON)?;
    let health_check = match get("health_check") {
        None | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(HealthCheck {
            interval_seconds: 30.0,
        }),
        Some(v @ Value::Object(_)) => Some(HealthCheck {
            interval_seconds: seconds(
                v.get("interval"),
                "health_check.interval",
                30.0,
                1.0,
                3_600.0,
            )?,
        }),
        Some(_) => {
            return Err(
                "properties.health_check must be an object such as {\"interval\": 30}".into(),
            );
        }
    };
    Ok(ModelElement {
        targets,
        retries,
        timeout_ms,
        balance,
        sticky,
        breaker,
        retry_on,
        fallback_on,
        health_check,
    })
}

fn target(i: usize, t: &Value) -> Result<ModelTarget, String> {
    let field = |name: &str| match t.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("properties.targets[{i}].{name} must be a string")),
    };
    let number = |name: &str, default: u64| -> Result<u32, String> {
        match t.get(name) {
            None | Some(Value::Null) => Ok(default as u32),
            Some(v) => v
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (0.0..=1_000.0).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    format!("properties.targets[{i}].{name} must be a whole number from 0 to 1000")
                }),
        }
    };
    Ok(ModelTarget {
        provider: field("provider")?,
        model: field("model")?,
        weight: number("weight", 1)?,
        priority: number("priority", 0)?,
    })
}

fn whole(v: Option<&Value>, name: &str, min: u64, max: u64) -> Result<u64, String> {
    match v {
        None => Ok(min),
        Some(v) => v
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (min as f64..=max as f64).contains(n))
            .map(|n| n as u64)
            .ok_or_else(|| format!("properties.{name} must be a whole number from {min} to {max}")),
    }
}

fn fraction(v: Option<&Value>, name: &str, default: f64) -> Result<f64, String> {
    match v {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|n| (0.0..=1.0).contains(n))
            .ok_or_else(|| format!("properties.{name} must be a number from 0 to 1")),
    }
}

fn seconds(v: Option<&Value>, name: &str, default: f64, min: f64, max: f64) -> Result<f64, String> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("properties.{name} must be {min} to {max} seconds")),
    }
}

fn breaker(v: &Value) -> Result<BreakerSettings, String> {
    let d = BreakerSettings::default();
    let count = |name: &str, default: u32| -> Result<u32, String> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(n) => n
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (1.0..=10_000.0).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    format!(
                        "properties.circuit_breaker.{name} must be a whole number from 1 to 10000"
                    )
                }),
        }
    };
    Ok(BreakerSettings {
        failures: count("failures", d.failures)?,
        error_rate: match v.get("error_rate") {
            None | Some(Value::Null) => d.error_rate,
            Some(n) => n.as_f64().filter(|n| *n > 0.0 && *n <= 1.0).ok_or(
                "properties.circuit_breaker.error_rate must be a number above 0, at most 1",
            )?,
        },
        min_requests: count("min_requests", d.min_requests)?,
        window_seconds: seconds(
            v.get("window"),
            "circuit_breaker.window",
            d.window_seconds,
            1.0,
            3_600.0,
        )?,
        cooldown_seconds: seconds(
            v.get("cooldown"),
            "circuit_breaker.cooldown",
            d.cooldown_seconds,
            0.1,
            3_600.0,
        )?,
    })
}

fn statuses(v: Option<&Value>, name: &str, default: &[u16]) -> Result<Vec<u16>, String> {
    match v {
        None => Ok(default.to_vec()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_u64()
                    .filter(|n| (400..=599).contains(n))
                    .map(|n| n as u16)
                    .ok_or_else(|| {
                        format!("properties.{name} must be an array of statuses from 400 to 599")
                    })
            })
            .collect(),
        Some(_) => Err(format!(
            "properties.{name} must be an array of statuses from 400 to 599"
        )),
    }
}
