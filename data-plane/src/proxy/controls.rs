//! The gateway's own headers (`cf-aig-*`, spec §2.3 and §4) in one table, and the reader of request controls.
//!
//! Request controls are read where they are used (plan, cache, admission, the record), always through
//! [`Controls`], so the precedence is one rule: a universal step's own `headers` > the request's headers. The
//! gateway's settings come after both, in the phase that applies them. None of these headers ever reaches a
//! provider (`upstream::header::is_gateway_control`).

use pingora::http::RequestHeader;

use crate::error::AiGatewayError;

// Request headers.
pub(crate) const AUTHORIZATION: &str = "cf-aig-authorization";
pub(crate) const COLLECT_LOG: &str = "cf-aig-collect-log";
pub(crate) const COLLECT_PAYLOAD: &str = "cf-aig-collect-log-payload";
pub(crate) const EVENT_ID: &str = "cf-aig-event-id";
pub(crate) const METADATA: &str = "cf-aig-metadata";
pub(crate) const CUSTOM_COST: &str = "cf-aig-custom-cost";
pub(crate) const MAX_ATTEMPTS: &str = "cf-aig-max-attempts";
pub(crate) const RETRY_DELAY: &str = "cf-aig-retry-delay";
pub(crate) const BACKOFF: &str = "cf-aig-backoff";
pub(crate) const REQUEST_TIMEOUT: &str = "cf-aig-request-timeout";
pub(crate) const BYOK_ALIAS: &str = "cf-aig-byok-alias";
pub(crate) const CACHE_TTL: &str = "cf-aig-cache-ttl";
pub(crate) const CACHE_TTL_OLD: &str = "cf-cache-ttl";
pub(crate) const SKIP_CACHE: &str = "cf-aig-skip-cache";
pub(crate) const SKIP_CACHE_OLD: &str = "cf-skip-cache";
pub(crate) const CACHE_KEY: &str = "cf-aig-cache-key";
/// The caller's trace (32 hex digits) and span (16) the request's OTLP span joins (spec §3.16).
pub(crate) const OTEL_TRACE_ID: &str = "cf-aig-otel-trace-id";
pub(crate) const OTEL_PARENT_SPAN_ID: &str = "cf-aig-otel-parent-span-id";

// Response headers.
pub(crate) const REQUEST_ID: &str = "cf-aig-request-id";
pub(crate) const LOG_ID: &str = "cf-aig-log-id";
pub(crate) const STEP: &str = "cf-aig-step";
pub(crate) const CACHE_STATUS: &str = "cf-aig-cache-status";
/// On `/compat` answers: the model and provider that served the request.
pub(crate) const MODEL: &str = "cf-aig-model";
pub(crate) const PROVIDER: &str = "cf-aig-provider";

/// Where a step's `cf-aig-*` controls are read: its own headers first (universal steps), then the request's.
#[derive(Clone, Copy)]
pub(crate) struct Controls<'a> {
    pub request: &'a RequestHeader,
    pub step_headers: &'a [(String, String)],
}

impl<'a> Controls<'a> {
    /// The request's own headers only (no universal step).
    pub(crate) fn of_request(request: &'a RequestHeader) -> Self {
        Self {
            request,
            step_headers: &[],
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.step_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
            .or_else(|| self.request.headers.get(name).map(|v| v.as_bytes()))
    }

    pub(crate) fn text(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// A `true`/`false` control; anything else counts as absent.
    pub(crate) fn flag(&self, name: &str) -> Option<bool> {
        flag(self.get(name))
    }

    /// A whole number within `range`, or a 400 that names the header and its range.
    pub(crate) fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, AiGatewayError> {
        let Some(raw) = self.text(name) else {
            return Ok(None);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                AiGatewayError::bad_request(format!(
                    "{name} must be a whole number from {} to {}, got {raw:?}",
                    range.start(),
                    range.end()
                ))
            })
    }
}

/// `true`/`false` header values (anything else is absent).
pub(crate) fn flag(raw: Option<&[u8]>) -> Option<bool> {
    match raw? {
        b"true" | b"1" => Some(true),
        b"false" | b"0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_header_beats_the_requests_and_names_match_in_any_case() {
        let mut request = RequestHeader::build("POST", b"/", None).unwrap();
        request.append_header(COLLECT_LOG, "false").unwrap();
        request.append_header(EVENT_ID, "from-request").unwrap();
        let step = vec![("CF-AIG-Event-ID".to_owned(), " from-step ".to_owned())];
        let controls = Controls {
            request: &request,
            step_headers: &step,
        };
        assert_eq!(controls.text(EVENT_ID), Some("from-step"));
        assert_eq!(controls.flag(COLLECT_LOG), Some(false));
        assert_eq!(
            Controls::of_request(&request).text(EVENT_ID),
            Some("from-request")
        );
        assert_eq!(flag(Some(b"yes")), None);
        assert_eq!(flag(Some(b"1")), Some(true));
    }
}
