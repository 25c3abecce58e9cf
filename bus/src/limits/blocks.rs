//! Budget holds leased in blocks (`RedisLimits::reserve`, `settle`), so that most reservations and every settle
//! make no Redis round trip. No I/O and no clock here; `redis.rs` sends what [`BlockTable`] hands it (the `BLOCK`
//! script of `scripts.rs`) and reports back.
//!
//! # A block
//! For each budget counter it uses, a node holds a *block* in Redis: one hold of its own in the counter's holds
//! (member `b:{node}:{incarnation}:{size}`), counted in `h` like any hold, with a deadline the node renews while
//! it uses the block ([`BLOCK_TTL_MS`]). The node grants its requests' holds from the block locally (a
//! [`BudgetState`] of its own: holds with deadlines, idempotent settles) and settles them locally. A settle adds
//! the real cost to this node's *cumulative spend* for the counter, which the node sends to Redis in its next
//! sync (every flush interval): the script adds what Redis has not counted yet to `s` and shrinks the block by as
//! much, in one step. So at every moment
//!
//! > this node's holds + its spend Redis has not counted ≤ its block,
//!
//! and Redis refuses to grow a block past `spent + held ≤ limit` (every node's block being one of the holds).
//! Together: the holds and spend of all nodes never pass a budget's limit, however many nodes reserve at once,
//! exactly as when every hold was its own member in Redis. What can still pass it is what could before: a request
//! that costs more than it held, a hold that lapsed and is settled late.
//!
//! # Exactly once, in order
//! Only one message per block is on its way at a time. Each carries a version (higher than the last) and the
//! node's cumulative spend, and sets the block's size absolutely; the script keeps the last version it applied and
//! what spend it counted in the counter's hash (field `n:{node}:{incarnation}`), ignores an older message, and
//! adds only the difference to `s`. A message whose answer is lost is simply followed by the next one: nothing is
//! counted twice, nothing lost. While a message is on its way the node assumes the smaller of the block it had
//! and the one it asked for (a shrink takes effect locally when sent, a growth when granted), so it never grants
//! from room Redis may not hold for it.
//!
//! # Growing, shrinking, lapsing
//! - A reservation the block has no room for asks Redis to grow it, in one round trip for all the counters of
//!   the call that lack room (all or none, like the rest of `reserve`). The growth is at least what the request
//!   lacks, and otherwise `min(left / 4, max(16 × the amount, what the node's pace uses in 250 ms))`, where `left`
//!   is what the budget still has: near its limit growths are small, and one node never takes the whole budget
//!   from the others. Redis refuses only when it has less room than the request lacks; then the node refuses
//!   with what Redis counts (`spent`, and as `held` the other nodes' blocks plus this node's own holds).
//! - The background (every flush interval) syncs every block with spend to send, tops up an active block whose
//!   free room is under half of what the node's pace uses in 250 ms (at least 16 × its last amount), gives back
//!   free room beyond twice that, and renews a block whose deadline is less than half its TTL away. A counter
//!   unused for 2 s keeps no free room; one unused for two minutes (past [`SETTLED_KEPT_MS`]) is retired (its
//!   field removed) and forgotten.
//! - The cost, as with rate leases: a node may be refused while other nodes still have free room in their
//!   blocks (at most what their pace needs), and the block of a node that died counts until its deadline
//!   (30 s), then lapses like any hold. A node that cannot reach Redis for longer than that keeps granting from
//!   nothing Redis counts: `FallbackLimits` takes over well before.
//! - A reservation is settled by the node that made it (the data plane does so). One settled on another node
//!   counts its cost there, while its hold stays in its own node's block until the hold's deadline; idempotency
//!   per reservation id is per node.

use std::collections::HashMap;

use super::budget::{BudgetState, SETTLED_KEPT_MS};

/// How long a block counts in Redis after its last sync.
pub(super) const BLOCK_TTL_MS: i64 = 30_000;
/// A block whose deadline is closer than this is renewed.
const RENEW_WITHIN_MS: i64 = BLOCK_TTL_MS / 2;
/// An active block keeps room for this long of its node's pace.
const HORIZON_MS: u64 = 250;
/// … and for at least this many of its last amount; a growth for a request asks for as many of its amount.
const GROW_AMOUNTS: u64 = 16;
/// A counter with no reservation for this long keeps no free room.
const IDLE_MS: i64 = 2_000;
/// A counter with no reservation or settle for this long, holding nothing, is retired and forgotten.
const RETIRE_AFTER_MS: i64 = SETTLED_KEPT_MS + 60_000;
/// The pace is counted in buckets this long.
const PACE_BUCKET_MS: i64 = 1_000;

/// Nano-USD held per second on this node, over the current and the previous one-second bucket.
#[derive(Debug, Clone, Copy)]
struct Pace {
    start_ms: i64,
    current: u64,
    previous: u64,
}

impl Pace {
    fn new() -> Self {
        Self {
            start_ms: i64::MIN,
            current: 0,
            previous: 0,
        }
    }

    fn add(&mut self, now_ms: i64, amount: u64) {
        let since = now_ms.saturating_sub(self.start_ms);
        if since >= PACE_BUCKET_MS {
            let adjacent = since < 2 * PACE_BUCKET_MS;
            self.previous = if adjacent { self.current } else { 0 };
            self.current = 0;
            self.start_ms = if adjacent {
                self.start_ms + PACE_BUCKET_MS
            } else {
                now_ms
            };
        }
        self.current = self.current.saturating_add(amount);
    }

    fn per_s(&self, now_ms: i64) -> u64 {
        let since = now_ms.saturating_sub(self.start_ms);
        if since >= 2 * PACE_BUCKET_MS {
            return 0;
        }
        let covered = PACE_BUCKET_MS + since.clamp(0, PACE_BUCKET_MS);
        self.previous
            .saturating_add(self.current)
            .saturating_mul(1_000)
            / u64::try_from(covered).unwrap_or(1)
    }
}

/// One message for a block, as sent; [`Block::landed`] takes it back with the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sync {
    pub(super) incarnation: u64,
    pub(super) version: u64,
    /// The node's cumulative spend under this incarnation.
    pub(super) spent: u64,
    /// What this node holds now (for a refusal's `held`).
    pub(super) used: u64,
    /// The block's size without growth.
    pub(super) keep: u64,
    /// The growth without which the call is refused (0: none needed).
    pub(super) need: u64,
    /// The growth wanted; Redis grants at most a quarter of what is left (and at least `need`).
    pub(super) want: u64,
    /// The limit the block is grown under: the call's, or the block's own for the background.
    pub(super) limit: u64,
    /// The counter's period end (its keys live a while past it).
    pub(super) period_end_ms: i64,
    /// A request's message (its limit becomes the block's when granted).
    pub(super) request: bool,
    /// Free room promised to the request meanwhile.
    take: u64,
    /// Ends the block and its field (then it is forgotten).
    pub(super) retire: bool,
    sent_ms: i64,
}

/// What the script answered for one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SyncReply {
    /// An older message than one Redis applied: nothing changed.
    pub(super) stale: bool,
    /// The call was refused (no growth for any of its blocks).
    pub(super) refused: bool,
    /// The block's size now (stale: as stored).
    pub(super) size: u64,
    /// Spent in the counter, and held by others plus this node's holds (for a refusal).
    pub(super) spent: u64,
    pub(super) held: u64,
    /// Stale: the cumulative spend Redis counted for this block.
    pub(super) counted: u64,
}

/// One budget counter on this node.
#[derive(Debug)]
pub(super) struct Block {
    incarnation: u64,
    version: u64,
    /// The limit the block's room was taken under: a call under a lower one does not hold from it.
    limit: u64,
    period_end_ms: i64,
    /// This node's holds, and (as its `spent`) everything settled here.
    local: BudgetState,
    /// Spend of earlier incarnations, counted under them.
    base_spent: u64,
    /// The block's size plus the spend Redis counted under this incarnation, as low as Redis may hold it.
    claim: u64,
    /// Spend Redis is known to have counted under this incarnation.
    applied: u64,
    promised: u64,
    /// Local time until which the block surely counts in Redis.
    valid_until_ms: i64,
    busy: bool,
    pace: Pace,
    last_amount: u64,
    /// The last reservation (for the free room kept), and the last reservation or settle (for retiring).
    held_ms: i64,
    used_ms: i64,
}

impl Block {
    fn new(incarnation: u64, limit: u64, period_end_ms: i64, now_ms: i64) -> Self {
        Self {
            incarnation,
            version: 0,
            limit,
            period_end_ms,
            local: BudgetState::new(period_end_ms, now_ms),
            base_spent: 0,
            claim: 0,
            applied: 0,
            promised: 0,
            valid_until_ms: i64::MIN,
            busy: false,
            pace: Pace::new(),
            last_amount: 0,
            held_ms: now_ms,
            used_ms: now_ms,
        }
    }

    /// Spend settled here under this incarnation.
    fn spent(&self) -> u64 {
        self.local.spent().saturating_sub(self.base_spent)
    }

    /// Room to hold from without asking Redis.
    pub(super) fn free(&self) -> u64 {
        self.claim.saturating_sub(
            self.local
                .held()
                .saturating_add(self.spent())
                .saturating_add(self.promised),
        )
    }

    /// Drops holds past their deadline and settled ids kept long enough.
    pub(super) fn prune(&mut self, now_ms: i64) {
        self.local.prune(now_ms);
    }

    /// Whether this node holds `amount` for `id` already (a repeated reserve).
    pub(super) fn holds(&self, id: &str, amount: u64) -> bool {
        self.local.seen(id, amount).already
    }

    /// Whether a hold of `amount` under `limit` fits in the block now.
    pub(super) fn has_room(&self, amount: u64, limit: u64, now_ms: i64) -> bool {
        now_ms < self.valid_until_ms && limit >= self.limit && self.free() >= amount
    }

    /// Holds `amount` for `id` until `deadline_ms` (a hold already there is kept once, its deadline moved).
    pub(super) fn hold(&mut self, id: &str, amount: u64, deadline_ms: i64, now_ms: i64) {
        if !self.holds(id, amount) {
            self.pace.add(now_ms, amount);
            self.last_amount = amount;
        }
        self.local
            .hold(id, amount, deadline_ms, self.period_end_ms, now_ms);
        self.held_ms = now_ms;
        self.used_ms = now_ms;
    }

    /// Takes back a hold made by a call that was then refused.
    pub(super) fn release(&mut self, id: &str, amount: u64) {
        self.local.release(id, amount);
    }

    /// Releases the hold and counts `actual` (once per id within `SETTLED_KEPT_MS`).
    pub(super) fn settle(&mut self, id: &str, amount: u64, actual: u64, now_ms: i64) {
        self.local.prune(now_ms);
        self.local
            .settle(id, amount, actual, self.period_end_ms, now_ms);
        self.used_ms = now_ms;
    }

    pub(super) fn busy(&self) -> bool {
        self.busy
    }

    /// Whether spend settled here has not reached Redis yet.
    pub(super) fn unflushed(&self) -> bool {
        self.spent() > self.applied
    }

    /// The free room an active block keeps: its pace over [`HORIZON_MS`], at least [`GROW_AMOUNTS`] of its last
    /// amount; none once idle.
    fn target_free(&self, now_ms: i64) -> u64 {
        if now_ms - self.held_ms >= IDLE_MS {
            return 0;
        }
        (self.pace.per_s(now_ms).saturating_mul(HORIZON_MS) / 1_000)
            .max(self.last_amount.saturating_mul(GROW_AMOUNTS))
    }

    /// The message asking Redis for room to hold `amount` under `limit`: what the block has free is promised to
    /// the request meanwhile, and Redis is asked for the rest (and more, for the requests to come).
    pub(super) fn grow(&mut self, amount: u64, limit: u64, now_ms: i64) -> Sync {
        let used = self.local.held();
        let free = self.free();
        // Room taken under a higher limit is not this call's: give it back, and ask for all of `amount`.
        let (keep, take) = if limit < self.limit {
            (used, 0)
        } else {
            (used.saturating_add(free), free.min(amount))
        };
        let need = amount - take;
        let want = need
            .max(amount.saturating_mul(GROW_AMOUNTS))
            .max(self.target_free(now_ms).saturating_sub(free - take));
        self.promised += take;
        self.send(now_ms, keep, need, want, limit, true, take, false)
    }

    /// The background's message for this block, if it needs one now; `closing`: the store is going away, so
    /// every block is retired.
    pub(super) fn due(&mut self, now_ms: i64, closing: bool) -> Option<Sync> {
        if self.busy {
            return None;
        }
        self.prune(now_ms);
        if closing {
            return Some(self.send(now_ms, 0, 0, 0, self.limit, false, 0, true));
        }
        let used = self.local.held();
        let free = self.free();
        let size = self.claim.saturating_sub(self.applied);
        let (keep_free, want) = self.free_wanted(now_ms);
        let renew =
            (size > 0 || used > 0) && self.valid_until_ms.saturating_sub(now_ms) < RENEW_WITHIN_MS;
        let retire = now_ms - self.used_ms >= RETIRE_AFTER_MS
            && used == 0
            && !self.unflushed()
            && keep_free == 0;
        if !(self.unflushed() || renew || keep_free < free || want > 0 || retire) {
            return None;
        }
        Some(self.send(
            now_ms,
            used.saturating_add(keep_free),
            0,
            want,
            self.limit,
            false,
            0,
            retire,
        ))
    }

    /// A background message now, needed or not (the block must not be busy): its spend counted, its size as the
    /// background would keep it.
    pub(super) fn sync(&mut self, now_ms: i64) -> Sync {
        self.prune(now_ms);
        let (keep_free, want) = self.free_wanted(now_ms);
        let keep = self.local.held().saturating_add(keep_free);
        self.send(now_ms, keep, 0, want, self.limit, false, 0, false)
    }

    /// How much of its free room the block keeps (up to twice its target, so it is not given back and taken
    /// again at every sync), and how much more it wants (when it has less than half its target).
    fn free_wanted(&self, now_ms: i64) -> (u64, u64) {
        let free = self.free();
        let target = self.target_free(now_ms);
        let want = if free < target / 2 { target - free } else { 0 };
        (free.min(target.saturating_mul(2)), want)
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now_ms: i64,
        keep: u64,
        need: u64,
        want: u64,
        limit: u64,
        request: bool,
        take: u64,
        retire: bool,
    ) -> Sync {
        self.busy = true;
        self.version += 1;
        let spent = self.spent();
        // A shrink counts from now: the block may be that small in Redis as soon as the message arrives.
        self.claim = self.claim.min(keep.saturating_add(spent));
        Sync {
            incarnation: self.incarnation,
            version: self.version,
            spent,
            used: self.local.held(),
            keep,
            need,
            want,
            limit,
            period_end_ms: self.period_end_ms,
            request,
            take,
            retire,
            sent_ms: now_ms,
        }
    }

    /// The answer to `sync` came (`None`: it failed or was abandoned, and what Redis did is unknown).
    fn landed(&mut self, sync: &Sync, reply: Option<&SyncReply>) {
        self.busy = false;
        self.promised = self.promised.saturating_sub(sync.take);
        let Some(reply) = reply else {
            return;
        };
        if reply.stale {
            self.applied = self.applied.max(reply.counted);
            return;
        }
        self.applied = sync.spent;
        self.claim = reply.size.saturating_add(sync.spent);
        self.valid_until_ms = sync.sent_ms.saturating_add(BLOCK_TTL_MS);
        if sync.request && !reply.refused {
            self.limit = sync.limit;
        }
    }
}

/// Every budget counter this node holds a block of (or settled under), by the counter's Redis hash key.
#[derive(Debug, Default)]
pub(super) struct BlockTable {
    blocks: HashMap<String, Block>,
    incarnations: u64,
}

impl BlockTable {
    /// The counter's block, made (empty) when this node has none.
    pub(super) fn block(
        &mut self,
        key: &str,
        limit: u64,
        period_end_ms: i64,
        now_ms: i64,
    ) -> &mut Block {
        if !self.blocks.contains_key(key) {
            self.incarnations += 1;
            let block = Block::new(self.incarnations, limit, period_end_ms, now_ms);
            self.blocks.insert(key.to_owned(), block);
        }
        let block = self.blocks.get_mut(key).expect("inserted above");
        block.period_end_ms = block.period_end_ms.max(period_end_ms);
        block
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Block> {
        self.blocks.get_mut(key)
    }

    /// The background's messages now (marking their blocks busy).
    pub(super) fn due(&mut self, now_ms: i64, closing: bool) -> Vec<(String, Sync)> {
        self.blocks
            .iter_mut()
            .filter_map(|(key, block)| Some((key.clone(), block.due(now_ms, closing)?)))
            .collect()
    }

    /// Background messages for every block with spend Redis has not counted and no message on its way.
    pub(super) fn flush_due(&mut self, now_ms: i64) -> Vec<(String, Sync)> {
        self.blocks
            .iter_mut()
            .filter(|(_, b)| !b.busy && b.unflushed())
            .map(|(key, block)| (key.clone(), block.sync(now_ms)))
            .collect()
    }

    /// Whether a message on its way carries spend Redis has not counted yet.
    pub(super) fn unflushed_in_flight(&self) -> bool {
        self.blocks.values().any(|b| b.busy && b.unflushed())
    }

    /// The answer to `sync` for `key` came. A retired block is forgotten, unless it was used meanwhile: then it
    /// carries on under a new incarnation (the old one's field is gone from Redis).
    pub(super) fn landed(&mut self, key: &str, sync: &Sync, reply: Option<&SyncReply>) {
        let Some(block) = self.blocks.get_mut(key) else {
            return;
        };
        if block.incarnation != sync.incarnation {
            return;
        }
        block.landed(sync, reply);
        if sync.retire && reply.is_some_and(|r| !r.stale) {
            if block.local.held() == 0 && !block.unflushed() {
                self.blocks.remove(key);
            } else {
                self.incarnations += 1;
                block.incarnation = self.incarnations;
                block.version = 0;
                block.base_spent = block.base_spent.saturating_add(block.applied);
                block.applied = 0;
                block.claim = 0;
                block.valid_until_ms = i64::MIN;
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "p:limits:budget:a:key:k:month:0:budget";
    const LIMIT: u64 = 1_000;
    const LONG: i64 = 900_000;

    /// Lands `sync` as Redis would with `room` left beside this block: the growth it asks for, capped as the
    /// script caps it.
    fn answer(table: &mut BlockTable, sync: &Sync, room: u64) -> SyncReply {
        let extra = room.saturating_sub(sync.keep);
        let refused = sync.need > extra;
        let growth = if refused {
            0
        } else if sync.need > 0 {
            sync.need.max(sync.want.min(extra / 4))
        } else {
            sync.want.min(extra / 4)
        };
        let reply = SyncReply {
            stale: false,
            refused,
            size: if sync.retire { 0 } else { sync.keep + growth },
            spent: 0,
            held: 0,
            counted: 0,
        };
        table.landed(KEY, sync, Some(&reply));
        reply
    }

    #[test]
    fn a_block_grows_for_a_request_then_grants_locally_and_counts_settles_until_synced() {
        let mut table = BlockTable::default();
        let block = table.block(KEY, LIMIT, LONG, 0);
        assert!(!block.has_room(10, LIMIT, 0));
        let sync = block.grow(10, LIMIT, 0);
        assert_eq!((sync.keep, sync.need, sync.want), (0, 10, 160));
        let reply = answer(&mut table, &sync, LIMIT);
        assert_eq!(
            reply.size, 160,
            "16 amounts, under a quarter of what is left"
        );
        let block = table.get_mut(KEY).unwrap();
        block.hold("r1", 10, LONG, 0);
        assert_eq!(block.free(), 150);
        for i in 0..15 {
            assert!(block.has_room(10, LIMIT, 1));
            block.hold(&format!("r{}", i + 2), 10, LONG, 1);
        }
        assert!(!block.has_room(10, LIMIT, 1));
        // Settled at less than held: the rest is free again; the cost stays in the block until synced.
        block.settle("r1", 10, 4, 2);
        block.settle("r1", 10, 4, 3);
        assert_eq!(block.free(), 6);
        assert!(block.unflushed());
        // The sync sends the cumulative spend and keeps the holds plus the free room the pace asks for.
        let sync = block.due(4, false).unwrap();
        assert_eq!(sync.spent, 4);
        assert_eq!(sync.keep, 150 + 6);
        assert!(sync.want > 0, "under half of 16 amounts free: topped up");
        answer(&mut table, &sync, LIMIT - 4);
        let block = table.get_mut(KEY).unwrap();
        assert!(!block.unflushed());
        assert!(block.free() >= 160 - 6);
    }

    #[test]
    fn a_shrink_counts_when_sent_and_a_growth_when_granted() {
        let mut table = BlockTable::default();
        let block = table.block(KEY, LIMIT, LONG, 0);
        let sync = block.grow(10, LIMIT, 0);
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        assert_eq!(block.free(), 160);
        // Idle: everything free is given back, and no longer held from as soon as the message goes.
        let sync = block.due(IDLE_MS, false).unwrap();
        assert_eq!((sync.keep, sync.want), (0, 0));
        assert_eq!(block.free(), 0);
        // Lost: the block may still be 160 in Redis, or 0; the node assumes 0.
        table.landed(KEY, &sync, None);
        let block = table.get_mut(KEY).unwrap();
        assert_eq!(block.free(), 0);
        // A request's growth: its share of the free room is promised while the message is out.
        let sync = block.grow(10, LIMIT, IDLE_MS + 1);
        assert!(block.busy());
        assert_eq!(block.free(), 0);
        table.landed(KEY, &sync, None);
        let block = table.get_mut(KEY).unwrap();
        assert!(!block.busy());
        assert_eq!(block.free(), 0, "nothing was granted");
    }

    #[test]
    fn a_refused_growth_keeps_the_block_and_a_lower_limit_gives_its_free_room_back() {
        let mut table = BlockTable::default();
        let block = table.block(KEY, LIMIT, LONG, 0);
        let sync = block.grow(100, LIMIT, 0);
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        block.hold("r1", 100, LONG, 0);
        let free = block.free();
        assert!(free > 0);
        // Refused: Redis has less room than the request lacks.
        let sync = block.grow(free + 50, LIMIT, 1);
        assert_eq!(sync.need, 50);
        let reply = answer(&mut table, &sync, sync.keep + 49);
        assert!(reply.refused);
        let block = table.get_mut(KEY).unwrap();
        assert_eq!(block.free(), free);
        // A call under a lower limit holds nothing from room taken under the higher one.
        assert!(!block.has_room(1, LIMIT / 2, 2));
        let sync = block.grow(1, LIMIT / 2, 2);
        assert_eq!((sync.keep, sync.need), (100, 1));
        assert_eq!(block.free(), 0);
        answer(&mut table, &sync, 200);
        let block = table.get_mut(KEY).unwrap();
        assert!(block.has_room(1, LIMIT / 2, 3));
    }

    #[test]
    fn a_block_is_renewed_before_its_deadline_and_retired_when_long_unused() {
        let mut table = BlockTable::default();
        let block = table.block(KEY, LIMIT, LONG, 0);
        let sync = block.grow(10, LIMIT, 0);
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        block.hold("r1", 10, LONG, 0);
        // The holds keep the block in use: past the idle time it keeps only them, and is renewed in time.
        let sync = block.due(IDLE_MS, false).unwrap();
        assert_eq!(sync.keep, 10);
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        assert!(block.due(IDLE_MS + 1, false).is_none());
        let sync = block.due(IDLE_MS + RENEW_WITHIN_MS + 1, false).unwrap();
        assert!(!sync.retire);
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        block.settle("r1", 10, 10, 20_000);
        let sync = block.due(20_001, false).unwrap();
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        assert!(block.due(20_002, false).is_none());
        let sync = block.due(20_000 + RETIRE_AFTER_MS, false).unwrap();
        assert!(sync.retire);
        answer(&mut table, &sync, LIMIT);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_block_settled_while_it_retires_carries_on_under_a_new_incarnation() {
        let mut table = BlockTable::default();
        let block = table.block(KEY, LIMIT, LONG, 0);
        block.settle("late", 10, 7, 0);
        let sync = block.due(1, false).unwrap();
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        let sync = block.due(RETIRE_AFTER_MS, false).unwrap();
        assert!(sync.retire);
        block.settle("later", 10, 5, RETIRE_AFTER_MS);
        answer(&mut table, &sync, LIMIT);
        let block = table.get_mut(KEY).unwrap();
        assert_eq!(block.incarnation, 2);
        // Only what the old incarnation had not counted goes under the new one.
        let sync = block.due(RETIRE_AFTER_MS + 1, false).unwrap();
        assert_eq!((sync.incarnation, sync.version, sync.spent), (2, 1, 5));
    }

    #[test]
    fn the_pace_is_what_was_held_in_the_last_two_seconds() {
        let mut pace = Pace::new();
        for t in 0..100 {
            pace.add(t * 10, 10);
        }
        assert_eq!(pace.per_s(999), 1_000 * 1_000 / 1_999);
        pace.add(1_000, 10);
        assert_eq!(pace.per_s(1_000), 1_010);
        assert_eq!(pace.per_s(3_000), 0);
    }
}
