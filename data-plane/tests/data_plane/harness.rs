//! Starts a data plane on port 0 on a background thread and stops it again.

use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gatehouse_data_plane::{DataPlane, DataPlaneError, DataPlaneSettings, ReadinessHandle};
use tokio::sync::oneshot;

/// How long a stopped data plane may take to return from `run` before a test fails.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Settings for tests: one worker thread, no grace period (pingora sleeps through all of it on every graceful
/// stop), and no signal handlers, which would outlive the test in the shared test process.
pub fn test_settings() -> DataPlaneSettings {
    let mut settings = DataPlaneSettings::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.threads = 1;
    settings.grace_period = Duration::ZERO;
    settings.shutdown_timeout = Duration::ZERO;
    settings.handle_os_signals = false;
    settings
}

pub struct RunningDataPlane {
    pub addr: SocketAddr,
    pub readiness: ReadinessHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), DataPlaneError>>>,
}

impl RunningDataPlane {
    pub fn start() -> Self {
        let data_plane = DataPlane::bind(test_settings()).expect("binding port 0 works");
        Self::run(data_plane)
    }

    /// Runs an already bound data plane on a background thread.
    pub fn run(data_plane: DataPlane) -> Self {
        let addr = data_plane.local_addr();
        let readiness = data_plane.readiness();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("data-plane-under-test".into())
            .spawn(move || {
                data_plane.run(async move {
                    // A dropped sender stops the data plane too, so a failing test never leaks a server.
                    let _ = stopped.await;
                })
            })
            .expect("spawning the data-plane thread works");
        Self {
            addr,
            readiness,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Resolves the shutdown future and waits for `run` to return, failing the test after `STOP_DEADLINE`.
    pub fn stop(mut self) -> (Result<(), DataPlaneError>, Duration) {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("the thread is joined only here");
        while !thread.is_finished() {
            assert!(
                started.elapsed() < STOP_DEADLINE,
                "run did not return within {STOP_DEADLINE:?} after shutdown"
            );
            thread::sleep(Duration::from_millis(10));
        }
        let result = thread.join().expect("the data-plane thread did not panic");
        (result, started.elapsed())
    }
}

impl Drop for RunningDataPlane {
    fn drop(&mut self) {
        // Dropping the sender resolves the shutdown future; the thread is left to finish on its own so that a
        // failing assertion is reported instead of hanging here.
        self.stop.take();
    }
}
