//! The steps of a routed `/compat` request (`model: "dynamic/…"`, or a catalog model with `routing`): one per model
//! the route's walk chose, in fallback order, each with its model element's retries, timeout and target policy.
//!
//! Only the first step that can be built is built at once; the others wait in [`Deferred`] until the attempt loop
//! needs one (the one before it failed), so a request that its first target answers pays for one step, not one
//! per fallback. They are built at once instead when something must see every step before the first attempt: spend
//! limits (`defer` false) and credentials minted before the attempts (Vertex tokens, Bedrock signatures).

use std::collections::VecDeque;

use super::{BuildContext, Parsed, build_one};
use crate::error::AiGatewayError;
use crate::proxy::phase::attempts::MoreSteps;
use crate::proxy::phase::body::RequestBody;
use crate::proxy::phase::plan::Step;
use crate::proxy::phase::route::{RoutePlan, RoutedModel};
use crate::proxy::retry::RetryPolicy;

/// Routed targets not built yet.
pub(crate) struct Deferred<'a> {
    cx: BuildContext<'a>,
    parsed: Parsed,
    body: RequestBody,
    models: VecDeque<RoutedModel>,
    /// The index (`cf-aig-step`) the next step built gets.
    next_index: u32,
    route: String,
}

impl Deferred<'_> {
    /// The `{provider}/{model}` of every target not built yet (a virtual key must be allowed all of them).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|m| &*m.target)
    }
}

impl MoreSteps for Deferred<'_> {
    fn pending(&self) -> bool {
        !self.models.is_empty()
    }

    fn next_step(&mut self) -> Option<Step> {
        while let Some(m) = self.models.pop_front() {
            match routed_step(&self.cx, &self.body, &self.parsed, &m, self.next_index) {
                Ok(step) => {
                    self.next_index += 1;
                    return Some(step);
                }
                Err(e) => {
                    tracing::debug!(route = %self.route, model = %m.target, error = %e.message, "routed model left out")
                }
            }
        }
        None
    }
}

/// Whether the target's credential is minted before the attempts (`pipeline::authorize`): such a step cannot
/// wait for the attempt loop.
fn minted_credential(target: &str) -> bool {
    matches!(
        target.split_once('/').map(|(p, _)| p),
        Some("aws-bedrock" | "google-vertex-ai")
    )
}

/// The steps to try at once, and the rest, in order. A target whose step cannot be built (a provider without the
/// operation, a missing credential) is left out; with none left, the first such error is the answer.
pub(super) fn build<'a>(
    cx: BuildContext<'a>,
    parsed: Parsed,
    body: RequestBody,
    plan: &RoutePlan,
    defer: bool,
) -> Result<(Vec<Step>, Option<Deferred<'a>>), AiGatewayError> {
    let mut models: VecDeque<RoutedModel> = plan.models.iter().cloned().collect();
    let defer = defer && !models.iter().any(|m| minted_credential(&m.target));
    let mut steps = Vec::with_capacity(if defer { 1 } else { models.len() });
    let mut first_error = None;
    while let Some(m) = models.pop_front() {
        match routed_step(&cx, &body, &parsed, &m, steps.len() as u32) {
            Ok(step) => {
                steps.push(step);
                if defer {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(route = %plan.route.name, model = %m.target, error = %e.message, "routed model left out");
                first_error.get_or_insert(e);
            }
        }
    }
    if steps.is_empty() {
        return Err(first_error.unwrap_or(AiGatewayError::INTERNAL));
    }
    let deferred = (!models.is_empty()).then(|| Deferred {
        cx,
        parsed,
        body,
        models,
        next_index: steps.len() as u32,
        route: plan.route.name.clone(),
    });
    Ok((steps, deferred))
}

/// The step for one routed model: the model's retries, timeout and policy over what the request's controls say.
fn routed_step(
    cx: &BuildContext<'_>,
    body: &RequestBody,
    parsed: &Parsed,
    m: &RoutedModel,
    index: u32,
) -> Result<Step, AiGatewayError> {
    let step = build_one(cx, body, parsed, &m.target)?;
    Ok(Step {
        index,
        retry: RetryPolicy {
            max_attempts: m.retries + 1,
            ..step.retry
        },
        timeout: m.timeout.or(step.timeout),
        target_policy: m.policy.clone(),
        ..step
    })
}
