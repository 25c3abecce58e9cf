//! `list`: seeds a gateway, then measures list and filter latency through the HTTP API.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use diesel::RunQueryDsl as _;
use gatehouse_bench::client::http_client;
use gatehouse_bench::stats::Summary;
use gatehouse_control_plane::db::Database;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ACCOUNT;
use crate::records::{now_ms, store_all};
use crate::setup::Api;

pub(crate) async fn list(
    db: &Database,
    api: &Api,
    rows: usize,
    seed_budget: Duration,
    seed_writers: usize,
    iterations: usize,
    warmup: usize,
) -> Result<Value> {
    let client = http_client();
    let gateway = "logs-1m";
    api.create_gateway(&client, gateway).await?;
    eprintln!(
        "gatehouse-bench-logs: seeding {rows} rows with {seed_writers} writers (budget {})",
        humantime::format_duration(seed_budget)
    );
    let (seeded, seed_time) = store_all(
        db,
        gateway,
        rows,
        seed_writers,
        Some(Instant::now() + seed_budget),
        None,
        true,
    )
    .await?;
    let analyze = Instant::now();
    db.run(|c| {
        diesel::sql_query("ANALYZE")
            .execute(c)
            .map_err(gatehouse_control_plane::error::Error::from)
    })
    .await?;
    let analyze = analyze.elapsed();
    println!(
        "seeded {seeded} rows in {:.0} s ({:.0} rows/s, {seed_writers} writers){}; ANALYZE {:.1} s",
        seed_time.as_secs_f64(),
        seeded as f64 / seed_time.as_secs_f64(),
        if seeded < rows {
            format!(" — seed budget reached before {rows}")
        } else {
            String::new()
        },
        analyze.as_secs_f64()
    );

    // The middle of the seeded time span: a created_at range covering one day of it.
    let now = now_ms();
    let day = 24 * 3600 * 1000_i64;
    let (from, to) = (now - 15 * day, now - 14 * day);
    let base = format!("/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways/{gateway}/logs");
    let queries: Vec<(&str, String)> = vec![
        ("first page", format!("{base}?per_page=20")),
        ("page 100", format!("{base}?per_page=20&page=100")),
        (
            "model eq",
            format!(
                "{base}?per_page=20&filters.key=model&filters.operator=eq&filters.value=gpt-4o"
            ),
        ),
        (
            "model eq, page 400",
            format!(
                "{base}?per_page=20&page=400&filters.key=model&filters.operator=eq&filters.value=gpt-4o"
            ),
        ),
        (
            "success=false",
            format!(
                "{base}?per_page=20&filters.key=success&filters.operator=eq&filters.value=false"
            ),
        ),
        (
            "created_at 1 day",
            format!(
                "{base}?per_page=20&filters.key=created_at&filters.operator=gt&filters.value={from}&filters.key=created_at&filters.operator=lt&filters.value={to}"
            ),
        ),
        ("search", format!("{base}?per_page=20&search=o3-mini")),
        ("meta_info", format!("{base}?per_page=20&meta_info=true")),
    ];
    println!(
        "list latency through the HTTP API at {seeded} rows, {iterations} requests each after {warmup} warm-up (ms)"
    );
    println!(
        "{:<18} {:>12} {:>9} {:>9} {:>9}",
        "query", "total_count", "p50", "p99", "max"
    );
    let mut results = Vec::new();
    for (label, pq) in &queries {
        let mut total_count = None;
        for _ in 0..warmup {
            let (status, body) = api.send(&client, Method::GET, pq, None).await?;
            if status != StatusCode::OK {
                bail!("{label}: {status} {}", String::from_utf8_lossy(&body));
            }
            let v: Value = serde_json::from_slice(&body)?;
            total_count = v["result_info"]["total_count"].as_i64();
        }
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            let (status, body) = api.send(&client, Method::GET, pq, None).await?;
            samples.push(t.elapsed());
            ensure!(
                status == StatusCode::OK,
                "{label}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let s = Summary::of(&samples).context("no samples")?;
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        println!(
            "{label:<18} {:>12} {:>9.1} {:>9.1} {:>9.1}",
            total_count.map_or("-".into(), |c| c.to_string()),
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
        results.push(json!({"query": label, "total_count": total_count,
            "p50_ms": ms(s.p50), "p99_ms": ms(s.p99), "max_ms": ms(s.max)}));
    }
    Ok(
        json!({"mode": "list", "rows": seeded, "rows_requested": rows,
        "seed_seconds": seed_time.as_secs_f64(), "seed_writers": seed_writers,
        "iterations": iterations, "queries": results}),
    )
}
