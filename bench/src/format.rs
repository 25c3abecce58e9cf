//! Number formatting shared by the table and the JSON summary: microseconds to one decimal, table cells, signed
//! differences, rounding and the `met` / `MISSED` verdicts (below, at most, at least a target).

use std::time::Duration;

/// A duration in µs, to one decimal.
pub fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

/// A table cell: `v` with `places` decimals, `-` when there is none.
pub fn cell(v: Option<f64>, places: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.places$}"))
}

/// A difference with its sign and one decimal, `-` when there is none.
pub fn signed(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:+.1}"))
}

/// Rounded to `places` decimals, so the JSON line stays readable.
pub fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// `< target  met` when `v` is below the target, `< target  MISSED` when not, `< target` when there is no value.
pub fn verdict(v: Option<f64>, target: f64) -> String {
    match v {
        Some(v) if v < target => format!("< {target}  met"),
        Some(_) => format!("< {target}  MISSED"),
        None => format!("< {target}"),
    }
}

/// `<= target  met` when `v` is at most the target, `<= target  MISSED` when above, `<= target` without a value.
pub fn verdict_at_most(v: Option<f64>, target: f64) -> String {
    match v {
        Some(v) if v <= target => format!("<= {target}  met"),
        Some(_) => format!("<= {target}  MISSED"),
        None => format!("<= {target}"),
    }
}

/// `>= target  met` when `v` is at least the target, `>= target  MISSED` when below, `>= target` without a value.
pub fn verdict_at_least(v: Option<f64>, target: f64) -> String {
    match v {
        Some(v) if v >= target => format!(">= {target}  met"),
        Some(_) => format!(">= {target}  MISSED"),
        None => format!(">= {target}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_and_verdicts_read_as_in_the_table() {
        assert_eq!(us(Duration::from_nanos(123_456)), 123.5);
        assert_eq!(cell(Some(1.25), 1), "1.2");
        assert_eq!(cell(Some(0.5), 2), "0.50");
        assert_eq!(cell(None, 1), "-");
        assert_eq!(signed(Some(3.0)), "+3.0");
        assert_eq!(signed(Some(-0.04)), "-0.0");
        assert_eq!(signed(None), "-");
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(verdict(Some(14.9), 15.0), "< 15  met");
        assert_eq!(verdict(Some(15.0), 15.0), "< 15  MISSED");
        assert_eq!(verdict(None, 15.0), "< 15");
        assert_eq!(verdict_at_most(Some(50.0), 50.0), "<= 50  met");
        assert_eq!(verdict_at_most(Some(50.1), 50.0), "<= 50  MISSED");
        assert_eq!(verdict_at_least(Some(20000.0), 20000.0), ">= 20000  met");
        assert_eq!(verdict_at_least(Some(19999.9), 20000.0), ">= 20000  MISSED");
        assert_eq!(verdict_at_least(None, 1.0), ">= 1");
    }
}
