//! Usage per subject (issue 14, a Gatehouse extension): `GET /accounts/{account_id}/ai-gateway/usage`, the
//! requests, errors, cache hits, tokens and cost of the account's stored logs per UTC bucket, grouped by any of
//! key, user, team, model, provider and gateway, with the names of the keys, users and teams grouped by.
//!
//! Reading the query is here (pure, tested with tables); the sums are one GROUP BY in `store::usage`.

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{ErrorEnvelope, rfc3339};
use super::request::{Caller, query_pairs, query_value};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::store::access::{keys, teams, users};
use crate::store::now_ms;
use crate::store::usage::{
    self as store, Dimension, Interval, ROW_CAP, UsageFigures, UsageFilters, UsageQuery,
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_usage);
}

/// The default range: the last 24 hours.
const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

/// The longest range a report covers.
const MAX_RANGE_DAYS: i64 = 400;
const MAX_RANGE_MS: i64 = MAX_RANGE_DAYS * 24 * 3_600_000;

/// The length of a report's buckets.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageInterval {
    Hour,
    Day,
    /// Calendar months in UTC.
    Month,
    /// One bucket: the whole range.
    Total,
}

/// What a report can be grouped by.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageDimension {
    Key,
    User,
    Team,
    Model,
    Provider,
    Gateway,
}

/// The usage of one bucket of one group. A field of a dimension is present only when the report is grouped by
/// it, and null for logs that had none (requests without a virtual key, say).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRow {
    /// Where the bucket begins (UTC-aligned), or the range's start for the first bucket.
    #[schema(format = "date-time")]
    pub start: String,
    /// Where the bucket ends (exclusive), or the range's end for the last bucket.
    #[schema(format = "date-time")]
    pub end: String,
    /// With `group_by=key`: the virtual key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub key_id: Option<Option<String>>,
    /// With `group_by=key`: the key's name (null when there is no key).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub key_name: Option<Option<String>>,
    /// With `group_by=user`: the key's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub user_id: Option<Option<String>>,
    /// With `group_by=user`: the user's name (null when there is no user, or it was deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub user_name: Option<Option<String>>,
    /// With `group_by=team`: the key's team (or its user's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub team_id: Option<Option<String>>,
    /// With `group_by=team`: the team's name (null when there is no team, or it was deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub team_name: Option<Option<String>>,
    /// With `group_by=model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub model: Option<Option<String>>,
    /// With `group_by=provider`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub provider: Option<Option<String>>,
    /// With `group_by=gateway`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub gateway_id: Option<Option<String>>,
    #[serde(flatten)]
    pub figures: UsageTotals,
}

/// Sums over a set of logs.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotals {
    /// Logged requests (each step of a universal request is one).
    pub requests: i64,
    /// Requests with a status of 400 or more, or not successful.
    pub errors: i64,
    /// Requests answered from the cache.
    pub cached: i64,
    /// Input tokens (a log without a count adds 0).
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
    /// USD (a log without a cost adds 0).
    pub cost: f64,
}

/// The report's range and shape, and its totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResultInfo {
    #[schema(format = "date-time")]
    pub start: String,
    #[schema(format = "date-time")]
    pub end: String,
    pub interval: UsageInterval,
    pub group_by: Vec<UsageDimension>,
    /// Rows in `result`.
    pub count: i64,
    /// The most rows a report returns (10,000).
    pub max_rows: i64,
    /// Whether there were more rows than `max_rows`: `result` then holds the first, in order. Ask for a shorter
    /// range, a longer interval, fewer groups or a filter.
    pub truncated: bool,
    /// Over every matching log of the range, whether or not `result` was truncated.
    pub totals: UsageTotals,
}

/// The usage response.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub result: Vec<UsageRow>,
    pub result_info: UsageResultInfo,
}

impl From<UsageFigures> for UsageTotals {
    fn from(f: UsageFigures) -> Self {
        Self {
            requests: f.requests,
            errors: f.errors,
            cached: f.cached,
            tokens_in: f.tokens_in,
            tokens_out: f.tokens_out,
            cost: f.cost,
        }
    }
}

impl From<Interval> for UsageInterval {
    fn from(i: Interval) -> Self {
        match i {
            Interval::Hour => Self::Hour,
            Interval::Day => Self::Day,
            Interval::Month => Self::Month,
            Interval::Total => Self::Total,
        }
    }
}

impl From<Dimension> for UsageDimension {
    fn from(d: Dimension) -> Self {
        match d {
            Dimension::Key => Self::Key,
            Dimension::User => Self::User,
            Dimension::Team => Self::Team,
            Dimension::Model => Self::Model,
            Dimension::Provider => Self::Provider,
            Dimension::Gateway => Self::Gateway,
        }
    }
}

fn bad(message: String) -> Error {
    Error::BadParameter(message)
}

/// An RFC 3339 time parameter, in epoch ms.
fn time_param(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, Error> {
    match query_value(pairs, name) {
        None | Some("") => Ok(None),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| {
                bad(format!(
                    "{name} must be an RFC 3339 time such as 2027-01-15T00:00:00Z, got '{v}'"
                ))
            }),
    }
}

fn interval_param(pairs: &[(String, String)]) -> Result<Interval, Error> {
    Ok(match query_value(pairs, "interval") {
        None | Some("") | Some("day") => Interval::Day,
        Some("hour") => Interval::Hour,
        Some("month") => Interval::Month,
        Some("total") => Interval::Total,
        Some(other) => {
            return Err(bad(format!(
                "interval must be one of hour, day, month, total; got '{other}'"
            )));
        }
    })
}

/// Every `group_by` value, each a comma-separated list; repeats count once, in the order first named.
fn group_by_param(pairs: &[(String, String)]) -> Result<Vec<Dimension>, Error> {
    let mut out = Vec::new();
    let names = pairs
        .iter()
        .filter(|(k, _)| k == "group_by")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty());
    for name in names {
        let dimension = Dimension::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                bad(format!(
                    "group_by: unknown '{name}' (any of key, user, team, model, provider, gateway, comma-separated)"
                ))
            })?;
        if !out.contains(&dimension) {
            out.push(dimension);
        }
    }
    Ok(out)
}

/// The report's question from the query string; `now_ms` ends the default range.
fn read_query(pairs: &[(String, String)], now_ms: i64) -> Result<UsageQuery, Error> {
    let start = time_param(pairs, "start")?;
    let end = time_param(pairs, "end")?;
    let end_ms = end.unwrap_or(now_ms);
    let start_ms = start.unwrap_or(end_ms.saturating_sub(DEFAULT_RANGE_MS));
    if start_ms >= end_ms {
        return Err(bad(format!(
            "start must be before end (start {}, end {}{})",
            rfc3339(start_ms),
            rfc3339(end_ms),
            if end.is_none() { ": now" } else { "" }
        )));
    }
    if end_ms - start_ms > MAX_RANGE_MS {
        return Err(bad(format!(
            "start and end may be at most {MAX_RANGE_DAYS} days apart"
        )));
    }
    let text = |name: &str| {
        query_value(pairs, name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(UsageQuery {
        start_ms,
        end_ms,
        interval: interval_param(pairs)?,
        group_by: group_by_param(pairs)?,
        filters: UsageFilters {
            gateway_id: text("gateway_id"),
            key_id: text("key_id"),
            user_id: text("user_id"),
            team_id: text("team_id"),
            model: text("model"),
            provider: text("provider"),
        },
    })
}

/// The names of the keys, users and teams a report's rows name, for the dimensions it is grouped by: one query
/// per kind, not one per row.
#[derive(Debug, Default)]
struct Names {
    keys: HashMap<String, String>,
    users: HashMap<String, String>,
    teams: HashMap<String, String>,
}

impl Names {
    fn look_up(
        c: &mut AnyConnection,
        account_id: &str,
        query: &UsageQuery,
        rows: &[store::UsageRow],
    ) -> Result<Self, Error> {
        let ids = |d: Dimension| -> Vec<String> {
            if !query.group_by.contains(&d) {
                return vec![];
            }
            let set: BTreeSet<&str> = rows.iter().filter_map(|r| r.group.get(d)).collect();
            set.into_iter().map(str::to_owned).collect()
        };
        Ok(Self {
            keys: keys::names(c, account_id, &ids(Dimension::Key))?,
            users: users::names(c, account_id, &ids(Dimension::User))?,
            teams: teams::names(c, account_id, &ids(Dimension::Team))?,
        })
    }
}

fn row(query: &UsageQuery, names: &Names, r: store::UsageRow) -> UsageRow {
    let grouped = |d: Dimension| query.group_by.contains(&d);
    let value = |d: Dimension, v: Option<String>| grouped(d).then_some(v);
    let name = |d: Dimension, v: &Option<String>, names: &HashMap<String, String>| {
        grouped(d).then(|| v.as_ref().and_then(|id| names.get(id).cloned()))
    };
    let g = r.group;
    UsageRow {
        start: rfc3339(r.start_ms),
        end: rfc3339(r.end_ms),
        key_name: name(Dimension::Key, &g.key_id, &names.keys),
        user_name: name(Dimension::User, &g.user_id, &names.users),
        team_name: name(Dimension::Team, &g.team_id, &names.teams),
        key_id: value(Dimension::Key, g.key_id),
        user_id: value(Dimension::User, g.user_id),
        team_id: value(Dimension::Team, g.team_id),
        model: value(Dimension::Model, g.model),
        provider: value(Dimension::Provider, g.provider),
        gateway_id: value(Dimension::Gateway, g.gateway_id),
        figures: UsageTotals::from(r.figures),
    }
}

/// Usage and spend of the account over time, per key, user, team, model, provider or gateway (Gatehouse
/// extension).
///
/// Sums the account's **stored logs** per UTC bucket (`interval`: hour, day, calendar month, or `total` for one
/// bucket) from `start` (inclusive) to `end` (exclusive), grouped by the dimensions of `group_by` (none: one row per
/// bucket). Only buckets and groups with logs appear, ordered by bucket, then by each grouped value in `group_by`
/// order (byte order, null last); the first and last buckets are clipped to the range. At most 10,000 rows:
/// `result_info.truncated` says when there were more, and `result_info.totals` always covers the whole range.
///
/// Because it is computed from stored logs, requests of gateways with `collect_logs: false`, log records the
/// gateway could not store, and logs deleted (through the logs API or a gateway's `log_management` cap) are not
/// counted. The spend counters that enforce budgets and spend limits are separate and count every request, so this
/// report can show less than what a budget has charged.
#[utoipa::path(
    tag = "usage", operation_id = "gatehouse-get-usage",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("start" = Option<String>, Query, description = "RFC 3339; default: 24 hours before end"),
        ("end" = Option<String>, Query, description = "RFC 3339, exclusive, after start and at most 400 days after it; default: now"),
        ("interval" = Option<String>, Query, description = "hour, day (default), month or total; buckets aligned in UTC"),
        ("group_by" = Option<String>, Query, description = "Comma-separated, any of key, user, team, model, provider, gateway (default: none)"),
        ("gateway_id" = Option<String>, Query, description = "Only this gateway's logs"),
        ("key_id" = Option<String>, Query, description = "Only this virtual key's logs"),
        ("user_id" = Option<String>, Query, description = "Only the logs of this user's keys"),
        ("team_id" = Option<String>, Query, description = "Only the logs of this team's keys"),
        ("model" = Option<String>, Query, description = "Only this model (exact)"),
        ("provider" = Option<String>, Query, description = "Only this provider (exact)"),
    ),
    responses(
        (status = 200, body = UsageEnvelope, description = "The usage rows and the range's totals"),
        (status = 400, body = ErrorEnvelope, description = "A parameter is invalid; the message names it"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/usage")]
async fn get_usage(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let query = read_query(&query_pairs(&req)?, now_ms())?;
    let asked = query.clone();
    let (report, names) = state
        .db
        .run(move |c| {
            let report = store::report(c, &account_id, &asked)?;
            let names = Names::look_up(c, &account_id, &asked, &report.rows)?;
            Ok((report, names))
        })
        .await?;
    let info = UsageResultInfo {
        start: rfc3339(query.start_ms),
        end: rfc3339(query.end_ms),
        interval: query.interval.into(),
        group_by: query.group_by.iter().map(|d| (*d).into()).collect(),
        count: i64::try_from(report.rows.len()).unwrap_or(i64::MAX),
        max_rows: i64::try_from(ROW_CAP).unwrap_or(i64::MAX),
        truncated: report.truncated,
        totals: report.totals.into(),
    };
    Ok(HttpResponse::Ok().json(UsageEnvelope {
        success: true,
        errors: vec![],
        messages: vec![],
        result: report
            .rows
            .into_iter()
            .map(|r| row(&query, &names, r))
            .collect(),
        result_info: info,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    const NOW: &str = "2027-03-10T12:00:00Z";

    fn read(q: &str) -> Result<UsageQuery, String> {
        read_query(&pairs(q), ms(NOW)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_are_the_last_24_hours_by_day_without_groups() {
        let q = read("").unwrap();
        assert_eq!(
            (q.start_ms, q.end_ms),
            (ms("2027-03-09T12:00:00Z"), ms(NOW))
        );
        assert_eq!(q.interval, Interval::Day);
        assert!(q.group_by.is_empty());
        assert_eq!(q.filters, UsageFilters::default());
        let q = read("end=2027-01-02T00:00:00Z").unwrap();
        assert_eq!(
            q.start_ms,
            ms("2027-01-01T00:00:00Z"),
            "24 hours before end"
        );
    }

    #[test]
    fn parameters_are_read_into_the_query() {
        for (query, check) in [
            (
                "start=2027-03-01T00:00:00%2B01:00&end=2027-03-02T00:00:00Z",
                (|q: &UsageQuery| {
                    assert_eq!(q.start_ms, ms("2027-02-28T23:00:00Z"));
                    assert_eq!(q.end_ms, ms("2027-03-02T00:00:00Z"));
                }) as fn(&UsageQuery),
            ),
            ("interval=hour", |q| assert_eq!(q.interval, Interval::Hour)),
            ("interval=month", |q| {
                assert_eq!(q.interval, Interval::Month)
            }),
            ("interval=total", |q| {
                assert_eq!(q.interval, Interval::Total)
            }),
            ("group_by=model,key", |q| {
                assert_eq!(q.group_by, [Dimension::Model, Dimension::Key])
            }),
            ("group_by=team&group_by=user, team,gateway&group_by=", |q| {
                assert_eq!(
                    q.group_by,
                    [Dimension::Team, Dimension::User, Dimension::Gateway]
                )
            }),
            (
                "gateway_id=gw&key_id=k&user_id=u&team_id=t&model=m&provider=p",
                |q| {
                    assert_eq!(
                        q.filters,
                        UsageFilters {
                            gateway_id: Some("gw".into()),
                            key_id: Some("k".into()),
                            user_id: Some("u".into()),
                            team_id: Some("t".into()),
                            model: Some("m".into()),
                            provider: Some("p".into()),
                        }
                    )
                },
            ),
            ("model=&key_id=", |q| {
                assert_eq!(q.filters, UsageFilters::default())
            }),
        ] {
            check(&read(query).unwrap_or_else(|e| panic!("{query}: {e}")));
        }
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        for (query, names) in [
            ("start=yesterday", "start must be an RFC 3339 time"),
            ("end=2027-03-01", "end must be an RFC 3339 time"),
            ("start=1700000000000", "start must be an RFC 3339 time"),
            ("interval=week", "interval must be one of"),
            ("group_by=key,org", "group_by: unknown 'org'"),
            (
                "start=2027-03-02T00:00:00Z&end=2027-03-01T00:00:00Z",
                "start must be before end",
            ),
            (
                "start=2027-03-01T00:00:00Z&end=2027-03-01T00:00:00Z",
                "start must be before end",
            ),
            ("start=2027-03-11T00:00:00Z", "start must be before end"),
            (
                "start=2026-01-01T00:00:00Z&end=2027-02-05T00:00:01Z",
                "start and end may be at most 400 days apart",
            ),
        ] {
            let e = read(query).expect_err(query);
            assert!(e.starts_with(names), "{query}: {e}");
        }
        assert!(
            read("start=2026-01-01T00:00:00Z&end=2027-02-05T00:00:00Z").is_ok(),
            "exactly 400 days"
        );
    }
}
