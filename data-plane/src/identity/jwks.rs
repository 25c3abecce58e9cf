//! The node's JWKS cache: one [`JwksSource`] per JWKS URL that some gateway names, holding the keys last fetched
//! and when to fetch again. Compiling a gateway registers its URLs ([`JwksCache::source`]); the refresher
//! (`refresh.rs`) fetches what is due; requests read the keys lock-free ([`JwksSource::keys`]) and may ask for an
//! early refresh when a token names a `kid` the set lacks ([`JwksSource::refresh_for_unknown_kid`]).
//!
//! Schedule: a new URL at once; after a fetch, the answer's `max-age` clamped to [`MIN_REFRESH`]..[`MAX_REFRESH`]
//! (or [`DEFAULT_REFRESH`] without one); after a failure, 5 s doubling to 5 minutes, keeping the last keys (an
//! identity provider that is down does not log everybody out). An unknown `kid` brings the next fetch forward, at
//! most once per [`KID_REFRESH_INTERVAL`] per URL, so tokens with made-up kids cannot make the node hammer the
//! provider. A source no compiled gateway holds any more is dropped at the refresher's next pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::route::UpstreamTarget;

/// Without `max-age`, how long fetched keys are used before the next fetch.
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(10 * 60);
/// Bounds on a `max-age`.
pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(60);
pub(crate) const MAX_REFRESH: Duration = Duration::from_secs(60 * 60);
/// At most one refresh per this interval and URL for tokens naming an unknown `kid`.
pub(crate) const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The first retry after a failed fetch; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(5 * 60);
/// Keys kept from one JWKS (providers publish two or three).
const MAX_KEYS: usize = 64;

/// One verification key of a JWKS.
pub(crate) struct JwkKey {
    pub key: DecodingKey,
    pub family: AlgorithmFamily,
    /// The `alg` the JWKS pins the key to, if it names one.
    pub alg: Option<Algorithm>,
}

impl std::fmt::Debug for JwkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkKey")
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl JwkKey {
    /// Whether a token signed with `alg` may be verified with this key.
    fn fits(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

/// One JWKS's usable keys at one moment.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<JwkKey>>,
    without_kid: Vec<Arc<JwkKey>>,
}

/// What a key set says about a token's key.
pub(crate) enum KeyLookup<'k> {
    Found(&'k JwkKey),
    /// The set has no key with this `kid` (a refresh may bring it).
    UnknownKid,
    /// The key exists but cannot verify this algorithm, or a token without `kid` matches no single key.
    Unusable(&'static str),
}

impl KeySet {
    /// Reads a JWKS document (`{"keys": [...]}`): signature keys of kinds that verify asymmetric signatures (RSA,
    /// EC P-256/P-384, Ed25519). Keys for encryption, symmetric keys and keys this build cannot read are left out;
    /// a document that is not a JWKS at all is an error.
    pub(crate) fn parse(body: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let doc: Document =
            serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut set = KeySet::default();
        for raw in doc.keys.into_iter().take(MAX_KEYS) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            ) {
                continue;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                _ => continue,
            };
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(named) => match named.to_string().parse::<Algorithm>() {
                    Ok(alg) if alg.family() == family => Some(alg),
                    // Pinned to an algorithm of another family, or one we cannot verify: unusable.
                    _ => continue,
                },
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let key = Arc::new(JwkKey { key, family, alg });
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.without_kid.push(key),
            }
        }
        Ok(set)
    }

    /// The key for a token's `kid` and `alg`. A token without `kid` uses the one key without a `kid` that fits its
    /// algorithm, or the one key of the whole set that does; with several candidates it is refused (trying each
    /// would let one request cost many signature checks).
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup<'_> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) if key.fits(alg) => KeyLookup::Found(key),
                Some(_) => {
                    KeyLookup::Unusable("the key named by 'kid' does not fit the token's 'alg'")
                }
                None => KeyLookup::UnknownKid,
            },
            None => {
                let unnamed: Vec<&Arc<JwkKey>> =
                    self.without_kid.iter().filter(|k| k.fits(alg)).collect();
                let candidates = if unnamed.is_empty() {
                    self.by_kid.values().filter(|k| k.fits(alg)).collect()
                } else {
                    unnamed
                };
                match candidates.as_slice() {
                    [one] => KeyLookup::Found(one),
                    [] => KeyLookup::UnknownKid,
                    _ => KeyLookup::Unusable(
                        "the token has no 'kid' and several keys could verify it",
                    ),
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }
}

/// One JWKS URL: its keys, and when they are fetched next.
pub(crate) struct JwksSource {
    pub url: String,
    pub target: UpstreamTarget,
    keys: ArcSwap<KeySet>,
    schedule: Mutex<Schedule>,
    /// Counts finished fetches (successful or not), so a request can wait for the next one.
    fetched: watch::Sender<u64>,
    /// Wakes the refresher when a fetch is wanted earlier than it planned.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &self.url)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Schedule {
    /// When the next fetch is due.
    next_at: Instant,
    in_flight: bool,
    /// When an unknown `kid` last brought a fetch forward.
    last_kid_refresh: Option<Instant>,
    /// Failures in a row, for the back-off.
    failures: u32,
}

impl JwksSource {
    /// The keys as last fetched (empty before the first fetch).
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// A receiver that sees the next finished fetch; take it before asking for one.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.fetched.subscribe()
    }

    /// A token names a `kid` the keys lack: whether a fetch is coming that may bring it (one in flight or due, or
    /// one brought forward now, at most once per [`KID_REFRESH_INTERVAL`]). `false`: refuse the token at once.
    pub(crate) fn refresh_for_unknown_kid(&self) -> bool {
        let now = Instant::now();
        let mut schedule = lock(&self.schedule);
        if schedule.in_flight || schedule.next_at <= now {
            return true;
        }
        if schedule
            .last_kid_refresh
            .is_some_and(|at| now.duration_since(at) < KID_REFRESH_INTERVAL)
        {
            return false;
        }
        schedule.last_kid_refresh = Some(now);
        schedule.next_at = now;
        drop(schedule);
        self.wake.notify_one();
        true
    }

    /// Records a fetch's outcome: new keys and when to fetch next (`max_age` from the answer), or a failure
    /// (the keys stay, the next try backs off).
    pub(crate) fn finish_fetch(&self, outcome: Result<(KeySet, Option<Duration>), String>) {
        let now = Instant::now();
        {
            let mut schedule = lock(&self.schedule);
            schedule.in_flight = false;
            match outcome {
                Ok((keys, max_age)) => {
                    self.keys.store(Arc::new(keys));
                    schedule.failures = 0;
                    schedule.next_at = now
                        + max_age.map_or(DEFAULT_REFRESH, |a| a.clamp(MIN_REFRESH, MAX_REFRESH));
                }
                Err(error) => {
                    let retry = FIRST_RETRY
                        .saturating_mul(1u32 << schedule.failures.min(10))
                        .min(MAX_RETRY);
                    schedule.failures = schedule.failures.saturating_add(1);
                    schedule.next_at = now + retry;
                    tracing::warn!(url = %self.url, %error, ?retry, "JWKS fetch failed; the last keys stay in use");
                }
            }
        }
        self.fetched.send_modify(|n| *n += 1);
    }
}

/// Every JWKS source of the node.
#[derive(Debug, Default)]
pub struct JwksCache {
    sources: Mutex<HashMap<String, Arc<JwksSource>>>,
    wake: Arc<Notify>,
}

impl JwksCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The source of `url`, registered (and its first fetch asked for) when new.
    pub(crate) fn source(&self, url: &str) -> Result<Arc<JwksSource>, String> {
        let mut sources = lock(&self.sources);
        if let Some(source) = sources.get(url) {
            return Ok(Arc::clone(source));
        }
        let target =
            UpstreamTarget::from_url(url).ok_or_else(|| format!("unusable JWKS URL '{url}'"))?;
        let source = Arc::new(JwksSource {
            url: url.to_owned(),
            target,
            keys: ArcSwap::from_pointee(KeySet::default()),
            schedule: Mutex::new(Schedule {
                next_at: Instant::now(),
                in_flight: false,
                last_kid_refresh: None,
                failures: 0,
            }),
            fetched: watch::Sender::new(0),
            wake: Arc::clone(&self.wake),
        });
        sources.insert(url.to_owned(), Arc::clone(&source));
        drop(sources);
        self.wake.notify_one();
        Ok(source)
    }

    /// The sources due at `now`, marked in flight, and when the next one not yet due will be. Sources that no
    /// compiled gateway holds any more are dropped.
    pub(crate) fn take_due(&self, now: Instant) -> (Vec<Arc<JwksSource>>, Option<Instant>) {
        let mut sources = lock(&self.sources);
        sources.retain(|_, source| Arc::strong_count(source) > 1);
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for source in sources.values() {
            let mut schedule = lock(&source.schedule);
            if schedule.in_flight {
                continue;
            }
            if schedule.next_at <= now {
                schedule.in_flight = true;
                due.push(Arc::clone(source));
            } else {
                next = Some(next.map_or(schedule.next_at, |n| n.min(schedule.next_at)));
            }
        }
        (due, next)
    }

    /// Resolves when a source was added or a fetch brought forward.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The URLs registered now.
    #[cfg(test)]
    pub(crate) fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = lock(&self.sources).keys().cloned().collect();
        urls.sort();
        urls
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves the value whole; a panic elsewhere cannot have broken it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0, which the schedule clamps up).
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let value = lower.strip_prefix("max-age=")?;
        value
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    fn rsa(kid: Option<&str>, alg: Option<&str>) -> Value {
        let mut k = serde_json::json!({"kty": "RSA", "e": "AQAB", "n": RSA_N, "use": "sig"});
        if let Some(kid) = kid {
            k["kid"] = kid.into();
        }
        if let Some(alg) = alg {
            k["alg"] = alg.into();
        }
        k
    }

    fn parse(keys: Vec<Value>) -> KeySet {
        KeySet::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_jwks_keeps_its_signature_keys_by_kid() {
        let mut enc = rsa(Some("enc"), None);
        enc["use"] = "enc".into();
        let set = parse(vec![
            rsa(Some("a"), Some("RS256")),
            rsa(Some("b"), None),
            enc,
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
            serde_json::json!({"kty": "RSA", "kid": "broken"}),
            rsa(Some("pinned-to-ec"), Some("ES256")),
        ]);
        assert_eq!(
            set.len(),
            2,
            "encryption, symmetric, unreadable and mispinned keys are left out"
        );
        assert!(matches!(
            set.find(Some("a"), Algorithm::RS256),
            KeyLookup::Found(_)
        ));
        assert!(
            matches!(
                set.find(Some("a"), Algorithm::PS256),
                KeyLookup::Unusable(_)
            ),
            "pinned to RS256"
        );
        assert!(matches!(
            set.find(Some("b"), Algorithm::PS256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("b"), Algorithm::ES256),
            KeyLookup::Unusable(_)
        ));
        assert!(matches!(
            set.find(Some("c"), Algorithm::RS256),
            KeyLookup::UnknownKid
        ));
        assert!(matches!(
            set.find(Some("hmac"), Algorithm::RS256),
            KeyLookup::UnknownKid
        ));
        assert!(
            matches!(set.find(None, Algorithm::RS256), KeyLookup::Unusable(_)),
            "no kid and two candidates"
        );
        let single = parse(vec![rsa(None, None)]);
        assert!(matches!(
            single.find(None, Algorithm::RS256),
            KeyLookup::Found(_)
        ));
        assert!(KeySet::parse(b"{\"nope\": 1}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
    }

    #[test]
    fn jwks_urls_become_targets() {
        let t = UpstreamTarget::from_url("https://IdP.example.com/realms/x/certs?v=1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path_and_query.as_str()),
            (true, "idp.example.com", 443, "/realms/x/certs?v=1")
        );
        let t = UpstreamTarget::from_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (
                t.tls,
                t.port,
                t.authority.as_str(),
                t.path_and_query.as_str()
            ),
            (false, 8080, "127.0.0.1:8080", "/")
        );
        let t = UpstreamTarget::from_url("http://[::1]:9000/jwks").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        for bad in [
            "ftp://x/y",
            "https:///x",
            "https://u@x/y",
            "https://x:0/",
            "https://x:99999/",
            "https://[::1/",
        ] {
            assert!(UpstreamTarget::from_url(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cache_control_gives_the_refresh_interval() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("Max-Age=\"120\""), Some(Duration::from_secs(120)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn unknown_kids_bring_a_fetch_forward_at_most_once_per_interval() {
        let cache = JwksCache::new();
        let source = cache.source("https://idp.example.com/jwks").unwrap();
        assert!(Arc::ptr_eq(
            &source,
            &cache.source("https://idp.example.com/jwks").unwrap()
        ));
        let due = |cache: &JwksCache| cache.take_due(Instant::now()).0.len();
        assert_eq!(due(&cache), 1, "a new URL is due at once");
        assert!(
            source.refresh_for_unknown_kid(),
            "the first fetch is in flight: wait for it"
        );
        source.finish_fetch(Ok((KeySet::default(), Some(Duration::from_secs(1)))));
        let (none, next) = cache.take_due(Instant::now());
        assert!(none.is_empty());
        assert!(
            next.unwrap() >= Instant::now() + Duration::from_secs(59),
            "max-age is clamped up"
        );
        assert!(source.refresh_for_unknown_kid(), "brought forward");
        assert_eq!(due(&cache), 1);
        source.finish_fetch(Err("down".into()));
        assert!(
            !source.refresh_for_unknown_kid(),
            "not again within the interval"
        );
        drop(source);
        let (none, next) = cache.take_due(Instant::now());
        assert!(none.is_empty() && next.is_none());
        assert!(
            cache.urls().is_empty(),
            "a source no gateway holds is dropped"
        );
    }
}
