//! Admissions a node takes from a shared rate-limit counter ahead of its requests, so that most requests are
//! admitted without a Redis round trip (design §6: "local pre-checks may avoid a round trip when a budget is
//! clearly far from its limit").
//!
//! A *lease* is a number of admissions that Redis has already counted against the limit and handed to this node,
//! valid until a deadline. The node admits requests from it locally; when half of it is used, it orders the next
//! one in the background (one refill task per store, not one per request), so a node with steady traffic rarely
//! waits. When no lease is left, the request asks Redis itself, as it did without leases.
//!
//! # Why the limit still holds
//! Redis counts a lease in full when it grants it, so the admissions of all nodes together never exceed the limit.
//! The price is the other way: admissions leased but not used count until they leave the window, so a node may be
//! refused while another still holds unused admissions, and a lease left over at its deadline is lost. Both only
//! refuse early, never admit too many. The grant is kept small near the limit: Redis grants at most
//! `room / 16` (at least 1) where `room` is what the window still has, so the last admissions go one at a time.
//!
//! How long a lease is valid follows from the window (see `scripts::LEASE`): a fixed window's lease ends with the
//! window; a slotted sliding limit's with the slot it was counted in; an exact sliding log's after
//! [`log_lease_validity_ms`], its unused members scored at that deadline, so each admitted request counts for at
//! least a whole window after it was admitted.
//!
//! # Lease size
//! A node asks for what its own pace needs for [`LEASE_HORIZON_MS`], capped by the store's `max_lease`. The pace
//! is the key's requests on this node (admitted or not) in the current and the previous second-long bucket, over
//! the time they cover, so it follows a change within a second or two and a burst of two requests does not read
//! as a flood. Redis caps the grant further by what that pace can use before the lease's deadline, so a lease
//! that ends with its slot in 20 ms is small. A key's first ask is for one admission, and a node with a request or
//! two a second keeps asking for one at a time (exact, and one round trip per request as without leases).
//!
//! # Own admissions in flight
//! Only one ask for more than one admission per key (a refill, or a request asking for more than itself) is in
//! flight at a time. A request that finds no lease while one is on its way waits for it (at most [`SETTLE_WAIT`])
//! rather than make a round trip of its own, and asks Redis for itself only if it brings nothing. A request Redis
//! refused also waits for admissions of its node in flight (they may be the very ones it was refused for) and
//! takes one if they land: a node never refuses while it holds an admission.
//!
//! # Taken, then given back
//! `admit_all` takes an admission from the lease of each of its counters before it knows whether the others
//! have room ([`LeaseTable::take_returnable`]); when one has none, it gives them back
//! ([`LeaseTable::give_back`]) to the grant each came from, and only to it: Redis counted a grant's admissions
//! for its own window and deadline. A used-up grant stays in place while it is still valid and no other grant
//! needs the slot, so a give-back usually finds it; when it does not, the admission is lost (refusing early).
//!
//! Times here are the store's local milliseconds (a manual clock in tests, else a monotonic clock). A lease's
//! deadline is the local time just before the request went out plus what Redis said was left, so it ends no later
//! than Redis's own deadline.

use std::collections::HashMap;

/// A lease should last a node about this long at its recent pace.
pub(super) const LEASE_HORIZON_MS: u64 = 500;
/// The pace is counted in buckets this long.
pub(super) const PACE_BUCKET_MS: i64 = 1_000;
/// How long a refused request waits for its node's own admissions in flight.
/// Well under `FallbackLimits`'s 200 ms call timeout, together with a Redis call after it.
pub(super) const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Keys held before leases that have ended are swept out.
const SWEEP_AT: usize = 4_096;

/// How long the leased members of an exact sliding log stay usable: 1/64 of the window (as a slotted limit's
/// slot), at most a second, at least a millisecond. Unused members count until this deadline plus the window.
pub(super) fn log_lease_validity_ms(window_ms: i64) -> i64 {
    (window_ms / 64).clamp(1, 1_000)
}

/// Admissions granted at once and usable until a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    /// Unique within the table, so an admission taken from it can be given back to it and to no other.
    id: u64,
    left: u64,
    size: u64,
    valid_until_ms: i64,
}

impl Grant {
    fn usable(&self, now_ms: i64) -> bool {
        self.left > 0 && now_ms < self.valid_until_ms
    }
}

/// One key's leases on this node.
#[derive(Debug)]
struct KeyLease {
    /// The limit the leases were granted under; a changed limit drops them.
    limit: u64,
    current: Option<Grant>,
    /// A refill that arrived while `current` still had admissions.
    next: Option<Grant>,
    /// Whether this node asked Redis for this key before (the first ask is for one admission).
    asked: bool,
    /// The pace: requests in the bucket that started at `pace_start_ms`, and in the one before it.
    pace_start_ms: i64,
    pace_current: u64,
    pace_previous: u64,
    refill_pending: bool,
    /// Requests that asked Redis for more than themselves and have not heard back.
    asks_in_flight: u32,
}

impl KeyLease {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            current: None,
            next: None,
            asked: false,
            pace_start_ms: i64::MIN,
            pace_current: 0,
            pace_previous: 0,
            refill_pending: false,
            asks_in_flight: 0,
        }
    }

    /// Counts a request toward the pace.
    fn count_request(&mut self, now_ms: i64) {
        let since = now_ms.saturating_sub(self.pace_start_ms);
        if since >= PACE_BUCKET_MS {
            self.pace_previous = if since < 2 * PACE_BUCKET_MS {
                self.pace_current
            } else {
                0
            };
            self.pace_current = 0;
            self.pace_start_ms = if since < 2 * PACE_BUCKET_MS {
                self.pace_start_ms + PACE_BUCKET_MS
            } else {
                now_ms
            };
        }
        self.pace_current = self.pace_current.saturating_add(1);
    }

    /// Requests per second over the two buckets.
    fn pace_per_s(&self, now_ms: i64) -> u64 {
        let covered = PACE_BUCKET_MS
            + now_ms
                .saturating_sub(self.pace_start_ms)
                .clamp(0, PACE_BUCKET_MS);
        (self.pace_previous + self.pace_current).saturating_mul(1_000)
            / u64::try_from(covered).unwrap_or(1)
    }

    /// What to ask for: the pace over the horizon.
    fn ask(&mut self, now_ms: i64, max_lease: u64) -> Ask {
        if !std::mem::replace(&mut self.asked, true) {
            return Ask::ONE;
        }
        let pace_per_s = self.pace_per_s(now_ms);
        Ask {
            want: pace_per_s
                .saturating_mul(LEASE_HORIZON_MS)
                .div_ceil(1_000)
                .clamp(1, max_lease),
            pace_per_s,
        }
    }

    /// Makes `current` a grant that can admit now, if this key has one.
    fn usable_grant(&mut self, now_ms: i64) -> Option<&mut Grant> {
        if !self.current.is_some_and(|g| g.usable(now_ms)) {
            self.current = self.next.take().filter(|g| g.usable(now_ms));
        }
        self.current.as_mut()
    }

    fn awaits_admissions(&self) -> bool {
        self.refill_pending || self.asks_in_flight > 0
    }

    fn is_spent(&self, now_ms: i64) -> bool {
        !self.awaits_admissions()
            && !self.current.is_some_and(|g| g.usable(now_ms))
            && !self.next.is_some_and(|g| g.usable(now_ms))
    }
}

/// How many admissions to ask Redis for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ask {
    pub(super) want: u64,
    /// The node's recent requests per second for the key: Redis grants no more than this pace can use before the
    /// lease ends.
    pub(super) pace_per_s: u64,
}

impl Ask {
    pub(super) const ONE: Ask = Ask {
        want: 1,
        pace_per_s: 0,
    };
}

/// What the table says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocalAnswer {
    /// Admitted from a lease. `refill` orders the next lease in the background.
    Admitted { refill: Option<Ask> },
    /// No lease now, but a refill or an ask is on its way back: wait for it ([`LeaseTable::take_held`]), and
    /// take again (`waited`) if it brings nothing.
    Coming,
    /// No lease: ask Redis, one admission being this request's. When `want` > 1 the ask counts as in flight until
    /// [`LeaseTable::ask_done`].
    AskRedis(Ask),
}

/// What a refused request finds among its node's own admissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// One was left (it is now this request's).
    Admitted,
    /// None now, but an ask or a refill is on its way back.
    Coming,
    Nothing,
}

/// Every key's leases on one node.
#[derive(Debug)]
pub(super) struct LeaseTable {
    max_lease: u64,
    keys: HashMap<String, KeyLease>,
    /// The id of the next grant landed.
    grants: u64,
}

/// An admission taken from a lease that may be given back ([`LeaseTable::give_back`]): which grant it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Taken {
    grant: u64,
}

impl LeaseTable {
    /// `max_lease` 1 turns leasing off: every request asks Redis for itself.
    pub(super) fn new(max_lease: u64) -> Self {
        Self {
            max_lease: max_lease.max(1),
            keys: HashMap::new(),
            grants: 0,
        }
    }

    pub(super) fn max_lease(&self) -> u64 {
        self.max_lease
    }

    /// Admits a request from a lease of `key`, or says how much to ask Redis for. `waited`: the request already
    /// waited for admissions in flight ([`LocalAnswer::Coming`]) and was counted then.
    pub(super) fn take(&mut self, key: &str, limit: u64, now_ms: i64, waited: bool) -> LocalAnswer {
        self.take_returnable(key, limit, now_ms, waited).0
    }

    /// [`Self::take`], and when it admits from a lease, what to give back if the request ends up not admitted
    /// after all ([`LocalAnswer::Admitted`] always comes with `Some`).
    pub(super) fn take_returnable(
        &mut self,
        key: &str,
        limit: u64,
        now_ms: i64,
        waited: bool,
    ) -> (LocalAnswer, Option<Taken>) {
        let max_lease = self.max_lease;
        let entry = self.entry(key, limit, now_ms);
        if !waited {
            entry.count_request(now_ms);
        }
        if let Some(grant) = entry.usable_grant(now_ms) {
            grant.left -= 1;
            let taken = Taken { grant: grant.id };
            let low = grant.size >= 2 && grant.left <= grant.size / 2;
            let refill = if low && entry.next.is_none() && !entry.awaits_admissions() {
                entry.refill_pending = true;
                Some(entry.ask(now_ms, max_lease))
            } else {
                None
            };
            return (LocalAnswer::Admitted { refill }, Some(taken));
        }
        (Self::without_lease(entry, now_ms, max_lease, waited), None)
    }

    /// What a request that found no usable lease does.
    fn without_lease(
        entry: &mut KeyLease,
        now_ms: i64,
        max_lease: u64,
        waited: bool,
    ) -> LocalAnswer {
        // Admissions on their way: wait for them rather than make a round trip of its own; after that wait, ask
        // for itself only, so that requests arriving together do not each take a lease.
        if entry.awaits_admissions() {
            return if waited {
                LocalAnswer::AskRedis(Ask::ONE)
            } else {
                LocalAnswer::Coming
            };
        }
        let ask = entry.ask(now_ms, max_lease);
        if ask.want > 1 {
            entry.asks_in_flight += 1;
        }
        LocalAnswer::AskRedis(ask)
    }

    /// Returns an admission [`Self::take_returnable`] took, to the grant it came from, if that grant is still
    /// this key's and usable: Redis counted it for that grant's window and deadline, so it may serve another
    /// request under them. Otherwise it is lost, which only refuses early.
    pub(super) fn give_back(&mut self, key: &str, limit: u64, taken: Taken, now_ms: i64) {
        let Some(entry) = self.keys.get_mut(key).filter(|e| e.limit == limit) else {
            return;
        };
        if let Some(grant) = [entry.current.as_mut(), entry.next.as_mut()]
            .into_iter()
            .flatten()
            .find(|g| g.id == taken.grant && now_ms < g.valid_until_ms)
        {
            grant.left += 1;
        }
    }

    /// For a request refused by Redis: whether this node holds an admission of `key` now or has some on their way
    /// ([`Held::Admitted`] here takes nothing).
    pub(super) fn look_held(&mut self, key: &str, limit: u64, now_ms: i64) -> Held {
        let Some(entry) = self.keys.get_mut(key).filter(|e| e.limit == limit) else {
            return Held::Nothing;
        };
        if entry.usable_grant(now_ms).is_some() {
            Held::Admitted
        } else if entry.awaits_admissions() {
            Held::Coming
        } else {
            Held::Nothing
        }
    }

    /// For a request waiting for admissions in flight (told [`LocalAnswer::Coming`], or refused by Redis): takes
    /// one this node holds, or says whether some are still on their way.
    pub(super) fn take_held(&mut self, key: &str, limit: u64, now_ms: i64) -> Held {
        let Some(entry) = self.keys.get_mut(key).filter(|e| e.limit == limit) else {
            return Held::Nothing;
        };
        if let Some(grant) = entry.usable_grant(now_ms) {
            grant.left -= 1;
            Held::Admitted
        } else if entry.awaits_admissions() {
            Held::Coming
        } else {
            Held::Nothing
        }
    }

    /// An ask for more than one admission came back (or was abandoned).
    pub(super) fn ask_done(&mut self, key: &str) {
        if let Some(entry) = self.keys.get_mut(key) {
            entry.asks_in_flight = entry.asks_in_flight.saturating_sub(1);
        }
    }

    /// Keeps admissions Redis granted: `left` of a grant of `size`, usable until `valid_until_ms` (an inline ask
    /// keeps what is beyond the asking request's own; a refill keeps all). Dropped when the key's limit changed
    /// meanwhile: they were granted under the old one.
    pub(super) fn land(
        &mut self,
        key: &str,
        limit: u64,
        left: u64,
        size: u64,
        valid_until_ms: i64,
        now_ms: i64,
    ) {
        if let Some(entry) = self.keys.get_mut(key).filter(|e| e.limit == limit) {
            self.grants += 1;
            store_grant(
                entry,
                Grant {
                    id: self.grants,
                    left,
                    size,
                    valid_until_ms,
                },
                now_ms,
            );
        }
    }

    /// The background refill of `key` ended (it landed, found the limit reached, failed, or was never sent): the
    /// next one may be ordered.
    pub(super) fn refill_ended(&mut self, key: &str) {
        if let Some(entry) = self.keys.get_mut(key) {
            entry.refill_pending = false;
        }
    }

    fn entry(&mut self, key: &str, limit: u64, now_ms: i64) -> &mut KeyLease {
        if !self.keys.contains_key(key) {
            if self.keys.len() >= SWEEP_AT {
                self.keys.retain(|_, lease| !lease.is_spent(now_ms));
            }
            self.keys.insert(key.to_owned(), KeyLease::new(limit));
        }
        let entry = self.keys.get_mut(key).expect("inserted above");
        if entry.limit != limit {
            // Granted under another limit: a lowered limit must not be exceeded through them.
            *entry = KeyLease::new(limit);
        }
        entry
    }

    #[cfg(test)]
    fn held(&self, key: &str, now_ms: i64) -> u64 {
        self.keys.get(key).map_or(0, |e| {
            [e.current, e.next]
                .into_iter()
                .flatten()
                .filter(|g| g.usable(now_ms))
                .map(|g| g.left)
                .sum()
        })
    }
}

/// Where a new grant goes: in place of a used-up `current`, else as `next`, else merged into a `next` with the same
/// deadline. A third grant with another deadline is dropped (its admissions were counted, so dropping them only
/// refuses early); it needs two refills to cross, which one pending refill per key rules out but for inline asks
/// racing one. A `current` used up but not past its deadline stays while `next` is free (the next take moves
/// past it): an `admit_all` that took its last admission may still give it back.
fn store_grant(entry: &mut KeyLease, grant: Grant, now_ms: i64) {
    if !grant.usable(now_ms) {
        return;
    }
    let next_free = !entry.next.is_some_and(|g| g.usable(now_ms));
    if !entry.current.is_some_and(|g| g.usable(now_ms)) {
        if next_free && entry.current.is_some_and(|g| now_ms < g.valid_until_ms) {
            entry.next = Some(grant);
        } else {
            entry.current = Some(grant);
        }
    } else if next_free {
        entry.next = Some(grant);
    } else if let Some(next) = entry
        .next
        .as_mut()
        .filter(|n| n.valid_until_ms == grant.valid_until_ms)
    {
        next.left += grant.left;
        next.size += grant.size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "p:limits:rl:a:g:rate:fixed:60000";

    fn ask(want: u64, pace_per_s: u64) -> Ask {
        Ask { want, pace_per_s }
    }

    /// Asks like a request would and, when told to ask Redis, grants `granted` valid for `valid_ms`.
    fn request(table: &mut LeaseTable, now: i64, granted: u64, valid_ms: i64) -> LocalAnswer {
        let answer = table.take(KEY, 100, now, false);
        if let LocalAnswer::AskRedis(asked) = answer {
            if granted > 0 {
                table.land(KEY, 100, granted - 1, granted, now + valid_ms, now);
            }
            if asked.want > 1 {
                table.ask_done(KEY);
            }
        }
        answer
    }

    #[test]
    fn a_slow_node_asks_for_one_admission_at_a_time() {
        let mut table = LeaseTable::new(1_024);
        assert_eq!(
            request(&mut table, 0, 1, 60_000),
            LocalAnswer::AskRedis(Ask::ONE)
        );
        for second in 1..10 {
            assert_eq!(
                request(&mut table, second * 1_000, 1, 60_000),
                LocalAnswer::AskRedis(ask(1, 2)),
                "one request a second (two in the 1 s and a bit the buckets cover)"
            );
        }
        // A pause, then one request: its pace is its own.
        assert_eq!(
            request(&mut table, 60_000, 1, 60_000),
            LocalAnswer::AskRedis(ask(1, 1))
        );
    }

    #[test]
    fn the_pace_counts_the_current_and_the_previous_second() {
        let mut lease = KeyLease::new(100);
        for t in 0..100 {
            lease.count_request(t * 10);
        }
        // 100 requests in the first second, seen at its end.
        assert_eq!(lease.pace_per_s(999), 100 * 1_000 / 1_999);
        assert_eq!(lease.pace_per_s(500), 100 * 1_000 / 1_500);
        lease.count_request(1_000);
        assert_eq!(lease.pace_current, 1);
        assert_eq!(lease.pace_previous, 100);
        assert_eq!(lease.pace_per_s(1_000), 101);
        // A gap of two buckets forgets the past.
        lease.count_request(3_500);
        assert_eq!((lease.pace_previous, lease.pace_current), (0, 1));
    }

    #[test]
    fn a_busy_node_asks_for_its_pace_and_refills_before_it_runs_out() {
        let mut table = LeaseTable::new(1_024);
        assert_eq!(
            request(&mut table, 0, 1, 60_000),
            LocalAnswer::AskRedis(Ask::ONE)
        );
        // 200 more requests in 100 ms: with this one, 202 over the 1.1 s the two buckets cover is 183 a second,
        // so the ask is for half a second of it.
        for t in 0..200 {
            table.keys.get_mut(KEY).unwrap().count_request(t / 2);
        }
        assert_eq!(
            table.take(KEY, 100, 100, false),
            LocalAnswer::AskRedis(ask(92, 183))
        );
        table.land(KEY, 100, 91, 92, 60_000, 100);
        table.ask_done(KEY);
        // Admitted locally; the next lease is ordered at half of this one, for the pace by then.
        for _ in 0..44 {
            assert_eq!(
                table.take(KEY, 100, 100, false),
                LocalAnswer::Admitted { refill: None }
            );
        }
        assert_eq!(
            table.take(KEY, 100, 100, false),
            LocalAnswer::Admitted {
                refill: Some(ask(112, 224))
            }
        );
        // One refill at a time: the rest of the lease is used, then a request waits for the refill, and asks for
        // itself only if the wait brings nothing.
        while table.held(KEY, 100) > 0 {
            assert_eq!(
                table.take(KEY, 100, 100, false),
                LocalAnswer::Admitted { refill: None }
            );
        }
        assert_eq!(table.take(KEY, 100, 100, false), LocalAnswer::Coming);
        assert_eq!(
            table.take(KEY, 100, 100, true),
            LocalAnswer::AskRedis(Ask::ONE)
        );
        table.refill_ended(KEY);
        table.land(KEY, 100, 112, 112, 60_000, 101);
        assert_eq!(table.held(KEY, 101), 112);
        // The cap holds however fast the node goes.
        let mut table = LeaseTable::new(64);
        request(&mut table, 0, 1, 60_000);
        for t in 0..5_000 {
            table.keys.get_mut(KEY).unwrap().count_request(t / 10);
        }
        assert!(matches!(
            table.take(KEY, 100, 500, false),
            LocalAnswer::AskRedis(Ask { want: 64, .. })
        ));
    }

    #[test]
    fn a_lease_past_its_deadline_admits_nothing() {
        let mut table = LeaseTable::new(64);
        request(&mut table, 0, 1, 1_000);
        request(&mut table, 1, 10, 1_000);
        assert_eq!(table.held(KEY, 2), 9);
        assert!(matches!(
            table.take(KEY, 100, 1_001, false),
            LocalAnswer::AskRedis(_)
        ));
        assert_eq!(table.held(KEY, 1_001), 0);
    }

    #[test]
    fn a_changed_limit_drops_the_leases_granted_under_the_old_one() {
        let mut table = LeaseTable::new(64);
        request(&mut table, 0, 1, 60_000);
        request(&mut table, 1, 10, 60_000);
        assert_eq!(
            table.take(KEY, 5, 2, false),
            LocalAnswer::AskRedis(Ask::ONE),
            "a fresh start under the new limit"
        );
        // A refill ordered under the old limit is not kept under the new one.
        table.refill_ended(KEY);
        table.land(KEY, 100, 10, 10, 60_000, 3);
        assert_eq!(table.held(KEY, 3), 0);
        assert_eq!(table.take_held(KEY, 100, 3), Held::Nothing);
    }

    #[test]
    fn leasing_off_always_asks_for_one() {
        let mut table = LeaseTable::new(1);
        for now in 0..20 {
            let answer = request(&mut table, now, 1, 60_000);
            assert!(
                matches!(answer, LocalAnswer::AskRedis(Ask { want: 1, .. })),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_failed_refill_lets_the_next_request_ask_for_a_lease_again() {
        let mut table = LeaseTable::new(64);
        request(&mut table, 0, 1, 60_000);
        request(&mut table, 10, 4, 60_000);
        assert!(matches!(
            table.take(KEY, 100, 11, false),
            LocalAnswer::Admitted { refill: Some(_) }
        ));
        table.take(KEY, 100, 12, false);
        table.take(KEY, 100, 13, false);
        table.refill_ended(KEY);
        assert!(matches!(
            table.take(KEY, 100, 14, false),
            LocalAnswer::AskRedis(Ask { want: 2.., .. })
        ));
    }

    #[test]
    fn one_ask_for_a_lease_at_a_time_and_a_refused_request_waits_for_it() {
        let mut table = LeaseTable::new(64);
        request(&mut table, 0, 1, 60_000);
        for t in 0..1_000 {
            table.keys.get_mut(KEY).unwrap().count_request(t / 100);
        }
        // A lease ask goes out; requests meanwhile wait for it.
        let LocalAnswer::AskRedis(first) = table.take(KEY, 100, 10, false) else {
            panic!("no lease yet")
        };
        assert!(first.want > 1);
        assert_eq!(table.take(KEY, 100, 11, false), LocalAnswer::Coming);
        // One of those is refused by Redis (the lease took the last admissions): it is told to wait.
        assert_eq!(table.take_held(KEY, 100, 12), Held::Coming);
        // The lease lands: the refused request takes from it.
        table.land(KEY, 100, 3, 4, 60_000, 13);
        table.ask_done(KEY);
        assert_eq!(table.take_held(KEY, 100, 13), Held::Admitted);
        assert_eq!(table.held(KEY, 13), 2);
        // The rest is used (ordering a refill at half); with the refill still out, a refusal waits for it.
        table.take(KEY, 100, 14, false);
        table.take(KEY, 100, 15, false);
        assert_eq!(table.take_held(KEY, 100, 16), Held::Coming);
        table.refill_ended(KEY);
        assert_eq!(table.take_held(KEY, 100, 16), Held::Nothing);
    }

    #[test]
    fn an_admission_taken_is_given_back_to_its_own_grant_only() {
        let mut table = LeaseTable::new(64);
        request(&mut table, 0, 1, 60_000);
        request(&mut table, 1, 3, 60_000);
        // Two left in the grant; take both, the second in an `admit_all` that is then refused.
        table.take(KEY, 100, 2, false);
        let (answer, taken) = table.take_returnable(KEY, 100, 3, false);
        assert!(matches!(answer, LocalAnswer::Admitted { .. }));
        // A refill lands meanwhile: the used-up grant stays, so the admission goes back to it.
        table.refill_ended(KEY);
        table.land(KEY, 100, 5, 5, 120_000, 4);
        table.give_back(KEY, 100, taken.unwrap(), 5);
        assert_eq!(table.held(KEY, 5), 6);
        // One taken from a grant that is gone is not given to another.
        let (_, taken) = table.take_returnable(KEY, 100, 6, false);
        while table.held(KEY, 6) > 0 {
            table.take(KEY, 100, 6, false);
        }
        table.land(KEY, 100, 4, 4, 180_000, 7);
        table.take(KEY, 100, 7, false);
        table.give_back(KEY, 100, taken.unwrap(), 8);
        assert_eq!(table.held(KEY, 8), 3);
    }

    #[test]
    fn keys_whose_leases_ended_are_swept_when_the_table_grows() {
        let mut table = LeaseTable::new(64);
        for i in 0..SWEEP_AT {
            table.take(&format!("k{i}"), 10, 0, false);
        }
        table.take("one more", 10, 1, false);
        assert_eq!(table.keys.len(), 1);
    }
}
