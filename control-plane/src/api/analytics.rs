//! Traffic analytics (a Gatehouse extension): `GET /accounts/{account_id}/ai-gateway/analytics` and
//! `GET /accounts/{account_id}/ai-gateway/gateways/{gateway_id}/analytics`, requests, errors, cache hits, tokens,
//! cost and latency percentiles per UTC minute, hour or day, optionally grouped by provider, model, key, user, team
//! or a metadata key, read from the rollups of `store::analytics` (never from the logs).
//!
//! Reading the query is here (pure, tested with tables); the sums are one statement in `store::analytics`.

use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{ErrorEnvelope, rfc3339};
use super::request::{Caller, query_pairs, query_value};
use crate::error::Error;
use crate::store::analytics::{
    self as store, AnalyticsQuery, Figures, GroupBy, HOUR_MS, Interval, MAX_METADATA_CHARS,
    METADATA_PREFIX, ROW_CAP,
};
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_account_analytics)
        .service(get_gateway_analytics);
}

/// The default range: the last 24 hours.
const DEFAULT_RANGE_MS: i64 = 24 * HOUR_MS;

/// The most buckets a report may span.
pub const MAX_BUCKETS: i64 = 1_500;

/// Without `interval`: minutes up to this range, then hours up to [`HOURLY_UP_TO_MS`], then days.
const MINUTES_UP_TO_MS: i64 = 3 * HOUR_MS;
const HOURLY_UP_TO_MS: i64 = 7 * 24 * HOUR_MS;

/// The width of a report's buckets.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalyticsInterval {
    Minute,
    Hour,
    Day,
}

impl From<Interval> for AnalyticsInterval {
    fn from(i: Interval) -> Self {
        match i {
            Interval::Minute => Self::Minute,
            Interval::Hour => Self::Hour,
            Interval::Day => Self::Day,
        }
    }
}

/// Latency in milliseconds (time to the last byte of the response), to 0.1 ms. Percentiles are interpolated in
/// a fixed log-scale histogram (30 buckets from 1 ms to 600 s, each about 1.6 times the previous), so they are
/// estimates within the bucket of the exact value; `avg` is exact.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsLatency {
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// The figures of a set of requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsFigures {
    /// Logged requests (each step of a universal request is one).
    pub requests: i64,
    /// Requests that did not succeed (`success: false` in their log).
    pub errors: i64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
    /// Requests answered from the cache.
    pub cached: i64,
    /// `cached / requests` (0 without requests).
    pub cache_hit_rate: f64,
    /// Input tokens (a request without a count adds 0).
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
    /// USD (a request without a known cost adds 0).
    pub cost: f64,
    /// Requests whose cost was known.
    pub priced_requests: i64,
    pub latency_ms: AnalyticsLatency,
}

/// One bucket (of one group, when grouped).
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsBucket {
    /// Where the bucket begins (UTC-aligned to the interval).
    #[schema(format = "date-time")]
    pub start: String,
    /// With `group_by`: the group's value; null for requests without one (no model, virtual key, user or team).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub group: Option<Option<String>>,
    #[serde(flatten)]
    pub figures: AnalyticsFigures,
}

/// The report's range and shape, and its totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsResultInfo {
    /// The range, widened to whole intervals (start rounded down, end up).
    #[schema(format = "date-time")]
    pub start: String,
    #[schema(format = "date-time")]
    pub end: String,
    pub interval: AnalyticsInterval,
    pub group_by: Option<String>,
    /// Buckets in `result`.
    pub count: i64,
    /// The most buckets a report returns (10,000 when grouped; ungrouped reports always fit).
    pub max_rows: i64,
    /// Whether `result` was cut at `max_rows` (the first in order are kept). Ask for a shorter range, a longer
    /// interval or a filter.
    pub truncated: bool,
    /// Over the whole range and the filters, whatever `group_by` and `truncated`.
    pub totals: AnalyticsFigures,
}

/// The analytics response.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub result: Vec<AnalyticsBucket>,
    pub result_info: AnalyticsResultInfo,
}

fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl From<&Figures> for AnalyticsFigures {
    fn from(f: &Figures) -> Self {
        let rate = |n: i64| {
            if f.requests > 0 {
                n as f64 / f.requests as f64
            } else {
                0.0
            }
        };
        Self {
            requests: f.requests,
            errors: f.errors,
            error_rate: rate(f.errors),
            cached: f.cached,
            cache_hit_rate: rate(f.cached),
            tokens_in: f.tokens_in,
            tokens_out: f.tokens_out,
            cost: f.cost,
            priced_requests: f.priced,
            latency_ms: AnalyticsLatency {
                avg: f.latency_mean().map(tenth),
                p50: f.latency_quantile(0.50).map(tenth),
                p95: f.latency_quantile(0.95).map(tenth),
                p99: f.latency_quantile(0.99).map(tenth),
            },
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

fn group_by_param(pairs: &[(String, String)]) -> Result<Option<GroupBy>, Error> {
    let name = match query_value(pairs, "group_by") {
        None | Some("") => return Ok(None),
        Some(name) => name,
    };
    Ok(Some(match name {
        "provider" => GroupBy::Provider,
        "model" => GroupBy::Model,
        "key" => GroupBy::Key,
        "user" => GroupBy::User,
        "team" => GroupBy::Team,
        _ => match name.strip_prefix(METADATA_PREFIX) {
            Some(key) if !key.is_empty() && key.chars().count() <= MAX_METADATA_CHARS => {
                GroupBy::Metadata(key.to_owned())
            }
            _ => {
                return Err(bad(format!(
                    "group_by must be one of provider, model, key, user, team or metadata.<key> (a key of at most \
                     {MAX_METADATA_CHARS} characters); got '{name}'"
                )));
            }
        },
    }))
}

/// The report's question from the query string; `now_ms` ends the default range.
fn read_query(pairs: &[(String, String)], now_ms: i64) -> Result<AnalyticsQuery, Error> {
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
    let group_by = group_by_param(pairs)?;
    let by_the_minute = group_by.as_ref().is_none_or(GroupBy::by_the_minute);
    let range = end_ms - start_ms;
    let interval = match query_value(pairs, "interval") {
        None | Some("") if range <= MINUTES_UP_TO_MS && by_the_minute => Interval::Minute,
        None | Some("") if range <= HOURLY_UP_TO_MS => Interval::Hour,
        None | Some("") => Interval::Day,
        Some(name) => Interval::ALL
            .into_iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| {
                bad(format!(
                    "interval must be one of minute, hour, day; got '{name}'"
                ))
            })?,
    };
    if interval == Interval::Minute && !by_the_minute {
        return Err(bad(
            "interval: metadata is rolled up by the hour; group_by metadata.<key> needs interval hour or day"
                .into(),
        ));
    }
    let width = interval.ms();
    let start_ms = start_ms.div_euclid(width) * width;
    let end_ms = end_ms.saturating_add(width - 1).div_euclid(width) * width;
    let buckets = (end_ms - start_ms) / width;
    if buckets > MAX_BUCKETS {
        return Err(bad(format!(
            "interval: start to end is {buckets} {} buckets, more than {MAX_BUCKETS}; choose a longer interval \
             or a shorter range",
            interval.name()
        )));
    }
    let text = |name: &str| {
        query_value(pairs, name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(AnalyticsQuery {
        start_ms,
        end_ms,
        interval,
        group_by,
        provider: text("provider"),
        model: text("model"),
    })
}

/// Answers a report over `gateway_ids` (`None`: every gateway of the account with logs).
async fn respond(
    state: State,
    account_id: String,
    gateway_id: Option<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let query = read_query(&query_pairs(&req)?, now_ms())?;
    let asked = query.clone();
    let report = state
        .db
        .run(move |c| {
            let gateway_ids = match gateway_id {
                Some(id) => {
                    if crate::store::gateways::get(c, &account_id, &id)?.is_none() {
                        return Err(Error::NotFound(format!("gateway '{id}' not found")));
                    }
                    vec![id]
                }
                None => crate::store::log_counters::gateways_with_logs(c, &account_id)?,
            };
            store::report(c, &account_id, &gateway_ids, &asked)
        })
        .await?;
    let grouped = query.group_by.is_some();
    let info = AnalyticsResultInfo {
        start: rfc3339(query.start_ms),
        end: rfc3339(query.end_ms),
        interval: query.interval.into(),
        group_by: query.group_by.as_ref().map(|g| g.name().into_owned()),
        count: i64::try_from(report.rows.len()).unwrap_or(i64::MAX),
        max_rows: i64::try_from(ROW_CAP).unwrap_or(i64::MAX),
        truncated: report.truncated,
        totals: AnalyticsFigures::from(&report.totals),
    };
    Ok(HttpResponse::Ok().json(AnalyticsEnvelope {
        success: true,
        errors: vec![],
        messages: vec![],
        result: report
            .rows
            .iter()
            .map(|r| AnalyticsBucket {
                start: rfc3339(r.start_ms),
                group: grouped.then(|| r.group.clone()),
                figures: AnalyticsFigures::from(&r.figures),
            })
            .collect(),
        result_info: info,
    }))
}

/// Traffic analytics of the account's gateways (Gatehouse extension).
///
/// Requests, errors, cache hits, tokens, cost and latency (mean and p50/p95/p99) per UTC `interval` from `start`
/// (inclusive, rounded down to the interval) to `end` (exclusive, rounded up), optionally per `group_by` value
/// and filtered by exact `provider` and `model`. Only buckets with traffic appear, ordered by bucket, then by
/// group value (byte order, null last); `result_info.totals` covers the whole range.
///
/// Read from rollups kept as logs are stored, never from the logs themselves, so a report costs the same over a
/// million logs as over ten. They count **traffic as logged**: logs deleted later (through the logs API or a
/// gateway's `log_management` cap) still count; requests of gateways with `collect_logs: false` and records the
/// gateway could not store do not. Metadata is rolled up by the hour (not by the minute), from the logs stored since
/// this feature arrived, and only values of at most 128 characters.
#[utoipa::path(
    tag = "analytics", operation_id = "gatehouse-get-account-analytics",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("start" = Option<String>, Query, description = "RFC 3339; default: 24 hours before end. Rounded down to the interval"),
        ("end" = Option<String>, Query, description = "RFC 3339, exclusive, after start; default: now. Rounded up to the interval"),
        ("interval" = Option<String>, Query, description = "minute, hour or day (default: minute up to 3 hours, hour up to 7 days, else day); at most 1,500 buckets"),
        ("group_by" = Option<String>, Query, description = "provider, model, key, user, team or metadata.<key> (hour and day intervals only)"),
        ("provider" = Option<String>, Query, description = "Only this provider (exact)"),
        ("model" = Option<String>, Query, description = "Only this model (exact)"),
    ),
    responses(
        (status = 200, body = AnalyticsEnvelope, description = "The buckets and the range's totals"),
        (status = 400, body = ErrorEnvelope, description = "A parameter is invalid; the message names it"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/analytics")]
async fn get_account_analytics(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    respond(state, account_id, None, req).await
}

/// Traffic analytics of one gateway (Gatehouse extension).
///
/// As the account's report (`GET …/ai-gateway/analytics`), over this gateway's traffic only.
#[utoipa::path(
    tag = "analytics", operation_id = "gatehouse-get-gateway-analytics",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("start" = Option<String>, Query, description = "RFC 3339; default: 24 hours before end. Rounded down to the interval"),
        ("end" = Option<String>, Query, description = "RFC 3339, exclusive, after start; default: now. Rounded up to the interval"),
        ("interval" = Option<String>, Query, description = "minute, hour or day (default: minute up to 3 hours, hour up to 7 days, else day); at most 1,500 buckets"),
        ("group_by" = Option<String>, Query, description = "provider, model, key, user, team or metadata.<key> (hour and day intervals only)"),
        ("provider" = Option<String>, Query, description = "Only this provider (exact)"),
        ("model" = Option<String>, Query, description = "Only this model (exact)"),
    ),
    responses(
        (status = 200, body = AnalyticsEnvelope, description = "The buckets and the range's totals"),
        (status = 400, body = ErrorEnvelope, description = "A parameter is invalid; the message names it"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope, description = "No such gateway in the account"),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/analytics")]
async fn get_gateway_analytics(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    respond(state, account_id, Some(gateway_id), req).await
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

    const NOW: &str = "2027-03-10T12:34:56Z";

    fn read(q: &str) -> Result<AnalyticsQuery, String> {
        read_query(&pairs(q), ms(NOW)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_are_the_last_24_hours_by_the_hour_widened_to_whole_hours() {
        let q = read("").unwrap();
        assert_eq!(
            (q.start_ms, q.end_ms),
            (ms("2027-03-09T12:00:00Z"), ms("2027-03-10T13:00:00Z"))
        );
        assert_eq!(q.interval, Interval::Hour);
        assert_eq!((q.group_by, q.provider, q.model), (None, None, None));
    }

    #[test]
    fn the_default_interval_follows_the_range() {
        for (query, want) in [
            (
                "start=2027-03-10T10:00:00Z&end=2027-03-10T13:00:00Z",
                Interval::Minute,
            ),
            (
                "start=2027-03-10T10:00:00Z&end=2027-03-10T13:00:01Z",
                Interval::Hour,
            ),
            (
                "start=2027-03-10T10:00:00Z&end=2027-03-10T11:00:00Z&group_by=metadata.team",
                Interval::Hour,
            ),
            (
                "start=2027-03-01T00:00:00Z&end=2027-03-08T00:00:00Z",
                Interval::Hour,
            ),
            (
                "start=2027-03-01T00:00:00Z&end=2027-03-08T00:00:01Z",
                Interval::Day,
            ),
        ] {
            assert_eq!(read(query).unwrap().interval, want, "{query}");
        }
    }

    #[test]
    fn parameters_are_read_and_the_range_widened_to_whole_intervals() {
        let q = read(
            "start=2027-03-01T10:20:30%2B01:00&end=2027-03-02T00:00:00.001Z&interval=hour&group_by=model\
             &provider=openai&model=gpt-4o",
        )
        .unwrap();
        assert_eq!(q.start_ms, ms("2027-03-01T09:00:00Z"));
        assert_eq!(q.end_ms, ms("2027-03-02T01:00:00Z"));
        assert_eq!(q.group_by, Some(GroupBy::Model));
        assert_eq!(q.provider.as_deref(), Some("openai"));
        assert_eq!(q.model.as_deref(), Some("gpt-4o"));
        let q = read("start=2027-03-01T10:20:30Z&end=2027-03-03T10:00:00Z&interval=day").unwrap();
        assert_eq!(
            (q.start_ms, q.end_ms),
            (ms("2027-03-01T00:00:00Z"), ms("2027-03-04T00:00:00Z"))
        );
        for (name, want) in [
            ("provider", GroupBy::Provider),
            ("key", GroupBy::Key),
            ("user", GroupBy::User),
            ("team", GroupBy::Team),
            ("metadata.plan", GroupBy::Metadata("plan".into())),
            ("metadata.a.b", GroupBy::Metadata("a.b".into())),
        ] {
            assert_eq!(
                read(&format!("group_by={name}")).unwrap().group_by,
                Some(want.clone())
            );
            assert_eq!(want.name(), name);
        }
        // 1,500 buckets exactly.
        assert!(
            read("start=2027-03-01T00:00:00Z&end=2027-03-02T01:00:00Z&interval=minute").is_ok()
        );
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        let long = format!("group_by=metadata.{}", "k".repeat(MAX_METADATA_CHARS + 1));
        for (query, names) in [
            ("start=yesterday", "start must be an RFC 3339 time"),
            ("end=2027-03-01", "end must be an RFC 3339 time"),
            (
                "start=2027-03-02T00:00:00Z&end=2027-03-01T00:00:00Z",
                "start must be before end",
            ),
            (
                "start=2027-03-01T00:00:00Z&end=2027-03-01T00:00:00Z",
                "start must be before end",
            ),
            ("start=2027-03-11T00:00:00Z", "start must be before end"),
            ("interval=week", "interval must be one of"),
            ("interval=Hour", "interval must be one of"),
            ("group_by=gateway", "group_by must be one of"),
            ("group_by=model,key", "group_by must be one of"),
            ("group_by=metadata.", "group_by must be one of"),
            (long.as_str(), "group_by must be one of"),
            (
                "interval=minute&group_by=metadata.team",
                "interval: metadata is rolled up by the hour",
            ),
            (
                "start=2027-03-01T00:00:00Z&end=2027-03-02T01:00:01Z&interval=minute",
                "interval: start to end is 1501 minute buckets",
            ),
            (
                "start=2027-01-01T00:00:00Z&end=2027-03-05T00:00:00Z&interval=hour",
                "interval: start to end is 1512 hour buckets",
            ),
            (
                "start=2020-01-01T00:00:00Z&end=2027-03-05T00:00:00Z",
                "interval: start to end is",
            ),
        ] {
            let e = read(query).expect_err(query);
            assert!(e.starts_with(names), "{query}: {e}");
        }
    }
}
