//! Target health, per node (issue 15): a circuit breaker and recent latencies for every target of every routed
//! model element, fed by real traffic (passive: each attempt's outcome and time to first byte, each answer's time
//! per output token) and by the active prober (`health/prober.rs`), read by balancing (`balance.rs`).
//!
//! The table outlives configuration: a document that changes a route keeps the health of the targets it still
//! names (same account, gateway, route, element and provider/model), so a config push neither forgets an open
//! circuit nor resets latencies. Each target has its own small mutex, held for a few hundred nanoseconds; at
//! 20,000 requests/s a handful of targets see no contention worth the name (see bench/README.md, "Routing").
//!
//! The breaker ([inferred] defaults in `gatehouse_shared::routes::model`): closed → open after `failures`
//! consecutive failures, or when at least `min_requests` in the last `window` failed at `error_rate` or more;
//! open → half-open once `cooldown` has passed (the next requests are trials); half-open → closed on a trial's
//! success, → open again on its failure. A failure is no answer (connection, timeout) or a 429 or 5xx; any other
//! answer is a success (a 400 says the target works and the request does not).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gatehouse_bus::limits::{Clock, SystemClock};
use gatehouse_shared::node::{TargetHealthReport, TargetKey};
use gatehouse_shared::routes::BreakerSettings;

/// Recent samples kept per target: enough for a stable mean, bounded so a busy target costs no more than a quiet one.
const MAX_SAMPLES: usize = 64;
/// Latency samples older than this no longer count.
pub const LATENCY_WINDOW_MS: i64 = 60_000;

/// A circuit's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    /// Out of the rotation until `until_ms`.
    Open {
        until_ms: i64,
    },
    /// Trial requests go through; the first outcome decides.
    HalfOpen,
}

impl Circuit {
    pub fn name(&self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// What balancing reads of a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthView {
    /// Whether the target may take a request now (closed, half-open, or open with its cooldown over).
    pub available: bool,
    pub circuit: Circuit,
    /// Mean time to first byte over the latency window, ms.
    pub ttft_ms: Option<f64>,
    /// Mean time per output token over the latency window, ms.
    pub tpot_ms: Option<f64>,
    /// Latency samples in the window.
    pub samples: u32,
}

#[derive(Debug)]
struct State {
    circuit: Circuit,
    consecutive_failures: u32,
    /// (time, success) of recent outcomes, for the error rate.
    outcomes: VecDeque<(i64, bool)>,
    /// (time, ms) of recent times to first byte and per output token.
    ttft: VecDeque<(i64, f64)>,
    tpot: VecDeque<(i64, f64)>,
    /// Totals since the node started, for reports.
    successes: u64,
    failures: u64,
    last_failure_ms: Option<i64>,
}

/// One target's health.
#[derive(Debug)]
pub struct TargetHealth {
    /// `{account}/{gateway}/{route id}/{element id}/{provider}/{model}`.
    pub key: Arc<str>,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// When the active prober last started a probe (ms; 0 never), and whether one is running.
    last_probe_ms: AtomicI64,
    probing: AtomicBool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves counters, which stay meaningful.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn push<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() == MAX_SAMPLES {
        q.pop_front();
    }
    q.push_back(item);
}

fn mean_since(q: &VecDeque<(i64, f64)>, since_ms: i64) -> (Option<f64>, u32) {
    let (sum, n) = q
        .iter()
        .filter(|(t, _)| *t >= since_ms)
        .fold((0.0, 0u32), |(s, n), (_, v)| (s + v, n + 1));
    ((n > 0).then(|| sum / f64::from(n)), n)
}

impl TargetHealth {
    fn new(key: Arc<str>, clock: Arc<dyn Clock>) -> Self {
        Self {
            key,
            state: Mutex::new(State {
                circuit: Circuit::Closed,
                consecutive_failures: 0,
                outcomes: VecDeque::new(),
                ttft: VecDeque::new(),
                tpot: VecDeque::new(),
                successes: 0,
                failures: 0,
                last_failure_ms: None,
            }),
            clock,
            last_probe_ms: AtomicI64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// Claims the next active probe when `interval_ms` has passed since the last one began and none is running;
    /// the caller must call [`TargetHealth::probed`] when it ends.
    pub fn claim_probe(&self, interval_ms: i64) -> bool {
        let now = self.now_ms();
        let last = self.last_probe_ms.load(Ordering::Relaxed);
        if now - last < interval_ms || self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.last_probe_ms.store(now, Ordering::Relaxed);
        true
    }

    /// An active probe's outcome. A success closes the circuit at once, cooldown or not: the probe is a real
    /// request that the target answered, which is what a trial would have learnt. A failure counts like an
    /// attempt's.
    pub fn probed(&self, success: bool, ttft_ms: Option<f64>, settings: Option<&BreakerSettings>) {
        self.probing.store(false, Ordering::Release);
        if success {
            {
                let mut s = lock(&self.state);
                if s.circuit != Circuit::Closed {
                    s.circuit = Circuit::Closed;
                    s.outcomes.clear();
                    s.consecutive_failures = 0;
                }
            }
            self.record(true, ttft_ms, settings);
        } else {
            self.record(false, None, settings);
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// What balancing needs, now.
    pub fn view(&self) -> HealthView {
        self.view_with(true)
    }

    /// What balancing needs, now; the latency means only when `latencies` (least latency, or priority with an
    /// SLA): the other policies read the circuit alone, and skip walking the samples on every request.
    pub fn view_with(&self, latencies: bool) -> HealthView {
        let now = self.now_ms();
        let s = lock(&self.state);
        let since = now - LATENCY_WINDOW_MS;
        let ((ttft_ms, samples), (tpot_ms, _)) = if latencies {
            (mean_since(&s.ttft, since), mean_since(&s.tpot, since))
        } else {
            ((None, 0), (None, 0))
        };
        HealthView {
            available: match s.circuit {
                Circuit::Closed | Circuit::HalfOpen => true,
                Circuit::Open { until_ms } => now >= until_ms,
            },
            circuit: s.circuit,
            ttft_ms,
            tpot_ms,
            samples,
        }
    }

    /// An attempt on the target begins: an open circuit whose cooldown is over becomes half-open (this attempt is
    /// a trial).
    pub fn attempt_started(&self) {
        let now = self.now_ms();
        let mut s = lock(&self.state);
        if let Circuit::Open { until_ms } = s.circuit
            && now >= until_ms
        {
            s.circuit = Circuit::HalfOpen;
        }
    }

    /// An attempt's outcome. `ttft_ms` is its time to the response header when it got one.
    pub fn record(&self, success: bool, ttft_ms: Option<f64>, settings: Option<&BreakerSettings>) {
        let now = self.now_ms();
        let mut s = lock(&self.state);
        if let Some(ms) = ttft_ms.filter(|_| success) {
            push(&mut s.ttft, (now, ms));
        }
        push(&mut s.outcomes, (now, success));
        if success {
            s.successes += 1;
            s.consecutive_failures = 0;
        } else {
            s.failures += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_failure_ms = Some(now);
        }
        let Some(settings) = settings else {
            s.circuit = Circuit::Closed;
            return;
        };
        let cooldown = (settings.cooldown_seconds * 1000.0) as i64;
        s.circuit = match (s.circuit, success) {
            (Circuit::HalfOpen, true) => {
                // Recovered: the old failures no longer speak for the target.
                s.outcomes.clear();
                Circuit::Closed
            }
            (Circuit::HalfOpen, false) => Circuit::Open {
                until_ms: now + cooldown,
            },
            (Circuit::Open { until_ms }, _) => Circuit::Open { until_ms },
            (Circuit::Closed, true) => Circuit::Closed,
            (Circuit::Closed, false) => {
                let since = now - (settings.window_seconds * 1000.0) as i64;
                let (n, failed) = s
                    .outcomes
                    .iter()
                    .filter(|(t, _)| *t >= since)
                    .fold((0u32, 0u32), |(n, f), (_, ok)| (n + 1, f + u32::from(!ok)));
                let rate_open = n >= settings.min_requests
                    && f64::from(failed) >= settings.error_rate * f64::from(n);
                if s.consecutive_failures >= settings.failures || rate_open {
                    Circuit::Open {
                        until_ms: now + cooldown,
                    }
                } else {
                    Circuit::Closed
                }
            }
        };
    }

    /// A finished answer's time per output token.
    pub fn record_tpot(&self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            let now = self.now_ms();
            push(&mut lock(&self.state).tpot, (now, ms));
        }
    }

    /// The target as the node reports it (latencies in microseconds, rounded).
    pub fn report(&self) -> TargetHealthReport {
        let view = self.view();
        let s = lock(&self.state);
        // Only keys made in tests lack the six parts; they report with empty parts.
        let parts = TargetKey::parse(&self.key)
            .map_or([""; 4], |k| [k.route_id, k.element_id, k.provider, k.model]);
        let [route_id, element_id, provider, model] = parts.map(str::to_owned);
        TargetHealthReport {
            key: self.key.to_string(),
            route_id,
            element_id,
            provider,
            model,
            circuit: view.circuit.name().to_owned(),
            available: view.available,
            ttft_us: view.ttft_ms.map(ms_to_us),
            tpot_us: view.tpot_ms.map(ms_to_us),
            successes: s.successes,
            failures: s.failures,
            consecutive_failures: s.consecutive_failures,
            last_failure_ms: s.last_failure_ms,
        }
    }
}

/// Milliseconds as whole microseconds (a negative or non-finite mean, which recording refuses, reads 0).
fn ms_to_us(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
}

/// What the attempt loop does for one routed target: feed its health, and retry or fall back by the element's
/// statuses.
#[derive(Debug)]
pub struct TargetPolicy {
    pub health: Arc<TargetHealth>,
    pub breaker: Option<BreakerSettings>,
    /// Statuses that retry the same target.
    pub retry_on: Vec<u16>,
    /// Statuses that move on to the next target; any other failure status is the answer.
    pub fallback_on: Vec<u16>,
}

impl TargetPolicy {
    /// An attempt is about to start.
    pub fn attempt_started(&self) {
        self.health.attempt_started();
    }

    /// An attempt got an answer with `status` after `ttft_ms`.
    pub fn answered(&self, status: u16, ttft_ms: f64) {
        let failed = status == 429 || status >= 500;
        self.health
            .record(!failed, (!failed).then_some(ttft_ms), self.breaker.as_ref());
    }

    /// An attempt got no answer (connection failure or timeout).
    pub fn unanswered(&self) {
        self.health.record(false, None, self.breaker.as_ref());
    }
}

/// Every target's health on this node.
#[derive(Debug)]
pub struct HealthTable {
    targets: Mutex<HashMap<Arc<str>, Arc<TargetHealth>>>,
    clock: Arc<dyn Clock>,
}

impl Default for HealthTable {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl HealthTable {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            targets: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// The health of `key`, created closed when the table does not hold it yet.
    pub fn target(&self, key: &str) -> Arc<TargetHealth> {
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = targets.get(key) {
            return Arc::clone(t);
        }
        let key: Arc<str> = Arc::from(key);
        let t = Arc::new(TargetHealth::new(Arc::clone(&key), Arc::clone(&self.clock)));
        targets.insert(key, Arc::clone(&t));
        t
    }

    /// Forgets the targets no compiled route holds any more (called after each configuration change).
    pub fn prune(&self) {
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets.retain(|_, t| Arc::strong_count(t) > 1);
    }

    /// Every target's report, by key (uncapped: the status report bounds it with
    /// [`gatehouse_shared::node::cap_targets`]).
    pub fn reports(&self) -> Vec<TargetHealthReport> {
        let targets: Vec<Arc<TargetHealth>> = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out: Vec<TargetHealthReport> = targets.iter().map(|t| t.report()).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests;
