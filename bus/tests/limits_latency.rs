//! The `admit_latency` measurement (ignored: not a pass/fail test) against the test Redis (`TEST_REDIS_URL`).

use std::time::{Duration, Instant};

use gatehouse_bus::limits::{AllAdmission, LimitStore, WindowTechnique};

mod common;

use common::{Fixture, MINUTE, USD, check, script_calls, spend};

/// The cost of one admission against the test Redis, next to a plain `PING` on the same kind of connection (what
/// the network and the machine cost by themselves). Not a pass/fail test: run it with
/// `cargo test -p gatehouse-bus --release --test limits_latency -- --ignored --nocapture admit_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn admit_latency() {
    let Some(fx) = Fixture::start("limits-latency") else {
        return;
    };
    let store = fx.node();
    let mut ping = redis::Client::open(fx.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let report = |label: &str, mut took: Vec<Duration>| {
        took.sort();
        let at = |q: f64| took[((took.len() as f64) * q) as usize];
        println!(
            "{label}: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            at(0.50),
            at(0.90),
            at(0.99),
            took[took.len() - 1]
        );
    };
    let mut took = Vec::with_capacity(10_000);
    let mut cpu = Duration::ZERO;
    for i in 0..10_500 {
        if i == 500 {
            cpu = process_cpu();
        }
        let started = Instant::now();
        let () = redis::cmd("PING")
            .query_async(&mut ping)
            .await
            .map(|_: String| ())
            .unwrap();
        if i >= 500 {
            took.push(started.elapsed());
        }
    }
    let cpu = process_cpu().saturating_sub(cpu);
    report("PING (baseline)", took);
    println!("  CPU per call: {:?}", cpu / 10_000);
    for (label, technique) in [
        ("admit_request fixed", WindowTechnique::Fixed),
        ("admit_request sliding", WindowTechnique::Sliding),
    ] {
        let mut took = Vec::with_capacity(10_000);
        for i in 0..10_500 {
            let key = format!("rl:a:{}", i % 100);
            let started = Instant::now();
            store
                .admit_request(&key, 1_000_000, Duration::from_secs(60), technique)
                .await
                .unwrap();
            if i >= 500 {
                took.push(started.elapsed());
            }
        }
        report(label, took);
    }
    // What issue 14's admission adds: a virtual key's, its user's and its team's request rates in one call, and a
    // budget reserved before the request and settled after it (key and team counters). The CPU is this whole
    // process's (the client side of each call, all threads, the loop's own work included), from /proc, over all
    // the timed calls.
    let rates = |i: usize| {
        [
            check(
                &format!("vk:a:key:{}:rpm", i % 100),
                10_000,
                MINUTE,
                WindowTechnique::Sliding,
            ),
            check(
                &format!("vk:a:user:{}:rpm", i % 10),
                10_000,
                MINUTE,
                WindowTechnique::Sliding,
            ),
            check(
                &format!("vk:a:team:{}:rpm", i % 3),
                10_000,
                MINUTE,
                WindowTechnique::Sliding,
            ),
        ]
    };
    let mut took = Vec::with_capacity(10_000);
    let mut cpu = Duration::ZERO;
    for i in 0..10_500 {
        if i == 500 {
            cpu = process_cpu();
        }
        let checks = rates(i);
        let started = Instant::now();
        assert_eq!(
            store.admit_all(&checks).await.unwrap(),
            AllAdmission::Admitted
        );
        if i >= 500 {
            took.push(started.elapsed());
        }
    }
    let cpu = process_cpu().saturating_sub(cpu);
    report("admit_all key+user+team", took);
    println!("  CPU per call: {:?}", cpu / 10_000);
    let counters = |i: usize| {
        let counter = |key: String| gatehouse_bus::limits::BudgetCounter {
            key,
            limit: 1_000_000 * USD,
            period_end_ms: i64::MAX / 4,
        };
        [
            counter(format!("vk:a:key:{}:budget:month:0", i % 100)),
            counter(format!("vk:a:team:{}:budget:month:0", i % 3)),
        ]
    };
    let (mut reserving, mut settling) = (Vec::new(), Vec::new());
    let mut cpu = Duration::ZERO;
    for i in 0..10_500 {
        if i == 500 {
            cpu = process_cpu();
        }
        let counters = counters(i);
        let id = format!("latency-{i}");
        let started = Instant::now();
        let gatehouse_bus::limits::Reserved::Held(reservation) = store
            .reserve(&id, &counters, USD / 100, Duration::from_secs(900))
            .await
            .unwrap()
        else {
            panic!("refused")
        };
        let reserved = Instant::now();
        store.settle(&reservation, USD / 200).await.unwrap();
        if i >= 500 {
            reserving.push(reserved - started);
            settling.push(reserved.elapsed());
        }
    }
    let cpu = process_cpu().saturating_sub(cpu);
    report("reserve (2 counters)", reserving);
    report("settle (2 counters)", settling);
    println!("  CPU per reserve and settle: {:?}", cpu / 10_000);
    // Tokens per minute: the check before forwarding (`spent`) and the charge after the response (`record_spend`),
    // over a key's window and the gateway's.
    let windows = |i: usize| {
        [
            spend(
                &format!("vk:a:key:{}:tpm:total", i % 100),
                MINUTE,
                WindowTechnique::Sliding,
            ),
            spend("gw:a:g:tpm", MINUTE, WindowTechnique::Sliding),
        ]
    };
    for (label, recording) in [
        ("spent (2 windows)", false),
        ("record_spend (2 windows)", true),
    ] {
        let mut took = Vec::with_capacity(10_000);
        let mut cpu = Duration::ZERO;
        for i in 0..10_500 {
            if i == 500 {
                cpu = process_cpu();
            }
            let windows = windows(i);
            let started = Instant::now();
            if recording {
                store.record_spend(&windows, 100).await.unwrap();
            } else {
                store.spent(&windows).await.unwrap();
            }
            if i >= 500 {
                took.push(started.elapsed());
            }
        }
        let cpu = process_cpu().saturating_sub(cpu);
        report(label, took);
        println!("  CPU per call: {:?}", cpu / 10_000);
    }
    // Issue 14's admission as the data plane makes it for a keyed request: the key's RPM (`admit_all`), its TPM
    // checked (`spent`), one budget held (`reserve`) and settled (`settle`), the answer's tokens charged
    // (`record_spend`). 100 keys, round robin; CPU of the whole process (background work included) per request,
    // first as fast as one task goes, then at a node's pace of 2,000 requests a second for two seconds (less the
    // CPU the same loop costs without the calls). Script calls are counted on the server (approximate when other
    // clients use it).
    // Every request's reservation id is its own (a settled id is remembered, and a repeated settle ignored).
    let requests = std::cell::Cell::new(0);
    let keyed = async |i: usize, rate: bool| {
        let key = i % 100;
        requests.set(requests.get() + 1);
        let rpm = [check(
            &format!("vk:b:key:{key}:rpm"),
            1_000_000,
            MINUTE,
            WindowTechnique::Sliding,
        )];
        let tpm = [spend(
            &format!("vk:b:key:{key}:tpm:total"),
            MINUTE,
            WindowTechnique::Sliding,
        )];
        let budget = [gatehouse_bus::limits::BudgetCounter {
            key: format!("vk:b:key:{key}:budget:month:0"),
            limit: 1_000_000 * USD,
            period_end_ms: i64::MAX / 4,
        }];
        let started = Instant::now();
        if rate {
            assert_eq!(store.admit_all(&rpm).await.unwrap(), AllAdmission::Admitted);
        }
        store.spent(&tpm).await.unwrap();
        let gatehouse_bus::limits::Reserved::Held(reservation) = store
            .reserve(
                &format!("request-{}", requests.get()),
                &budget,
                USD / 100,
                Duration::from_secs(900),
            )
            .await
            .unwrap()
        else {
            panic!("refused")
        };
        store.settle(&reservation, USD / 200).await.unwrap();
        store.record_spend(&tpm, 300).await.unwrap();
        started.elapsed()
    };
    for i in 0..20_000 {
        keyed(i, true).await;
    }
    let mut took = Vec::with_capacity(50_000);
    let (cpu, scripts, started) = (process_cpu(), script_calls(&fx.url), Instant::now());
    for i in 0..50_000 {
        took.push(keyed(i, true).await);
    }
    let (cpu, wall) = (process_cpu().saturating_sub(cpu), started.elapsed());
    let scripts = script_calls(&fx.url) - scripts;
    report(
        "keyed request (admit_all + spent + reserve + settle + record_spend)",
        took,
    );
    println!(
        "  CPU per request: {:?} ({} requests/s on one task, {:.4} script calls per request)",
        cpu / 50_000,
        (50_000.0 / wall.as_secs_f64()) as u64,
        scripts as f64 / 50_000.0
    );
    // Paced: two requests every millisecond; with and without the RPM check (whose leases are refilled by
    // round trips of their own, `lease.rs`).
    let paced = async |calls: Option<bool>| {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let (cpu, scripts) = (process_cpu(), script_calls(&fx.url));
        let mut took = Vec::with_capacity(4_000);
        for i in 0..2_000 {
            tick.tick().await;
            if let Some(rate) = calls {
                took.push(keyed(2 * i, rate).await);
                took.push(keyed(2 * i + 1, rate).await);
            }
        }
        (
            process_cpu().saturating_sub(cpu),
            script_calls(&fx.url) - scripts,
            took,
        )
    };
    let (idle, _, _) = paced(None).await;
    println!("  (the paced loop alone: {:?} per request)", idle / 4_000);
    for (label, rate) in [
        ("keyed request at 2,000/s", true),
        ("keyed request at 2,000/s without the RPM check", false),
    ] {
        let (busy, scripts, took) = paced(Some(rate)).await;
        report(label, took);
        println!(
            "  CPU per request: {:?} over the loop's own, {:.4} script calls per request",
            busy.saturating_sub(idle) / 4_000,
            scripts as f64 / 4_000.0
        );
    }
}

/// This process's CPU time (user and system, every thread), from `/proc/self/stat` in clock ticks of 10 ms:
/// coarse per call, fine summed over thousands.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, in the whole line).
    let ticks = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}
