//! Credentials the gateway mints from stored cloud secrets rather than forwards: Vertex AI's OAuth access token,
//! exchanged for a stored service-account JSON at the JSON's `token_uri` (spec §3.14).
//!
//! Tokens are cached per secret until [`AccessToken::refresh_at`] (five minutes before expiry). After that the
//! cached token is still used while it is valid, and one background task mints the next one, so a request waits
//! for the token endpoint only on the first use of a secret (or after a token expired unused). The exchange goes
//! through a connector of its own, so it never takes a connection meant for inference traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};

use super::upstream::LazyUpstreams;
use crate::dialect::vertex_auth::{
    ServiceAccount, TOKEN_REQUEST_CONTENT_TYPE, parse_token_response,
};
use crate::error::AiGatewayError;
use crate::route::UpstreamTarget;

/// How long a token exchange may take before the request fails with a 502.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest token answer read.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;

struct Cached {
    token: Arc<str>,
    refresh_at: u64,
    expires_at: u64,
    refreshing: bool,
}

/// The node's minted cloud tokens.
pub(crate) struct CloudTokens {
    http: LazyUpstreams,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl CloudTokens {
    pub(crate) fn new(ca_file: Option<&std::path::Path>) -> Arc<Self> {
        Arc::new(Self {
            http: LazyUpstreams::new(EXCHANGE_TIMEOUT, ca_file),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A Vertex access token for the stored service-account `secret`.
    pub(crate) async fn vertex(self: &Arc<Self>, secret: &str) -> Result<Arc<str>, AiGatewayError> {
        let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let now = unix_now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = cache.get_mut(&key) {
                if now < entry.refresh_at {
                    return Ok(Arc::clone(&entry.token));
                }
                if now < entry.expires_at {
                    if !entry.refreshing {
                        entry.refreshing = true;
                        let tokens = Arc::clone(self);
                        let secret = secret.to_owned();
                        // One task per token lifetime, not per request.
                        tokio::spawn(async move {
                            if let Err(e) = tokens.mint(&secret, key).await {
                                tracing::warn!(error = %e.message, "Vertex token refresh failed; retried on the next use");
                                if let Some(entry) = tokens
                                    .cache
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_mut(&key)
                                {
                                    entry.refreshing = false;
                                }
                            }
                        });
                    }
                    return Ok(Arc::clone(&entry.token));
                }
            }
        }
        self.mint(secret, key).await
    }

    async fn mint(&self, secret: &str, key: [u8; 32]) -> Result<Arc<str>, AiGatewayError> {
        let fail = |what: String| {
            AiGatewayError::openai(crate::dialect::ProviderError::new(
                502,
                format!("Vertex AI token exchange failed: {what}"),
            ))
        };
        let account = ServiceAccount::parse(secret)
            .map_err(|e| fail(format!("the stored service-account key is unusable: {e}")))?;
        let now = unix_now();
        let body = account
            .token_request_body(now)
            .map_err(|e| fail(e.to_string()))?;
        let target = UpstreamTarget::from_url(&account.token_uri).ok_or_else(|| {
            fail(format!(
                "token_uri {:?} is not an http(s) URL",
                account.token_uri
            ))
        })?;
        let mut header = RequestHeader::build("POST", target.path_and_query.as_bytes(), None)
            .map_err(|e| fail(e.to_string()))?;
        for (name, value) in [
            ("host", target.authority.as_str()),
            ("content-type", TOKEN_REQUEST_CONTENT_TYPE),
            ("content-length", &body.len().to_string()),
            ("accept", "application/json"),
        ] {
            header
                .insert_header(name, value)
                .map_err(|e| fail(e.to_string()))?;
        }
        let http = self.http.get();
        let mut opened = http
            .open(&target, &header, &Bytes::from(body), EXCHANGE_TIMEOUT)
            .await
            .map_err(|e| fail(format!("{:?}", e)))?;
        let mut answer = Vec::new();
        while let Some(chunk) = opened
            .next_chunk(EXCHANGE_TIMEOUT)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            if answer.len() + chunk.len() > MAX_TOKEN_ANSWER_BYTES {
                return Err(fail("the answer is too large".to_owned()));
            }
            answer.extend_from_slice(&chunk);
        }
        http.release(opened).await;
        let token = parse_token_response(&answer).map_err(|e| fail(e.to_string()))?;
        let minted: Arc<str> = Arc::from(token.access_token.as_str());
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key,
            Cached {
                token: Arc::clone(&minted),
                refresh_at: token.refresh_at(now),
                expires_at: now + token.expires_in,
                refreshing: false,
            },
        );
        Ok(minted)
    }
}

/// Signs a step's final request with SigV4 (Bedrock with a stored key pair): over its method, `Host`, path,
/// content type and body, exactly as they will be sent; nothing may change them afterwards.
pub(crate) fn sign_bedrock(
    step: &mut super::phase::plan::Step,
    credentials: &crate::dialect::bedrock::sigv4::AwsCredentials,
    region: &str,
) -> Result<(), AiGatewayError> {
    use crate::dialect::bedrock::sigv4::{self, SignableRequest};

    let (path, query) = step
        .target
        .path_and_query
        .split_once('?')
        .unwrap_or((step.target.path_and_query.as_str(), ""));
    let content_type = step
        .header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let signed = sigv4::sign(
        &SignableRequest {
            method: step.header.method.as_str(),
            host: &step.target.authority,
            path,
            query,
            headers: &[("content-type", content_type.as_str())],
            payload: &step.body,
        },
        credentials,
        region,
        sigv4::BEDROCK_SERVICE,
        SystemTime::now(),
    );
    for (name, value) in signed.pairs() {
        step.header
            .insert_header(name, value)
            .map_err(|_| AiGatewayError::INTERNAL)?;
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_uris_become_targets() {
        let t = UpstreamTarget::from_url("https://oauth2.googleapis.com/token").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path_and_query.as_str()),
            (true, "oauth2.googleapis.com", 443, "/token")
        );
        let t = UpstreamTarget::from_url("http://127.0.0.1:8080/x/token").unwrap();
        assert_eq!(
            (t.tls, t.port, t.authority.as_str()),
            (false, 8080, "127.0.0.1:8080")
        );
        assert!(UpstreamTarget::from_url("ftp://x/token").is_none());
        assert!(UpstreamTarget::from_url("https://:1/token").is_none());
    }
}
