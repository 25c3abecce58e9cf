//! The store's background task: every `flush_interval` (or when woken) it flushes the spend written behind,
//! refreshes the sums read lately, and syncs the budget blocks that need it, in one round trip for each kind
//! (sent together). When the store is dropped it flushes once more, retires every block, and ends.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::Shared;
use crate::error::BusError;

pub(super) async fn run(shared: Arc<Shared>, mut wakes: mpsc::Receiver<()>) {
    let mut tick = tokio::time::interval(shared.flush_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let closing = tokio::select! {
            _ = tick.tick() => false,
            wake = wakes.recv() => wake.is_none(),
        };
        let (spend, blocks) =
            tokio::join!(shared.flush_spend(closing), shared.sync_blocks(closing));
        if let Err(error) = spend.and(blocks) {
            // Entries stay pending and blocks keep what they hold; the next tick tries again.
            tracing::debug!(%error, "limit flush failed");
        }
        if closing {
            break;
        }
    }
}

impl Shared {
    /// Everything written behind before the call, counted in Redis (`RedisLimits::flush`).
    pub(super) async fn flush_all(&self) -> Result<(), BusError> {
        loop {
            let ended = self.lanes.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            self.flush_spend(true).await?;
            let blocks_in_flight = self.sync_all_unflushed().await?;
            // What other calls carry is counted when they are answered; one that fails leaves it pending for
            // the next round.
            if !blocks_in_flight && !self.lock_spend().unflushed_in_flight() {
                return Ok(());
            }
            ended.await;
        }
    }
}
