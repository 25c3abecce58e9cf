//! The config document version counter: one row, incremented in SQL.
//!
//! [`next_version`] must run inside the transaction that reads the state a document is built from. The UPDATE
//! takes the row lock until commit, so a second publisher's UPDATE waits, and its reads (READ COMMITTED on
//! PostgreSQL; SQLite has one writer) see at least what the first one saw: a higher version never carries older
//! state, across any number of control planes on one database.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::config_version_counter as counter;

/// The one row's id.
const DOCUMENTS: &str = "documents";

/// Takes the next version (the row lock is held until the caller's transaction ends).
pub fn next_version(conn: &mut AnyConnection) -> Result<i64, Error> {
    let updated = diesel::update(counter::table.filter(counter::id.eq(DOCUMENTS)))
        .set(counter::value.eq(counter::value + 1))
        .execute(conn)?;
    if updated != 1 {
        return Err(Error::Internal(
            "the config version counter row is missing; was the migration applied?".into(),
        ));
    }
    Ok(counter::table
        .filter(counter::id.eq(DOCUMENTS))
        .select(counter::value)
        .first(conn)?)
}

/// Raises the counter to at least `floor`, so versions keep going up after the database was restored from a
/// backup older than what the bus (and every node) has seen. Returns whether it moved.
pub fn raise_to_at_least(conn: &mut AnyConnection, floor: i64) -> Result<bool, Error> {
    let updated = diesel::update(
        counter::table
            .filter(counter::id.eq(DOCUMENTS))
            .filter(counter::value.lt(floor)),
    )
    .set(counter::value.eq(floor))
    .execute(conn)?;
    Ok(updated > 0)
}
