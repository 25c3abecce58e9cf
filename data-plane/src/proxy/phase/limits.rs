//! Admission by limits: the gateway's request rate limit (spec §3.3), checked before the body is read, and its
//! spend limits (spec §3.15): every applicable rule is checked before a step is
//! forwarded, and the answer's cost is added to each of its buckets after the response (in the `logging` phase,
//! once usage is known). Counters live in the limit store (Redis shared by the nodes in split mode).
//!
//! Exactness: the check reads the spent amount and the charge adds to it later, so requests in flight at the same
//! time all pass a check that only one of them would pass afterwards: a window's spend may overshoot its limit by
//! the cost of the requests that were running when it was reached (as Cloudflare documents: "eventually
//! consistent; bursts can overshoot"). Cache hits are neither checked nor charged.

use std::time::Duration;

use gatehouse_bus::limits::{Admission, LimitStore, SpendWindow, WindowTechnique};
use gatehouse_shared::gateway::{GatewaySettings, RateLimitingTechnique};
use gatehouse_shared::spend_limits::{SpendLimits, SpendTechnique};
use serde_json::{Map, Value};

use super::plan::Step;
use crate::error::AiGatewayError;

/// What a forwarded step will be charged to once its cost is known.
#[derive(Debug, Default)]
pub(crate) struct SpendCharge {
    pub windows: Vec<SpendWindow>,
}

impl SpendCharge {
    /// The amount in the store's unit; negative, NaN or absent costs charge nothing.
    pub(crate) fn nano_usd(cost_usd: Option<f64>) -> u64 {
        gatehouse_bus::limits::nano_usd(cost_usd)
    }
}

/// The request's `cf-aig-metadata` as a map, for metadata filters and partitions.
pub(crate) fn metadata_map(raw: Option<&str>) -> Map<String, Value> {
    raw.and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
        .unwrap_or_default()
}

/// The gateway's request rate limit; every request that reaches the gateway counts, cache hits included. A store
/// failure admits the request: the limit store answers from local counters when Redis is unreachable, so an error
/// here means something unexpected, and refusing traffic for it would be worse.
pub(crate) async fn admit_rate(
    limits: &dyn LimitStore,
    account: &str,
    gateway: &str,
    settings: &GatewaySettings,
) -> Result<(), AiGatewayError> {
    let (Some(limit), Some(interval)) = (
        settings.rate_limiting_limit.filter(|l| *l > 0),
        settings.rate_limiting_interval.filter(|i| *i > 0),
    ) else {
        return Ok(());
    };
    let technique = match settings.rate_limiting_technique {
        Some(RateLimitingTechnique::Sliding) => WindowTechnique::Sliding,
        // Cloudflare's default (spec §1.2).
        Some(RateLimitingTechnique::Fixed) | None => WindowTechnique::Fixed,
    };
    let key = format!("rl:{account}:{gateway}");
    match limits
        .admit_request(
            &key,
            limit as u64,
            Duration::from_secs(interval as u64),
            technique,
        )
        .await
    {
        Ok(Admission::Admitted) => Ok(()),
        Ok(Admission::Limited { retry_after }) => Err(AiGatewayError::rate_limited(retry_after)),
        Err(error) => {
            tracing::warn!(%error, "rate limit store failed; admitting the request");
            Ok(())
        }
    }
}

/// Spend limits over a request's steps: a step over a budget is left out (a universal request falls back past
/// it); with none left, the first refusal is the answer. `Ok` carries the kept steps, each with the buckets to
/// charge once its cost is known.
pub(crate) async fn admit_spend(
    limits: &dyn LimitStore,
    account: &str,
    gateway: &str,
    rules: &SpendLimits,
    steps: Vec<Step>,
    metadata: &Map<String, Value>,
) -> Result<(Vec<Step>, Vec<Option<SpendCharge>>), AiGatewayError> {
    let mut kept = Vec::with_capacity(steps.len());
    let mut charges = Vec::with_capacity(steps.len());
    let mut refusal = None;
    for step in steps {
        match check_spend(limits, account, gateway, rules, &step, metadata).await {
            Ok(charge) => {
                kept.push(step);
                charges.push(Some(charge));
            }
            Err(error) => {
                refusal.get_or_insert(error);
            }
        }
    }
    match refusal {
        Some(error) if kept.is_empty() => Err(error),
        _ => Ok((kept, charges)),
    }
}

/// Checks `step` against the gateway's rules; `Ok` carries the buckets to charge afterwards. A store failure
/// admits the request (the store already answers from local counters while Redis is away).
async fn check_spend(
    limits: &dyn LimitStore,
    account: &str,
    gateway: &str,
    rules: &SpendLimits,
    step: &Step,
    metadata: &Map<String, Value>,
) -> Result<SpendCharge, AiGatewayError> {
    let applicable = rules.applicable(&step.provider, step.model.as_deref(), metadata);
    if applicable.is_empty() {
        return Ok(SpendCharge::default());
    }
    let windows: Vec<SpendWindow> = applicable
        .iter()
        .map(|r| SpendWindow {
            key: format!("spend:{account}:{gateway}:{}", r.bucket),
            window: r.rule.window.max(Duration::from_secs(1)),
            technique: match r.rule.technique {
                SpendTechnique::Fixed => WindowTechnique::Fixed,
                SpendTechnique::Sliding => WindowTechnique::Sliding,
            },
        })
        .collect();
    match limits.spent(&windows).await {
        Ok(spent) => {
            for (rule, spent) in applicable.iter().zip(spent) {
                let limit = SpendCharge::nano_usd(Some(rule.rule.limit_usd));
                if spent >= limit {
                    return Err(AiGatewayError::spend_limit_exceeded(
                        rule.rule
                            .exceeded_message(&step.provider, step.model.as_deref()),
                    ));
                }
            }
        }
        Err(error) => tracing::warn!(%error, "spend store failed; admitting the request"),
    }
    Ok(SpendCharge { windows })
}

/// Adds a finished request's cost to its buckets.
pub(crate) async fn charge_spend(
    limits: &dyn LimitStore,
    charge: SpendCharge,
    cost_usd: Option<f64>,
) {
    let nano = SpendCharge::nano_usd(cost_usd);
    if nano == 0 || charge.windows.is_empty() {
        return;
    }
    if let Err(error) = limits.record_spend(&charge.windows, nano).await {
        tracing::warn!(%error, "spend store failed; this request's cost is not counted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_become_whole_nano_dollars_and_nonsense_charges_nothing() {
        assert_eq!(SpendCharge::nano_usd(Some(0.000_001_5)), 1_500);
        assert_eq!(SpendCharge::nano_usd(Some(10.0)), 10_000_000_000);
        for nothing in [
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ] {
            assert_eq!(SpendCharge::nano_usd(nothing), 0, "{nothing:?}");
        }
    }

    #[test]
    fn metadata_parses_from_the_kept_header() {
        let m = metadata_map(Some(r#"{"user":"u1","tier":2}"#));
        assert_eq!(m["user"], "u1");
        assert!(metadata_map(None).is_empty());
        assert!(metadata_map(Some("not json")).is_empty());
    }
}
