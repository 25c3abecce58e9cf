//! Usage per subject (issue 14): requests, errors, cache hits, tokens and cost of an account's stored logs, summed
//! per UTC time bucket and per any of key, user, team, model, provider and gateway, in one GROUP BY over `logs`.
//!
//! It is computed from the stored logs, so it counts what was logged: requests of gateways with `collect_logs` off,
//! records a node dropped, and logs deleted (by the logs API or a gateway's `log_management` cap) are not in it.
//! The counters that enforce budgets and spend limits (`gatehouse_bus::limits`) are separate and count every
//! request.
//!
//! A report is bounded: at most [`ROW_CAP`] rows (the first in bucket order), over a range the API caps at 400 days,
//! reading each gateway's time index range only.

mod buckets;
mod sql;

use diesel::RunQueryDsl;

pub use buckets::Interval;

use buckets::Buckets;

use crate::db::AnyConnection;
use crate::error::Error;
use sql::{Shape, UsageStatement};

/// The most rows a report returns; past it the report says it was truncated. [inferred] An hourly report of a
/// 400-day range is 9,600 buckets, so this holds any ungrouped report and a few groups of most; a grouped report
/// that needs more should ask for a shorter range, a longer interval or a filter.
pub const ROW_CAP: usize = 10_000;

/// What a report can be grouped by, each a column of `logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Key,
    User,
    Team,
    Model,
    Provider,
    Gateway,
}

impl Dimension {
    /// Every dimension, in the order of the statement's columns.
    pub const ALL: [Dimension; 6] = [
        Dimension::Key,
        Dimension::User,
        Dimension::Team,
        Dimension::Model,
        Dimension::Provider,
        Dimension::Gateway,
    ];

    /// The name the API uses in `group_by`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Key => "key",
            Dimension::User => "user",
            Dimension::Team => "team",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Gateway => "gateway",
        }
    }

    /// Its column in `logs` (SQL text the statement writes; never user input).
    fn column(self) -> &'static str {
        match self {
            Dimension::Key => "key_id",
            Dimension::User => "user_id",
            Dimension::Team => "team_id",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Gateway => "gateway_id",
        }
    }
}

/// Exact-match filters; `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilters {
    pub gateway_id: Option<String>,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
}

impl UsageFilters {
    /// The filters set, but the gateway's, which chooses the index ranges instead.
    fn exact(&self) -> impl Iterator<Item = (Dimension, &String)> {
        [
            (Dimension::Key, &self.key_id),
            (Dimension::User, &self.user_id),
            (Dimension::Team, &self.team_id),
            (Dimension::Model, &self.model),
            (Dimension::Provider, &self.provider),
        ]
        .into_iter()
        .filter_map(|(d, v)| Some((d, v.as_ref()?)))
    }
}

/// A report's question.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    /// Inclusive, epoch ms.
    pub start_ms: i64,
    /// Exclusive, epoch ms; after `start_ms`.
    pub end_ms: i64,
    pub interval: Interval,
    /// Distinct; rows are ordered by bucket, then by these in this order.
    pub group_by: Vec<Dimension>,
    pub filters: UsageFilters,
}

/// The sums over a set of logs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageFigures {
    pub requests: i64,
    /// Logs with a status of 400 or more, or not successful.
    pub errors: i64,
    /// Logs answered from the cache.
    pub cached: i64,
    /// Input tokens; a log without a count adds 0.
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// USD; a log without a cost adds 0.
    pub cost: f64,
}

impl UsageFigures {
    fn add(&mut self, other: &UsageFigures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.cached += other.cached;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cost += other.cost;
    }
}

/// The values of a row's group: those of the dimensions grouped by (`None` when its logs had none), `None` for
/// the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupValues {
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub gateway_id: Option<String>,
}

impl GroupValues {
    pub fn get(&self, dimension: Dimension) -> Option<&str> {
        match dimension {
            Dimension::Key => self.key_id.as_deref(),
            Dimension::User => self.user_id.as_deref(),
            Dimension::Team => self.team_id.as_deref(),
            Dimension::Model => self.model.as_deref(),
            Dimension::Provider => self.provider.as_deref(),
            Dimension::Gateway => self.gateway_id.as_deref(),
        }
    }
}

/// One bucket of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// The bucket, clipped to the range.
    pub start_ms: i64,
    pub end_ms: i64,
    pub group: GroupValues,
    pub figures: UsageFigures,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageReport {
    /// Only buckets and groups with logs; by bucket, then by the groups' values (in `group_by` order, byte order,
    /// none last).
    pub rows: Vec<UsageRow>,
    /// There were more than [`ROW_CAP`] rows; `rows` holds the first.
    pub truncated: bool,
    /// Over every matching log of the range, truncated or not.
    pub totals: UsageFigures,
}

/// The usage of `account_id`'s logs that `query` selects.
pub fn report(
    conn: &mut AnyConnection,
    account_id: &str,
    query: &UsageQuery,
) -> Result<UsageReport, Error> {
    let gateway_ids = match &query.filters.gateway_id {
        Some(id) => vec![id.clone()],
        None => crate::store::log_counters::gateways_with_logs(conn, account_id)?,
    };
    if gateway_ids.is_empty() {
        return Ok(UsageReport::default());
    }
    let buckets = Buckets::new(query.interval, query.start_ms, query.end_ms);
    let cap = i64::try_from(ROW_CAP).unwrap_or(i64::MAX);
    let statement = |shape| UsageStatement {
        account_id,
        gateway_ids: &gateway_ids,
        start_ms: query.start_ms,
        end_ms: query.end_ms,
        filters: &query.filters,
        shape,
    };
    let found: Vec<sql::Row> = statement(Shape::Grouped {
        buckets: &buckets,
        group_by: &query.group_by,
        limit: cap + 1,
    })
    .load(conn)?;
    let truncated = found.len() > ROW_CAP;
    let mut rows: Vec<(i64, UsageRow)> = found
        .into_iter()
        .take(ROW_CAP)
        .map(|r| {
            let (start_ms, end_ms) = buckets.bounds(r.0);
            let row = UsageRow {
                start_ms,
                end_ms,
                group: GroupValues {
                    key_id: r.1,
                    user_id: r.2,
                    team_id: r.3,
                    model: r.4,
                    provider: r.5,
                    gateway_id: r.6,
                },
                figures: figures(r.7, r.8, r.9, r.10, r.11, r.12),
            };
            (r.0, row)
        })
        .collect();
    // SQL ordered by bucket for the cap; within a bucket its collation may differ between backends (and from
    // PostgreSQL's database to another), so the groups are put in one order here: byte order, none last.
    rows.sort_by(|(a_bucket, a), (b_bucket, b)| {
        a_bucket.cmp(b_bucket).then_with(|| {
            query
                .group_by
                .iter()
                .map(|d| none_last(a.group.get(*d), b.group.get(*d)))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    let rows: Vec<UsageRow> = rows.into_iter().map(|(_, row)| row).collect();
    let totals = if truncated {
        let t: sql::Row = statement(Shape::Totals).get_result(conn)?;
        figures(t.7, t.8, t.9, t.10, t.11, t.12)
    } else {
        let mut totals = UsageFigures::default();
        for row in &rows {
            totals.add(&row.figures);
        }
        totals
    };
    Ok(UsageReport {
        rows,
        truncated,
        totals,
    })
}

fn figures(
    requests: i64,
    errors: i64,
    cached: i64,
    tokens_in: i64,
    tokens_out: i64,
    cost: f64,
) -> UsageFigures {
    UsageFigures {
        requests,
        errors,
        cached,
        tokens_in,
        tokens_out,
        cost,
    }
}

fn none_last(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}
