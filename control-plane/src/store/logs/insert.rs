//! Writing log records: one `logs` row and one `log_bodies` row per record, borrowed from the records (no copy of
//! a body is made on the way to the database), idempotent by id.
//!
//! The two backends insert differently, each the way it is cheapest. PostgreSQL gets one multi-row statement per
//! table per [`ROWS_PER_STATEMENT`] records: a round trip per statement is what costs there. SQLite runs in process:
//! what costs is preparing and binding, so it inserts one row per statement, a statement the connection's cache
//! keeps. Diesel caches a statement by its type when the type fixes its SQL: a single row whose columns are all
//! bound (`treat_none_as_default_value = false`; a `None` left as `DEFAULT` makes the column list follow the values,
//! and diesel then builds the SQL text again for every row). A multi-row insert of a slice, whose SQL changes with
//! its length, is prepared anew every time, and one of a fixed-length array cannot be cached either while its rows
//! borrow (diesel keys the cache by a `'static` type). Measured on the standalone writer (`log_writer_cost` in the
//! API tests), one cached row at a time cost no more than uncached statements of 8, 16, 32 or 100 rows, and less
//! than most.

use std::borrow::Cow;

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use gatehouse_shared::log::LogRecord;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{log_bodies, logs};

/// PostgreSQL binds at most 65,535 parameters per statement; 35 columns × 1,000 rows stays under it, so a batch is
/// one statement per table up to this size and a few beyond it.
const ROWS_PER_STATEMENT: usize = 1_000;

/// A `logs` row to insert, borrowed from its record.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = logs, treat_none_as_default_value = false)]
struct NewLog<'a> {
    id: &'a str,
    account_id: &'a str,
    gateway_id: &'a str,
    created_at: i64,
    provider: &'a str,
    model: Option<&'a str>,
    model_type: Option<&'a str>,
    path: &'a str,
    request_type: Option<&'a str>,
    request_content_type: Option<&'a str>,
    response_content_type: Option<&'a str>,
    status_code: i32,
    success: bool,
    cached: bool,
    duration: i64,
    tokens_in: Option<i64>,
    tokens_out: Option<i64>,
    total_tokens: i64,
    cached_tokens_in: Option<i64>,
    cost: Option<f64>,
    custom_cost: bool,
    metadata: Option<&'a str>,
    event_id: &'a str,
    step: i32,
    user_agent: Option<&'a str>,
    authenticated: bool,
    request_size: i64,
    response_size: i64,
    bodies_stored: bool,
    feedback: Option<f64>,
    score: Option<f64>,
    config_hash: Option<&'a str>,
    key_id: Option<&'a str>,
    user_id: Option<&'a str>,
    team_id: Option<&'a str>,
    route_id: Option<&'a str>,
    route_version_id: Option<&'a str>,
    route_path: Option<&'a str>,
}

/// A `log_bodies` row to insert, borrowed from its record.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = log_bodies, treat_none_as_default_value = false)]
struct NewLogBody<'a> {
    id: &'a str,
    request_head: &'a str,
    request_head_complete: bool,
    response_head: &'a str,
    response_head_complete: bool,
    request_body: Option<&'a str>,
    response_body: Option<&'a str>,
}

/// Counts beyond i64 cannot happen in practice; saturate rather than fail the whole batch.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl<'a> NewLog<'a> {
    fn of(r: &'a LogRecord) -> Self {
        let total = r
            .tokens_in
            .unwrap_or(0)
            .saturating_add(r.tokens_out.unwrap_or(0));
        Self {
            id: &r.id,
            account_id: &r.account_id,
            gateway_id: &r.gateway_id,
            created_at: r.created_at_ms,
            provider: &r.provider,
            model: r.model.as_deref(),
            model_type: r.model_type.as_deref(),
            path: &r.path,
            request_type: r.request_type.as_deref(),
            request_content_type: r.request_content_type.as_deref(),
            response_content_type: r.response_content_type.as_deref(),
            status_code: i32::from(r.status_code),
            success: r.success,
            cached: r.cached,
            duration: int(r.duration_ms),
            tokens_in: r.tokens_in.map(int),
            tokens_out: r.tokens_out.map(int),
            total_tokens: int(total),
            cached_tokens_in: r.cached_tokens_in.map(int),
            cost: r.cost,
            custom_cost: r.custom_cost,
            metadata: r.metadata.as_deref(),
            event_id: &r.event_id,
            step: i32::try_from(r.step).unwrap_or(i32::MAX),
            user_agent: r.user_agent.as_deref(),
            authenticated: r.authenticated,
            request_size: int(r.request_size),
            response_size: int(r.response_size),
            bodies_stored: r.bodies_stored,
            feedback: None,
            score: None,
            config_hash: r.config_hash.as_deref(),
            key_id: r.key_id.as_deref(),
            user_id: r.user_id.as_deref(),
            team_id: r.team_id.as_deref(),
            route_id: r.route_id.as_deref(),
            route_version_id: r.route_version_id.as_deref(),
            route_path: r.route_path.as_deref(),
        }
    }
}

impl<'a> NewLogBody<'a> {
    fn of(r: &'a LogRecord) -> Self {
        Self {
            id: &r.id,
            request_head: &r.request_head,
            request_head_complete: r.request_head_complete,
            response_head: &r.response_head,
            response_head_complete: r.response_head_complete,
            request_body: r.request_body.as_deref(),
            response_body: r.response_body.as_deref(),
        }
    }
}

/// A record as the columns can hold it: PostgreSQL refuses NUL (0x00) in `text`, and one such record would fail its
/// whole batch on every redelivery. A NUL reaches a record from a binary body (turned to text lossily) or from a
/// JSON `"\u0000"` in a model name; it becomes U+FFFD, as bytes that are not UTF-8 already do. Borrowed as it is
/// unless it holds one (the check is a `memchr` per field), so a record is copied only in that rare case.
fn without_nul(r: &LogRecord) -> Cow<'_, LogRecord> {
    fn has(s: &str) -> bool {
        s.as_bytes().contains(&0)
    }
    fn has_opt(s: &Option<String>) -> bool {
        s.as_deref().is_some_and(has)
    }
    let texts = [
        &r.id,
        &r.account_id,
        &r.gateway_id,
        &r.provider,
        &r.path,
        &r.event_id,
        &r.request_head,
        &r.response_head,
    ];
    let optional = [
        &r.model,
        &r.model_type,
        &r.request_type,
        &r.request_content_type,
        &r.response_content_type,
        &r.metadata,
        &r.user_agent,
        &r.config_hash,
        &r.request_body,
        &r.response_body,
        &r.key_id,
        &r.user_id,
        &r.team_id,
        &r.route_id,
        &r.route_version_id,
        &r.route_path,
    ];
    if !texts.iter().any(|s| has(s)) && !optional.iter().any(|s| has_opt(s)) {
        return Cow::Borrowed(r);
    }
    let fix = |s: &mut String| {
        if has(s) {
            *s = s.replace('\0', "\u{fffd}");
        }
    };
    let mut r = r.clone();
    for s in [
        &mut r.id,
        &mut r.account_id,
        &mut r.gateway_id,
        &mut r.provider,
        &mut r.path,
        &mut r.event_id,
        &mut r.request_head,
        &mut r.response_head,
    ] {
        fix(s);
    }
    for s in [
        &mut r.model,
        &mut r.model_type,
        &mut r.request_type,
        &mut r.request_content_type,
        &mut r.response_content_type,
        &mut r.metadata,
        &mut r.user_agent,
        &mut r.config_hash,
        &mut r.request_body,
        &mut r.response_body,
        &mut r.key_id,
        &mut r.user_id,
        &mut r.team_id,
        &mut r.route_id,
        &mut r.route_version_id,
        &mut r.route_path,
    ]
    .into_iter()
    .flatten()
    {
        fix(s);
    }
    Cow::Owned(r)
}

/// Stores records in one transaction. Ids already stored are skipped, so a redelivered batch changes nothing.
/// Returns how many log rows were new; those are added to the analytics rollups (`store::analytics`) in the same
/// transaction.
///
/// The raw insert. It does not keep the gateway's stored count: write through `log_caps::store_with_caps` (as
/// `log_ingest` does), or the unfiltered list's `total_count` will not see the rows.
pub fn insert_batch(conn: &mut AnyConnection, records: &[&LogRecord]) -> Result<usize, Error> {
    if records.is_empty() {
        return Ok(0);
    }
    let records: Vec<Cow<'_, LogRecord>> = records.iter().map(|r| without_nul(r)).collect();
    let rows: Vec<NewLog<'_>> = records.iter().map(|r| NewLog::of(r)).collect();
    let bodies: Vec<NewLogBody<'_>> = records.iter().map(|r| NewLogBody::of(r)).collect();
    conn.write_transaction(|conn| {
        // MultiBackend has no ON CONFLICT (stack notes §2, pitfall 7), so each backend gets its own dialect.
        let inserted: Vec<bool> = match conn {
            AnyConnection::Postgresql(pg) => {
                let mut new_ids = std::collections::HashSet::new();
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    new_ids.extend(
                        diesel::insert_into(logs::table)
                            .values(chunk)
                            .on_conflict_do_nothing()
                            .returning(logs::id)
                            .get_results::<String>(pg)?,
                    );
                }
                for chunk in bodies.chunks(ROWS_PER_STATEMENT) {
                    diesel::insert_into(log_bodies::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .execute(pg)?;
                }
                // Taken out as matched: of a record twice in one batch, only the first was inserted.
                rows.iter().map(|r| new_ids.remove(r.id)).collect()
            }
            AnyConnection::Sqlite(sqlite) => insert_sqlite(sqlite, &rows, &bodies)?,
        };
        // The rows just added, and only those (a redelivered record is not counted twice), go into the analytics
        // rollups in this same transaction.
        let new: Vec<&LogRecord> = records
            .iter()
            .zip(&inserted)
            .filter(|(_, new)| **new)
            .map(|(r, _)| &**r)
            .collect();
        crate::store::analytics::roll_up(conn, &new)?;
        Ok::<_, Error>(new.len())
    })
}

/// `INSERT OR IGNORE` of `rows` and `bodies`, one row per statement: the statement's type fixes its SQL, so the
/// connection prepares it once and steps it again, rebinding, for every row of every batch after.
/// Returns, for each row, whether it was new.
fn insert_sqlite(
    conn: &mut SqliteConnection,
    rows: &[NewLog<'_>],
    bodies: &[NewLogBody<'_>],
) -> Result<Vec<bool>, Error> {
    let mut inserted = Vec::with_capacity(rows.len());
    for row in rows {
        inserted.push(
            diesel::insert_or_ignore_into(logs::table)
                .values(row)
                .execute(conn)?
                > 0,
        );
    }
    for body in bodies {
        diesel::insert_or_ignore_into(log_bodies::table)
            .values(body)
            .execute(conn)?;
    }
    Ok(inserted)
}
