use std::time::Duration;

use gatehouse_bus::limits::ManualClock;

use super::*;

fn table() -> (Arc<ManualClock>, HealthTable) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    (Arc::clone(&clock), HealthTable::with_clock(clock))
}

fn settings() -> BreakerSettings {
    BreakerSettings {
        failures: 3,
        error_rate: 0.5,
        min_requests: 6,
        window_seconds: 10.0,
        cooldown_seconds: 5.0,
    }
}

#[test]
fn consecutive_failures_open_the_circuit_and_a_trial_closes_it() {
    let (clock, table) = table();
    let t = table.target("a/g/r/m/openai/x");
    let s = settings();
    for _ in 0..2 {
        t.record(false, None, Some(&s));
    }
    assert_eq!(t.view().circuit, Circuit::Closed);
    t.record(false, None, Some(&s));
    assert_eq!(
        t.view().circuit,
        Circuit::Open {
            until_ms: 1_005_000
        }
    );
    assert!(!t.view().available);
    // Still open within the cooldown, whatever happens.
    clock.advance(Duration::from_millis(4_999));
    t.attempt_started();
    assert!(!t.view().available);
    assert!(matches!(t.view().circuit, Circuit::Open { .. }));
    // Cooldown over: available again; the next attempt is a trial.
    clock.advance(Duration::from_millis(1));
    assert!(t.view().available);
    t.attempt_started();
    assert_eq!(t.view().circuit, Circuit::HalfOpen);
    // A failed trial opens it for another cooldown…
    t.record(false, None, Some(&s));
    assert_eq!(
        t.view().circuit,
        Circuit::Open {
            until_ms: 1_010_000
        }
    );
    clock.advance(Duration::from_secs(5));
    t.attempt_started();
    // …and a successful one closes it, its failures forgotten.
    t.record(true, Some(120.0), Some(&s));
    assert_eq!(t.view().circuit, Circuit::Closed);
    t.record(false, None, Some(&s));
    assert_eq!(t.view().circuit, Circuit::Closed);
    let report = t.report();
    assert_eq!(
        (report.successes, report.failures, report.circuit.as_str()),
        (1, 5, "closed")
    );
    assert_eq!(
        (
            report.route_id.as_str(),
            report.element_id.as_str(),
            report.provider.as_str(),
            report.model.as_str()
        ),
        ("r", "m", "openai", "x")
    );
    assert_eq!(
        (report.ttft_us, report.consecutive_failures),
        (Some(120_000), 1)
    );
    assert_eq!(report.last_failure_ms, Some(1_010_000));
}

#[test]
fn an_error_rate_over_the_window_opens_the_circuit() {
    let (clock, table) = table();
    let t = table.target("k");
    let s = settings();
    // Alternating failures never make 3 in a row; 3 of 6 is the 50% rate.
    for i in 0..5 {
        t.record(i % 2 == 0, None, Some(&s));
        assert_eq!(t.view().circuit, Circuit::Closed, "after {i}");
    }
    t.record(false, None, Some(&s));
    assert!(matches!(t.view().circuit, Circuit::Open { .. }));
    // Outcomes older than the window do not count.
    let t = table.target("k2");
    for _ in 0..4 {
        t.record(false, None, Some(&BreakerSettings { failures: 100, ..s }));
        t.record(true, None, Some(&BreakerSettings { failures: 100, ..s }));
    }
    assert!(matches!(t.view().circuit, Circuit::Open { .. }));
    let t = table.target("k3");
    let lenient = BreakerSettings { failures: 100, ..s };
    for _ in 0..3 {
        t.record(false, None, Some(&lenient));
    }
    clock.advance(Duration::from_secs(11));
    for _ in 0..3 {
        t.record(true, None, Some(&lenient));
    }
    t.record(false, None, Some(&lenient));
    assert_eq!(t.view().circuit, Circuit::Closed, "1 of 4 in the window");
}

#[test]
fn without_a_breaker_a_target_stays_in_and_latencies_are_windowed_means() {
    let (clock, table) = table();
    let t = table.target("k");
    for _ in 0..10 {
        t.record(false, None, None);
    }
    assert!(t.view().available);
    t.record(true, Some(100.0), None);
    t.record(true, Some(300.0), None);
    t.record_tpot(10.0);
    let v = t.view();
    assert_eq!(
        (v.ttft_ms, v.tpot_ms, v.samples),
        (Some(200.0), Some(10.0), 2)
    );
    clock.advance(Duration::from_millis(LATENCY_WINDOW_MS as u64 + 1));
    t.record(true, Some(50.0), None);
    let v = t.view();
    assert_eq!((v.ttft_ms, v.tpot_ms, v.samples), (Some(50.0), None, 1));
}

#[test]
fn reports_carry_the_key_parts_and_latencies_in_microseconds() {
    let (_, table) = table();
    let t = table.target("acme/prod/r1/m1/workers-ai/@cf/meta/llama-3.1-8b-instruct");
    t.record(true, Some(100.0), None);
    t.record(true, Some(100.5), None);
    t.record_tpot(0.0123);
    let report = t.report();
    assert_eq!(
        (
            report.route_id.as_str(),
            report.element_id.as_str(),
            report.provider.as_str(),
            report.model.as_str()
        ),
        ("r1", "m1", "workers-ai", "@cf/meta/llama-3.1-8b-instruct")
    );
    assert_eq!((report.ttft_us, report.tpot_us), (Some(100_250), Some(12)));
    assert_eq!(
        (report.circuit.as_str(), report.available),
        ("closed", true)
    );
    assert_eq!(
        (report.successes, report.failures, report.last_failure_ms),
        (2, 0, None)
    );
    // A key that is not six segments (only tests make those) still reports, with empty parts.
    let odd = table.target("k").report();
    assert_eq!(
        (odd.key.as_str(), odd.route_id.as_str(), odd.model.as_str()),
        ("k", "", "")
    );
}

#[test]
fn the_table_keeps_targets_that_are_held_and_forgets_the_others() {
    let (_, table) = table();
    let held = table.target("held");
    held.record(false, None, None);
    drop(table.target("dropped"));
    assert!(Arc::ptr_eq(&held, &table.target("held")));
    table.prune();
    let keys: Vec<String> = table.reports().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["held"]);
    assert_eq!(table.reports()[0].failures, 1);
}

#[test]
fn probes_are_spaced_one_at_a_time_and_a_successful_one_closes_an_open_circuit() {
    let (clock, table) = table();
    let t = table.target("k");
    let s = settings();
    assert!(t.claim_probe(10_000));
    assert!(!t.claim_probe(10_000), "one at a time");
    t.probed(false, None, Some(&s));
    assert!(!t.claim_probe(10_000), "not before the interval");
    clock.advance(Duration::from_secs(10));
    assert!(t.claim_probe(10_000));
    for _ in 0..3 {
        t.record(false, None, Some(&s));
    }
    assert!(!t.view().available);
    // Within the cooldown, a successful probe brings the target back.
    t.probed(true, Some(80.0), Some(&s));
    assert_eq!(t.view().circuit, Circuit::Closed);
    assert!(t.view().available);
}
