//! Token signing keys and issued tokens.

use diesel::prelude::*;
use gatehouse_shared::token::Scope;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{api_tokens, signing_keys};

/// A signing key as stored: the private half sealed under the master key.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    /// Raw Ed25519 public key, base64.
    pub public_key: String,
    /// PKCS#8 DER of the private key, sealed with the master key.
    pub sealed_private_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// Every key that still verifies tokens, newest first: the first one signs.
pub fn active_signing_keys(conn: &mut AnyConnection) -> Result<Vec<SigningKeyRow>, Error> {
    Ok(signing_keys::table
        .filter(signing_keys::retired_at.is_null())
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .load(conn)?)
}

pub fn insert_signing_key(conn: &mut AnyConnection, row: &SigningKeyRow) -> Result<(), Error> {
    diesel::insert_into(signing_keys::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// An issued token's record (the token itself is never stored: it can be re-verified from its signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub description: String,
    pub accounts: Vec<String>,
    pub scopes: Vec<Scope>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = api_tokens)]
struct TokenRow {
    id: String,
    description: String,
    accounts: String,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn into_record(self) -> Result<TokenRecord, Error> {
        let bad = |e: serde_json::Error| {
            Error::Internal(format!("stored token {} does not parse: {e}", self.id))
        };
        Ok(TokenRecord {
            accounts: serde_json::from_str(&self.accounts).map_err(bad)?,
            scopes: serde_json::from_str(&self.scopes).map_err(bad)?,
            id: self.id,
            description: self.description,
            created_at_ms: self.created_at,
            expires_at_ms: self.expires_at,
            revoked_at_ms: self.revoked_at,
        })
    }
}

pub fn insert_token(conn: &mut AnyConnection, record: &TokenRecord) -> Result<(), Error> {
    let row = TokenRow {
        id: record.id.clone(),
        description: record.description.clone(),
        accounts: serde_json::to_string(&record.accounts).expect("strings serialise"),
        scopes: serde_json::to_string(&record.scopes).expect("scopes serialise"),
        created_at: record.created_at_ms,
        expires_at: record.expires_at_ms,
        revoked_at: record.revoked_at_ms,
    };
    diesel::insert_into(api_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn list_tokens(conn: &mut AnyConnection) -> Result<Vec<TokenRecord>, Error> {
    let rows: Vec<TokenRow> = api_tokens::table
        .order((api_tokens::created_at.asc(), api_tokens::id.asc()))
        .load(conn)?;
    rows.into_iter().map(TokenRow::into_record).collect()
}

pub fn get_token(conn: &mut AnyConnection, id: &str) -> Result<Option<TokenRecord>, Error> {
    let row: Option<TokenRow> = api_tokens::table
        .filter(api_tokens::id.eq(id))
        .first(conn)
        .optional()?;
    row.map(TokenRow::into_record).transpose()
}

/// Marks a token revoked; returns false when no such token exists. Revoking twice keeps the first time.
pub fn revoke_token(conn: &mut AnyConnection, id: &str, at_ms: i64) -> Result<bool, Error> {
    let exists = diesel::select(diesel::dsl::exists(
        api_tokens::table.filter(api_tokens::id.eq(id)),
    ))
    .get_result(conn)?;
    if exists {
        diesel::update(
            api_tokens::table
                .filter(api_tokens::id.eq(id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(Some(at_ms)))
        .execute(conn)?;
    }
    Ok(exists)
}

/// Ids of revoked tokens that have not expired at `now_ms`, sorted: what nodes must refuse. An expired token is
/// refused anyway, so it drops out of the list and keeps the deployment document small.
pub fn revoked_unexpired_ids(conn: &mut AnyConnection, now_ms: i64) -> Result<Vec<String>, Error> {
    Ok(api_tokens::table
        .filter(api_tokens::revoked_at.is_not_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now_ms)),
        )
        .select(api_tokens::id)
        .order(api_tokens::id.asc())
        .load(conn)?)
}

/// Whether the token id is unknown to this deployment or revoked. Unknown counts as revoked: a signature from our
/// key over an id we never recorded means the database was reset or the key leaked.
pub fn is_revoked_or_unknown(conn: &mut AnyConnection, id: &str) -> Result<bool, Error> {
    let revoked_at: Option<Option<i64>> = api_tokens::table
        .filter(api_tokens::id.eq(id))
        .select(api_tokens::revoked_at)
        .first(conn)
        .optional()?;
    Ok(!matches!(revoked_at, Some(None)))
}
