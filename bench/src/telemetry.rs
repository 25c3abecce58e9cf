//! The telemetry phase: what Prometheus metrics and OTLP export cost the gateway (issue 16). The same OpenAI chat
//! completions through two gateway processes of one build, pinned to the same core, each with the same gateway:
//! one started with `--metrics false` and no OTLP exporter on its gateway (`off`), the other with metrics on and
//! its gateway's `otel` set to one OTLP/JSON exporter to a local collector stand-in (`on`: every request counted
//! in the metrics and turned into one span, exported in batches). Direct to the mock runs in the same rounds. The
//! sides alternate in rounds, non-streamed at a fixed open-loop rate, streamed at the same rate, and saturated
//! (closed loop); each gateway's CPU is read from its own process. The figures are on minus off. After the rounds
//! the `on` process's `GET /metrics` must count the phase's spans as exported, and the `off` process's must
//! answer 404.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};

use crate::client::HttpClient;
use crate::duo::{Duo, minus};
use crate::format::{cell, round, signed, us, verdict_at_most};
use crate::load::PhaseResult;
use crate::measure::Side;
use crate::stats::{Summary, added_us};

/// Targets from the observability issue (missing one does not fail the run).
pub mod targets {
    /// Gateway CPU per request, metrics and OTLP export on minus both off, at most (µs).
    pub const ADDED_CPU_PER_REQUEST_US: f64 = 5.0;
    /// What `GET /metrics` must answer on a process started with `--metrics false`.
    pub const METRICS_OFF_STATUS: u16 = 404;
}

/// The counters of the `on` process's OTLP export, as `GET /metrics` shows them.
pub mod metric {
    pub const EXPORTED: &str = "gatehouse_otlp_spans_exported_total";
    pub const DROPPED: &str = "gatehouse_otlp_spans_dropped_total";
    pub const FAILED: &str = "gatehouse_otlp_spans_failed_total";
    pub const QUEUED: &str = "gatehouse_otlp_spans_queued";
}

/// Which latency figure of a side a load shows: [`PhaseResult::latency`] or [`PhaseResult::first_byte`].
pub type Pick = fn(&PhaseResult) -> Option<Summary>;

/// One load of the phase: direct, off and on, each added up over the rounds.
#[derive(Debug, Clone, Default)]
pub struct TelemetryLoad {
    /// Direct to the mock in the same rounds (the baseline of the added latency).
    pub direct: Option<Side>,
    /// `base`: metrics and OTLP off; `test`: both on.
    pub duo: Duo,
    /// What the latency rows show: the whole exchange, or (streams) the time to the first event.
    pub ttfb: bool,
}

impl TelemetryLoad {
    pub fn is_measured(&self) -> bool {
        self.direct.is_some() || self.duo.base.is_some() || self.duo.test.is_some()
    }

    /// The latency figure of this load: whole exchange, or time to first byte for streams.
    pub fn pick(&self) -> Pick {
        if self.ttfb {
            PhaseResult::first_byte
        } else {
            PhaseResult::latency
        }
    }

    /// The sides in table order: direct, off, on.
    pub fn sides(&self) -> [Option<&Side>; 3] {
        [
            self.direct.as_ref(),
            self.duo.base.as_ref(),
            self.duo.test.as_ref(),
        ]
    }

    /// `side`'s latency over direct at p50 and p99, in µs.
    pub fn added_over_direct(&self, side: Option<&Side>) -> Option<(f64, f64)> {
        let pick = self.pick();
        let d = self.direct.as_ref().and_then(|s| pick(&s.result))?;
        let s = side.and_then(|s| pick(&s.result))?;
        Some((added_us(d.p50, s.p50), added_us(d.p99, s.p99)))
    }

    /// Latency on minus off at p50 and p99, in µs.
    pub fn on_minus_off_us(&self) -> Option<(f64, f64)> {
        let pick = self.pick();
        let off = self.duo.base.as_ref().and_then(|s| pick(&s.result))?;
        let on = self.duo.test.as_ref().and_then(|s| pick(&s.result))?;
        Some((added_us(off.p50, on.p50), added_us(off.p99, on.p99)))
    }

    pub fn error_count(&self) -> usize {
        self.sides()
            .into_iter()
            .flatten()
            .map(|s| s.result.error_count())
            .sum()
    }
}

/// The `on` process's OTLP counters at one reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpCounts {
    pub exported: u64,
    pub dropped: u64,
    pub failed: u64,
    pub queued: u64,
}

impl OtlpCounts {
    /// The counters in a Prometheus/OpenMetrics text exposition; `None` without the exported counter (metrics off,
    /// or a build without OTLP export).
    pub fn parse(text: &str) -> Option<OtlpCounts> {
        let n = |name| metric_value(text, name).map_or(0, |v| v as u64);
        metric_value(text, metric::EXPORTED)?;
        Some(OtlpCounts {
            exported: n(metric::EXPORTED),
            dropped: n(metric::DROPPED),
            failed: n(metric::FAILED),
            queued: n(metric::QUEUED),
        })
    }

    /// What happened between `before` and `self` (the queued gauge as it is now).
    pub fn since(self, before: OtlpCounts) -> OtlpCounts {
        OtlpCounts {
            exported: self.exported.saturating_sub(before.exported),
            dropped: self.dropped.saturating_sub(before.dropped),
            failed: self.failed.saturating_sub(before.failed),
            queued: self.queued,
        }
    }
}

/// The sum of every sample of `name` (with or without labels) in a text exposition; `None` when there is none.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.as_bytes().first() {
            Some(b' ') => rest,
            Some(b'{') => match rest.find('}') {
                Some(end) => &rest[end + 1..],
                None => continue,
            },
            _ => continue,
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// `GET /metrics` on the listener of `base` (an inference base URL: its scheme and authority).
pub fn metrics_uri(base: &str) -> Result<Uri, String> {
    let uri: Uri = base
        .parse()
        .map_err(|e| format!("not a URL: {base}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("not an absolute URL: {base}"));
    };
    format!("{scheme}://{authority}/metrics")
        .parse()
        .map_err(|e| format!("not a URL: {base}: {e}"))
}

/// One `GET` of `uri`: its status and body, `None` without an answer within 2 s.
pub async fn fetch(client: &HttpClient, uri: &Uri) -> Option<(u16, Bytes)> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .body(Full::new(Bytes::new()))
        .ok()?;
    let read = async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

/// A reading of one process's `GET /metrics`: its status, and the OTLP counters when it has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrape {
    pub status: Option<u16>,
    pub otlp: Option<OtlpCounts>,
}

/// Reads `uri` once.
pub async fn scrape(client: &HttpClient, uri: &Uri) -> Scrape {
    match fetch(client, uri).await {
        Some((status, body)) => Scrape {
            status: Some(status),
            otlp: (status == 200)
                .then(|| OtlpCounts::parse(&String::from_utf8_lossy(&body)))
                .flatten(),
        },
        None => Scrape::default(),
    }
}

/// Everything the telemetry phase measured.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Non-streamed, open loop at the chat phase's rate.
    pub open: TelemetryLoad,
    /// Streamed, open loop at the same rate.
    pub stream: TelemetryLoad,
    /// Non-streamed, saturated (closed loop).
    pub closed: TelemetryLoad,
    pub rounds: u64,
    /// Whether the `on` gateway has an OTLP exporter (else the phase measures metrics alone).
    pub otel: bool,
    /// Content chunks per stream of the streamed load, and their spacing.
    pub stream_chunks: usize,
    pub chunk_delay_ms: u64,
    /// The `on` process's `/metrics` before the phase and after it (after the last round's settle).
    pub on_before: Scrape,
    pub on_after: Scrape,
    /// The `off` process's `/metrics` after the phase.
    pub off_after: Scrape,
    /// Requests sent through `on` during the phase, warm-ups included: each should make one span.
    pub on_sent: usize,
}

impl Telemetry {
    pub fn loads(&self) -> [(&'static str, &TelemetryLoad); 3] {
        [
            ("open", &self.open),
            ("stream", &self.stream),
            ("closed", &self.closed),
        ]
    }

    pub fn error_count(&self) -> usize {
        self.loads().iter().map(|(_, l)| l.error_count()).sum()
    }

    /// The `on` process's OTLP counters over the phase.
    pub fn spans(&self) -> Option<OtlpCounts> {
        let after = self.on_after.otlp?;
        Some(after.since(self.on_before.otlp.unwrap_or_default()))
    }

    /// Whether the run shows both sides were what they claim: the `on` process serves `/metrics` and exported
    /// spans during the phase (none when it has no exporter), and the `off` process has no `/metrics` (404).
    pub fn checked(&self) -> bool {
        let spans = if self.otel {
            self.spans().is_some_and(|s| s.exported > 0)
        } else {
            self.on_after.status == Some(200) && self.spans().is_none_or(|s| s.exported == 0)
        };
        spans && self.off_after.status == Some(targets::METRICS_OFF_STATUS)
    }
}

/// One table row: a label, the three sides' cells, on − off and the target's verdict.
fn row(t: &mut String, label: &str, cells: [String; 4], target: &str) {
    let [direct, off, on, delta] = cells;
    let _ = writeln!(
        t,
        "  {label:<30}{direct:>12}{off:>12}{on:>12}{delta:>14}   {target}"
    );
}

/// Per-side cells of `value` (direct, off, on) and on − off.
fn per_side(
    load: &TelemetryLoad,
    value: impl Fn(&Side) -> Option<f64>,
    places: usize,
) -> [String; 4] {
    let [d, off, on] = load.sides().map(|s| s.and_then(&value));
    [
        cell(d, places),
        cell(off, places),
        cell(on, places),
        signed(minus(off, on)),
    ]
}

fn load_rows(t: &mut String, load: &TelemetryLoad, title: &str) {
    let _ = writeln!(t, "  {title}");
    row(
        t,
        "",
        ["direct".into(), "off".into(), "on".into(), "on-off".into()],
        "target",
    );
    let mut throughput = per_side(load, |s| Some(s.result.throughput()), 1);
    throughput[3] = load
        .duo
        .throughput_ratio()
        .map_or("-".into(), |r| format!("ratio {r:.3}"));
    row(t, "throughput req/s", throughput, "");
    let pick = load.pick();
    let what = if load.ttfb { "TTFB" } else { "latency" };
    for (i, name) in Summary::POINTS.into_iter().enumerate() {
        let cells = per_side(load, |s| pick(&s.result).map(|l| us(l.points()[i])), 1);
        row(t, &format!("{what} {name} µs"), cells, "");
    }
    for (i, name) in ["p50", "p99"].into_iter().enumerate() {
        let [off, on] = [load.duo.base.as_ref(), load.duo.test.as_ref()].map(|s| {
            load.added_over_direct(s)
                .map(|a| if i == 0 { a.0 } else { a.1 })
        });
        row(
            t,
            &format!("added {name} µs (over direct)"),
            ["".into(), signed(off), signed(on), signed(minus(off, on))],
            "",
        );
    }
    let count = |s: Option<&Side>| s.map_or("-".into(), |s| s.result.error_count().to_string());
    let [d, off, on] = load.sides().map(count);
    row(t, "errors", [d, off, on, String::new()], "");
    for (name, s) in ["direct", "off", "on"].into_iter().zip(load.sides()) {
        if let Some(s) = s.filter(|s| s.result.error_count() > 0) {
            let kinds: Vec<String> = s
                .result
                .errors
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(t, "      {name}: {}", kinds.join(", "));
        }
    }
    let unit = if load.ttfb { "stream" } else { "request" };
    row(
        t,
        &format!("gateway CPU µs/{unit}"),
        per_side(load, Side::cpu_per_request_us, 1),
        &verdict_at_most(
            load.duo.added_cpu_per_request_us(),
            targets::ADDED_CPU_PER_REQUEST_US,
        ),
    );
    row(
        t,
        "  of which data-plane threads",
        per_side(load, Side::data_plane_cpu_per_request_us, 1),
        "",
    );
}

fn status_text(s: &Scrape) -> String {
    s.status.map_or("no answer".into(), |s| s.to_string())
}

/// The table's section.
pub fn table(r: &Telemetry) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "telemetry: the same chat completions through two gateway processes on one core, metrics off and no OTLP \
         exporter (off) vs metrics on and {} (on), direct to the mock in the same rounds, {} alternating rounds",
        if r.otel {
            "one OTLP/JSON exporter to a local collector"
        } else {
            "NO exporter (metrics alone)"
        },
        r.rounds
    );
    for (load, title) in [
        (&r.open, "open loop, non-streamed".to_owned()),
        (
            &r.stream,
            format!(
                "open loop, streamed ({} chunks {} ms apart; latency is time to first byte)",
                r.stream_chunks, r.chunk_delay_ms
            ),
        ),
        (
            &r.closed,
            "closed loop (saturated), non-streamed".to_owned(),
        ),
    ] {
        if load.is_measured() {
            load_rows(&mut t, load, &title);
        }
    }
    let spans = r.spans();
    let _ = writeln!(
        t,
        "  spans: {} exported during the phase for {} requests through on (warm-ups included), {} dropped, {} failed, \
         {} still queued; on GET /metrics: {}, off GET /metrics: {} (want {}): {}",
        spans.map_or("-".into(), |s| s.exported.to_string()),
        r.on_sent,
        spans.map_or("-".into(), |s| s.dropped.to_string()),
        spans.map_or("-".into(), |s| s.failed.to_string()),
        spans.map_or("-".into(), |s| s.queued.to_string()),
        status_text(&r.on_after),
        status_text(&r.off_after),
        targets::METRICS_OFF_STATUS,
        if r.checked() { "ok" } else { "CHECK FAILED" }
    );
    t
}

fn rd(v: Option<f64>, places: i32) -> Option<f64> {
    v.map(|v| round(v, places))
}

/// The phase's JSON; `side_json` renders one side with a latency figure as everywhere else in the summary.
pub fn json(r: &Telemetry, side_json: &dyn Fn(&Side, Pick) -> Value) -> Value {
    let load_json = |l: &TelemetryLoad| {
        if !l.is_measured() {
            return Value::Null;
        }
        let pick = l.pick();
        let with_cpu = |s: &Side| {
            let mut v = side_json(s, pick);
            v["gateway_cpu_per_request_us"] = json!(rd(s.cpu_per_request_us(), 2));
            v["data_plane_cpu_per_request_us"] = json!(rd(s.data_plane_cpu_per_request_us(), 2));
            v
        };
        let off_added = l.added_over_direct(l.duo.base.as_ref());
        let on_added = l.added_over_direct(l.duo.test.as_ref());
        let on_off = l.on_minus_off_us();
        json!({
            "latency": if l.ttfb { "ttfb" } else { "whole" },
            "direct": l.direct.as_ref().map(|s| side_json(s, pick)),
            "off": l.duo.base.as_ref().map(with_cpu),
            "on": l.duo.test.as_ref().map(with_cpu),
            "off_added_p50_us": rd(off_added.map(|a| a.0), 1),
            "off_added_p99_us": rd(off_added.map(|a| a.1), 1),
            "on_added_p50_us": rd(on_added.map(|a| a.0), 1),
            "on_added_p99_us": rd(on_added.map(|a| a.1), 1),
            "on_minus_off_p50_us": rd(on_off.map(|a| a.0), 1),
            "on_minus_off_p99_us": rd(on_off.map(|a| a.1), 1),
            "added_cpu_per_request_us": rd(l.duo.added_cpu_per_request_us(), 2),
            "added_data_plane_cpu_per_request_us": rd(l.duo.added_data_plane_cpu_per_request_us(), 2),
            "throughput_ratio": rd(l.duo.throughput_ratio(), 3),
        })
    };
    let spans = r.spans();
    json!({
        "rounds": r.rounds,
        "otel": r.otel,
        "stream_chunks": r.stream_chunks,
        "chunk_delay_ms": r.chunk_delay_ms,
        "open": load_json(&r.open),
        "stream": load_json(&r.stream),
        "closed": load_json(&r.closed),
        "on_requests": r.on_sent,
        "spans_exported": spans.map(|s| s.exported),
        "spans_dropped": spans.map(|s| s.dropped),
        "spans_failed": spans.map(|s| s.failed),
        "spans_queued": spans.map(|s| s.queued),
        "on_metrics_status": r.on_after.status,
        "off_metrics_status": r.off_after.status,
        "telemetry_checked": r.checked(),
        "errors": r.error_count(),
        "targets": {
            "added_cpu_per_request_us": targets::ADDED_CPU_PER_REQUEST_US,
            "off_metrics_status": targets::METRICS_OFF_STATUS,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::test_side;

    fn timed(cpu_ms: u64, ok: usize, p50_us: u64, p99_us: u64) -> Side {
        let mut s = test_side(cpu_ms, ok, 0);
        let slow = ok / 50;
        s.result.latencies = vec![Duration::from_micros(p50_us); ok - slow];
        s.result
            .latencies
            .extend(vec![Duration::from_micros(p99_us); slow]);
        s.result.first_bytes = s.result.latencies.iter().map(|l| *l / 2).collect();
        s.result.elapsed = Duration::from_secs(10);
        s
    }

    fn telemetry() -> Telemetry {
        let load = |ttfb| TelemetryLoad {
            direct: Some(Side {
                gateway_cpu: None,
                data_plane_cpu: None,
                ..timed(0, 10_000, 100, 300)
            }),
            // 10,000 requests a side: off 1,000 ms (100 µs each), on 1,040 ms (104 µs).
            duo: Duo {
                base: Some(timed(1000, 10_000, 250, 600)),
                test: Some(timed(1040, 10_000, 260, 700)),
            },
            ttfb,
        };
        Telemetry {
            open: load(false),
            stream: load(true),
            closed: TelemetryLoad::default(),
            rounds: 4,
            otel: true,
            stream_chunks: 10,
            chunk_delay_ms: 5,
            on_before: Scrape {
                status: Some(200),
                otlp: Some(OtlpCounts {
                    exported: 3,
                    ..OtlpCounts::default()
                }),
            },
            on_after: Scrape {
                status: Some(200),
                otlp: Some(OtlpCounts {
                    exported: 24_003,
                    dropped: 0,
                    failed: 0,
                    queued: 0,
                }),
            },
            off_after: Scrape {
                status: Some(404),
                otlp: None,
            },
            on_sent: 24_000,
        }
    }

    #[test]
    fn metric_values_are_read_with_or_without_labels_and_summed() {
        let text = "# HELP gatehouse_otlp_spans_exported Spans\n\
                    # TYPE gatehouse_otlp_spans_exported counter\n\
                    gatehouse_otlp_spans_exported_total 1234\n\
                    gatehouse_otlp_spans_exported_total_other 9\n\
                    gatehouse_otlp_spans_dropped_total{gateway=\"a\"} 2\n\
                    gatehouse_otlp_spans_dropped_total{gateway=\"b\"} 3 1700000000\n\
                    gatehouse_otlp_spans_queued 7\n";
        assert_eq!(metric_value(text, metric::EXPORTED), Some(1234.0));
        assert_eq!(metric_value(text, metric::DROPPED), Some(5.0));
        assert_eq!(metric_value(text, metric::FAILED), None);
        assert_eq!(
            OtlpCounts::parse(text),
            Some(OtlpCounts {
                exported: 1234,
                dropped: 5,
                failed: 0,
                queued: 7
            })
        );
        assert_eq!(OtlpCounts::parse("gatehouse_requests_total 3\n"), None);
        assert_eq!(
            metrics_uri("http://127.0.0.1:8787/v1/bench/t/openai").map(|u| u.to_string()),
            Ok("http://127.0.0.1:8787/metrics".into())
        );
        assert!(metrics_uri("/v1/relative").is_err());
    }

    #[test]
    fn the_costs_are_on_minus_off_and_latency_is_added_over_direct() {
        let t = telemetry();
        let close = |v: Option<f64>, e: f64| v.is_some_and(|v| (v - e).abs() < 1e-9);
        assert!(close(t.open.duo.added_cpu_per_request_us(), 4.0));
        assert_eq!(t.open.on_minus_off_us(), Some((10.0, 100.0)));
        assert_eq!(
            t.open.added_over_direct(t.open.duo.test.as_ref()),
            Some((160.0, 400.0))
        );
        // Streams: time to first byte, half the whole exchange here.
        assert_eq!(t.stream.on_minus_off_us(), Some((5.0, 50.0)));
        assert_eq!(t.spans().map(|s| s.exported), Some(24_000));
        assert!(t.checked());
        assert_eq!(t.error_count(), 0);
    }

    #[test]
    fn no_spans_or_an_answering_off_metrics_fail_the_check() {
        let mut none = telemetry();
        none.on_after.otlp = none.on_before.otlp;
        assert!(!none.checked(), "no span exported during the phase");
        let mut unread = telemetry();
        unread.on_after = Scrape::default();
        assert!(!unread.checked());
        let mut off_on = telemetry();
        off_on.off_after.status = Some(200);
        assert!(!off_on.checked(), "the off process serves metrics");
        let mut metrics_alone = telemetry();
        metrics_alone.otel = false;
        assert!(
            !metrics_alone.checked(),
            "spans exported without an exporter"
        );
        metrics_alone.on_after.otlp = metrics_alone.on_before.otlp;
        assert!(metrics_alone.checked());
    }

    #[test]
    fn the_table_and_json_show_the_sides_the_difference_and_the_check() {
        let t = table(&telemetry());
        assert!(t.contains("<= 5  met"), "{t}");
        assert!(t.contains("TTFB p50 µs"), "{t}");
        assert!(!t.contains("closed loop"), "{t}");
        assert!(
            t.contains("24000 exported during the phase for 24000 requests"),
            "{t}"
        );
        assert!(t.contains("off GET /metrics: 404 (want 404): ok"), "{t}");
        let mut missed = telemetry();
        missed.open.duo.test = Some(timed(1100, 10_000, 260, 700));
        missed.off_after.status = Some(200);
        let t = table(&missed);
        assert!(t.contains("<= 5  MISSED"), "{t}");
        assert!(t.contains("CHECK FAILED"), "{t}");
        let v = json(&telemetry(), &|_, _| json!({}));
        assert_eq!(v["open"]["added_cpu_per_request_us"], 4.0);
        assert_eq!(v["open"]["on"]["gateway_cpu_per_request_us"], 104.0);
        assert_eq!(v["open"]["on_minus_off_p99_us"], 100.0);
        assert_eq!(v["open"]["off_added_p50_us"], 150.0);
        assert_eq!(v["stream"]["latency"], "ttfb");
        assert_eq!(v["closed"], Value::Null);
        assert_eq!(v["spans_exported"], 24_000);
        assert_eq!(v["off_metrics_status"], 404);
        assert_eq!(v["telemetry_checked"], true);
    }
}
