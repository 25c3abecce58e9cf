//! The announcement subscriber: a dedicated pub/sub connection with its own reconnect loop.
//!
//! Why not the shared `ConnectionManager`: a subscribed RESP2 connection cannot run other commands, and the
//! manager's automatic resubscription would hide the moment of reconnection, which is exactly when a node must
//! re-read the index (announcements sent while it was gone are lost). So each (re)connection is reported as
//! [`BusEvent::Connected`].

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::PubSub;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};

use crate::error::BusError;
use crate::model::Announcement;
use crate::subscription::{BusEvent, Delivery, EventFeed};

/// How long to wait for the TCP connection and the SUBSCRIBE confirmation.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A PING on the subscribed connection this often detects a peer that vanished without closing the socket.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnect backoff: fast first retries (a Redis restart takes a moment), capped so a long outage costs little.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(3);

/// Feeds `feed` with announcements from `channel` until the subscriber goes away.
pub(crate) async fn run(client: redis::Client, channel: String, mut feed: EventFeed) {
    let mut retry = FIRST_RETRY;
    loop {
        match connect(&client, &channel).await {
            Ok(pubsub) => {
                retry = FIRST_RETRY;
                tracing::debug!(%channel, "config bus subscription live");
                if feed.deliver(BusEvent::Connected) == Delivery::SubscriberGone {
                    return;
                }
                if forward(pubsub, &mut feed).await == Delivery::SubscriberGone {
                    return;
                }
                tracing::warn!("config bus subscription lost; reconnecting");
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = retry.as_millis() as u64, "config bus subscription failed");
            }
        }
        if feed.is_closed() {
            return;
        }
        sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

async fn connect(client: &redis::Client, channel: &str) -> Result<PubSub, BusError> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, BusError>(pubsub)
    };
    match timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(BusError::Redis(redis::RedisError::from(
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ))),
    }
}

/// Forwards messages until the connection fails (returns `Open`) or the subscriber is gone.
async fn forward(pubsub: PubSub, feed: &mut EventFeed) -> Delivery {
    let (mut sink, mut messages) = pubsub.split();
    let mut health = interval(HEALTH_CHECK_INTERVAL);
    health.set_missed_tick_behavior(MissedTickBehavior::Delay);
    health.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Delivery::Open;
                };
                let payload: String = match message.get_payload() {
                    Ok(p) => p,
                    Err(error) => {
                        tracing::warn!(%error, "unreadable config bus announcement");
                        continue;
                    }
                };
                match Announcement::parse_wire(&payload) {
                    Ok(announcement) => {
                        if feed.deliver(BusEvent::Announcement(announcement)) == Delivery::SubscriberGone {
                            return Delivery::SubscriberGone;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "ignoring a config bus announcement"),
                }
            }
            _ = health.tick() => {
                if feed.is_closed() {
                    return Delivery::SubscriberGone;
                }
                let ping = timeout(HEALTH_CHECK_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(ping, Ok(Ok(_))) {
                    return Delivery::Open;
                }
            }
        }
    }
}
