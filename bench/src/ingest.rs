//! The standalone log writer's `stored` counter (`GET /admin/log-ingest` of the management API), read around the
//! logs-on phases: so their CPU is read only once the writer has stored what the phase's requests logged (its
//! backlog after a saturated phase can take seconds), and so the run shows how many of those records were stored
//! (fewer than the requests sent: records were dropped by a full channel, and the CPU figure is flattered).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use tokio::time::Instant;

use crate::client::HttpClient;

/// Where the counter is read: the management API's base URL and an operator (`admin`) token.
#[derive(Debug, Clone)]
pub struct Admin {
    pub uri: Uri,
    pub token: String,
}

/// How often a drain looks at the counter. Longer than the writer's linger (100 ms) plus a batch's commit, so two
/// equal reads mean it has nothing left to write.
const POLL: Duration = Duration::from_millis(300);

impl Admin {
    /// `base` is the management API's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str, token: String) -> Result<Admin, String> {
        let uri = format!("{}/admin/log-ingest", base.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("not a URL: {base}: {e}"))?;
        Ok(Admin { uri, token })
    }

    /// The records the writer has stored since the process started; `None` when it cannot be read.
    pub async fn stored(&self, client: &HttpClient) -> Option<u64> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.uri.clone())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let read = async {
            let response = client.request(request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = response.into_body().collect().await.ok()?.to_bytes();
            parse_stored(&body)
        };
        tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .ok()
            .flatten()
    }

    /// Waits at least `min`, then until the counter stops moving (two equal reads [`POLL`] apart) or `max` has
    /// passed; returns its last value.
    pub async fn drain(&self, client: &HttpClient, min: Duration, max: Duration) -> Option<u64> {
        let deadline = Instant::now() + max.max(min);
        tokio::time::sleep(min).await;
        let mut last = self.stored(client).await?;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            let now = self.stored(client).await?;
            if now == last {
                return Some(now);
            }
            last = now;
        }
        eprintln!(
            "gatehouse-bench: WARNING: the log writer was still storing after {}",
            humantime::format_duration(max)
        );
        Some(last)
    }
}

/// `result.stored` of a `GET /admin/log-ingest` answer.
pub fn parse_stored(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body).ok()?["result"]["stored"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_count_is_read_from_the_envelope() {
        let body =
            br#"{"success":true,"errors":[],"messages":[],"result":{"stored":1234,"dropped":0}}"#;
        assert_eq!(parse_stored(body), Some(1234));
        assert_eq!(parse_stored(br#"{"success":false,"result":null}"#), None);
        assert_eq!(parse_stored(b"not json"), None);
        assert!(
            Admin::new("http://127.0.0.1:1/", "t".into())
                .is_ok_and(|a| a.uri.path() == "/admin/log-ingest")
        );
    }
}
