//! Settings the binary hands to the data plane.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::DataPlaneError;

/// How the data plane listens and shuts down.
#[derive(Debug, Clone)]
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
    /// Opens provider secrets in config documents. A node without it serves only gateways without stored keys.
    pub master_key: Option<gatehouse_shared::crypto::MasterKey>,
    /// Operator overrides of built-in upstream bases (`slug` → base URL), so a self-hosted OpenAI-compatible
    /// server or a test mock can stand in for any provider.
    pub provider_base_urls: Vec<(String, String)>,
    /// Largest request body read from a client; larger is 413.
    pub max_body_bytes: usize,
    /// Largest request header (names and values of every field together); larger is 431.
    pub max_header_bytes: usize,
    /// How long to wait for an upstream TCP (and TLS) connection.
    pub upstream_connect_timeout: Duration,
    /// How long to wait for an upstream's response header when the request sets no timeout of its own.
    pub upstream_response_timeout: Duration,
    /// The longest one upstream exchange may take from the request to the last response byte, streams included,
    /// so a provider that trickles bytes forever cannot hold a request (and its connection) forever.
    pub upstream_total_timeout: Duration,
    /// A PEM bundle of CA certificates that upstream TLS certificates are verified against, instead of the
    /// system roots (which `SSL_CERT_FILE` can also replace). For private CAs in front of self-hosted models.
    pub upstream_ca_file: Option<std::path::PathBuf>,
    /// Memory the in-process response cache may hold (standalone mode; split mode caches in Redis).
    pub memory_cache_bytes: usize,
    /// Whether a request's `X-Forwarded-Proto` says the scheme the client used (a TLS-terminating proxy in front
    /// of the node), which a DPoP proof's `htu` names. Off, the scheme is the listener's own (`http`): a client
    /// could otherwise claim `https` for a proof made for another URL.
    pub trust_forwarded_proto: bool,
    /// Whether the node keeps Prometheus metrics and serves them at `GET /metrics` (`metrics.rs`).
    pub metrics: bool,
}

impl DataPlaneSettings {
    pub const DEFAULT_THREADS: usize = 2;
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
    pub const DEFAULT_MEMORY_CACHE_BYTES: usize = 256 * 1024 * 1024;
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
    pub const DEFAULT_UPSTREAM_TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);

    /// Settings with the defaults for everything but the address.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            threads: Self::DEFAULT_THREADS,
            grace_period: Self::DEFAULT_GRACE_PERIOD,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            handle_os_signals: true,
            master_key: None,
            provider_base_urls: Vec::new(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            upstream_connect_timeout: Self::DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
            upstream_response_timeout: Self::DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
            upstream_total_timeout: Self::DEFAULT_UPSTREAM_TOTAL_TIMEOUT,
            upstream_ca_file: None,
            memory_cache_bytes: Self::DEFAULT_MEMORY_CACHE_BYTES,
            trust_forwarded_proto: false,
            metrics: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DataPlaneError> {
        if self.threads == 0 {
            return Err(DataPlaneError::InvalidSettings(
                "threads must be at least 1",
            ));
        }
        if self.upstream_total_timeout.is_zero() || self.upstream_response_timeout.is_zero() {
            return Err(DataPlaneError::InvalidSettings(
                "upstream timeouts must be longer than zero",
            ));
        }
        if let Some(path) = &self.upstream_ca_file {
            // pingora's connector panics on an unusable bundle when it is built inside `run`; refuse it here.
            let pem = std::fs::read_to_string(path).map_err(|_| {
                DataPlaneError::InvalidSettings("the upstream CA file cannot be read")
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(DataPlaneError::InvalidSettings(
                    "the upstream CA file holds no PEM certificate",
                ));
            }
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
