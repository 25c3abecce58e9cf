//! The rate admission of `lease.rs` against Redis: `admit_request` takes from its node's lease or asks the `LEASE`
//! script, `admit_all` takes from the leases of all its counters and sends those without one in one `ADMIT_ALL`
//! script (all or none), and the refill task sends the leases ordered in the background.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::super::WindowTechnique;
use super::super::lease::{Ask, Held, LocalAnswer, SETTLE_WAIT, Taken, log_lease_validity_ms};
use super::super::window::{EXACT_LOG_MAX, RATE_SLOTS, slot_ms};
use super::{RedisLimits, Shared, scripts};
use crate::error::BusError;

/// Refills in flight at once.
const REFILLS_IN_FLIGHT: usize = 32;

/// One rate limit, as the lease script takes it.
#[derive(Debug, Clone)]
pub(super) struct RateKey {
    /// The full Redis key.
    pub(super) key: String,
    pub(super) limit: u64,
    window_ms: i64,
    kind: RateKind,
}

#[derive(Debug, Clone, Copy)]
enum RateKind {
    Fixed,
    Log { lease_validity_ms: i64 },
    Slots { slot_ms: i64 },
}

impl RateKey {
    /// The kind as the scripts name it.
    fn kind_name(&self) -> &'static str {
        match self.kind {
            RateKind::Fixed => "fixed",
            RateKind::Log { .. } => "log",
            RateKind::Slots { .. } => "slots",
        }
    }
}

/// What the lease script answered.
#[derive(Debug, Clone, Copy)]
pub(super) enum LeaseReply {
    /// `admissions` (at least 1), usable until `valid_until_ms` in local time.
    Granted {
        admissions: u64,
        valid_until_ms: i64,
    },
    /// Nothing left in the window; the next admission could come in `retry_after_ms`.
    Refused { retry_after_ms: i64 },
}

/// A lease ordered in the background.
#[derive(Debug)]
pub(super) struct Refill {
    pub(super) rate: RateKey,
    pub(super) ask: Ask,
}

/// A rate key compared by its Redis key alone: checks of one `admit_all` that name the same counter.
#[derive(Debug)]
pub(super) struct SameCounter(pub(super) RateKey);

impl PartialEq for SameCounter {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

/// One distinct counter of an `admit_all` call.
#[derive(Debug)]
pub(super) struct AllCounter {
    /// Its limit is the smallest of the checks that name it.
    pub(super) rate: RateKey,
    /// The check a refusal names.
    pub(super) report: usize,
    pub(super) window: Duration,
}

/// What one attempt of `admit_all` came to.
#[derive(Debug, Clone, Copy)]
pub(super) enum AllAttempt {
    Admitted,
    /// `counter` (an index into the call's distinct counters) had no room.
    Refused {
        counter: usize,
        retry_after_ms: i64,
    },
}

/// What the `ADMIT_ALL` script answered, one entry per counter it was sent.
#[derive(Debug)]
enum AllReply {
    /// Admissions granted (the request's own included) and until when they are usable, in local time.
    Granted(Vec<(u64, i64)>),
    /// Nothing counted; the wait of each counter that had no room.
    Refused(Vec<Option<i64>>),
}

/// Admissions an `admit_all` took from its node's leases while it has not decided: given back unless `kept`, and
/// the asks for leases it sent counted as ended, however the call ends (its future may be dropped by a timeout).
struct Tentative<'a> {
    shared: &'a Shared,
    counters: &'a [AllCounter],
    taken: Vec<(usize, Taken)>,
    /// Counters whose ask for more than one admission is in flight.
    asked: Vec<usize>,
    kept: bool,
}

impl Drop for Tentative<'_> {
    fn drop(&mut self) {
        let give_back = !self.kept && !self.taken.is_empty();
        if !give_back && self.asked.is_empty() {
            return;
        }
        let now_ms = self.shared.local_ms();
        let mut leases = self.shared.lock_leases();
        if give_back {
            for (counter, taken) in &self.taken {
                let rate = &self.counters[*counter].rate;
                leases.give_back(&rate.key, rate.limit, *taken, now_ms);
            }
        }
        for counter in &self.asked {
            leases.ask_done(&self.counters[*counter].rate.key);
        }
        drop(leases);
        self.shared.settled.notify_waiters();
    }
}

impl RedisLimits {
    pub(super) fn rate_key(
        &self,
        key: &str,
        limit: u64,
        window_ms: i64,
        technique: WindowTechnique,
    ) -> RateKey {
        let (kind, label) = match technique {
            WindowTechnique::Fixed => (RateKind::Fixed, "rate:fixed"),
            WindowTechnique::Sliding if limit <= EXACT_LOG_MAX => (
                RateKind::Log {
                    lease_validity_ms: log_lease_validity_ms(window_ms),
                },
                "rate:log",
            ),
            WindowTechnique::Sliding => (
                RateKind::Slots {
                    slot_ms: slot_ms(window_ms, RATE_SLOTS),
                },
                "rate:slots",
            ),
        };
        RateKey {
            key: self.shared.key(key, label, window_ms),
            limit,
            window_ms,
            kind,
        }
    }

    /// Sends a refill to the refill task; when its queue is full, the refill is not ordered.
    pub(super) fn order_refill(&self, refill: Refill) {
        if let Err(unsent) = self.refills.try_send(refill) {
            let key = &unsent.into_inner().rate.key;
            self.shared.lock_leases().refill_ended(key);
        }
    }

    /// One try at admitting a request under every counter: from the node's leases where it has them, and for the
    /// rest one `ADMIT_ALL` script, which counts under all of those or none. Whatever was taken from leases is
    /// given back unless the request is admitted.
    pub(super) async fn try_admit_all(
        &self,
        counters: &[AllCounter],
        waited: bool,
    ) -> Result<AllAttempt, BusError> {
        let mut tentative = Tentative {
            shared: &self.shared,
            counters,
            taken: Vec::new(),
            asked: Vec::new(),
            kept: false,
        };
        let mut asks: Vec<(usize, Ask)> = Vec::new();
        let mut refills = Vec::new();
        {
            let now_ms = self.shared.local_ms();
            let mut leases = self.shared.lock_leases();
            for (i, counter) in counters.iter().enumerate() {
                let rate = &counter.rate;
                if rate.limit == 0 {
                    asks.push((i, Ask::ONE));
                    continue;
                }
                match leases.take_returnable(&rate.key, rate.limit, now_ms, waited) {
                    (LocalAnswer::Admitted { refill }, Some(taken)) => {
                        tentative.taken.push((i, taken));
                        if let Some(ask) = refill {
                            refills.push(Refill {
                                rate: rate.clone(),
                                ask,
                            });
                        }
                    }
                    // Unlike `admit_request`, a request that finds admissions on their way does not wait for them:
                    // its other counters may need a round trip anyway, and this one rides along in it.
                    (LocalAnswer::Admitted { .. } | LocalAnswer::Coming, _) => {
                        asks.push((i, Ask::ONE));
                    }
                    (LocalAnswer::AskRedis(ask), _) => {
                        if ask.want > 1 {
                            tentative.asked.push(i);
                        }
                        asks.push((i, ask));
                    }
                }
            }
        }
        for refill in refills {
            self.order_refill(refill);
        }
        if asks.is_empty() {
            tentative.kept = true;
            return Ok(AllAttempt::Admitted);
        }
        if asks.iter().all(|(i, _)| counters[*i].rate.limit == 0) {
            // Only limits of zero lack a lease: refused without asking Redis anything.
            let first = asks
                .iter()
                .map(|(i, _)| *i)
                .min_by_key(|i| counters[*i].report)
                .unwrap_or(0);
            return Ok(AllAttempt::Refused {
                counter: first,
                retry_after_ms: 0,
            });
        }
        match self.shared.lease_all(counters, &asks).await? {
            AllReply::Granted(grants) => {
                let now_ms = self.shared.local_ms();
                let mut leases = self.shared.lock_leases();
                for ((i, _), (admissions, valid_until_ms)) in asks.iter().zip(grants) {
                    if admissions > 1 {
                        let rate = &counters[*i].rate;
                        leases.land(
                            &rate.key,
                            rate.limit,
                            admissions - 1,
                            admissions,
                            valid_until_ms,
                            now_ms,
                        );
                    }
                }
                drop(leases);
                tentative.kept = true;
                Ok(AllAttempt::Admitted)
            }
            AllReply::Refused(waits) => asks
                .iter()
                .zip(waits)
                .filter_map(|((i, _), wait)| Some((*i, wait?)))
                .min_by_key(|(i, _)| counters[*i].report)
                .map(|(counter, retry_after_ms)| AllAttempt::Refused {
                    counter,
                    retry_after_ms,
                })
                .ok_or_else(|| {
                    BusError::corrupt("admit_all script reply", "a refusal without a counter")
                }),
        }
    }
}

impl Shared {
    /// Whether the request got one of this node's own admissions, waiting up to [`SETTLE_WAIT`] for those in
    /// flight (`lease.rs`, "Own admissions in flight").
    pub(super) async fn wait_for_held(&self, key: &str, limit: u64) -> bool {
        let settle = async {
            loop {
                // Registered before looking, so a landing between the look and the wait is not missed.
                let landed = self.settled.notified();
                tokio::pin!(landed);
                landed.as_mut().enable();
                let now_ms = self.local_ms();
                match self.lock_leases().take_held(key, limit, now_ms) {
                    Held::Admitted => return true,
                    Held::Nothing => return false,
                    Held::Coming => {}
                }
                landed.await;
            }
        };
        tokio::time::timeout(SETTLE_WAIT, settle)
            .await
            .unwrap_or(false)
    }

    /// For an `admit_all` refused under `key`: whether this node holds admissions of it now, or gets some before
    /// `until` (an ask or a refill on its way), so that trying again may admit. Takes nothing.
    pub(super) async fn admissions_coming(&self, key: &str, limit: u64, until: Instant) -> bool {
        let look = async {
            loop {
                let landed = self.settled.notified();
                tokio::pin!(landed);
                landed.as_mut().enable();
                let now_ms = self.local_ms();
                match self.lock_leases().look_held(key, limit, now_ms) {
                    Held::Admitted => return true,
                    Held::Nothing => return false,
                    Held::Coming => {}
                }
                landed.await;
            }
        };
        tokio::time::timeout_at(until.into(), look)
            .await
            .unwrap_or(false)
    }

    /// Asks Redis for the request's admission under each counter `asks` names (and for a lease where `want` > 1),
    /// all or none.
    async fn lease_all(
        &self,
        counters: &[AllCounter],
        asks: &[(usize, Ask)],
    ) -> Result<AllReply, BusError> {
        // As in `lease`: read before the time the script gets, so local deadlines end no later than Redis's.
        let sent_ms = self.local_ms();
        let mut invocation = scripts::ADMIT_ALL.prepare_invoke();
        invocation.arg(self.now_arg());
        for (i, ask) in asks {
            let rate = &counters[*i].rate;
            invocation.key(&rate.key);
            if rate.limit == 0 {
                invocation
                    .arg("zero")
                    .arg(0)
                    .arg(rate.window_ms)
                    .arg(1)
                    .arg(0)
                    .arg("")
                    .arg("");
                continue;
            }
            invocation
                .arg(rate.kind_name())
                .arg(rate.limit)
                .arg(rate.window_ms)
                .arg(ask.want)
                .arg(ask.pace_per_s);
            match rate.kind {
                RateKind::Fixed => invocation.arg("").arg(""),
                RateKind::Log { lease_validity_ms } => {
                    let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                    invocation
                        .arg(format!("{}:{sequence}", self.node))
                        .arg(lease_validity_ms)
                }
                RateKind::Slots { slot_ms } => invocation.arg(slot_ms).arg(""),
            };
        }
        let reply: Vec<i64> =
            self.noted(invocation.invoke_async(&mut self.commands.clone()).await)?;
        match reply.split_first() {
            Some((1, pairs)) if pairs.len() == 2 * asks.len() => Ok(AllReply::Granted(
                pairs
                    .chunks_exact(2)
                    .map(|p| {
                        (
                            u64::try_from(p[0]).unwrap_or(1).max(1),
                            sent_ms.saturating_add(p[1]),
                        )
                    })
                    .collect(),
            )),
            Some((0, waits)) if waits.len() == asks.len() => Ok(AllReply::Refused(
                waits.iter().map(|&w| (w >= 0).then_some(w)).collect(),
            )),
            _ => Err(BusError::corrupt(
                "admit_all script reply",
                format!("{reply:?}"),
            )),
        }
    }

    /// Asks Redis for admissions; `own`: the asking request takes the first one.
    pub(super) async fn lease(
        &self,
        rate: &RateKey,
        ask: Ask,
        own: bool,
    ) -> Result<LeaseReply, BusError> {
        // Read before the time the script gets (the test clock's or Redis's, both later), so the local deadline
        // never outlasts the one Redis counted with.
        let sent_ms = self.local_ms();
        let mut invocation = scripts::LEASE.prepare_invoke();
        invocation
            .key(&rate.key)
            .arg(self.now_arg())
            .arg(rate.kind_name())
            .arg(rate.limit)
            .arg(rate.window_ms)
            .arg(ask.want)
            .arg(if own { "1" } else { "0" })
            .arg(ask.pace_per_s);
        match rate.kind {
            RateKind::Fixed => {}
            RateKind::Log { lease_validity_ms } => {
                let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                invocation
                    .arg(format!("{}:{sequence}", self.node))
                    .arg(lease_validity_ms);
            }
            RateKind::Slots { slot_ms } => {
                invocation.arg(slot_ms);
            }
        }
        let reply: Vec<i64> =
            self.noted(invocation.invoke_async(&mut self.commands.clone()).await)?;
        match reply.as_slice() {
            [0, wait_ms] => Ok(LeaseReply::Refused {
                retry_after_ms: *wait_ms,
            }),
            [granted, valid_ms] if *granted > 0 => Ok(LeaseReply::Granted {
                admissions: u64::try_from(*granted).unwrap_or(1),
                valid_until_ms: sent_ms.saturating_add(*valid_ms),
            }),
            other => Err(BusError::corrupt(
                "lease script reply",
                format!("{other:?}"),
            )),
        }
    }
}

/// An ask for more than one admission on its way: when it ends, however it ends (the caller's future may be
/// dropped by a timeout), the key stops waiting for it.
pub(super) struct AskInFlight<'a> {
    pub(super) shared: &'a Shared,
    pub(super) key: &'a str,
}

impl Drop for AskInFlight<'_> {
    fn drop(&mut self) {
        self.shared.lock_leases().ask_done(self.key);
        self.shared.settled.notify_waiters();
    }
}

/// The refill task: sends each ordered lease and stores what Redis grants, a few at a time.
pub(super) async fn refill_orders(shared: Arc<Shared>, mut orders: mpsc::Receiver<Refill>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            order = orders.recv(), if in_flight.len() < REFILLS_IN_FLIGHT => {
                let Some(order) = order else { break };
                let shared = Arc::clone(&shared);
                in_flight.push(async move {
                    let answer = shared.lease(&order.rate, order.ask, false).await;
                    (order, answer)
                });
            }
            Some((order, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                let now_ms = shared.local_ms();
                let mut leases = shared.lock_leases();
                leases.refill_ended(&order.rate.key);
                match answer {
                    Ok(LeaseReply::Granted { admissions, valid_until_ms }) => leases.land(
                        &order.rate.key,
                        order.rate.limit,
                        admissions,
                        admissions,
                        valid_until_ms,
                        now_ms,
                    ),
                    Ok(LeaseReply::Refused { .. }) => {}
                    Err(e) => tracing::debug!(error = %e, "rate-limit lease refill failed"),
                }
                drop(leases);
                shared.settled.notify_waiters();
            }
        }
    }
}
