//! Datasets (spec §1.4, §3.11): saved filters over one gateway's logs.
//!
//! A dataset's filters are stored as the JSON array the client sent (after [`type_filters`] accepted it), so the API
//! echoes them unchanged; whoever needs them typed (the API's validation, the evaluation runner) goes through
//! [`type_filters`] in `filters.rs`, the one reading of their rules, which also turns them into a SQL predicate over
//! `logs` ([`matching_any`]).

mod filters;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

pub use filters::{
    DatasetFilter, DatasetOp, FILTER_KEYS, FilterKind, FilterProblem, MAX_FILTERS, MAX_VALUES,
    OPERATORS, TypedValue, matching_any, type_filters,
};

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{datasets, gateways};
use crate::store::like_contains;

diesel::define_sql_function! {
    /// SQL's `lower(text)`, the same on PostgreSQL and SQLite: the list's search ignores case on both.
    fn lower(x: Nullable<Text>) -> Nullable<Text>;
}

/// At most this many datasets per gateway (spec §4).
pub const MAX_DATASETS_PER_GATEWAY: i64 = 10;

/// A `datasets` row.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = datasets)]
pub struct DatasetRow {
    pub id: String,
    pub account_id: String,
    pub gateway_id: String,
    pub name: String,
    pub enable: bool,
    /// The filters as the client sent them: a JSON array of `{key, operator, value}`.
    pub filters: String,
    pub created_at: i64,
    pub modified_at: i64,
}

/// Whether the account has the gateway.
pub fn gateway_exists(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
) -> Result<bool, Error> {
    let n: i64 = gateways::table
        .filter(gateways::account_id.eq(account_id))
        .filter(gateways::id.eq(gateway_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Takes the gateway's row lock until the transaction ends, and says whether the gateway exists. Two concurrent
/// creates on PostgreSQL would otherwise both count nine datasets and both insert; SQLite's write transactions are
/// serial already. The update writes the value the row holds, so nothing changes.
pub fn lock_gateway(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
) -> Result<bool, Error> {
    let n = diesel::update(
        gateways::table
            .filter(gateways::account_id.eq(account_id))
            .filter(gateways::id.eq(gateway_id)),
    )
    .set(gateways::modified_at.eq(gateways::modified_at))
    .execute(conn)?;
    Ok(n > 0)
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct DatasetListFilter {
    /// The exact name.
    pub name: Option<String>,
    pub enable: Option<bool>,
    /// A case-insensitive substring of the id, the name or the filters' JSON text.
    pub search: Option<String>,
}

/// A page of a gateway's datasets, oldest first, and the total across pages.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    filter: &DatasetListFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<DatasetRow>, i64), Error> {
    let build = || {
        let mut q = datasets::table
            .filter(datasets::account_id.eq(account_id.to_owned()))
            .filter(datasets::gateway_id.eq(gateway_id.to_owned()))
            .into_boxed();
        if let Some(name) = &filter.name {
            q = q.filter(datasets::name.eq(name.clone()));
        }
        if let Some(e) = filter.enable {
            q = q.filter(datasets::enable.eq(e));
        }
        if let Some(term) = filter.search.as_deref().filter(|t| !t.is_empty()) {
            let p = like_contains(&term.to_lowercase());
            q = q.filter(
                lower(datasets::id.nullable())
                    .like(p.clone())
                    .escape('\\')
                    .or(lower(datasets::name.nullable())
                        .like(p.clone())
                        .escape('\\'))
                    .or(lower(datasets::filters.nullable()).like(p).escape('\\')),
            );
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let rows = build()
        .order((datasets::created_at.asc(), datasets::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<DatasetRow>, Error> {
    Ok(datasets::table
        .filter(datasets::account_id.eq(account_id))
        .filter(datasets::gateway_id.eq(gateway_id))
        .filter(datasets::id.eq(id))
        .first(conn)
        .optional()?)
}

/// The gateway's datasets among `ids` (any order; unknown ids are left out).
pub fn get_many(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    ids: &[String],
) -> Result<Vec<DatasetRow>, Error> {
    Ok(datasets::table
        .filter(datasets::account_id.eq(account_id))
        .filter(datasets::gateway_id.eq(gateway_id))
        .filter(datasets::id.eq_any(ids))
        .load(conn)?)
}

/// Why a dataset could not be created.
#[derive(Debug)]
pub enum InsertRefusal {
    NoGateway,
    /// The gateway already has [`MAX_DATASETS_PER_GATEWAY`].
    Full,
}

/// Inserts a dataset unless its gateway is missing or full. Runs its own write transaction.
pub fn insert(
    conn: &mut AnyConnection,
    row: &DatasetRow,
) -> Result<Result<(), InsertRefusal>, Error> {
    conn.write_transaction(|conn| {
        if !lock_gateway(conn, &row.account_id, &row.gateway_id)? {
            return Ok(Err(InsertRefusal::NoGateway));
        }
        let n: i64 = datasets::table
            .filter(datasets::account_id.eq(&row.account_id))
            .filter(datasets::gateway_id.eq(&row.gateway_id))
            .count()
            .get_result(conn)?;
        if n >= MAX_DATASETS_PER_GATEWAY {
            return Ok(Err(InsertRefusal::Full));
        }
        diesel::insert_into(datasets::table)
            .values(row.clone())
            .execute(conn)?;
        Ok(Ok(()))
    })
}

/// Writes every field of `row` (found by account, gateway and id); false when there is none.
pub fn update(conn: &mut AnyConnection, row: &DatasetRow) -> Result<bool, Error> {
    Ok(diesel::update(
        datasets::table
            .filter(datasets::account_id.eq(&row.account_id))
            .filter(datasets::gateway_id.eq(&row.gateway_id))
            .filter(datasets::id.eq(&row.id)),
    )
    .set(row)
    .execute(conn)?
        > 0)
}

pub fn delete(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<bool, Error> {
    Ok(diesel::delete(
        datasets::table
            .filter(datasets::account_id.eq(account_id))
            .filter(datasets::gateway_id.eq(gateway_id))
            .filter(datasets::id.eq(id)),
    )
    .execute(conn)?
        > 0)
}
