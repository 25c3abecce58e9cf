//! A node's view of its spend windows (`RedisLimits::spent`, `record_spend`): write-behind for what it records,
//! and a cached read for what it checks, so that most calls make no Redis round trip. No I/O and no clock here;
//! `redis.rs` sends what [`SpendTable`] hands it and reports back.
//!
//! # Write-behind
//! `record_spend` adds the amount to each window's *pending* entries here and returns. A background flush (every
//! `flush_interval`, sooner when many windows are pending) sends them to Redis in one script call for all windows.
//! Each entry carries the local time it was recorded, sent as an age, so Redis counts it in the slot (or fixed
//! bucket) of when it was recorded, not of when it was flushed: a fixed bucket that ended meanwhile drops it,
//! as it would have counted it in a window nobody reads any more. Entries recorded close together (within 1/64 of
//! the window) are merged under the later time, which at worst keeps an amount in a window a little longer.
//!
//! # Cached reads
//! `spent` answers from a *snapshot* per window (the sum Redis returned, read at most `spend_staleness` ago),
//! plus this node's entries that are not in it: the pending ones and those on their way. A snapshot a little
//! older than that (up to twice the staleness) still answers while the background refreshes it; older, or past
//! the end of the fixed bucket it was read in, or missing, and the call reads through (one round trip).
//!
//! # One call per window at a time
//! A window is *busy* while a script carrying its entries or reading it is on its way, and nothing else is sent
//! for it until that ends. So when a reply comes back, its sum includes every entry it carried and every entry
//! sent before: the entries still pending are exactly the ones the new snapshot lacks, and nothing is counted
//! twice. A call that fails (or is abandoned) puts its entries back in front of the pending ones: they are sent
//! again, and if Redis had applied them after all, counted twice, which errs on the side of the limit.

use std::collections::HashMap;

/// Keys read within this long are refreshed in the background before their snapshot goes stale.
const HOT_MS: i64 = 1_000;
/// A window neither read nor recorded for this long, with nothing pending, is forgotten.
const FORGET_AFTER_MS: i64 = 30_000;
/// How many windows with pending entries wake the flusher before its next tick.
pub(super) const EARLY_FLUSH_KEYS: usize = 512;

/// How a spend window counts, as the scripts take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WindowSpec {
    pub(super) fixed: bool,
    pub(super) window_ms: i64,
    pub(super) slot_ms: i64,
}

impl WindowSpec {
    pub(super) fn kind_name(&self) -> &'static str {
        if self.fixed { "fixed" } else { "sliding" }
    }

    /// Entries recorded within this long of each other are merged.
    fn merge_ms(&self) -> i64 {
        (self.window_ms / 64).max(1)
    }
}

/// An amount and when it was recorded (local ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at_ms: i64,
    amount: u64,
}

/// A sum Redis returned for a window.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    value: u64,
    /// Local time just before the read was sent.
    read_at_ms: i64,
    /// When it stops being this window's sum at all (a fixed bucket's end), in local time.
    valid_until_ms: i64,
}

#[derive(Debug)]
struct SpendKey {
    spec: WindowSpec,
    snapshot: Option<Snapshot>,
    pending: Vec<Entry>,
    in_flight: Vec<Entry>,
    busy: bool,
    read_ms: i64,
    used_ms: i64,
}

impl SpendKey {
    fn new(spec: WindowSpec, now_ms: i64) -> Self {
        Self {
            spec,
            snapshot: None,
            pending: Vec::new(),
            in_flight: Vec::new(),
            busy: false,
            read_ms: i64::MIN,
            used_ms: now_ms,
        }
    }

    /// This node's amounts the snapshot does not hold.
    fn unsent(&self) -> u64 {
        self.pending
            .iter()
            .chain(&self.in_flight)
            .fold(0u64, |sum, e| sum.saturating_add(e.amount))
    }
}

/// Appends `entry`, or adds it to the last entry when that one was recorded less than `merge_ms` before it (the
/// merged entry takes the later time).
fn push_merged(entries: &mut Vec<Entry>, entry: Entry, merge_ms: i64) {
    match entries.last_mut() {
        Some(last) if entry.at_ms >= last.at_ms && entry.at_ms - last.at_ms < merge_ms => {
            last.at_ms = entry.at_ms;
            last.amount = last.amount.saturating_add(entry.amount);
        }
        _ => entries.push(entry),
    }
}

/// What the view says about one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum View {
    /// From a snapshot within the staleness.
    Fresh(u64),
    /// From a snapshot somewhat past it: usable while a refresh is on its way (`refreshing`: one is already).
    Stale { sum: u64, refreshing: bool },
    /// Read through.
    Miss,
}

/// One window's part of a flush script: the entries to add (age in ms, amount) and whether to read its sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FlushItem {
    pub(super) key: String,
    pub(super) spec: WindowSpec,
    pub(super) read: bool,
    pub(super) entries: Vec<(i64, u64)>,
}

/// Every spend window this node records or reads, by Redis key.
#[derive(Debug, Default)]
pub(super) struct SpendTable {
    keys: HashMap<String, SpendKey>,
    /// Windows with pending entries.
    dirty: usize,
}

impl SpendTable {
    /// Adds `amount` to `key`'s pending entries. Returns whether enough windows are pending to flush early.
    pub(super) fn record(&mut self, key: &str, spec: WindowSpec, amount: u64, now_ms: i64) -> bool {
        let entry = self.entry(key, spec, now_ms);
        entry.used_ms = now_ms;
        let was_clean = entry.pending.is_empty();
        push_merged(
            &mut entry.pending,
            Entry {
                at_ms: now_ms,
                amount,
            },
            spec.merge_ms(),
        );
        if was_clean {
            self.dirty += 1;
        }
        self.dirty >= EARLY_FLUSH_KEYS
    }

    /// The window's sum from its snapshot, if it has one young enough (`staleness_ms` > 0).
    pub(super) fn view(&mut self, key: &str, now_ms: i64, staleness_ms: i64) -> View {
        let Some(entry) = self.keys.get_mut(key) else {
            return View::Miss;
        };
        entry.read_ms = now_ms;
        entry.used_ms = now_ms;
        let Some(snapshot) = entry.snapshot else {
            return View::Miss;
        };
        let age = now_ms - snapshot.read_at_ms;
        if age < 0 || now_ms >= snapshot.valid_until_ms || age > 2 * staleness_ms {
            return View::Miss;
        }
        let value = snapshot.value.saturating_add(entry.unsent());
        if age <= staleness_ms {
            View::Fresh(value)
        } else {
            View::Stale {
                sum: value,
                refreshing: entry.busy,
            }
        }
    }

    /// The window's sum now: its snapshot (0 without one) and this node's amounts not in it.
    pub(super) fn value(&self, key: &str) -> u64 {
        self.keys.get(key).map_or(0, |e| {
            e.snapshot.map_or(0, |s| s.value).saturating_add(e.unsent())
        })
    }

    /// Starts one call over all of `windows` (each read when `read`), or `None` when any of them is busy (wait for
    /// [`Self::finish`] of that one and try again). Windows seen for the first time are added.
    pub(super) fn try_begin(
        &mut self,
        windows: &[(String, WindowSpec)],
        read: bool,
        now_ms: i64,
    ) -> Option<Vec<FlushItem>> {
        if windows
            .iter()
            .any(|(key, _)| self.keys.get(key).is_some_and(|e| e.busy))
        {
            return None;
        }
        let mut items = Vec::with_capacity(windows.len());
        for (key, spec) in windows {
            // A window named twice in one call is sent once.
            if items.iter().any(|i: &FlushItem| i.key == *key) {
                continue;
            }
            self.entry(key, *spec, now_ms).used_ms = now_ms;
            items.push(self.begin(key, read, now_ms));
        }
        Some(items)
    }

    /// Marks `key` (present, not busy) busy and moves its pending entries on their way.
    fn begin(&mut self, key: &str, read: bool, now_ms: i64) -> FlushItem {
        let entry = self.keys.get_mut(key).expect("the caller checked");
        entry.busy = true;
        if !entry.pending.is_empty() {
            self.dirty = self.dirty.saturating_sub(1);
        }
        let spec = entry.spec;
        // What has left every window it could count in is not worth sending.
        let oldest = now_ms.saturating_sub(spec.window_ms);
        entry.in_flight = std::mem::take(&mut entry.pending);
        entry.in_flight.retain(|e| e.at_ms > oldest);
        FlushItem {
            key: key.to_owned(),
            spec,
            read,
            entries: entry
                .in_flight
                .iter()
                .map(|e| ((now_ms - e.at_ms).max(0), e.amount))
                .collect(),
        }
    }

    /// A call over `items` (sent at `sent_ms`) ended: `Some` with each item's sum and, for a fixed window, the ms
    /// left in its bucket (-1 otherwise) when Redis answered, `None` when it failed or was abandoned.
    pub(super) fn finish(
        &mut self,
        items: &[FlushItem],
        answer: Option<&[(u64, i64)]>,
        sent_ms: i64,
    ) {
        for (i, item) in items.iter().enumerate() {
            let Some(entry) = self.keys.get_mut(&item.key) else {
                continue;
            };
            entry.busy = false;
            let in_flight = std::mem::take(&mut entry.in_flight);
            match answer {
                Some(sums) => {
                    if item.read
                        && let Some(&(value, left_ms)) = sums.get(i)
                    {
                        entry.snapshot = Some(Snapshot {
                            value,
                            read_at_ms: sent_ms,
                            valid_until_ms: if left_ms >= 0 {
                                sent_ms.saturating_add(left_ms)
                            } else {
                                i64::MAX
                            },
                        });
                    }
                }
                None => {
                    if in_flight.is_empty() {
                        continue;
                    }
                    if entry.pending.is_empty() {
                        self.dirty += 1;
                    }
                    let newer = std::mem::replace(&mut entry.pending, in_flight);
                    let merge_ms = entry.spec.merge_ms();
                    for e in newer {
                        push_merged(&mut entry.pending, e, merge_ms);
                    }
                }
            }
        }
    }

    /// What the background sends now: every window with pending entries, and the snapshots of windows read lately
    /// that are half-way to stale (`staleness_ms` 0: none). `all`: every window with pending entries and nothing
    /// else (a flush on demand). Marks them busy; forgets windows long unused.
    pub(super) fn due(&mut self, now_ms: i64, staleness_ms: i64, all: bool) -> Vec<FlushItem> {
        self.keys
            .retain(|_, e| e.busy || !e.pending.is_empty() || now_ms - e.used_ms < FORGET_AFTER_MS);
        let mut due = Vec::new();
        for (key, entry) in &self.keys {
            if entry.busy {
                continue;
            }
            let refresh = !all
                && staleness_ms > 0
                && now_ms.saturating_sub(entry.read_ms) <= HOT_MS
                && entry.snapshot.is_some_and(|s| {
                    now_ms - s.read_at_ms >= staleness_ms / 2 || now_ms >= s.valid_until_ms
                });
            if refresh || !entry.pending.is_empty() {
                due.push((key.clone(), refresh || entry.snapshot.is_some()));
            }
        }
        due.into_iter()
            .map(|(key, read)| self.begin(&key, read, now_ms))
            .collect()
    }

    /// Whether any window has entries pending or on their way.
    #[cfg(test)]
    fn unflushed(&self) -> bool {
        self.dirty > 0 || self.unflushed_in_flight()
    }

    /// Whether entries are on their way in a call not yet answered.
    pub(super) fn unflushed_in_flight(&self) -> bool {
        self.keys
            .values()
            .any(|e| e.busy && !e.in_flight.is_empty())
    }

    fn entry(&mut self, key: &str, spec: WindowSpec, now_ms: i64) -> &mut SpendKey {
        if !self.keys.contains_key(key) {
            self.keys
                .insert(key.to_owned(), SpendKey::new(spec, now_ms));
        }
        self.keys.get_mut(key).expect("inserted above")
    }

    #[cfg(test)]
    fn pending(&self, key: &str) -> Vec<(i64, u64)> {
        self.keys.get(key).map_or_else(Vec::new, |e| {
            e.pending.iter().map(|p| (p.at_ms, p.amount)).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "p:limits:tpm:spend:sliding:60000";
    const SLIDING: WindowSpec = WindowSpec {
        fixed: false,
        window_ms: 60_000,
        slot_ms: 1_875,
    };
    const FIXED: WindowSpec = WindowSpec {
        fixed: true,
        window_ms: 60_000,
        slot_ms: 1_875,
    };

    fn read(table: &mut SpendTable, key: &str, spec: WindowSpec, now: i64, sum: u64, left: i64) {
        let items = table
            .try_begin(&[(key.to_owned(), spec)], true, now)
            .unwrap();
        table.finish(&items, Some(&[(sum, left)]), now);
    }

    #[test]
    fn a_view_is_its_snapshot_plus_what_this_node_has_not_flushed() {
        let mut table = SpendTable::default();
        assert_eq!(table.view(KEY, 0, 50), View::Miss);
        read(&mut table, KEY, SLIDING, 0, 100, -1);
        assert_eq!(table.view(KEY, 10, 50), View::Fresh(100));
        table.record(KEY, SLIDING, 5, 20);
        assert_eq!(table.view(KEY, 50, 50), View::Fresh(105));
        assert_eq!(
            table.view(KEY, 51, 50),
            View::Stale {
                sum: 105,
                refreshing: false
            },
            "still usable while refreshed"
        );
        assert_eq!(table.view(KEY, 101, 50), View::Miss, "too old");
        // The background flush takes the entry on its way (and reads the window, which is read lately): until it
        // lands, the view still counts it; after, the new snapshot does.
        let due = table.due(60, 50, false);
        assert_eq!(
            due,
            [FlushItem {
                key: KEY.into(),
                spec: SLIDING,
                read: true,
                entries: vec![(40, 5)],
            }]
        );
        assert_eq!(
            table.view(KEY, 60, 50),
            View::Stale {
                sum: 105,
                refreshing: true
            }
        );
        assert!(
            table
                .try_begin(&[(KEY.into(), SLIDING)], true, 61)
                .is_none()
        );
        table.record(KEY, SLIDING, 7, 61);
        table.finish(&due, Some(&[(130, -1)]), 60);
        // 130 holds the 5 (and another node's 25); the 7 came after.
        assert_eq!(table.view(KEY, 62, 50), View::Fresh(137));
        assert_eq!(table.value(KEY), 137);
    }

    #[test]
    fn a_fixed_snapshot_ends_with_its_bucket() {
        let mut table = SpendTable::default();
        read(&mut table, KEY, FIXED, 1_000, 9, 30);
        assert_eq!(table.view(KEY, 1_029, 50), View::Fresh(9));
        assert_eq!(table.view(KEY, 1_030, 50), View::Miss);
    }

    #[test]
    fn a_failed_flush_puts_its_entries_back_in_front() {
        let mut table = SpendTable::default();
        table.record(KEY, SLIDING, 5, 0);
        table.record(KEY, SLIDING, 6, 10_000);
        let due = table.due(10_000, 50, false);
        assert_eq!(due[0].entries, [(10_000, 5), (0, 6)]);
        assert!(!due[0].read, "never read: only flushed");
        table.record(KEY, SLIDING, 7, 10_001);
        table.finish(&due, None, 10_000);
        assert_eq!(
            table.pending(KEY),
            [(0, 5), (10_001, 6 + 7)],
            "merged within 1/64 of the window"
        );
        assert!(table.unflushed());
        let due = table.due(61_000, 50, true);
        assert_eq!(
            due[0].entries,
            [(50_999, 13)],
            "what left the window is not sent"
        );
        table.finish(&due, Some(&[(0, -1)]), 61_000);
        assert!(!table.unflushed());
    }

    #[test]
    fn idle_windows_are_forgotten_and_only_hot_ones_refreshed() {
        let mut table = SpendTable::default();
        read(&mut table, KEY, SLIDING, 0, 1, -1);
        read(&mut table, "other", SLIDING, 0, 1, -1);
        table.view(KEY, 900, 5_000);
        // KEY was read 100 ms ago, "other" 1 s ago: only KEY is refreshed, and only once half stale.
        assert!(table.due(1_000, 5_000, false).is_empty());
        let due = table.due(2_600, 5_000, false);
        assert!(due.is_empty(), "not read within a second: {due:?}");
        table.view(KEY, 2_600, 5_000);
        let due = table.due(2_700, 5_000, false);
        assert_eq!(due.len(), 1);
        table.finish(&due, Some(&[(1, -1)]), 2_700);
        table.due(40_000, 5_000, false);
        assert!(table.keys.is_empty());
    }
}
