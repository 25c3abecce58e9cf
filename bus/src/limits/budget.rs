//! Budget arithmetic without I/O or clocks: every method takes `now_ms`. `memory.rs` keeps these states in a
//! map; `scripts.rs` (`RESERVE`, `SETTLE`) does the same in Lua, and `tests/budgets.rs` runs one suite against
//! both so they agree.
//!
//! A counter holds what was spent (settled) in its period, and the holds of requests in flight, each with a
//! deadline: a hold counts while `now < deadline`. A settled reservation id is remembered (as a 64-bit hash: at
//! thousands of requests per second over several counters, the ids themselves would take hundreds of megabytes) for
//! [`SETTLED_KEPT_MS`], so a repeated settle counts once.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::{BudgetCounter, Reserved};

/// How long a settled reservation id is remembered: a settle repeated within it (a retry after a timeout) counts
/// once; one repeated later counts again, which errs on the side of the limit. A minute covers any retry of a
/// settle (the data plane settles once, in the request's last phase).
pub(crate) const SETTLED_KEPT_MS: i64 = 60_000;
/// How long a budget counter outlives its period (so settles of the period's last requests still land in it).
pub(crate) const BUDGET_GRACE_MS: i64 = 60 * 60_000;

/// One hold: the reservation id and the amount held (a repeated reserve with another amount is another hold, as
/// in Redis, where the member is `{id}:{amount}`).
type HoldId = (String, u64);

/// One budget counter in memory.
#[derive(Debug)]
pub(crate) struct BudgetState {
    spent: u64,
    /// The sum of `holds`.
    held: u64,
    holds: HashMap<HoldId, i64>,
    by_deadline: BTreeSet<(i64, HoldId)>,
    /// Settled reservation ids ([`id_hash`]) and until when they are remembered; `settled_order` in the order
    /// they came.
    settled: HashMap<u64, i64>,
    settled_order: VecDeque<(i64, u64)>,
    expires_at_ms: i64,
}

/// What one counter showed a reservation: spent and held now, and whether it holds this reservation already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) spent: u64,
    pub(crate) held: u64,
    pub(crate) already: bool,
}

impl BudgetState {
    pub(crate) fn new(period_end_ms: i64, now_ms: i64) -> Self {
        Self {
            spent: 0,
            held: 0,
            holds: HashMap::new(),
            by_deadline: BTreeSet::new(),
            settled: HashMap::new(),
            settled_order: VecDeque::new(),
            expires_at_ms: expiry(period_end_ms, now_ms),
        }
    }

    /// Whether the counter is gone (as its Redis keys would be).
    pub(crate) fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms
    }

    pub(crate) fn spent(&self) -> u64 {
        self.spent
    }

    /// The sum of the holds.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// Drops a hold without settling it (a reservation taken back because another counter refused).
    pub(crate) fn release(&mut self, id: &str, amount: u64) {
        let hold = (id.to_owned(), amount);
        if let Some(deadline) = self.holds.remove(&hold) {
            self.by_deadline.remove(&(deadline, hold));
            self.held = self.held.saturating_sub(amount);
        }
    }

    /// Drops the holds whose deadline has come and the settled ids kept long enough.
    pub(crate) fn prune(&mut self, now_ms: i64) {
        while let Some(first) = self.by_deadline.first()
            && first.0 <= now_ms
        {
            let (_, hold) = self.by_deadline.pop_first().expect("seen above");
            self.holds.remove(&hold);
            self.held = self.held.saturating_sub(hold.1);
        }
        // In arrival order; a clock that stepped back leaves a few ids a little longer.
        while let Some((until, _)) = self.settled_order.front()
            && *until <= now_ms
        {
            let (until, id) = self.settled_order.pop_front().expect("seen above");
            if self.settled.get(&id) == Some(&until) {
                self.settled.remove(&id);
            }
        }
    }

    /// What a reservation of `amount` under `id` finds (after [`Self::prune`]).
    pub(crate) fn seen(&self, id: &str, amount: u64) -> Seen {
        Seen {
            spent: self.spent,
            held: self.held,
            already: self.holds.contains_key(&(id.to_owned(), amount)),
        }
    }

    /// Holds `amount` until `deadline_ms`; a hold of this id and amount already there is kept once, its deadline
    /// moved.
    pub(crate) fn hold(
        &mut self,
        id: &str,
        amount: u64,
        deadline_ms: i64,
        period_end_ms: i64,
        now_ms: i64,
    ) {
        let hold = (id.to_owned(), amount);
        match self.holds.insert(hold.clone(), deadline_ms) {
            Some(old) => {
                self.by_deadline.remove(&(old, hold.clone()));
            }
            None => self.held = self.held.saturating_add(amount),
        }
        self.by_deadline.insert((deadline_ms, hold));
        self.touch(period_end_ms, now_ms);
    }

    /// Releases the hold (if it is still there) and adds `actual` to spent, unless this id was settled lately.
    pub(crate) fn settle(
        &mut self,
        id: &str,
        amount: u64,
        actual: u64,
        period_end_ms: i64,
        now_ms: i64,
    ) {
        let settled_id = id_hash(id);
        if self.settled.contains_key(&settled_id) {
            return;
        }
        let hold = (id.to_owned(), amount);
        if let Some(deadline) = self.holds.remove(&hold) {
            self.by_deadline.remove(&(deadline, hold));
            self.held = self.held.saturating_sub(amount);
        }
        self.spent = self.spent.saturating_add(actual);
        let until = now_ms.saturating_add(SETTLED_KEPT_MS);
        self.settled.insert(settled_id, until);
        self.settled_order.push_back((until, settled_id));
        self.touch(period_end_ms, now_ms);
    }

    fn touch(&mut self, period_end_ms: i64, now_ms: i64) {
        self.expires_at_ms = self.expires_at_ms.max(expiry(period_end_ms, now_ms));
    }
}

/// A reservation id as the settled set keeps it: 64 bits make a false "already settled" a 1-in-10^19 event.
fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher as _, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
}

/// When a counter written at `now_ms` expires: a grace after its period, as its Redis keys.
fn expiry(period_end_ms: i64, now_ms: i64) -> i64 {
    period_end_ms.max(now_ms).saturating_add(BUDGET_GRACE_MS)
}

/// The first counter in the caller's order that refuses `amount`, given what each distinct counter showed
/// (`seen[group_of[i]]` for counter `i`). `None`: every counter has room.
pub(crate) fn first_refusal(
    counters: &[BudgetCounter],
    group_of: &[usize],
    seen: &[Seen],
    amount: u64,
) -> Option<Reserved> {
    counters
        .iter()
        .zip(group_of)
        .enumerate()
        .find_map(|(index, (counter, &group))| {
            let s = seen[group];
            let wanted = s.spent.saturating_add(s.held).saturating_add(amount);
            (!s.already && wanted > counter.limit).then_some(Reserved::Refused {
                index,
                spent: s.spent,
                held: s.held,
            })
        })
}

/// The latest period end among the counters that share a key with `counters[report]` (one counter, so one
/// expiry).
pub(crate) fn period_end(counters: &[BudgetCounter], group_of: &[usize], report: usize) -> i64 {
    let group = group_of[report];
    counters
        .iter()
        .zip(group_of)
        .filter(|(_, g)| **g == group)
        .map(|(c, _)| c.period_end_ms)
        .max()
        .unwrap_or(counters[report].period_end_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_704_110_400_000;

    #[test]
    fn a_hold_counts_until_its_deadline_and_a_settle_counts_once() {
        let mut b = BudgetState::new(T0 + 1_000_000, T0);
        b.hold("r1", 30, T0 + 100, T0 + 1_000_000, T0);
        b.hold("r1", 30, T0 + 200, T0 + 1_000_000, T0);
        assert_eq!(
            b.seen("r1", 30),
            Seen {
                spent: 0,
                held: 30,
                already: true
            }
        );
        b.prune(T0 + 199);
        assert_eq!(
            b.seen("r2", 5).held,
            30,
            "the repeated hold moved the deadline"
        );
        b.prune(T0 + 200);
        assert_eq!(b.seen("r2", 5).held, 0);
        // Settled late: the hold lapsed, the cost counts all the same, and only once.
        b.settle("r1", 30, 12, T0 + 1_000_000, T0 + 300);
        b.settle("r1", 30, 12, T0 + 1_000_000, T0 + 301);
        assert_eq!(b.spent(), 12);
        b.prune(T0 + 300 + SETTLED_KEPT_MS);
        b.settle("r1", 30, 12, T0 + 1_000_000, T0 + 300 + SETTLED_KEPT_MS);
        assert_eq!(b.spent(), 24, "forgotten after SETTLED_KEPT_MS");
        assert!(!b.expired(T0 + 1_000_000 + BUDGET_GRACE_MS - 1));
        assert!(b.expired(T0 + 1_000_000 + BUDGET_GRACE_MS));
    }

    #[test]
    fn the_refusal_names_the_first_counter_in_the_callers_order() {
        let counter = |limit| BudgetCounter {
            key: "k".into(),
            limit,
            period_end_ms: T0,
        };
        let counters = [counter(100), counter(10), counter(6)];
        let seen = [
            Seen {
                spent: 4,
                held: 2,
                already: false,
            },
            Seen {
                spent: 0,
                held: 0,
                already: false,
            },
        ];
        // Counters 0 and 2 are one counter (group 0): 2 refuses first at its own, smaller limit.
        assert_eq!(
            first_refusal(&counters, &[0, 1, 0], &seen, 3),
            Some(Reserved::Refused {
                index: 2,
                spent: 4,
                held: 2
            })
        );
        assert_eq!(first_refusal(&counters, &[0, 1, 0], &seen, 0), None);
    }
}
