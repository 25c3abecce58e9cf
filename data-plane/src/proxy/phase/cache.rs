//! The exact-match response cache on the request path (spec §3.2): whether a step may be served from or stored
//! to the cache, its key, and the encoding of a cached response. The store itself (Redis shared by the nodes, or
//! memory in standalone) is `gatehouse_bus::response_cache`.
//!
//! Decisions:
//! - TTL: `cf-aig-cache-ttl` (60 s .. 30 days; the deprecated `cf-cache-ttl` too) > the gateway's `cache_ttl` >
//!   5 minutes when only `cf-aig-cache-key` is given > off.
//! - `cf-aig-skip-cache: true` neither reads nor writes the cache for that request [inferred: "bypass"], and the
//!   response says `cf-aig-cache-status: MISS`.
//! - Only non-streaming requests (`"stream": true` in the body is not cached) and only complete `200` answers
//!   that are not event streams are stored, up to 25 MB.
//! - The key hashes the account, gateway (its id and internal id), the gateway's cache generation (bumped by the control plane on an
//!   update when `cache_invalidate_on_update` is on), method, upstream authority, path and query, body, the
//!   values of every credential-bearing header sent upstream (so two keys never share an answer) and the
//!   version headers that change a provider's answer (`anthropic-version`, `anthropic-beta`, OpenAI
//!   organisation/project). `cf-aig-cache-key` replaces the method/path/body part, never the account, gateway,
//!   generation or credential part.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use gatehouse_bus::response_cache::{CacheKey, MAX_CACHED_BYTES, ResponseCache};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use sha2::{Digest, Sha256};

use crate::error::AiGatewayError;
use crate::proxy::controls::{
    CACHE_KEY as CACHE_KEY_HEADER, CACHE_TTL as CACHE_TTL_HEADER,
    CACHE_TTL_OLD as CACHE_TTL_HEADER_OLD, Controls, SKIP_CACHE as SKIP_CACHE_HEADER,
    SKIP_CACHE_OLD as SKIP_CACHE_HEADER_OLD,
};
use crate::proxy::taps::ResponseTap;
use crate::route::UpstreamTarget;
use crate::snapshot::CompiledGateway;

/// Per-request TTL bounds (spec §4): one minute to one month (30 days).
const MIN_TTL_SECS: u64 = 60;
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
/// The TTL of a response cached only because the request named a key (spec §3.2).
const CUSTOM_KEY_DEFAULT_TTL: Duration = Duration::from_secs(300);
const MAX_CUSTOM_KEY_CHARS: usize = 1024;

/// Headers whose values identify the provider credential; their values enter the key (hashed, never stored).
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "xi-api-key",
    "x-amz-security-token",
];
/// Headers that select a different API behaviour for the same body.
const VARYING_HEADERS: &[&str] = &[
    "anthropic-version",
    "anthropic-beta",
    "openai-organization",
    "openai-project",
];

/// How one step uses the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachePlan {
    pub key: CacheKey,
    pub ttl: Duration,
    /// `cf-aig-skip-cache`: neither look up nor store.
    pub skip: bool,
}

/// Decides whether the step is cacheable and computes its key. `None`: caching does not apply (no header for
/// it either).
pub(crate) fn plan(
    gateway: &CompiledGateway,
    controls: &Controls<'_>,
    target: &UpstreamTarget,
    upstream: &RequestHeader,
    body: &Bytes,
    streaming: bool,
) -> Result<Option<CachePlan>, AiGatewayError> {
    let header_ttl = match controls
        .get(CACHE_TTL_HEADER)
        .or_else(|| controls.get(CACHE_TTL_HEADER_OLD))
    {
        None => None,
        Some(raw) => {
            let text = String::from_utf8_lossy(raw);
            let secs = text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (MIN_TTL_SECS..=MAX_TTL_SECS).contains(s))
                .ok_or_else(|| {
                    AiGatewayError::bad_request(format!(
                        "{CACHE_TTL_HEADER} must be a whole number of seconds from {MIN_TTL_SECS} to \
                         {MAX_TTL_SECS}, got {text:?}"
                    ))
                })?;
            Some(Duration::from_secs(secs))
        }
    };
    let custom_key = match controls.get(CACHE_KEY_HEADER) {
        None => None,
        Some(raw) if !raw.is_empty() && raw.len() <= MAX_CUSTOM_KEY_CHARS => Some(raw),
        Some(_) => {
            return Err(AiGatewayError::bad_request(format!(
                "{CACHE_KEY_HEADER} must be 1 to {MAX_CUSTOM_KEY_CHARS} characters"
            )));
        }
    };
    let gateway_ttl = gateway
        .settings
        .cache_ttl
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let Some(ttl) = header_ttl
        .or(gateway_ttl)
        .or(custom_key.map(|_| CUSTOM_KEY_DEFAULT_TTL))
    else {
        return Ok(None);
    };
    if body.len() > MAX_CACHED_BYTES || streaming {
        return Ok(None);
    }
    let skip = controls
        .flag(SKIP_CACHE_HEADER)
        .or_else(|| controls.flag(SKIP_CACHE_HEADER_OLD))
        .unwrap_or(false);
    let key = cache_key(gateway, target, upstream, body, custom_key);
    Ok(Some(CachePlan { key, ttl, skip }))
}

fn cache_key(
    gateway: &CompiledGateway,
    target: &UpstreamTarget,
    upstream: &RequestHeader,
    body: &[u8],
    custom_key: Option<&[u8]>,
) -> CacheKey {
    let mut h = Sha256::new();
    // Every field is length-prefixed, so no two different field lists hash the same bytes.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"gatehouse-cache-v1");
    field(gateway.key.account_id.as_bytes());
    field(gateway.key.gateway_id.as_bytes());
    // A gateway deleted and created again under the same id gets a new internal id (and generation 0 again).
    field(gateway.internal_id.as_bytes());
    field(&gateway.cache_generation.to_le_bytes());
    // Every value of a repeated header counts: the provider may read any of them.
    for name in CREDENTIAL_HEADERS.iter().chain(VARYING_HEADERS) {
        for value in upstream.headers.get_all(*name) {
            field(name.as_bytes());
            field(value.as_bytes());
        }
    }
    match custom_key {
        Some(custom) => {
            field(b"custom");
            field(custom);
        }
        None => {
            field(b"request");
            field(upstream.method.as_str().as_bytes());
            field(target.authority.as_bytes());
            field(target.path_and_query.as_bytes());
            field(body);
        }
    }
    CacheKey(h.finalize().into())
}

/// A cached answer, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedResponse {
    pub status: u16,
    pub headers: Vec<(String, Bytes)>,
    pub body: Bytes,
}

/// The stored form starts with this, so a format change reads old entries as misses instead of garbage.
const ENTRY_MAGIC: &[u8; 4] = b"GHC1";

/// Response headers not stored with an entry: the connection's own, and those the hit recomputes or must not
/// replay to another client.
fn stored_header(name: &str) -> bool {
    !matches!(
        name,
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "set-cookie"
            | "date"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
    ) && !name.starts_with("cf-aig-")
}

impl CachedResponse {
    pub(crate) fn encode(status: u16, headers: &[(String, Bytes)], body: &[u8]) -> Bytes {
        let header_bytes: usize = headers.iter().map(|(k, v)| 6 + k.len() + v.len()).sum();
        let mut out = BytesMut::with_capacity(8 + header_bytes + body.len());
        out.put_slice(ENTRY_MAGIC);
        out.put_u16(status);
        out.put_u16(headers.len() as u16);
        for (name, value) in headers {
            out.put_u16(name.len() as u16);
            out.put_slice(name.as_bytes());
            out.put_u32(value.len() as u32);
            out.put_slice(value);
        }
        out.put_slice(body);
        out.freeze()
    }

    /// `None` for anything that is not a complete entry of this format.
    pub(crate) fn decode(entry: Bytes) -> Option<Self> {
        let mut at = 0usize;
        let take = |at: &mut usize, n: usize| -> Option<std::ops::Range<usize>> {
            let range = *at..at.checked_add(n)?;
            (range.end <= entry.len()).then(|| {
                *at = range.end;
                range
            })
        };
        if entry.get(take(&mut at, 4)?)? != ENTRY_MAGIC {
            return None;
        }
        let u16_at =
            |r: std::ops::Range<usize>| u16::from_be_bytes([entry[r.start], entry[r.start + 1]]);
        let status = u16_at(take(&mut at, 2)?);
        let count = u16_at(take(&mut at, 2)?);
        let mut headers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let name_len = usize::from(u16_at(take(&mut at, 2)?));
            let name = std::str::from_utf8(&entry[take(&mut at, name_len)?])
                .ok()?
                .to_owned();
            let len_range = take(&mut at, 4)?;
            let value_len = u32::from_be_bytes(entry[len_range].try_into().ok()?) as usize;
            let value = entry.slice(take(&mut at, value_len)?);
            headers.push((name, value));
        }
        Some(Self {
            status,
            headers,
            body: entry.slice(at..),
        })
    }

    /// The client's response header: the stored headers, the exact length, and the gateway's.
    pub(crate) fn response_header(
        &self,
        extra: &[(&'static str, &str)],
    ) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status, Some(self.headers.len() + extra.len() + 1))?;
        for (name, value) in &self.headers {
            h.append_header(name.clone(), value.as_ref())?;
        }
        h.insert_header(header::CONTENT_LENGTH, self.body.len())?;
        for (name, value) in extra {
            h.insert_header(*name, *value)?;
        }
        Ok(h)
    }
}

/// Collects a relayed response for the cache while it passes; gives up (and frees what it held) as soon as the
/// response turns out not to be cacheable.
#[derive(Debug, Default)]
pub(crate) struct CacheTee {
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: BytesMut,
    /// Still worth storing.
    keep: bool,
    complete: bool,
}

impl ResponseTap for CacheTee {
    fn header(&mut self, response: &ResponseHeader) {
        self.status = response.status.as_u16();
        let streaming = response
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        self.keep = self.status == 200 && !streaming;
        if self.keep {
            self.headers = response
                .headers
                .iter()
                .filter(|(k, _)| stored_header(k.as_str()))
                .map(|(k, v)| (k.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect();
        }
    }

    fn chunk(&mut self, chunk: &[u8]) {
        if !self.keep {
            return;
        }
        if self.body.len() + chunk.len() > MAX_CACHED_BYTES {
            self.abandon();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    /// Only a response relayed whole is worth storing.
    fn end(&mut self, complete: bool) {
        if complete {
            self.complete = true;
        } else {
            self.abandon();
        }
    }
}

impl CacheTee {
    pub(crate) fn abandon(&mut self) {
        self.keep = false;
        self.body = BytesMut::new();
        self.headers.clear();
    }

    /// The entry to store, when the whole response was seen and is cacheable.
    pub(crate) fn into_entry(self) -> Option<Bytes> {
        (self.keep && self.complete)
            .then(|| CachedResponse::encode(self.status, &self.headers, &self.body))
    }
}

/// Looks the step's answer up; a cache that cannot answer is a miss (the provider still can).
pub(crate) async fn lookup(cache: &dyn ResponseCache, key: &CacheKey) -> Option<CachedResponse> {
    match cache.get(key).await {
        Ok(Some(entry)) => CachedResponse::decode(entry),
        Ok(None) => None,
        Err(error) => {
            tracing::debug!(%error, "cache lookup failed");
            None
        }
    }
}

/// Stores a relayed answer; a failure only costs a later miss.
pub(crate) async fn store(cache: &dyn ResponseCache, key: &CacheKey, entry: Bytes, ttl: Duration) {
    if let Err(error) = cache.put(key, entry, ttl).await {
        tracing::debug!(%error, "cache store failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_garbage_is_a_miss() {
        let headers = vec![
            (
                "content-type".to_owned(),
                Bytes::from_static(b"application/json"),
            ),
            ("x-request-id".to_owned(), Bytes::from_static(b"abc")),
        ];
        let entry = CachedResponse::encode(200, &headers, br#"{"ok":true}"#);
        let decoded = CachedResponse::decode(entry.clone()).unwrap();
        assert_eq!(decoded.status, 200);
        assert_eq!(decoded.headers, headers);
        assert_eq!(&decoded.body[..], br#"{"ok":true}"#);
        let header = decoded.response_header(&[]).unwrap();
        assert_eq!(header.headers["content-type"], "application/json");
        assert_eq!(header.headers["content-length"], "11");
        for cut in 0..entry.len() - 11 {
            // Every truncation inside the header part is refused, never misread.
            assert!(
                CachedResponse::decode(entry.slice(..cut)).is_none(),
                "cut at {cut}"
            );
        }
        assert!(CachedResponse::decode(Bytes::from_static(b"XXXX\0\xc8\0\0")).is_none());
    }

    #[test]
    fn the_tee_keeps_only_complete_plain_200_answers() {
        let response = |status: u16, content_type: &str| {
            let mut h = ResponseHeader::build(status, None).unwrap();
            h.append_header("content-type", content_type).unwrap();
            h.append_header("set-cookie", "s=1").unwrap();
            h.append_header("transfer-encoding", "chunked").unwrap();
            h
        };
        let mut ok = CacheTee::default();
        ok.header(&response(200, "application/json"));
        ok.chunk(b"{\"a\":");
        ok.chunk(b"1}");
        ok.end(true);
        let entry = CachedResponse::decode(ok.into_entry().unwrap()).unwrap();
        assert_eq!(&entry.body[..], b"{\"a\":1}");
        assert_eq!(
            entry.headers.len(),
            1,
            "only content-type is replayed: {:?}",
            entry.headers
        );

        let mut incomplete = CacheTee::default();
        incomplete.header(&response(200, "application/json"));
        incomplete.chunk(b"{");
        assert!(incomplete.into_entry().is_none());

        for (status, content_type) in [
            (500, "application/json"),
            (200, "text/event-stream; charset=utf-8"),
        ] {
            let mut tee = CacheTee::default();
            tee.header(&response(status, content_type));
            tee.chunk(b"x");
            tee.end(true);
            assert!(tee.into_entry().is_none(), "{status} {content_type}");
        }
    }
}
