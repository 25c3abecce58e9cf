//! Decides when pingora's `Server::run` stops, and how.
//!
//! pingora's default watcher (`UnixShutdownSignalWatch`) only knows Unix signals, panics if it cannot register
//! them, and maps SIGQUIT to a graceful upgrade that sends our listening fd to a Unix socket in /tmp. This
//! watcher replaces it: the binary's `shutdown` future and SIGTERM stop gracefully, SIGINT stops at once, and the
//! listening service dying stops at once with an error. It never asks for a graceful upgrade.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

pub(crate) type ShutdownFuture = Pin<Box<dyn Future<Output = ShutdownMode> + Send + 'static>>;

/// How a requested stop proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Stop accepting and let requests in flight finish within the grace period (SIGTERM's meaning).
    Graceful,
    /// Stop at once (SIGINT's meaning: an operator's Ctrl-C).
    Immediate,
}

/// Why the data plane stopped; `DataPlane::run` turns it into its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Requested(ShutdownMode),
    Sigterm,
    Sigint,
    ServiceStopped,
}

impl StopReason {
    fn signal(self) -> ShutdownSignal {
        match self {
            // Graceful: stop accepting, let requests in flight finish within the grace period.
            Self::Requested(ShutdownMode::Graceful) | Self::Sigterm => {
                ShutdownSignal::GracefulTerminate
            }
            // An operator's Ctrl-C means now, and a dead listener has nothing to drain.
            Self::Requested(ShutdownMode::Immediate) | Self::Sigint | Self::ServiceStopped => {
                ShutdownSignal::FastShutdown
            }
        }
    }
}

pub(crate) struct ShutdownWatcher {
    // pingora calls `recv(&self)` once; the parts are taken out then. Mutexes make the watcher `Sync`, which the
    // `Send` future of the async trait method requires.
    requested: Mutex<Option<ShutdownFuture>>,
    service_exited: Mutex<Option<oneshot::Receiver<()>>>,
    handle_os_signals: bool,
    reason: Arc<OnceLock<StopReason>>,
}

impl ShutdownWatcher {
    pub(crate) fn new(
        requested: ShutdownFuture,
        service_exited: oneshot::Receiver<()>,
        handle_os_signals: bool,
        reason: Arc<OnceLock<StopReason>>,
    ) -> Self {
        Self {
            requested: Mutex::new(Some(requested)),
            service_exited: Mutex::new(Some(service_exited)),
            handle_os_signals,
            reason,
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for ShutdownWatcher {
    async fn recv(&self) -> ShutdownSignal {
        let requested = take(&self.requested);
        let service_exited = take(&self.service_exited);
        let reason = tokio::select! {
            mode = resolve_or_wait_forever(requested) => StopReason::Requested(mode),
            () = os_signal(SignalKind::terminate(), self.handle_os_signals) => StopReason::Sigterm,
            () = os_signal(SignalKind::interrupt(), self.handle_os_signals) => StopReason::Sigint,
            () = service_exit(service_exited) => StopReason::ServiceStopped,
        };
        match reason {
            StopReason::ServiceStopped => {
                tracing::error!("data-plane listening service stopped unexpectedly; shutting down")
            }
            _ => tracing::info!(?reason, "data plane shutting down"),
        }
        // `recv` runs once per `Server::run`, so the cell is empty here.
        let _ = self.reason.set(reason);
        reason.signal()
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

async fn resolve_or_wait_forever(future: Option<ShutdownFuture>) -> ShutdownMode {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Resolves when the listening service has ended. The sender is only ever dropped, never used, so the receiver's
/// error is the signal.
async fn service_exit(exited: Option<oneshot::Receiver<()>>) {
    match exited {
        Some(exited) => {
            let _ = exited.await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves when the signal arrives. Waits forever when signals are not ours to handle or cannot be registered,
/// so the other stop conditions still work.
async fn os_signal(kind: SignalKind, enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    match signal(kind) {
        Ok(mut stream) => {
            stream.recv().await;
        }
        Err(error) => {
            tracing::warn!(%error, ?kind, "cannot listen for the signal; relying on the shutdown future");
            std::future::pending::<()>().await;
        }
    }
}
