//! Window arithmetic without I/O or clocks: every method takes `now_ms`. `memory.rs` keeps these states in maps;
//! `scripts.rs` does the same arithmetic in Lua, and `tests/limits.rs` runs one suite against both so they agree.
//!
//! Time is integer milliseconds since the Unix epoch. A trailing window of length `W` at `now` is `(now - W, now]`:
//! a request counted at `t` stops counting at exactly `t + W`.

use std::collections::VecDeque;
use std::time::Duration;

use super::Admission;

/// Up to this limit a sliding rate limit keeps one timestamp per counted request (exact); above it, slots.
pub const EXACT_LOG_MAX: u64 = 10_000;
/// Slots per window of a sliding rate limit above [`EXACT_LOG_MAX`].
pub(crate) const RATE_SLOTS: i64 = 64;
/// Slots per window of a sliding spend limit.
pub(crate) const SPEND_SLOTS: i64 = 32;

/// The length of one slot when `window_ms` is cut into `slots`: rounded up, so `slots` slots always cover a window.
pub(crate) fn slot_ms(window_ms: i64, slots: i64) -> i64 {
    ((window_ms + slots - 1) / slots).max(1)
}

/// The start of the epoch-aligned window that holds `now_ms`.
pub(crate) fn fixed_start(now_ms: i64, window_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(window_ms)
}

/// A refusal whose next chance is `wait_ms` from now (never less than 1 ms: "now" would already have been admitted).
pub(crate) fn limited(wait_ms: i64) -> Admission {
    Admission::Limited {
        retry_after: Duration::from_millis(u64::try_from(wait_ms.max(1)).unwrap_or(1)),
    }
}

/// Requests counted in the current epoch-aligned window.
#[derive(Debug, Clone)]
pub(crate) struct FixedCount {
    start_ms: i64,
    count: u64,
}

impl FixedCount {
    pub(crate) fn new() -> Self {
        Self {
            start_ms: i64::MIN,
            count: 0,
        }
    }

    pub(crate) fn admit(&mut self, now_ms: i64, limit: u64, window_ms: i64) -> Admission {
        if let Some(refused) = self.refusal(now_ms, limit, window_ms) {
            return refused;
        }
        self.count_one();
        Admission::Admitted
    }

    /// Whether one more request fits now: `None` when it does (count it with [`Self::count_one`] before the
    /// time moves), else the refusal. Counts nothing.
    pub(crate) fn refusal(&mut self, now_ms: i64, limit: u64, window_ms: i64) -> Option<Admission> {
        let start = fixed_start(now_ms, window_ms);
        if self.start_ms != start {
            self.start_ms = start;
            self.count = 0;
        }
        (self.count >= limit).then(|| limited(start + window_ms - now_ms))
    }

    /// Counts a request [`Self::refusal`] just found room for.
    pub(crate) fn count_one(&mut self) {
        self.count += 1;
    }

    /// Nothing counted here matters any more (the window it belongs to has ended).
    pub(crate) fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        now_ms >= self.start_ms.saturating_add(window_ms)
    }
}

/// The time of every request counted in the trailing window, oldest first: exact, 8 bytes per counted request.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLog {
    times: VecDeque<i64>,
}

impl RequestLog {
    pub(crate) fn admit(&mut self, now_ms: i64, limit: u64, window_ms: i64) -> Admission {
        if let Some(refused) = self.refusal(now_ms, limit, window_ms) {
            return refused;
        }
        self.count_one(now_ms);
        Admission::Admitted
    }

    /// Whether one more request fits now (`None`), else the refusal. Counts nothing.
    pub(crate) fn refusal(&mut self, now_ms: i64, limit: u64, window_ms: i64) -> Option<Admission> {
        while self.times.front().is_some_and(|&t| t <= now_ms - window_ms) {
            self.times.pop_front();
        }
        (self.times.len() as u64 >= limit).then(|| {
            let oldest = self.times.front().copied().unwrap_or(now_ms);
            limited(oldest + window_ms - now_ms)
        })
    }

    /// Counts a request at `now_ms`.
    pub(crate) fn count_one(&mut self, now_ms: i64) {
        // A clock that stepped back would put `now` before the newest entry; keeping the log sorted keeps the
        // expiry loop above correct.
        let at = self.times.partition_point(|&t| t <= now_ms);
        self.times.insert(at, now_ms);
    }

    pub(crate) fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        self.times.back().is_none_or(|&t| t <= now_ms - window_ms)
    }
}

/// Amounts (requests or nano-USD) per slot of `slot_ms`; slot `id` covers `[id * slot_ms, (id + 1) * slot_ms)`.
/// Only slots that hold something are kept, in ascending order.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    slot_ms: i64,
    slots: VecDeque<(i64, u64)>,
}

impl Slots {
    pub(crate) fn new(slot_ms: i64) -> Self {
        Self {
            slot_ms,
            slots: VecDeque::new(),
        }
    }

    /// Counts one request if the slots overlapping the trailing window hold fewer than `limit`.
    ///
    /// Every slot that overlaps the window counts in full, so a request is never admitted when the window already
    /// holds `limit`: when the last request of any window was admitted, every earlier one in that window sat in a
    /// slot that was counted. The price is refusing up to one slot's length early.
    pub(crate) fn admit(&mut self, now_ms: i64, limit: u64, window_ms: i64) -> Admission {
        if let Some(refused) = self.refusal(now_ms, limit, window_ms) {
            return refused;
        }
        self.add(now_ms, 1);
        Admission::Admitted
    }

    /// Whether one more request fits now (`None`), else the refusal. Counts nothing.
    pub(crate) fn refusal(&mut self, now_ms: i64, limit: u64, window_ms: i64) -> Option<Admission> {
        let first = (now_ms - window_ms + 1).div_euclid(self.slot_ms);
        self.drop_before(first);
        let total: u64 = self.slots.iter().map(|&(_, n)| n).sum();
        if total < limit {
            return None;
        }
        // The next request fits once enough of the oldest slots have left: slot `id` stops overlapping the
        // window when `now - window + 1` reaches the slot's end.
        let mut left = total;
        for &(id, n) in &self.slots {
            left -= n;
            if left < limit {
                return Some(limited((id + 1) * self.slot_ms + window_ms - 1 - now_ms));
            }
        }
        Some(limited(window_ms))
    }

    /// Counts a request at `now_ms`.
    pub(crate) fn count_one(&mut self, now_ms: i64) {
        self.add(now_ms, 1);
    }

    /// The amount in the trailing window: slots inside it in full, the oldest slot that straddles its start
    /// weighted by how much of it is inside (an estimate that assumes the slot's amount was spread evenly).
    pub(crate) fn spent(&mut self, now_ms: i64, window_ms: i64) -> u64 {
        let start = now_ms - window_ms;
        let first = start.div_euclid(self.slot_ms);
        self.drop_before(first);
        let inside_of_first = u128::try_from((first + 1) * self.slot_ms - start).unwrap_or(0);
        self.slots
            .iter()
            .map(|&(id, amount)| {
                if id == first {
                    let weighted = u128::from(amount) * inside_of_first
                        / u128::try_from(self.slot_ms).unwrap_or(1);
                    u64::try_from(weighted).unwrap_or(u64::MAX)
                } else {
                    amount
                }
            })
            .fold(0, u64::saturating_add)
    }

    pub(crate) fn record(&mut self, now_ms: i64, window_ms: i64, amount: u64) {
        self.drop_before((now_ms - window_ms).div_euclid(self.slot_ms));
        self.add(now_ms, amount);
    }

    /// Every slot has left the window (of a rate limit and of a spend limit alike).
    pub(crate) fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        self.slots
            .back()
            .is_none_or(|&(id, _)| now_ms >= (id + 1) * self.slot_ms + window_ms)
    }

    fn drop_before(&mut self, first: i64) {
        while self.slots.front().is_some_and(|&(id, _)| id < first) {
            self.slots.pop_front();
        }
    }

    fn add(&mut self, now_ms: i64, amount: u64) {
        let id = now_ms.div_euclid(self.slot_ms);
        let at = self.slots.partition_point(|&(s, _)| s < id);
        match self.slots.get_mut(at) {
            Some((s, n)) if *s == id => *n = n.saturating_add(amount),
            _ => self.slots.insert(at, (id, amount)),
        }
    }
}

/// Nano-USD spent in the current epoch-aligned window.
#[derive(Debug, Clone)]
pub(crate) struct FixedSum {
    start_ms: i64,
    amount: u64,
}

impl FixedSum {
    pub(crate) fn new() -> Self {
        Self {
            start_ms: i64::MIN,
            amount: 0,
        }
    }

    pub(crate) fn spent(&self, now_ms: i64, window_ms: i64) -> u64 {
        if self.start_ms == fixed_start(now_ms, window_ms) {
            self.amount
        } else {
            0
        }
    }

    pub(crate) fn record(&mut self, now_ms: i64, window_ms: i64, amount: u64) {
        let start = fixed_start(now_ms, window_ms);
        if self.start_ms != start {
            self.start_ms = start;
            self.amount = 0;
        }
        self.amount = self.amount.saturating_add(amount);
    }

    pub(crate) fn idle(&self, now_ms: i64, window_ms: i64) -> bool {
        now_ms >= self.start_ms.saturating_add(window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    /// 2024-01-01 12:00:00 UTC.
    const NOON: i64 = 1_704_110_400_000;

    fn admitted(a: Admission) -> bool {
        a == Admission::Admitted
    }

    fn retry_ms(a: Admission) -> u128 {
        match a {
            Admission::Limited { retry_after } => retry_after.as_millis(),
            Admission::Admitted => panic!("expected a refusal"),
        }
    }

    #[test]
    fn a_fixed_window_opens_again_at_the_next_aligned_boundary() {
        let window = 10 * MINUTE;
        let mut c = FixedCount::new();
        let at_12_09 = NOON + 9 * MINUTE;
        for _ in 0..10 {
            assert!(admitted(c.admit(at_12_09, 10, window)));
        }
        assert_eq!(retry_ms(c.admit(at_12_09, 10, window)), 60_000);
        assert_eq!(retry_ms(c.admit(NOON + window - 1, 10, window)), 1);
        // 12:10 starts a new window: ten more, at 12:11 too.
        for _ in 0..10 {
            assert!(admitted(c.admit(NOON + 11 * MINUTE, 10, window)));
        }
        assert_eq!(
            retry_ms(c.admit(NOON + 11 * MINUTE, 10, window)),
            9 * 60_000
        );
    }

    #[test]
    fn a_fixed_window_does_not_count_refusals_and_goes_idle_when_it_ends() {
        let mut c = FixedCount::new();
        assert!(admitted(c.admit(NOON, 1, MINUTE)));
        for _ in 0..5 {
            assert!(!admitted(c.admit(NOON + 1, 1, MINUTE)));
        }
        assert!(!c.idle(NOON + MINUTE - 1, MINUTE));
        assert!(c.idle(NOON + MINUTE, MINUTE));
        assert!(admitted(c.admit(NOON + MINUTE, 1, MINUTE)));
    }

    #[test]
    fn a_sliding_log_admits_again_exactly_when_the_oldest_leaves() {
        let window = 10_000;
        let t0 = NOON + 123;
        let mut log = RequestLog::default();
        for offset in [0, 1_000, 2_000] {
            assert!(admitted(log.admit(t0 + offset, 3, window)));
        }
        assert_eq!(retry_ms(log.admit(t0 + 5_000, 3, window)), 5_000);
        assert_eq!(retry_ms(log.admit(t0 + window - 1, 3, window)), 1);
        assert!(admitted(log.admit(t0 + window, 3, window)));
        // Now the oldest is the one from t0 + 1000.
        assert_eq!(retry_ms(log.admit(t0 + window, 3, window)), 1_000);
        assert!(!log.idle(t0 + 2 * window - 1, window));
        assert!(log.idle(t0 + 2 * window, window));
    }

    /// A deterministic generator, so a failure reproduces.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// The largest number of admissions in any trailing window: the maximum is reached by a window that ends at an
    /// admission, so checking those is enough.
    fn most_in_any_window(times: &[i64], window: i64) -> usize {
        times
            .iter()
            .map(|&end| {
                times
                    .iter()
                    .filter(|&&t| t > end - window && t <= end)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Drives `admit` with bursts at random times and checks, after each refusal, that `retry_after` is exact
    /// for the state at hand: one millisecond earlier is still refused, at `retry_after` it is admitted.
    fn hammer<S: Clone>(
        mut state: S,
        admit: impl Fn(&mut S, i64, u64, i64) -> Admission,
        limit: u64,
        window: i64,
        seed: u64,
    ) -> Vec<i64> {
        let mut rng = Lcg(seed);
        let mut now = NOON;
        let mut times = Vec::new();
        for _ in 0..3_000 {
            now += i64::try_from(rng.below(u64::try_from(window).unwrap() / 8)).unwrap();
            for _ in 0..=rng.below(4) {
                match admit(&mut state, now, limit, window) {
                    Admission::Admitted => times.push(now),
                    Admission::Limited { retry_after } => {
                        let wait = i64::try_from(retry_after.as_millis()).unwrap();
                        assert!(wait >= 1 && wait <= 2 * window, "{wait}");
                        let mut early = state.clone();
                        assert!(!admitted(admit(&mut early, now + wait - 1, limit, window)));
                        let mut on_time = state.clone();
                        assert!(admitted(admit(&mut on_time, now + wait, limit, window)));
                    }
                }
            }
        }
        times
    }

    #[test]
    fn a_sliding_log_never_admits_more_than_the_limit_in_any_window() {
        for seed in 1..4 {
            let times = hammer(RequestLog::default(), RequestLog::admit, 20, 1_000, seed);
            assert_eq!(most_in_any_window(&times, 1_000), 20);
        }
    }

    #[test]
    fn slotted_sliding_never_admits_more_than_the_limit_in_any_window() {
        for (window, seed) in [(1_000, 1), (6_400, 2), (999, 3), (60_000, 4)] {
            let slots = Slots::new(slot_ms(window, RATE_SLOTS));
            let times = hammer(slots, Slots::admit, 20, window, seed);
            let most = most_in_any_window(&times, window);
            assert!(most <= 20, "window {window}: {most} admitted");
            // Conservative, not stingy: it refuses at most a slot early, so a busy window still fills up.
            assert!(most >= 19, "window {window}: only {most} admitted");
        }
    }

    #[test]
    fn slotted_sliding_counts_every_overlapping_slot() {
        // Slots of 100 ms over a 6.4 s window.
        let window = 6_400;
        let mut s = Slots::new(slot_ms(window, RATE_SLOTS));
        assert!(admitted(s.admit(NOON + 50, 1, window)));
        // The slot [NOON, NOON + 100) overlaps the window until now - 6400 + 1 reaches NOON + 100.
        assert_eq!(retry_ms(s.admit(NOON + 60, 1, window)), 6_439);
        assert!(!admitted(s.admit(NOON + 6_498, 1, window)));
        assert!(admitted(s.admit(NOON + 6_499, 1, window)));
    }

    #[test]
    fn fixed_spend_sums_one_aligned_window_and_restarts_at_the_next() {
        let day = 24 * 60 * MINUTE;
        let mut sum = FixedSum::new();
        assert_eq!(sum.spent(NOON, day), 0);
        sum.record(NOON, day, 1_500_000_000);
        sum.record(NOON + 1, day, 250_000_000);
        assert_eq!(sum.spent(NOON + 2, day), 1_750_000_000);
        // Buckets are epoch-aligned: NOON is 12 h into its day.
        let next_bucket = NOON + day / 2;
        assert_eq!(sum.spent(next_bucket - 1, day), 1_750_000_000);
        assert_eq!(sum.spent(next_bucket, day), 0);
        assert!(sum.idle(next_bucket, day));
        sum.record(next_bucket, day, 7);
        assert_eq!(sum.spent(next_bucket, day), 7);
    }

    #[test]
    fn sliding_spend_weights_the_slot_that_straddles_the_window_start() {
        // 32 slots of 1 s over a 32 s window.
        let window = 32_000;
        let mut s = Slots::new(slot_ms(window, SPEND_SLOTS));
        s.record(NOON + 500, window, 1_000);
        s.record(NOON + 10_000, window, 20);
        assert_eq!(s.spent(NOON + 500, window), 1_020);
        // At NOON + 32 s the window starts where the first slot does: all of it counts.
        assert_eq!(s.spent(NOON + window, window), 1_020);
        // A quarter of the first slot is out of the window: three quarters of its amount count.
        assert_eq!(s.spent(NOON + window + 250, window), 770);
        assert_eq!(s.spent(NOON + window + 1_000, window), 20);
        assert!(!s.idle(NOON + window + 10_999, window));
        assert_eq!(s.spent(NOON + window + 11_000, window), 0);
        assert!(s.idle(NOON + window + 11_000, window));
    }

    #[test]
    fn slots_cover_the_window() {
        for (window, slots, expected) in [
            (32_000, 32, 1_000),
            (1_000, 64, 16),
            (10, 64, 1),
            (65, 64, 2),
        ] {
            let slot = slot_ms(window, slots);
            assert_eq!(slot, expected);
            assert!(slot * slots >= window);
        }
    }
}
