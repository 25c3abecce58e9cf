//! Teams: subjects whose limits apply to every key of the team (and of its users).

use diesel::prelude::*;
use gatehouse_shared::access::Limits;

use super::{Metadata, from_json, lower, to_json};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::teams;

/// A stored team.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamRecord {
    pub account_id: String,
    pub id: String,
    pub name: String,
    pub metadata: Metadata,
    pub limits: Limits,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
struct TeamRow {
    account_id: String,
    id: String,
    name: String,
    metadata: String,
    limits: String,
    created_at: i64,
    modified_at: i64,
}

impl TeamRow {
    fn of(r: &TeamRecord) -> Self {
        Self {
            account_id: r.account_id.clone(),
            id: r.id.clone(),
            name: r.name.clone(),
            metadata: to_json(&r.metadata),
            limits: to_json(&r.limits),
            created_at: r.created_at_ms,
            modified_at: r.modified_at_ms,
        }
    }

    fn into_record(self) -> Result<TeamRecord, Error> {
        Ok(TeamRecord {
            metadata: from_json(&self.metadata, "team metadata")?,
            limits: from_json(&self.limits, "team limits")?,
            account_id: self.account_id,
            id: self.id,
            name: self.name,
            created_at_ms: self.created_at,
            modified_at_ms: self.modified_at,
        })
    }
}

fn records(rows: Vec<TeamRow>) -> Result<Vec<TeamRecord>, Error> {
    rows.into_iter().map(TeamRow::into_record).collect()
}

/// One page of the account's teams, oldest first; `search` is a case-insensitive substring of the name.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<TeamRecord>, i64), Error> {
    let build = || {
        let mut q = teams::table
            .filter(teams::account_id.eq(account_id.to_owned()))
            .into_boxed();
        if let Some(term) = search.filter(|t| !t.is_empty()) {
            let p = crate::store::like_contains(&term.to_lowercase());
            q = q.filter(lower(teams::name).like(p).escape('\\'));
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let rows = build()
        .order((teams::created_at.asc(), teams::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(TeamRow::as_select())
        .load(conn)?;
    Ok((records(rows)?, total))
}

/// Every team of the account, by id (for config documents).
pub fn all_for_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<TeamRecord>, Error> {
    records(
        teams::table
            .filter(teams::account_id.eq(account_id))
            .order(teams::id.asc())
            .select(TeamRow::as_select())
            .load(conn)?,
    )
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
) -> Result<Option<TeamRecord>, Error> {
    teams::table
        .filter(teams::account_id.eq(account_id))
        .filter(teams::id.eq(id))
        .select(TeamRow::as_select())
        .first(conn)
        .optional()?
        .map(TeamRow::into_record)
        .transpose()
}

pub fn insert(conn: &mut AnyConnection, record: &TeamRecord) -> Result<(), Error> {
    diesel::insert_into(teams::table)
        .values(TeamRow::of(record))
        .execute(conn)?;
    Ok(())
}

/// Writes the changeable fields (name, metadata, limits, modified_at); false when there is no such team.
pub fn update(conn: &mut AnyConnection, record: &TeamRecord) -> Result<bool, Error> {
    let row = TeamRow::of(record);
    Ok(diesel::update(
        teams::table
            .filter(teams::account_id.eq(&record.account_id))
            .filter(teams::id.eq(&record.id)),
    )
    .set((
        teams::name.eq(row.name),
        teams::metadata.eq(row.metadata),
        teams::limits.eq(row.limits),
        teams::modified_at.eq(row.modified_at),
    ))
    .execute(conn)?
        > 0)
}

pub fn delete(conn: &mut AnyConnection, account_id: &str, id: &str) -> Result<bool, Error> {
    Ok(diesel::delete(
        teams::table
            .filter(teams::account_id.eq(account_id))
            .filter(teams::id.eq(id)),
    )
    .execute(conn)?
        > 0)
}

/// The names of the account's teams among `ids` (those that exist), in one query.
pub fn names(
    conn: &mut AnyConnection,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, Error> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(String, String)> = teams::table
        .filter(teams::account_id.eq(account_id))
        .filter(teams::id.eq_any(ids))
        .select((teams::id, teams::name))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}
