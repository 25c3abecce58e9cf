//! Traffic analytics (`GET …/analytics`, `GET …/gateways/{id}/analytics`): logs stored through the real ingest path
//! (`log_ingest::store_records`) are rolled up as they are stored, and every report equals the sums computed here
//! over the same logs, for each grouping, filter and interval; percentiles fall within one histogram bucket of the
//! exact value; a redelivered record counts once; the migration's backfill rebuilds the same rollups; bad
//! parameters are 400s naming them, and gateways of another account are 404s.

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use gatehouse_control_plane::log_ingest::store_records;
use gatehouse_control_plane::store::analytics::latency_bucket_of;
use gatehouse_shared::log::LogRecord;
use gatehouse_shared::token::Scope;
use serde_json::Value;

use crate::logs::record;
use crate::on_both_backends;
use crate::support::{TestApp, assert_error};

on_both_backends!(
    reports_equal_the_sums_of_the_logs_for_every_grouping_filter_and_interval,
    a_redelivered_record_counts_once,
    the_migration_backfills_the_rollups_of_the_stored_logs,
    bad_parameters_are_400s_and_other_accounts_gateways_404s,
);

fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// 2027-01-15T09:00:00Z: the fixture's logs span the five hours from here (and a few the next day).
const ORIGIN: &str = "2027-01-15T09:00:00Z";

/// A small deterministic generator (64-bit LCG), so the fixture is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// `n` logs of acme's `gw` and `gw2` over five hours and a day after, with every figure varied: providers, models
/// (some none), keys with their user and team (some none), metadata (some none, one value too long to count),
/// durations from 0 ms to 11 minutes on a log scale, costs and tokens (some unknown), failures, cache hits.
fn fixture(n: usize, salt: u64) -> Vec<LogRecord> {
    let mut rng = Lcg(salt);
    let origin = ms(ORIGIN);
    let models = [
        ("openai", Some("gpt-4o")),
        ("openai", Some("gpt-4o-mini")),
        ("openai", None),
        ("anthropic", Some("claude-sonnet")),
        ("anthropic", Some("claude-haiku")),
        ("groq", Some("llama-3")),
    ];
    let keys = [
        (Some("k1"), Some("alice"), Some("research")),
        (Some("k2"), Some("bob"), None),
        (Some("k3"), None, Some("ops")),
        (None, None, None),
    ];
    let long = "v".repeat(129);
    (0..n)
        .map(|i| {
            let at = if rng.next(20) == 0 {
                origin + 86_400_000 + rng.next(3_600_000) as i64
            } else {
                origin + rng.next(5 * 3_600_000) as i64
            };
            let (provider, model) = models[rng.next(models.len() as u64) as usize];
            let (key, user, team) = keys[rng.next(keys.len() as u64) as usize];
            let mut r = record(&format!("01AN{salt:04}{i:012}"), at, provider);
            r.gateway_id = if rng.next(4) == 0 { "gw2" } else { "gw" }.into();
            r.model = model.map(str::to_owned);
            r.key_id = key.map(str::to_owned);
            r.user_id = user.map(str::to_owned);
            r.team_id = team.map(str::to_owned);
            // Log-uniform from 1 ms to ~660 s, and some 0 ms.
            r.duration_ms = if rng.next(50) == 0 {
                0
            } else {
                (10f64.powf(rng.next(5_820) as f64 / 1_000.0)) as u64
            };
            r.success = rng.next(7) != 0;
            r.status_code = if r.success { 200 } else { 500 };
            r.cached = rng.next(5) == 0;
            r.tokens_in = (rng.next(4) != 0).then(|| rng.next(2_000));
            r.tokens_out = (rng.next(4) != 0).then(|| rng.next(800));
            r.cost = (rng.next(3) != 0).then(|| rng.next(10_000) as f64 / 1_000_000.0);
            r.metadata = match rng.next(4) {
                0 => None,
                1 => Some(r#"{"plan":"pro","region":"eu"}"#.into()),
                2 => Some(format!(r#"{{"plan":"free","n":{}}}"#, rng.next(3))),
                _ => Some(format!(r#"{{"plan":"{long}","flag":true}}"#)),
            };
            r
        })
        .collect()
}

fn ingest(app: &TestApp, records: &[LogRecord]) -> usize {
    let mut inserted = 0;
    for batch in records.chunks(97) {
        inserted += app
            .db
            .with_conn(|c| store_records(c, batch))
            .expect("stored")
            .inserted;
    }
    inserted
}

/// What a report should say of a set of logs.
#[derive(Debug, Default, Clone)]
struct Expected {
    requests: i64,
    errors: i64,
    cached: i64,
    tokens_in: i64,
    tokens_out: i64,
    cost: f64,
    priced: i64,
    durations: Vec<i64>,
}

impl Expected {
    fn add(&mut self, r: &LogRecord) {
        self.requests += 1;
        self.errors += i64::from(!r.success);
        self.cached += i64::from(r.cached);
        self.tokens_in += r.tokens_in.unwrap_or(0) as i64;
        self.tokens_out += r.tokens_out.unwrap_or(0) as i64;
        if let Some(c) = r.cost {
            self.cost += c;
            self.priced += 1;
        }
        self.durations.push(r.duration_ms as i64);
    }

    /// The nearest-rank quantile.
    fn quantile(&self, q: f64) -> i64 {
        let mut d = self.durations.clone();
        d.sort_unstable();
        let rank = ((q * d.len() as f64).ceil() as usize).max(1);
        d[rank - 1]
    }

    #[track_caller]
    fn assert_matches(&self, got: &Value, what: &str) {
        let int = |name: &str| {
            got[name]
                .as_i64()
                .unwrap_or_else(|| panic!("{what}: {name} in {got}"))
        };
        assert_eq!(int("requests"), self.requests, "{what}: requests");
        assert_eq!(int("errors"), self.errors, "{what}: errors");
        assert_eq!(int("cached"), self.cached, "{what}: cached");
        assert_eq!(int("tokens_in"), self.tokens_in, "{what}: tokens_in");
        assert_eq!(int("tokens_out"), self.tokens_out, "{what}: tokens_out");
        assert_eq!(int("priced_requests"), self.priced, "{what}: priced");
        let cost = got["cost"].as_f64().unwrap();
        assert!(
            (cost - self.cost).abs() < 1e-9,
            "{what}: cost {cost} != {}",
            self.cost
        );
        if self.requests == 0 {
            assert_eq!(got["error_rate"], 0.0, "{what}");
            assert_eq!(got["cache_hit_rate"], 0.0, "{what}");
            for name in ["avg", "p50", "p95", "p99"] {
                assert_eq!(got["latency_ms"][name], Value::Null, "{what}");
            }
            return;
        }
        let n = self.requests as f64;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(got["error_rate"].as_f64().unwrap(), self.errors as f64 / n),
            "{what}"
        );
        assert!(
            close(
                got["cache_hit_rate"].as_f64().unwrap(),
                self.cached as f64 / n
            ),
            "{what}"
        );
        let latency = &got["latency_ms"];
        let avg = self.durations.iter().sum::<i64>() as f64 / n;
        assert!(
            (latency["avg"].as_f64().unwrap() - avg).abs() <= 0.05 + 1e-9,
            "{what}: avg {latency} vs {avg}"
        );
        for (name, q) in [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)] {
            let estimate = latency[name].as_f64().unwrap();
            let exact = self.quantile(q);
            let (a, b) = (latency_bucket_of(estimate as i64), latency_bucket_of(exact));
            assert!(
                a.abs_diff(b) <= 1,
                "{what}: {name} {estimate} (bucket {a}) vs exact {exact} (bucket {b})"
            );
        }
    }
}

/// A bucket's start and its group: `None` ungrouped, `Some(None)` for the logs without a value.
type BucketKey = (i64, Option<Option<String>>);

/// The exact report of `records` per bucket and group, in the report's order (by bucket, then by value, none
/// last).
fn expected(
    records: &[&LogRecord],
    width_ms: i64,
    group: impl Fn(&LogRecord) -> Option<Option<String>>,
) -> Vec<(BucketKey, Expected)> {
    let mut out: BTreeMap<BucketKey, Expected> = BTreeMap::new();
    for r in records {
        let start = r.created_at_ms - r.created_at_ms.rem_euclid(width_ms);
        out.entry((start, group(r))).or_default().add(r);
    }
    let mut out: Vec<_> = out.into_iter().collect();
    out.sort_by_key(|((start, group), _)| {
        (*start, group.as_ref().map(|g| (g.is_none(), g.clone())))
    });
    out
}

/// Whether two JSON documents are equal, numbers within a relative 1e-9 (sums of costs in another order).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn metadata_value(r: &LogRecord, key: &str) -> Option<String> {
    let v: Value = serde_json::from_str(r.metadata.as_deref()?).ok()?;
    let v = match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (v.chars().count() <= 128).then_some(v)
}

async fn report(app: &TestApp, path: &str, query: &str) -> Value {
    let (status, body) = app
        .get(&app.gw_url("acme", &format!("{path}?{query}")))
        .await;
    assert_eq!(status, 200, "{path}?{query}: {body}");
    assert_eq!(body["success"], true, "{body}");
    body
}

/// Checks one report against the logs: every bucket, nothing more, and the totals.
async fn check(
    app: &TestApp,
    path: &str,
    query: &str,
    logs: &[&LogRecord],
    width_ms: i64,
    group: impl Fn(&LogRecord) -> Option<Option<String>>,
) {
    let body = report(app, path, query).await;
    let info = &body["result_info"];
    let (start, end) = (
        ms(info["start"].as_str().unwrap()),
        ms(info["end"].as_str().unwrap()),
    );
    let in_range: Vec<&LogRecord> = logs
        .iter()
        .copied()
        .filter(|r| (start..end).contains(&r.created_at_ms))
        .collect();
    let want = expected(&in_range, width_ms, &group);
    let got = body["result"].as_array().unwrap();
    let what = format!("{path}?{query}");
    assert_eq!(got.len(), want.len(), "{what}: buckets {body}");
    assert_eq!(info["count"], want.len(), "{what}");
    assert_eq!(info["truncated"], false, "{what}");
    for (bucket, ((start, group), expected)) in got.iter().zip(&want) {
        assert_eq!(
            ms(bucket["start"].as_str().unwrap()),
            *start,
            "{what}: {bucket}"
        );
        match group {
            None => assert!(bucket.get("group").is_none(), "{what}: {bucket}"),
            Some(g) => assert_eq!(bucket["group"].as_str(), g.as_deref(), "{what}: {bucket}"),
        }
        expected.assert_matches(bucket, &format!("{what} at {start} {group:?}"));
    }
    let mut total = Expected::default();
    for r in &in_range {
        total.add(r);
    }
    total.assert_matches(&info["totals"], &format!("{what}: totals"));
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn reports_equal_the_sums_of_the_logs_for_every_grouping_filter_and_interval(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("acme", "gw2").await;
    let records = fixture(1_500, 1);
    assert_eq!(ingest(&app, &records), records.len());
    let all: Vec<&LogRecord> = records.iter().collect();
    let gw: Vec<&LogRecord> = records.iter().filter(|r| r.gateway_id == "gw").collect();
    let none = |_: &LogRecord| None;
    let text = |v: Option<&str>| Some(v.map(str::to_owned));
    let gw_path = "/gateways/gw/analytics";
    let two_days = "start=2027-01-15T00:00:00Z&end=2027-01-17T00:00:00Z";

    // Hours over two days (the default interval of the range), ungrouped, and per each dimension.
    check(&app, gw_path, two_days, &gw, HOUR, none).await;
    check(
        &app,
        gw_path,
        &format!("{two_days}&group_by=provider"),
        &gw,
        HOUR,
        |r| text(Some(&r.provider)),
    )
    .await;
    check(
        &app,
        gw_path,
        &format!("{two_days}&group_by=model"),
        &gw,
        HOUR,
        |r| text(r.model.as_deref()),
    )
    .await;
    check(
        &app,
        gw_path,
        &format!("{two_days}&group_by=key"),
        &gw,
        HOUR,
        |r| text(r.key_id.as_deref()),
    )
    .await;
    check(
        &app,
        gw_path,
        &format!("{two_days}&group_by=user"),
        &gw,
        HOUR,
        |r| text(r.user_id.as_deref()),
    )
    .await;
    check(
        &app,
        gw_path,
        &format!("{two_days}&group_by=team"),
        &gw,
        HOUR,
        |r| text(r.team_id.as_deref()),
    )
    .await;

    // Metadata: only the logs with the key (and a value short enough) are in a group; the totals are all logs.
    let body = report(&app, gw_path, &format!("{two_days}&group_by=metadata.plan")).await;
    let with_plan: Vec<&LogRecord> = gw
        .iter()
        .copied()
        .filter(|r| metadata_value(r, "plan").is_some())
        .collect();
    let want = expected(&with_plan, HOUR, |r| Some(metadata_value(r, "plan")));
    let got = body["result"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{body}");
    for (bucket, ((start, group), e)) in got.iter().zip(&want) {
        assert_eq!(ms(bucket["start"].as_str().unwrap()), *start);
        assert_eq!(bucket["group"].as_str(), group.clone().flatten().as_deref());
        e.assert_matches(bucket, "metadata.plan");
    }
    let plans: std::collections::BTreeSet<&str> =
        got.iter().map(|b| b["group"].as_str().unwrap()).collect();
    assert_eq!(
        plans,
        ["free", "pro"].into(),
        "the too-long value is not a group"
    );
    let mut total = Expected::default();
    gw.iter().for_each(|r| total.add(r));
    total.assert_matches(&body["result_info"]["totals"], "metadata totals");
    // Numbers and booleans are grouped by their JSON text.
    let body = report(
        &app,
        gw_path,
        &format!("{two_days}&group_by=metadata.flag&interval=day"),
    )
    .await;
    assert_eq!(body["result"][0]["group"], "true", "{body}");

    // Days, and the account's report over both gateways.
    check(
        &app,
        gw_path,
        &format!("{two_days}&interval=day&group_by=model"),
        &gw,
        DAY,
        |r| text(r.model.as_deref()),
    )
    .await;
    check(
        &app,
        "/analytics",
        &format!("{two_days}&interval=day"),
        &all,
        DAY,
        none,
    )
    .await;
    check(
        &app,
        "/analytics",
        &format!("{two_days}&group_by=key"),
        &all,
        HOUR,
        |r| text(r.key_id.as_deref()),
    )
    .await;

    // Minutes over two hours, with the range's edges inside a minute (widened to whole minutes).
    check(
        &app,
        gw_path,
        "start=2027-01-15T10:00:30Z&end=2027-01-15T11:59:30Z",
        &gw,
        60_000,
        none,
    )
    .await;
    check(
        &app,
        "/analytics",
        "start=2027-01-15T10:00:00Z&end=2027-01-15T12:00:00Z&interval=minute&group_by=provider",
        &all,
        60_000,
        |r| text(Some(&r.provider)),
    )
    .await;

    // Filters: exact provider, exact model, both; with a grouping by another dimension.
    let openai: Vec<&LogRecord> = gw
        .iter()
        .copied()
        .filter(|r| r.provider == "openai")
        .collect();
    check(
        &app,
        gw_path,
        &format!("{two_days}&provider=openai&group_by=model"),
        &openai,
        HOUR,
        |r| text(r.model.as_deref()),
    )
    .await;
    let gpt4o: Vec<&LogRecord> = all
        .iter()
        .copied()
        .filter(|r| r.model.as_deref() == Some("gpt-4o"))
        .collect();
    check(
        &app,
        "/analytics",
        &format!("{two_days}&model=gpt-4o&group_by=key&interval=day"),
        &gpt4o,
        DAY,
        |r| text(r.key_id.as_deref()),
    )
    .await;
    check(
        &app,
        gw_path,
        &format!("{two_days}&provider=anthropic&model=gpt-4o"),
        &[],
        HOUR,
        none,
    )
    .await;

    // Another account sees nothing of acme's traffic.
    app.create_gateway("other", "gw").await;
    let (status, body) = app
        .get(&app.gw_url("other", &format!("/analytics?{two_days}")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], serde_json::json!([]));
    assert_eq!(body["result_info"]["totals"]["requests"], 0);
    assert_eq!(
        body["result_info"]["totals"]["latency_ms"]["p50"],
        Value::Null
    );
}

async fn a_redelivered_record_counts_once(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("acme", "gw2").await;
    let first = fixture(300, 2);
    let more = fixture(200, 3);
    assert_eq!(ingest(&app, &first), 300);
    // The same records again, then a batch mixing stored records with new ones.
    assert_eq!(ingest(&app, &first), 0);
    // A record twice in one batch is one request too.
    let mixed: Vec<LogRecord> = more[..1]
        .iter()
        .chain(&more[..1])
        .chain(&first[100..250])
        .chain(&more[1..])
        .cloned()
        .collect();
    assert_eq!(ingest(&app, &mixed), 200);
    let all: Vec<&LogRecord> = first.iter().chain(&more).collect();
    let q = "start=2027-01-15T00:00:00Z&end=2027-01-17T00:00:00Z";
    check(&app, "/analytics", q, &all, HOUR, |_| None).await;
    check(
        &app,
        "/analytics",
        &format!("{q}&group_by=key&interval=day"),
        &all,
        DAY,
        |r| Some(r.key_id.clone()),
    )
    .await;
    // Deleting logs does not subtract: analytics are of traffic.
    let (status, body) = app.delete(&app.gw_url("acme", "/gateways/gw/logs")).await;
    assert_eq!(status, 200, "{body}");
    check(&app, "/analytics", q, &all, HOUR, |_| None).await;
}

async fn the_migration_backfills_the_rollups_of_the_stored_logs(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("acme", "gw2").await;
    let records = fixture(800, 4);
    ingest(&app, &records);
    let queries = [
        "/analytics?start=2027-01-15T00:00:00Z&end=2027-01-17T00:00:00Z",
        "/analytics?start=2027-01-15T00:00:00Z&end=2027-01-17T00:00:00Z&interval=day&group_by=provider",
        "/gateways/gw/analytics?start=2027-01-15T00:00:00Z&end=2027-01-16T00:00:00Z&group_by=model",
        "/gateways/gw/analytics?start=2027-01-15T00:00:00Z&end=2027-01-16T00:00:00Z&group_by=key",
        "/analytics?start=2027-01-15T00:00:00Z&end=2027-01-15T23:00:00Z&group_by=user&provider=openai",
        "/analytics?start=2027-01-15T00:00:00Z&end=2027-01-16T00:00:00Z&group_by=team&interval=hour",
        "/analytics?start=2027-01-15T10:00:00Z&end=2027-01-15T13:00:00Z&interval=minute&group_by=model",
    ];
    let mut before = Vec::new();
    for q in queries {
        let (status, body) = app.get(&app.gw_url("acme", q)).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            !body["result"].as_array().unwrap().is_empty(),
            "{q}: {body}"
        );
        before.push(body);
    }
    let postgres = app.db.backend() == "postgresql";
    let (down, up) = if postgres {
        (
            include_str!(
                "../../../migrations/postgres/2026-11-22-000120_analytics_rollups/down.sql"
            ),
            include_str!("../../../migrations/postgres/2026-11-22-000120_analytics_rollups/up.sql"),
        )
    } else {
        (
            include_str!("../../../migrations/sqlite/2026-11-22-000120_analytics_rollups/down.sql"),
            include_str!("../../../migrations/sqlite/2026-11-22-000120_analytics_rollups/up.sql"),
        )
    };
    app.db
        .with_conn(|c| {
            c.batch_execute(down)?;
            c.batch_execute(up)?;
            Ok(())
        })
        .expect("the migration runs again over stored logs");
    for (q, before) in queries.iter().zip(before) {
        let (status, after) = app.get(&app.gw_url("acme", q)).await;
        assert_eq!(status, 200, "{after}");
        assert!(same(&after, &before), "{q}: {after} != {before}");
    }
    // Metadata is not backfilled.
    let body = report(
        &app,
        "/analytics",
        "start=2027-01-15T00:00:00Z&end=2027-01-17T00:00:00Z&group_by=metadata.plan",
    )
    .await;
    assert_eq!(body["result"], serde_json::json!([]));
}

async fn bad_parameters_are_400s_and_other_accounts_gateways_404s(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("other", "theirs").await;
    for (query, names) in [
        ("start=yesterday", "start must be an RFC 3339 time"),
        ("end=2027-03-01", "end must be an RFC 3339 time"),
        (
            "start=2027-03-02T00:00:00Z&end=2027-03-01T00:00:00Z",
            "start must be before end",
        ),
        ("start=2999-01-01T00:00:00Z", "start must be before end"),
        ("interval=week", "interval must be one of"),
        ("group_by=gateway", "group_by must be one of"),
        ("group_by=metadata.", "group_by must be one of"),
        (
            "interval=minute&group_by=metadata.plan",
            "interval: metadata is rolled up by the hour",
        ),
        (
            "start=2027-01-01T00:00:00Z&end=2027-01-02T02:00:00Z&interval=minute",
            "interval: start to end is 1560 minute buckets",
        ),
        (
            "start=2027-01-01T00:00:00Z&end=2027-03-05T00:00:00Z&interval=hour",
            "interval: start to end is",
        ),
    ] {
        for path in ["/analytics", "/gateways/gw/analytics"] {
            let (status, body) = app
                .get(&app.gw_url("acme", &format!("{path}?{query}")))
                .await;
            assert_error(status, &body, 400, 7002);
            let message = body["errors"][0]["message"].as_str().unwrap();
            assert!(message.starts_with(names), "{path}?{query}: {message}");
        }
    }
    for gateway in ["nope", "theirs"] {
        let (status, body) = app
            .get(&app.gw_url("acme", &format!("/gateways/{gateway}/analytics")))
            .await;
        assert_error(status, &body, 404, 7003);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(gateway),
            "{body}"
        );
    }
    // Read scope of the account: another account's token is refused, as is no token.
    let theirs = app.token(&["other"], &[Scope::AiGatewayRead]);
    let url = app.gw_url("acme", "/gateways/gw/analytics");
    let (status, body) = app
        .send(reqwest::Method::GET, &url, Some(&theirs), None)
        .await;
    assert_error(status, &body, 403, 10000);
    let (status, body) = app.send(reqwest::Method::GET, &url, None, None).await;
    assert_error(status, &body, 401, 10000);
    let readers = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let (status, body) = app
        .send(reqwest::Method::GET, &url, Some(&readers), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_info"]["interval"], "hour");
}
