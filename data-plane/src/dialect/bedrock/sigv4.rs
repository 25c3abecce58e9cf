//! AWS Signature Version 4 for Bedrock requests (`notes/translation.md` §6.1), and the stored Bedrock credential
//! (spec §3.14). Pure: the caller gives the request's parts, the credentials and the time, and gets the headers to
//! add.
//!
//! The one trap (§9, "SigV4 `:` double-encoding"): Bedrock model ids carry `:` (`…-v1:0`), sent on the wire as
//! `%3A`. For every service but S3 the canonical URI encodes the *wire* path again, so `%3A` is signed as
//! `%253A`. Signing the once-encoded path makes every request a 403 that reads exactly like a wrong secret key.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The service name Bedrock's runtime signs with (not `bedrock-runtime`).
pub const BEDROCK_SERVICE: &str = "bedrock";

/// An AWS access key pair, with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    /// Never prints the secret or the token (credentials end up in error messages and logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How the gateway authenticates to Bedrock: SigV4 from a stored key pair, or a Bedrock API key sent as
/// `Authorization: Bearer`.
#[derive(Clone, PartialEq, Eq)]
pub enum BedrockAuth {
    /// Sign each request; the region picks the host (`bedrock-runtime.{region}.amazonaws.com`) and the scope.
    SigV4 {
        credentials: AwsCredentials,
        region: String,
    },
    /// A Bedrock API key (long-term, or short-term minted from IAM credentials).
    ApiKey(String),
}

impl std::fmt::Debug for BedrockAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BedrockAuth::SigV4 {
                credentials,
                region,
            } => f
                .debug_struct("SigV4")
                .field("credentials", credentials)
                .field("region", region)
                .finish(),
            BedrockAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
        }
    }
}

/// The stored secret's JSON form: `{accessKeyId, secretAccessKey, region, sessionToken?}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKeyPair {
    access_key_id: String,
    secret_access_key: String,
    region: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// Why a stored Bedrock secret cannot be used (the message never repeats the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored AWS Bedrock credential is unusable: {0}")]
pub struct CredentialError(String);

impl BedrockAuth {
    /// Reads a stored secret: a JSON object is a key pair with its region; anything else is an API key.
    pub fn parse(secret: &str) -> Result<BedrockAuth, CredentialError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(CredentialError("it is empty".to_owned()));
        }
        if !secret.starts_with('{') {
            if secret.chars().any(char::is_whitespace) {
                return Err(CredentialError(
                    "an API key cannot contain whitespace".to_owned(),
                ));
            }
            return Ok(BedrockAuth::ApiKey(secret.to_owned()));
        }
        // serde's message would quote the offending value, which may be the secret key: keep only its category.
        let pair: StoredKeyPair = serde_json::from_str(secret).map_err(|e| {
            CredentialError(format!(
                "expected {{accessKeyId, secretAccessKey, region, sessionToken?}} ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        for (field, value) in [
            ("accessKeyId", &pair.access_key_id),
            ("secretAccessKey", &pair.secret_access_key),
            ("region", &pair.region),
        ] {
            if value.trim().is_empty() {
                return Err(CredentialError(format!("{field} is empty")));
            }
        }
        Ok(BedrockAuth::SigV4 {
            credentials: AwsCredentials {
                access_key_id: pair.access_key_id,
                secret_access_key: pair.secret_access_key,
                session_token: pair.session_token.filter(|t| !t.is_empty()),
            },
            region: pair.region,
        })
    }

    /// The region the credential names (API keys carry none).
    pub fn region(&self) -> Option<&str> {
        match self {
            BedrockAuth::SigV4 { region, .. } => Some(region),
            BedrockAuth::ApiKey(_) => None,
        }
    }
}

/// The parts of a request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The `Host` header, e.g. `bedrock-runtime.us-east-1.amazonaws.com`.
    pub host: &'a str,
    /// The path exactly as sent on the wire (already percent-encoded: `/model/…-v1%3A0/converse`).
    pub path: &'a str,
    /// The query string as sent, without `?` (empty for Bedrock).
    pub query: &'a str,
    /// Other headers to sign, as they will be sent (e.g. `content-type`). `host`, `x-amz-*` are added here.
    pub headers: &'a [(&'a str, &'a str)],
    /// The final body bytes.
    pub payload: &'a [u8],
}

/// The headers a signature adds to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub authorization: String,
    /// `YYYYMMDDTHHMMSSZ`.
    pub x_amz_date: String,
    /// Hex SHA-256 of the payload.
    pub x_amz_content_sha256: String,
    /// The session token of temporary credentials.
    pub x_amz_security_token: Option<String>,
}

impl SignedHeaders {
    /// As `(name, value)` pairs to add to the request.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("authorization", self.authorization.as_str()),
            ("x-amz-date", self.x_amz_date.as_str()),
            ("x-amz-content-sha256", self.x_amz_content_sha256.as_str()),
        ];
        if let Some(token) = &self.x_amz_security_token {
            out.push(("x-amz-security-token", token.as_str()));
        }
        out
    }
}

/// Signs `request` for `service` in `region` at `time`: the headers to add (`authorization`, `x-amz-date`,
/// `x-amz-content-sha256`, and `x-amz-security-token` with temporary credentials), all of them signed.
pub fn sign(
    request: &SignableRequest<'_>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> SignedHeaders {
    sign_at(request, credentials, region, service, &amz_date(time), true)
}

/// [`sign`] at a given `YYYYMMDDTHHMMSSZ`; `content_sha256` says whether `x-amz-content-sha256` is sent and
/// signed (AWS's published test vectors sign without it).
fn sign_at(
    request: &SignableRequest<'_>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    amz_date: &str,
    content_sha256: bool,
) -> SignedHeaders {
    let payload_hash = hex::encode(Sha256::digest(request.payload));
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| !is_added_here(name))
        .map(|(name, value)| (name.to_ascii_lowercase(), canonical_header_value(value)))
        .collect();
    headers.push(("host".to_owned(), request.host.trim().to_owned()));
    headers.push(("x-amz-date".to_owned(), amz_date.to_owned()));
    if content_sha256 {
        headers.push(("x-amz-content-sha256".to_owned(), payload_hash.clone()));
    }
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".to_owned(), token.trim().to_owned()));
    }
    headers.sort();
    let headers = merge_repeated(headers);

    let signed_names = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = canonical_request(request, &headers, &signed_names, &payload_hash);
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&credentials.secret_access_key, date, region, service);
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    SignedHeaders {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
            credentials.access_key_id
        ),
        x_amz_date: amz_date.to_owned(),
        x_amz_content_sha256: payload_hash,
        x_amz_security_token: credentials.session_token.clone(),
    }
}

/// Headers this module sets itself; a caller's copy would be signed twice (the duplicate-`host` bug, maki #212).
fn is_added_here(name: &str) -> bool {
    [
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "authorization",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// Trimmed, inner runs of spaces collapsed to one (SigV4's canonical header value).
fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sorted headers with a repeated name joined into one `a,b` value.
fn merge_repeated(sorted: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(sorted.len());
    for (name, value) in sorted {
        match out.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => out.push((name, value)),
        }
    }
    out
}

fn canonical_request(
    request: &SignableRequest<'_>,
    headers: &[(String, String)],
    signed_names: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_names);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The wire path encoded once more, `/` kept (the non-S3 rule): `…v1%3A0/converse` → `…v1%253A0/converse`.
pub fn canonical_uri(wire_path: &str) -> String {
    if wire_path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(wire_path.len() + 8);
    for segment in wire_path.split('/').enumerate() {
        if segment.0 > 0 {
            out.push('/');
        }
        uri_encode(segment.1, &mut out);
    }
    out
}

/// The query's pairs, each side decoded and encoded again the SigV4 way, sorted by name then value.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let mut n = String::new();
            let mut v = String::new();
            uri_encode(&percent_decode(name), &mut n);
            uri_encode(&percent_decode(value), &mut v);
            (n, v)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex).
fn uri_encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning` = HMAC chain over the date, region, service and `aws4_request`, keyed by `"AWS4" + secret`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
