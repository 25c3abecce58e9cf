//! Gateways: the settings document per `(account_id, id)`.

use diesel::prelude::*;
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::gateway::GatewaySettings;

use crate::db::AnyConnection;
use crate::error::{Error, FieldError};
use crate::schema::gateways;

/// A stored gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRecord {
    pub account_id: String,
    pub id: String,
    pub internal_id: String,
    pub is_default: bool,
    pub settings: GatewaySettings,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

impl GatewayRecord {
    /// The gateway's identity across the deployment (bus keys, config documents).
    pub fn key(&self) -> GatewayKey {
        GatewayKey::new(&self.account_id, &self.id)
    }
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = gateways)]
struct GatewayRow {
    account_id: String,
    id: String,
    internal_id: String,
    is_default: bool,
    settings: String,
    created_at: i64,
    modified_at: i64,
    /// Raised when the settings of a gateway with `cache_invalidate_on_update` change (see [`update_settings`]).
    cache_generation: i64,
}

impl GatewayRow {
    fn into_record(self) -> Result<(GatewayRecord, i64), Error> {
        let settings = serde_json::from_str(&self.settings).map_err(|e| {
            Error::Internal(format!(
                "stored settings of gateway {}/{} do not parse: {e}",
                self.account_id, self.id
            ))
        })?;
        let record = GatewayRecord {
            account_id: self.account_id,
            id: self.id,
            internal_id: self.internal_id,
            is_default: self.is_default,
            settings,
            created_at_ms: self.created_at,
            modified_at_ms: self.modified_at,
        };
        Ok((record, self.cache_generation))
    }

    fn from_record(r: &GatewayRecord) -> Self {
        Self {
            account_id: r.account_id.clone(),
            id: r.id.clone(),
            internal_id: r.internal_id.clone(),
            is_default: r.is_default,
            settings: serde_json::to_string(&r.settings)
                .expect("gateway settings always serialise"),
            created_at: r.created_at_ms,
            modified_at: r.modified_at_ms,
            // A new gateway has cached nothing yet.
            cache_generation: 0,
        }
    }
}

/// One page of a listing and the total across pages.
#[derive(Debug)]
pub struct GatewayPage {
    pub items: Vec<GatewayRecord>,
    pub total_count: i64,
}

/// Lists an account's gateways, oldest first (ties by id), so that page walks are stable.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<GatewayPage, Error> {
    // Gateway ids are lower-case, so a lower-cased term makes the search case-insensitive on both backends.
    let pattern = search
        .filter(|s| !s.is_empty())
        .map(|s| crate::store::like_contains(&s.to_lowercase()));
    let mut count_query = gateways::table
        .filter(gateways::account_id.eq(account_id))
        .into_boxed();
    let mut page_query = gateways::table
        .filter(gateways::account_id.eq(account_id))
        .into_boxed();
    if let Some(p) = &pattern {
        count_query = count_query.filter(gateways::id.like(p.clone()).escape('\\'));
        page_query = page_query.filter(gateways::id.like(p.clone()).escape('\\'));
    }
    let total_count: i64 = count_query.count().get_result(conn)?;
    let rows: Vec<GatewayRow> = page_query
        .order((gateways::created_at.asc(), gateways::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    let items = rows
        .into_iter()
        .map(|row| row.into_record().map(|(record, _)| record))
        .collect::<Result<_, _>>()?;
    Ok(GatewayPage { items, total_count })
}

/// Every gateway of every account, as keys, for the reconciler. Not account-scoped on purpose: the reconciler
/// serves the whole deployment and never returns these to a caller.
pub fn all_keys(conn: &mut AnyConnection) -> Result<Vec<GatewayKey>, Error> {
    let rows: Vec<(String, String)> = gateways::table
        .select((gateways::account_id, gateways::id))
        .order((gateways::account_id.asc(), gateways::id.asc()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(account, id)| GatewayKey::new(account, id))
        .collect())
}

/// The ids of every gateway of one account (for republishing an account-wide change).
pub fn ids_of_account(conn: &mut AnyConnection, account_id: &str) -> Result<Vec<String>, Error> {
    Ok(gateways::table
        .filter(gateways::account_id.eq(account_id))
        .select(gateways::id)
        .order(gateways::id.asc())
        .load(conn)?)
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
) -> Result<Option<GatewayRecord>, Error> {
    Ok(get_with_cache_generation(conn, account_id, id)?.map(|(record, _)| record))
}

/// A gateway and its cache generation, which its config document carries so that nodes put it in cache keys. Kept
/// out of [`GatewayRecord`] because only the document builder needs it.
pub fn get_with_cache_generation(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
) -> Result<Option<(GatewayRecord, i64)>, Error> {
    let row: Option<GatewayRow> = gateways::table
        .filter(gateways::account_id.eq(account_id))
        .filter(gateways::id.eq(id))
        .first(conn)
        .optional()?;
    row.map(GatewayRow::into_record).transpose()
}

/// Inserts a new gateway; an existing `(account_id, id)` is [`Error::AlreadyExists`], also when two creates race.
pub fn insert(conn: &mut AnyConnection, record: &GatewayRecord) -> Result<(), Error> {
    let result = diesel::insert_into(gateways::table)
        .values(GatewayRow::from_record(record))
        .execute(conn);
    match result {
        Ok(_) => Ok(()),
        Err(e) if crate::store::is_unique_violation(&e) => Err(already_exists(&record.id)),
        Err(e) => Err(e.into()),
    }
}

pub fn already_exists(id: &str) -> Error {
    Error::AlreadyExists(format!("a gateway with id '{id}' already exists"))
}

/// Refuses `settings` when one of its `hostnames` is claimed by another gateway, of any account: a host name
/// routes to one gateway in the whole deployment. `(account_id, id)` is the gateway being written, whose own claims
/// do not count. Call it inside the write transaction of the insert or update, so the check and the write agree:
/// on SQLite that transaction holds the write lock from its start (`write_transaction`); on PostgreSQL this takes
/// a transaction-scoped advisory lock that every writer claiming host names takes, so two gateways cannot claim the
/// same name at once (the second reads after the first commits).
///
/// Settings are stored as JSON text, and the two backends share no JSON query syntax, so this loads the
/// `(account_id, id, settings)` rows whose text names `"hostnames"` (a `LIKE` both backends run) and compares in
/// Rust. That reads every gateway with host names on each such write, which is fine for the few gateways that
/// claim names; an index table of claims would replace it if that ever grows large.
///
/// The error names the field and the host name, never the other gateway or its account.
pub fn check_hostnames_free(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
    settings: &GatewaySettings,
) -> Result<(), Error> {
    let wanted = match settings.hostnames.as_deref() {
        Some(names) if !names.is_empty() => names,
        _ => return Ok(()),
    };
    if let AnyConnection::Postgresql(pg) = conn {
        diesel::sql_query(format!(
            "SELECT pg_advisory_xact_lock({HOSTNAME_CLAIMS_LOCK})"
        ))
        .execute(pg)?;
    }
    let rows: Vec<(String, String, String)> = gateways::table
        .filter(gateways::settings.like("%\"hostnames\"%"))
        .select((gateways::account_id, gateways::id, gateways::settings))
        .load(conn)?;
    let mut taken = std::collections::BTreeSet::new();
    for (other_account, other_id, text) in rows {
        if other_account == account_id && other_id == id {
            continue;
        }
        let claims: HostnameClaims = serde_json::from_str(&text).map_err(|e| {
            Error::Internal(format!(
                "stored settings of gateway {other_account}/{other_id} do not parse: {e}"
            ))
        })?;
        for claimed in claims.hostnames.iter().flatten() {
            taken.extend(
                wanted
                    .iter()
                    .enumerate()
                    .filter(|(_, name)| claimed.eq_ignore_ascii_case(name))
                    .map(|(i, _)| i),
            );
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    Err(Error::Validation(
        taken
            .into_iter()
            .map(|i| FieldError {
                path: vec!["hostnames".to_owned(), i.to_string()],
                message: format!(
                    "Host name '{}' is already claimed by another gateway",
                    wanted[i]
                ),
            })
            .collect(),
    ))
}

/// The key of the PostgreSQL advisory lock writers take while they check and write host name claims.
const HOSTNAME_CLAIMS_LOCK: i64 = i64::from_be_bytes(*b"GH-hosts");

/// The one field of stored settings [`check_hostnames_free`] needs; serde skips the rest.
#[derive(serde::Deserialize)]
struct HostnameClaims {
    #[serde(default)]
    hostnames: Option<Vec<String>>,
}

/// Replaces the settings of an existing gateway; returns false when there is none.
///
/// When the new settings have `cache_invalidate_on_update` (spec §3.2) and differ from the stored ones, the cache
/// generation is raised in the same statement. The comparison is made by the database on the row it updates, so
/// it holds against concurrent updates (each sees the settings the previous one committed). It compares the stored
/// text with the new text; both are written by this function from `GatewaySettings` (sorted keys, fixed field
/// order), so equal settings are equal text. A row written by an older build may differ in text only, which costs
/// one extra raise: invalidating too often loses cached answers, never serves stale ones.
pub fn update_settings(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
    settings: &GatewaySettings,
    modified_at_ms: i64,
) -> Result<bool, Error> {
    use diesel::dsl::case_when;
    use diesel::sql_types::BigInt;

    let raise = i64::from(settings.cache_invalidate_on_update);
    let settings = serde_json::to_string(settings).expect("gateway settings always serialise");
    // Every right-hand side reads the row as it was before this statement, on both backends.
    let changed = gateways::settings.ne(settings.clone());
    let n = diesel::update(
        gateways::table
            .filter(gateways::account_id.eq(account_id))
            .filter(gateways::id.eq(id)),
    )
    .set((
        gateways::cache_generation.eq(gateways::cache_generation
            + case_when(changed, raise.into_sql::<BigInt>()).otherwise(0_i64.into_sql::<BigInt>())),
        gateways::settings.eq(settings),
        gateways::modified_at.eq(modified_at_ms),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// Deletes a gateway; returns false when there was none.
pub fn delete(conn: &mut AnyConnection, account_id: &str, id: &str) -> Result<bool, Error> {
    let n = diesel::delete(
        gateways::table
            .filter(gateways::account_id.eq(account_id))
            .filter(gateways::id.eq(id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
