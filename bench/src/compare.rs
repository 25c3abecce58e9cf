//! The chat phase through further gateways (`--through-also LABEL=URL`), each compared with the `--through` one:
//! what a traffic policy (a cache hit, a rate limit check) changes in latency and CPU per request at the same rate.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::format::{cell, round, signed, us};
use crate::measure::Side;
use crate::stats::added_us;

/// One further gateway's chat phase, and one response header read from a request sent after it (e.g.
/// `cf-aig-cache-status: HIT`), so the run shows the policy really applied.
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    pub label: String,
    pub side: Side,
    pub sample: Option<String>,
}

/// `other` against `baseline`: added p50 and p99 (µs), and CPU per request of the process and of the data plane's
/// threads as ratios other / baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Comparison {
    pub added_p50_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    pub cpu_ratio: Option<f64>,
    pub data_plane_cpu_ratio: Option<f64>,
}

pub fn compare(baseline: &Side, other: &Side) -> Comparison {
    let (b, o) = (baseline.result.latency(), other.result.latency());
    let lat = b.zip(o);
    let ratio =
        |b: Option<f64>, o: Option<f64>| b.zip(o).filter(|(b, _)| *b > 0.0).map(|(b, o)| o / b);
    Comparison {
        added_p50_us: lat.map(|(b, o)| added_us(b.p50, o.p50)),
        added_p99_us: lat.map(|(b, o)| added_us(b.p99, o.p99)),
        cpu_ratio: ratio(baseline.cpu_per_request_us(), other.cpu_per_request_us()),
        data_plane_cpu_ratio: ratio(
            baseline.data_plane_cpu_per_request_us(),
            other.data_plane_cpu_per_request_us(),
        ),
    }
}

fn row(t: &mut String, label: &str, side: &Side, c: Option<Comparison>, sample: Option<&str>) {
    let lat = side.result.latency();
    let c = c.unwrap_or_default();
    let _ = writeln!(
        t,
        "  {label:<20}{:>9}{:>9}{:>9}{:>9}{:>8}{:>9}{:>8}{:>7}  {}",
        cell(lat.map(|s| us(s.p50)), 1),
        cell(lat.map(|s| us(s.p99)), 1),
        signed(c.added_p99_us),
        cell(side.cpu_per_request_us(), 1),
        cell(c.cpu_ratio, 2),
        cell(side.data_plane_cpu_per_request_us(), 1),
        cell(c.data_plane_cpu_ratio, 2),
        side.result.error_count(),
        sample.unwrap_or("-"),
    );
}

/// The table's section: the `--through` gateway first (the baseline), then each further one.
pub fn table(
    baseline: Option<&Side>,
    baseline_sample: Option<&str>,
    also: &[Labelled],
    header: &str,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "the chat phase through further gateways, same schedule, against `through` (CPU: the gateway process; dp: \
         its gatehouse-dp threads)"
    );
    let _ = writeln!(
        t,
        "  {:<20}{:>9}{:>9}{:>9}{:>9}{:>8}{:>9}{:>8}{:>7}  {header}",
        "gateway", "p50 µs", "p99 µs", "+p99", "CPU µs", "ratio", "dp µs", "ratio", "errors"
    );
    if let Some(b) = baseline {
        row(&mut t, "through (baseline)", b, None, baseline_sample);
    }
    for a in also {
        let c = baseline.map(|b| compare(b, &a.side));
        row(&mut t, &a.label, &a.side, c, a.sample.as_deref());
    }
    t
}

fn round_opt(v: Option<f64>, places: i32) -> Option<f64> {
    v.map(|v| round(v, places))
}

/// The JSON of one further gateway; `side` is the usual per-side JSON, completed here.
pub fn json(baseline: Option<&Side>, a: &Labelled, mut side: Value) -> Value {
    let c = baseline.map(|b| compare(b, &a.side)).unwrap_or_default();
    side["label"] = json!(a.label);
    side["sample_header"] = json!(a.sample);
    side["gateway_cpu_per_request_us"] = json!(round_opt(a.side.cpu_per_request_us(), 2));
    side["data_plane_cpu_per_request_us"] =
        json!(round_opt(a.side.data_plane_cpu_per_request_us(), 2));
    side["added_p50_vs_through_us"] = json!(round_opt(c.added_p50_us, 1));
    side["added_p99_vs_through_us"] = json!(round_opt(c.added_p99_us, 1));
    side["cpu_ratio_vs_through"] = json!(round_opt(c.cpu_ratio, 3));
    side["data_plane_cpu_ratio_vs_through"] = json!(round_opt(c.data_plane_cpu_ratio, 3));
    side
}

/// Parses `LABEL=URL` for `--through-also`.
pub fn parse_labelled_url(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((label, url)) if !label.is_empty() && !url.is_empty() => {
            Ok((label.to_owned(), url.to_owned()))
        }
        _ => Err(format!("expected LABEL=URL, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::PhaseResult;

    fn side(latency_us: u64, cpu_ms: u64, dp_ms: u64) -> Side {
        Side {
            result: PhaseResult {
                sent: 1000,
                latencies: vec![Duration::from_micros(latency_us); 1000],
                ..PhaseResult::default()
            },
            gateway_cpu: Some(Duration::from_millis(cpu_ms)),
            data_plane_cpu: Some(Duration::from_millis(dp_ms)),
            log_records: None,
        }
    }

    #[test]
    fn a_further_gateway_is_compared_with_the_baseline() {
        // Baseline 100 µs/request (80 on the data plane's threads), the other 50 (40) and 150 µs slower.
        let c = compare(&side(400, 100, 80), &side(550, 50, 40));
        assert_eq!(c.added_p50_us, Some(150.0));
        assert_eq!(c.added_p99_us, Some(150.0));
        assert_eq!(c.cpu_ratio, Some(0.5));
        assert_eq!(c.data_plane_cpu_ratio, Some(0.5));
        let no_pid = Side {
            gateway_cpu: None,
            ..side(400, 0, 0)
        };
        assert_eq!(compare(&no_pid, &side(1, 1, 1)).cpu_ratio, None);
    }

    #[test]
    fn labels_and_urls_are_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_labelled_url("cache-hit=http://127.0.0.1:1/v1/a/b/openai?x=1"),
            Ok((
                "cache-hit".into(),
                "http://127.0.0.1:1/v1/a/b/openai?x=1".into()
            ))
        );
        assert!(parse_labelled_url("=http://x").is_err());
        assert!(parse_labelled_url("no-url").is_err());
    }
}
