//! The one SQL statement of a usage report, written as a query fragment: diesel's DSL has no GROUP BY over a
//! computed bucket and a varying set of columns. Every value reaches SQL as a bind parameter; the text pushed as
//! SQL is this module's own (column names from [`Dimension::column`], bucket numbers).
//!
//! ```sql
//! SELECT <bucket> AS usage_bucket, key_id | CAST(NULL AS TEXT), … (the six dimensions, always in that order),
//!        COUNT(*), <errors>, <cached>, <tokens in>, <tokens out>, <cost>
//! FROM logs
//! WHERE account_id = ? AND gateway_id IN (?, …) AND created_at >= ? AND created_at < ? [AND key_id = ? …]
//! GROUP BY usage_bucket, <grouped columns>
//! ORDER BY usage_bucket, <each grouped column> IS NULL, <column>, …
//! LIMIT <cap + 1>
//! ```
//!
//! The output name `usage_bucket` is what GROUP BY and ORDER BY name: on PostgreSQL, repeating the bucket
//! expression would not do, as its bind parameters get other numbers there and the two would not be the same
//! expression. Sums are cast, since PostgreSQL's `SUM(bigint)` is `numeric`.

use diesel::QueryResult;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::buckets::{BucketNumber, Buckets};
use super::{Dimension, UsageFilters};
use crate::db::MultiBackend;

/// The columns of one result row: the bucket number, the six dimensions, then the figures.
pub(super) type RowType = (
    BigInt,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    BigInt,
    BigInt,
    BigInt,
    BigInt,
    BigInt,
    Double,
);

/// A result row as Rust reads it.
pub(super) type Row = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    f64,
);

/// What the statement computes.
#[derive(Debug)]
pub(super) enum Shape<'a> {
    /// A row per bucket and group, at most `limit`.
    Grouped {
        buckets: &'a Buckets,
        group_by: &'a [Dimension],
        limit: i64,
    },
    /// One row: the figures of every matching log (bucket 0, no dimension).
    Totals,
}

/// The statement over the logs of `account_id` in `gateway_ids` from `start_ms` (inclusive) to `end_ms`
/// (exclusive) that match `filters`.
#[derive(Debug)]
pub(super) struct UsageStatement<'a> {
    pub account_id: &'a str,
    /// Never empty: the caller answers an empty report without asking.
    pub gateway_ids: &'a [String],
    pub start_ms: i64,
    pub end_ms: i64,
    pub filters: &'a UsageFilters,
    pub shape: Shape<'a>,
}

impl QueryId for UsageStatement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for UsageStatement<'_> {
    type SqlType = RowType;
}

impl<C> diesel::RunQueryDsl<C> for UsageStatement<'_> {}

/// `COUNT(*)` and the sums, in [`RowType`]'s order. A log is an error when its status is 400 or more or it did
/// not succeed (a provider answering 200 with a failure the gateway recognised).
const FIGURES: &str = "COUNT(*), \
     CAST(COALESCE(SUM(CASE WHEN status_code >= 400 OR NOT success THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN cached THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT), \
     CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION)";

impl QueryFragment<MultiBackend> for UsageStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        let grouped: &[Dimension] = match &self.shape {
            Shape::Grouped {
                buckets, group_by, ..
            } => {
                push_bucket(&mut out, buckets)?;
                group_by
            }
            Shape::Totals => {
                out.push_sql("CAST(0 AS BIGINT)");
                &[]
            }
        };
        out.push_sql(" AS usage_bucket");
        for dimension in Dimension::ALL {
            out.push_sql(", ");
            if grouped.contains(&dimension) {
                out.push_sql(dimension.column());
            } else {
                out.push_sql("CAST(NULL AS TEXT)");
            }
        }
        out.push_sql(", ");
        out.push_sql(FIGURES);
        out.push_sql(" FROM logs WHERE account_id = ");
        out.push_bind_param::<Text, _>(self.account_id)?;
        // With every gateway named, each one's `(account_id, gateway_id, created_at …)` index range is read, not
        // every index entry of the account.
        out.push_sql(" AND gateway_id IN (");
        for (i, gateway_id) in self.gateway_ids.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, _>(gateway_id)?;
        }
        out.push_sql(") AND created_at >= ");
        out.push_bind_param::<BigInt, _>(&self.start_ms)?;
        out.push_sql(" AND created_at < ");
        out.push_bind_param::<BigInt, _>(&self.end_ms)?;
        for (dimension, value) in self.filters.exact() {
            out.push_sql(" AND ");
            out.push_sql(dimension.column());
            out.push_sql(" = ");
            out.push_bind_param::<Text, _>(value)?;
        }
        if let Shape::Grouped {
            group_by, limit, ..
        } = &self.shape
        {
            out.push_sql(" GROUP BY usage_bucket");
            for dimension in *group_by {
                out.push_sql(", ");
                out.push_sql(dimension.column());
            }
            // NULLs last on both backends (PostgreSQL sorts them last by default, SQLite first).
            out.push_sql(" ORDER BY usage_bucket");
            for dimension in *group_by {
                out.push_sql(", ");
                out.push_sql(dimension.column());
                out.push_sql(" IS NULL, ");
                out.push_sql(dimension.column());
            }
            out.push_sql(" LIMIT ");
            out.push_sql(&limit.to_string());
        }
        Ok(())
    }
}

/// The bucket number of a log (see [`BucketNumber`]).
fn push_bucket<'b>(
    out: &mut AstPass<'_, 'b, MultiBackend>,
    buckets: &'b Buckets,
) -> QueryResult<()> {
    match &buckets.number {
        BucketNumber::Width {
            origin_ms,
            width_ms,
        } => {
            out.push_sql("((created_at - ");
            out.push_bind_param::<BigInt, _>(origin_ms)?;
            out.push_sql(") / ");
            out.push_bind_param::<BigInt, _>(width_ms)?;
            out.push_sql(")");
        }
        BucketNumber::Starts(starts) if starts.is_empty() => out.push_sql("CAST(0 AS BIGINT)"),
        BucketNumber::Starts(starts) => {
            out.push_sql("CAST(CASE");
            for (i, start) in starts.iter().enumerate() {
                out.push_sql(" WHEN created_at < ");
                out.push_bind_param::<BigInt, _>(start)?;
                out.push_sql(&format!(" THEN {i}"));
            }
            out.push_sql(&format!(" ELSE {} END AS BIGINT)", starts.len()));
        }
    }
    Ok(())
}
