//! Evaluations (spec §1.6, §3.10): an evaluation row with a copy of its datasets, one result row per evaluator, and
//! the one aggregate query a run makes over the logs its datasets match.
//!
//! Every query takes the account and gateway id, except [`unprocessed`], the runner's start-up scan, which returns
//! only the keys of the evaluations left to run; each run then reads and writes through the scoped queries.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable};
use serde::{Deserialize, Serialize};

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{evaluation_results as er, evaluations as ev};
use crate::store::datasets::{DatasetFilter, lock_gateway, matching_any};
use crate::store::like_contains;

diesel::define_sql_function! {
    /// SQL's `lower(text)`, the same on both backends: the list's search ignores case.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// An `evaluations` row.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = ev)]
pub struct EvaluationRow {
    pub id: String,
    pub account_id: String,
    pub gateway_id: String,
    pub name: String,
    /// The datasets as they were at creation: a JSON array of [`DatasetSnapshot`].
    pub datasets: String,
    pub processed: bool,
    pub total_logs: i64,
    pub created_at: i64,
    pub modified_at: i64,
}

/// An `evaluation_results` row.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = er)]
pub struct ResultRow {
    pub id: String,
    pub evaluation_id: String,
    pub evaluation_type_id: String,
    /// The evaluator's place in the create body's `evaluation_type_ids`, which orders `results`.
    pub position: i32,
    pub result: String,
    pub status: i32,
    pub status_description: String,
    pub total_logs: i64,
    pub created_at: i64,
    pub modified_at: i64,
}

/// A dataset as an evaluation keeps it: what it was when the evaluation was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSnapshot {
    pub id: String,
    pub name: String,
    pub enable: bool,
    /// The filters as the client sent them.
    pub filters: serde_json::Value,
    pub created_at: i64,
    pub modified_at: i64,
}

/// An evaluation and its results, in evaluator order.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub row: EvaluationRow,
    pub results: Vec<ResultRow>,
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct EvaluationListFilter {
    /// The exact name.
    pub name: Option<String>,
    pub processed: Option<bool>,
    /// A case-insensitive substring of the id or the name.
    pub search: Option<String>,
}

fn with_results(
    conn: &mut AnyConnection,
    rows: Vec<EvaluationRow>,
) -> Result<Vec<Evaluation>, Error> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    // The ids come from account- and gateway-scoped rows.
    let results: Vec<ResultRow> = er::table
        .filter(er::evaluation_id.eq_any(&ids))
        .order((er::evaluation_id.asc(), er::position.asc()))
        .load(conn)?;
    let mut by_evaluation: std::collections::HashMap<String, Vec<ResultRow>> =
        std::collections::HashMap::new();
    for r in results {
        by_evaluation
            .entry(r.evaluation_id.clone())
            .or_default()
            .push(r);
    }
    Ok(rows
        .into_iter()
        .map(|row| Evaluation {
            results: by_evaluation.remove(&row.id).unwrap_or_default(),
            row,
        })
        .collect())
}

/// A page of a gateway's evaluations, oldest first, and the total across pages.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    filter: &EvaluationListFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Evaluation>, i64), Error> {
    let build = || {
        let mut q = ev::table
            .filter(ev::account_id.eq(account_id.to_owned()))
            .filter(ev::gateway_id.eq(gateway_id.to_owned()))
            .into_boxed();
        if let Some(name) = &filter.name {
            q = q.filter(ev::name.eq(name.clone()));
        }
        if let Some(p) = filter.processed {
            q = q.filter(ev::processed.eq(p));
        }
        if let Some(term) = filter.search.as_deref().filter(|t| !t.is_empty()) {
            let p = like_contains(&term.to_lowercase());
            q = q.filter(
                lower(ev::id)
                    .like(p.clone())
                    .escape('\\')
                    .or(lower(ev::name).like(p).escape('\\')),
            );
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let rows = build()
        .order((ev::created_at.asc(), ev::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((with_results(conn, rows)?, total))
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<Evaluation>, Error> {
    let row: Option<EvaluationRow> = ev::table
        .filter(ev::account_id.eq(account_id))
        .filter(ev::gateway_id.eq(gateway_id))
        .filter(ev::id.eq(id))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some(row) => with_results(conn, vec![row])?.pop(),
        None => None,
    })
}

/// Inserts an evaluation and its (in-progress) results; false when the gateway is gone. Call inside a write
/// transaction.
pub fn insert(conn: &mut AnyConnection, evaluation: &Evaluation) -> Result<bool, Error> {
    let row = &evaluation.row;
    if !lock_gateway(conn, &row.account_id, &row.gateway_id)? {
        return Ok(false);
    }
    diesel::insert_into(ev::table)
        .values(row.clone())
        .execute(conn)?;
    // One statement per result (at most three): a multi-row insert is not in MultiConnection's portable subset.
    for result in &evaluation.results {
        diesel::insert_into(er::table)
            .values(result.clone())
            .execute(conn)?;
    }
    Ok(true)
}

/// Deletes an evaluation (its results go with it, by the foreign key); returns what was deleted.
pub fn delete(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<Evaluation>, Error> {
    conn.write_transaction(|conn| {
        let Some(found) = get(conn, account_id, gateway_id, id)? else {
            return Ok(None);
        };
        // Results first and explicitly, so the delete does not depend on foreign-key enforcement.
        diesel::delete(er::table.filter(er::evaluation_id.eq(&found.row.id))).execute(conn)?;
        diesel::delete(
            ev::table
                .filter(ev::account_id.eq(account_id))
                .filter(ev::gateway_id.eq(gateway_id))
                .filter(ev::id.eq(id)),
        )
        .execute(conn)?;
        Ok(Some(found))
    })
}

/// The evaluation left to run, as (account, gateway, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvaluation {
    pub account_id: String,
    pub gateway_id: String,
    pub id: String,
}

/// Up to `limit` unprocessed evaluations of every account, oldest first: the runner's scan at start-up and after
/// each wake-up. Keys only; the run itself reads through [`get`].
pub fn unprocessed(conn: &mut AnyConnection, limit: i64) -> Result<Vec<PendingEvaluation>, Error> {
    let keys: Vec<(String, String, String)> = ev::table
        .filter(ev::processed.eq(false))
        .order((ev::created_at.asc(), ev::id.asc()))
        .select((ev::account_id, ev::gateway_id, ev::id))
        .limit(limit)
        .load(conn)?;
    Ok(keys
        .into_iter()
        .map(|(account_id, gateway_id, id)| PendingEvaluation {
            account_id,
            gateway_id,
            id,
        })
        .collect())
}

/// What one run needs to know of the logs its datasets match, computed by one aggregate query.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogFigures {
    /// Logs matched.
    pub logs: i64,
    /// Of them, logs with a known cost, and the average of those costs.
    pub with_cost: i64,
    pub average_cost: Option<f64>,
    /// The average duration (ms) over every matched log.
    pub average_duration: Option<f64>,
    /// Logs with feedback, and of them those with a thumbs-up (feedback > 0).
    pub with_feedback: i64,
    pub thumbs_up: i64,
}

/// Measures the logs of the gateway that any of `datasets` matches, in the database: one aggregate row, whatever
/// the number of logs. `AVG` over `duration` is taken as a double, since PostgreSQL's `AVG(bigint)` is `numeric`,
/// a type the portable subset does not read.
pub fn measure(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    datasets: &[Vec<DatasetFilter>],
) -> Result<LogFigures, Error> {
    use diesel::dsl::sql;
    let (logs, with_cost, average_cost, average_duration, with_feedback, thumbs_up) =
        matching_any(account_id, gateway_id, datasets)?
            .select((
                sql::<BigInt>("COUNT(*)"),
                sql::<BigInt>("COUNT(cost)"),
                sql::<Nullable<Double>>("AVG(cost)"),
                sql::<Nullable<Double>>("AVG(CAST(duration AS DOUBLE PRECISION))"),
                sql::<BigInt>("COUNT(feedback)"),
                sql::<BigInt>("COUNT(CASE WHEN feedback > 0 THEN 1 END)"),
            ))
            .get_result::<(i64, i64, Option<f64>, Option<f64>, i64, i64)>(conn)?;
    Ok(LogFigures {
        logs,
        with_cost,
        average_cost,
        average_duration,
        with_feedback,
        thumbs_up,
    })
}

/// One evaluator's outcome, to be written by [`complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub evaluation_type_id: String,
    pub result: String,
    pub status: i32,
    pub status_description: String,
    pub total_logs: i64,
}

/// Writes the outcome of a run and marks the evaluation processed, in one transaction. Returns false, writing
/// nothing, when the evaluation is gone or already processed (another run finished it first): a run may be
/// repeated after a restart, and only the first to finish counts.
pub fn complete(
    conn: &mut AnyConnection,
    pending: &PendingEvaluation,
    total_logs: i64,
    outcomes: &[Outcome],
    now: i64,
) -> Result<bool, Error> {
    conn.write_transaction(|conn| {
        let n = diesel::update(
            ev::table
                .filter(ev::account_id.eq(&pending.account_id))
                .filter(ev::gateway_id.eq(&pending.gateway_id))
                .filter(ev::id.eq(&pending.id))
                .filter(ev::processed.eq(false)),
        )
        .set((
            ev::processed.eq(true),
            ev::total_logs.eq(total_logs),
            ev::modified_at.eq(now),
        ))
        .execute(conn)?;
        if n == 0 {
            return Ok(false);
        }
        for o in outcomes {
            diesel::update(
                er::table
                    .filter(er::evaluation_id.eq(&pending.id))
                    .filter(er::evaluation_type_id.eq(&o.evaluation_type_id)),
            )
            .set((
                er::result.eq(&o.result),
                er::status.eq(o.status),
                er::status_description.eq(&o.status_description),
                er::total_logs.eq(o.total_logs),
                er::modified_at.eq(now),
            ))
            .execute(conn)?;
        }
        Ok(true)
    })
}
