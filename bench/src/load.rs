//! Load phases: open loop (requests on a clock) and closed loop (N clients back to back).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{HttpClient, Outcome, Target, exchange};
use crate::stats::{Schedule, Summary, rate};

/// Everything one phase measured.
#[derive(Debug, Clone, Default)]
pub struct PhaseResult {
    pub sent: usize,
    pub latencies: Vec<Duration>,
    pub first_bytes: Vec<Duration>,
    pub events: usize,
    /// Failures by kind.
    pub errors: BTreeMap<String, usize>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// How late the client sent, against the schedule (open loop only): large values mean the client itself was
    /// short of CPU and the latencies are suspect.
    pub send_lag: Vec<Duration>,
}

impl PhaseResult {
    pub(crate) fn add(&mut self, outcome: Outcome) {
        self.sent += 1;
        match outcome {
            Outcome::Ok {
                latency,
                first_byte,
                events,
            } => {
                self.latencies.push(latency);
                self.first_bytes.push(first_byte);
                self.events += events;
            }
            Outcome::Failed(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    /// Adds `other`, a further round of the same phase: its requests, samples, failures and time.
    pub fn absorb(&mut self, other: PhaseResult) {
        self.sent += other.sent;
        self.latencies.extend(other.latencies);
        self.first_bytes.extend(other.first_bytes);
        self.events += other.events;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.elapsed += other.elapsed;
        self.send_lag.extend(other.send_lag);
    }

    pub fn ok(&self) -> usize {
        self.latencies.len()
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        rate(self.ok(), self.elapsed)
    }

    pub fn latency(&self) -> Option<Summary> {
        Summary::of(&self.latencies)
    }

    pub fn first_byte(&self) -> Option<Summary> {
        Summary::of(&self.first_bytes)
    }

    pub fn lag(&self) -> Option<Summary> {
        Summary::of(&self.send_lag)
    }
}

/// Sends `schedule.count()` requests on the schedule's clock, each in its own task, whatever the earlier ones are
/// doing. Bounded: it sends exactly that many, and each ends within `timeout`.
pub async fn open_loop(
    client: &HttpClient,
    target: &Arc<Target>,
    schedule: Schedule,
    timeout: Duration,
) -> PhaseResult {
    let mut result = PhaseResult::default();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for i in 0..schedule.count() {
        let due = start + schedule.offset(i);
        tokio::time::sleep_until(due).await;
        result
            .send_lag
            .push(Instant::now().saturating_duration_since(due));
        let (client, target) = (client.clone(), target.clone());
        tasks.spawn(async move { exchange(&client, &target, timeout).await });
        while let Some(done) = tasks.try_join_next() {
            result.add(done.unwrap_or_else(|e| Outcome::Failed(format!("task: {e}"))));
        }
    }
    while let Some(done) = tasks.join_next().await {
        result.add(done.unwrap_or_else(|e| Outcome::Failed(format!("task: {e}"))));
    }
    result.elapsed = start.elapsed();
    result
}

/// `concurrency` clients each sending the next request as soon as the last one is answered, until `duration` has
/// passed: the most the pair (client, server) can do.
pub async fn closed_loop(
    client: &HttpClient,
    target: &Arc<Target>,
    concurrency: usize,
    duration: Duration,
    timeout: Duration,
) -> PhaseResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, target) = (client.clone(), target.clone());
        workers.spawn(async move {
            let mut mine = PhaseResult::default();
            while Instant::now() < deadline {
                mine.add(exchange(&client, &target, timeout).await);
            }
            mine
        });
    }
    let mut result = PhaseResult::default();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(mine) => {
                result.sent += mine.sent;
                result.latencies.extend(mine.latencies);
                result.first_bytes.extend(mine.first_bytes);
                result.events += mine.events;
                for (k, v) in mine.errors {
                    *result.errors.entry(k).or_default() += v;
                }
            }
            Err(e) => *result.errors.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    result.elapsed = start.elapsed();
    result
}
