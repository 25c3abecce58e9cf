//! One collector of a gateway's `otel` list, compiled once per config change: the URL parsed into where the POST
//! goes, the headers checked as HTTP header names and values, so the exporter never fails on them later.

use std::hash::{Hash, Hasher};

use http::{HeaderName, HeaderValue};

use crate::route::UpstreamTarget;

/// How a collector wants its spans (`content_type` of an `otel` entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) enum OtlpEncoding {
    /// OTLP/JSON, `application/json`.
    #[default]
    Json,
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
}

impl OtlpEncoding {
    /// The `content_type` of an `otel` entry: `json` (also when absent) or `protobuf`.
    pub(crate) fn from_setting(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("json") => Ok(OtlpEncoding::Json),
            Some("protobuf") => Ok(OtlpEncoding::Protobuf),
            Some(other) => Err(format!("unknown content_type '{other}' (json or protobuf)")),
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Json => "application/json",
            OtlpEncoding::Protobuf => "application/x-protobuf",
        }
    }
}

/// One OTLP/HTTP collector. Two targets with the same URL, headers, authorization and encoding are the same
/// collector (`Eq`, `Hash`), so spans keep their batches across a config change that rebuilt the `Arc`.
pub(crate) struct OtlpTarget {
    /// The full traces URL as configured (`…/v1/traces`).
    url: String,
    /// Sent as-is, in order, after the exporter's own `host`, `content-type` and `content-length`, which they may
    /// not replace.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The resolved `Authorization` value, marked sensitive.
    authorization: Option<HeaderValue>,
    encoding: OtlpEncoding,
    /// Where the POST goes.
    upstream: UpstreamTarget,
    /// The URL without its query, for logs (a query may carry a key).
    log_name: String,
    /// A hash of everything that makes two targets the same collector, computed once.
    identity: u64,
}

/// Headers the exporter sets itself (the body's framing and type, the host it connects to): a configured one is
/// ignored rather than sent twice.
fn is_own_header(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
    [
        HOST,
        CONTENT_TYPE,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        CONNECTION,
    ]
    .contains(name)
}

impl OtlpTarget {
    /// A collector at `url` (`http://` or `https://`, the full traces URL). Refuses a URL it cannot send to and a
    /// header name or value that is not valid HTTP (the error names the header, never its value or the URL).
    pub(crate) fn new(
        url: &str,
        headers: &[(String, String)],
        authorization: Option<&str>,
        encoding: OtlpEncoding,
    ) -> Result<Self, String> {
        // The URL is not echoed: its query may carry a key.
        let upstream = UpstreamTarget::from_url(url)
            .ok_or("unusable OTLP URL (http:// or https://, a host, an optional port and path)")?;
        let mut checked = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("invalid header name '{name}'"))?;
            let mut value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("invalid value for header '{name}'"))?;
            if is_own_header(&name) {
                continue;
            }
            if name == http::header::AUTHORIZATION {
                value.set_sensitive(true);
            }
            checked.push((name, value));
        }
        let authorization = authorization
            .map(|value| {
                let mut value = HeaderValue::from_str(value.trim())
                    .map_err(|_| "invalid authorization value".to_owned())?;
                value.set_sensitive(true);
                Ok::<_, String>(value)
            })
            .transpose()?;
        let log_name = format!(
            "{}://{}{}",
            if upstream.tls { "https" } else { "http" },
            upstream.authority,
            upstream
                .path_and_query
                .split('?')
                .next()
                .unwrap_or_default()
        );
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        url.hash(&mut hasher);
        for (name, value) in &checked {
            name.hash(&mut hasher);
            value.as_bytes().hash(&mut hasher);
        }
        authorization
            .as_ref()
            .map(HeaderValue::as_bytes)
            .hash(&mut hasher);
        encoding.hash(&mut hasher);
        Ok(Self {
            url: url.to_owned(),
            headers: checked,
            authorization,
            encoding,
            upstream,
            log_name,
            identity: hasher.finish(),
        })
    }

    pub(crate) fn encoding(&self) -> OtlpEncoding {
        self.encoding
    }

    pub(crate) fn upstream(&self) -> &UpstreamTarget {
        &self.upstream
    }

    /// The configured headers, then `Authorization` when one was resolved (it replaces a configured one).
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let replaced = self.authorization.is_some();
        self.headers
            .iter()
            .filter(move |(name, _)| !(replaced && name == http::header::AUTHORIZATION))
            .map(|(name, value)| (name, value))
            .chain(
                self.authorization
                    .iter()
                    .map(|value| (&http::header::AUTHORIZATION, value)),
            )
    }

    /// Scheme, authority and path: what logs may name.
    pub(crate) fn log_name(&self) -> &str {
        &self.log_name
    }
}

impl PartialEq for OtlpTarget {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
            && self.url == other.url
            && self.headers == other.headers
            && self.authorization == other.authorization
            && self.encoding == other.encoding
    }
}

impl Eq for OtlpTarget {}

impl Hash for OtlpTarget {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity.hash(state);
    }
}

/// Names the collector and which headers it sends, never their values.
impl std::fmt::Debug for OtlpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTarget")
            .field("url", &self.log_name)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("authorization", &self.authorization.is_some())
            .field("encoding", &self.encoding)
            .finish()
    }
}
