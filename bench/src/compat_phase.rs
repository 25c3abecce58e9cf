//! The compat phase's orchestration: Anthropic direct, provider-native through the gateway and translated.

use std::sync::Arc;

use anyhow::Result;
use gatehouse_bench::client::Target;
use gatehouse_bench::compat::{Compat, Trio};
use gatehouse_bench::load::open_loop;
use gatehouse_bench::measure::Side;
use gatehouse_bench::stats::Schedule;

use super::bodies::native_model;
use super::{Api, Bench, Settle, api_target};

/// The sides of the compat phase through the gateway, for [`Bench::alternating`]: provider-native or translated,
/// and for streams short or long.
const NATIVE: u8 = 0;
const TRANSLATED: u8 = 1;
const LONG: u8 = 2;

fn long_label(kind: u8) -> &'static str {
    if kind & LONG != 0 {
        " long streams"
    } else {
        ""
    }
}

/// The native or translated side of `trio`.
fn compat_side(trio: &mut Trio, kind: u8) -> &mut Option<Side> {
    if kind == NATIVE {
        &mut trio.native
    } else {
        &mut trio.translated
    }
}

impl Bench {
    /// Runs `sides` (kind, name, target) in turn, `--compat-rounds` times, each round a share of `schedule` at its
    /// rate after one warm-up per side, and adds each side's rounds up. Alternating spreads this machine's drift
    /// (its CPU per request moves by tens of percent between minutes) over every side, so their difference is the
    /// gateway's.
    async fn alternating(
        &self,
        sides: &[(u8, &str, Arc<Target>)],
        schedule: Schedule,
        warmup: Schedule,
    ) -> Vec<(u8, Side)> {
        let rounds = self.args.compat_rounds.max(1);
        let round = Schedule::new(schedule.rate(), schedule.count().div_ceil(rounds));
        for (kind, name, t) in sides {
            eprintln!(
                "gatehouse-bench: compat: {name}{} (warm-up)",
                long_label(*kind)
            );
            open_loop(&self.client, t, warmup, self.args.timeout).await;
        }
        let mut sums: Vec<(u8, Option<Side>)> = sides.iter().map(|(k, ..)| (*k, None)).collect();
        for i in 1..=rounds {
            for ((kind, name, t), (_, sum)) in sides.iter().zip(&mut sums) {
                let side = self
                    .measured(
                        &format!("compat: {name}{} (round {i}/{rounds})", long_label(*kind)),
                        open_loop(&self.client, t, round, self.args.timeout),
                        Settle::None,
                    )
                    .await;
                match sum {
                    Some(sum) => sum.absorb(side),
                    None => *sum = Some(side),
                }
            }
        }
        sums.into_iter()
            .filter_map(|(kind, side)| Some((kind, side?)))
            .collect()
    }

    /// The compat phase: the chat phase's schedule non-streamed, then the stream phase's short and long streams,
    /// each direct to the mock's Messages endpoint, provider-native through the gateway and translated through
    /// `/compat`. Skipped without `--anthropic-direct`.
    pub(super) async fn compat(&self) -> Result<Option<Compat>> {
        let a = &self.args;
        let Some(direct) = a.anthropic_direct.as_deref() else {
            eprintln!("gatehouse-bench: compat skipped: no --anthropic-direct");
            return Ok(None);
        };
        let native = Api::Anthropic(native_model(&a.compat_model));
        let translated = Api::OpenAi(&a.compat_model);
        let make = |base: &str, api, chunks: Option<usize>| {
            api_target(base, api, chunks.is_some(), chunks, a.chunk_delay_ms)
        };
        let mut compat = Compat {
            model: a.compat_model.clone(),
            ..Compat::default()
        };

        let schedule = Schedule::for_duration(a.rate, a.duration);
        let warmup = Schedule::for_duration(a.rate, a.warmup);
        compat.whole.direct = self
            .open(
                "compat: Anthropic direct",
                &make(direct, native, None)?,
                schedule,
                warmup,
                Settle::None,
            )
            .await;
        let mut sides = Vec::new();
        if let Some(base) = a.anthropic_through.as_deref() {
            sides.push((
                NATIVE,
                "Anthropic native through",
                make(base, native, None)?,
            ));
        }
        if let Some(base) = a.compat_through.as_deref() {
            sides.push((
                TRANSLATED,
                "translated through /compat",
                make(base, translated, None)?,
            ));
        }
        for (kind, side) in self.alternating(&sides, schedule, warmup).await {
            *compat_side(&mut compat.whole, kind) = Some(side);
        }

        let schedule = Schedule::new(a.stream_rate, a.streams);
        let warmup = Schedule::new(a.stream_rate, a.streams.min(20));
        let (short, long) = (Some(a.stream_chunks), Some(a.long_stream_chunks));
        compat.stream.direct = self
            .open(
                "compat: Anthropic streams direct",
                &make(direct, native, short)?,
                schedule,
                warmup,
                Settle::None,
            )
            .await;
        let mut sides = Vec::new();
        for (kind, name, base, api) in [
            (
                NATIVE,
                "Anthropic native",
                a.anthropic_through.as_deref(),
                native,
            ),
            (
                TRANSLATED,
                "translated",
                a.compat_through.as_deref(),
                translated,
            ),
        ] {
            if let Some(base) = base {
                sides.push((kind, name, make(base, api, short)?));
                sides.push((kind | LONG, name, make(base, api, long)?));
            }
        }
        for (kind, side) in self.alternating(&sides, schedule, warmup).await {
            let slot = match kind {
                NATIVE => &mut compat.stream.native,
                TRANSLATED => &mut compat.stream.translated,
                k if k == NATIVE | LONG => &mut compat.long_native,
                _ => &mut compat.long_translated,
            };
            *slot = Some(side);
        }
        Ok(Some(compat))
    }
}
