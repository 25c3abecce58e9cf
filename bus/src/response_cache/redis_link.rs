//! One Redis connection of the response cache (and of the DPoP replay cache, `replay.rs`), and the back-off that
//! keeps an outage from costing every request a timeout.
//!
//! Why not redis-rs's `ConnectionManager`, as the rest of the bus uses: in redis-rs 1.8 the manager's lazy first
//! connection and each reconnect spawn their tasks (the connection's driver among them) with `tokio::spawn` in the
//! task that happens to await or break the connection, whatever runtime the manager was created on. The cache is
//! called from pingora's worker runtimes, so the connection would end up living on one of them. The bus avoids
//! that by spawning every operation onto its own runtime, which the cache may not do (no task per request). A link
//! instead spawns only the connect onto the cache's runtime, so the driver runs there, and commands go from the
//! caller's task straight to that driver: a channel send and a reply, on any runtime.
//!
//! States: `Ready` (a connection), `Connecting` (one attempt in flight, awaited by whoever needs it), `Down` (an
//! attempt or a command failed; every call fails at once until `retry_at`, then the next call starts a new
//! attempt: the probe).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult};
use tokio::runtime::Handle;

type PendingConnection = Shared<BoxFuture<'static, RedisResult<MultiplexedConnection>>>;

/// A connection that reconnects on the cache's runtime and backs off after failures.
pub(crate) struct Link {
    /// Which store the link serves, in messages (`response cache`).
    store: &'static str,
    /// Which link, in logs (`reads` or `writes`).
    name: &'static str,
    client: redis::Client,
    config: AsyncConnectionConfig,
    runtime: Handle,
    backoff: Duration,
    state: Mutex<State>,
    /// Set when a failure moves the link to `Down`, cleared when a connection is made. Only these changes are
    /// logged, so an outage logs twice per link, not once per request.
    degraded: AtomicBool,
}

enum State {
    Ready {
        attempt: u64,
        connection: MultiplexedConnection,
    },
    Connecting {
        attempt: u64,
        pending: PendingConnection,
    },
    Down {
        attempt: u64,
        retry_at: Instant,
    },
}

impl State {
    /// The connection attempt this state belongs to: a failure seen on an older attempt's connection must not
    /// take down a newer one.
    fn attempt(&self) -> u64 {
        match self {
            State::Ready { attempt, .. }
            | State::Connecting { attempt, .. }
            | State::Down { attempt, .. } => *attempt,
        }
    }
}

/// What a call gets to send its command on.
enum Checkout {
    Ready(MultiplexedConnection),
    Connecting(PendingConnection),
}

impl Link {
    /// Starts connecting at once on `runtime`, so the first request finds a connection ready.
    pub(crate) fn new(
        store: &'static str,
        name: &'static str,
        client: redis::Client,
        connect_timeout: Duration,
        backoff: Duration,
        runtime: Handle,
    ) -> Self {
        // No response timeout on the connection: each call brings its own (a get's is much shorter than a
        // large put's) and drops the connection when it runs out.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(None);
        let first = spawn_connect(&client, &config, &runtime);
        Self {
            store,
            name,
            client,
            config,
            runtime,
            backoff,
            state: Mutex::new(State::Connecting {
                attempt: 1,
                pending: first,
            }),
            degraded: AtomicBool::new(false),
        }
    }

    /// True from a failure until the next successful connect.
    pub(crate) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Runs `command` on the connection, the wait for a connection included, within `timeout`. During the
    /// back-off it fails at once. A timeout or a lost connection starts the back-off; an error Redis answered
    /// (say, out of memory) does not, since the connection works.
    pub(crate) async fn run<T, F, Fut>(&self, timeout: Duration, command: F) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (attempt, checkout) = self.checkout()?;
        let outcome = tokio::time::timeout(timeout, async {
            let connection = match checkout {
                Checkout::Ready(connection) => connection,
                // Any failure to connect, not only an outage (a refused password, a server still loading),
                // must end the attempt: the next call after the back-off then tries a new one.
                Checkout::Connecting(pending) => match pending.await {
                    Ok(connection) => {
                        self.connected(attempt, &connection);
                        connection
                    }
                    Err(error) => {
                        self.failed(attempt, &error);
                        return Err(error);
                    }
                },
            };
            command(connection).await
        })
        .await;
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if !is_outage(&error) => return Err(error),
            Ok(Err(error)) => error,
            Err(_elapsed) => RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from the {}'s Redis within {timeout:?}",
                    self.store
                ),
            )),
        };
        self.failed(attempt, &error);
        Err(error)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced whole, never left half-written, so a panic elsewhere cannot have broken it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection to use, or the attempt to wait for, starting the probe when the back-off is over.
    fn checkout(&self) -> RedisResult<(u64, Checkout)> {
        let mut state = self.lock();
        match &*state {
            State::Ready {
                attempt,
                connection,
            } => Ok((*attempt, Checkout::Ready(connection.clone()))),
            State::Connecting { attempt, pending } => {
                Ok((*attempt, Checkout::Connecting(pending.clone())))
            }
            State::Down { retry_at, .. } if Instant::now() < *retry_at => Err(RedisError::from((
                ErrorKind::Io,
                "Redis failed moments ago; not retrying until the back-off ends",
            ))),
            State::Down { attempt, .. } => {
                let attempt = attempt + 1;
                let pending = spawn_connect(&self.client, &self.config, &self.runtime);
                *state = State::Connecting {
                    attempt,
                    pending: pending.clone(),
                };
                Ok((attempt, Checkout::Connecting(pending)))
            }
        }
    }

    fn connected(&self, attempt: u64, connection: &MultiplexedConnection) {
        let mut state = self.lock();
        if matches!(&*state, State::Connecting { attempt: a, .. } if *a == attempt) {
            *state = State::Ready {
                attempt,
                connection: connection.clone(),
            };
            drop(state);
            if self.degraded.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    store = self.store,
                    link = self.name,
                    "Redis reachable again"
                );
            }
        }
    }

    /// Moves the link to `Down`, dropping its connection: after a timeout it may be half-open, and a fresh
    /// connection to a healthy Redis costs a millisecond.
    fn failed(&self, attempt: u64, error: &RedisError) {
        let mut state = self.lock();
        if state.attempt() != attempt || matches!(&*state, State::Down { .. }) {
            return;
        }
        *state = State::Down {
            attempt,
            retry_at: Instant::now() + self.backoff,
        };
        drop(state);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                store = self.store,
                link = self.name,
                %error,
                backoff = ?self.backoff,
                "Redis failed; requests go without this store until a probe succeeds"
            );
        }
    }
}

/// One connection attempt, run on the cache's runtime so that the connection's driver task lives there. It runs
/// to its end (bounded by the connection timeout) even when every caller stopped waiting.
fn spawn_connect(
    client: &redis::Client,
    config: &AsyncConnectionConfig,
    runtime: &Handle,
) -> PendingConnection {
    let client = client.clone();
    let config = config.clone();
    let task = runtime.spawn(async move {
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    });
    async move {
        task.await.unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "the store's runtime stopped while connecting",
            )))
        })
    }
    .boxed()
    .shared()
}

/// Whether an error means Redis could not be reached or did not answer (as opposed to an answer that was an
/// error).
fn is_outage(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}
