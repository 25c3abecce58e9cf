//! Default-gateway requests on a Redis stream read through a consumer group, so that each request reaches one
//! control plane even when several run.
//!
//! Reads use `NOACK`: a request whose consumer dies before handling it is lost, which is fine because the asking
//! node asks again when the gateway does not appear. That keeps the pending-entries list (and `XAUTOCLAIM`) out.
//!
//! The blocking `XREADGROUP … BLOCK` runs on its own connection whose response timeout exceeds the block time:
//! on the shared connection redis-rs would give up after its response timeout while Redis keeps the read
//! blocked, and the next entry would go to that abandoned read (stack notes §5).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands as _, AsyncConnectionConfig};

use super::keys::{KeyLayout, REQUESTS_GROUP, REQUESTS_MAX_LEN};
use crate::error::BusError;

/// Stream field that holds the account id.
const ACCOUNT_FIELD: &str = "account";
/// Entries taken per read.
const BATCH: usize = 64;
/// Slack on top of the block time before the client gives up on a blocking read.
const BLOCKING_READ_SLACK: Duration = Duration::from_secs(3);

/// The consuming side of one bus instance: a dedicated connection, opened on first use and after any error.
pub(crate) struct RequestReader {
    connection: Option<MultiplexedConnection>,
    /// The wait the connection's response timeout was sized for.
    sized_for: Duration,
}

impl RequestReader {
    pub(crate) fn new() -> Self {
        Self {
            connection: None,
            sized_for: Duration::ZERO,
        }
    }

    pub(crate) async fn next(
        &mut self,
        client: &redis::Client,
        keys: &KeyLayout,
        consumer: &str,
        wait: Duration,
    ) -> Result<Vec<String>, BusError> {
        let result = self.read(client, keys, consumer, wait).await;
        if result.is_err() {
            // Whatever happened (timeout, reset, Redis restarted), start over on a fresh connection.
            self.connection = None;
        }
        result
    }

    async fn read(
        &mut self,
        client: &redis::Client,
        keys: &KeyLayout,
        consumer: &str,
        wait: Duration,
    ) -> Result<Vec<String>, BusError> {
        if self.connection.is_none() || self.sized_for < wait {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(3)))
                .set_response_timeout(Some(wait + BLOCKING_READ_SLACK));
            self.connection = Some(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
            self.sized_for = wait;
        }
        let Some(conn) = self.connection.as_mut() else {
            return Err(BusError::Closed);
        };
        let stream = keys.default_gateway_requests();
        // BLOCK 0 would mean "forever".
        let block_ms = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let options = StreamReadOptions::default()
            .group(REQUESTS_GROUP, consumer)
            .count(BATCH)
            .block(block_ms)
            .noack();
        let reply: Result<Option<StreamReadReply>, redis::RedisError> =
            conn.xread_options(&[&stream], &[">"], &options).await;
        let reply = match reply {
            Err(e) if e.code() == Some("NOGROUP") => {
                // First use, or Redis lost the stream: create the group and read again next time.
                create_group(conn, &stream).await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        let accounts = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .filter_map(|entry| entry.get::<String>(ACCOUNT_FIELD))
            .collect();
        Ok(accounts)
    }
}

async fn create_group(conn: &mut MultiplexedConnection, stream: &str) -> Result<(), BusError> {
    // From the start of the stream: requests made before any control plane ran are still served.
    let created: Result<(), redis::RedisError> = conn
        .xgroup_create_mkstream(stream, REQUESTS_GROUP, "0")
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Appends one request.
pub(crate) async fn append(
    conn: &mut redis::aio::ConnectionManager,
    keys: &KeyLayout,
    account_id: &str,
) -> Result<(), BusError> {
    let _: String = redis::cmd("XADD")
        .arg(keys.default_gateway_requests())
        .arg("MAXLEN")
        .arg("~")
        .arg(REQUESTS_MAX_LEN)
        .arg("*")
        .arg(ACCOUNT_FIELD)
        .arg(account_id)
        .query_async(conn)
        .await?;
    Ok(())
}
