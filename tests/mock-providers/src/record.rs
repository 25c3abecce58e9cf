//! What the mock remembers of each request, so a test can check what the gateway forwarded.

use bytes::Bytes;
use http::{HeaderMap, Method};

/// One request as the mock received it (recorded before any behaviour is applied, so hung and refused requests are
/// recorded too).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The whole body, byte for byte.
    pub body: Bytes,
    /// When the whole request had arrived (retry and backoff tests measure the gaps).
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// A header's value when it is present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}
