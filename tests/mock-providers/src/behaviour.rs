//! How the mock misbehaves: a default set programmatically, overridden field by field by `x-mock-*` request headers.

use std::time::Duration;

use http::HeaderMap;

use crate::text::DEFAULT_CHUNKS;

/// Request headers that steer one request. They work through the gateway (which forwards every header but
/// `cf-aig-*`), so a mock in another process can be driven by the test that sends the traffic.
pub mod control {
    /// Answer with this status (400..=599) and the provider's error body for it.
    pub const STATUS: &str = "x-mock-status";
    /// Fail the first N requests of a key, then succeed.
    pub const FAIL_FIRST: &str = "x-mock-fail-first";
    /// The status those failures get (default 500).
    pub const FAIL_STATUS: &str = "x-mock-fail-status";
    /// What the failures are counted per (default: the request path).
    pub const FAIL_KEY: &str = "x-mock-fail-key";
    /// Milliseconds to wait before the response header.
    pub const HEADER_DELAY_MS: &str = "x-mock-header-delay-ms";
    /// Milliseconds between two SSE events of a stream.
    pub const CHUNK_DELAY_MS: &str = "x-mock-chunk-delay-ms";
    /// Content pieces in the answer (stream deltas; the non-streaming text is the same pieces joined).
    pub const CHUNKS: &str = "x-mock-chunks";
    /// `1`/`true`: read the request, then never answer.
    pub const HANG: &str = "x-mock-hang";
    /// `1`/`true`: read the request, then close the connection without a response.
    pub const CLOSE: &str = "x-mock-close";
}

/// The most content pieces one answer may have; a bound so one header cannot make the mock allocate without limit.
const MAX_CHUNKS: usize = 100_000;

/// What the mock does with a request. `Default` is a well-behaved provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Behaviour {
    /// Answer every request with this status and the provider's error body.
    pub status: Option<u16>,
    /// Fail the first `fail_first` requests of each key (see `fail_key`), then succeed.
    pub fail_first: u32,
    /// Status of those failures; 500 when `None`.
    pub fail_status: Option<u16>,
    /// The key failures are counted per; the request path when `None`.
    pub fail_key: Option<String>,
    /// Wait this long before the response header.
    pub header_delay: Duration,
    /// Wait this long between two SSE events.
    pub chunk_delay: Duration,
    /// Content pieces per answer; [`DEFAULT_CHUNKS`] when `None`.
    pub chunks: Option<usize>,
    /// Never answer (the connection stays open until the client or the mock goes away).
    pub hang: bool,
    /// Close the connection without answering.
    pub close: bool,
    /// Accept only this API key (a wrong one gets the provider's 401); any non-empty key when `None`.
    pub api_key: Option<String>,
}

impl Behaviour {
    pub fn chunk_count(&self) -> usize {
        self.chunks.unwrap_or(DEFAULT_CHUNKS)
    }

    /// This behaviour with the request's `x-mock-*` headers applied. A header that does not parse is an error
    /// message for a 400, so a typo in a test shows up instead of being ignored.
    pub(crate) fn overlay(&self, headers: &HeaderMap) -> Result<Behaviour, String> {
        let mut b = self.clone();
        if let Some(v) = text(headers, control::STATUS)? {
            b.status = Some(error_status(control::STATUS, v)?);
        }
        if let Some(v) = text(headers, control::FAIL_FIRST)? {
            b.fail_first = number(control::FAIL_FIRST, v)?;
        }
        if let Some(v) = text(headers, control::FAIL_STATUS)? {
            b.fail_status = Some(error_status(control::FAIL_STATUS, v)?);
        }
        if let Some(v) = text(headers, control::FAIL_KEY)? {
            b.fail_key = Some(v.to_owned());
        }
        if let Some(v) = text(headers, control::HEADER_DELAY_MS)? {
            b.header_delay = Duration::from_millis(number(control::HEADER_DELAY_MS, v)?);
        }
        if let Some(v) = text(headers, control::CHUNK_DELAY_MS)? {
            b.chunk_delay = Duration::from_millis(number(control::CHUNK_DELAY_MS, v)?);
        }
        if let Some(v) = text(headers, control::CHUNKS)? {
            let n: usize = number(control::CHUNKS, v)?;
            if n > MAX_CHUNKS {
                return Err(format!("{}: at most {MAX_CHUNKS}", control::CHUNKS));
            }
            b.chunks = Some(n);
        }
        if let Some(v) = text(headers, control::HANG)? {
            b.hang = flag(control::HANG, v)?;
        }
        if let Some(v) = text(headers, control::CLOSE)? {
            b.close = flag(control::CLOSE, v)?;
        }
        Ok(b)
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| format!("{name}: not visible ASCII")),
    }
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name}: expected a non-negative integer, got {v:?}"))
}

fn error_status(name: &str, v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(s) if (400..=599).contains(&s) => Ok(s),
        _ => Err(format!("{name}: expected a status in 400..=599, got {v:?}")),
    }
}

fn flag(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(format!("{name}: expected 1/0 or true/false, got {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn headers_override_the_programmatic_default_field_by_field() {
        let base = Behaviour {
            chunks: Some(3),
            header_delay: Duration::from_millis(7),
            ..Behaviour::default()
        };
        let b = base
            .overlay(&headers(&[
                (control::CHUNK_DELAY_MS, "25"),
                (control::STATUS, "429"),
                (control::HANG, "true"),
            ]))
            .unwrap();
        assert_eq!(b.chunks, Some(3));
        assert_eq!(b.header_delay, Duration::from_millis(7));
        assert_eq!(b.chunk_delay, Duration::from_millis(25));
        assert_eq!(b.status, Some(429));
        assert!(b.hang);
    }

    #[test]
    fn a_control_header_that_does_not_parse_is_an_error_not_ignored() {
        let base = Behaviour::default();
        assert!(base.overlay(&headers(&[(control::STATUS, "200")])).is_err());
        assert!(base.overlay(&headers(&[(control::CHUNKS, "-1")])).is_err());
        assert!(
            base.overlay(&headers(&[(control::CLOSE, "maybe")]))
                .is_err()
        );
        assert!(
            base.overlay(&headers(&[(control::CHUNKS, "99999999")]))
                .is_err()
        );
    }
}
