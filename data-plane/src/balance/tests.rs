use super::*;
use crate::health::Circuit;

fn healthy(weight: u32, priority: u32) -> Candidate {
    Candidate {
        weight,
        priority,
        health: HealthView {
            available: true,
            circuit: Circuit::Closed,
            ttft_ms: None,
            tpot_ms: None,
            samples: 0,
        },
    }
}

fn open(mut c: Candidate) -> Candidate {
    c.health.available = false;
    c.health.circuit = Circuit::Open { until_ms: i64::MAX };
    c
}

fn timed(mut c: Candidate, ttft: f64, tpot: f64) -> Candidate {
    c.health.ttft_ms = Some(ttft);
    c.health.tpot_ms = Some(tpot);
    c.health.samples = 20;
    c
}

fn firsts(targets: &[Candidate], balance: &Balance, n: usize) -> Vec<usize> {
    let rr = RoundRobin::default();
    let mut counts = vec![0; targets.len()];
    for _ in 0..n {
        counts[order(targets, balance, &rr, None, true)[0]] += 1;
    }
    counts
}

#[test]
fn weighted_round_robin_honours_the_weights_smoothly() {
    let targets = [healthy(5, 0), healthy(1, 0), healthy(1, 0)];
    let rr = RoundRobin::default();
    let seq: Vec<usize> = (0..7)
        .map(|_| order(&targets, &Balance::Weighted, &rr, None, true)[0])
        .collect();
    // nginx's example: a a b a c a a.
    assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(
        firsts(&targets, &Balance::Weighted, 7_000),
        [5_000, 1_000, 1_000]
    );
    // The others follow as fallbacks, heaviest first.
    assert_eq!(
        order(&targets, &Balance::Weighted, &rr, None, true).len(),
        3
    );
    // An open target leaves the rotation; a weight of 0 takes nothing while another is available.
    let targets = [healthy(5, 0), open(healthy(1, 0)), healthy(0, 0)];
    assert_eq!(firsts(&targets, &Balance::Weighted, 100), [100, 0, 0]);
    let o = order(
        &targets,
        &Balance::Weighted,
        &RoundRobin::default(),
        None,
        true,
    );
    assert_eq!(
        o,
        [0, 2],
        "the open target is not a fallback while others are available"
    );
}

#[test]
fn with_every_target_open_they_are_tried_only_when_the_element_has_no_fallback() {
    let targets = [open(healthy(1, 1)), open(healthy(1, 0))];
    let rr = RoundRobin::default();
    assert_eq!(
        order(
            &targets,
            &Balance::Priority { sla_tpot_ms: None },
            &rr,
            None,
            true
        ),
        [1, 0]
    );
    assert!(order(&targets, &Balance::Weighted, &rr, None, false).is_empty());
}

#[test]
fn least_latency_follows_the_fastest_and_shares_within_the_tolerance() {
    let ll = Balance::LeastLatency { tolerance: 0.1 };
    let slow = timed(healthy(1, 0), 400.0, 20.0); // 2,400
    let fast = timed(healthy(1, 0), 100.0, 10.0); // 1,100
    let close = timed(healthy(1, 0), 150.0, 9.8); // 1,130: within 10%
    assert_eq!(firsts(&[slow, fast], &ll, 100), [0, 100]);
    let counts = firsts(&[slow, fast, close], &ll, 1_000);
    assert_eq!(counts[0], 0);
    assert!((450..=550).contains(&counts[1]), "{counts:?}");
    // An unmeasured target gets every 10th request until it has samples.
    let new = healthy(1, 0);
    let counts = firsts(&[slow, fast, new], &ll, 1_000);
    assert_eq!(counts, [0, 900, 100]);
    // The order puts the rest fastest first, the unmeasured last.
    let o = order(&[slow, new, fast], &ll, &RoundRobin::default(), None, true);
    assert_eq!(o, [1, 2, 0], "seq 0 explores; then fast, slow");
}

#[test]
fn priority_takes_the_first_healthy_and_skips_degraded_targets() {
    let p = Balance::Priority {
        sla_tpot_ms: Some(50.0),
    };
    let primary = healthy(1, 0);
    let secondary = healthy(1, 1);
    let rr = RoundRobin::default();
    assert_eq!(order(&[secondary, primary], &p, &rr, None, true), [1, 0]);
    assert_eq!(order(&[secondary, open(primary)], &p, &rr, None, true), [0]);
    let degraded = timed(primary, 100.0, 80.0);
    assert_eq!(order(&[secondary, degraded], &p, &rr, None, true), [0, 1]);
}

#[test]
fn sticky_values_stay_put_and_move_only_off_an_unavailable_target() {
    let targets = [healthy(1, 0), healthy(1, 0), healthy(1, 0)];
    let rr = RoundRobin::default();
    let mut moved = 0;
    let mut spread = [0; 3];
    for s in 0..3_000 {
        let h = sticky_hash(&format!("session-{s}"));
        let first = order(&targets, &Balance::Weighted, &rr, Some(h), true)[0];
        assert_eq!(
            first,
            order(&targets, &Balance::Weighted, &rr, Some(h), true)[0]
        );
        spread[first] += 1;
        let mut without = targets;
        without[1] = open(without[1]);
        let after = order(&without, &Balance::Weighted, &rr, Some(h), true)[0];
        if first != 1 {
            assert_eq!(after, first, "sessions on healthy targets stay");
        } else {
            moved += 1;
            assert_ne!(after, 1);
        }
    }
    assert_eq!(moved, spread[1]);
    assert!(
        spread.iter().all(|n| (850..=1_150).contains(n)),
        "{spread:?}"
    );
}
