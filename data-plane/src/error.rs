//! The crate's error enum, and the one place where gateway-made errors become HTTP bodies.
//!
//! Two kinds of failure live here and are kept apart on purpose:
//! - [`DataPlaneError`] is what the embedding binary sees: the listener could not be bound, the settings are
//!   unusable, the listening service died.
//! - [`AiGatewayError`] is what a *client* sees when the gateway itself refuses or fails a request. It is a row of
//!   the error-code table below and is rendered by [`AiGatewayError::body`], the only function that produces
//!   Cloudflare's `AiGatewayError` JSON shape. Provider errors never pass through here: they are forwarded as the
//!   provider sent them, which is how clients tell "gateway 401" from "provider 401".

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// Everything that can go wrong while setting up or running the data plane.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("invalid data-plane settings: {0}")]
    InvalidSettings(&'static str),

    #[error("cannot bind the data-plane listener to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("cannot prepare the bound data-plane listener on {addr}")]
    ListenerSetup {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    /// An operator provider override is unusable (unknown slug, not an http(s) URL).
    #[error("provider base URL override: {0}")]
    Upstreams(String),

    /// The listening service ended (for example, it panicked) while nobody had asked the data plane to stop.
    /// `DataPlane::run` returns this instead of idling with no listener behind the port.
    #[error("the data-plane listening service stopped before shutdown was requested")]
    ServiceStopped,
}

/// Internal codes of gateway-made errors (`internalCode` and `error[0].code` in the body).
///
/// Codes that Cloudflare AI Gateway is known to return keep Cloudflare's number and status (see the spec, §2.6),
/// so clients written against Cloudflare branch the same way. Codes for situations Cloudflare never reports are
/// Gatehouse's own: 2000 for "no such endpoint", and the 2900 block, which Cloudflare does not use, for conditions
/// that only a self-hosted node has (not ready yet, internal failure).
pub mod code {
    /// The path is not an endpoint of the gateway at all (not `/v1/...`, `/compat/...`, or a probe).
    /// Cloudflare has no documented code for this; 2000 sits just below its lowest known one (2001).
    pub const NOT_FOUND: u32 = 2000;
    /// The provider slug in `/v1/{account}/{gateway}/{provider}/...` is unknown. Cloudflare's code, used once
    /// provider routing exists.
    pub const INVALID_PROVIDER: u32 = 2008;
    /// The gateway named in the path does not exist (Cloudflare's code and status: 400).
    pub const GATEWAY_NOT_FOUND: u32 = 2001;
    /// The provider could not be reached or failed before answering (Cloudflare: "Failed to get response from
    /// provider"). Gatehouse answers 502 for connection failures and 504 when the provider does not answer in time.
    pub const PROVIDER_FAILED: u32 = 2005;
    /// Missing or invalid `cf-aig-authorization` on a gateway with `authentication: true`.
    pub const UNAUTHORIZED: u32 = 2009;
    /// The gateway's request rate limit refused the request (Cloudflare's code and status: 429).
    pub const RATE_LIMITED: u32 = 2003;
    /// `cf-aig-byok-alias` names no stored key of that provider.
    pub const BYOK_ALIAS_NOT_FOUND: u32 = 2040;
    /// A spend-limit rule's budget for its window is used up (Cloudflare's code and status: 429).
    pub const SPEND_LIMIT_EXCEEDED: u32 = 2041;
    /// The node has not loaded its first full config yet (`/readyz`, and later every inference request).
    pub const NOT_READY: u32 = 2900;
    /// The downstream request could not be processed (malformed body, broken framing).
    pub const BAD_REQUEST: u32 = 2901;
    /// A failure inside the gateway that the request did not cause.
    pub const INTERNAL: u32 = 2902;
    /// The request body is larger than the node's cap (`--proxy-max-body-bytes`).
    pub const BODY_TOO_LARGE: u32 = 2903;
    /// The request header is larger than the node's cap (`--proxy-max-header-bytes`).
    pub const HEADER_TOO_LARGE: u32 = 2904;
    /// The virtual key may not use the request's model (403; issue 14).
    pub const MODEL_NOT_ALLOWED: u32 = 2905;
    /// A virtual key's, its user's or its team's requests or tokens per minute, or the gateway's `tpm_limit`, are
    /// used up (429 with `Retry-After`; the message names the limit).
    pub const KEY_RATE_LIMITED: u32 = 2906;
    /// A budget of a virtual key, its user or its team would be exceeded by the request's worst case (429; the
    /// message names the budget).
    pub const BUDGET_EXCEEDED: u32 = 2907;
}

/// One gateway-made error: the HTTP status, the internal code and the human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiGatewayError {
    pub status: StatusCode,
    pub code: u32,
    pub message: Cow<'static, str>,
    /// Seconds until a refused request may succeed, sent as `Retry-After` (limits only).
    pub retry_after_secs: Option<u64>,
    /// On the OpenAI-compatible endpoint, a refusal of the request's content (a malformed body, a parameter the
    /// provider cannot honour) is rendered in OpenAI's error shape, which is what the client's SDK parses; the
    /// gateway's own conditions (unknown provider, auth, limits) keep Cloudflare's shape there too.
    pub openai: Option<Box<crate::dialect::ProviderError>>,
}

impl AiGatewayError {
    pub const NOT_FOUND: Self = Self::fixed(StatusCode::NOT_FOUND, code::NOT_FOUND, "Not found");
    pub const INVALID_PROVIDER: Self = Self::fixed(
        StatusCode::BAD_REQUEST,
        code::INVALID_PROVIDER,
        "Invalid provider",
    );
    pub const NOT_READY: Self = Self::fixed(
        StatusCode::SERVICE_UNAVAILABLE,
        code::NOT_READY,
        "Gateway node is not ready: configuration not loaded yet",
    );
    pub const BAD_REQUEST: Self =
        Self::fixed(StatusCode::BAD_REQUEST, code::BAD_REQUEST, "Bad request");
    pub const GATEWAY_NOT_FOUND: Self = Self::fixed(
        StatusCode::BAD_REQUEST,
        code::GATEWAY_NOT_FOUND,
        "Gateway does not exist",
    );
    pub const INVALID_KEY: Self = Self::fixed(
        StatusCode::UNAUTHORIZED,
        code::UNAUTHORIZED,
        "Invalid, expired or revoked virtual key",
    );
    pub const UNAUTHORIZED: Self =
        Self::fixed(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED, "Unauthorized");
    pub const PROVIDER_UNREACHABLE: Self = Self::fixed(
        StatusCode::BAD_GATEWAY,
        code::PROVIDER_FAILED,
        "Failed to get response from provider",
    );
    pub const PROVIDER_TIMEOUT: Self = Self::fixed(
        StatusCode::GATEWAY_TIMEOUT,
        code::PROVIDER_FAILED,
        "Failed to get response from provider: timed out",
    );
    pub const BODY_TOO_LARGE: Self = Self::fixed(
        StatusCode::PAYLOAD_TOO_LARGE,
        code::BODY_TOO_LARGE,
        "Request body too large",
    );
    pub const HEADER_TOO_LARGE: Self = Self::fixed(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        code::HEADER_TOO_LARGE,
        "Request header too large",
    );
    pub const INTERNAL: Self = Self::fixed(
        StatusCode::INTERNAL_SERVER_ERROR,
        code::INTERNAL,
        "Internal gateway error",
    );

    /// A table row with a fixed message; errors whose message names request data (an alias, a limit rule) will
    /// build their message at run time instead.
    pub const fn fixed(status: StatusCode, code: u32, message: &'static str) -> Self {
        Self {
            status,
            code,
            message: Cow::Borrowed(message),
            retry_after_secs: None,
            openai: None,
        }
    }

    /// A 400 whose message says what is wrong with the request.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: code::BAD_REQUEST,
            message: message.into(),
            retry_after_secs: None,
            openai: None,
        }
    }

    /// A refusal in OpenAI's error shape (the `/compat` endpoints), with its status.
    pub fn openai(error: crate::dialect::ProviderError) -> Self {
        Self {
            status: StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST),
            code: code::BAD_REQUEST,
            message: Cow::Owned(error.message.clone()),
            retry_after_secs: None,
            openai: Some(Box::new(error)),
        }
    }

    /// Cloudflare's 2040: the alias names no stored key; the message lists the configured ones.
    pub fn byok_alias_not_found(provider: &str, alias: &str, configured: &[&str]) -> Self {
        let list = if configured.is_empty() {
            "none".to_owned()
        } else {
            configured.join(", ")
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            code: code::BYOK_ALIAS_NOT_FOUND,
            message: Cow::Owned(format!(
                "Provider '{provider}' has no BYOK credential named '{alias}'. Configured aliases: {list}"
            )),
            retry_after_secs: None,
            openai: None,
        }
    }

    /// Cloudflare's 2003: the gateway's rate limit; `retry_after` is when a request can pass again.
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: code::RATE_LIMITED,
            message: Cow::Borrowed("Rate limited"),
            // Whole seconds, rounded up, and at least one: `Retry-After: 0` would invite an immediate retry.
            retry_after_secs: Some(retry_after.as_millis().div_ceil(1000).max(1) as u64),
            openai: None,
        }
    }

    /// Cloudflare's 2041: a spend-limit rule's budget is used up; the message names the rule.
    /// No `Retry-After`: a sliding window frees budget gradually, by the cost of requests not yet known.
    pub fn spend_limit_exceeded(message: String) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: code::SPEND_LIMIT_EXCEEDED,
            message: Cow::Owned(message),
            retry_after_secs: None,
            openai: None,
        }
    }

    /// The answer for a request that failed inside pingora's own machinery rather than in our `request_filter`
    /// (which renders its specific errors itself). `None` means the client is gone and nothing can be written.
    pub fn for_pingora_error(error: &pingora::Error) -> Option<Self> {
        use pingora::ErrorType::{ConnectionClosed, HTTPStatus, ReadError, WriteError};

        match (error.esource(), error.etype()) {
            (_, HTTPStatus(status)) => {
                let status = StatusCode::from_u16(*status).ok()?;
                let row = if status.is_client_error() {
                    Self::BAD_REQUEST
                } else {
                    Self::INTERNAL
                };
                Some(Self { status, ..row })
            }
            (pingora::ErrorSource::Downstream, WriteError | ReadError | ConnectionClosed) => None,
            (pingora::ErrorSource::Downstream, _) => Some(Self::BAD_REQUEST),
            _ => Some(Self::INTERNAL),
        }
    }

    /// Renders Cloudflare's `AiGatewayError` body, field for field and in Cloudflare's key order:
    /// `{"success":false,"result":[],"messages":[],"error":[{"code":..,"message":..}],"name":"AiGatewayError",
    /// "httpCode":..,"internalCode":..,"message":..,"description":..}`.
    ///
    /// This is the only renderer of gateway-made errors; every response path calls it.
    pub fn body(&self) -> Bytes {
        if let Some(openai) = &self.openai {
            return Bytes::from(serde_json::to_vec(&openai.body()).unwrap_or_default());
        }
        let body = WireBody {
            success: false,
            result: &[],
            messages: &[],
            error: [WireEntry {
                code: self.code,
                message: &self.message,
            }],
            name: "AiGatewayError",
            http_code: self.status.as_u16(),
            internal_code: self.code,
            message: &self.message,
            description: &self.message,
        };
        // Serialising a struct of strings and integers cannot fail; the fallback only keeps this function total.
        match serde_json::to_vec(&body) {
            Ok(json) => Bytes::from(json),
            Err(_) => Bytes::from_static(br#"{"success":false,"name":"AiGatewayError"}"#),
        }
    }
}

/// The wire shape. A struct rather than `json!` so the key order matches Cloudflare's byte for byte (serde_json's
/// map would sort the keys).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireBody<'a> {
    success: bool,
    result: &'a [serde_json::Value],
    messages: &'a [serde_json::Value],
    error: [WireEntry<'a>; 1],
    name: &'static str,
    http_code: u16,
    internal_code: u32,
    message: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct WireEntry<'a> {
    code: u32,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_provider_renders_exactly_like_cloudflare() {
        let expected = r#"{"success":false,"result":[],"messages":[],"error":[{"code":2008,"message":"Invalid provider"}],"name":"AiGatewayError","httpCode":400,"internalCode":2008,"message":"Invalid provider","description":"Invalid provider"}"#;
        assert_eq!(AiGatewayError::INVALID_PROVIDER.body(), expected.as_bytes());
    }

    #[test]
    fn every_table_row_carries_its_status_and_code_into_the_body() {
        for row in [
            AiGatewayError::NOT_FOUND,
            AiGatewayError::INVALID_PROVIDER,
            AiGatewayError::NOT_READY,
            AiGatewayError::BAD_REQUEST,
            AiGatewayError::INTERNAL,
            AiGatewayError::GATEWAY_NOT_FOUND,
            AiGatewayError::UNAUTHORIZED,
            AiGatewayError::PROVIDER_UNREACHABLE,
            AiGatewayError::PROVIDER_TIMEOUT,
            AiGatewayError::BODY_TOO_LARGE,
            AiGatewayError::byok_alias_not_found("openai", "x", &["default", "prod"]),
        ] {
            let body: serde_json::Value = serde_json::from_slice(&row.body()).expect("valid JSON");
            assert_eq!(body["httpCode"], row.status.as_u16(), "{row:?}");
            assert_eq!(body["internalCode"], row.code, "{row:?}");
            assert_eq!(body["error"][0]["code"], row.code, "{row:?}");
            assert_eq!(body["message"], &*row.message, "{row:?}");
        }
    }

    #[test]
    fn pingora_errors_map_to_a_status_and_code_or_to_silence() {
        use pingora::{Error, ErrorSource, ErrorType};

        let cases = [
            (
                ErrorType::HTTPStatus(413),
                ErrorSource::Internal,
                Some((413, code::BAD_REQUEST)),
            ),
            (
                ErrorType::HTTPStatus(504),
                ErrorSource::Internal,
                Some((504, code::INTERNAL)),
            ),
            (
                ErrorType::InvalidHTTPHeader,
                ErrorSource::Downstream,
                Some((400, code::BAD_REQUEST)),
            ),
            (ErrorType::ConnectionClosed, ErrorSource::Downstream, None),
            (ErrorType::WriteError, ErrorSource::Downstream, None),
            (
                ErrorType::InternalError,
                ErrorSource::Internal,
                Some((500, code::INTERNAL)),
            ),
            (
                ErrorType::ConnectTimedout,
                ErrorSource::Upstream,
                Some((500, code::INTERNAL)),
            ),
        ];
        for (etype, source, expected) in cases {
            let mut error = Error::new(etype.clone());
            error.esource = source.clone();
            let answer = AiGatewayError::for_pingora_error(&error)
                .map(|answer| (answer.status.as_u16(), answer.code));
            assert_eq!(answer, expected, "{etype:?} from {source:?}");
        }
    }

    #[test]
    fn a_message_with_quotes_is_escaped() {
        let error = AiGatewayError {
            status: StatusCode::BAD_REQUEST,
            code: 2040,
            message: Cow::Owned(r#"Provider "x" has no BYOK credential"#.to_owned()),
            retry_after_secs: None,
            openai: None,
        };
        let body: serde_json::Value = serde_json::from_slice(&error.body()).expect("valid JSON");
        assert_eq!(
            body["description"],
            r#"Provider "x" has no BYOK credential"#
        );
    }
}
