//! Account-level custom providers.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::custom_providers as cp;

diesel::define_sql_function! {
    /// SQL's `lower(text)`, the same on PostgreSQL and SQLite; makes the search case-insensitive on both.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

#[derive(Debug, Clone, PartialEq, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = cp)]
#[diesel(treat_none_as_null = true)]
pub struct CustomProviderRow {
    pub id: String,
    pub account_id: String,
    pub slug: String,
    pub name: String,
    pub base_url: String,
    pub enable: bool,
    pub beta: bool,
    pub description: Option<String>,
    pub link: Option<String>,
    pub curl_example: Option<String>,
    pub js_example: Option<String>,
    pub headers: Option<String>,
    pub position: Option<f64>,
    pub logo: String,
    pub created_at: i64,
    pub modified_at: i64,
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct CustomProviderFilter {
    pub enable: Option<bool>,
    pub beta: Option<bool>,
    /// Matches id, name or slug (case-insensitive substring).
    pub search: Option<String>,
}

pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    filter: &CustomProviderFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<CustomProviderRow>, i64), Error> {
    let build = || {
        let mut q = cp::table
            .filter(cp::account_id.eq(account_id.to_owned()))
            .into_boxed();
        if let Some(e) = filter.enable {
            q = q.filter(cp::enable.eq(e));
        }
        if let Some(b) = filter.beta {
            q = q.filter(cp::beta.eq(b));
        }
        if let Some(term) = filter.search.as_deref().filter(|t| !t.is_empty()) {
            let p = crate::store::like_contains(&term.to_lowercase());
            q = q.filter(
                cp::id
                    .like(p.clone())
                    .escape('\\')
                    .or(lower(cp::name).like(p.clone()).escape('\\'))
                    .or(lower(cp::slug).like(p).escape('\\')),
            );
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let rows = build()
        .order((cp::name.asc(), cp::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

/// Enabled custom providers of an account, for config documents.
pub fn enabled_for_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<CustomProviderRow>, Error> {
    Ok(cp::table
        .filter(cp::account_id.eq(account_id))
        .filter(cp::enable.eq(true))
        .order(cp::slug.asc())
        .load(conn)?)
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    id: &str,
) -> Result<Option<CustomProviderRow>, Error> {
    Ok(cp::table
        .filter(cp::account_id.eq(account_id))
        .filter(cp::id.eq(id))
        .first(conn)
        .optional()?)
}

fn slug_taken(slug: &str) -> Error {
    Error::AlreadyExists(format!(
        "a custom provider with slug '{slug}' already exists in this account"
    ))
}

pub fn insert(conn: &mut AnyConnection, row: &CustomProviderRow) -> Result<(), Error> {
    match diesel::insert_into(cp::table)
        .values(row.clone())
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(e) if crate::store::is_unique_violation(&e) => Err(slug_taken(&row.slug)),
        Err(e) => Err(e.into()),
    }
}

/// Writes every field of `row` (found by account and id); returns false when there is none.
pub fn update(conn: &mut AnyConnection, row: &CustomProviderRow) -> Result<bool, Error> {
    match diesel::update(
        cp::table
            .filter(cp::account_id.eq(&row.account_id))
            .filter(cp::id.eq(&row.id)),
    )
    .set(row)
    .execute(conn)
    {
        Ok(n) => Ok(n > 0),
        Err(e) if crate::store::is_unique_violation(&e) => Err(slug_taken(&row.slug)),
        Err(e) => Err(e.into()),
    }
}

pub fn delete(conn: &mut AnyConnection, account_id: &str, id: &str) -> Result<bool, Error> {
    Ok(diesel::delete(
        cp::table
            .filter(cp::account_id.eq(account_id))
            .filter(cp::id.eq(id)),
    )
    .execute(conn)?
        > 0)
}
