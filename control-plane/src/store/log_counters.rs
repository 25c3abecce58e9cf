//! The `log_counters` table: each gateway's stored log count, changed in the same transaction as the rows it
//! counts (by the caps' writes in `log_caps` and the logs API's deletes in `logs`), so neither a cap nor the
//! unfiltered list's `total_count` ever counts millions of rows.
//!
//! A leaf: it knows only its table, so that `logs` and `log_caps` can both use it without using each other.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::log_counters;

/// Adds `delta` to a gateway's stored count.
pub fn adjust_counter(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    delta: i64,
) -> Result<(), Error> {
    if delta == 0 {
        return Ok(());
    }
    change_counter(conn, account_id, gateway_id, delta)
}

/// Locks a gateway's counter row until the transaction ends (an update to the same value; MultiBackend has no
/// `SELECT … FOR UPDATE`), creating the row if there is none yet.
pub(crate) fn lock_counter(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
) -> Result<(), Error> {
    change_counter(conn, account_id, gateway_id, 0)
}

/// An update first, an insert when there was no row: MultiBackend has no upsert, and two writers creating the same
/// row race into a unique violation, answered by updating again. Either way the row stays locked to the end of the
/// transaction (a row this transaction inserted is invisible to others, whose own insert waits on it).
fn change_counter(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    delta: i64,
) -> Result<(), Error> {
    let target = log_counters::table
        .filter(log_counters::account_id.eq(account_id))
        .filter(log_counters::gateway_id.eq(gateway_id));
    if diesel::update(target)
        .set(log_counters::stored.eq(log_counters::stored + delta))
        .execute(conn)?
        > 0
    {
        return Ok(());
    }
    // The loser's unique violation must not abort the caller's transaction (PostgreSQL refuses every later
    // statement of an aborted one), so the insert runs in a savepoint (diesel's nested transaction) and only that
    // is rolled back.
    let created = conn.transaction(|conn| {
        diesel::insert_into(log_counters::table)
            .values((
                log_counters::account_id.eq(account_id),
                log_counters::gateway_id.eq(gateway_id),
                log_counters::stored.eq(delta.max(0)),
            ))
            .execute(conn)
    });
    match created {
        Ok(_) => Ok(()),
        Err(e) if crate::store::is_unique_violation(&e) => {
            diesel::update(target)
                .set(log_counters::stored.eq(log_counters::stored + delta))
                .execute(conn)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A gateway's stored count (0 before its first row).
pub fn stored_count(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
) -> Result<i64, Error> {
    Ok(log_counters::table
        .filter(log_counters::account_id.eq(account_id))
        .filter(log_counters::gateway_id.eq(gateway_id))
        .select(log_counters::stored)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// Every gateway id of the account that has ever stored logs, deleted gateways included (their logs stay). A
/// gateway's row is created in the transaction that stores its first logs (`log_caps::store_with_caps` is the one
/// way logs are stored; migration 000030 counted the logs stored before it) and is never deleted, so the list
/// misses no gateway that has logs.
pub fn gateways_with_logs(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(log_counters::table
        .filter(log_counters::account_id.eq(account_id))
        .select(log_counters::gateway_id)
        .order(log_counters::gateway_id.asc())
        .load(conn)?)
}
