//! The statement of a report, a query fragment like `store::usage`'s: every value is a bind parameter; the text
//! pushed as SQL is this module's (column names, the span and the day width).
//!
//! ```sql
//! SELECT <bucket> AS rollup_bucket, <provider | model | value | ''> AS rollup_group,
//!        CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, …, MAX(duration_max), SUM(h00), …, SUM(h29)
//! FROM analytics_rollups
//! WHERE account_id = ? AND gateway_id IN (?, …) AND span_ms = <span> AND dimension = ?
//!   AND bucket >= ? AND bucket < ? [AND provider = ?] [AND model = ?]
//! GROUP BY rollup_bucket[, rollup_group] ORDER BY rollup_bucket LIMIT <cap + 1>
//! ```
//!
//! Each condition up to the bucket range is a prefix of the table's key, so a report reads one key range per
//! gateway: rows of its span, dimension and time, never a log. The totals are the same statement over the `all`
//! rows without GROUP BY.

use std::borrow::Cow;

use diesel::QueryResult;
use diesel::deserialize::{self, QueryableByName};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::row::NamedRow;
use diesel::sql_types::{BigInt, Double, Text, Untyped};

use super::histogram::COLUMNS;
use super::{ALL, AnalyticsQuery, DAY_MS, Figures, Interval};
use crate::db::MultiBackend;

/// One row of the result: a bucket of a group and its sums.
#[derive(Debug)]
pub(super) struct Sums {
    pub bucket: i64,
    /// `''` when ungrouped.
    pub group: String,
    pub figures: Figures,
}

impl QueryableByName<MultiBackend> for Sums {
    fn build<'a>(row: &impl NamedRow<'a, MultiBackend>) -> deserialize::Result<Self> {
        let int = |name: &str| NamedRow::get::<BigInt, i64>(row, name);
        let mut histogram = [0; COLUMNS.len()];
        for (count, column) in histogram.iter_mut().zip(COLUMNS) {
            *count = int(column)?;
        }
        Ok(Sums {
            bucket: int("rollup_bucket")?,
            group: NamedRow::get::<Text, String>(row, "rollup_group")?,
            figures: Figures {
                requests: int("requests")?,
                errors: int("errors")?,
                cached: int("cached")?,
                tokens_in: int("tokens_in")?,
                tokens_out: int("tokens_out")?,
                cost: NamedRow::get::<Double, f64>(row, "cost")?,
                priced: int("priced")?,
                duration_sum: int("duration_sum")?,
                duration_max: int("duration_max")?,
                histogram,
            },
        })
    }
}

/// The counts summed (all but `cost`, a double, and `duration_max`, a maximum).
const SUMMED: [&str; 7] = [
    "requests",
    "errors",
    "cached",
    "tokens_in",
    "tokens_out",
    "priced",
    "duration_sum",
];

#[derive(Debug)]
pub(super) struct ReportStatement<'a> {
    pub account_id: &'a str,
    /// Never empty.
    pub gateway_ids: &'a [String],
    pub query: &'a AnalyticsQuery,
    /// A row per bucket and group (at most `limit`); otherwise one row of totals over the `all` rows.
    pub grouped: bool,
    pub limit: i64,
    /// The rows read: the group's dimension, or `all` (ungrouped, and for the totals).
    pub dimension: Cow<'static, str>,
}

impl<'a> ReportStatement<'a> {
    pub fn new(
        account_id: &'a str,
        gateway_ids: &'a [String],
        query: &'a AnalyticsQuery,
        grouped: bool,
        limit: i64,
    ) -> Self {
        let dimension = match &query.group_by {
            Some(g) if grouped => g.dimension(),
            _ => ALL.into(),
        };
        Self {
            account_id,
            gateway_ids,
            query,
            grouped,
            limit,
            dimension,
        }
    }
}

impl QueryId for ReportStatement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for ReportStatement<'_> {
    type SqlType = Untyped;
}

impl<C> diesel::RunQueryDsl<C> for ReportStatement<'_> {}

impl QueryFragment<MultiBackend> for ReportStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        let q = self.query;
        let group = q.group_by.as_ref().filter(|_| self.grouped);
        out.push_sql("SELECT ");
        match (self.grouped, q.interval) {
            (false, _) => out.push_sql("CAST(0 AS BIGINT)"),
            (true, Interval::Minute | Interval::Hour) => out.push_sql("bucket"),
            // Hour rows summed per UTC day (every multiple of 86,400,000 ms is a midnight).
            (true, Interval::Day) => out.push_sql(&format!("(bucket / {DAY_MS}) * {DAY_MS}")),
        }
        out.push_sql(" AS rollup_bucket, ");
        match group {
            Some(g) => out.push_sql(g.column()),
            None => out.push_sql("CAST('' AS TEXT)"),
        }
        out.push_sql(" AS rollup_group");
        for column in SUMMED.iter().chain(COLUMNS.iter()) {
            out.push_sql(", CAST(COALESCE(SUM(");
            out.push_sql(column);
            out.push_sql("), 0) AS BIGINT) AS ");
            out.push_sql(column);
        }
        out.push_sql(", CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) AS cost");
        out.push_sql(", CAST(COALESCE(MAX(duration_max), 0) AS BIGINT) AS duration_max");
        out.push_sql(" FROM analytics_rollups WHERE account_id = ");
        out.push_bind_param::<Text, _>(self.account_id)?;
        out.push_sql(" AND gateway_id IN (");
        for (i, gateway_id) in self.gateway_ids.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, _>(gateway_id)?;
        }
        out.push_sql(") AND span_ms = ");
        out.push_sql(&q.interval.span_ms().to_string());
        out.push_sql(" AND dimension = ");
        out.push_bind_param::<Text, _>(self.dimension.as_ref())?;
        out.push_sql(" AND bucket >= ");
        out.push_bind_param::<BigInt, _>(&q.start_ms)?;
        out.push_sql(" AND bucket < ");
        out.push_bind_param::<BigInt, _>(&q.end_ms)?;
        if let Some(provider) = &q.provider {
            out.push_sql(" AND provider = ");
            out.push_bind_param::<Text, _>(provider)?;
        }
        if let Some(model) = &q.model {
            out.push_sql(" AND model = ");
            out.push_bind_param::<Text, _>(model)?;
        }
        if self.grouped {
            out.push_sql(" GROUP BY rollup_bucket");
            if group.is_some() {
                out.push_sql(", rollup_group");
            }
            out.push_sql(" ORDER BY rollup_bucket LIMIT ");
            out.push_sql(&self.limit.to_string());
        }
        Ok(())
    }
}
