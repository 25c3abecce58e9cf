//! The I/O of `spend_view.rs`: `spent` from the view or read through, `record_spend` written behind, and the
//! `FLUSH` script calls that carry both.

use super::super::spend_view::{FlushItem, View, WindowSpec};
use super::super::window::{SPEND_SLOTS, slot_ms};
use super::super::{SpendWindow, WindowTechnique, window_ms};
use super::{Shared, scripts};
use crate::error::BusError;

/// Windows sent in one script call.
const FLUSH_CHUNK: usize = 256;

/// A call over some spend windows on its way: however it ends (its future may be dropped by a timeout), the
/// windows stop being busy, and entries it carried go back to pending unless Redis answered.
struct SpendCall<'a> {
    shared: &'a Shared,
    items: Vec<FlushItem>,
    sent_ms: i64,
    answered: bool,
}

impl Drop for SpendCall<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.shared
                .lock_spend()
                .finish(&self.items, None, self.sent_ms);
        }
        self.shared.lanes.notify_waiters();
    }
}

impl Shared {
    /// The Redis key and the arithmetic of each window; a window under 1 ms is the caller's error.
    pub(super) fn spend_windows(
        &self,
        windows: &[SpendWindow],
    ) -> Result<Vec<(String, WindowSpec)>, BusError> {
        windows
            .iter()
            .map(|w| {
                let window_ms = window_ms(w.window)?;
                let spec = WindowSpec {
                    fixed: w.technique == WindowTechnique::Fixed,
                    window_ms,
                    slot_ms: slot_ms(window_ms, SPEND_SLOTS),
                };
                let key = format!(
                    "{}{}:spend:{}:{window_ms}",
                    self.key_prefix,
                    w.key,
                    spec.kind_name()
                );
                Ok((key, spec))
            })
            .collect()
    }

    /// Each window's sum: from the view when every window has a young enough one, else read through (after this
    /// node's pending entries, in the same script). The flag: some sum came from a view past its staleness that
    /// no refresh is on its way for (the flusher should run now).
    pub(super) async fn spent_now(
        &self,
        windows: &[(String, WindowSpec)],
    ) -> Result<(Vec<u64>, bool), BusError> {
        if self.staleness_ms > 0 {
            let now_ms = self.local_ms();
            let mut table = self.lock_spend();
            let mut sums = Vec::with_capacity(windows.len());
            let mut stale = false;
            for (key, _) in windows {
                match table.view(key, now_ms, self.staleness_ms) {
                    View::Fresh(sum) => sums.push(sum),
                    View::Stale { sum, refreshing } => {
                        stale |= !refreshing;
                        sums.push(sum);
                    }
                    View::Miss => break,
                }
            }
            if sums.len() == windows.len() {
                return Ok((sums, stale));
            }
        }
        let call = self.begin_spend_call(windows).await;
        self.send_spend_call(call).await?;
        let table = self.lock_spend();
        Ok((
            windows.iter().map(|(key, _)| table.value(key)).collect(),
            false,
        ))
    }

    /// Adds `nano_usd` to each window's pending entries. Returns whether the flusher should run early.
    pub(super) fn record(&self, windows: &[(String, WindowSpec)], nano_usd: u64) -> bool {
        let now_ms = self.local_ms();
        let mut table = self.lock_spend();
        let mut early = false;
        for (key, spec) in windows {
            early |= table.record(key, *spec, nano_usd, now_ms);
        }
        early
    }

    /// Waits until none of `windows` is busy, then takes them (to be read, after their pending entries).
    async fn begin_spend_call(&self, windows: &[(String, WindowSpec)]) -> SpendCall<'_> {
        loop {
            // Registered before looking, so a call ending between the look and the wait is not missed.
            let ended = self.lanes.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let sent_ms = self.local_ms();
            if let Some(items) = self.lock_spend().try_begin(windows, true, sent_ms) {
                return SpendCall {
                    shared: self,
                    items,
                    sent_ms,
                    answered: false,
                };
            }
            ended.await;
        }
    }

    /// Sends `call` and lands the answer in the view.
    async fn send_spend_call(&self, mut call: SpendCall<'_>) -> Result<(), BusError> {
        let answer = self.flush_script(&call.items).await;
        if let Ok(sums) = &answer {
            self.lock_spend()
                .finish(&call.items, Some(sums), call.sent_ms);
            call.answered = true;
        }
        drop(call);
        answer.map(|_| ())
    }

    /// One `FLUSH` script over `items`: each item's sum and the ms left in its fixed bucket.
    async fn flush_script(&self, items: &[FlushItem]) -> Result<Vec<(u64, i64)>, BusError> {
        let mut invocation = scripts::FLUSH.prepare_invoke();
        invocation.arg(self.now_arg());
        for item in items {
            invocation
                .key(&item.key)
                .arg(item.spec.kind_name())
                .arg(item.spec.window_ms)
                .arg(item.spec.slot_ms)
                .arg(if item.read { "1" } else { "0" })
                .arg(item.entries.len());
            for (age_ms, amount) in &item.entries {
                // Redis counters are signed 64-bit: 9.2 billion USD per window is the ceiling.
                invocation
                    .arg(age_ms)
                    .arg(i64::try_from(*amount).unwrap_or(i64::MAX));
            }
        }
        let reply: Vec<i64> =
            self.noted(invocation.invoke_async(&mut self.commands.clone()).await)?;
        if reply.len() != 2 * items.len() {
            return Err(BusError::corrupt(
                "flush script reply",
                format!("{} integers for {} windows", reply.len(), items.len()),
            ));
        }
        Ok(reply
            .chunks_exact(2)
            .map(|p| (u64::try_from(p[0]).unwrap_or(0), p[1]))
            .collect())
    }

    /// The background's part for spend: flushes every window with pending entries and refreshes the sums read
    /// lately (`all`: flushes only, every window with entries). Errors leave the entries pending.
    pub(super) async fn flush_spend(&self, all: bool) -> Result<(), BusError> {
        let sent_ms = self.local_ms();
        let items = self.lock_spend().due(sent_ms, self.staleness_ms, all);
        // Every chunk in its guard before the first is sent, so that none stays busy if this future is dropped.
        let mut calls = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            calls.push(SpendCall {
                shared: self,
                items: items.by_ref().take(FLUSH_CHUNK).collect(),
                sent_ms,
                answered: false,
            });
        }
        let mut result = Ok(());
        for call in calls {
            if let Err(e) = self.send_spend_call(call).await {
                result = Err(e);
            }
        }
        result
    }
}
