//! The keys phase's orchestration: a virtual key against none through the same gateway, alternating rounds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use gatehouse_bench::client::{Target, status_of};
use gatehouse_bench::keys::{Duo, Keys};
use gatehouse_bench::load::{PhaseResult, closed_loop, open_loop};
use gatehouse_bench::measure::Side;
use gatehouse_bench::stats::Schedule;
use http::HeaderValue;

use super::{Bench, Settle, target};

/// `t` with `Authorization: Bearer {secret}` instead of its own (a virtual key instead of the provider key).
fn with_bearer(t: &Target, secret: &str) -> Result<Arc<Target>> {
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}"))
        .context("the key is not a valid header value")?;
    value.set_sensitive(true);
    let mut t = t.clone();
    t.headers
        .retain(|(name, _)| name != http::header::AUTHORIZATION);
    t.headers.push((http::header::AUTHORIZATION, value));
    Ok(Arc::new(t))
}

/// `key` with its last character changed: the shape of a virtual key, but not one the gateway knows.
fn wrong_key(key: &str) -> String {
    let mut wrong = key.to_owned();
    let last = wrong.pop();
    wrong.push(if last == Some('A') { 'B' } else { 'A' });
    wrong
}

/// The names of the keys phase's sides (`--keys-sides`).
const PLAIN: &str = "plain";
const KEYED: &str = "keyed";

/// A load for one round of the keys phase: open loop on a schedule, or closed loop for a while.
#[derive(Debug, Clone, Copy)]
enum Load {
    Open(Schedule),
    Closed(Duration),
}

/// The pause after each round of the keys phase before the gateway's CPU is read: a keyed request settles its
/// budget hold and counts its tokens after the answer, and that work belongs to its round.
const KEYS_SETTLE: Duration = Duration::from_millis(250);

impl Bench {
    async fn load(&self, t: &Arc<Target>, load: Load) -> PhaseResult {
        let a = &self.args;
        match load {
            Load::Open(schedule) => open_loop(&self.client, t, schedule, a.timeout).await,
            Load::Closed(duration) => {
                closed_loop(&self.client, t, a.concurrency, duration, a.timeout).await
            }
        }
    }

    /// The sides of the keys phase in `rounds` rounds of `round` each, after one `warmup` of each; the order
    /// flips every round (plain, keyed; keyed, plain; …) so neither side always follows the other. Each side's
    /// rounds are added up, in the order of `sides`.
    async fn keys_rounds(
        &self,
        what: &str,
        sides: &[(&str, Arc<Target>)],
        round: Load,
        warmup: Load,
        rounds: u64,
    ) -> Vec<Side> {
        for (name, t) in sides {
            eprintln!("gatehouse-bench: keys: {what} {name} (warm-up)");
            self.load(t, warmup).await;
        }
        tokio::time::sleep(KEYS_SETTLE).await;
        let mut sums: Vec<Option<Side>> = vec![None; sides.len()];
        for i in 1..=rounds {
            let mut order: Vec<usize> = (0..sides.len()).collect();
            if i % 2 == 0 {
                order.reverse();
            }
            for j in order {
                let (name, t) = &sides[j];
                let side = self
                    .measured(
                        &format!("keys: {what} {name} (round {i}/{rounds})"),
                        self.load(t, round),
                        Settle::Pause(KEYS_SETTLE),
                    )
                    .await;
                match &mut sums[j] {
                    Some(sum) => sum.absorb(side),
                    slot @ None => *slot = Some(side),
                }
            }
        }
        sums.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// The keys phase: the chat request through `--through` without a virtual key and with `--key`, alternating,
    /// open loop at the chat phase's rate and then saturated (`--keys-sides`, `--keys-loads` pick some); then one
    /// request with a wrong key. Skipped without `--through` or `--key`.
    pub(super) async fn keys(&self) -> Result<Option<Keys>> {
        let a = &self.args;
        let (Some(base), Some(key)) = (a.through.as_deref(), a.key.as_deref()) else {
            eprintln!("gatehouse-bench: keys skipped: it needs --through and --key");
            return Ok(None);
        };
        let plain = target(base, false, None, 0)?;
        let keyed = with_bearer(&plain, key)?;
        let wrong = with_bearer(&plain, &wrong_key(key))?;
        let sides: Vec<(&str, Arc<Target>)> = [(PLAIN, plain), (KEYED, keyed)]
            .into_iter()
            .filter(|(name, _)| a.keys_sides.iter().any(|s| s == name))
            .collect();
        let rounds = a.keys_rounds.max(1);
        let wants = |load: &str| a.keys_loads.iter().any(|l| l == load);
        // Each side's sums, by name, into a pair.
        let duo = |sums: Vec<Side>| {
            let mut duo = Duo::default();
            for ((name, _), side) in sides.iter().zip(sums) {
                let slot = if *name == PLAIN {
                    &mut duo.base
                } else {
                    &mut duo.test
                };
                *slot = Some(side);
            }
            duo
        };
        let mut k = Keys {
            rounds,
            ..Keys::default()
        };
        if wants("open") {
            let schedule = Schedule::for_duration(a.rate, a.duration);
            let round = Schedule::new(a.rate, schedule.count().div_ceil(rounds));
            let warmup = Schedule::for_duration(a.rate, a.warmup);
            k.open = duo(self
                .keys_rounds(
                    "open loop",
                    &sides,
                    Load::Open(round),
                    Load::Open(warmup),
                    rounds,
                )
                .await);
        }
        if wants("closed") {
            k.closed = duo(self
                .keys_rounds(
                    "closed loop",
                    &sides,
                    Load::Closed(a.closed_duration.div_f64(rounds as f64)),
                    Load::Closed(Duration::from_secs(1)),
                    rounds,
                )
                .await);
        }
        k.wrong_key_status = status_of(&self.client, &wrong, a.timeout).await;
        Ok(Some(k))
    }
}
