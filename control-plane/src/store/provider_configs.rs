//! Stored provider keys of a gateway. The secret is sealed under the master key before it reaches this module.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::provider_configs as pc;

/// A stored provider key.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = pc)]
pub struct ProviderConfigRow {
    pub id: String,
    pub account_id: String,
    pub gateway_id: String,
    pub provider_slug: String,
    pub alias: String,
    pub default_config: bool,
    /// `MasterKey::seal` output; opened only by data-plane nodes when they compile a config document.
    pub sealed_secret: String,
    pub secret_id: String,
    pub secret_preview: String,
    pub rate_limit: Option<f64>,
    pub rate_limit_period: Option<f64>,
    pub created_at: i64,
    pub modified_at: i64,
}

pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<ProviderConfigRow>, i64), Error> {
    let total = pc::table
        .filter(pc::account_id.eq(account_id))
        .filter(pc::gateway_id.eq(gateway_id))
        .count()
        .get_result(conn)?;
    let rows = pc::table
        .filter(pc::account_id.eq(account_id))
        .filter(pc::gateway_id.eq(gateway_id))
        .order((pc::created_at.asc(), pc::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

/// Every key of a gateway, for its config document.
pub fn all_for_gateway(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
) -> Result<Vec<ProviderConfigRow>, Error> {
    Ok(pc::table
        .filter(pc::account_id.eq(account_id))
        .filter(pc::gateway_id.eq(gateway_id))
        .order((pc::created_at.asc(), pc::id.asc()))
        .load(conn)?)
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<ProviderConfigRow>, Error> {
    Ok(pc::table
        .filter(pc::account_id.eq(account_id))
        .filter(pc::gateway_id.eq(gateway_id))
        .filter(pc::id.eq(id))
        .first(conn)
        .optional()?)
}

/// Inserts a key. When it is the default, the provider's other keys on the gateway stop being the default, in the
/// same transaction, so there is never more than one.
pub fn insert(conn: &mut AnyConnection, row: &ProviderConfigRow) -> Result<(), Error> {
    conn.write_transaction(|conn| {
        if row.default_config {
            diesel::update(
                pc::table
                    .filter(pc::account_id.eq(&row.account_id))
                    .filter(pc::gateway_id.eq(&row.gateway_id))
                    .filter(pc::provider_slug.eq(&row.provider_slug)),
            )
            .set(pc::default_config.eq(false))
            .execute(conn)?;
        }
        match diesel::insert_into(pc::table)
            .values(row.clone())
            .execute(conn)
        {
            Ok(_) => Ok(()),
            Err(e) if crate::store::is_unique_violation(&e) => Err(Error::AlreadyExists(format!(
                "provider '{}' already has a key with alias '{}' on this gateway",
                row.provider_slug, row.alias
            ))),
            Err(e) => Err(e.into()),
        }
    })
}

/// Replaces the secret of a key (rotation); returns false when there is no such key.
pub fn rotate(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
    sealed_secret: &str,
    secret_preview: &str,
    modified_at: i64,
) -> Result<bool, Error> {
    let n = diesel::update(
        pc::table
            .filter(pc::account_id.eq(account_id))
            .filter(pc::gateway_id.eq(gateway_id))
            .filter(pc::id.eq(id)),
    )
    .set((
        pc::sealed_secret.eq(sealed_secret),
        pc::secret_preview.eq(secret_preview),
        pc::modified_at.eq(modified_at),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

pub fn delete(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<bool, Error> {
    let n = diesel::delete(
        pc::table
            .filter(pc::account_id.eq(account_id))
            .filter(pc::gateway_id.eq(gateway_id))
            .filter(pc::id.eq(id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
