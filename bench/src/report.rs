//! Derived figures (added latency, ratios, CPU per request and per chunk), the table and the JSON summary.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::compare::{self, Labelled};
use crate::load::PhaseResult;
use crate::stats::{Summary, added_us};

/// Targets from the data-plane issue, shown next to the numbers (missing one does not fail the run).
pub mod targets {
    pub const ADDED_P99_US: f64 = 1000.0;
    pub const CPU_PER_REQUEST_US: f64 = 60.0;
    pub const ADDED_TTFB_US: f64 = 1000.0;
    pub const CPU_PER_CHUNK_US: f64 = 15.0;
    /// Gateway CPU per request with logging on over logging off (within 20 %).
    pub const LOGGING_CPU_RATIO: f64 = 1.2;
}

/// One phase against one side, with the gateway's CPU time spent meanwhile (when its pid is known).
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub result: PhaseResult,
    pub gateway_cpu: Option<Duration>,
    /// The part of it spent on the data plane's own threads (`gatehouse-dp`; in standalone the control plane, the
    /// config bus and the log writer run on other threads of the same process).
    pub data_plane_cpu: Option<Duration>,
}

impl Side {
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

    /// SSE events per successful stream.
    pub fn events_per_stream(&self) -> Option<f64> {
        let ok = self.result.ok();
        (ok > 0).then(|| self.result.events as f64 / ok as f64)
    }
}

/// The same phase direct to the mock and through the gateway.
#[derive(Debug, Clone, Default)]
pub struct Pair {
    pub direct: Side,
    pub through: Option<Side>,
}

impl Pair {
    fn summaries(
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
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub chat: Option<Pair>,
    /// The chat phase through a second gateway with `collect_logs: true` (`chat.through` has it off).
    pub chat_logged: Option<Side>,
    pub stream: Option<Pair>,
    /// Through the gateway only: streams with more chunks, for the marginal cost of a chunk.
    pub long_stream: Option<Side>,
    pub closed: Option<Pair>,
    /// The chat phase through further gateways (`--through-also`), compared with `chat.through`.
    pub chat_also: Vec<Labelled>,
    /// The sampled response header (`--sample-header`) of `chat.through`, when further gateways were measured.
    pub through_sample: Option<String>,
}

impl Results {
    /// Gateway CPU per relayed chunk, in µs: the extra CPU of a long stream over a short one divided by its extra
    /// events, so the cost of the request itself (routing, upstream exchange, headers) cancels out.
    pub fn cpu_per_chunk_us(&self) -> Option<f64> {
        let short = self.stream.as_ref()?.through.as_ref()?;
        let long = self.long_stream.as_ref()?;
        let per_stream =
            |s: &Side| Some(s.gateway_cpu?.as_secs_f64() * 1e6 / s.result.ok().max(1) as f64);
        let extra_events = long.events_per_stream()? - short.events_per_stream()?;
        (extra_events > 0.0).then_some((per_stream(long)? - per_stream(short)?) / extra_events)
    }

    /// Gateway CPU per request with logging on over the same with logging off.
    pub fn logging_cpu_ratio(&self) -> Option<f64> {
        let off = self.chat.as_ref()?.through.as_ref()?.cpu_per_request_us()?;
        let on = self.chat_logged.as_ref()?.cpu_per_request_us()?;
        (off > 0.0).then(|| on / off)
    }

    /// The same ratio on the data plane's threads only (the log writer excluded).
    pub fn logging_data_plane_cpu_ratio(&self) -> Option<f64> {
        let off = self
            .chat
            .as_ref()?
            .through
            .as_ref()?
            .data_plane_cpu_per_request_us()?;
        let on = self.chat_logged.as_ref()?.data_plane_cpu_per_request_us()?;
        (off > 0.0).then(|| on / off)
    }

    /// Every failed request of the run.
    pub fn errors(&self) -> usize {
        let pair = |p: &Option<Pair>| {
            p.as_ref().map_or(0, |p| {
                p.direct.result.error_count()
                    + p.through.as_ref().map_or(0, |t| t.result.error_count())
            })
        };
        pair(&self.chat)
            + pair(&self.stream)
            + pair(&self.closed)
            + self
                .chat_logged
                .as_ref()
                .map_or(0, |s| s.result.error_count())
            + self
                .long_stream
                .as_ref()
                .map_or(0, |s| s.result.error_count())
            + self
                .chat_also
                .iter()
                .map(|a| a.side.result.error_count())
                .sum::<usize>()
    }
}

/// Rounded to `places` decimals, so the JSON line stays readable.
fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn signed(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:+.1}"))
}

fn verdict(v: Option<f64>, target: f64) -> String {
    match v {
        Some(v) if v < target => format!("< {target}  met"),
        Some(_) => format!("< {target}  MISSED"),
        None => format!("< {target}"),
    }
}

/// Failures by kind, e.g. `2000 status 404, 3 timeout`.
fn error_kinds(r: &PhaseResult) -> String {
    let kinds: Vec<String> = r.errors.iter().map(|(k, v)| format!("{v} {k}")).collect();
    kinds.join(", ")
}

struct Table(String);

impl Table {
    fn row(&mut self, label: &str, direct: &str, through: &str, added: &str, target: &str) {
        let _ = writeln!(
            self.0,
            "  {label:<28}{direct:>12}{through:>12}{added:>14}   {target}"
        );
    }

    fn header(&mut self, title: &str) {
        let _ = writeln!(self.0, "{title}");
        self.row("", "direct", "through", "added", "target");
    }

    fn latency_rows(
        &mut self,
        pair: &Pair,
        pick: fn(&PhaseResult) -> Option<Summary>,
        what: &str,
        p99_target: Option<f64>,
    ) {
        let (d, t) = pair.summaries(pick);
        let (d, t) = (d.map(|s| s.points()), t.map(|s| s.points()));
        for (i, name) in Summary::POINTS.into_iter().enumerate() {
            let dv = d.map(|p| us(p[i]));
            let tv = t.map(|p| us(p[i]));
            let added = dv.zip(tv).map(|(d, t)| t - d);
            let target = match p99_target {
                Some(target) if name == "p99" => verdict(added, target),
                _ => String::new(),
            };
            self.row(
                &format!("{what} {name} µs"),
                &cell(dv),
                &cell(tv),
                &signed(added),
                &target,
            );
        }
    }

    /// The error counts in the columns, then one line per side that had failures, by kind.
    fn errors_row(
        &mut self,
        label: &str,
        direct: Option<&PhaseResult>,
        through: Option<&PhaseResult>,
    ) {
        let count = |r: Option<&PhaseResult>| r.map_or("-".into(), |r| r.error_count().to_string());
        self.row(label, &count(direct), &count(through), "", "");
        for (side, r) in [("direct", direct), ("through", through)] {
            if let Some(r) = r.filter(|r| r.error_count() > 0) {
                let _ = writeln!(self.0, "      {side}: {}", error_kinds(r));
            }
        }
    }

    fn pair_errors(&mut self, pair: &Pair) {
        self.errors_row(
            "errors",
            Some(&pair.direct.result),
            pair.through.as_ref().map(|t| &t.result),
        );
    }
}

/// The human-readable table; `sample_header` names the header sampled through the further gateways.
pub fn table(results: &Results, title: &str, sample_header: &str) -> String {
    let mut t = Table(String::new());
    let _ = writeln!(t.0, "{title}");
    if let Some(chat) = &results.chat {
        t.header("non-streaming chat completions, open loop");
        let through = chat.through.as_ref();
        t.row(
            "throughput req/s",
            &cell(Some(chat.direct.result.throughput())),
            &cell(through.map(|s| s.result.throughput())),
            &chat
                .throughput_ratio()
                .map_or("-".into(), |r| format!("ratio {r:.2}")),
            "",
        );
        t.latency_rows(
            chat,
            PhaseResult::latency,
            "latency",
            Some(targets::ADDED_P99_US),
        );
        t.pair_errors(chat);
        let cpu = through.and_then(Side::cpu_per_request_us);
        t.row(
            "gateway CPU µs/request",
            "",
            &cell(cpu),
            "",
            &verdict(cpu, targets::CPU_PER_REQUEST_US),
        );
    }
    if let Some(logged) = &results.chat_logged {
        let _ = writeln!(
            t.0,
            "the same through a second gateway with logging on (collect_logs: true; standalone: the log writer's \
             CPU is in the figure)"
        );
        t.row("", "logs off", "logs on", "change", "target");
        let off = results.chat.as_ref().and_then(|c| c.through.as_ref());
        let (off_lat, on_lat) = (
            off.and_then(|s| s.result.latency()),
            logged.result.latency(),
        );
        for (i, name) in Summary::POINTS.into_iter().enumerate() {
            let offv = off_lat.map(|s| us(s.points()[i]));
            let onv = on_lat.map(|s| us(s.points()[i]));
            t.row(
                &format!("latency {name} µs"),
                &cell(offv),
                &cell(onv),
                &signed(offv.zip(onv).map(|(a, b)| b - a)),
                "",
            );
        }
        t.errors_row("errors (logs on)", None, Some(&logged.result));
        let on = logged.cpu_per_request_us();
        t.row(
            "gateway CPU µs/request",
            &cell(off.and_then(Side::cpu_per_request_us)),
            &cell(on),
            "",
            &verdict(on, targets::CPU_PER_REQUEST_US),
        );
        t.row(
            "  of which data-plane threads",
            &cell(off.and_then(Side::data_plane_cpu_per_request_us)),
            &cell(logged.data_plane_cpu_per_request_us()),
            "",
            "",
        );
        let ratio_verdict = |ratio: Option<f64>| match ratio {
            Some(r) if r <= targets::LOGGING_CPU_RATIO => {
                format!("<= {}  met", targets::LOGGING_CPU_RATIO)
            }
            Some(_) => format!("<= {}  MISSED", targets::LOGGING_CPU_RATIO),
            None => format!("<= {}", targets::LOGGING_CPU_RATIO),
        };
        for (label, ratio) in [
            ("CPU ratio on / off, process", results.logging_cpu_ratio()),
            (
                "CPU ratio on / off, data plane",
                results.logging_data_plane_cpu_ratio(),
            ),
        ] {
            t.row(
                label,
                "",
                &ratio.map_or("-".into(), |r| format!("{r:.2}")),
                "",
                &ratio_verdict(ratio),
            );
        }
    }
    if !results.chat_also.is_empty() {
        t.0.push_str(&compare::table(
            results.chat.as_ref().and_then(|c| c.through.as_ref()),
            results.through_sample.as_deref(),
            &results.chat_also,
            sample_header,
        ));
    }
    if let Some(stream) = &results.stream {
        t.header("streaming chat completions, time to first byte");
        t.latency_rows(
            stream,
            PhaseResult::first_byte,
            "TTFB",
            Some(targets::ADDED_TTFB_US),
        );
        t.pair_errors(stream);
        let per_chunk = results.cpu_per_chunk_us();
        t.row(
            "gateway CPU µs/chunk",
            "",
            &cell(per_chunk),
            "",
            &verdict(per_chunk, targets::CPU_PER_CHUNK_US),
        );
        let per_stream = stream.through.as_ref().and_then(Side::cpu_per_request_us);
        t.row("gateway CPU µs/stream", "", &cell(per_stream), "", "");
        if let Some(long) = &results.long_stream {
            t.errors_row("errors (long streams)", None, Some(&long.result));
        }
    }
    if let Some(closed) = &results.closed {
        t.header("closed loop (max throughput)");
        let through = closed.through.as_ref();
        t.row(
            "throughput req/s",
            &cell(Some(closed.direct.result.throughput())),
            &cell(through.map(|s| s.result.throughput())),
            &closed
                .throughput_ratio()
                .map_or("-".into(), |r| format!("ratio {r:.2}")),
            "",
        );
        t.latency_rows(closed, PhaseResult::latency, "latency", None);
        t.pair_errors(closed);
        t.row(
            "gateway CPU µs/request",
            "",
            &cell(through.and_then(Side::cpu_per_request_us)),
            "",
            "",
        );
    }
    t.0
}

fn summary_json(s: Option<Summary>) -> Value {
    s.map_or(Value::Null, |s| {
        json!({"count": s.count, "p50_us": us(s.p50), "p90_us": us(s.p90), "p99_us": us(s.p99), "max_us": us(s.max)})
    })
}

fn side_json(s: &Side, pick: fn(&PhaseResult) -> Option<Summary>) -> Value {
    json!({
        "sent": s.result.sent,
        "ok": s.result.ok(),
        "errors": s.result.errors,
        "throughput_rps": round(s.result.throughput(), 1),
        "latency": summary_json(pick(&s.result)),
        "send_lag": summary_json(s.result.lag()),
        "gateway_cpu_ms": s.gateway_cpu.map(|c| round(c.as_secs_f64() * 1e3, 1)),
        "data_plane_cpu_ms": s.data_plane_cpu.map(|c| round(c.as_secs_f64() * 1e3, 1)),
    })
}

fn pair_json(p: &Pair, pick: fn(&PhaseResult) -> Option<Summary>) -> Value {
    let added = p.added(pick);
    json!({
        "direct": side_json(&p.direct, pick),
        "through": p.through.as_ref().map(|t| side_json(t, pick)),
        "added_p50_us": added.map(|a| round(a.0, 1)),
        "added_p99_us": added.map(|a| round(a.1, 1)),
        "throughput_ratio": p.throughput_ratio().map(|r| round(r, 3)),
        "gateway_cpu_per_request_us": p
            .through
            .as_ref()
            .and_then(Side::cpu_per_request_us)
            .map(|c| round(c, 2)),
    })
}

/// The one-line summary for scripts.
pub fn json_summary(results: &Results, settings: &Value) -> Value {
    json!({
        "settings": settings,
        "chat": results.chat.as_ref().map(|p| pair_json(p, PhaseResult::latency)),
        "chat_logged": results.chat_logged.as_ref().map(|s| {
            let mut v = side_json(s, PhaseResult::latency);
            v["gateway_cpu_per_request_us"] = json!(s.cpu_per_request_us().map(|c| round(c, 2)));
            v["data_plane_cpu_per_request_us"] =
                json!(s.data_plane_cpu_per_request_us().map(|c| round(c, 2)));
            v
        }),
        "logging_cpu_ratio": results.logging_cpu_ratio().map(|r| round(r, 3)),
        "logging_data_plane_cpu_ratio": results.logging_data_plane_cpu_ratio().map(|r| round(r, 3)),
        "through_sample_header": results.through_sample,
        "chat_also": results.chat_also.iter().map(|a| {
            let baseline = results.chat.as_ref().and_then(|c| c.through.as_ref());
            compare::json(baseline, a, side_json(&a.side, PhaseResult::latency))
        }).collect::<Vec<_>>(),
        "stream_ttfb": results.stream.as_ref().map(|p| pair_json(p, PhaseResult::first_byte)),
        "long_stream": results.long_stream.as_ref().map(|s| side_json(s, PhaseResult::first_byte)),
        "gateway_cpu_per_chunk_us": results.cpu_per_chunk_us().map(|c| round(c, 2)),
        "closed": results.closed.as_ref().map(|p| pair_json(p, PhaseResult::latency)),
        "errors": results.errors(),
        "targets": {
            "added_p99_us": targets::ADDED_P99_US,
            "cpu_per_request_us": targets::CPU_PER_REQUEST_US,
            "added_ttfb_us": targets::ADDED_TTFB_US,
            "cpu_per_chunk_us": targets::CPU_PER_CHUNK_US,
            "logging_cpu_ratio": targets::LOGGING_CPU_RATIO,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(cpu_ms: u64, ok: usize, events_per: usize) -> Side {
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
        }
    }

    #[test]
    fn cpu_per_chunk_is_the_marginal_cost_of_the_extra_events() {
        // 200 short streams of 15 events cost 40 ms; 200 long ones of 55 events cost 120 ms: 80 ms for 8000
        // extra events is 10 µs each, whatever the request itself costs.
        let results = Results {
            stream: Some(Pair {
                direct: side(0, 200, 15),
                through: Some(side(40, 200, 15)),
            }),
            long_stream: Some(side(120, 200, 55)),
            ..Results::default()
        };
        let per_chunk = results.cpu_per_chunk_us().unwrap();
        assert!((per_chunk - 10.0).abs() < 1e-9, "{per_chunk}");
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
    fn logging_ratio_is_cpu_per_request_on_over_off() {
        let results = Results {
            chat: Some(Pair {
                direct: side(0, 1000, 0),
                through: Some(side(40, 1000, 0)),
            }),
            chat_logged: Some(side(46, 1000, 0)),
            ..Results::default()
        };
        let ratio = results.logging_cpu_ratio().unwrap();
        assert!((ratio - 1.15).abs() < 1e-9, "{ratio}");
        let dp = results.logging_data_plane_cpu_ratio().unwrap();
        assert!((dp - 23.0 / 20.0).abs() < 1e-9, "{dp}");
        assert_eq!(Results::default().logging_cpu_ratio(), None);
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
