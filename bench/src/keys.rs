//! The keys phase: what admission by a virtual key costs (issue 14). The same chat completion through the same
//! gateway, once with the client's own provider key (`Authorization: Bearer sk-test`, passed upstream: no virtual
//! key, nothing counted) and once with a virtual key (`Authorization: Bearer ghk_…`: the key looked up, its
//! requests per minute admitted, its tokens per minute read, its budget held before forwarding and settled after,
//! the gateway's stored provider key sent upstream). Both sides alternate in rounds, at a fixed open-loop rate and
//! then saturated (closed loop); the figures are keyed minus plain. At the end, one request with a wrong key must
//! be refused (401), so the run shows the key was checked and not ignored.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::format::{us, verdict, verdict_at_most};
use crate::measure::Side;
use crate::stats::Summary;

/// Targets from the virtual-keys issue (missing one does not fail the run).
pub mod targets {
    /// Gateway CPU per request, keyed minus plain, at most (µs).
    pub const ADDED_CPU_PER_REQUEST_US: f64 = 25.0;
    /// Latency at p99, keyed minus plain, below (µs); judged on the open loop (saturated, p99 is queueing).
    pub const ADDED_P99_US: f64 = 300.0;
    /// What a request with a wrong virtual key must get.
    pub const WRONG_KEY_STATUS: u16 = 401;
}

pub use crate::duo::Duo;
use crate::duo::{errors_row, per_side, row};

/// Everything the keys phase measured.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Open loop at the chat phase's rate, in alternating rounds.
    pub open: Duo,
    /// Closed loop (saturated), in alternating rounds.
    pub closed: Duo,
    /// How many rounds each load was split into.
    pub rounds: u64,
    /// The status one request with a wrong virtual key got (`None`: no answer), after the measured rounds.
    pub wrong_key_status: Option<u16>,
}

impl Keys {
    pub fn error_count(&self) -> usize {
        self.open.error_count() + self.closed.error_count()
    }

    /// Keyed requests sent and answered 200, over both loads: `(ok, sent)`.
    pub fn keyed_ok(&self) -> (usize, usize) {
        [&self.open.test, &self.closed.test]
            .into_iter()
            .flatten()
            .fold((0, 0), |(ok, sent), s| {
                (ok + s.result.ok(), sent + s.result.sent)
            })
    }

    /// Whether the run shows the key was really used: every keyed request answered 200 and a wrong key refused.
    pub fn key_checked(&self) -> bool {
        let (ok, sent) = self.keyed_ok();
        sent > 0 && ok == sent && self.wrong_key_status == Some(targets::WRONG_KEY_STATUS)
    }
}

/// One load's rows; `p99_target` on the open loop only.
fn duo_rows(t: &mut String, duo: &Duo, title: &str, p99_target: bool) {
    let _ = writeln!(t, "  {title}");
    row(
        t,
        "",
        ["plain".into(), "keyed".into(), "keyed-plain".into()],
        "target",
    );
    let mut throughput = per_side(duo, |s| Some(s.result.throughput()), 1);
    throughput[2] = duo
        .throughput_ratio()
        .map_or("-".into(), |r| format!("ratio {r:.2}"));
    row(t, "throughput req/s", throughput, "");
    for (i, name) in Summary::POINTS.into_iter().enumerate() {
        let cells = per_side(duo, |s| s.result.latency().map(|l| us(l.points()[i])), 1);
        let target = if p99_target && name == "p99" {
            verdict(duo.added_latency_us().map(|a| a.1), targets::ADDED_P99_US)
        } else {
            String::new()
        };
        row(t, &format!("latency {name} µs"), cells, &target);
    }
    errors_row(t, duo, ["plain", "keyed"]);
    row(
        t,
        "gateway CPU µs/request",
        per_side(duo, Side::cpu_per_request_us, 1),
        &verdict_at_most(
            duo.added_cpu_per_request_us(),
            targets::ADDED_CPU_PER_REQUEST_US,
        ),
    );
    row(
        t,
        "  of which data-plane threads",
        per_side(duo, Side::data_plane_cpu_per_request_us, 1),
        "",
    );
}

/// The table's section.
pub fn table(k: &Keys) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "keys: the same chat completion through the same gateway without a virtual key (plain: the client's \
         provider key) and with one (keyed: lookup, RPM, TPM, budget hold and settle), {} alternating rounds",
        k.rounds
    );
    if k.open.base.is_some() || k.open.test.is_some() {
        duo_rows(&mut t, &k.open, "open loop", true);
    }
    if k.closed.base.is_some() || k.closed.test.is_some() {
        duo_rows(&mut t, &k.closed, "closed loop (saturated)", false);
    }
    let (ok, sent) = k.keyed_ok();
    let wrong = k
        .wrong_key_status
        .map_or("no answer".into(), |s| s.to_string());
    let _ = writeln!(
        t,
        "  key used: {ok} of {sent} keyed requests answered 200; a wrong key got {wrong} (expected {}): {}",
        targets::WRONG_KEY_STATUS,
        if k.key_checked() {
            "ok"
        } else {
            "CHECK FAILED"
        }
    );
    t
}

/// The phase's JSON; `side_json` renders one side as everywhere else in the summary.
pub fn json(k: &Keys, side_json: &dyn Fn(&Side) -> Value) -> Value {
    let duo = |d: &Duo| crate::duo::json(d, ["plain", "keyed"], side_json);
    let (ok, sent) = k.keyed_ok();
    json!({
        "rounds": k.rounds,
        "open": duo(&k.open),
        "closed": duo(&k.closed),
        "keyed_ok": ok,
        "keyed_sent": sent,
        "wrong_key_status": k.wrong_key_status,
        "key_checked": k.key_checked(),
        "errors": k.error_count(),
        "targets": {
            "added_cpu_per_request_us": targets::ADDED_CPU_PER_REQUEST_US,
            "added_p99_us": targets::ADDED_P99_US,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::measure::test_side;

    fn timed(cpu_ms: u64, ok: usize, p50_us: u64, p99_us: u64, elapsed_ms: u64) -> Side {
        let mut s = test_side(cpu_ms, ok, 0);
        // 98 % at p50's value, 2 % at p99's: nearest rank puts p50 and p99 there.
        let slow = ok / 50;
        s.result.latencies = vec![Duration::from_micros(p50_us); ok - slow];
        s.result
            .latencies
            .extend(vec![Duration::from_micros(p99_us); slow]);
        s.result.elapsed = Duration::from_millis(elapsed_ms);
        s
    }

    fn keys() -> Keys {
        Keys {
            // 10,000 requests a side: plain 1,500 ms (150 µs each), keyed 1,700 ms (170 µs).
            open: Duo {
                base: Some(timed(1500, 10_000, 250, 600, 10_000)),
                test: Some(timed(1700, 10_000, 270, 850, 10_000)),
            },
            // 100,000 plain and 80,000 keyed in 5 s: 40 and 60 µs each, +20 (within 25).
            closed: Duo {
                base: Some(timed(4000, 100_000, 2000, 4000, 5000)),
                test: Some(timed(4800, 80_000, 2500, 5000, 5000)),
            },
            rounds: 4,
            wrong_key_status: Some(401),
        }
    }

    #[test]
    fn the_costs_of_a_key_are_keyed_minus_plain() {
        let k = keys();
        let close = |v: Option<f64>, e: f64| v.is_some_and(|v| (v - e).abs() < 1e-9);
        assert!(close(k.open.added_cpu_per_request_us(), 20.0));
        assert!(close(k.open.added_data_plane_cpu_per_request_us(), 10.0));
        assert_eq!(k.open.added_latency_us(), Some((20.0, 250.0)));
        assert!(close(k.closed.added_cpu_per_request_us(), 20.0));
        assert!(close(k.closed.throughput_ratio(), 0.8));
        assert_eq!(k.keyed_ok(), (90_000, 90_000));
        assert!(k.key_checked());
        assert_eq!(Duo::default().added_cpu_per_request_us(), None);
        let ignored = Keys {
            wrong_key_status: Some(200),
            ..keys()
        };
        assert!(
            !ignored.key_checked(),
            "a wrong key that passes means the key was not checked"
        );
    }

    #[test]
    fn the_table_prints_the_verdicts_and_the_key_check() {
        let t = table(&keys());
        assert!(t.contains("<= 25  met"), "{t}");
        assert!(t.contains("< 300  met"), "{t}");
        assert!(t.contains("ratio 0.80"), "{t}");
        assert!(
            t.contains(
                "90000 of 90000 keyed requests answered 200; a wrong key got 401 (expected 401): ok"
            ),
            "{t}"
        );
        let mut missed = keys();
        missed.open.test = Some(timed(2000, 10_000, 270, 1000, 10_000));
        missed.wrong_key_status = None;
        let t = table(&missed);
        assert!(t.contains("<= 25  MISSED"), "{t}");
        assert!(t.contains("< 300  MISSED"), "{t}");
        assert!(t.contains("no answer (expected 401): CHECK FAILED"), "{t}");
        let v = json(&keys(), &|_| json!({}));
        assert_eq!(v["open"]["added_cpu_per_request_us"], 20.0);
        assert_eq!(v["open"]["added_p99_us"], 250.0);
        assert_eq!(v["closed"]["keyed"]["gateway_cpu_per_request_us"], 60.0);
        assert_eq!(v["key_checked"], true);
    }
}
