//! Usage per subject (issue 14): `GET …/ai-gateway/usage` sums an account's stored logs per UTC bucket, grouped by
//! key, user, team, model, provider or gateway, with names, filters, totals, a row cap, validation and isolation.

use gatehouse_shared::log::LogRecord;
use gatehouse_shared::token::Scope;
use serde_json::{Value, json};

use crate::keys::create_key;
use crate::logs::{record, seed};
use crate::on_both_backends;
use crate::support::{TestApp, assert_error};

on_both_backends!(
    daily_and_hourly_buckets_sum_the_logs_of_each_utc_day_and_hour,
    grouping_by_key_user_and_team_names_them_and_groups_combine,
    filters_keep_only_the_exact_gateway_key_user_team_model_and_provider,
    month_buckets_follow_the_calendar_across_month_and_year_ends,
    the_default_range_is_the_last_24_hours_by_day,
    more_rows_than_the_cap_are_cut_and_the_totals_still_cover_the_range,
    logs_of_a_deleted_gateway_still_count,
    bad_parameters_are_400s_naming_the_parameter,
    usage_is_isolated_by_account_and_needs_a_token_for_it,
);

fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// A successful, uncached log of `acme/{gateway}` with no tokens or cost.
fn log(id: &str, at: &str, gateway: &str, provider: &str, model: &str) -> LogRecord {
    LogRecord {
        gateway_id: gateway.into(),
        model: Some(model.into()),
        ..record(id, ms(at), provider)
    }
}

fn subject(r: LogRecord, key: &str, user: &str, team: Option<&str>) -> LogRecord {
    LogRecord {
        key_id: Some(key.into()),
        user_id: Some(user.into()),
        team_id: team.map(str::to_owned),
        ..r
    }
}

fn usage_figures(r: LogRecord, tokens: (Option<u64>, Option<u64>), cost: Option<f64>) -> LogRecord {
    LogRecord {
        tokens_in: tokens.0,
        tokens_out: tokens.1,
        cost,
        ..r
    }
}

/// The account's subjects, made through the API so that they have names.
struct Subjects {
    /// "billing", of alice.
    k1: String,
    /// "ci", of bob.
    k2: String,
    /// In the team.
    alice: String,
    /// In no team.
    bob: String,
    /// "Research".
    team: String,
}

async fn create(app: &TestApp, what: &str, body: Value) -> String {
    let (status, created) = app.post(&app.gw_url("acme", what), &body).await;
    assert_eq!(status, 200, "{created}");
    created["result"]["id"].as_str().unwrap().to_owned()
}

/// Gateways `gw` and `gw2`, the subjects, and seven logs over three days (and some that must not count):
///
/// | id  | at (UTC)            | gateway | provider  | model       | key | status         | cached | in  | out | cost  |
/// |-----|---------------------|---------|-----------|-------------|-----|----------------|--------|-----|-----|-------|
/// | 01A | 01-15 10:05         | gw      | openai    | gpt-4o      | k1  | 200            |        | 10  | 20  | 0.01  |
/// | 01B | 01-15 10:40         | gw      | openai    | gpt-4o      | k1  | 200            | yes    | 10  | 20  | 0     |
/// | 01C | 01-15 11:10         | gw      | anthropic | claude      | k2  | 500, failed    |        | 5   | —   | —     |
/// | 01D | 01-15 23:59:59.999  | gw2     | openai    | gpt-4o-mini | k2  | 200, failed    |        | 7   | 3   | 0.002 |
/// | 01E | 01-16 00:00         | gw      | openai    | gpt-4o      | —   | 200            |        | 100 | 50  | 0.5   |
/// | 01F | 01-16 09:30         | gw2     | anthropic | claude      | k1  | 200            |        | 40  | 60  | 0.25  |
/// | 01G | 01-17 12:00         | gw      | openai    | gpt-4o      | k2  | 404            |        | —   | —   | —     |
async fn fixture(app: &TestApp) -> Subjects {
    app.create_gateway("acme", "gw").await;
    app.create_gateway("acme", "gw2").await;
    let team = create(app, "/teams", json!({"name": "Research"})).await;
    let alice = create(app, "/users", json!({"name": "alice", "team_id": team})).await;
    let bob = create(app, "/users", json!({"name": "bob"})).await;
    let k1 = create_key(app, "acme", &json!({"name": "billing", "user_id": alice})).await;
    let k2 = create_key(app, "acme", &json!({"name": "ci", "user_id": bob})).await;
    let s = Subjects {
        k1: k1["id"].as_str().unwrap().to_owned(),
        k2: k2["id"].as_str().unwrap().to_owned(),
        alice,
        bob,
        team,
    };
    let of_k1 = |r| subject(r, &s.k1, &s.alice, Some(&s.team));
    let of_k2 = |r| subject(r, &s.k2, &s.bob, None);
    let records = vec![
        of_k1(usage_figures(
            log("01A", "2027-01-15T10:05:00Z", "gw", "openai", "gpt-4o"),
            (Some(10), Some(20)),
            Some(0.01),
        )),
        of_k1(LogRecord {
            cached: true,
            ..usage_figures(
                log("01B", "2027-01-15T10:40:00Z", "gw", "openai", "gpt-4o"),
                (Some(10), Some(20)),
                Some(0.0),
            )
        }),
        of_k2(LogRecord {
            status_code: 500,
            success: false,
            ..usage_figures(
                log("01C", "2027-01-15T11:10:00Z", "gw", "anthropic", "claude"),
                (Some(5), None),
                None,
            )
        }),
        of_k2(LogRecord {
            success: false,
            ..usage_figures(
                log(
                    "01D",
                    "2027-01-15T23:59:59.999Z",
                    "gw2",
                    "openai",
                    "gpt-4o-mini",
                ),
                (Some(7), Some(3)),
                Some(0.002),
            )
        }),
        usage_figures(
            log("01E", "2027-01-16T00:00:00Z", "gw", "openai", "gpt-4o"),
            (Some(100), Some(50)),
            Some(0.5),
        ),
        of_k1(usage_figures(
            log("01F", "2027-01-16T09:30:00Z", "gw2", "anthropic", "claude"),
            (Some(40), Some(60)),
            Some(0.25),
        )),
        of_k2(LogRecord {
            status_code: 404,
            ..log("01G", "2027-01-17T12:00:00Z", "gw", "openai", "gpt-4o")
        }),
        // Just outside the range asked for, on both ends.
        log("01H", "2027-01-14T23:59:59.999Z", "gw", "openai", "gpt-4o"),
        log("01I", "2027-01-18T00:00:00Z", "gw", "openai", "gpt-4o"),
        // Another account's log, naming the same key: never counted here.
        LogRecord {
            account_id: "globex".into(),
            ..of_k1(usage_figures(
                log("01J", "2027-01-15T10:10:00Z", "gw", "openai", "gpt-4o"),
                (Some(1000), Some(1000)),
                Some(9.0),
            ))
        },
    ];
    assert_eq!(seed(app, &records), records.len());
    s
}

/// The fixture's three days.
const RANGE: &str = "start=2027-01-15T00:00:00Z&end=2027-01-18T00:00:00Z";

async fn usage(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .get(&app.gw_url("acme", &format!("/usage?{query}")))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["success"], true, "{body}");
    body
}

fn rows(body: &Value) -> &Vec<Value> {
    body["result"].as_array().expect("result array")
}

/// requests, errors, cached, tokens in, tokens out, cost in micro-dollars.
type Figures = (i64, i64, i64, i64, i64, i64);

fn figures(v: &Value) -> Figures {
    let int = |name: &str| {
        v[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} is not an integer: {v}"))
    };
    let cost = v["cost"]
        .as_f64()
        .unwrap_or_else(|| panic!("cost is not a number: {v}"));
    #[allow(clippy::cast_possible_truncation)]
    let micros = (cost * 1e6).round() as i64;
    (
        int("requests"),
        int("errors"),
        int("cached"),
        int("tokens_in"),
        int("tokens_out"),
        micros,
    )
}

fn bucket(v: &Value) -> (&str, &str) {
    (v["start"].as_str().unwrap(), v["end"].as_str().unwrap())
}

const ALL: Figures = (7, 3, 1, 172, 153, 762_000);

async fn daily_and_hourly_buckets_sum_the_logs_of_each_utc_day_and_hour(app: TestApp) {
    fixture(&app).await;
    let body = usage(&app, RANGE).await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (bucket(r), figures(r)))
        .collect();
    assert_eq!(
        got,
        [
            (
                ("2027-01-15T00:00:00.000Z", "2027-01-16T00:00:00.000Z"),
                (4, 2, 1, 32, 43, 12_000)
            ),
            (
                ("2027-01-16T00:00:00.000Z", "2027-01-17T00:00:00.000Z"),
                (2, 0, 0, 140, 110, 750_000)
            ),
            (
                ("2027-01-17T00:00:00.000Z", "2027-01-18T00:00:00.000Z"),
                (1, 1, 0, 0, 0, 0)
            ),
        ]
    );
    for field in [
        "key_id",
        "key_name",
        "user_id",
        "team_id",
        "model",
        "provider",
        "gateway_id",
    ] {
        assert!(
            rows(&body)[0].get(field).is_none(),
            "{field} only with group_by: {body}"
        );
    }
    let info = &body["result_info"];
    assert_eq!(info["start"], "2027-01-15T00:00:00.000Z");
    assert_eq!(info["end"], "2027-01-18T00:00:00.000Z");
    assert_eq!(info["interval"], "day");
    assert_eq!(info["group_by"], json!([]));
    assert_eq!(info["count"], 3);
    assert_eq!(info["max_rows"], 10_000);
    assert_eq!(info["truncated"], false);
    assert_eq!(figures(&info["totals"]), ALL);

    // Hours of the first day: only the hours with logs, the last one ending at midnight.
    let body = usage(
        &app,
        "start=2027-01-15T00:00:00Z&end=2027-01-16T00:00:00Z&interval=hour",
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (bucket(r), figures(r).0))
        .collect();
    assert_eq!(
        got,
        [
            (("2027-01-15T10:00:00.000Z", "2027-01-15T11:00:00.000Z"), 2),
            (("2027-01-15T11:00:00.000Z", "2027-01-15T12:00:00.000Z"), 1),
            (("2027-01-15T23:00:00.000Z", "2027-01-16T00:00:00.000Z"), 1),
        ]
    );
    assert_eq!(body["result_info"]["interval"], "hour");

    // A range off the hour: the first and last buckets are clipped to it, and only logs inside it count.
    let body = usage(
        &app,
        "start=2027-01-15T10:30:00Z&end=2027-01-15T11:30:00Z&interval=hour",
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (bucket(r), figures(r).0))
        .collect();
    assert_eq!(
        got,
        [
            (("2027-01-15T10:30:00.000Z", "2027-01-15T11:00:00.000Z"), 1),
            (("2027-01-15T11:00:00.000Z", "2027-01-15T11:30:00.000Z"), 1),
        ]
    );

    // Days in another offset are still UTC days; `total` is one bucket over the whole range.
    let body = usage(
        &app,
        "start=2027-01-15T12:00:00%2B02:00&end=2027-01-16T12:00:00Z&interval=day",
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (bucket(r), figures(r).0))
        .collect();
    assert_eq!(
        got,
        [
            (("2027-01-15T10:00:00.000Z", "2027-01-16T00:00:00.000Z"), 4),
            (("2027-01-16T00:00:00.000Z", "2027-01-16T12:00:00.000Z"), 2),
        ]
    );
    let body = usage(&app, &format!("{RANGE}&interval=total")).await;
    assert_eq!(rows(&body).len(), 1);
    assert_eq!(
        bucket(&rows(&body)[0]),
        ("2027-01-15T00:00:00.000Z", "2027-01-18T00:00:00.000Z")
    );
    assert_eq!(figures(&rows(&body)[0]), ALL);
}

async fn grouping_by_key_user_and_team_names_them_and_groups_combine(app: TestApp) {
    let s = fixture(&app).await;
    // By key per day: the key's name beside its id, null for requests without a key (last in their bucket).
    let body = usage(&app, &format!("{RANGE}&group_by=key")).await;
    let day = |d: &str| format!("2027-01-{d}T00:00:00.000Z");
    let mut want = vec![
        (day("15"), Some(s.k1.clone()), Some("billing"), 2),
        (day("15"), Some(s.k2.clone()), Some("ci"), 2),
        (day("16"), Some(s.k1.clone()), Some("billing"), 1),
        (day("16"), None, None, 1),
        (day("17"), Some(s.k2.clone()), Some("ci"), 1),
    ];
    want.sort_by(|a, b| (&a.0, a.1.is_none(), &a.1).cmp(&(&b.0, b.1.is_none(), &b.1)));
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| {
            assert!(
                r.get("key_id").is_some() && r.get("key_name").is_some(),
                "{r}"
            );
            assert!(r.get("user_id").is_none(), "{r}");
            (
                r["start"].as_str().unwrap().to_owned(),
                r["key_id"].as_str().map(str::to_owned),
                r["key_name"].as_str(),
                figures(r).0,
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(body["result_info"]["group_by"], json!(["key"]));
    assert_eq!(figures(&body["result_info"]["totals"]), ALL);

    // By user and team over the whole range.
    let body = usage(&app, &format!("{RANGE}&interval=total&group_by=user,team")).await;
    let mut want = vec![
        (
            Some(s.alice.clone()),
            Some("alice"),
            Some(s.team.clone()),
            Some("Research"),
            (3, 0, 1, 60, 100, 260_000),
        ),
        (
            Some(s.bob.clone()),
            Some("bob"),
            None,
            None,
            (3, 3, 0, 12, 3, 2_000),
        ),
        (None, None, None, None, (1, 0, 0, 100, 50, 500_000)),
    ];
    want.sort_by(|a, b| (a.0.is_none(), &a.0).cmp(&(b.0.is_none(), &b.0)));
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| {
            assert!(r.get("key_id").is_none(), "{r}");
            (
                r["user_id"].as_str().map(str::to_owned),
                r["user_name"].as_str(),
                r["team_id"].as_str().map(str::to_owned),
                r["team_name"].as_str(),
                figures(r),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(body["result_info"]["group_by"], json!(["user", "team"]));

    // By model and provider: byte order of the first group, then the second.
    let body = usage(
        &app,
        &format!("{RANGE}&interval=total&group_by=model&group_by=provider,model"),
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| {
            assert!(r.get("key_name").is_none(), "{r}");
            (
                r["model"].as_str().unwrap(),
                r["provider"].as_str().unwrap(),
                figures(r).0,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("claude", "anthropic", 2),
            ("gpt-4o", "openai", 4),
            ("gpt-4o-mini", "openai", 1)
        ]
    );
    assert_eq!(
        body["result_info"]["group_by"],
        json!(["model", "provider"]),
        "a dimension named twice counts once"
    );

    // By gateway per day, and by provider then key (the order of `group_by` orders the rows).
    let body = usage(&app, &format!("{RANGE}&group_by=gateway")).await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| {
            (
                r["start"].as_str().unwrap(),
                r["gateway_id"].as_str().unwrap(),
                figures(r).0,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2027-01-15T00:00:00.000Z", "gw", 3),
            ("2027-01-15T00:00:00.000Z", "gw2", 1),
            ("2027-01-16T00:00:00.000Z", "gw", 1),
            ("2027-01-16T00:00:00.000Z", "gw2", 1),
            ("2027-01-17T00:00:00.000Z", "gw", 1),
        ]
    );
    let body = usage(
        &app,
        &format!("{RANGE}&interval=total&group_by=provider,key"),
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap(),
                r["key_id"].as_str().map(str::to_owned),
                figures(r).0,
            )
        })
        .collect();
    let (lo, hi) = if s.k1 < s.k2 {
        (&s.k1, &s.k2)
    } else {
        (&s.k2, &s.k1)
    };
    assert_eq!(
        got,
        [
            ("anthropic", Some(lo.clone()), 1),
            ("anthropic", Some(hi.clone()), 1),
            ("openai", Some(lo.clone()), 2),
            ("openai", Some(hi.clone()), 2),
            ("openai", None, 1),
        ]
    );
}

async fn filters_keep_only_the_exact_gateway_key_user_team_model_and_provider(app: TestApp) {
    let s = fixture(&app).await;
    for (filter, want) in [
        ("gateway_id=gw2".to_owned(), (2, 1, 0, 47, 63, 252_000)),
        (format!("key_id={}", s.k1), (3, 0, 1, 60, 100, 260_000)),
        (format!("user_id={}", s.bob), (3, 3, 0, 12, 3, 2_000)),
        (format!("team_id={}", s.team), (3, 0, 1, 60, 100, 260_000)),
        ("model=gpt-4o".to_owned(), (4, 1, 1, 120, 90, 510_000)),
        ("model=gpt-4".to_owned(), (0, 0, 0, 0, 0, 0)),
        ("provider=anthropic".to_owned(), (2, 1, 0, 45, 60, 250_000)),
        (
            format!("provider=openai&key_id={}", s.k2),
            (2, 2, 0, 7, 3, 2_000),
        ),
        (
            format!("provider=openai&key_id={}&gateway_id=gw", s.k2),
            (1, 1, 0, 0, 0, 0),
        ),
        ("key_id=unknown".to_owned(), (0, 0, 0, 0, 0, 0)),
        ("gateway_id=nowhere".to_owned(), (0, 0, 0, 0, 0, 0)),
        ("model=&provider=".to_owned(), ALL),
    ] {
        let body = usage(&app, &format!("{RANGE}&interval=total&{filter}")).await;
        assert_eq!(
            figures(&body["result_info"]["totals"]),
            want,
            "{filter}: {body}"
        );
        let rows = rows(&body);
        if want.0 == 0 {
            assert!(rows.is_empty(), "{filter}: {body}");
        } else {
            assert_eq!(rows.len(), 1, "{filter}: {body}");
            assert_eq!(figures(&rows[0]), want, "{filter}");
        }
    }
    // Filters and groups together: the key's requests per model.
    let body = usage(
        &app,
        &format!("{RANGE}&interval=total&key_id={}&group_by=model", s.k1),
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (r["model"].as_str().unwrap(), figures(r).0))
        .collect();
    assert_eq!(got, [("claude", 1), ("gpt-4o", 2)]);
}

async fn month_buckets_follow_the_calendar_across_month_and_year_ends(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let at = [
        ("02A", "2026-12-14T23:59:59.999Z"),
        ("02B", "2026-12-15T00:00:00Z"),
        ("02C", "2026-12-31T23:59:59.999Z"),
        ("02D", "2027-01-01T00:00:00Z"),
        ("02E", "2027-01-31T23:59:59.999Z"),
        ("02F", "2027-02-01T00:00:00Z"),
        ("02G", "2027-02-28T12:00:00Z"),
        ("02H", "2027-03-01T00:00:00Z"),
        ("02I", "2027-03-01T00:00:00.001Z"),
    ];
    let records: Vec<LogRecord> = at
        .iter()
        .map(|(id, t)| {
            let provider = if id.ends_with(['B', 'D', 'F', 'H']) {
                "openai"
            } else {
                "anthropic"
            };
            usage_figures(
                log(id, t, "gw", provider, "m"),
                (Some(1), Some(2)),
                Some(0.5),
            )
        })
        .collect();
    seed(&app, &records);
    let range = "start=2026-12-15T00:00:00Z&end=2027-03-01T00:00:00.001Z";
    let body = usage(&app, &format!("{range}&interval=month")).await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (bucket(r), figures(r)))
        .collect();
    assert_eq!(
        got,
        [
            (
                ("2026-12-15T00:00:00.000Z", "2027-01-01T00:00:00.000Z"),
                (2, 0, 0, 2, 4, 1_000_000)
            ),
            (
                ("2027-01-01T00:00:00.000Z", "2027-02-01T00:00:00.000Z"),
                (2, 0, 0, 2, 4, 1_000_000)
            ),
            (
                ("2027-02-01T00:00:00.000Z", "2027-03-01T00:00:00.000Z"),
                (2, 0, 0, 2, 4, 1_000_000)
            ),
            (
                ("2027-03-01T00:00:00.000Z", "2027-03-01T00:00:00.001Z"),
                (1, 0, 0, 1, 2, 500_000)
            ),
        ]
    );
    assert_eq!(body["result_info"]["interval"], "month");
    assert_eq!(figures(&body["result_info"]["totals"]).0, 7);

    // Grouped by provider, each month holds one row per provider that had logs in it.
    let body = usage(&app, &format!("{range}&interval=month&group_by=provider")).await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| {
            (
                &r["start"].as_str().unwrap()[..7],
                r["provider"].as_str().unwrap(),
                figures(r).0,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2026-12", "anthropic", 1),
            ("2026-12", "openai", 1),
            ("2027-01", "anthropic", 1),
            ("2027-01", "openai", 1),
            ("2027-02", "anthropic", 1),
            ("2027-02", "openai", 1),
            ("2027-03", "openai", 1),
        ]
    );

    // Days across the month's end agree with the months.
    let body = usage(
        &app,
        "start=2027-01-31T00:00:00Z&end=2027-02-02T00:00:00Z&interval=day",
    )
    .await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (r["start"].as_str().unwrap(), figures(r).0))
        .collect();
    assert_eq!(
        got,
        [
            ("2027-01-31T00:00:00.000Z", 1),
            ("2027-02-01T00:00:00.000Z", 1)
        ]
    );
}

async fn the_default_range_is_the_last_24_hours_by_day(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    seed(
        &app,
        &[
            record("03A", now - hour, "openai"),
            record("03B", now - 23 * hour, "openai"),
            record("03C", now - 25 * hour, "openai"),
            record("03D", now + hour, "openai"),
        ],
    );
    let body = usage(&app, "").await;
    let info = &body["result_info"];
    assert_eq!(info["interval"], "day");
    assert_eq!(figures(&info["totals"]).0, 2, "{body}");
    let end = ms(info["end"].as_str().unwrap());
    let start = ms(info["start"].as_str().unwrap());
    assert_eq!(end - start, 24 * hour);
    assert!((end - now).abs() < 60_000, "end is now: {body}");
    let requests: i64 = rows(&body).iter().map(|r| figures(r).0).sum();
    assert_eq!(requests, 2);
    // Buckets are UTC days clipped to the range: each begins at midnight or at the range's start, and ends at
    // midnight or at its end.
    for r in rows(&body) {
        let (start, end) = bucket(r);
        assert!(
            start == info["start"] || start.ends_with("T00:00:00.000Z"),
            "{r}"
        );
        assert!(end == info["end"] || end.ends_with("T00:00:00.000Z"), "{r}");
    }
}

async fn more_rows_than_the_cap_are_cut_and_the_totals_still_cover_the_range(app: TestApp) {
    app.create_gateway("acme", "gw").await;
    let base = ms("2027-01-15T00:00:00Z");
    let records: Vec<LogRecord> = (0..10_001)
        .map(|i| LogRecord {
            model: Some(format!("m{i:05}")),
            tokens_in: Some(1),
            ..record(&format!("04{i:05}"), base + i, "openai")
        })
        .collect();
    assert_eq!(seed(&app, &records), 10_001);
    let range = "start=2027-01-15T00:00:00Z&end=2027-01-16T00:00:00Z";
    let body = usage(&app, &format!("{range}&interval=total&group_by=model")).await;
    let rows = rows(&body);
    assert_eq!(rows.len(), 10_000);
    assert_eq!(rows[0]["model"], "m00000");
    assert_eq!(rows[9_999]["model"], "m09999");
    let info = &body["result_info"];
    assert_eq!(info["truncated"], true);
    assert_eq!(info["count"], 10_000);
    assert_eq!(info["max_rows"], 10_000);
    assert_eq!(
        figures(&info["totals"]),
        (10_001, 0, 0, 10_001, 0, 0),
        "the totals count the rows left out too"
    );
    // The same logs without groups fit.
    let body = usage(&app, &format!("{range}&interval=hour")).await;
    assert_eq!(body["result_info"]["truncated"], false);
    assert_eq!(figures(&body["result_info"]["totals"]).0, 10_001);
}

async fn logs_of_a_deleted_gateway_still_count(app: TestApp) {
    fixture(&app).await;
    let (status, _) = app.delete(&app.gw_url("acme", "/gateways/gw2")).await;
    assert_eq!(status, 200);
    let body = usage(&app, &format!("{RANGE}&interval=total&group_by=gateway")).await;
    let got: Vec<_> = rows(&body)
        .iter()
        .map(|r| (r["gateway_id"].as_str().unwrap(), figures(r).0))
        .collect();
    assert_eq!(got, [("gw", 5), ("gw2", 2)]);
    assert_eq!(figures(&body["result_info"]["totals"]), ALL);
}

async fn bad_parameters_are_400s_naming_the_parameter(app: TestApp) {
    for (query, names) in [
        ("start=yesterday", "start"),
        ("end=2027-01-15", "end"),
        ("start=1800000000000", "start"),
        ("interval=week", "interval"),
        ("interval=HOUR", "interval"),
        ("group_by=key,organisation", "group_by"),
        (
            "start=2027-01-16T00:00:00Z&end=2027-01-15T00:00:00Z",
            "start must be before end",
        ),
        (
            "start=2027-01-15T00:00:00Z&end=2027-01-15T00:00:00Z",
            "start must be before end",
        ),
        (
            "start=2026-01-01T00:00:00Z&end=2027-02-05T00:00:00.001Z",
            "400 days",
        ),
    ] {
        let (status, body) = app
            .get(&app.gw_url("acme", &format!("/usage?{query}")))
            .await;
        assert_error(status, &body, 400, 7002);
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
}

async fn usage_is_isolated_by_account_and_needs_a_token_for_it(app: TestApp) {
    fixture(&app).await;
    // globex sees its own log only, though it names acme's key.
    let (status, body) = app
        .get(&app.gw_url(
            "globex",
            &format!("/usage?{RANGE}&interval=total&group_by=key"),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let rows = rows(&body);
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(figures(&rows[0]), (1, 0, 0, 1000, 1000, 9_000_000));
    assert_eq!(
        rows[0]["key_name"],
        Value::Null,
        "acme's key name is not globex's to see"
    );
    // An account without logs has an empty report.
    let (status, body) = app
        .get(&app.gw_url("initech", &format!("/usage?{RANGE}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], json!([]));
    assert_eq!(figures(&body["result_info"]["totals"]), (0, 0, 0, 0, 0, 0));

    let url = app.gw_url("acme", &format!("/usage?{RANGE}"));
    let (status, body) = app.send(reqwest::Method::GET, &url, None, None).await;
    assert_error(status, &body, 401, 10000);
    let other = app.token(&["globex"], &[Scope::AiGatewayRead]);
    let (status, body) = app
        .send(reqwest::Method::GET, &url, Some(&other), None)
        .await;
    assert_error(status, &body, 403, 10000);
    let run_only = app.token(&["acme"], &[Scope::AiGatewayRun]);
    let (status, body) = app
        .send(reqwest::Method::GET, &url, Some(&run_only), None)
        .await;
    assert_error(status, &body, 403, 10000);
    let reader = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let (status, body) = app
        .send(reqwest::Method::GET, &url, Some(&reader), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(figures(&body["result_info"]["totals"]), ALL);
}
