//! The concurrent-streams phase: N streaming chat completions open at the same time, direct to the mock and then
//! through the gateway, for time to first byte under that many open streams, the gateway's CPU per relayed chunk
//! and its resident memory while it holds them.
//!
//! Each side runs two identical rounds with a client of its own: the first (not measured) opens N keep-alive
//! connections, the second is measured on them, so the figures are those of N clients already connected, not of a
//! connection storm; the client is dropped afterwards, closing its connections. A round starts its N streams
//! evenly over the ramp ([`ramp_schedule`], each in its own task) and waits for all of them; the streams must
//! outlast the ramp for all N to be open at once, which [`peak_open`] and [`all_open_for`] check from each stream's
//! span.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{HttpClient, Outcome, Target, exchange, http_client};
use crate::cpu::{process_cpu, threads_cpu};
use crate::format;
use crate::load::PhaseResult;
use crate::measure::Side;
use crate::resources::{Rss, RssSampler, kib_to_mib, status_kib};
use crate::stats::{Schedule, Summary, added_us};

/// One stream's life, from just before its request was handed to the client to its end (last byte or failure),
/// both from the start of the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Duration,
    pub end: Duration,
}

/// The most streams open at one instant. A stream that ends at the instant another starts is not counted with it.
pub fn peak_open(spans: &[Span]) -> usize {
    let mut edges: Vec<(Duration, i64)> = spans
        .iter()
        .flat_map(|s| [(s.start, 1), (s.end, -1)])
        .collect();
    // At equal times an end (-1) sorts before a start (+1).
    edges.sort_unstable();
    let (mut open, mut peak) = (0i64, 0i64);
    for (_, change) in edges {
        open += change;
        peak = peak.max(open);
    }
    peak as usize
}

/// How long every stream was open at once, from the last start to the first end; `None` when they never all were.
pub fn all_open_for(spans: &[Span]) -> Option<Duration> {
    let last_start = spans.iter().map(|s| s.start).max()?;
    let first_end = spans.iter().map(|s| s.end).min()?;
    first_end.checked_sub(last_start).filter(|d| !d.is_zero())
}

/// `cpu` over `wall` as a percentage of one core.
pub fn core_percent(cpu: Duration, wall: Duration) -> Option<f64> {
    let wall = wall.as_secs_f64();
    (wall > 0.0).then(|| cpu.as_secs_f64() / wall * 100.0)
}

/// How long the mock takes to send one stream: it waits `delay` between two events, and a chat completion with
/// usage has `chunks` content events plus the role, finish, usage and `[DONE]` events.
pub fn nominal_stream(chunks: usize, delay: Duration) -> Duration {
    delay.saturating_mul(u32::try_from(chunks).unwrap_or(u32::MAX).saturating_add(3))
}

/// How far above [`nominal_stream`] a side's median stream length may be and still count as having kept the mock's
/// pace: tokio's timer adds about a millisecond to each of the mock's waits (~6 % at 20 ms apart).
pub const KEPT_UP_FACTOR: f64 = 1.15;

/// Whether streams whose median length was `length_p50` kept the pace of streams of `nominal` length. When the
/// direct side did not, the mock and this client were short of CPU and its time to first byte is theirs.
pub fn kept_up(length_p50: Duration, nominal: Duration) -> bool {
    length_p50.as_secs_f64() <= nominal.as_secs_f64() * KEPT_UP_FACTOR
}

/// `streams` starts spread evenly over `ramp`: N / ramp per second, the last one just before the ramp ends.
pub fn ramp_schedule(streams: u64, ramp: Duration) -> Schedule {
    Schedule::new(streams as f64 / ramp.as_secs_f64().max(1e-6), streams)
}

/// Open files a process needs to hold `streams` streams with `sockets_per_stream` sockets each (the client and
/// the mock 1, the gateway 2), plus a margin for everything else it has open.
pub fn open_files_needed(streams: u64, sockets_per_stream: u64) -> u64 {
    streams
        .saturating_mul(sockets_per_stream)
        .saturating_add(256)
}

/// What one round measured: the usual result, and when each stream was open.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub result: PhaseResult,
    pub spans: Vec<Span>,
}

/// Starts `schedule.count()` streams on the schedule's clock, each in its own task, and waits for all of them.
/// Bounded: each ends within `timeout`.
pub async fn round(
    client: &HttpClient,
    target: &Arc<Target>,
    schedule: Schedule,
    timeout: Duration,
) -> Round {
    let mut round = Round::default();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for i in 0..schedule.count() {
        let due = start + schedule.offset(i);
        tokio::time::sleep_until(due).await;
        round
            .result
            .send_lag
            .push(Instant::now().saturating_duration_since(due));
        let (client, target) = (client.clone(), target.clone());
        tasks.spawn(async move {
            let sent = start.elapsed();
            let outcome = exchange(&client, &target, timeout).await;
            let span = Span {
                start: sent,
                end: start.elapsed(),
            };
            (outcome, span)
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((outcome, span)) => {
                round.result.add(outcome);
                round.spans.push(span);
            }
            Err(e) => round.result.add(Outcome::Failed(format!("task: {e}"))),
        }
    }
    round.result.elapsed = start.elapsed();
    round
}

/// One side of the phase for one N.
#[derive(Debug, Clone, Default)]
pub struct StreamsSide {
    /// The measured round, with the gateway's CPU meanwhile (the whole process, and its data-plane threads).
    pub side: Side,
    pub peak_open: usize,
    pub all_open: Option<Duration>,
    /// The gateway's resident memory (through only).
    pub gateway_rss: Option<Rss>,
    /// This client's own CPU during the measured round.
    pub client_cpu: Option<Duration>,
    /// The mock's CPU during the measured round (with `--mock-pid`): near a whole core, it could not keep up.
    pub mock_cpu: Option<Duration>,
}

impl StreamsSide {
    fn percent(&self, cpu: Option<Duration>) -> Option<f64> {
        core_percent(cpu?, self.side.result.elapsed)
    }

    pub fn client_core_percent(&self) -> Option<f64> {
        self.percent(self.client_cpu)
    }

    pub fn mock_core_percent(&self) -> Option<f64> {
        self.percent(self.mock_cpu)
    }

    pub fn gateway_core_percent(&self) -> Option<f64> {
        self.percent(self.side.gateway_cpu)
    }

    pub fn ttfb(&self) -> Option<Summary> {
        self.side.result.first_byte()
    }

    /// Whether its streams kept the mock's pace ([`kept_up`]); `None` without a successful stream.
    pub fn kept_up(&self, nominal: Duration) -> Option<bool> {
        Some(kept_up(self.side.result.latency()?.p50, nominal))
    }
}

/// The phase for one N: direct, then through the gateway.
#[derive(Debug, Clone, Default)]
pub struct Concurrent {
    pub streams: u64,
    /// How long one stream takes at the mock's pace ([`nominal_stream`]): a measured length well above it means
    /// the mock (or this client) could not keep up.
    pub nominal: Duration,
    pub direct: StreamsSide,
    pub through: Option<StreamsSide>,
}

impl Concurrent {
    /// Time to first byte of each side.
    pub fn ttfb(&self) -> (Option<Summary>, Option<Summary>) {
        (
            self.direct.ttfb(),
            self.through.as_ref().and_then(StreamsSide::ttfb),
        )
    }

    /// Added time to first byte at p50 and p99 in µs, when both sides had successes.
    pub fn added_ttfb_us(&self) -> Option<(f64, f64)> {
        let (Some(d), Some(t)) = self.ttfb() else {
            return None;
        };
        Some((added_us(d.p50, t.p50), added_us(d.p99, t.p99)))
    }

    /// Gateway CPU per relayed chunk (SSE event) over the whole measured round, in µs.
    pub fn cpu_per_chunk_us(&self) -> Option<f64> {
        self.through.as_ref()?.side.cpu_per_event_us()
    }

    /// The gateway's peak resident memory during the measured round, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let rss = self.through.as_ref()?.gateway_rss?;
        (rss.samples > 0).then(|| kib_to_mib(rss.peak_kib))
    }

    pub fn error_count(&self) -> usize {
        self.direct.side.result.error_count()
            + self
                .through
                .as_ref()
                .map_or(0, |t| t.side.result.error_count())
    }
}

/// Where to read CPU and memory from.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub gateway_pid: Option<u32>,
    pub mock_pid: Option<u32>,
    pub ticks: u64,
    /// The name prefix of the data plane's threads in the gateway process.
    pub data_plane_threads: &'static str,
}

/// How one side runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub streams: u64,
    /// Over how long the streams are started.
    pub ramp: Duration,
    pub timeout: Duration,
    /// Pause after the measured round before the gateway's CPU is read again.
    pub settle: Duration,
    /// Sample the gateway's resident memory (through only: direct, it is idle).
    pub sample_rss: bool,
}

/// How often the gateway's `VmRSS` is read during a measured round.
const RSS_INTERVAL: Duration = Duration::from_millis(10);

/// One side: a warm-up round that opens the connections, then the measured round on them.
pub async fn measure_side(
    label: &str,
    target: &Arc<Target>,
    s: Settings,
    probe: Probe,
) -> StreamsSide {
    let client = http_client();
    let schedule = ramp_schedule(s.streams, s.ramp);
    let rss_pid = probe.gateway_pid.filter(|_| s.sample_rss);
    let rss_before = rss_pid.and_then(|pid| status_kib(pid, "VmRSS"));
    eprintln!("gatehouse-bench: {label} (warm-up: opening the connections)");
    let warm = round(&client, target, schedule, s.timeout).await;
    if warm.result.error_count() > 0 {
        eprintln!(
            "gatehouse-bench: {label} (warm-up): {:?}",
            warm.result.errors
        );
    }
    eprintln!("gatehouse-bench: {label}");
    let me = std::process::id();
    let gateway = || probe.gateway_pid.and_then(|p| process_cpu(p, probe.ticks));
    let dp = || {
        probe
            .gateway_pid
            .and_then(|p| threads_cpu(p, probe.ticks, probe.data_plane_threads))
    };
    let mock = || probe.mock_pid.and_then(|p| process_cpu(p, probe.ticks));
    let (gateway_before, dp_before) = (gateway(), dp());
    let (client_before, mock_before) = (process_cpu(me, probe.ticks), mock());
    let sampler = rss_pid.and_then(|pid| RssSampler::start(pid, RSS_INTERVAL).ok());
    let measured = round(&client, target, schedule, s.timeout).await;
    let sampled = sampler.map(RssSampler::stop);
    let (client_after, mock_after) = (process_cpu(me, probe.ticks), mock());
    if !s.settle.is_zero() {
        tokio::time::sleep(s.settle).await;
    }
    let since =
        |b: Option<Duration>, a: Option<Duration>| b.zip(a).map(|(b, a)| a.saturating_sub(b));
    let side = Side {
        gateway_cpu: since(gateway_before, gateway()),
        data_plane_cpu: since(dp_before, dp()),
        result: measured.result,
        log_records: None,
    };
    if side.result.error_count() > 0 {
        eprintln!("gatehouse-bench: {label}: {:?}", side.result.errors);
    }
    let gateway_rss = sampled.map(|(peak_kib, samples)| Rss {
        before_kib: rss_before.unwrap_or_default(),
        peak_kib,
        hwm_kib: rss_pid.and_then(|pid| status_kib(pid, "VmHWM")),
        samples,
    });
    drop(client);
    StreamsSide {
        peak_open: peak_open(&measured.spans),
        all_open: all_open_for(&measured.spans),
        side,
        gateway_rss,
        client_cpu: since(client_before, client_after),
        mock_cpu: since(mock_before, mock_after),
    }
}

fn streams_side_json(
    s: &StreamsSide,
    nominal: Duration,
    side_json: &dyn Fn(&Side) -> Value,
    summary_json: &dyn Fn(Option<Summary>) -> Value,
) -> Value {
    let mut v = side_json(&s.side);
    v["events"] = json!(s.side.result.events);
    v["stream_duration"] = summary_json(s.side.result.latency());
    v["peak_open"] = json!(s.peak_open);
    v["kept_pace"] = json!(s.kept_up(nominal));
    v["all_open_ms"] = json!(s.all_open.map(|d| format::round(d.as_secs_f64() * 1e3, 1)));
    v["client_cpu_percent"] = json!(s.client_core_percent().map(|p| format::round(p, 1)));
    v["mock_cpu_percent"] = json!(s.mock_core_percent().map(|p| format::round(p, 1)));
    v["gateway_cpu_percent"] = json!(s.gateway_core_percent().map(|p| format::round(p, 1)));
    v["gateway_rss"] = s.gateway_rss.map_or(Value::Null, |r| {
        json!({
            "before_mib": format::round(kib_to_mib(r.before_kib), 1),
            "peak_mib": (r.samples > 0).then(|| format::round(kib_to_mib(r.peak_kib), 1)),
            "hwm_mib": r.hwm_kib.map(|k| format::round(kib_to_mib(k), 1)),
            "samples": r.samples,
        })
    });
    v
}

/// The concurrent phase's part of the JSON summary for one count; `side_json` renders a side (its latency being the
/// time to first byte) and `summary_json` a summary, as for the other phases.
pub fn json(
    c: &Concurrent,
    side_json: &dyn Fn(&Side) -> Value,
    summary_json: &dyn Fn(Option<Summary>) -> Value,
) -> Value {
    let added = c.added_ttfb_us();
    json!({
        "streams": c.streams,
        "nominal_stream_ms": format::round(c.nominal.as_secs_f64() * 1e3, 1),
        "direct": streams_side_json(&c.direct, c.nominal, side_json, summary_json),
        "through": c.through.as_ref().map(|t| streams_side_json(t, c.nominal, side_json, summary_json)),
        "added_ttfb_p50_us": added.map(|a| format::round(a.0, 1)),
        "added_ttfb_p99_us": added.map(|a| format::round(a.1, 1)),
        "gateway_cpu_per_chunk_us": c.cpu_per_chunk_us().map(|v| format::round(v, 2)),
        "data_plane_cpu_per_chunk_us": c
            .through
            .as_ref()
            .and_then(|t| t.side.data_plane_cpu_per_event_us())
            .map(|v| format::round(v, 2)),
        "gateway_rss_peak_mib": c.peak_rss_mib().map(|v| format::round(v, 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start_ms: u64, end_ms: u64) -> Span {
        Span {
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
        }
    }

    #[test]
    fn the_peak_counts_streams_open_at_one_instant() {
        // Three streams overlap between 20 and 30 ms; the fourth starts when the first has ended.
        let spans = [span(0, 30), span(10, 40), span(20, 50), span(30, 60)];
        assert_eq!(peak_open(&spans), 3);
        assert_eq!(peak_open(&[span(0, 10), span(10, 20)]), 1);
        assert_eq!(peak_open(&[]), 0);
        let ramped: Vec<Span> = (0..2000).map(|i| span(i / 5, 1060 + i / 5)).collect();
        assert_eq!(peak_open(&ramped), 2000);
    }

    #[test]
    fn all_streams_are_open_together_from_the_last_start_to_the_first_end() {
        // A 400 ms ramp of 1,060 ms streams: all open for the last 660 ms of the first one.
        let ramped: Vec<Span> = (0..2000).map(|i| span(i / 5, 1060 + i / 5)).collect();
        assert_eq!(all_open_for(&ramped), Some(Duration::from_millis(661)));
        assert_eq!(all_open_for(&[span(0, 10), span(10, 20)]), None);
        assert_eq!(all_open_for(&[span(0, 10), span(20, 30)]), None);
        assert_eq!(all_open_for(&[]), None);
    }

    #[test]
    fn stream_length_sockets_and_core_share_are_plain_arithmetic() {
        // 50 pieces + role, finish, usage, [DONE]: 54 events, 53 waits of 20 ms.
        assert_eq!(
            nominal_stream(50, Duration::from_millis(20)),
            Duration::from_millis(1060)
        );
        assert_eq!(open_files_needed(2000, 2), 4256);
        let nominal = nominal_stream(50, Duration::from_millis(20));
        assert!(kept_up(Duration::from_millis(1131), nominal));
        assert!(!kept_up(Duration::from_millis(1567), nominal));
        let ramp = ramp_schedule(2000, Duration::from_millis(500));
        assert_eq!((ramp.count(), ramp.rate()), (2000, 4000.0));
        assert_eq!(ramp.offset(1999), Duration::from_micros(499_750));
        assert_eq!(
            ramp_schedule(500, Duration::from_millis(500)).rate(),
            1000.0
        );
        assert_eq!(open_files_needed(500, 1), 756);
        assert!(close(
            core_percent(Duration::from_millis(600), Duration::from_millis(1200)),
            50.0
        ));
        assert_eq!(core_percent(Duration::from_millis(1), Duration::ZERO), None);
    }

    fn close(v: Option<f64>, expected: f64) -> bool {
        v.is_some_and(|v| (v - expected).abs() < 1e-9)
    }

    fn side(ttfb_us: &[u64], events: usize, cpu_ms: Option<u64>) -> StreamsSide {
        let ttfb: Vec<Duration> = ttfb_us.iter().map(|&u| Duration::from_micros(u)).collect();
        StreamsSide {
            side: Side {
                result: PhaseResult {
                    sent: ttfb.len(),
                    latencies: vec![Duration::from_secs(1); ttfb.len()],
                    first_bytes: ttfb,
                    events,
                    elapsed: Duration::from_secs(2),
                    ..PhaseResult::default()
                },
                gateway_cpu: cpu_ms.map(Duration::from_millis),
                data_plane_cpu: None,
                log_records: None,
            },
            ..StreamsSide::default()
        }
    }

    #[test]
    fn added_ttfb_cpu_per_chunk_and_peak_rss_come_from_the_through_side() {
        // 100 streams each side; through adds 150 µs at p50 and 900 µs at p99; 5,400 events for 54 ms of CPU.
        let direct: Vec<u64> = (1..=100).map(|i| i * 10).collect();
        let mut through: Vec<u64> = direct.iter().map(|d| d + 150).collect();
        through[98] = 990 + 900;
        through[99] = 2000;
        let mut run = Concurrent {
            streams: 100,
            nominal: Duration::from_secs(1),
            direct: side(&direct, 5400, Some(0)),
            through: Some(side(&through, 5400, Some(54))),
        };
        assert_eq!(run.added_ttfb_us(), Some((150.0, 900.0)));
        assert!(close(run.cpu_per_chunk_us(), 10.0));
        assert!(close(
            run.through.as_ref().unwrap().gateway_core_percent(),
            2.7
        ));
        assert_eq!(run.peak_rss_mib(), None);
        // Every stream lasted 1 s, the nominal length.
        assert_eq!(run.direct.kept_up(run.nominal), Some(true));
        assert_eq!(run.direct.kept_up(Duration::from_millis(500)), Some(false));
        assert_eq!(StreamsSide::default().kept_up(run.nominal), None);
        run.through.as_mut().unwrap().gateway_rss = Some(Rss {
            before_kib: 20 * 1024,
            peak_kib: 96 * 1024,
            hwm_kib: Some(100 * 1024),
            samples: 150,
        });
        assert_eq!(run.peak_rss_mib(), Some(96.0));
        let direct_only = Concurrent {
            through: None,
            ..run
        };
        assert_eq!(direct_only.added_ttfb_us(), None);
        assert_eq!(direct_only.cpu_per_chunk_us(), None);
    }
}
