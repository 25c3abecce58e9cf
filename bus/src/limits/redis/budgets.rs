//! The I/O of `blocks.rs`: `reserve` from the node's blocks (growing them in one `BLOCK` script when they lack
//! room), `settle` locally, `budget_spent` after this node's own spend is synced, and the background's syncs.

use std::time::Duration;

use super::super::blocks::{BLOCK_TTL_MS, BlockTable, Sync, SyncReply};
use super::super::budget::{Seen, first_refusal, period_end};
use super::super::{BudgetCounter, Reservation, Reserved, distinct};
use super::{Shared, nano_arg, scripts};
use crate::error::BusError;

/// Blocks sent in one script call.
const SYNC_CHUNK: usize = 128;

/// Messages for some blocks on their way: however the call ends (its future may be dropped by a timeout), the
/// blocks stop being busy (a message never answered counts as lost), and the holds a reservation made while it
/// waited are taken back unless it `kept` them.
struct BlockCall<'a> {
    shared: &'a Shared,
    keys: &'a [String],
    /// Index into `keys`, message.
    syncs: Vec<(usize, Sync)>,
    landed: bool,
    /// Counters (indexes into `keys`) where the reservation is held while the call decides.
    tentative: Vec<usize>,
    id: &'a str,
    amount: u64,
    kept: bool,
}

impl<'a> BlockCall<'a> {
    fn syncs(shared: &'a Shared, keys: &'a [String], syncs: Vec<(usize, Sync)>) -> Self {
        Self {
            shared,
            keys,
            syncs,
            landed: false,
            tentative: Vec::new(),
            id: "",
            amount: 0,
            kept: true,
        }
    }

    /// Lands the answers (all of them, or none when the call failed).
    fn land(&mut self, replies: Option<&[SyncReply]>) {
        let shared = self.shared;
        self.land_in(&mut shared.lock_blocks(), replies);
    }

    /// [`Self::land`] under a lock the caller holds (and keeps, to hold from the grown blocks before anyone else).
    fn land_in(&mut self, table: &mut BlockTable, replies: Option<&[SyncReply]>) {
        for (n, (i, sync)) in self.syncs.iter().enumerate() {
            table.landed(&self.keys[*i], sync, replies.and_then(|r| r.get(n)));
        }
        self.landed = true;
    }
}

impl Drop for BlockCall<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.land(None);
        }
        if !self.kept && !self.tentative.is_empty() {
            let mut table = self.shared.lock_blocks();
            for &i in &self.tentative {
                if let Some(block) = table.get_mut(&self.keys[i]) {
                    block.release(self.id, self.amount);
                }
            }
        }
        self.shared.lanes.notify_waiters();
    }
}

impl Shared {
    /// The hash of a budget counter (its holds are `{hash}:holds`).
    fn budget_key(&self, key: &str) -> String {
        format!("{}{key}:budget", self.key_prefix)
    }

    /// Holds `amount` under every counter: from this node's blocks where they have room, and for the rest one
    /// `BLOCK` script that grows those blocks, all or none.
    pub(super) async fn reserve_in_blocks(
        &self,
        id: &str,
        counters: &[BudgetCounter],
        amount: u64,
        hold_for: Duration,
    ) -> Result<Reserved, BusError> {
        let merged = distinct(counters.iter().map(|c| (c.key.as_str(), c.limit)));
        let keys: Vec<String> = merged
            .counters
            .iter()
            .map(|c| self.budget_key(c.id))
            .collect();
        let ends: Vec<i64> = merged
            .counters
            .iter()
            .map(|c| period_end(counters, &merged.group_of, c.report))
            .collect();
        let hold_ms = i64::try_from(hold_for.as_millis()).unwrap_or(i64::MAX / 4);
        let held = || {
            Reserved::Held(Reservation {
                id: id.to_owned(),
                counters: counters.to_vec(),
                amount,
            })
        };
        let (mut call, deadline) = loop {
            // Registered before looking, so a call ending between the look and the wait is not missed.
            let ended = self.lanes.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let now_ms = self.local_ms();
            let deadline = now_ms.saturating_add(hold_ms);
            let look = {
                let mut table = self.lock_blocks();
                let mut short = Vec::new();
                let mut busy = false;
                for (i, c) in merged.counters.iter().enumerate() {
                    let block = table.block(&keys[i], c.limit, ends[i], now_ms);
                    block.prune(now_ms);
                    if !block.holds(id, amount) && !block.has_room(amount, c.limit, now_ms) {
                        busy |= block.busy();
                        short.push(i);
                    }
                }
                if busy {
                    None
                } else {
                    let mut tentative = Vec::new();
                    for i in (0..keys.len()).filter(|i| !short.contains(i)) {
                        let block = table.get_mut(&keys[i]).expect("made above");
                        if !block.holds(id, amount) {
                            tentative.push(i);
                        }
                        block.hold(id, amount, deadline, now_ms);
                    }
                    let syncs: Vec<(usize, Sync)> = short
                        .iter()
                        .map(|&i| {
                            let block = table.get_mut(&keys[i]).expect("made above");
                            (i, block.grow(amount, merged.counters[i].limit, now_ms))
                        })
                        .collect();
                    Some((tentative, syncs))
                }
            };
            match look {
                // One message per block at a time: wait for the one on its way, then look again.
                None => ended.await,
                Some((_, syncs)) if syncs.is_empty() => return Ok(held()),
                Some((tentative, syncs)) => {
                    let mut call = BlockCall::syncs(self, &keys, syncs);
                    call.tentative = tentative;
                    call.id = id;
                    call.amount = amount;
                    call.kept = false;
                    break (call, deadline);
                }
            }
        };
        let replies = self.send_syncs(&keys, &call.syncs).await?;
        let mut table = self.lock_blocks();
        call.land_in(&mut table, Some(&replies));
        let now_ms = self.local_ms();
        let refused = replies.first().is_some_and(|r| r.refused);
        let fits = !refused
            && call.syncs.iter().all(|(i, _)| {
                table
                    .get_mut(&keys[*i])
                    .is_some_and(|b| b.has_room(amount, merged.counters[*i].limit, now_ms))
            });
        if fits {
            for (i, _) in &call.syncs {
                if let Some(block) = table.get_mut(&keys[*i]) {
                    block.hold(id, amount, deadline, now_ms);
                }
            }
            call.kept = true;
            drop(table);
            return Ok(held());
        }
        drop(table);
        // Counters with room here cannot refuse; those Redis looked at refuse as Redis counts them.
        let seen: Vec<Seen> = (0..keys.len())
            .map(|i| match call.syncs.iter().position(|(j, _)| *j == i) {
                Some(n) => Seen {
                    spent: replies[n].spent,
                    held: replies[n].held,
                    already: false,
                },
                None => Seen {
                    spent: 0,
                    held: 0,
                    already: true,
                },
            })
            .collect();
        let first_sent = call.syncs[0].0;
        drop(call);
        Ok(
            first_refusal(counters, &merged.group_of, &seen, amount).unwrap_or_else(|| {
                // Redis had room but a block came back smaller than the node held (it had lapsed): refused at
                // the first counter sent, with what Redis counts.
                Reserved::Refused {
                    index: merged.counters[first_sent].report,
                    spent: replies[0].spent,
                    held: replies[0].held,
                }
            }),
        )
    }

    /// Releases the reservation's hold in this node's blocks and counts `actual`; the background sends it on.
    pub(super) fn settle_in_blocks(&self, reservation: &Reservation, actual: u64) {
        let counters = &reservation.counters;
        let merged = distinct(counters.iter().map(|c| (c.key.as_str(), c.limit)));
        let keys: Vec<String> = merged
            .counters
            .iter()
            .map(|c| self.budget_key(c.id))
            .collect();
        let now_ms = self.local_ms();
        let mut table = self.lock_blocks();
        for (c, key) in merged.counters.iter().zip(&keys) {
            let end = period_end(counters, &merged.group_of, c.report);
            table.block(key, c.limit, end, now_ms).settle(
                &reservation.id,
                reservation.amount,
                actual,
                now_ms,
            );
        }
    }

    /// What each counter's period spent, in Redis, once this node's own settled spend is counted there.
    pub(super) async fn budget_spent_now(
        &self,
        counters: &[BudgetCounter],
    ) -> Result<Vec<u64>, BusError> {
        let keys: Vec<String> = counters.iter().map(|c| self.budget_key(&c.key)).collect();
        self.sync_unflushed(&keys).await?;
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("HGET").arg(key).arg("s");
        }
        let spent: Vec<Option<i64>> =
            self.noted(pipe.query_async(&mut self.commands.clone()).await)?;
        Ok(spent
            .into_iter()
            .map(|s| s.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
            .collect())
    }

    /// Syncs the blocks of `keys` that hold spend Redis has not counted, waiting for messages on their way.
    async fn sync_unflushed(&self, keys: &[String]) -> Result<(), BusError> {
        loop {
            let ended = self.lanes.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let now_ms = self.local_ms();
            let mut busy = false;
            let mut syncs = Vec::new();
            {
                let mut table = self.lock_blocks();
                for (i, key) in keys.iter().enumerate() {
                    let Some(block) = table.get_mut(key) else {
                        continue;
                    };
                    if block.busy() {
                        busy |= block.unflushed();
                    } else if block.unflushed() {
                        syncs.push((i, block.sync(now_ms)));
                    }
                }
            }
            if syncs.is_empty() {
                if !busy {
                    return Ok(());
                }
                ended.await;
                continue;
            }
            let mut call = BlockCall::syncs(self, keys, syncs);
            let replies = self.send_syncs(keys, &call.syncs).await?;
            call.land(Some(&replies));
        }
    }

    /// The background's part for budgets: the blocks that need a message (`closing`: every block, retired).
    pub(super) async fn sync_blocks(&self, closing: bool) -> Result<(), BusError> {
        let due = self.lock_blocks().due(self.local_ms(), closing);
        self.send_all(due).await
    }

    /// Syncs every block with spend Redis has not counted (for `flush`); `true` when a message on its way still
    /// carries some.
    pub(super) async fn sync_all_unflushed(&self) -> Result<bool, BusError> {
        let due = self.lock_blocks().flush_due(self.local_ms());
        self.send_all(due).await?;
        Ok(self.lock_blocks().unflushed_in_flight())
    }

    /// Sends `due` (blocks already marked busy) in chunks, landing each answer.
    async fn send_all(&self, due: Vec<(String, Sync)>) -> Result<(), BusError> {
        if due.is_empty() {
            return Ok(());
        }
        let (keys, syncs): (Vec<String>, Vec<Sync>) = due.into_iter().unzip();
        let mut syncs = syncs.into_iter().enumerate().peekable();
        // Every chunk in its guard before the first is sent, so that none stays busy if this future is dropped.
        let mut calls = Vec::new();
        while syncs.peek().is_some() {
            calls.push(BlockCall::syncs(
                self,
                &keys,
                syncs.by_ref().take(SYNC_CHUNK).collect(),
            ));
        }
        let mut result = Ok(());
        for mut call in calls {
            match self.send_syncs(&keys, &call.syncs).await {
                Ok(replies) => call.land(Some(&replies)),
                Err(e) => result = Err(e),
            }
        }
        result
    }

    /// One `BLOCK` script over `syncs`.
    async fn send_syncs(
        &self,
        keys: &[String],
        syncs: &[(usize, Sync)],
    ) -> Result<Vec<SyncReply>, BusError> {
        let mut invocation = scripts::BLOCK.prepare_invoke();
        invocation.arg(self.now_arg()).arg(BLOCK_TTL_MS);
        for (i, sync) in syncs {
            let hash = &keys[*i];
            invocation
                .key(hash)
                .key(format!("{hash}:holds"))
                .arg(nano_arg(sync.limit))
                .arg(sync.period_end_ms)
                .arg(format!("n:{}:{}", self.node, sync.incarnation))
                .arg(format!("b:{}:{}", self.node, sync.incarnation))
                .arg(sync.version)
                .arg(nano_arg(sync.spent))
                .arg(nano_arg(sync.used))
                .arg(nano_arg(sync.keep))
                .arg(nano_arg(sync.need))
                .arg(nano_arg(sync.want))
                .arg(if sync.retire { "1" } else { "0" });
        }
        let reply: Vec<i64> =
            self.noted(invocation.invoke_async(&mut self.commands.clone()).await)?;
        let Some((&refused, blocks)) = reply.split_first() else {
            return Err(BusError::corrupt("block script reply", "empty"));
        };
        if blocks.len() != 5 * syncs.len() {
            return Err(BusError::corrupt(
                "block script reply",
                format!("{} integers for {} blocks", blocks.len(), syncs.len()),
            ));
        }
        let amount = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(blocks
            .chunks_exact(5)
            .map(|b| SyncReply {
                stale: b[0] == 1,
                refused: refused == 1,
                size: amount(b[1]),
                spent: amount(b[2]),
                held: amount(b[3]),
                counted: amount(b[4]),
            })
            .collect())
    }
}
