//! Users: subjects whose limits apply to every key of the user; a user may belong to a team.

use diesel::prelude::*;
use gatehouse_shared::access::Limits;

use super::{Metadata, from_json, lower, to_json};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::users;

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub account_id: String,
    pub id: String,
    pub name: String,
    pub team_id: Option<String>,
    pub metadata: Metadata,
    pub limits: Limits,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    account_id: String,
    id: String,
    name: String,
    team_id: Option<String>,
    metadata: String,
    limits: String,
    created_at: i64,
    modified_at: i64,
}

impl UserRow {
    fn of(r: &UserRecord) -> Self {
        Self {
            account_id: r.account_id.clone(),
            id: r.id.clone(),
            name: r.name.clone(),
            team_id: r.team_id.clone(),
            metadata: to_json(&r.metadata),
            limits: to_json(&r.limits),
            created_at: r.created_at_ms,
            modified_at: r.modified_at_ms,
        }
    }

    fn into_record(self) -> Result<UserRecord, Error> {
        Ok(UserRecord {
            metadata: from_json(&self.metadata, "user metadata")?,
            limits: from_json(&self.limits, "user limits")?,
            account_id: self.account_id,
            id: self.id,
            name: self.name,
            team_id: self.team_id,
            created_at_ms: self.created_at,
            modified_at_ms: self.modified_at,
        })
    }
}

fn records(rows: Vec<UserRow>) -> Result<Vec<UserRecord>, Error> {
    rows.into_iter().map(UserRow::into_record).collect()
}

/// One page of the account's users, oldest first; `search` is a case-insensitive substring of the name.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<UserRecord>, i64), Error> {
    let build = || {
        let mut q = users::table
            .filter(users::account_id.eq(account_id.to_owned()))
            .into_boxed();
        if let Some(term) = search.filter(|t| !t.is_empty()) {
            let p = crate::store::like_contains(&term.to_lowercase());
            q = q.filter(lower(users::name).like(p).escape('\\'));
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let rows = build()
        .order((users::created_at.asc(), users::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?;
    Ok((records(rows)?, total))
}

/// Every user of the account, by id (for config documents).
pub fn all_for_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<UserRecord>, Error> {
    records(
        users::table
            .filter(users::account_id.eq(account_id))
            .order(users::id.asc())
            .select(UserRow::as_select())
            .load(conn)?,
    )
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
) -> Result<Option<UserRecord>, Error> {
    users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(UserRow::into_record)
        .transpose()
}

/// The ids of the account's users in a team, by id.
pub fn ids_in_team(
    conn: &mut AnyConnection,
    account_id: &str,
    team_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::team_id.eq(team_id))
        .select(users::id)
        .order(users::id.asc())
        .load(conn)?)
}

pub fn insert(conn: &mut AnyConnection, record: &UserRecord) -> Result<(), Error> {
    diesel::insert_into(users::table)
        .values(UserRow::of(record))
        .execute(conn)?;
    Ok(())
}

/// Writes the changeable fields (name, team, metadata, limits, modified_at); false when there is no such user.
pub fn update(conn: &mut AnyConnection, record: &UserRecord) -> Result<bool, Error> {
    let row = UserRow::of(record);
    Ok(diesel::update(
        users::table
            .filter(users::account_id.eq(&record.account_id))
            .filter(users::id.eq(&record.id)),
    )
    .set((
        users::name.eq(row.name),
        users::team_id.eq(row.team_id),
        users::metadata.eq(row.metadata),
        users::limits.eq(row.limits),
        users::modified_at.eq(row.modified_at),
    ))
    .execute(conn)?
        > 0)
}

pub fn delete(conn: &mut AnyConnection, account_id: &str, id: &str) -> Result<bool, Error> {
    Ok(diesel::delete(
        users::table
            .filter(users::account_id.eq(account_id))
            .filter(users::id.eq(id)),
    )
    .execute(conn)?
        > 0)
}

/// The names of the account's users among `ids` (those that exist), in one query.
pub fn names(
    conn: &mut AnyConnection,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, Error> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(String, String)> = users::table
        .filter(users::account_id.eq(account_id))
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}
