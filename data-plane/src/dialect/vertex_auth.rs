//! Vertex AI credentials (`notes/translation.md` §5.1): the stored secret is a Google service-account JSON (raw or
//! base64-encoded) with an extra `region` key, as Cloudflare's BYOK form stores it (spec §3.14). The gateway
//! trades it for a short-lived OAuth access token with the JWT bearer grant (RFC 7523):
//!
//! 1. [`ServiceAccount::parse`] the secret;
//! 2. [`ServiceAccount::assertion`]: an RS256 JWT `{iss: client_email, scope: cloud-platform, aud: token_uri,
//!    iat, exp: iat + 1 h}` signed with the account's private key;
//! 3. `POST token_uri` with [`token_request_body`] (form-encoded, [`TOKEN_REQUEST_CONTENT_TYPE`]);
//! 4. [`parse_token_response`] → `Authorization: Bearer <access_token>` until [`AccessToken::refresh_at`].
//!
//! Pure: no clock, no I/O. The caller passes the time, sends the request and caches the token.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The OAuth scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Where the token exchange goes when the JSON names no `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The JWT bearer grant type (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The content type of the token request.
pub const TOKEN_REQUEST_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// How long an assertion is valid: Google's maximum, one hour.
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// A token is refreshed this long before it expires, so no request goes out with one about to lapse.
pub const REFRESH_MARGIN_SECS: u64 = 300;

/// Why a Vertex credential could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VertexAuthError {
    /// The stored secret is not a usable service-account JSON.
    #[error("the stored Vertex AI credential is not a usable service-account JSON: {0}")]
    BadSecret(String),
    /// The private key could not sign (not an RSA PEM key).
    #[error("the Vertex AI service account's private_key cannot sign: {0}")]
    BadKey(String),
    /// The token endpoint refused the assertion (`invalid_grant`: clock skew, a disabled or deleted key…).
    #[error("the token endpoint refused the Vertex AI service account: {error}{}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    /// The token endpoint answered something else than a token or an OAuth error.
    #[error("the token endpoint's answer could not be read: {0}")]
    BadTokenResponse(String),
}

/// A parsed service-account secret, its signing key ready.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// The key's id, sent as the JWT `kid` so Google picks the right public key.
    pub private_key_id: Option<String>,
    pub token_uri: String,
    pub project_id: String,
    /// Cloudflare's extra key: the Vertex region (`us-central1`, `global`…).
    pub region: Option<String>,
    key: EncodingKey,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .field("region", &self.region)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct SecretJson {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceAccount {
    /// Reads a stored secret: the service-account JSON itself, or its base64 encoding (standard or URL-safe,
    /// padded or not, line breaks allowed).
    pub fn parse(secret: &str) -> Result<ServiceAccount, VertexAuthError> {
        let secret = secret.trim();
        let json: SecretJson = if secret.starts_with('{') {
            serde_json::from_str(secret).map_err(|e| VertexAuthError::BadSecret(e.to_string()))?
        } else {
            let compact: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(&compact).ok())
                .ok_or_else(|| {
                    VertexAuthError::BadSecret("neither JSON nor base64-encoded JSON".to_owned())
                })?;
            serde_json::from_slice(&bytes)
                .map_err(|e| VertexAuthError::BadSecret(format!("base64-decoded, but {e}")))?
        };
        if let Some(kind) = json.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(VertexAuthError::BadSecret(format!(
                "its type is {kind:?}; a service-account key is needed"
            )));
        }
        let required = |value: Option<String>, name: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| VertexAuthError::BadSecret(format!("{name} is missing")))
        };
        let client_email = required(json.client_email, "client_email")?;
        let private_key = required(json.private_key, "private_key")?;
        let project_id = required(json.project_id, "project_id")?;
        let key = EncodingKey::from_rsa_pem(private_key.as_bytes())
            .map_err(|e| VertexAuthError::BadKey(e.to_string()))?;
        Ok(ServiceAccount {
            client_email,
            private_key_id: json.private_key_id.filter(|k| !k.is_empty()),
            token_uri: json
                .token_uri
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            project_id,
            region: json.region.filter(|r| !r.trim().is_empty()),
            key,
        })
    }

    /// The signed JWT bearer assertion, issued at `now` (Unix seconds) and valid for an hour.
    pub fn assertion(&self, now: u64) -> Result<String, VertexAuthError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| VertexAuthError::BadKey(e.to_string()))
    }

    /// The form body of the token request for an assertion made at `now`.
    pub fn token_request_body(&self, now: u64) -> Result<String, VertexAuthError> {
        Ok(token_request_body(&self.assertion(now)?))
    }
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`, form-encoded.
pub fn token_request_body(assertion: &str) -> String {
    let mut body = String::with_capacity(assertion.len() + 80);
    body.push_str("grant_type=");
    form_encode_into(GRANT_TYPE, &mut body);
    body.push_str("&assertion=");
    form_encode_into(assertion, &mut body);
    body
}

/// `application/x-www-form-urlencoded` escaping: unreserved characters as they are, everything else `%XX` (a
/// JWT is all unreserved characters, the grant type has `:`).
fn form_encode_into(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A minted access token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    /// Seconds from issue (Google says 3599).
    pub expires_in: u64,
    #[serde(default = "bearer")]
    pub token_type: String,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl AccessToken {
    /// When to mint the next token, for one received at `received_at` (Unix seconds): [`REFRESH_MARGIN_SECS`]
    /// before expiry, or halfway for a token that lives less than twice the margin.
    pub fn refresh_at(&self, received_at: u64) -> u64 {
        let margin = REFRESH_MARGIN_SECS.min(self.expires_in / 2);
        received_at + self.expires_in - margin
    }
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token endpoint's answer: a token (`{access_token, expires_in, token_type}`), or the OAuth error it sent
/// (`{error, error_description}`, whatever the status).
pub fn parse_token_response(body: &[u8]) -> Result<AccessToken, VertexAuthError> {
    if let Ok(token) = serde_json::from_slice::<AccessToken>(body) {
        if token.access_token.is_empty() {
            return Err(VertexAuthError::BadTokenResponse(
                "empty access_token".to_owned(),
            ));
        }
        return Ok(token);
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => Err(VertexAuthError::Refused {
            error: e.error,
            description: e.error_description,
        }),
        Err(e) => Err(VertexAuthError::BadTokenResponse(e.to_string())),
    }
}

#[cfg(test)]
#[path = "vertex_auth_tests.rs"]
mod tests;
