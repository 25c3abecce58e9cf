//! Traffic analytics from pre-aggregated rollups (`analytics_rollups`, migration 000120), never from `logs`.
//!
//! **Writing.** Every log row the store inserts is added to the rollups in the same transaction, by
//! `store::logs::insert_batch` (the one way into `logs`) through [`roll_up`], and only the rows the insert actually
//! added: a record delivered again is already stored, is not inserted, and so is not counted twice. The sums always
//! equal those of the logs as they were stored. Deleting logs (the logs API, a gateway's `log_management` cap)
//! does not subtract: analytics are of traffic, not of the logs kept.
//!
//! **The table.** A row per account, gateway, span (one minute or one hour), dimension, bucket (the span's UTC
//! start), provider, model and dimension value, holding requests, errors (`success = false`), cache hits, tokens in
//! and out, the cost (its sum, and how many logs had one), the duration (sum and maximum) and a latency histogram
//! of [`histogram::BUCKETS`] log-scale buckets. Dimensions: `all` (value `''`), `key`, `user` and `team` (value
//! `''` for none), and `metadata.<key>` (hourly only). Provider and model are part of every row, so any dimension
//! can be filtered by them, and grouping by provider or model reads the `all` rows. Minute rows answer
//! `interval=minute`; hour rows answer `hour` and `day` (a day sums its 24 hours). Rows are never pruned.
//!
//! **Cost** (measured on SQLite, release, 10,000 records with bodies in batches of 500 through
//! `log_ingest::store_records`, on a shared 2-core machine): ~28-30 µs a record without rollups, +3-5 µs with
//! them when a batch's keys each use a model or two, +7 µs when every key of 50 uses all 6 models (about a rollup
//! row per record), +11-16 µs when every record carries a metadata value of its own (a trace id: a new hour row per
//! record). Reports over the rollups of 3,000,000 logs of 30 days (50 keys, 6 models, 3 metadata values): 30 days
//! by day 15 ms (by model 15 ms, by metadata 26 ms, by key 105 ms for 1,550 buckets), by hour and model 71 ms,
//! one day by the hour 1.4 ms, by the minute and provider 46 ms; each through the HTTP API.

mod histogram;
mod rollup;
mod sql;

use std::borrow::Cow;

use diesel::RunQueryDsl;
use gatehouse_shared::log::LogRecord;

/// The latency histogram bucket of a duration (ms), for tests that check a percentile's bucket.
pub use histogram::bucket_of as latency_bucket_of;

use crate::db::AnyConnection;
use crate::error::Error;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The dimension of every row of a gateway (its value is `''`).
const ALL: &str = "all";
/// Metadata dimensions are named `metadata.<key>`, as `group_by` names them.
pub const METADATA_PREFIX: &str = "metadata.";
/// Longer metadata keys and values are not rolled up (a value that long is an id, not a category).
pub const MAX_METADATA_CHARS: usize = 128;

/// The most rows a report returns; past it the report says it was truncated. 1,500 ungrouped buckets fit many times.
pub const ROW_CAP: usize = 10_000;

/// The width of a report's buckets (UTC-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
}

impl Interval {
    pub const ALL: [Interval; 3] = [Interval::Minute, Interval::Hour, Interval::Day];

    pub fn name(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    pub fn ms(self) -> i64 {
        match self {
            Interval::Minute => MINUTE_MS,
            Interval::Hour => HOUR_MS,
            Interval::Day => DAY_MS,
        }
    }

    /// The rollup rows that answer it.
    fn span_ms(self) -> i64 {
        match self {
            Interval::Minute => MINUTE_MS,
            Interval::Hour | Interval::Day => HOUR_MS,
        }
    }
}

/// What a report can be grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Provider,
    Model,
    Key,
    User,
    Team,
    /// A `cf-aig-metadata` key.
    Metadata(String),
}

impl GroupBy {
    /// The name `group_by` uses.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            GroupBy::Provider => "provider".into(),
            GroupBy::Model => "model".into(),
            GroupBy::Key => "key".into(),
            GroupBy::User => "user".into(),
            GroupBy::Team => "team".into(),
            GroupBy::Metadata(key) => format!("{METADATA_PREFIX}{key}").into(),
        }
    }

    /// The rows' dimension.
    fn dimension(&self) -> Cow<'static, str> {
        match self {
            GroupBy::Provider | GroupBy::Model => ALL.into(),
            GroupBy::Key => "key".into(),
            GroupBy::User => "user".into(),
            GroupBy::Team => "team".into(),
            GroupBy::Metadata(_) => self.name(),
        }
    }

    /// The column holding the group's value (SQL text of this module).
    fn column(&self) -> &'static str {
        match self {
            GroupBy::Provider => "provider",
            GroupBy::Model => "model",
            _ => "value",
        }
    }

    /// Whether `''` is a value of its own (metadata) rather than "none" (a log without a model, key, user, team).
    fn empty_is_a_value(&self) -> bool {
        matches!(self, GroupBy::Metadata(_))
    }

    /// Whether the minute rows hold it (metadata is rolled up by the hour only).
    pub fn by_the_minute(&self) -> bool {
        !matches!(self, GroupBy::Metadata(_))
    }
}

/// A report's question.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsQuery {
    /// Inclusive, epoch ms, a multiple of the interval.
    pub start_ms: i64,
    /// Exclusive, epoch ms, a multiple of the interval, after `start_ms`.
    pub end_ms: i64,
    pub interval: Interval,
    pub group_by: Option<GroupBy>,
    /// Exact filters.
    pub provider: Option<String>,
    pub model: Option<String>,
}

/// The sums of a set of logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub requests: i64,
    /// Logs with `success = false`.
    pub errors: i64,
    pub cached: i64,
    /// A log without a count adds 0.
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// USD; a log without a cost adds 0.
    pub cost: f64,
    /// Logs with a cost.
    pub priced: i64,
    /// Milliseconds.
    pub duration_sum: i64,
    pub duration_max: i64,
    /// Durations per latency bucket.
    pub histogram: [i64; histogram::BUCKETS],
}

impl Figures {
    pub fn add(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.cached += other.cached;
        self.tokens_in = self.tokens_in.saturating_add(other.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(other.tokens_out);
        self.cost += other.cost;
        self.priced += other.priced;
        self.duration_sum = self.duration_sum.saturating_add(other.duration_sum);
        self.duration_max = self.duration_max.max(other.duration_max);
        for (sum, n) in self.histogram.iter_mut().zip(other.histogram) {
            *sum += n;
        }
    }

    /// The `q` quantile of the durations (0 < q ≤ 1), interpolated in its histogram bucket; `None` without logs.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        histogram::quantile(&self.histogram, self.duration_max, q)
    }

    /// The mean duration; `None` without logs.
    pub fn latency_mean(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.duration_sum as f64 / self.requests as f64)
    }
}

/// One bucket of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsRow {
    pub start_ms: i64,
    /// The group's value when grouped: `None` for logs without one (no model, key, user or team).
    pub group: Option<String>,
    pub figures: Figures,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyticsReport {
    /// Only buckets and groups with traffic; by bucket, then by group value (byte order, none last).
    pub rows: Vec<AnalyticsRow>,
    /// There were more than [`ROW_CAP`] rows; `rows` holds the first.
    pub truncated: bool,
    /// Over the whole range (and the filters), whatever the grouping.
    pub totals: Figures,
}

/// Adds just-inserted log rows to the rollups; called by `store::logs::insert_batch` inside its transaction, with
/// each record it inserted, once.
pub fn roll_up(conn: &mut AnyConnection, inserted: &[&LogRecord]) -> Result<(), Error> {
    rollup::add(conn, inserted)
}

/// The analytics of `account_id`'s `gateway_ids` that `query` asks for.
pub fn report(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_ids: &[String],
    query: &AnalyticsQuery,
) -> Result<AnalyticsReport, Error> {
    if gateway_ids.is_empty() {
        return Ok(AnalyticsReport::default());
    }
    let cap = i64::try_from(ROW_CAP).unwrap_or(i64::MAX);
    let statement =
        |grouped| sql::ReportStatement::new(account_id, gateway_ids, query, grouped, cap + 1);
    let found: Vec<sql::Sums> = statement(true).load(conn)?;
    let truncated = found.len() > ROW_CAP;
    let empty_is_a_value = query
        .group_by
        .as_ref()
        .is_some_and(GroupBy::empty_is_a_value);
    let mut rows: Vec<AnalyticsRow> = found
        .into_iter()
        .take(ROW_CAP)
        .map(|s| AnalyticsRow {
            start_ms: s.bucket,
            group: (empty_is_a_value || !s.group.is_empty()).then_some(s.group),
            figures: s.figures,
        })
        .collect();
    // SQL orders by bucket for the cap; groups are put in one order here, the same on both backends (byte order,
    // none last), as the collation of the database's text may not be.
    rows.sort_by(|a, b| {
        a.start_ms
            .cmp(&b.start_ms)
            .then_with(|| match (&a.group, &b.group) {
                (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
    });
    // The totals come from the `all` rows, so a grouping that does not cover every log (a metadata key) still
    // totals the whole traffic.
    let totals = statement(false)
        .load::<sql::Sums>(conn)?
        .into_iter()
        .next()
        .map(|s| s.figures)
        .unwrap_or_default();
    Ok(AnalyticsReport {
        rows,
        truncated,
        totals,
    })
}
