//! How a step repeats a failed attempt (spec §3.4): the policy the plan builds and the attempt loop follows, and
//! which provider answers count as failures. A leaf: the plan and the loop both import it, it imports neither.

use std::time::Duration;

/// Cloudflare's bounds (spec §1.2, §4): at most 5 attempts, at most 5 s between them.
pub(crate) const MAX_ATTEMPTS: u32 = 5;
pub(crate) const MAX_RETRY_DELAY_MS: u64 = 5_000;

/// How a step repeats a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry); 1..=5.
    pub max_attempts: u32,
    /// The base delay between attempts.
    pub delay: Duration,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            delay: Duration::ZERO,
            backoff: Backoff::Constant,
        }
    }
}

/// How the delay grows with each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    Constant,
    Linear,
    Exponential,
}

impl Backoff {
    /// `constant`, `linear` or `exponential` (header and universal-step spelling).
    pub(crate) fn parse(raw: &str) -> Option<Backoff> {
        match raw {
            "constant" => Some(Backoff::Constant),
            "linear" => Some(Backoff::Linear),
            "exponential" => Some(Backoff::Exponential),
            _ => None,
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1 = the second attempt): constant `d`, linear `d·n`, exponential
    /// `d·2^(n−1)`.
    pub(crate) fn delay_before(&self, retry: u32) -> Duration {
        let n = retry.max(1);
        match self.backoff {
            Backoff::Constant => self.delay,
            Backoff::Linear => self.delay.saturating_mul(n),
            Backoff::Exponential => self.delay.saturating_mul(1 << (n - 1).min(16)),
        }
    }
}

/// Whether a provider status is worth another attempt of the same step.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// Whether a provider status ends the request successfully (no fallback).
pub(crate) fn is_success_status(status: u16) -> bool {
    status < 400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_follow_the_documented_formulas() {
        let policy = |backoff| RetryPolicy {
            max_attempts: 5,
            delay: Duration::from_millis(100),
            backoff,
        };
        let ms = |p: RetryPolicy| {
            (1..=4)
                .map(|n| p.delay_before(n).as_millis() as u64)
                .collect::<Vec<_>>()
        };
        assert_eq!(ms(policy(Backoff::Constant)), [100, 100, 100, 100]);
        assert_eq!(ms(policy(Backoff::Linear)), [100, 200, 300, 400]);
        assert_eq!(ms(policy(Backoff::Exponential)), [100, 200, 400, 800]);
        assert_eq!(Backoff::parse("linear"), Some(Backoff::Linear));
        assert_eq!(Backoff::parse("Linear"), None);
    }

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 201, 301, 400, 401, 403, 404, 409, 413, 422] {
            assert!(!is_retryable_status(status), "{status}");
        }
        assert!(is_success_status(200) && is_success_status(304));
        assert!(!is_success_status(400) && !is_success_status(500));
    }
}
