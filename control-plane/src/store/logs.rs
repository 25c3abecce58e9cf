//! Request logs (spec §1.5): the searchable row in `logs`, heads and bodies in `log_bodies`.
//!
//! Every read and change takes the account and gateway id and filters on both. Writes arrive in batches from the
//! log pipeline, which may redeliver a batch after a crash; the insert ignores ids it already holds.

mod insert;
mod query;

use diesel::prelude::*;

pub use insert::insert_batch;
pub use query::{FilterKey, FilterValue, LogFilter, LogQuery, Op, OrderBy, SEARCH_DOCUMENT};

use crate::db::{AnyConnection, MultiBackend};
use crate::error::Error;
use crate::schema::{log_bodies, logs};

/// A `logs` row, in column order.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = logs)]
pub struct LogRow {
    pub id: String,
    pub account_id: String,
    pub gateway_id: String,
    pub created_at: i64,
    pub provider: String,
    pub model: Option<String>,
    pub model_type: Option<String>,
    pub path: String,
    pub request_type: Option<String>,
    pub request_content_type: Option<String>,
    pub response_content_type: Option<String>,
    pub status_code: i32,
    pub success: bool,
    pub cached: bool,
    pub duration: i64,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    pub total_tokens: i64,
    pub cached_tokens_in: Option<i64>,
    pub cost: Option<f64>,
    pub custom_cost: bool,
    pub metadata: Option<String>,
    pub event_id: String,
    pub step: i32,
    pub user_agent: Option<String>,
    pub authenticated: bool,
    pub request_size: i64,
    pub response_size: i64,
    pub bodies_stored: bool,
    pub feedback: Option<f64>,
    pub score: Option<f64>,
    pub config_hash: Option<String>,
    /// The virtual key that authenticated the request, and its user and team (ids).
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// The dynamic route that chose the model: its id, the version's, the elements walked.
    pub route_id: Option<String>,
    pub route_version_id: Option<String>,
    pub route_path: Option<String>,
}

/// A `log_bodies` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = log_bodies)]
pub struct LogBodyRow {
    pub id: String,
    pub request_head: String,
    pub request_head_complete: bool,
    pub response_head: String,
    pub response_head_complete: bool,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

/// One page of logs and the total across pages.
#[derive(Debug)]
pub struct LogPage {
    pub items: Vec<LogRow>,
    pub total_count: i64,
}

/// A filtered list counts its matches up to this many (or up to the end of the page asked for, if further): past
/// it `total_count` says this number, not the exact one. [inferred] An exact count of a filter matching millions of
/// rows visits them all (at 1M rows: ~110 ms for one model, ~570 ms for a search) on every page turn; 10,000 is 200
/// pages of 50, more than anyone pages through, and counting that many stays a few milliseconds at any table size.
/// Cloudflare's SDKs page on until a page comes back empty, so they read every match regardless.
pub const FILTERED_COUNT_CAP: i64 = 10_000;

/// Lists a gateway's logs matching `query`.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    query: &LogQuery,
    offset: i64,
    limit: i64,
) -> Result<LogPage, Error> {
    // Without filters the gateway's stored count answers at once (kept in step with every write through
    // `log_caps::store_with_caps` and every delete); a filtered list counts its matches in the database, in a
    // subquery with a LIMIT so that the database stops at the cap (fetching up to N ids to count them client-side
    // was measured no better: the rows cross the wire, the aggregate does not).
    let total_count: i64 =
        if query.search.as_deref().is_none_or(str::is_empty) && query.filters.is_empty() {
            crate::store::log_counters::stored_count(conn, account_id, gateway_id)?
        } else {
            let cap = FILTERED_COUNT_CAP.max(offset.saturating_add(limit));
            CappedCount(
                query
                    .filtered(account_id, gateway_id)?
                    .select(logs::id)
                    .limit(cap),
            )
            .get_result(conn)?
        };
    let items = query
        .ordered(query.filtered(account_id, gateway_id)?)
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok(LogPage { items, total_count })
}

/// `SELECT COUNT(*) FROM (inner) AS capped`: diesel has no subquery in FROM, and counting a query that carries a
/// LIMIT needs one (`count()` of a limited query counts before the limit applies).
#[derive(Debug)]
struct CappedCount<Q>(Q);

impl<Q> diesel::query_builder::QueryId for CappedCount<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> diesel::query_builder::Query for CappedCount<Q> {
    type SqlType = diesel::sql_types::BigInt;
}

impl<Q> diesel::query_builder::QueryFragment<MultiBackend> for CappedCount<Q>
where
    Q: diesel::query_builder::QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, MultiBackend>,
    ) -> QueryResult<()> {
        out.push_sql("SELECT COUNT(*) FROM (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(") AS capped");
        Ok(())
    }
}

impl<Q, C> RunQueryDsl<C> for CappedCount<Q> {}

/// Minimum and maximum figures over the logs matching a query (`meta_info=true`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogAggregates {
    pub min_cost: Option<f64>,
    pub max_cost: Option<f64>,
    pub min_duration: Option<i64>,
    pub max_duration: Option<i64>,
    pub min_tokens_in: Option<i64>,
    pub max_tokens_in: Option<i64>,
    pub min_tokens_out: Option<i64>,
    pub max_tokens_out: Option<i64>,
    pub min_total_tokens: Option<i64>,
    pub max_total_tokens: Option<i64>,
}

pub fn aggregates(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    query: &LogQuery,
) -> Result<LogAggregates, Error> {
    use diesel::dsl::{max, min};
    type Figures = (
        Option<f64>,
        Option<f64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let f: Figures = query
        .filtered(account_id, gateway_id)?
        .select((
            min(logs::cost),
            max(logs::cost),
            min(logs::duration),
            max(logs::duration),
            min(logs::tokens_in),
            max(logs::tokens_in),
            min(logs::tokens_out),
            max(logs::tokens_out),
            min(logs::total_tokens),
            max(logs::total_tokens),
        ))
        .get_result(conn)?;
    Ok(LogAggregates {
        min_cost: f.0,
        max_cost: f.1,
        min_duration: f.2,
        max_duration: f.3,
        min_tokens_in: f.4,
        max_tokens_in: f.5,
        min_tokens_out: f.6,
        max_tokens_out: f.7,
        min_total_tokens: f.8,
        max_total_tokens: f.9,
    })
}

/// One log with its heads and bodies (none when the bodies row is missing).
pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<(LogRow, Option<LogBodyRow>)>, Error> {
    let row: Option<LogRow> = logs::table
        .filter(logs::account_id.eq(account_id))
        .filter(logs::gateway_id.eq(gateway_id))
        .filter(logs::id.eq(id))
        .select(LogRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    // Looked up by the id of a row already scoped to the account and gateway.
    let bodies = log_bodies::table
        .filter(log_bodies::id.eq(&row.id))
        .select(LogBodyRow::as_select())
        .first(conn)
        .optional()?;
    Ok(Some((row, bodies)))
}

/// A PATCH: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, AsChangeset)]
#[diesel(table_name = logs)]
pub struct LogChanges {
    pub feedback: Option<Option<f64>>,
    pub score: Option<Option<f64>>,
    pub metadata: Option<Option<String>>,
}

/// Applies `changes` to one log; returns false when the log does not exist.
pub fn update(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
    changes: &LogChanges,
) -> Result<bool, Error> {
    let target = logs::table
        .filter(logs::account_id.eq(account_id))
        .filter(logs::gateway_id.eq(gateway_id))
        .filter(logs::id.eq(id));
    if *changes == LogChanges::default() {
        // Diesel refuses an empty SET; an empty PATCH only needs to know whether the log exists.
        let n: i64 = target.count().get_result(conn)?;
        return Ok(n > 0);
    }
    Ok(diesel::update(target).set(changes).execute(conn)? > 0)
}

/// Deletes up to `limit` logs matching `query`, in its order; returns how many went.
pub fn delete(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    query: &LogQuery,
    limit: i64,
) -> Result<usize, Error> {
    conn.write_transaction(|conn| {
        let ids: Vec<String> = query
            .ordered(query.filtered(account_id, gateway_id)?)
            .select(logs::id)
            .limit(limit)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Bodies first and explicitly, so the delete does not depend on foreign-key enforcement.
        diesel::delete(log_bodies::table.filter(log_bodies::id.eq_any(&ids))).execute(conn)?;
        let n = diesel::delete(
            logs::table
                .filter(logs::account_id.eq(account_id))
                .filter(logs::gateway_id.eq(gateway_id))
                .filter(logs::id.eq_any(&ids)),
        )
        .execute(conn)?;
        // The stored count feeds the gateway's cap; it changes with the rows, in the same transaction.
        crate::store::log_counters::adjust_counter(conn, account_id, gateway_id, -(n as i64))?;
        Ok(n)
    })
}
