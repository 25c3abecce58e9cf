use super::*;

fn side(cpu_ms: u64, ok: usize, events_per: usize) -> Side {
    crate::measure::test_side(cpu_ms, ok, events_per)
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
fn the_keys_phase_is_printed_and_its_failures_count() {
    let mut keyed = side(1700, 10_000, 0);
    keyed.result.latencies.truncate(9_997);
    keyed.result.errors.insert("status 429".into(), 3);
    let results = Results {
        keys: Some(Keys {
            open: keys::Duo {
                base: Some(side(1500, 10_000, 0)),
                test: Some(keyed),
            },
            rounds: 4,
            wrong_key_status: Some(401),
            ..Keys::default()
        }),
        ..Results::default()
    };
    let t = table(&results, "title", "h");
    assert!(t.contains("keys: the same chat completion"), "{t}");
    assert!(t.contains("<= 25  met"), "{t}");
    assert!(t.contains("keyed: 3 status 429"), "{t}");
    assert!(t.contains("CHECK FAILED"), "{t}");
    assert!(!t.contains("closed loop (saturated)"), "{t}");
    assert_eq!(results.errors(), 3);
    let json = json_summary(&results, &Value::Null);
    assert_eq!(json["keys"]["open"]["added_cpu_per_request_us"], 20.0);
    assert_eq!(json["keys"]["key_checked"], false);
    assert_eq!(json["errors"], 3);
}

#[test]
fn the_saturated_logs_on_run_is_printed_with_its_targets_and_stored_records() {
    // 50,000 requests in 2.5 s each side: logs off 40 ms per 1,000 (40 µs), logs on 55 µs, 1,000 records lost.
    let saturated = |cpu_ms: u64| {
        let mut s = side(cpu_ms, 50_000, 0);
        s.result.elapsed = std::time::Duration::from_millis(2500);
        s
    };
    let mut on = saturated(2750);
    on.log_records = Some(49_000);
    let results = Results {
        closed: Some(Pair {
            direct: saturated(0),
            through: Some(saturated(2000)),
        }),
        closed_logged: Some(on),
        ..Results::default()
    };
    let t = table(&results, "title", "h");
    assert!(t.contains("off <= 40  met; on <= 50  MISSED"), "{t}");
    assert!(t.contains("on >= 20000  met"), "{t}");
    assert!(t.contains("49000"), "{t}");
    assert!(t.contains("records dropped"), "{t}");
    let json = json_summary(&results, &Value::Null);
    assert_eq!(json["closed_logged"]["gateway_cpu_per_request_us"], 55.0);
    assert_eq!(json["closed_logged"]["cpu_ratio_vs_logs_off"], 1.375);
    assert_eq!(json["closed_logged"]["log_records_stored"], 49_000);
}

#[test]
fn the_routes_phase_is_printed_and_its_failures_count() {
    let mut routed = side(1540, 10_000, 0);
    routed.result.latencies.truncate(9_998);
    routed.result.errors.insert("status 404".into(), 2);
    let results = Results {
        routes: Some(Routes {
            route: "bench10".into(),
            plain_model: "openai/gpt-4o-mini".into(),
            open: routes::Duo {
                base: Some(side(1500, 10_000, 0)),
                test: Some(routed),
            },
            rounds: 4,
            ..Routes::default()
        }),
        ..Results::default()
    };
    let t = table(&results, "title", "h");
    assert!(t.contains("`dynamic/bench10` (routed"), "{t}");
    assert!(t.contains("<= 5  met"), "{t}");
    assert!(t.contains("routed: 2 status 404"), "{t}");
    assert!(t.contains("CHECK FAILED"), "{t}");
    assert!(!t.contains("closed loop (saturated)"), "{t}");
    assert_eq!(results.errors(), 2);
    let json = json_summary(&results, &Value::Null);
    assert_eq!(json["routes"]["open"]["added_cpu_per_request_us"], 4.0);
    assert_eq!(json["routes"]["route_checked"], false);
    assert_eq!(json["errors"], 2);
}
