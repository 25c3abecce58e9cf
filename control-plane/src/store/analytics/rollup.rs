//! Rolling up the logs a batch inserted: summed in memory first, then upserted (`INSERT … ON CONFLICT … DO UPDATE`,
//! the same SQL on both backends): on PostgreSQL one multi-row statement per [`ROWS_PER_STATEMENT`] rollup rows, on
//! SQLite one cached single-row statement per row.
//!
//! Two stages keep the per-record work to one hash: records are first summed per *signature* (gateway, minute,
//! provider, model, key, user, team and the raw metadata text), which most records of a batch share; each
//! signature is then spread over its rollup rows (both spans × every dimension), parsing its metadata once. The
//! rows are upserted in key order, so two transactions adding to the same rows (two control planes storing batches
//! of one gateway) lock them in the same order and wait for each other rather than deadlock.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Double, HasSqlType, Text};
use diesel::{QueryResult, RunQueryDsl};
use gatehouse_shared::log::{LogRecord, MAX_METADATA_ENTRIES};

use super::histogram::{self, COLUMNS};
use super::{ALL, Figures, HOUR_MS, MAX_METADATA_CHARS, METADATA_PREFIX, MINUTE_MS};
use crate::db::AnyConnection;
use crate::error::Error;

/// 47 parameters a row: 500 rows stay under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// What one batch's records share, summed before they are spread over rollup rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Signature<'a> {
    account_id: &'a str,
    gateway_id: &'a str,
    minute: i64,
    provider: &'a str,
    model: &'a str,
    key_id: &'a str,
    user_id: &'a str,
    team_id: &'a str,
    metadata: &'a str,
}

/// The primary key of a rollup row, in the table's key order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RowKey<'a> {
    pub account_id: &'a str,
    pub gateway_id: &'a str,
    pub span_ms: i64,
    pub dimension: Cow<'a, str>,
    pub bucket: i64,
    pub provider: &'a str,
    pub model: &'a str,
    pub value: Cow<'a, str>,
}

impl Figures {
    /// Counts one log.
    fn add_log(&mut self, r: &LogRecord) {
        let duration = i64::try_from(r.duration_ms).unwrap_or(i64::MAX);
        let tokens = |n: Option<u64>| i64::try_from(n.unwrap_or(0)).unwrap_or(i64::MAX);
        self.requests += 1;
        self.errors += i64::from(!r.success);
        self.cached += i64::from(r.cached);
        self.tokens_in = self.tokens_in.saturating_add(tokens(r.tokens_in));
        self.tokens_out = self.tokens_out.saturating_add(tokens(r.tokens_out));
        if let Some(cost) = r.cost.filter(|c| c.is_finite()) {
            self.cost += cost;
            self.priced += 1;
        }
        self.duration_sum = self.duration_sum.saturating_add(duration);
        self.duration_max = self.duration_max.max(duration);
        self.histogram[histogram::bucket_of(duration)] += 1;
    }
}

/// An absent or empty value: the row of "none" in a dimension (`''` in the table).
fn or_none(value: Option<&str>) -> &str {
    value.unwrap_or("")
}

/// The metadata entries a log is rolled up by: `(key, value)` of at most [`MAX_METADATA_ENTRIES`] entries (the data
/// plane keeps no more) whose value is a string, number or boolean, both at most [`MAX_METADATA_CHARS`] characters. Metadata that is not a
/// JSON object adds nothing.
pub(super) fn metadata_entries(metadata: &str) -> Vec<(String, String)> {
    if metadata.is_empty() {
        return vec![];
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(metadata)
    else {
        return vec![];
    };
    map.into_iter()
        .filter_map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let fits = |s: &str| s.chars().count() <= MAX_METADATA_CHARS;
            (fits(&key) && fits(&value)).then_some((key, value))
        })
        .take(MAX_METADATA_ENTRIES)
        .collect()
}

/// Adds `records` (rows just inserted, each once) to the rollups, inside the caller's transaction.
pub(super) fn add(conn: &mut AnyConnection, records: &[&LogRecord]) -> Result<(), Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut signatures: HashMap<Signature<'_>, Figures> = HashMap::new();
    for r in records {
        let signature = Signature {
            account_id: &r.account_id,
            gateway_id: &r.gateway_id,
            minute: r.created_at_ms - r.created_at_ms.rem_euclid(MINUTE_MS),
            provider: &r.provider,
            model: or_none(r.model.as_deref()),
            key_id: or_none(r.key_id.as_deref()),
            user_id: or_none(r.user_id.as_deref()),
            team_id: or_none(r.team_id.as_deref()),
            metadata: or_none(r.metadata.as_deref()),
        };
        signatures.entry(signature).or_default().add_log(r);
    }
    let rows = spread(&signatures);
    let rows: Vec<(&RowKey<'_>, &Figures)> = rows.iter().collect();
    match conn {
        // A round trip per statement is what costs: as many rows per statement as the parameters allow.
        AnyConnection::Postgresql(pg) => {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                Upsert { rows: chunk }.execute(pg)?;
            }
        }
        // In process, preparing and binding cost: one row per statement, which the connection prepares once and
        // keeps (a multi-row statement, its text changing with its length, would be prepared for every batch).
        AnyConnection::Sqlite(sqlite) => {
            for row in rows.chunks(1) {
                OneRow(Upsert { rows: row }).execute(sqlite)?;
            }
        }
    }
    Ok(())
}

/// Every rollup row the signatures add to, with what they add, in key order.
fn spread<'a>(signatures: &'a HashMap<Signature<'a>, Figures>) -> BTreeMap<RowKey<'a>, Figures> {
    let mut rows: BTreeMap<RowKey<'a>, Figures> = BTreeMap::new();
    for (s, figures) in signatures {
        let metadata = metadata_entries(s.metadata);
        for span_ms in [MINUTE_MS, HOUR_MS] {
            let mut add = |dimension: Cow<'a, str>, value: Cow<'a, str>| {
                let key = RowKey {
                    account_id: s.account_id,
                    gateway_id: s.gateway_id,
                    span_ms,
                    dimension,
                    bucket: s.minute - s.minute.rem_euclid(span_ms),
                    provider: s.provider,
                    model: s.model,
                    value,
                };
                rows.entry(key).or_default().add(figures);
            };
            add(Cow::Borrowed(ALL), Cow::Borrowed(""));
            add(Cow::Borrowed("key"), Cow::Borrowed(s.key_id));
            add(Cow::Borrowed("user"), Cow::Borrowed(s.user_id));
            add(Cow::Borrowed("team"), Cow::Borrowed(s.team_id));
            // Metadata only by the hour: its values may be many (one per trace), and a minute row each would
            // double what they cost to write and store.
            if span_ms == HOUR_MS {
                for (key, value) in &metadata {
                    add(
                        Cow::Owned(format!("{METADATA_PREFIX}{key}")),
                        Cow::Owned(value.clone()),
                    );
                }
            }
        }
    }
    rows
}

/// The figure columns after the key columns, in insert order (histogram columns follow).
const FIGURE_COLUMNS: [&str; 9] = [
    "requests",
    "errors",
    "cached",
    "tokens_in",
    "tokens_out",
    "cost",
    "priced",
    "duration_sum",
    "duration_max",
];

/// `INSERT INTO analytics_rollups (…) VALUES (…), … ON CONFLICT (<key>) DO UPDATE SET <sums>`: PostgreSQL and
/// SQLite (3.24+) read it alike. Every value is a bind parameter; the text is this module's.
#[derive(Debug)]
struct Upsert<'a> {
    rows: &'a [(&'a RowKey<'a>, &'a Figures)],
}

impl QueryId for Upsert<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C> RunQueryDsl<C> for Upsert<'_> {}

/// An [`Upsert`] of exactly one row: its text never changes, so its type identifies it in the connection's
/// statement cache.
#[derive(Debug)]
struct OneRow<'a>(Upsert<'a>);

/// The `'static` type the statement cache keys [`OneRow`] by.
#[derive(Debug)]
struct OneRowStatement;

impl QueryId for OneRow<'_> {
    type QueryId = OneRowStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C> RunQueryDsl<C> for OneRow<'_> {}

impl<DB> QueryFragment<DB> for OneRow<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Double>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    f64: ToSql<Double, DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        debug_assert_eq!(self.0.rows.len(), 1);
        self.0.walk_ast(out)
    }
}

impl<DB> QueryFragment<DB> for Upsert<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Double>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    f64: ToSql<Double, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO analytics_rollups (account_id, gateway_id, span_ms, dimension, bucket, provider, model, value",
        );
        for column in FIGURE_COLUMNS.iter().chain(COLUMNS.iter()) {
            out.push_sql(", ");
            out.push_sql(column);
        }
        out.push_sql(") VALUES ");
        for (i, (key, f)) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, _>(key.account_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(key.gateway_id)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&key.span_ms)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(key.dimension.as_ref())?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&key.bucket)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(key.provider)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(key.model)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(key.value.as_ref())?;
            for n in [
                &f.requests,
                &f.errors,
                &f.cached,
                &f.tokens_in,
                &f.tokens_out,
            ] {
                out.push_sql(", ");
                out.push_bind_param::<BigInt, _>(n)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Double, _>(&f.cost)?;
            for n in [&f.priced, &f.duration_sum, &f.duration_max]
                .into_iter()
                .chain(f.histogram.iter())
            {
                out.push_sql(", ");
                out.push_bind_param::<BigInt, _>(n)?;
            }
            out.push_sql(")");
        }
        out.push_sql(
            " ON CONFLICT (account_id, gateway_id, span_ms, dimension, bucket, provider, model, value) DO UPDATE SET ",
        );
        let mut first = true;
        for column in FIGURE_COLUMNS.iter().chain(COLUMNS.iter()) {
            if !first {
                out.push_sql(", ");
            }
            first = false;
            out.push_sql(column);
            if *column == "duration_max" {
                out.push_sql(
                    " = CASE WHEN excluded.duration_max > analytics_rollups.duration_max \
                     THEN excluded.duration_max ELSE analytics_rollups.duration_max END",
                );
            } else {
                out.push_sql(" = analytics_rollups.");
                out.push_sql(column);
                out.push_sql(" + excluded.");
                out.push_sql(column);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_short_scalar_values_of_an_object() {
        let long = "x".repeat(MAX_METADATA_CHARS + 1);
        let text = format!(
            r#"{{"team":"ml","n":3,"ok":true,"nested":{{"a":1}},"none":null,"long":"{long}","{long}":"v"}}"#
        );
        let mut got = metadata_entries(&text);
        got.sort();
        let want: Vec<(String, String)> = [("n", "3"), ("ok", "true"), ("team", "ml")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want);
        assert!(metadata_entries("[1]").is_empty());
        assert!(metadata_entries("not json").is_empty());
        assert!(metadata_entries("").is_empty());
    }
}
