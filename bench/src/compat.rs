//! The compat phase: what translation costs. The same Anthropic model asked three ways, at the same schedule:
//! direct to the mock's Messages endpoint, provider-native through the gateway (`…/anthropic/v1/messages`, passed
//! through), and as an OpenAI chat completion through `/compat/chat/completions` (translated to Messages and the
//! answer back). Non-streamed for CPU per request and latency; streamed, short and long, for the time to first byte
//! and the CPU per relayed chunk (marginal, as in the stream phase), native against translated.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::format::{cell, round, signed, us, verdict, verdict_at_most};
use crate::load::PhaseResult;
use crate::measure::{Side, marginal_cpu_per_event_us};
use crate::stats::{Summary, added_us};

/// Targets from the unified-API issue (missing one does not fail the run).
pub mod targets {
    /// Gateway CPU per non-streamed request, translated minus provider-native, at most (µs).
    pub const ADDED_CPU_PER_REQUEST_US: f64 = 25.0;
    /// Gateway CPU per relayed stream chunk, translated minus provider-native, at most (µs).
    pub const ADDED_CPU_PER_CHUNK_US: f64 = 5.0;
    /// Time to first byte of a translated stream over the same stream direct to the mock, at p99, below (µs).
    pub const ADDED_TTFB_US: f64 = 500.0;
}

/// One exchange three ways: direct to the mock, provider-native through the gateway, translated through `/compat`.
#[derive(Debug, Clone, Default)]
pub struct Trio {
    pub direct: Side,
    pub native: Option<Side>,
    pub translated: Option<Side>,
}

impl Trio {
    fn sides(&self) -> [Option<&Side>; 3] {
        [
            Some(&self.direct),
            self.native.as_ref(),
            self.translated.as_ref(),
        ]
    }

    pub fn error_count(&self) -> usize {
        self.sides()
            .into_iter()
            .flatten()
            .map(|s| s.result.error_count())
            .sum()
    }
}

/// Everything the compat phase measured.
#[derive(Debug, Clone, Default)]
pub struct Compat {
    /// The model asked for through `/compat`, e.g. `anthropic/claude-sonnet-4-5`.
    pub model: String,
    /// Non-streamed, open loop at the chat phase's rate.
    pub whole: Trio,
    /// Short streams (the stream phase's chunks), for the time to first byte.
    pub stream: Trio,
    /// Long streams through the gateway, native and translated: CPU per chunk is long minus short.
    pub long_native: Option<Side>,
    pub long_translated: Option<Side>,
}

/// `b − a`, when both are there.
fn minus(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| b - a)
}

/// `pick`'s summary of `side`'s results at p50 and p99, added over `base`'s, in µs.
fn added(
    base: &Side,
    side: Option<&Side>,
    pick: fn(&PhaseResult) -> Option<Summary>,
) -> Option<(f64, f64)> {
    let (b, s) = (pick(&base.result)?, pick(&side?.result)?);
    Some((added_us(b.p50, s.p50), added_us(b.p99, s.p99)))
}

impl Compat {
    /// Gateway CPU per non-streamed request, translated minus native, in µs.
    pub fn added_cpu_per_request_us(&self) -> Option<f64> {
        minus(
            self.whole.native.as_ref()?.cpu_per_request_us(),
            self.whole.translated.as_ref()?.cpu_per_request_us(),
        )
    }

    /// The same on the data plane's threads only.
    pub fn added_data_plane_cpu_per_request_us(&self) -> Option<f64> {
        minus(
            self.whole.native.as_ref()?.data_plane_cpu_per_request_us(),
            self.whole
                .translated
                .as_ref()?
                .data_plane_cpu_per_request_us(),
        )
    }

    /// Gateway CPU per relayed chunk of a provider-native stream (passed through), in µs.
    pub fn native_cpu_per_chunk_us(&self) -> Option<f64> {
        marginal_cpu_per_event_us(self.stream.native.as_ref()?, self.long_native.as_ref()?)
    }

    /// Gateway CPU per relayed chunk of a translated stream (decoded and re-encoded), in µs.
    pub fn translated_cpu_per_chunk_us(&self) -> Option<f64> {
        marginal_cpu_per_event_us(
            self.stream.translated.as_ref()?,
            self.long_translated.as_ref()?,
        )
    }

    /// Translated minus native CPU per chunk, in µs.
    pub fn added_cpu_per_chunk_us(&self) -> Option<f64> {
        minus(
            self.native_cpu_per_chunk_us(),
            self.translated_cpu_per_chunk_us(),
        )
    }

    /// Time to first byte of the translated streams over direct-to-mock ones, at p50 and p99, in µs.
    pub fn added_ttfb_us(&self) -> Option<(f64, f64)> {
        added(
            &self.stream.direct,
            self.stream.translated.as_ref(),
            PhaseResult::first_byte,
        )
    }

    pub fn error_count(&self) -> usize {
        self.whole.error_count()
            + self.stream.error_count()
            + [&self.long_native, &self.long_translated]
                .into_iter()
                .flatten()
                .map(|s| s.result.error_count())
                .sum::<usize>()
    }
}

fn row(t: &mut String, label: &str, cells: [String; 4], target: &str) {
    let [direct, native, compat, delta] = cells;
    let _ = writeln!(
        t,
        "  {label:<28}{direct:>12}{native:>12}{compat:>12}{delta:>16}   {target}"
    );
}

fn none() -> String {
    String::new()
}

/// Per-side cells of `value`, and the compat − native difference.
fn per_side(trio: &Trio, value: impl Fn(&Side) -> Option<f64>, places: usize) -> [String; 4] {
    let [d, n, c] = trio.sides().map(|s| s.and_then(&value));
    [
        cell(d, places),
        cell(n, places),
        cell(c, places),
        signed(minus(n, c)),
    ]
}

/// p50, p90, p99 and max of each side, with the compat − native difference.
fn summary_rows(
    t: &mut String,
    trio: &Trio,
    what: &str,
    pick: fn(&PhaseResult) -> Option<Summary>,
) {
    for (i, name) in Summary::POINTS.into_iter().enumerate() {
        let cells = per_side(trio, |s| pick(&s.result).map(|v| us(v.points()[i])), 1);
        row(t, &format!("{what} {name} µs"), cells, "");
    }
}

/// Added over direct at p50 and p99 of native and compat.
fn added_rows(
    t: &mut String,
    trio: &Trio,
    what: &str,
    pick: fn(&PhaseResult) -> Option<Summary>,
    p99_target: Option<f64>,
) {
    let native = added(&trio.direct, trio.native.as_ref(), pick);
    let compat = added(&trio.direct, trio.translated.as_ref(), pick);
    for (name, i) in [("p50", 0), ("p99", 1)] {
        let at = |a: Option<(f64, f64)>| a.map(|a| if i == 0 { a.0 } else { a.1 });
        let target = match p99_target {
            Some(target) if i == 1 => format!("compat: {}", verdict(at(compat), target)),
            _ => none(),
        };
        row(
            t,
            &format!("added {what} {name} µs"),
            [none(), signed(at(native)), signed(at(compat)), none()],
            &target,
        );
    }
}

/// Failed requests of each side (`-` for a side not run), then one line per side that had failures, by kind.
fn errors_row(t: &mut String, label: &str, sides: [Option<&Side>; 3]) {
    let count = |s: Option<&Side>| s.map_or("-".into(), |s| s.result.error_count().to_string());
    let [d, n, c] = sides.map(count);
    row(t, label, [d, n, c, none()], "");
    for (side, s) in ["direct", "native", "compat"].into_iter().zip(sides) {
        if let Some(s) = s.filter(|s| s.result.error_count() > 0) {
            let kinds: Vec<String> = s
                .result
                .errors
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(t, "      {side}: {}", kinds.join(", "));
        }
    }
}

/// The table's section.
pub fn table(c: &Compat) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "compat: `{}` as OpenAI chat completions through /compat (translated to Anthropic Messages) vs \
         provider-native Messages through the gateway vs direct to the mock, same schedule",
        c.model
    );
    let header = |t: &mut String, title: &str| {
        let _ = writeln!(t, "  {title}");
        row(
            t,
            "",
            [
                "direct".into(),
                "native".into(),
                "compat".into(),
                "compat-native".into(),
            ],
            "target",
        );
    };
    let w = &c.whole;
    header(&mut t, "non-streamed, open loop");
    row(
        &mut t,
        "throughput req/s",
        per_side(w, |s| Some(s.result.throughput()), 1),
        "",
    );
    summary_rows(&mut t, w, "latency", PhaseResult::latency);
    added_rows(&mut t, w, "latency", PhaseResult::latency, None);
    errors_row(&mut t, "errors", w.sides());
    let mut cpu = per_side(w, Side::cpu_per_request_us, 1);
    cpu[0] = none();
    row(
        &mut t,
        "gateway CPU µs/request",
        cpu,
        &verdict_at_most(
            c.added_cpu_per_request_us(),
            targets::ADDED_CPU_PER_REQUEST_US,
        ),
    );
    let mut dp = per_side(w, Side::data_plane_cpu_per_request_us, 1);
    dp[0] = none();
    row(&mut t, "  of which data-plane threads", dp, "");

    let s = &c.stream;
    header(
        &mut t,
        "streamed, time to first byte (long streams: CPU per chunk)",
    );
    summary_rows(&mut t, s, "TTFB", PhaseResult::first_byte);
    added_rows(
        &mut t,
        s,
        "TTFB",
        PhaseResult::first_byte,
        Some(targets::ADDED_TTFB_US),
    );
    errors_row(&mut t, "errors", s.sides());
    errors_row(
        &mut t,
        "errors (long streams)",
        [None, c.long_native.as_ref(), c.long_translated.as_ref()],
    );
    let (native, translated) = (c.native_cpu_per_chunk_us(), c.translated_cpu_per_chunk_us());
    row(
        &mut t,
        "gateway CPU µs/chunk",
        [
            none(),
            cell(native, 1),
            cell(translated, 1),
            signed(c.added_cpu_per_chunk_us()),
        ],
        &verdict_at_most(c.added_cpu_per_chunk_us(), targets::ADDED_CPU_PER_CHUNK_US),
    );
    let mut per_stream = per_side(s, Side::cpu_per_request_us, 1);
    per_stream[0] = none();
    row(&mut t, "gateway CPU µs/stream", per_stream, "");
    let mut events = per_side(s, Side::events_per_stream, 1);
    events[3] = none();
    row(&mut t, "events per stream", events, "");
    t
}

fn trio_json(trio: &Trio, side_json: &dyn Fn(&Side) -> Value) -> Value {
    json!({
        "direct": side_json(&trio.direct),
        "native": trio.native.as_ref().map(side_json),
        "translated": trio.translated.as_ref().map(side_json),
    })
}

fn r(v: Option<f64>, places: i32) -> Option<f64> {
    v.map(|v| round(v, places))
}

/// The phase's JSON; `side_json` renders one side as everywhere else in the summary.
pub fn json(
    c: &Compat,
    side_json: &dyn Fn(&Side) -> Value,
    stream_json: &dyn Fn(&Side) -> Value,
) -> Value {
    let with_cpu = |s: &Side| {
        let mut v = side_json(s);
        v["gateway_cpu_per_request_us"] = json!(r(s.cpu_per_request_us(), 2));
        v["data_plane_cpu_per_request_us"] = json!(r(s.data_plane_cpu_per_request_us(), 2));
        v
    };
    let stream_with_cpu = |s: &Side| {
        let mut v = stream_json(s);
        v["gateway_cpu_per_stream_us"] = json!(r(s.cpu_per_request_us(), 2));
        v["events_per_stream"] = json!(r(s.events_per_stream(), 2));
        v
    };
    let added_latency = |n: Option<&Side>| added(&c.whole.direct, n, PhaseResult::latency);
    let pair = |a: Option<(f64, f64)>| json!({"p50_us": r(a.map(|a| a.0), 1), "p99_us": r(a.map(|a| a.1), 1)});
    json!({
        "model": c.model,
        "whole": trio_json(&c.whole, &with_cpu),
        "added_latency_native": pair(added_latency(c.whole.native.as_ref())),
        "added_latency_translated": pair(added_latency(c.whole.translated.as_ref())),
        "added_cpu_per_request_us": r(c.added_cpu_per_request_us(), 2),
        "added_data_plane_cpu_per_request_us": r(c.added_data_plane_cpu_per_request_us(), 2),
        "stream_ttfb": trio_json(&c.stream, &stream_with_cpu),
        "long_native": c.long_native.as_ref().map(&stream_with_cpu),
        "long_translated": c.long_translated.as_ref().map(&stream_with_cpu),
        "added_ttfb_native": pair(added(&c.stream.direct, c.stream.native.as_ref(), PhaseResult::first_byte)),
        "added_ttfb_translated": pair(c.added_ttfb_us()),
        "native_cpu_per_chunk_us": r(c.native_cpu_per_chunk_us(), 2),
        "translated_cpu_per_chunk_us": r(c.translated_cpu_per_chunk_us(), 2),
        "added_cpu_per_chunk_us": r(c.added_cpu_per_chunk_us(), 2),
        "errors": c.error_count(),
        "targets": {
            "added_cpu_per_request_us": targets::ADDED_CPU_PER_REQUEST_US,
            "added_cpu_per_chunk_us": targets::ADDED_CPU_PER_CHUNK_US,
            "added_ttfb_p99_us": targets::ADDED_TTFB_US,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::measure::test_side;

    fn timed(cpu_ms: u64, ok: usize, events_per: usize, ttfb_us: u64) -> Side {
        let mut s = test_side(cpu_ms, ok, events_per);
        s.result.first_bytes = vec![Duration::from_micros(ttfb_us); ok];
        s.result.latencies = vec![Duration::from_micros(ttfb_us * 2); ok];
        s
    }

    fn compat() -> Compat {
        Compat {
            model: "anthropic/claude-sonnet-4-5".into(),
            // 10,000 requests: native 300 ms (30 µs each), translated 480 ms (48 µs).
            whole: Trio {
                direct: timed(0, 10_000, 0, 100),
                native: Some(timed(300, 10_000, 0, 250)),
                translated: Some(timed(480, 10_000, 0, 300)),
            },
            // 200 short streams of 16 events; long ones of 56: native 40 → 120 ms, translated 50 → 150 ms.
            stream: Trio {
                direct: timed(0, 200, 16, 100),
                native: Some(timed(40, 200, 16, 300)),
                translated: Some(timed(50, 200, 14, 450)),
            },
            long_native: Some(timed(120, 200, 56, 300)),
            long_translated: Some(timed(150, 200, 54, 450)),
        }
    }

    #[test]
    fn translation_costs_are_compat_minus_native() {
        let c = compat();
        let close = |v: Option<f64>, e: f64| v.is_some_and(|v| (v - e).abs() < 1e-9);
        assert!(close(c.added_cpu_per_request_us(), 18.0));
        assert!(close(c.added_data_plane_cpu_per_request_us(), 9.0));
        // 80 ms over 200 × 40 extra events: 10 µs; 100 ms over the same: 12.5 µs.
        assert!(close(c.native_cpu_per_chunk_us(), 10.0));
        assert!(close(c.translated_cpu_per_chunk_us(), 12.5));
        assert!(close(c.added_cpu_per_chunk_us(), 2.5));
        assert_eq!(c.added_ttfb_us(), Some((350.0, 350.0)));
        assert_eq!(c.error_count(), 0);
        assert_eq!(Compat::default().added_cpu_per_request_us(), None);
    }

    #[test]
    fn the_table_prints_the_three_verdicts() {
        let t = table(&compat());
        assert!(t.contains("<= 25  met"), "{t}");
        assert!(t.contains("<= 5  met"), "{t}");
        assert!(t.contains("compat: < 500  met"), "{t}");
        let v = json(&compat(), &|_| json!({}), &|_| json!({}));
        assert_eq!(v["added_cpu_per_request_us"], 18.0);
        assert_eq!(v["added_ttfb_translated"]["p99_us"], 350.0);
    }
}
