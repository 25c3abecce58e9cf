//! The JWKS refresher: a background service that fetches every due JWKS (`jwks.rs`) off the request path, over a
//! connector of its own (as `proxy/cloud_auth.rs` mints cloud tokens), so identity traffic never takes a
//! connection meant for inference. Each fetch is one task, bounded by [`FETCH_TIMEOUT`] and
//! [`MAX_JWKS_BYTES`]; the service sleeps until the next fetch is due, a gateway names a new URL, or a request
//! asks for an early refresh.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::jwks::{JwksCache, JwksSource, KeySet, max_age};
use crate::proxy::upstream::{LazyUpstreams, Upstreams};

/// How long one fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS read (providers publish a few KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long the service sleeps when nothing is scheduled.
const IDLE: Duration = Duration::from_secs(60);

/// Fetches the node's JWKS documents.
pub(crate) struct JwksRefresher {
    cache: Arc<JwksCache>,
    http: LazyUpstreams,
}

impl JwksRefresher {
    pub(crate) fn new(cache: Arc<JwksCache>, ca_file: Option<&std::path::Path>) -> Self {
        Self {
            cache,
            http: LazyUpstreams::new(FETCH_TIMEOUT, ca_file),
        }
    }
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let now = tokio::time::Instant::now();
            let (due, next) = self.cache.take_due(now.into_std());
            for source in due {
                let http = Arc::clone(self.http.get());
                // One task per fetch (a slow provider does not hold up the others), not per request.
                tokio::spawn(async move {
                    let outcome = fetch(&http, &source).await;
                    if let Ok((keys, _)) = &outcome {
                        tracing::debug!(url = %source.url, keys = keys.len(), "JWKS fetched");
                    }
                    source.finish_fetch(outcome);
                });
            }
            let wake_at = next.map_or(now + IDLE, tokio::time::Instant::from_std);
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.cache.woken() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// One GET of the source's URL: its keys and `max-age`.
async fn fetch(
    http: &Upstreams,
    source: &JwksSource,
) -> Result<(KeySet, Option<Duration>), String> {
    let target = &source.target;
    let mut header = RequestHeader::build("GET", target.path_and_query.as_bytes(), None)
        .map_err(|e| e.to_string())?;
    for (name, value) in [
        ("host", target.authority.as_str()),
        ("accept", "application/jwk-set+json, application/json"),
        (
            "user-agent",
            concat!("gatehouse/", env!("CARGO_PKG_VERSION")),
        ),
    ] {
        header
            .insert_header(name, value)
            .map_err(|e| e.to_string())?;
    }
    let mut opened = http
        .open(target, &header, &Bytes::new(), FETCH_TIMEOUT)
        .await
        .map_err(|e| format!("no answer ({e:?})"))?;
    let status = opened.status();
    let max_age = opened
        .header_value("cache-control")
        .and_then(|v| max_age(&v));
    let mut body = Vec::new();
    let read = async {
        while let Some(chunk) = opened
            .next_chunk(FETCH_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the answer is over {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(FETCH_TIMEOUT, read)
        .await
        .map_err(|_| "the answer took too long".to_owned())??;
    http.release(opened).await;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok((KeySet::parse(&body)?, max_age))
}
