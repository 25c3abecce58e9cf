//! Users and teams: the subjects whose limits apply on top of a key's. Both have an id, a name, metadata, limits and
//! timestamps; a user may also belong to a team. Their tables have the same columns but for the user's `team_id`,
//! so each query is written once here and run against the table a [`Subject`] names.

use diesel::prelude::*;
use gatehouse_shared::access::Limits;

use super::{Metadata, from_json, lower, to_json};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{teams, users};

/// Which kind of subject, and so which table (and which column of a key names one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    User,
    Team,
}

impl Subject {
    /// Whether this kind of subject belongs to a team: a user may, a team does not.
    pub fn has_team(self) -> bool {
        self == Subject::User
    }
}

/// A stored user or team.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRecord {
    pub account_id: String,
    pub id: String,
    pub name: String,
    /// The team of a user; always none for a team.
    pub team_id: Option<String>,
    pub metadata: Metadata,
    pub limits: Limits,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

/// Runs `$body` with `$t` naming the subject's table module and `Row` its row type: diesel's query types differ
/// per table, so a query written once here is compiled once per table.
macro_rules! on_table_of {
    ($subject:expr, $t:ident => $body:expr) => {
        match $subject {
            Subject::User => {
                use users as $t;
                #[allow(dead_code, reason = "queries that select no whole row do not name it")]
                type Row = UserRow;
                $body
            }
            Subject::Team => {
                use teams as $t;
                #[allow(dead_code, reason = "queries that select no whole row do not name it")]
                type Row = TeamRow;
                $body
            }
        }
    };
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

/// The columns an update writes; a null team is written as null, not skipped.
#[derive(AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
struct UserChanges {
    name: String,
    team_id: Option<String>,
    metadata: String,
    limits: String,
    modified_at: i64,
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

#[derive(AsChangeset)]
#[diesel(table_name = teams)]
struct TeamChanges {
    name: String,
    metadata: String,
    limits: String,
    modified_at: i64,
}

impl UserRow {
    fn of(r: &SubjectRecord) -> Self {
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

    fn into_record(self) -> Result<SubjectRecord, Error> {
        Ok(SubjectRecord {
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

impl UserRow {
    /// The columns an update writes.
    fn changes(r: &SubjectRecord) -> UserChanges {
        UserChanges {
            name: r.name.clone(),
            team_id: r.team_id.clone(),
            metadata: to_json(&r.metadata),
            limits: to_json(&r.limits),
            modified_at: r.modified_at_ms,
        }
    }
}

impl TeamRow {
    fn of(r: &SubjectRecord) -> Self {
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

    fn into_record(self) -> Result<SubjectRecord, Error> {
        Ok(SubjectRecord {
            metadata: from_json(&self.metadata, "team metadata")?,
            limits: from_json(&self.limits, "team limits")?,
            account_id: self.account_id,
            id: self.id,
            name: self.name,
            team_id: None,
            created_at_ms: self.created_at,
            modified_at_ms: self.modified_at,
        })
    }
}

impl TeamRow {
    /// The columns an update writes.
    fn changes(r: &SubjectRecord) -> TeamChanges {
        TeamChanges {
            name: r.name.clone(),
            metadata: to_json(&r.metadata),
            limits: to_json(&r.limits),
            modified_at: r.modified_at_ms,
        }
    }
}

/// One page of the account's users (or teams), oldest first; `search` is a case-insensitive substring of the name.
pub fn list(
    conn: &mut AnyConnection,
    subject: Subject,
    account_id: &str,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<SubjectRecord>, i64), Error> {
    on_table_of!(subject, t => {
        let build = || {
            let mut q = t::table
                .filter(t::account_id.eq(account_id.to_owned()))
                .into_boxed();
            if let Some(term) = search.filter(|s| !s.is_empty()) {
                let p = crate::store::like_contains(&term.to_lowercase());
                q = q.filter(lower(t::name).like(p).escape('\\'));
            }
            q
        };
        let total = build().count().get_result(conn)?;
        let rows = build()
            .order((t::created_at.asc(), t::id.asc()))
            .offset(offset)
            .limit(limit)
            .select(Row::as_select())
            .load(conn)?;
        let records = rows.into_iter().map(Row::into_record).collect::<Result<_, _>>()?;
        Ok((records, total))
    })
}

/// Every user (or team) of the account, by id (for config documents).
pub fn all_for_account(
    conn: &mut AnyConnection,
    subject: Subject,
    account_id: &str,
) -> Result<Vec<SubjectRecord>, Error> {
    on_table_of!(subject, t => t::table
        .filter(t::account_id.eq(account_id))
        .order(t::id.asc())
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(Row::into_record)
        .collect())
}

pub fn get(
    conn: &mut AnyConnection,
    subject: Subject,
    account_id: &str,
    id: &str,
) -> Result<Option<SubjectRecord>, Error> {
    on_table_of!(subject, t => t::table
        .filter(t::account_id.eq(account_id))
        .filter(t::id.eq(id))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(Row::into_record)
        .transpose())
}

pub fn insert(
    conn: &mut AnyConnection,
    subject: Subject,
    record: &SubjectRecord,
) -> Result<(), Error> {
    on_table_of!(subject, t => diesel::insert_into(t::table)
        .values(Row::of(record))
        .execute(conn)?);
    Ok(())
}

/// Writes the changeable fields (name, a user's team, metadata, limits, modified_at); false when there is no such
/// subject.
pub fn update(
    conn: &mut AnyConnection,
    subject: Subject,
    record: &SubjectRecord,
) -> Result<bool, Error> {
    let updated = on_table_of!(subject, t => diesel::update(
        t::table
            .filter(t::account_id.eq(&record.account_id))
            .filter(t::id.eq(&record.id)),
    )
    .set(Row::changes(record))
    .execute(conn)?);
    Ok(updated > 0)
}

pub fn delete(
    conn: &mut AnyConnection,
    subject: Subject,
    account_id: &str,
    id: &str,
) -> Result<bool, Error> {
    let deleted = on_table_of!(subject, t => diesel::delete(
        t::table
            .filter(t::account_id.eq(account_id))
            .filter(t::id.eq(id)),
    )
    .execute(conn)?);
    Ok(deleted > 0)
}

/// The names of the account's users (or teams) among `ids` (those that exist), in one query.
pub fn names(
    conn: &mut AnyConnection,
    subject: Subject,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, Error> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(String, String)> = on_table_of!(subject, t => t::table
        .filter(t::account_id.eq(account_id))
        .filter(t::id.eq_any(ids))
        .select((t::id, t::name))
        .load(conn)?);
    Ok(rows.into_iter().collect())
}

/// The ids of the account's users in a team, by id.
pub fn user_ids_in_team(
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
