//! Access control (issue 14): the teams, users and virtual keys of an account, each with its limits.
//!
//! Nested values (a key's gateways and model patterns, metadata, limits) are stored as JSON text, the portable
//! subset's way, and typed here on the way in and out: the records the API and the documents see are typed. Every
//! query takes the account id. A key's secret is never stored: only its SHA-256 and a short preview.

pub mod keys;
pub mod subjects;
pub mod teams;
pub mod users;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Metadata of a key, user or team: string, number and boolean values (checked by the API).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

diesel::define_sql_function! {
    /// SQL's `lower(text)`, the same on PostgreSQL and SQLite; makes the name search case-insensitive on both.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A stored JSON column's text.
fn to_json<T: Serialize>(value: &T) -> String {
    // Maps, vectors and the limits' plain fields always serialise.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A stored JSON column, typed; `what` names it in the error (a row written by something else than this code).
fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("stored {what} does not parse: {e}")))
}

/// Whether a diesel error is a foreign-key violation: a team or user deleted by a concurrent call between the
/// API's check and its write, which the schema's foreign keys refuse.
pub fn is_foreign_key_violation(e: &Error) -> bool {
    matches!(
        e,
        Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _
        ))
    )
}
