//! Process signals, caught from the first moment: the listen lines are printed only after this is installed, so a
//! supervisor (or a test) that sends SIGTERM as soon as it reads them gets a clean stop, not the default action
//! that kills the process.

use anyhow::{Context, Result, anyhow};
use gatehouse_data_plane::ShutdownMode;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Signals received so far; clone-free waiting through [`ProcessSignals::wait`].
pub struct ProcessSignals {
    received: watch::Receiver<Option<ShutdownMode>>,
}

impl ProcessSignals {
    /// Registers SIGTERM (graceful stop) and SIGINT (immediate stop) on a dedicated thread with its own small
    /// runtime, and returns once both are registered.
    pub fn install() -> Result<Self> {
        let (tx, received) = watch::channel(None);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let (mut term, mut int) = match (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) {
                        (Ok(t), Ok(i)) => (t, i),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    loop {
                        let mode = tokio::select! {
                            _ = term.recv() => ShutdownMode::Graceful,
                            _ = int.recv() => ShutdownMode::Immediate,
                        };
                        tx.send_replace(Some(mode));
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the signal thread ended"))?
            .context("registering signal handlers")?;
        Ok(Self { received })
    }

    /// Resolves with the first signal's stop mode. Runtime-independent, so any runtime may await it.
    pub fn wait(&self) -> impl std::future::Future<Output = ShutdownMode> + Send + 'static {
        let mut received = self.received.clone();
        async move {
            loop {
                if let Some(mode) = *received.borrow_and_update() {
                    return mode;
                }
                if received.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}
