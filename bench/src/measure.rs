//! What one phase measured on one side ([`Side`]: the results and the gateway's CPU meanwhile), and the same phase
//! direct and through ([`Pair`]), with the figures derived from them alone.

use std::time::Duration;

use crate::load::PhaseResult;
use crate::stats::{Summary, added_us};

/// One phase against one side, with the gateway's CPU time spent meanwhile (when its pid is known).
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub result: PhaseResult,
    pub gateway_cpu: Option<Duration>,
    /// The part of it spent on the data plane's own threads (`gatehouse-dp`; in standalone the control plane, the
    /// config bus and the log writer run on other threads of the same process).
    pub data_plane_cpu: Option<Duration>,
    /// Log records the standalone writer stored for this phase's requests (logs-on phases, when the management API
    /// can be read: `--admin-api`). Fewer than the requests sent means records were dropped.
    pub log_records: Option<u64>,
}

impl Side {
    /// Adds `other`, a further round of the same phase on the same side: results and CPU add up (a CPU figure
    /// missing from either leaves none).
    pub fn absorb(&mut self, other: Side) {
        let add = |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| a + b);
        self.gateway_cpu = add(self.gateway_cpu, other.gateway_cpu);
        self.data_plane_cpu = add(self.data_plane_cpu, other.data_plane_cpu);
        self.log_records = self.log_records.zip(other.log_records).map(|(a, b)| a + b);
        self.result.absorb(other.result);
    }

    /// Gateway CPU per request sent, in µs.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.gateway_cpu?;
        (self.result.sent > 0).then(|| cpu.as_secs_f64() * 1e6 / self.result.sent as f64)
    }

    /// Data-plane threads' CPU per request sent, in µs.
    pub fn data_plane_cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.data_plane_cpu?;
        (self.result.sent > 0).then(|| cpu.as_secs_f64() * 1e6 / self.result.sent as f64)
    }

    /// Gateway CPU per SSE event received (relayed, through the gateway), in µs: the whole phase's CPU, requests
    /// included, over every event of its successful streams.
    pub fn cpu_per_event_us(&self) -> Option<f64> {
        per_event_us(self.gateway_cpu?, self.result.events)
    }

    /// The same on the data plane's threads only.
    pub fn data_plane_cpu_per_event_us(&self) -> Option<f64> {
        per_event_us(self.data_plane_cpu?, self.result.events)
    }

    /// SSE events per successful stream.
    pub fn events_per_stream(&self) -> Option<f64> {
        let ok = self.result.ok();
        (ok > 0).then(|| self.result.events as f64 / ok as f64)
    }
}

/// Gateway CPU per relayed chunk, in µs: the extra CPU of a long stream over a short one (per successful stream)
/// divided by its extra events, so the cost of the request itself (routing, upstream exchange, headers) cancels out.
pub fn marginal_cpu_per_event_us(short: &Side, long: &Side) -> Option<f64> {
    let per_stream =
        |s: &Side| Some(s.gateway_cpu?.as_secs_f64() * 1e6 / s.result.ok().max(1) as f64);
    let extra_events = long.events_per_stream()? - short.events_per_stream()?;
    (extra_events > 0.0).then_some((per_stream(long)? - per_stream(short)?) / extra_events)
}

/// `cpu` spread over `events`, in µs; `None` without events.
pub fn per_event_us(cpu: Duration, events: usize) -> Option<f64> {
    (events > 0).then(|| cpu.as_secs_f64() * 1e6 / events as f64)
}

/// The same phase direct to the mock and through the gateway.
#[derive(Debug, Clone, Default)]
pub struct Pair {
    pub direct: Side,
    pub through: Option<Side>,
}

impl Pair {
    /// The summaries `pick` makes of each side (through: `None` without a through side or without successes).
    pub fn summaries(
        &self,
        pick: fn(&PhaseResult) -> Option<Summary>,
    ) -> (Option<Summary>, Option<Summary>) {
        (
            pick(&self.direct.result),
            self.through.as_ref().and_then(|t| pick(&t.result)),
        )
    }

    /// Added latency at p50 and p99 in µs, when both sides had successes.
    pub fn added(&self, pick: fn(&PhaseResult) -> Option<Summary>) -> Option<(f64, f64)> {
        let (Some(d), Some(t)) = self.summaries(pick) else {
            return None;
        };
        Some((added_us(d.p50, t.p50), added_us(d.p99, t.p99)))
    }

    /// Through throughput over direct throughput.
    pub fn throughput_ratio(&self) -> Option<f64> {
        let direct = self.direct.result.throughput();
        let through = self.through.as_ref()?.result.throughput();
        (direct > 0.0).then(|| through / direct)
    }

    /// Failed requests of both sides.
    pub fn error_count(&self) -> usize {
        self.direct.result.error_count()
            + self.through.as_ref().map_or(0, |t| t.result.error_count())
    }
}

/// A measured side for tests: `ok` requests of `events_per` events each, `cpu_ms` of gateway CPU (half of it on the
/// data-plane threads).
#[cfg(test)]
pub(crate) fn test_side(cpu_ms: u64, ok: usize, events_per: usize) -> Side {
    Side {
        result: PhaseResult {
            sent: ok,
            latencies: vec![Duration::from_millis(1); ok],
            first_bytes: vec![Duration::from_millis(1); ok],
            events: ok * events_per,
            ..PhaseResult::default()
        },
        gateway_cpu: Some(Duration::from_millis(cpu_ms)),
        data_plane_cpu: Some(Duration::from_millis(cpu_ms / 2)),
        log_records: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(cpu_ms: u64, ok: usize, events_per: usize) -> Side {
        test_side(cpu_ms, ok, events_per)
    }

    #[test]
    fn rounds_of_one_side_add_up() {
        let mut a = side(30, 1000, 2);
        a.result.elapsed = Duration::from_secs(1);
        a.result.errors.insert("timeout".into(), 1);
        let mut b = side(50, 1000, 2);
        b.result.elapsed = Duration::from_secs(1);
        b.result.errors.insert("timeout".into(), 2);
        a.absorb(b);
        assert_eq!(
            (a.result.sent, a.result.ok(), a.result.events),
            (2000, 2000, 4000)
        );
        assert_eq!(a.cpu_per_request_us(), Some(40.0));
        assert_eq!(a.data_plane_cpu, Some(Duration::from_millis(40)));
        assert_eq!(a.result.errors.get("timeout"), Some(&3));
        assert_eq!(a.result.throughput(), 1000.0);
        a.absorb(Side::default());
        assert_eq!(
            a.gateway_cpu, None,
            "a round without a CPU figure leaves none"
        );
    }

    #[test]
    fn cpu_per_request_divides_by_requests_sent_and_needs_a_pid() {
        assert_eq!(side(30, 1000, 0).cpu_per_request_us(), Some(30.0));
        let no_pid = Side {
            gateway_cpu: None,
            ..side(30, 1000, 0)
        };
        assert_eq!(no_pid.cpu_per_request_us(), None);
    }

    #[test]
    fn cpu_per_event_divides_the_whole_phase_by_every_event_received() {
        // 2,000 streams of 54 events cost 1,080 ms: 10 µs per relayed event (5 on the data plane's threads).
        let close = |v: Option<f64>, expected: f64| v.is_some_and(|v| (v - expected).abs() < 1e-9);
        let s = side(1080, 2000, 54);
        assert!(close(s.cpu_per_event_us(), 10.0));
        assert!(close(s.data_plane_cpu_per_event_us(), 5.0));
        assert_eq!(side(10, 100, 0).cpu_per_event_us(), None);
        let no_pid = Side {
            gateway_cpu: None,
            ..side(30, 10, 5)
        };
        assert_eq!(no_pid.cpu_per_event_us(), None);
        assert!(close(per_event_us(Duration::from_micros(150), 10), 15.0));
    }

    #[test]
    fn added_latency_and_ratio_need_successes_on_both_sides() {
        let mut through = side(0, 10, 0);
        through.result.latencies = vec![Duration::from_micros(1300); 10];
        through.result.elapsed = Duration::from_secs(1);
        let mut direct = side(0, 20, 0);
        direct.result.elapsed = Duration::from_secs(1);
        let pair = Pair {
            direct,
            through: Some(through),
        };
        assert_eq!(pair.added(PhaseResult::latency), Some((300.0, 300.0)));
        assert_eq!(pair.throughput_ratio(), Some(0.5));
        let failed = Pair {
            direct: side(0, 20, 0),
            through: Some(Side::default()),
        };
        assert_eq!(failed.added(PhaseResult::latency), None);
    }
}
