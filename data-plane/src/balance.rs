//! Balancing one model element's targets (issue 15): the order in which a request tries them. Pure: it reads the
//! targets' health views and the element's round-robin state, and does no I/O.
//!
//! The first target is the balancer's choice; the other available targets follow as fallbacks in the policy's
//! order (weight, latency or priority); targets whose circuit is open follow only when no target is available and
//! the element has no `fallback` output of its own (a request is better tried on a doubtful target than refused).
//!
//! - **weighted**: smooth weighted round robin (nginx's) over the available targets: over any run of requests
//!   each target's share is its weight's, interleaved rather than in bursts.
//! - **least latency**: each target's score is its mean time to first byte plus 100 times its mean time per
//!   output token (what a 100-token answer would take) over the last minute; targets within `tolerance` of the
//!   best share the traffic in turn. A target with fewer than [`MIN_SAMPLES`] recent samples is tried on every
//!   [`EXPLORE_EVERY`]th request, so a new or recovered target gets measured.
//! - **priority**: the available target with the lowest priority number; one slower per output token than
//!   `sla_tpot_ms` is degraded and goes after the others of any priority.
//! - **sticky** (any policy): rendezvous hashing of the sticky value over the available targets, weighted, so
//!   the same session stays on the same target while it is available and only its sessions move when it is not.

use std::sync::Mutex;

use gatehouse_shared::routes::Balance;

use crate::health::HealthView;

/// Latency samples a target needs before its score counts.
pub const MIN_SAMPLES: u32 = 5;
/// One request in this many goes to an under-measured target under least-latency balancing.
pub const EXPLORE_EVERY: u64 = 10;
/// The output tokens a latency score prices the time per token at.
const SCORE_TOKENS: f64 = 100.0;

/// A target as balancing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub weight: u32,
    pub priority: u32,
    pub health: HealthView,
}

impl Candidate {
    fn score(&self) -> Option<f64> {
        let h = &self.health;
        (h.samples >= MIN_SAMPLES)
            .then(|| h.ttft_ms.unwrap_or(0.0) + SCORE_TOKENS * h.tpot_ms.unwrap_or(0.0))
    }

    fn degraded(&self, sla_tpot_ms: Option<f64>) -> bool {
        matches!((sla_tpot_ms, self.health.tpot_ms), (Some(sla), Some(t)) if t > sla)
    }
}

/// The round-robin state of one element: smooth weighted round robin's current weights, and a request counter.
#[derive(Debug, Default)]
pub struct RoundRobin {
    current: Mutex<Vec<i64>>,
    seq: std::sync::atomic::AtomicU64,
}

impl RoundRobin {
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Smooth weighted round robin's pick among `eligible` (indices into `weights`).
    fn pick(&self, weights: &[u32], eligible: &[usize]) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.len() != weights.len() {
            *current = vec![0; weights.len()];
        }
        let total: i64 = eligible.iter().map(|&i| i64::from(weights[i])).sum();
        if total == 0 {
            return eligible.first().copied();
        }
        let mut best: Option<usize> = None;
        for &i in eligible {
            current[i] += i64::from(weights[i]);
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }
}

/// The order in which a request tries `targets`. `sticky` is the hash of the request's sticky value;
/// `open_targets_last` adds the unavailable targets after the available ones when none is available.
pub fn order(
    targets: &[Candidate],
    balance: &Balance,
    rr: &RoundRobin,
    sticky: Option<u64>,
    open_targets_last: bool,
) -> Vec<usize> {
    let available: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].health.available)
        .collect();
    if available.is_empty() {
        return if open_targets_last {
            policy_order(targets, balance, (0..targets.len()).collect())
        } else {
            Vec::new()
        };
    }
    let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
    let first = match sticky {
        Some(hash) => rendezvous(targets, &available, hash),
        None => match balance {
            Balance::Weighted => {
                let weighted: Vec<usize> = available
                    .iter()
                    .copied()
                    .filter(|&i| weights[i] > 0)
                    .collect();
                rr.pick(
                    &weights,
                    if weighted.is_empty() {
                        &available
                    } else {
                        &weighted
                    },
                )
            }
            Balance::LeastLatency { tolerance } => {
                least_latency(targets, &available, *tolerance, rr.next_seq())
            }
            Balance::Priority { .. } => policy_order(targets, balance, available.clone())
                .first()
                .copied(),
        },
    };
    let mut out = Vec::with_capacity(targets.len());
    out.extend(first);
    out.extend(
        policy_order(targets, balance, available)
            .into_iter()
            .filter(|i| Some(*i) != first),
    );
    out
}

/// `indices` sorted by the policy's preference: weight (heaviest first), latency score (fastest first, the
/// unmeasured after), or priority (degraded last).
fn policy_order(targets: &[Candidate], balance: &Balance, mut indices: Vec<usize>) -> Vec<usize> {
    match balance {
        Balance::Weighted => indices.sort_by_key(|&i| std::cmp::Reverse(targets[i].weight)),
        Balance::LeastLatency { .. } => indices.sort_by(|&a, &b| {
            let key = |i: usize| targets[i].score().unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        }),
        Balance::Priority { sla_tpot_ms } => {
            indices.sort_by_key(|&i| (targets[i].degraded(*sla_tpot_ms), targets[i].priority))
        }
    }
    indices
}

fn least_latency(
    targets: &[Candidate],
    available: &[usize],
    tolerance: f64,
    seq: u64,
) -> Option<usize> {
    let measured: Vec<(usize, f64)> = available
        .iter()
        .filter_map(|&i| targets[i].score().map(|s| (i, s)))
        .collect();
    let unmeasured: Vec<usize> = available
        .iter()
        .copied()
        .filter(|&i| targets[i].score().is_none())
        .collect();
    if measured.is_empty() {
        // Nothing measured yet: every target in turn, so all of them get measured soon.
        return available.get(seq as usize % available.len()).copied();
    }
    if !unmeasured.is_empty() && seq.is_multiple_of(EXPLORE_EVERY) {
        return unmeasured
            .get((seq / EXPLORE_EVERY) as usize % unmeasured.len())
            .copied();
    }
    let best = measured
        .iter()
        .map(|(_, s)| *s)
        .fold(f64::INFINITY, f64::min);
    let fast: Vec<usize> = measured
        .iter()
        .filter(|(_, s)| *s <= best * (1.0 + tolerance))
        .map(|(i, _)| *i)
        .collect();
    fast.get(seq as usize % fast.len()).copied()
}

/// Weighted rendezvous hashing: the available target with the highest `weight / -ln(u)`, `u` a uniform draw
/// from the sticky value's hash and the target's index.
fn rendezvous(targets: &[Candidate], available: &[usize], hash: u64) -> Option<usize> {
    available
        .iter()
        .copied()
        .filter(|&i| targets[i].weight > 0)
        .map(|i| {
            let u = unit(gatehouse_shared::routes::mix64(
                hash ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ));
            (i, f64::from(targets[i].weight) / -u.ln())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .or_else(|| available.first().copied())
}

/// A hash as a draw in (0, 1).
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A sticky value's hash, the same on every node.
pub fn sticky_hash(value: &str) -> u64 {
    gatehouse_shared::routes::stable_hash(value.bytes())
}

#[cfg(test)]
mod tests;
