//! The attempt loop of design §3: each step of a request (one for the provider-native form, several for the
//! universal endpoint) is tried with its retries, and the steps in order, until a provider answers well enough to
//! be sent to the client. Nothing reaches the client before that decision, so a retry or a fallback never follows
//! a byte that was already sent.
//!
//! Decisions (spec §3.4–3.5; the inferred ones are written down in ARCHITECTURE.md):
//! - An attempt is retried (same step, after the step's backoff) on a connection failure, a timeout, or a
//!   provider answer of 408, 429 or 5xx. Other 4xx answers are final for the step.
//! - A step that did not succeed (any status ≥ 400, or no answer) hands over to the next step; the last step's
//!   answer, whatever it is, is the client's answer (provider errors pass through unchanged).
//! - A routed target (`dynamic/…`) follows its model element's statuses instead: `retry_on` retries it,
//!   `fallback_on` moves on, any other failure status is the answer; and every attempt's outcome and time to the
//!   response header feed the target's health (`health.rs`).
//! - The request timeout cuts an attempt that has not produced a response header in time, except the final
//!   attempt of a request that already made others ("on the final retry attempt the gateway waits"). A
//!   request's only attempt is cut (504), as Cloudflare does for a direct provider request with a timeout. The
//!   node's own response timeout bounds every attempt regardless.

use super::plan::Step;
use crate::proxy::retry::{is_retryable_status, is_success_status};
use crate::proxy::upstream::{AttemptFailure, OpenedResponse, Upstreams};

/// How one step ended without being the request's answer, for its log record.
#[derive(Debug)]
pub(crate) enum StepFailure {
    /// The provider answered with this status (its body was not sent to the client).
    Status(u16),
    /// No answer.
    NoAnswer(AttemptFailure),
}

/// The request's answer. Its large variant (a whole upstream session) is moved once per request; boxing it would
/// cost an allocation per request instead.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// A provider response to send to the client: a success, or the last step's final answer.
    Respond { step: usize, opened: OpenedResponse },
    /// The last step's last attempt produced no answer.
    Failed {
        step: usize,
        failure: AttemptFailure,
    },
}

/// Steps the loop may add when the ones it has all failed: a route's fallback targets, built only then
/// (`plan/compat/routed.rs`).
pub(crate) trait MoreSteps {
    /// Whether a step may still come (one may still fail to build).
    fn pending(&self) -> bool;
    /// The next step that can be built, if any.
    fn next_step(&mut self) -> Option<Step>;
}

/// No more steps than the plan built.
pub(crate) struct NoMoreSteps;

impl MoreSteps for NoMoreSteps {
    fn pending(&self) -> bool {
        false
    }

    fn next_step(&mut self) -> Option<Step> {
        None
    }
}

/// Runs `steps` in order with their retries, adding the next of `more` when the last one hands over (a failed
/// answer is dropped only once the step after it exists; with none, that answer is the client's).
/// `on_step_failed` hears about every step that handed over to the next one (for its log record);
/// `attempts_made` counts every attempt (for the metrics).
pub(crate) async fn run(
    upstreams: &Upstreams,
    steps: &mut Vec<Step>,
    more: &mut (dyn MoreSteps + Send),
    attempts_made: &mut u32,
    mut on_step_failed: impl FnMut(usize, StepFailure),
) -> Outcome {
    let node_wait = upstreams.response_timeout();
    let mut last_failure = AttemptFailure::Unreachable;
    let mut index = 0;
    while index < steps.len() {
        let step = &steps[index];
        let last_built = index + 1 == steps.len();
        let last_step = last_built && !more.pending();
        let mut next: Option<Step> = None;
        let max_attempts = step.retry.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            let last_attempt_of_step = attempt == max_attempts;
            let final_attempt = last_step && last_attempt_of_step;
            if attempt > 1 {
                tokio::time::sleep(step.retry.delay_before(attempt - 1)).await;
            }
            let wait = match step.timeout {
                Some(cut) if !(final_attempt && *attempts_made > 0) => cut.min(node_wait),
                _ => node_wait,
            };
            *attempts_made += 1;
            let policy = step.target_policy.as_deref();
            if let Some(p) = policy {
                p.attempt_started();
            }
            let began = std::time::Instant::now();
            match upstreams
                .open(&step.target, &step.header, &step.body, wait)
                .await
            {
                Ok(opened) => {
                    let status = opened.status();
                    let (retryable, falls_back) = match policy {
                        Some(p) => {
                            p.answered(status, began.elapsed().as_secs_f64() * 1000.0);
                            (
                                p.retry_on.contains(&status),
                                p.fallback_on.contains(&status),
                            )
                        }
                        None => (is_retryable_status(status), true),
                    };
                    let retry = retryable && !last_attempt_of_step;
                    let mut hand_over =
                        !(is_success_status(status) || (!retry && (last_step || !falls_back)));
                    if hand_over && !retry && last_built {
                        // The next step is built only now; without one this answer is the client's.
                        next = more.next_step();
                        hand_over = next.is_some();
                    }
                    if !hand_over {
                        return Outcome::Respond {
                            step: index,
                            opened,
                        };
                    }
                    // The refused answer's connection is closed, not pooled: its body was never read.
                    drop(opened);
                    if retry {
                        tracing::debug!(step = index, attempt, status, "retrying");
                        continue;
                    }
                    on_step_failed(index, StepFailure::Status(status));
                    break;
                }
                Err(failure) => {
                    if let Some(p) = policy {
                        p.unanswered();
                    }
                    last_failure = failure;
                    if final_attempt {
                        return Outcome::Failed {
                            step: index,
                            failure,
                        };
                    }
                    if !last_attempt_of_step {
                        tracing::debug!(step = index, attempt, ?failure, "retrying");
                        continue;
                    }
                    if last_built {
                        next = more.next_step();
                        if next.is_none() {
                            return Outcome::Failed {
                                step: index,
                                failure,
                            };
                        }
                    }
                    on_step_failed(index, StepFailure::NoAnswer(failure));
                }
            }
        }
        steps.extend(next);
        index += 1;
    }
    // Only reached with no steps at all, which the callers never build.
    Outcome::Failed {
        step: steps.len().saturating_sub(1),
        failure: last_failure,
    }
}
