//! The telemetry phase's orchestration: direct, a gateway process with metrics and OTLP export off and one with
//! both on, alternating rounds per load, each gateway's CPU read from its own process; then both processes'
//! `GET /metrics`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use gatehouse_bench::client::Target;
use gatehouse_bench::load::{PhaseResult, closed_loop, open_loop};
use gatehouse_bench::measure::Side;
use gatehouse_bench::stats::Schedule;
use gatehouse_bench::telemetry::{Telemetry, TelemetryLoad, metrics_uri, scrape};

use super::{Bench, Settle, target};

/// A load for one round: open loop on a schedule, or closed loop for a while.
#[derive(Debug, Clone, Copy)]
enum Load {
    Open(Schedule),
    Closed(Duration),
}

/// One side of the phase: its name, the gateway process whose CPU it reads (none for direct), what it sends.
struct Sided<'a> {
    name: &'a str,
    pid: Option<u32>,
    target: Arc<Target>,
}

/// The sides' indices in [`TelemetryLoad::sides`] order.
const DIRECT: usize = 0;
const ON: usize = 2;

impl Bench {
    async fn telemetry_load(&self, t: &Arc<Target>, load: Load) -> PhaseResult {
        let a = &self.args;
        match load {
            Load::Open(schedule) => open_loop(&self.client, t, schedule, a.timeout).await,
            Load::Closed(duration) => {
                closed_loop(&self.client, t, a.concurrency, duration, a.timeout).await
            }
        }
    }

    /// The three sides in `rounds` rounds of `round` each, after one `warmup` of each; the order flips every round
    /// (direct, off, on; on, off, direct; …). Each gateway round ends with `--telemetry-settle` before its process's
    /// CPU is read, so the OTLP exporter's batch of that round is counted in it. Returns each side's rounds added
    /// up, and the requests sent through `on` (warm-up included).
    async fn telemetry_rounds(
        &self,
        what: &str,
        sides: &[Sided<'_>; 3],
        round: Load,
        warmup: Load,
        rounds: u64,
    ) -> ([Option<Side>; 3], usize) {
        let settle = Settle::Pause(self.args.telemetry_settle);
        let mut on_sent = 0;
        for (j, side) in sides.iter().enumerate() {
            eprintln!("gatehouse-bench: telemetry: {what} {} (warm-up)", side.name);
            let warm = self.telemetry_load(&side.target, warmup).await;
            if j == ON {
                on_sent += warm.sent;
            }
        }
        tokio::time::sleep(self.args.telemetry_settle).await;
        let mut sums: [Option<Side>; 3] = [None, None, None];
        for i in 1..=rounds {
            let order = if i % 2 == 0 { [2, 1, 0] } else { [0, 1, 2] };
            for j in order {
                let side = &sides[j];
                let measured = self
                    .measured_at(
                        &format!("telemetry: {what} {} (round {i}/{rounds})", side.name),
                        side.pid,
                        self.telemetry_load(&side.target, round),
                        if j == DIRECT { Settle::None } else { settle },
                    )
                    .await;
                if j == ON {
                    on_sent += measured.result.sent;
                }
                match &mut sums[j] {
                    Some(sum) => sum.absorb(measured),
                    slot @ None => *slot = Some(measured),
                }
            }
        }
        (sums, on_sent)
    }

    /// The telemetry phase: the chat request direct, through `--telemetry-off` and through `--telemetry-on`, in
    /// alternating rounds: non-streamed at the chat phase's rate, streamed at the same rate, saturated
    /// (`--telemetry-loads` picks some). The `on` gateway's process is `--gateway-pid`, the `off` one's
    /// `--telemetry-off-pid`. Skipped without both URLs.
    pub(super) async fn telemetry(&self) -> Result<Option<Telemetry>> {
        let a = &self.args;
        let (Some(on), Some(off)) = (a.telemetry_on.as_deref(), a.telemetry_off.as_deref()) else {
            eprintln!(
                "gatehouse-bench: telemetry skipped: it needs --telemetry-on and --telemetry-off (bench/run.sh \
                 passes them when --phases names telemetry)"
            );
            return Ok(None);
        };
        if a.gateway_pid.is_none() || a.telemetry_off_pid.is_none() {
            eprintln!(
                "gatehouse-bench: WARNING: telemetry without --gateway-pid and --telemetry-off-pid: no CPU figures"
            );
        }
        let on_metrics = metrics_uri(on).map_err(anyhow::Error::msg)?;
        let off_metrics = metrics_uri(off).map_err(anyhow::Error::msg)?;
        let rounds = a.telemetry_rounds.max(1);
        let mut r = Telemetry {
            rounds,
            otel: a.telemetry_otel,
            stream_chunks: a.stream_chunks,
            chunk_delay_ms: a.chunk_delay_ms,
            ..Telemetry::default()
        };
        r.on_before = scrape(&self.client, &on_metrics).await;
        let sides = |stream: bool| -> Result<[Sided<'_>; 3]> {
            let t = |base| {
                if stream {
                    target(base, true, Some(a.stream_chunks), a.chunk_delay_ms)
                } else {
                    target(base, false, None, 0)
                }
            };
            Ok([
                Sided {
                    name: "direct",
                    pid: None,
                    target: t(&a.direct)?,
                },
                Sided {
                    name: "off",
                    pid: a.telemetry_off_pid,
                    target: t(off).context("--telemetry-off")?,
                },
                Sided {
                    name: "on",
                    pid: a.gateway_pid,
                    target: t(on).context("--telemetry-on")?,
                },
            ])
        };
        let wants = |load: &str| a.telemetry_loads.iter().any(|l| l == load);
        let schedule = Schedule::for_duration(a.rate, a.duration);
        let open_round = Load::Open(Schedule::new(a.rate, schedule.count().div_ceil(rounds)));
        let open_warmup = Load::Open(Schedule::for_duration(a.rate, a.warmup));
        let into_load =
            |(sums, sent): ([Option<Side>; 3], usize), ttfb: bool, on_sent: &mut usize| {
                *on_sent += sent;
                let [direct, off, on] = sums;
                TelemetryLoad {
                    direct,
                    duo: gatehouse_bench::duo::Duo {
                        base: off,
                        test: on,
                    },
                    ttfb,
                }
            };
        let mut on_sent = 0;
        if wants("open") {
            let measured = self
                .telemetry_rounds("open loop", &sides(false)?, open_round, open_warmup, rounds)
                .await;
            r.open = into_load(measured, false, &mut on_sent);
        }
        if wants("stream") {
            let measured = self
                .telemetry_rounds("streamed", &sides(true)?, open_round, open_warmup, rounds)
                .await;
            r.stream = into_load(measured, true, &mut on_sent);
        }
        if wants("closed") {
            let measured = self
                .telemetry_rounds(
                    "closed loop",
                    &sides(false)?,
                    Load::Closed(a.closed_duration.div_f64(rounds as f64)),
                    Load::Closed(Duration::from_secs(1)),
                    rounds,
                )
                .await;
            r.closed = into_load(measured, false, &mut on_sent);
        }
        r.on_sent = on_sent;
        r.on_after = scrape(&self.client, &on_metrics).await;
        r.off_after = scrape(&self.client, &off_metrics).await;
        Ok(Some(r))
    }
}
