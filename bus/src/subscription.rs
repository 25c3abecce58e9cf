//! A subscriber's view of announcements: one bounded queue of events fed by a task the bus owns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::model::Announcement;

/// How many events a slow subscriber may have queued before the bus starts dropping (and then says so with
/// [`BusEvent::Lagged`]). Announcements are tiny; a node applies them in microseconds.
pub(crate) const SUBSCRIPTION_CAPACITY: usize = 1024;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// The subscription is live (first time, or again after a reconnect). Announcements sent while it was down
    /// are lost: re-read the index.
    Connected,
    /// Something was announced.
    Announcement(Announcement),
    /// The subscriber fell behind and announcements were dropped: re-read the index.
    Lagged,
}

/// A live subscription. Dropping it stops the task that feeds it.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::Receiver<BusEvent>,
    feeder: Option<tokio::task::AbortHandle>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    pub(crate) fn new(
        events: mpsc::Receiver<BusEvent>,
        feeder: tokio::task::AbortHandle,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self {
            events,
            feeder: Some(feeder),
            dropped,
        }
    }

    /// A subscription fed by someone else's channel: for buses that wrap another one (decorators, tests).
    /// `feeder`, if given, is aborted when the subscription is dropped.
    pub fn from_channel(
        events: mpsc::Receiver<BusEvent>,
        feeder: Option<tokio::task::AbortHandle>,
    ) -> Self {
        Self {
            events,
            feeder,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The next event; `None` once the bus has shut down.
    pub async fn next(&mut self) -> Option<BusEvent> {
        self.events.recv().await
    }

    /// Events dropped because this subscriber was behind (each drop was followed by a [`BusEvent::Lagged`]).
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(feeder) = &self.feeder {
            feeder.abort();
        }
    }
}

/// The feeding side: never blocks the feeder. When the queue is full it drops the event, counts it, and delivers
/// [`BusEvent::Lagged`] as soon as there is room again.
pub(crate) struct EventFeed {
    tx: mpsc::Sender<BusEvent>,
    lagging: bool,
    dropped: Arc<AtomicU64>,
}

/// Whether the subscriber still listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Open,
    SubscriberGone,
}

impl EventFeed {
    pub(crate) fn channel() -> (EventFeed, mpsc::Receiver<BusEvent>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            EventFeed {
                tx,
                lagging: false,
                dropped: Arc::clone(&dropped),
            },
            rx,
            dropped,
        )
    }

    pub(crate) fn deliver(&mut self, event: BusEvent) -> Delivery {
        if self.lagging {
            match self.tx.try_send(BusEvent::Lagged) {
                Ok(()) => self.lagging = false,
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return Delivery::Open;
                }
                Err(TrySendError::Closed(_)) => return Delivery::SubscriberGone,
            }
        }
        match self.tx.try_send(event) {
            Ok(()) => Delivery::Open,
            Err(TrySendError::Full(_)) => {
                self.lagging = true;
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Delivery::Open
            }
            Err(TrySendError::Closed(_)) => Delivery::SubscriberGone,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_events_and_then_says_lagged() {
        let (mut feed, mut rx, dropped) = EventFeed::channel();
        for _ in 0..SUBSCRIPTION_CAPACITY {
            assert_eq!(feed.deliver(BusEvent::Connected), Delivery::Open);
        }
        assert_eq!(feed.deliver(BusEvent::Connected), Delivery::Open);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        for _ in 0..SUBSCRIPTION_CAPACITY {
            rx.recv().await.unwrap();
        }
        feed.deliver(BusEvent::Connected);
        assert_eq!(rx.recv().await, Some(BusEvent::Lagged));
        assert_eq!(rx.recv().await, Some(BusEvent::Connected));
        drop(rx);
        assert_eq!(feed.deliver(BusEvent::Connected), Delivery::SubscriberGone);
    }
}
