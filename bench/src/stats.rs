//! Percentiles, rates and the open-loop send schedule: the arithmetic the report rests on, kept pure for tests.

use std::time::Duration;

/// The value at percentile `p` (0..=100) of `sorted` by the nearest-rank method: the smallest sample with at least
/// p% of the samples at or below it. `None` for no samples. Nearest rank never invents a value between samples, so
/// a p99 is a latency some request really had.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency percentiles of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// Names of [`Summary::points`], in order.
    pub const POINTS: [&'static str; 4] = ["p50", "p90", "p99", "max"];

    pub fn points(&self) -> [Duration; 4] {
        [self.p50, self.p90, self.p99, self.max]
    }

    /// `None` when there are no samples (every request failed).
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            p50: percentile(&sorted, 50.0)?,
            p90: percentile(&sorted, 90.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// Events per second; 0 for an empty interval rather than infinity.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// `b - a` in microseconds, signed (the gateway can come out faster at a percentile by noise).
pub fn added_us(direct: Duration, through: Duration) -> f64 {
    through.as_secs_f64() * 1e6 - direct.as_secs_f64() * 1e6
}

/// When each request of an open-loop phase is due: request `i` at `i / rate` seconds after the start, whatever
/// happened to the earlier ones. Sending on a clock, not after each answer, is what makes the latency honest: a slow
/// answer cannot delay (and so hide) the requests behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    count: u64,
}

impl Schedule {
    /// `count` requests at `rate` per second. A rate below one request a minute is treated as that.
    pub fn new(rate: f64, count: u64) -> Schedule {
        Schedule {
            rate: rate.max(1.0 / 60.0),
            count,
        }
    }

    /// As many requests as `rate` fits into `duration`, rounded to the nearest.
    pub fn for_duration(rate: f64, duration: Duration) -> Schedule {
        let count = (rate.max(0.0) * duration.as_secs_f64()).round() as u64;
        Schedule::new(rate, count)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When request `i` is due, from the start of the phase.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How long the phase sends for.
    pub fn span(&self) -> Duration {
        Duration::from_secs_f64(self.count as f64 / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles_pick_real_samples() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(1)));
        let few = ms(&[10, 20, 30]);
        assert_eq!(percentile(&few, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&few, 90.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_single_slow_request_in_a_hundred_is_the_max_but_not_the_p99() {
        let mut samples = ms(&[1; 99]);
        samples.push(Duration::from_secs(1));
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.p99, Duration::from_millis(1));
        assert_eq!(s.max, Duration::from_secs(1));
        assert_eq!(s.count, 100);
    }

    #[test]
    fn the_summary_sorts_its_samples_and_is_none_without_any() {
        let s = Summary::of(&ms(&[30, 10, 20])).unwrap();
        assert_eq!(
            (s.p50, s.max),
            (Duration::from_millis(20), Duration::from_millis(30))
        );
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn a_schedule_spaces_requests_evenly_at_the_rate() {
        let s = Schedule::for_duration(1000.0, Duration::from_secs(10));
        assert_eq!(s.count(), 10_000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(9_999), Duration::from_micros(9_999_000));
        assert_eq!(s.span(), Duration::from_secs(10));
        assert_eq!(
            Schedule::for_duration(50.0, Duration::from_millis(4010)).count(),
            201
        );
        assert_eq!(
            Schedule::for_duration(0.0, Duration::from_secs(5)).count(),
            0
        );
    }

    #[test]
    fn rates_and_added_latency_are_plain_arithmetic() {
        assert_eq!(rate(5000, Duration::from_millis(2500)), 2000.0);
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(
            added_us(Duration::from_micros(100), Duration::from_micros(350)),
            250.0
        );
        assert_eq!(
            added_us(Duration::from_micros(100), Duration::from_micros(90)),
            -10.0
        );
    }
}
