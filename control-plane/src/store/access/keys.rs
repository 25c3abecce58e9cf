//! Virtual keys. The secret is never stored: `secret_hash` (SHA-256, what documents carry and nodes look up) and
//! `preview` (what the API shows) are.
//!
//! Each writer changes only its own columns, so that writers racing on one key cannot undo each other: an update
//! of the settings never writes the secret (a rotation committed between its read and its write would otherwise be
//! undone, bringing the old secret back), a rotation writes only the secret, a revocation only `revoked_at`, and
//! the log ingest only `last_used_at`.

use std::collections::BTreeMap;

use diesel::prelude::*;
use gatehouse_shared::access::Limits;

use super::subjects::Subject;
use super::{Metadata, from_json, lower, to_json};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::virtual_keys as vk;

/// A stored virtual key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub account_id: String,
    pub id: String,
    pub name: String,
    /// `gatehouse_shared::access::secret_hash` of the secret.
    pub secret_hash: String,
    pub preview: String,
    /// Gateway ids the key may use; empty: every gateway of the account.
    pub gateways: Vec<String>,
    /// Model patterns the key may use; empty: every model.
    pub models: Vec<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub metadata: Metadata,
    pub limits: Limits,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl KeyRecord {
    pub fn revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = vk)]
struct KeyRow {
    account_id: String,
    id: String,
    name: String,
    secret_hash: String,
    preview: String,
    gateways: String,
    models: String,
    user_id: Option<String>,
    team_id: Option<String>,
    metadata: String,
    limits: String,
    expires_at: Option<i64>,
    created_at: i64,
    modified_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl KeyRow {
    fn of(r: &KeyRecord) -> Self {
        Self {
            account_id: r.account_id.clone(),
            id: r.id.clone(),
            name: r.name.clone(),
            secret_hash: r.secret_hash.clone(),
            preview: r.preview.clone(),
            gateways: to_json(&r.gateways),
            models: to_json(&r.models),
            user_id: r.user_id.clone(),
            team_id: r.team_id.clone(),
            metadata: to_json(&r.metadata),
            limits: to_json(&r.limits),
            expires_at: r.expires_at_ms,
            created_at: r.created_at_ms,
            modified_at: r.modified_at_ms,
            last_used_at: r.last_used_at_ms,
            revoked_at: r.revoked_at_ms,
        }
    }

    fn into_record(self) -> Result<KeyRecord, Error> {
        Ok(KeyRecord {
            gateways: from_json(&self.gateways, "key gateways")?,
            models: from_json(&self.models, "key models")?,
            metadata: from_json(&self.metadata, "key metadata")?,
            limits: from_json(&self.limits, "key limits")?,
            account_id: self.account_id,
            id: self.id,
            name: self.name,
            secret_hash: self.secret_hash,
            preview: self.preview,
            user_id: self.user_id,
            team_id: self.team_id,
            expires_at_ms: self.expires_at,
            created_at_ms: self.created_at,
            modified_at_ms: self.modified_at,
            last_used_at_ms: self.last_used_at,
            revoked_at_ms: self.revoked_at,
        })
    }
}

fn records(rows: Vec<KeyRow>) -> Result<Vec<KeyRecord>, Error> {
    rows.into_iter().map(KeyRow::into_record).collect()
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Revoked keys are left out unless this is set.
    pub include_revoked: bool,
}

/// One page of the account's keys, oldest first.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    filter: &KeyFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<KeyRecord>, i64), Error> {
    let build = || {
        let mut q = vk::table
            .filter(vk::account_id.eq(account_id.to_owned()))
            .into_boxed();
        if !filter.include_revoked {
            q = q.filter(vk::revoked_at.is_null());
        }
        if let Some(term) = filter.search.as_deref().filter(|t| !t.is_empty()) {
            let p = crate::store::like_contains(&term.to_lowercase());
            q = q.filter(lower(vk::name).like(p).escape('\\'));
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let rows = build()
        .order((vk::created_at.asc(), vk::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(KeyRow::as_select())
        .load(conn)?;
    Ok((records(rows)?, total))
}

/// The account's keys that work at `now_ms` (not revoked, not expired), by id: what config documents carry.
pub fn live(
    conn: &mut AnyConnection,
    account_id: &str,
    now_ms: i64,
) -> Result<Vec<KeyRecord>, Error> {
    records(
        vk::table
            .filter(vk::account_id.eq(account_id))
            .filter(vk::revoked_at.is_null())
            .filter(vk::expires_at.is_null().or(vk::expires_at.gt(now_ms)))
            .order(vk::id.asc())
            .select(KeyRow::as_select())
            .load(conn)?,
    )
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
) -> Result<Option<KeyRecord>, Error> {
    vk::table
        .filter(vk::account_id.eq(account_id))
        .filter(vk::id.eq(id))
        .select(KeyRow::as_select())
        .first(conn)
        .optional()?
        .map(KeyRow::into_record)
        .transpose()
}

pub fn insert(conn: &mut AnyConnection, record: &KeyRecord) -> Result<(), Error> {
    diesel::insert_into(vk::table)
        .values(KeyRow::of(record))
        .execute(conn)?;
    Ok(())
}

/// Writes the settings (name, gateways, models, user, team, metadata, limits, expiry, modified_at) of an
/// unrevoked key; false when there is no such key or it is revoked.
pub fn update_settings(conn: &mut AnyConnection, record: &KeyRecord) -> Result<bool, Error> {
    let row = KeyRow::of(record);
    Ok(diesel::update(
        vk::table
            .filter(vk::account_id.eq(&record.account_id))
            .filter(vk::id.eq(&record.id))
            .filter(vk::revoked_at.is_null()),
    )
    .set((
        vk::name.eq(row.name),
        vk::gateways.eq(row.gateways),
        vk::models.eq(row.models),
        vk::user_id.eq(row.user_id),
        vk::team_id.eq(row.team_id),
        vk::metadata.eq(row.metadata),
        vk::limits.eq(row.limits),
        vk::expires_at.eq(row.expires_at),
        vk::modified_at.eq(row.modified_at),
    ))
    .execute(conn)?
        > 0)
}

/// Replaces the secret of an unrevoked key (its hash and preview); false when there is no such key or it is
/// revoked. The old secret stops working with the next document.
pub fn rotate(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
    secret_hash: &str,
    preview: &str,
    now_ms: i64,
) -> Result<bool, Error> {
    Ok(diesel::update(
        vk::table
            .filter(vk::account_id.eq(account_id))
            .filter(vk::id.eq(id))
            .filter(vk::revoked_at.is_null()),
    )
    .set((
        vk::secret_hash.eq(secret_hash),
        vk::preview.eq(preview),
        vk::modified_at.eq(now_ms),
    ))
    .execute(conn)?
        > 0)
}

/// Marks a key revoked at `now_ms` unless it already is; false when nothing changed.
pub fn revoke(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
    now_ms: i64,
) -> Result<bool, Error> {
    Ok(diesel::update(
        vk::table
            .filter(vk::account_id.eq(account_id))
            .filter(vk::id.eq(id))
            .filter(vk::revoked_at.is_null()),
    )
    .set((vk::revoked_at.eq(now_ms), vk::modified_at.eq(now_ms)))
    .execute(conn)?
        > 0)
}

/// The ids of the account's unrevoked keys that name `subject_id` as their user (or team), by id.
pub fn unrevoked_ids_of(
    conn: &mut AnyConnection,
    account_id: &str,
    subject: Subject,
    subject_id: &str,
) -> Result<Vec<String>, Error> {
    let q = vk::table
        .filter(vk::account_id.eq(account_id))
        .filter(vk::revoked_at.is_null())
        .select(vk::id)
        .order(vk::id.asc());
    Ok(match subject {
        Subject::User => q.filter(vk::user_id.eq(subject_id)).load(conn)?,
        Subject::Team => q.filter(vk::team_id.eq(subject_id)).load(conn)?,
    })
}

/// Clears the user (or team) of the account's revoked keys that name `subject_id`, so that the subject can be
/// deleted; returns how many. The logs keep the ids they were written with.
pub fn detach_revoked(
    conn: &mut AnyConnection,
    account_id: &str,
    subject: Subject,
    subject_id: &str,
) -> Result<usize, Error> {
    let target = vk::table
        .filter(vk::account_id.eq(account_id))
        .filter(vk::revoked_at.is_not_null());
    Ok(match subject {
        Subject::User => diesel::update(target.filter(vk::user_id.eq(subject_id)))
            .set(vk::user_id.eq(None::<String>))
            .execute(conn)?,
        Subject::Team => diesel::update(target.filter(vk::team_id.eq(subject_id)))
            .set(vk::team_id.eq(None::<String>))
            .execute(conn)?,
    })
}

/// Moves `last_used_at` forward to the latest use of each key: `uses` maps (account id, key id) to the newest
/// record time seen for it. One statement per key, never one per record; a key's time never goes back (batches
/// may be stored out of order), and an unknown key changes nothing.
pub fn record_uses(
    conn: &mut AnyConnection,
    uses: &BTreeMap<(&str, &str), i64>,
) -> Result<(), Error> {
    if uses.is_empty() {
        return Ok(());
    }
    conn.write_transaction(|conn| {
        for (&(account_id, id), &at_ms) in uses {
            diesel::update(
                vk::table
                    .filter(vk::account_id.eq(account_id))
                    .filter(vk::id.eq(id))
                    .filter(vk::last_used_at.is_null().or(vk::last_used_at.lt(at_ms))),
            )
            .set(vk::last_used_at.eq(at_ms))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// The names of the account's keys among `ids` (those that exist), in one query.
pub fn names(
    conn: &mut AnyConnection,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, Error> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(String, String)> = vk::table
        .filter(vk::account_id.eq(account_id))
        .filter(vk::id.eq_any(ids))
        .select((vk::id, vk::name))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}
