//! Derived figures (added latency, ratios, CPU per request and per chunk), the table and the JSON summary.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::compare::{self, Labelled};
use crate::compat::{self, Compat};
use crate::concurrent::{self, Concurrent, StreamsSide};
use crate::format::{cell, round, signed, us, verdict, verdict_at_least, verdict_at_most};
use crate::keys::{self, Keys};
use crate::load::PhaseResult;
use crate::measure::{Pair, Side, marginal_cpu_per_event_us};
use crate::resources::kib_to_mib;
use crate::routes::{self, Routes};
use crate::stats::Summary;
use crate::telemetry::{self, Telemetry};

/// Targets from the data-plane issue, shown next to the numbers (missing one does not fail the run).
pub mod targets {
    pub const ADDED_P99_US: f64 = 1000.0;
    pub const CPU_PER_REQUEST_US: f64 = 60.0;
    pub const ADDED_TTFB_US: f64 = 1000.0;
    pub const CPU_PER_CHUNK_US: f64 = 15.0;
    /// Gateway CPU per request with logging on over logging off (within 20 %).
    pub const LOGGING_CPU_RATIO: f64 = 1.2;
    /// The concurrent-streams phase: at this many streams open at once, the added TTFB at p99 stays under
    /// [`ADDED_TTFB_US`] and the gateway's resident memory under [`RSS_MIB`]; CPU per chunk under
    /// [`CPU_PER_CHUNK_US`] at any count.
    pub const CONCURRENT_STREAMS: u64 = 2000;
    pub const RSS_MIB: f64 = 150.0;
    /// The request-path issue, saturated (closed loop), the whole process pinned to one core: gateway CPU per
    /// non-streamed request with logging off and on, at most (µs), and throughput with logging on, at least.
    pub const SATURATED_CPU_LOGS_OFF_US: f64 = 40.0;
    pub const SATURATED_CPU_LOGS_ON_US: f64 = 50.0;
    pub const SATURATED_LOGS_ON_RPS: f64 = 20_000.0;
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
    /// The closed loop through the gateway with `collect_logs: true` (`closed.through` has it off).
    pub closed_logged: Option<Side>,
    /// The compat phase: translated against provider-native Anthropic.
    pub compat: Option<Compat>,
    /// The chat phase through further gateways (`--through-also`), compared with `chat.through`.
    pub chat_also: Vec<Labelled>,
    /// The sampled response header (`--sample-header`) of `chat.through`, when further gateways were measured.
    pub through_sample: Option<String>,
    /// The concurrent-streams phase, one entry per count of streams (`--concurrent-streams`).
    pub concurrent: Vec<Concurrent>,
    /// The keys phase: without a virtual key against with one.
    pub keys: Option<Keys>,
    /// The routes phase: a model named directly against a dynamic route.
    pub routes: Option<Routes>,
    /// The telemetry phase: metrics and OTLP export off against on, two gateway processes.
    pub telemetry: Option<Telemetry>,
}

impl Results {
    /// Gateway CPU per relayed chunk, in µs: the extra CPU of a long stream over a short one divided by its extra
    /// events, so the cost of the request itself (routing, upstream exchange, headers) cancels out.
    pub fn cpu_per_chunk_us(&self) -> Option<f64> {
        let short = self.stream.as_ref()?.through.as_ref()?;
        marginal_cpu_per_event_us(short, self.long_stream.as_ref()?)
    }

    /// Gateway CPU per request with logging on over the same with logging off (the chat phase).
    pub fn logging_cpu_ratio(&self) -> Option<f64> {
        let off = self.chat.as_ref()?.through.as_ref();
        cpu_ratio(off, self.chat_logged.as_ref()?, Side::cpu_per_request_us)
    }

    /// The same ratio on the data plane's threads only (the log writer excluded).
    pub fn logging_data_plane_cpu_ratio(&self) -> Option<f64> {
        let off = self.chat.as_ref()?.through.as_ref();
        cpu_ratio(
            off,
            self.chat_logged.as_ref()?,
            Side::data_plane_cpu_per_request_us,
        )
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
            + [&self.chat_logged, &self.closed_logged]
                .into_iter()
                .flatten()
                .map(|s| s.result.error_count())
                .sum::<usize>()
            + self.compat.as_ref().map_or(0, Compat::error_count)
            + self.keys.as_ref().map_or(0, Keys::error_count)
            + self.routes.as_ref().map_or(0, Routes::error_count)
            + self.telemetry.as_ref().map_or(0, Telemetry::error_count)
            + self
                .long_stream
                .as_ref()
                .map_or(0, |s| s.result.error_count())
            + self
                .chat_also
                .iter()
                .map(|a| a.side.result.error_count())
                .sum::<usize>()
            + self
                .concurrent
                .iter()
                .map(Concurrent::error_count)
                .sum::<usize>()
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
        self.summary_rows(d, t, what, p99_target);
    }

    /// p50, p90, p99 and max of each side and their difference; the verdict on p99's when there is a target.
    fn summary_rows(
        &mut self,
        d: Option<Summary>,
        t: Option<Summary>,
        what: &str,
        p99_target: Option<f64>,
    ) {
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
                &cell(dv, 1),
                &cell(tv, 1),
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
            &cell(Some(chat.direct.result.throughput()), 1),
            &cell(through.map(|s| s.result.throughput()), 1),
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
            &cell(cpu, 1),
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
        let off = results.chat.as_ref().and_then(|c| c.through.as_ref());
        t.logs_off_on(off, logged, false);
        let on = logged.cpu_per_request_us();
        t.row(
            "gateway CPU µs/request",
            &cell(off.and_then(Side::cpu_per_request_us), 1),
            &cell(on, 1),
            "",
            &verdict(on, targets::CPU_PER_REQUEST_US),
        );
        t.cpu_tail(off, logged);
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
            &cell(per_chunk, 1),
            "",
            &verdict(per_chunk, targets::CPU_PER_CHUNK_US),
        );
        let per_stream = stream.through.as_ref().and_then(Side::cpu_per_request_us);
        t.row("gateway CPU µs/stream", "", &cell(per_stream, 1), "", "");
        if let Some(long) = &results.long_stream {
            t.errors_row("errors (long streams)", None, Some(&long.result));
        }
    }
    if let Some(closed) = &results.closed {
        t.header("closed loop (max throughput)");
        let through = closed.through.as_ref();
        t.row(
            "throughput req/s",
            &cell(Some(closed.direct.result.throughput()), 1),
            &cell(through.map(|s| s.result.throughput()), 1),
            &closed
                .throughput_ratio()
                .map_or("-".into(), |r| format!("ratio {r:.2}")),
            "",
        );
        t.latency_rows(closed, PhaseResult::latency, "latency", None);
        t.pair_errors(closed);
        let cpu = through.and_then(Side::cpu_per_request_us);
        t.row(
            "gateway CPU µs/request",
            "",
            &cell(cpu, 1),
            "",
            &verdict_at_most(cpu, targets::SATURATED_CPU_LOGS_OFF_US),
        );
        t.row(
            "  of which data-plane threads",
            "",
            &cell(through.and_then(Side::data_plane_cpu_per_request_us), 1),
            "",
            "",
        );
    }
    if let Some(logged) = &results.closed_logged {
        let _ = writeln!(
            t.0,
            "closed loop through the gateway with logging on (standalone: the log writer's CPU is in the figure, \
             read once it has stored the phase's records)"
        );
        let off = results.closed.as_ref().and_then(|c| c.through.as_ref());
        t.logs_off_on(off, logged, true);
        let on = logged.cpu_per_request_us();
        t.row(
            "gateway CPU µs/request",
            &cell(off.and_then(Side::cpu_per_request_us), 1),
            &cell(on, 1),
            "",
            &format!(
                "off {}; on {}",
                verdict_at_most(
                    off.and_then(Side::cpu_per_request_us),
                    targets::SATURATED_CPU_LOGS_OFF_US
                ),
                verdict_at_most(on, targets::SATURATED_CPU_LOGS_ON_US)
            ),
        );
        t.cpu_tail(off, logged);
    }
    if let Some(c) = &results.compat {
        t.0.push_str(&compat::table(c));
    }
    if let Some(k) = &results.keys {
        t.0.push_str(&keys::table(k));
    }
    if let Some(r) = &results.routes {
        t.0.push_str(&routes::table(r));
    }
    if let Some(r) = &results.telemetry {
        t.0.push_str(&telemetry::table(r));
    }
    for run in &results.concurrent {
        t.concurrent(run);
    }
    t.0
}

/// `on`'s CPU per request over `off`'s, by `pick` (the whole process, or the data plane's threads).
pub fn cpu_ratio(off: Option<&Side>, on: &Side, pick: fn(&Side) -> Option<f64>) -> Option<f64> {
    let (off, on) = (pick(off?)?, pick(on)?);
    (off > 0.0).then(|| on / off)
}

impl Table {
    /// The head of a logs off / on comparison: (throughput with its ratio and the saturated target,) latency and
    /// errors. The caller adds the CPU row with its target, then [`Table::cpu_tail`].
    fn logs_off_on(&mut self, off: Option<&Side>, on: &Side, saturated: bool) {
        self.row("", "logs off", "logs on", "change", "target");
        if saturated {
            let (offv, onv) = (off.map(|s| s.result.throughput()), on.result.throughput());
            self.row(
                "throughput req/s",
                &cell(offv, 1),
                &cell(Some(onv), 1),
                &offv
                    .filter(|o| *o > 0.0)
                    .map_or("-".into(), |o| format!("ratio {:.2}", onv / o)),
                &format!(
                    "on {}",
                    verdict_at_least(Some(onv), targets::SATURATED_LOGS_ON_RPS)
                ),
            );
        }
        let (off_lat, on_lat) = (off.and_then(|s| s.result.latency()), on.result.latency());
        for (i, name) in Summary::POINTS.into_iter().enumerate() {
            let offv = off_lat.map(|s| us(s.points()[i]));
            let onv = on_lat.map(|s| us(s.points()[i]));
            self.row(
                &format!("latency {name} µs"),
                &cell(offv, 1),
                &cell(onv, 1),
                &signed(offv.zip(onv).map(|(a, b)| b - a)),
                "",
            );
        }
        self.errors_row("errors (logs on)", None, Some(&on.result));
    }

    /// The data-plane threads' CPU, the log records stored and the on / off CPU ratios (target from the logs
    /// issue).
    fn cpu_tail(&mut self, off: Option<&Side>, on: &Side) {
        self.row(
            "  of which data-plane threads",
            &cell(off.and_then(Side::data_plane_cpu_per_request_us), 1),
            &cell(on.data_plane_cpu_per_request_us(), 1),
            "",
            "",
        );
        if let Some(stored) = on.log_records {
            self.row(
                "log records stored",
                "",
                &stored.to_string(),
                &format!("of {} sent", on.result.sent),
                if stored < on.result.sent as u64 {
                    "records dropped: CPU understated"
                } else {
                    ""
                },
            );
        }
        for (label, pick) in [
            (
                "CPU ratio on / off, process",
                Side::cpu_per_request_us as fn(&Side) -> Option<f64>,
            ),
            (
                "CPU ratio on / off, data plane",
                Side::data_plane_cpu_per_request_us,
            ),
        ] {
            let ratio = cpu_ratio(off, on, pick);
            self.row(
                label,
                "",
                &cell(ratio, 2),
                "",
                &verdict_at_most(ratio, targets::LOGGING_CPU_RATIO),
            );
        }
    }
}

impl Table {
    /// The concurrent-streams phase for one count: TTFB under that many open streams, whether they really were all
    /// open at once, the gateway's CPU per chunk and memory, and who was short of CPU.
    fn concurrent(&mut self, run: &Concurrent) {
        let at_target = run.streams >= targets::CONCURRENT_STREAMS;
        self.header(&format!(
            "concurrent streams: {} open at once per side, on connections opened by a warm-up round{}",
            run.streams,
            if at_target {
                ""
            } else {
                " (the TTFB and RSS targets are for 2,000)"
            },
        ));
        let (d, t) = (&run.direct, run.through.as_ref());
        let (dt, tt) = run.ttfb();
        let direct_kept_up = d.kept_up(run.nominal) != Some(false);
        self.summary_rows(
            dt,
            tt,
            "TTFB",
            (at_target && direct_kept_up).then_some(targets::ADDED_TTFB_US),
        );
        let duration = |s: &StreamsSide| s.side.result.latency().map(|l| l.points());
        let (dd, td) = (duration(d), t.and_then(duration));
        for (i, name) in Summary::POINTS.into_iter().enumerate() {
            if name == "p50" || name == "p99" {
                let ms = |p: Option<[std::time::Duration; 4]>| p.map(|p| us(p[i]) / 1e3);
                self.row(
                    &format!("stream length {name} ms"),
                    &cell(ms(dd), 0),
                    &cell(ms(td), 0),
                    "",
                    &format!("nominal {:.0}", run.nominal.as_secs_f64() * 1e3),
                );
            }
        }
        if !direct_kept_up {
            let _ = writeln!(
                self.0,
                "      direct streams fell behind the mock's pace: the client and the mock were short of CPU, so \
                 the TTFB above is theirs and no verdict is given"
            );
        }
        if t.and_then(|t| t.kept_up(run.nominal)) == Some(false) && direct_kept_up {
            let _ = writeln!(
                self.0,
                "      through streams fell behind the mock's pace: the gateway could not relay them as fast"
            );
        }
        let count = |v: usize| Some(v as f64);
        self.row(
            "peak open streams",
            &cell(count(d.peak_open), 0),
            &cell(t.and_then(|t| count(t.peak_open)), 0),
            "",
            "",
        );
        let ms = |v: Option<std::time::Duration>| v.map(|v| v.as_secs_f64() * 1e3);
        self.row(
            "all open together ms",
            &cell(ms(d.all_open), 0),
            &cell(t.and_then(|t| ms(t.all_open)), 0),
            "",
            "",
        );
        self.errors_row("errors", Some(&d.side.result), t.map(|t| &t.side.result));
        let per_chunk = run.cpu_per_chunk_us();
        self.row(
            "gateway CPU µs/chunk",
            "",
            &cell(per_chunk, 1),
            "",
            &verdict(per_chunk, targets::CPU_PER_CHUNK_US),
        );
        self.row(
            "  of which data-plane threads",
            "",
            &cell(t.and_then(|t| t.side.data_plane_cpu_per_event_us()), 1),
            "",
            "",
        );
        let rss = t.and_then(|t| t.gateway_rss);
        let peak = run.peak_rss_mib();
        self.row(
            "gateway RSS peak MiB",
            "",
            &cell(peak, 1),
            &rss.map_or("-".into(), |r| {
                format!("before {:.1}", kib_to_mib(r.before_kib))
            }),
            &if at_target {
                verdict(peak, targets::RSS_MIB)
            } else {
                String::new()
            },
        );
        self.row(
            "gateway VmHWM MiB (lifetime)",
            "",
            &cell(rss.and_then(|r| r.hwm_kib).map(kib_to_mib), 1),
            "",
            "",
        );
        for (label, pick) in [
            (
                "client CPU % of a core",
                StreamsSide::client_core_percent as fn(&StreamsSide) -> Option<f64>,
            ),
            ("mock CPU % of a core", StreamsSide::mock_core_percent),
        ] {
            self.row(label, &cell(pick(d), 0), &cell(t.and_then(pick), 0), "", "");
        }
        self.row(
            "gateway CPU % of a core",
            "",
            &cell(t.and_then(StreamsSide::gateway_core_percent), 0),
            "",
            "",
        );
    }
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
        "log_records_stored": s.log_records,
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

/// A logs-on side: the usual JSON with its CPU per request (process and data-plane threads).
fn logged_json(s: &Side) -> Value {
    let mut v = side_json(s, PhaseResult::latency);
    v["gateway_cpu_per_request_us"] = json!(s.cpu_per_request_us().map(|c| round(c, 2)));
    v["data_plane_cpu_per_request_us"] =
        json!(s.data_plane_cpu_per_request_us().map(|c| round(c, 2)));
    v
}

/// The one-line summary for scripts.
pub fn json_summary(results: &Results, settings: &Value) -> Value {
    json!({
        "settings": settings,
        "chat": results.chat.as_ref().map(|p| pair_json(p, PhaseResult::latency)),
        "chat_logged": results.chat_logged.as_ref().map(logged_json),
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
        "closed": results.closed.as_ref().map(|p| {
            let mut v = pair_json(p, PhaseResult::latency);
            v["data_plane_cpu_per_request_us"] = json!(p
                .through
                .as_ref()
                .and_then(Side::data_plane_cpu_per_request_us)
                .map(|c| round(c, 2)));
            v
        }),
        "closed_logged": results.closed_logged.as_ref().map(|on| {
            let off = results.closed.as_ref().and_then(|c| c.through.as_ref());
            let mut v = logged_json(on);
            v["cpu_ratio_vs_logs_off"] =
                json!(cpu_ratio(off, on, Side::cpu_per_request_us).map(|r| round(r, 3)));
            v["data_plane_cpu_ratio_vs_logs_off"] =
                json!(cpu_ratio(off, on, Side::data_plane_cpu_per_request_us).map(|r| round(r, 3)));
            v
        }),
        "compat": results.compat.as_ref().map(|c| compat::json(
            c,
            &|s| side_json(s, PhaseResult::latency),
            &|s| side_json(s, PhaseResult::first_byte),
        )),
        "keys": results.keys.as_ref().map(|k| keys::json(k, &|s| side_json(s, PhaseResult::latency))),
        "routes": results.routes.as_ref().map(|r| routes::json(r, &|s| side_json(s, PhaseResult::latency))),
        "telemetry": results.telemetry.as_ref().map(|r| telemetry::json(r, &side_json)),
        "concurrent_streams": results.concurrent.iter().map(|c| concurrent::json(
            c,
            &|s| side_json(s, PhaseResult::first_byte),
            &summary_json,
        )).collect::<Vec<_>>(),
        "errors": results.errors(),
        "targets": {
            "added_p99_us": targets::ADDED_P99_US,
            "cpu_per_request_us": targets::CPU_PER_REQUEST_US,
            "added_ttfb_us": targets::ADDED_TTFB_US,
            "cpu_per_chunk_us": targets::CPU_PER_CHUNK_US,
            "logging_cpu_ratio": targets::LOGGING_CPU_RATIO,
            "concurrent_streams": targets::CONCURRENT_STREAMS,
            "gateway_rss_mib": targets::RSS_MIB,
            "saturated_cpu_logs_off_us": targets::SATURATED_CPU_LOGS_OFF_US,
            "saturated_cpu_logs_on_us": targets::SATURATED_CPU_LOGS_ON_US,
            "saturated_logs_on_rps": targets::SATURATED_LOGS_ON_RPS,
        },
    })
}

#[cfg(test)]
mod tests;
