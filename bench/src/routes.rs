//! The routes phase: what choosing a target costs (issue 15). The same OpenAI chat completion on `/compat` through
//! the same gateway, once naming a model directly (`model: "openai/gpt-4o-mini"`: plain) and once naming a dynamic
//! route (`model: "dynamic/bench10"`: routed), a 10-element route whose every request walks all its elements (four
//! conditionals over metadata, body and headers, a percentage split, a `rate` element counting the request, and a
//! model element balancing two targets by weight, 3:1, with a circuit breaker). Both sides alternate in rounds, at a
//! fixed open-loop rate and then saturated (closed loop); the figures are routed minus plain. After the rounds,
//! unmeasured routed requests read the answer's `cf-aig-model` header: every one must name one of the element's
//! targets, and their counts show the weights.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::format::{round, us, verdict_at_least, verdict_at_most};
use crate::measure::Side;
use crate::stats::Summary;

/// Targets from the dynamic-routes issue (missing one does not fail the run).
pub mod targets {
    /// Gateway CPU per request, routed minus plain, at most (µs): route evaluation plus balancing for a 10-element
    /// route.
    pub const ADDED_CPU_PER_REQUEST_US: f64 = 5.0;
    /// Saturated throughput of the routed side, at least (req/s): the rate at which health bookkeeping must show no
    /// lock contention. Read with the throughput ratio: a plain side below it means this machine cannot tell.
    pub const SATURATED_RPS: f64 = 20_000.0;
    /// The share of the first target may differ from its weight's share by at most this much (a fraction of all
    /// checked answers) before the split is reported as off.
    pub const SPLIT_TOLERANCE: f64 = 0.05;
}

/// One target of the route's model element as the phase expects it: the model its answers name in `cf-aig-model`
/// and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTarget {
    pub model: String,
    pub weight: u32,
}

pub use crate::duo::Duo;
use crate::duo::{errors_row, per_side, row};

/// Everything the routes phase measured.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// The route's name (`model: "dynamic/{route}"`).
    pub route: String,
    /// What the plain side asks for, e.g. `openai/gpt-4o-mini`.
    pub plain_model: String,
    /// The route's model element's targets, as the phase expects them.
    pub expected: Vec<ExpectedTarget>,
    /// Open loop at the chat phase's rate, in alternating rounds.
    pub open: Duo,
    /// Closed loop (saturated), in alternating rounds.
    pub closed: Duo,
    /// How many rounds each load was split into.
    pub rounds: u64,
    /// The check after the rounds: each unmeasured routed answer's `cf-aig-model` (or `absent`, or why it failed),
    /// counted.
    pub models: BTreeMap<String, usize>,
    /// The `cf-aig-model` of one unmeasured plain answer.
    pub plain_answer_model: Option<String>,
}

impl Routes {
    pub fn error_count(&self) -> usize {
        self.open.error_count() + self.closed.error_count()
    }

    /// Measured routed requests sent and answered 200, over both loads: `(ok, sent)`.
    pub fn routed_ok(&self) -> (usize, usize) {
        [&self.open.test, &self.closed.test]
            .into_iter()
            .flatten()
            .fold((0, 0), |(ok, sent), s| {
                (ok + s.result.ok(), sent + s.result.sent)
            })
    }

    /// Routed answers checked after the rounds.
    pub fn checked(&self) -> usize {
        self.models.values().sum()
    }

    /// Checked answers that named one of the expected targets.
    pub fn on_target(&self) -> usize {
        self.expected
            .iter()
            .map(|t| self.models.get(&t.model).copied().unwrap_or(0))
            .sum()
    }

    /// The first target's share of the checked answers, and the share its weight gives it.
    pub fn first_share(&self) -> Option<(f64, f64)> {
        let first = self.expected.first()?;
        let total_weight: u32 = self.expected.iter().map(|t| t.weight).sum();
        let checked = self.checked();
        (checked > 0 && total_weight > 0).then(|| {
            let seen = self.models.get(&first.model).copied().unwrap_or(0);
            (
                seen as f64 / checked as f64,
                f64::from(first.weight) / f64::from(total_weight),
            )
        })
    }

    /// Whether the checked answers split as the weights say (within [`targets::SPLIT_TOLERANCE`]).
    pub fn split_ok(&self) -> bool {
        self.first_share()
            .is_some_and(|(seen, want)| (seen - want).abs() <= targets::SPLIT_TOLERANCE)
    }

    /// Whether the run shows the route was really walked: every measured routed request answered 200, every
    /// checked answer named one of the targets, and the targets shared the checked answers as their weights say.
    pub fn route_checked(&self) -> bool {
        let (ok, sent) = self.routed_ok();
        let checked = self.checked();
        sent > 0 && ok == sent && checked > 0 && self.on_target() == checked && self.split_ok()
    }
}

/// One load's rows; the saturated throughput target on the closed loop only.
fn duo_rows(t: &mut String, duo: &Duo, title: &str, saturated: bool) {
    let _ = writeln!(t, "  {title}");
    row(
        t,
        "",
        ["plain".into(), "routed".into(), "routed-plain".into()],
        "target",
    );
    let mut throughput = per_side(duo, |s| Some(s.result.throughput()), 1);
    throughput[2] = duo
        .throughput_ratio()
        .map_or("-".into(), |r| format!("ratio {r:.2}"));
    let target = if saturated {
        format!(
            "routed {}",
            verdict_at_least(duo.test_throughput(), targets::SATURATED_RPS)
        )
    } else {
        String::new()
    };
    row(t, "throughput req/s", throughput, &target);
    for (i, name) in Summary::POINTS.into_iter().enumerate() {
        let cells = per_side(duo, |s| s.result.latency().map(|l| us(l.points()[i])), 1);
        row(t, &format!("latency {name} µs"), cells, "");
    }
    errors_row(t, duo, ["plain", "routed"]);
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

/// `3.00:1`: the first target's answers over the rest's.
fn split_text(r: &Routes) -> String {
    let first = r
        .expected
        .first()
        .and_then(|t| r.models.get(&t.model))
        .copied()
        .unwrap_or(0);
    let rest = r.on_target() - first.min(r.on_target());
    if rest == 0 {
        "-".into()
    } else {
        format!("{:.2}:1", first as f64 / rest as f64)
    }
}

/// The weights as `3:1`.
fn weights_text(r: &Routes) -> String {
    r.expected
        .iter()
        .map(|t| t.weight.to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The table's section.
pub fn table(r: &Routes) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "routes: the same chat completion on /compat through the same gateway, `{}` (plain) vs `dynamic/{}` (routed: \
         10 elements walked, weighted over {} targets), {} alternating rounds",
        r.plain_model,
        r.route,
        r.expected.len(),
        r.rounds
    );
    if r.open.base.is_some() || r.open.test.is_some() {
        duo_rows(&mut t, &r.open, "open loop", false);
    }
    if r.closed.base.is_some() || r.closed.test.is_some() {
        duo_rows(&mut t, &r.closed, "closed loop (saturated)", true);
    }
    let (ok, sent) = r.routed_ok();
    let seen: Vec<String> = r.models.iter().map(|(m, n)| format!("{m} {n}")).collect();
    let _ = writeln!(
        t,
        "  route used: {ok} of {sent} measured routed requests answered 200; cf-aig-model of {} checked routed \
         answers: {} ({} on target, split {} for weights {}); plain answers: {}: {}",
        r.checked(),
        if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        },
        r.on_target(),
        split_text(r),
        weights_text(r),
        r.plain_answer_model.as_deref().unwrap_or("not checked"),
        if r.route_checked() {
            "ok"
        } else {
            "CHECK FAILED"
        }
    );
    t
}

fn rd(v: Option<f64>, places: i32) -> Option<f64> {
    v.map(|v| round(v, places))
}

/// The phase's JSON; `side_json` renders one side as everywhere else in the summary.
pub fn json(r: &Routes, side_json: &dyn Fn(&Side) -> Value) -> Value {
    let duo = |d: &Duo| crate::duo::json(d, ["plain", "routed"], side_json);
    let (ok, sent) = r.routed_ok();
    let share = r.first_share();
    json!({
        "route": r.route,
        "plain_model": r.plain_model,
        "targets_expected": r.expected.iter().map(|t| json!({"model": t.model, "weight": t.weight})).collect::<Vec<_>>(),
        "rounds": r.rounds,
        "open": duo(&r.open),
        "closed": duo(&r.closed),
        "routed_ok": ok,
        "routed_sent": sent,
        "models_checked": r.checked(),
        "models": r.models,
        "models_on_target": r.on_target(),
        "first_target_share": rd(share.map(|s| s.0), 4),
        "first_target_weight_share": rd(share.map(|s| s.1), 4),
        "plain_answer_model": r.plain_answer_model,
        "route_checked": r.route_checked(),
        "errors": r.error_count(),
        "targets": {
            "added_cpu_per_request_us": targets::ADDED_CPU_PER_REQUEST_US,
            "saturated_rps": targets::SATURATED_RPS,
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

    fn routes() -> Routes {
        Routes {
            route: "bench10".into(),
            plain_model: "openai/gpt-4o-mini".into(),
            expected: vec![
                ExpectedTarget {
                    model: "gpt-4o-mini".into(),
                    weight: 3,
                },
                ExpectedTarget {
                    model: "gpt-4o-mini-2024-07-18".into(),
                    weight: 1,
                },
            ],
            // 10,000 requests a side: plain 1,500 ms (150 µs each), routed 1,540 ms (154 µs).
            open: Duo {
                base: Some(timed(1500, 10_000, 250, 600, 10_000)),
                test: Some(timed(1540, 10_000, 260, 650, 10_000)),
            },
            // 125,000 plain and 110,000 routed in 5 s: 40 and 44 µs each, +4 (within 5); routed 22,000 req/s.
            closed: Duo {
                base: Some(timed(5000, 125_000, 2000, 4000, 5000)),
                test: Some(timed(4840, 110_000, 2100, 4200, 5000)),
            },
            rounds: 4,
            models: BTreeMap::from([
                ("gpt-4o-mini".into(), 750),
                ("gpt-4o-mini-2024-07-18".into(), 250),
            ]),
            plain_answer_model: Some("gpt-4o-mini".into()),
        }
    }

    #[test]
    fn the_costs_of_a_route_are_routed_minus_plain() {
        let r = routes();
        let close = |v: Option<f64>, e: f64| v.is_some_and(|v| (v - e).abs() < 1e-9);
        assert!(close(r.open.added_cpu_per_request_us(), 4.0));
        assert!(close(r.open.added_data_plane_cpu_per_request_us(), 2.0));
        assert_eq!(r.open.added_latency_us(), Some((10.0, 50.0)));
        assert!(close(r.closed.added_cpu_per_request_us(), 4.0));
        assert!(close(r.closed.throughput_ratio(), 0.88));
        assert!(close(r.closed.test_throughput(), 22_000.0));
        assert_eq!(r.routed_ok(), (120_000, 120_000));
        assert_eq!((r.checked(), r.on_target()), (1000, 1000));
        assert_eq!(r.first_share(), Some((0.75, 0.75)));
        assert!(r.route_checked());
        assert_eq!(Duo::default().added_cpu_per_request_us(), None);
    }

    #[test]
    fn answers_off_target_or_off_the_weights_fail_the_check() {
        let mut stray = routes();
        stray.models.insert("gpt-4o".into(), 1);
        assert_eq!((stray.checked(), stray.on_target()), (1001, 1000));
        assert!(
            !stray.route_checked(),
            "an answer from a model not in the element"
        );
        let mut lopsided = routes();
        lopsided.models = BTreeMap::from([
            ("gpt-4o-mini".into(), 500),
            ("gpt-4o-mini-2024-07-18".into(), 500),
        ]);
        assert!(!lopsided.split_ok(), "1:1 for weights 3:1");
        assert!(!lopsided.route_checked());
        let mut failed = routes();
        failed
            .open
            .test
            .as_mut()
            .unwrap()
            .result
            .errors
            .insert("status 404".into(), 3);
        failed.open.test.as_mut().unwrap().result.sent += 3;
        assert_eq!(failed.error_count(), 3);
        assert!(!failed.route_checked(), "a measured routed request failed");
        let unchecked = Routes {
            models: BTreeMap::new(),
            ..routes()
        };
        assert!(!unchecked.route_checked(), "nothing checked proves nothing");
    }

    #[test]
    fn the_table_prints_the_verdicts_the_split_and_the_check() {
        let t = table(&routes());
        assert!(t.contains("<= 5  met"), "{t}");
        assert!(t.contains("routed >= 20000  met"), "{t}");
        assert!(t.contains("ratio 0.88"), "{t}");
        assert!(
            t.contains("gpt-4o-mini 750, gpt-4o-mini-2024-07-18 250 (1000 on target, split 3.00:1 for weights 3:1)"),
            "{t}"
        );
        assert!(t.contains("plain answers: gpt-4o-mini: ok"), "{t}");
        let mut missed = routes();
        missed.open.test = Some(timed(1600, 10_000, 260, 650, 10_000));
        missed.closed.test = Some(timed(4840, 90_000, 2100, 4200, 5000));
        missed.models.clear();
        let t = table(&missed);
        assert!(t.contains("<= 5  MISSED"), "{t}");
        assert!(t.contains("routed >= 20000  MISSED"), "{t}");
        assert!(t.contains("answers: none (0 on target, split -"), "{t}");
        assert!(t.contains("CHECK FAILED"), "{t}");
        let v = json(&routes(), &|_| json!({}));
        assert_eq!(v["open"]["added_cpu_per_request_us"], 4.0);
        assert_eq!(v["open"]["added_p99_us"], 50.0);
        assert_eq!(v["closed"]["routed"]["gateway_cpu_per_request_us"], 44.0);
        assert_eq!(v["models"]["gpt-4o-mini-2024-07-18"], 250);
        assert_eq!(v["first_target_share"], 0.75);
        assert_eq!(v["route_checked"], true);
    }
}
