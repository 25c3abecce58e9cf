//! Per-gateway log storage caps (`log_management`, spec §1.2/§3.6): at the cap, `STOP_INSERTING` refuses new
//! records and `DELETE_OLDEST` makes room by deleting the oldest ones. A counter per gateway (`log_counters`),
//! changed in the same transaction as the rows, tells how many are stored; the rows go in through `logs`.

use std::collections::BTreeMap;

use diesel::prelude::*;
use gatehouse_shared::gateway::LogManagementStrategy;
use gatehouse_shared::log::LogRecord;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{log_bodies, logs};
use crate::store::log_counters::{adjust_counter, lock_counter};
// The counter's functions lived here before `log_counters` was split out; callers outside the crate read the count
// through this module still.
pub use crate::store::log_counters::stored_count;

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    /// New rows (a redelivered record is not new).
    pub inserted: usize,
    /// Records refused because their gateway was at its cap with `STOP_INSERTING`.
    pub refused_at_cap: usize,
    /// Old rows deleted to stay under a `DELETE_OLDEST` cap.
    pub evicted: usize,
}

/// Stores records, gateway by gateway, applying each gateway's cap. One transaction per gateway, so a counter and
/// its rows always agree.
pub fn store_with_caps(
    conn: &mut AnyConnection,
    records: &[LogRecord],
) -> Result<StoreOutcome, Error> {
    // By reference: a record (bodies and all) is never copied on its way to the insert.
    let mut by_gateway: BTreeMap<(&str, &str), Vec<&LogRecord>> = BTreeMap::new();
    for r in records {
        by_gateway
            .entry((r.account_id.as_str(), r.gateway_id.as_str()))
            .or_default()
            .push(r);
    }
    let mut total = StoreOutcome::default();
    for ((account_id, gateway_id), mut batch) in by_gateway {
        let outcome = conn.write_transaction(|conn| {
            let settings =
                crate::store::gateways::get(conn, account_id, gateway_id)?.map(|g| g.settings);
            let cap = settings
                .as_ref()
                .and_then(|s| s.log_management)
                .filter(|c| *c > 0);
            // Cloudflare's legacy logs stop saving at the cap unless automatic deletion is chosen.
            let strategy = settings
                .as_ref()
                .and_then(|s| s.log_management_strategy)
                .unwrap_or(LogManagementStrategy::StopInserting);
            let mut outcome = StoreOutcome::default();
            if let (Some(cap), LogManagementStrategy::StopInserting) = (cap, strategy) {
                // Writers of one gateway (several control planes, or one storing two batches at once) take turns
                // from here: without the lock two would read the same count and both fill the same room.
                lock_counter(conn, account_id, gateway_id)?;
                let room =
                    usize::try_from((cap - stored_count(conn, account_id, gateway_id)?).max(0))
                        .unwrap_or(0);
                if batch.len() > room {
                    // The oldest records of the batch are kept, as they would have been had they come alone.
                    batch.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
                    outcome.refused_at_cap = batch.len() - room;
                    batch.truncate(room);
                }
            }
            outcome.inserted = crate::store::logs::insert_batch(conn, &batch)?;
            adjust_counter(conn, account_id, gateway_id, outcome.inserted as i64)?;
            // The counter row is locked from here to the commit (the update above took it, or an earlier
            // `lock_counter`), so the count read next is every writer's, and two writers never evict for the same
            // excess. Without a cap the lock is taken this late, so writers of one gateway insert side by side.
            if let (Some(cap), LogManagementStrategy::DeleteOldest) = (cap, strategy) {
                if outcome.inserted == 0 {
                    lock_counter(conn, account_id, gateway_id)?;
                }
                let over = stored_count(conn, account_id, gateway_id)? - cap;
                if over > 0 {
                    outcome.evicted = evict_oldest(conn, account_id, gateway_id, over)?;
                    adjust_counter(conn, account_id, gateway_id, -(outcome.evicted as i64))?;
                }
            }
            Ok::<_, Error>(outcome)
        })?;
        total.inserted += outcome.inserted;
        total.refused_at_cap += outcome.refused_at_cap;
        total.evicted += outcome.evicted;
    }
    Ok(total)
}

fn evict_oldest(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    n: i64,
) -> Result<usize, Error> {
    let ids: Vec<String> = logs::table
        .filter(logs::account_id.eq(account_id))
        .filter(logs::gateway_id.eq(gateway_id))
        .order((logs::created_at.asc(), logs::id.asc()))
        .select(logs::id)
        .limit(n)
        .load(conn)?;
    diesel::delete(log_bodies::table.filter(log_bodies::id.eq_any(&ids))).execute(conn)?;
    Ok(diesel::delete(logs::table.filter(logs::id.eq_any(&ids))).execute(conn)?)
}
