//! Settings the binary hands to the data plane.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::DataPlaneError;

/// How the data plane listens and shuts down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPlaneSettings {
    /// Where to accept client traffic. Port 0 asks the OS for a free port; `DataPlane::local_addr` tells which.
    pub listen: SocketAddr,
    /// Worker threads of the pingora runtime that serves the listener (pingora runs one extra thread of its own
    /// that only waits for the shutdown signal).
    pub threads: usize,
    /// On a graceful stop, how long requests already in flight may keep running after the listener stops
    /// accepting. pingora waits this long unconditionally, even when nothing is in flight, so it is also the
    /// minimum duration of every graceful stop. Rounded up to whole seconds (pingora's unit).
    pub grace_period: Duration,
    /// After the grace period, how long pingora waits for its runtimes to wind down before it drops what is
    /// left. Rounded up to whole seconds.
    pub shutdown_timeout: Duration,
    /// Whether the data plane listens to SIGTERM (graceful stop) and SIGINT (immediate stop) itself. A binary
    /// that owns signal handling (for example, to stop both planes in order) turns this off and resolves the
    /// `shutdown` future instead.
    pub handle_os_signals: bool,
}

impl DataPlaneSettings {
    pub const DEFAULT_THREADS: usize = 2;
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

    /// Settings with the defaults for everything but the address.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            threads: Self::DEFAULT_THREADS,
            grace_period: Self::DEFAULT_GRACE_PERIOD,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            handle_os_signals: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DataPlaneError> {
        if self.threads == 0 {
            return Err(DataPlaneError::InvalidSettings(
                "threads must be at least 1",
            ));
        }
        Ok(())
    }
}

/// pingora configures its shutdown timers in whole seconds; round up so a configured 1.5 s never becomes 1 s.
pub(crate) fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds() {
        for (duration, seconds) in [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1500), 2),
        ] {
            assert_eq!(whole_seconds(duration), seconds, "{duration:?}");
        }
    }

    #[test]
    fn zero_threads_is_rejected() {
        let mut settings = DataPlaneSettings::new(([127, 0, 0, 1], 0).into());
        settings.threads = 0;
        assert!(matches!(
            settings.validate(),
            Err(DataPlaneError::InvalidSettings(_))
        ));
    }
}
