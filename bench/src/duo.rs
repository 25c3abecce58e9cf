//! One load measured two ways through the same gateway, in alternating rounds: a baseline side and a side under
//! test (the keys phase: plain against keyed; the routes phase: plain against routed; the telemetry phase: off
//! against on, two gateway processes). The figures are test minus base; the table rows here are shared by the keys
//! and routes phases' reports.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::format::{cell, round, signed};
use crate::measure::Side;
use crate::stats::added_us;

/// Both sides of one load.
#[derive(Debug, Clone, Default)]
pub struct Duo {
    /// The baseline (`plain`).
    pub base: Option<Side>,
    /// The side under test (`keyed`, `routed`).
    pub test: Option<Side>,
}

/// `b − a`, when both are there.
pub fn minus(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| b - a)
}

impl Duo {
    pub fn sides(&self) -> [Option<&Side>; 2] {
        [self.base.as_ref(), self.test.as_ref()]
    }

    /// Gateway CPU per request (whole process), test minus base, in µs.
    pub fn added_cpu_per_request_us(&self) -> Option<f64> {
        let [b, t] = self.sides().map(|s| s.and_then(Side::cpu_per_request_us));
        minus(b, t)
    }

    /// The same on the data plane's request threads only.
    pub fn added_data_plane_cpu_per_request_us(&self) -> Option<f64> {
        let [b, t] = self
            .sides()
            .map(|s| s.and_then(Side::data_plane_cpu_per_request_us));
        minus(b, t)
    }

    /// Latency test minus base at p50 and p99, in µs.
    pub fn added_latency_us(&self) -> Option<(f64, f64)> {
        let [b, t] = self.sides().map(|s| s.and_then(|s| s.result.latency()));
        let (b, t) = (b?, t?);
        Some((added_us(b.p50, t.p50), added_us(b.p99, t.p99)))
    }

    /// Test throughput over base (closed loop: how much the tested work slows a saturated node).
    pub fn throughput_ratio(&self) -> Option<f64> {
        let [b, t] = self.sides().map(|s| s.map(|s| s.result.throughput()));
        let (b, t) = (b?, t?);
        (b > 0.0).then(|| t / b)
    }

    /// Throughput of the side under test.
    pub fn test_throughput(&self) -> Option<f64> {
        self.test.as_ref().map(|s| s.result.throughput())
    }

    pub fn error_count(&self) -> usize {
        self.sides()
            .into_iter()
            .flatten()
            .map(|s| s.result.error_count())
            .sum()
    }
}

/// One table row: a label, the two sides' cells and their difference, and the target's verdict.
pub fn row(t: &mut String, label: &str, cells: [String; 3], target: &str) {
    let [base, test, delta] = cells;
    let _ = writeln!(t, "  {label:<30}{base:>12}{test:>12}{delta:>14}   {target}");
}

/// Per-side cells of `value` and the test − base difference.
pub fn per_side(duo: &Duo, value: impl Fn(&Side) -> Option<f64>, places: usize) -> [String; 3] {
    let [b, t] = duo.sides().map(|s| s.and_then(&value));
    [cell(b, places), cell(t, places), signed(minus(b, t))]
}

/// Failed requests of each side, then one line per side that had failures, by kind; `names` are the sides'.
pub fn errors_row(t: &mut String, duo: &Duo, names: [&str; 2]) {
    let count = |s: Option<&Side>| s.map_or("-".into(), |s| s.result.error_count().to_string());
    let [b, x] = duo.sides().map(count);
    row(t, "errors", [b, x, String::new()], "");
    for (name, s) in names.into_iter().zip(duo.sides()) {
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
}

fn rounded(v: Option<f64>, places: i32) -> Option<f64> {
    v.map(|v| round(v, places))
}

/// One load's JSON: each side (named `names`) as `side_json` renders it plus its CPU per request, and the
/// differences.
pub fn json(d: &Duo, names: [&str; 2], side_json: &dyn Fn(&Side) -> Value) -> Value {
    let with_cpu = |s: &Side| {
        let mut v = side_json(s);
        v["gateway_cpu_per_request_us"] = json!(rounded(s.cpu_per_request_us(), 2));
        v["data_plane_cpu_per_request_us"] = json!(rounded(s.data_plane_cpu_per_request_us(), 2));
        v
    };
    let added = d.added_latency_us();
    let mut out = json!({
        "added_p50_us": rounded(added.map(|a| a.0), 1),
        "added_p99_us": rounded(added.map(|a| a.1), 1),
        "added_cpu_per_request_us": rounded(d.added_cpu_per_request_us(), 2),
        "added_data_plane_cpu_per_request_us": rounded(d.added_data_plane_cpu_per_request_us(), 2),
        "throughput_ratio": rounded(d.throughput_ratio(), 3),
    });
    for (name, side) in names.into_iter().zip(d.sides()) {
        out[name] = json!(side.map(with_cpu));
    }
    out
}
