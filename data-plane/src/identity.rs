//! External identity (issue 14, "auth namespaces"): a gateway's `identity_providers` accept JWTs from an
//! organisation's identity provider, optionally DPoP-bound (RFC 9449).
//!
//! - **Which tokens.** A JWT in `cf-aig-authorization` or `Authorization` (`Bearer` or `DPoP` scheme) whose
//!   unverified `iss` is one of the gateway's providers' issuers. Other JWTs are not this module's (a Gatehouse
//!   token in `cf-aig-authorization`, a provider's own token in `Authorization`).
//! - **Keys** come from the provider's JWKS, which nodes fetch off the request path (`jwks.rs`, `refresh.rs`): at
//!   start and when a document names a new URL, then on the answer's `Cache-Control: max-age` (60 s to 1 h) or
//!   every 10 minutes. A token whose `kid` the cached set lacks asks for a refresh, at most one per 30 s per URL,
//!   and waits for it at most [`KID_REFRESH_WAIT`]; the kid still unknown, it is refused.
//! - **The token** (`token.rs`): signature with that key, `alg` among the provider's algorithms (and the key's own
//!   `alg` when the JWKS names one), `iss`, `aud` (one of the provider's), `exp` required, `nbf` when present,
//!   with the provider's leeway.
//! - **DPoP** (`dpop.rs`): `Authorization: DPoP <token>` with one `DPoP` proof header: `typ` `dpop+jwt`, an
//!   asymmetric `alg`, a public `jwk` that verifies it, `htm` the request's method, `htu` the URL the client used,
//!   `iat` within the leeway of now, `ath` the token's hash (required), the token's `cnf.jkt` the jwk's
//!   RFC 7638 thumbprint, and its `jti` never seen before on any node within the window a proof stays usable
//!   (`gatehouse_bus::replay`). `dpop: required` refuses bearer use of the provider's tokens; `optional` and `off`
//!   refuse bearer use of a bound token (one with `cnf.jkt`, RFC 9449 §7.1), and `off` refuses the DPoP scheme.
//! - **Who** the token names: `user_claim` and `team_claim`, resolved by the caller against the gateway's users
//!   and teams (`snapshot/access.rs`).
//!
//! Nothing here is cached per token: each request verifies its token (one signature check, two with a proof).

mod dpop;
mod jwks;
mod refresh;
mod token;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_bus::replay::ReplayCache;
use gatehouse_shared::gateway::{DpopMode, IdentityProvider, JwtAlgorithm};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

pub(crate) use jwks::JwksCache;
pub(crate) use refresh::JwksRefresher;

use dpop::Proof;
use jwks::JwksSource;

/// How long a request whose token names an unknown `kid` waits for the refresh it asked for.
pub(crate) const KID_REFRESH_WAIT: Duration = Duration::from_secs(1);
/// The longest token (or proof) looked at; identity tokens are a few KiB at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A gateway's identity providers, compiled: their settings, validation rules and key sources.
#[derive(Debug)]
pub struct IdentityProviders {
    providers: Vec<CompiledProvider>,
}

/// One provider, ready to verify its tokens.
#[derive(Debug)]
pub(crate) struct CompiledProvider {
    pub settings: IdentityProvider,
    pub issuer: Arc<str>,
    /// One rule set per allowed algorithm (jsonwebtoken wants every algorithm of a rule set in the key's family):
    /// `iss`, `aud`, `exp`/`nbf` with the leeway, that algorithm.
    validations: Vec<(Algorithm, Validation)>,
    jwks: Arc<JwksSource>,
}

impl CompiledProvider {
    /// The rules for a token signed with `alg`; `None` when the provider does not accept `alg`.
    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
    }
}

impl IdentityProviders {
    /// `None` when the settings name no provider. Registers every JWKS URL with the node's `cache` (which fetches
    /// new ones in the background). An unusable provider (a JWKS URL this node cannot fetch) refuses the whole
    /// document, as unreadable spend limits do.
    pub(crate) fn compile(
        providers: Option<&[IdentityProvider]>,
        cache: &JwksCache,
    ) -> Result<Option<Arc<Self>>, String> {
        let Some(providers) = providers.filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let compiled = providers
            .iter()
            .map(|p| {
                let jwks = cache
                    .source(&p.jwks_url)
                    .map_err(|e| format!("identity provider {}: {e}", p.issuer))?;
                Ok(CompiledProvider {
                    validations: p
                        .algorithms
                        .iter()
                        .map(|a| (jose(*a), validation(p, jose(*a))))
                        .collect(),
                    issuer: Arc::from(p.issuer.as_str()),
                    settings: p.clone(),
                    jwks,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Some(Arc::new(Self {
            providers: compiled,
        })))
    }

    /// The provider a token claims to come from (its unverified `iss`), if the gateway has it.
    pub(crate) fn for_token(&self, token: &str) -> Option<&CompiledProvider> {
        let issuer = unverified_issuer(token)?;
        self.providers
            .iter()
            .find(|p| *p.issuer == *issuer.as_str())
    }
}

fn validation(p: &IdentityProvider, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = p.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[p.issuer.as_str()]);
    v.set_audience(&p.audience);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

/// The JOSE algorithm of a setting.
pub(crate) fn jose(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// `Bearer <jwt>` or `DPoP <jwt>` in a header value: the scheme and a token shaped like a JWT (three base64url
/// parts, a JSON object header).
pub(crate) fn credential(value: &str) -> Option<(Scheme, &str)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    let token = rest.trim();
    looks_like_jwt(token).then_some((scheme, token))
}

fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES
        && token.starts_with("eyJ")
        && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The `iss` of a token, unverified: only to pick the provider whose keys then verify it.
fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    serde_json::from_slice::<Issuer>(&bytes).ok()?.iss
}

/// base64url without padding (a padded value is tolerated).
pub(crate) fn base64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// What the client's request is, for a DPoP proof to be checked against.
#[derive(Debug, Clone)]
pub(crate) struct RequestTarget {
    /// The method, as sent.
    pub method: String,
    /// `scheme://host[:port]/path` as the client addressed it, normalised like a proof's `htu`
    /// ([`normalize_htu`]); `None` when the request names no host.
    pub htu: Option<String>,
}

/// `htu` (and the request's URL) compared the way RFC 9449 §4.3 asks: query and fragment dropped, scheme and host
/// lower-cased, the scheme's default port dropped, an empty path as `/`. `None` for what is not an http(s) URL.
pub(crate) fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

/// Why an identity token was refused; the message is the client's (it names no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Token(String),
    Dpop(String),
    /// The replay cache could not record the proof (full): the request cannot be admitted safely now.
    ReplayUnavailable,
}

impl Refusal {
    pub(crate) fn token(message: impl Into<String>) -> Self {
        Refusal::Token(message.into())
    }

    pub(crate) fn dpop(message: impl Into<String>) -> Self {
        Refusal::Dpop(message.into())
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::Token(m) => format!("Invalid identity token: {m}"),
            Refusal::Dpop(m) => format!("Invalid DPoP proof: {m}"),
            Refusal::ReplayUnavailable => {
                "The DPoP proof could not be checked for replay; retry with a new proof".to_owned()
            }
        }
    }
}

/// A verified token: who it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedIdentity {
    pub issuer: Arc<str>,
    /// `user_claim`'s value (a string, or a number as its decimal text).
    pub user: Option<String>,
    /// `team_claim`'s values: one, or a list's entries in order.
    pub teams: Vec<String>,
}

/// Verifies `token` (from `provider`, presented with `scheme`) and, for the DPoP scheme, its `proof` against the
/// request; a proof's `jti` is recorded in `replay`.
pub(crate) async fn verify(
    provider: &CompiledProvider,
    scheme: Scheme,
    token: &str,
    proof: Option<&str>,
    target: &RequestTarget,
    replay: &dyn ReplayCache,
) -> Result<VerifiedIdentity, Refusal> {
    let settings = &provider.settings;
    match (scheme, settings.dpop) {
        (Scheme::Dpop, DpopMode::Off) => {
            return Err(Refusal::token(
                "this gateway does not accept DPoP tokens of this issuer",
            ));
        }
        (Scheme::Bearer, DpopMode::Required) => {
            return Err(Refusal::token(
                "this issuer's tokens must be DPoP-bound and sent as 'Authorization: DPoP'",
            ));
        }
        _ => {}
    }
    let claims = token::verify(provider, token).await?;
    let bound_to = claims
        .get("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str);
    match (scheme, bound_to) {
        (Scheme::Bearer, Some(_)) => {
            return Err(Refusal::token(
                "a DPoP-bound token (cnf.jkt) must be sent as 'Authorization: DPoP' with a proof",
            ));
        }
        (Scheme::Dpop, None) => {
            return Err(Refusal::token(
                "a token sent as 'Authorization: DPoP' must be bound to the proof's key (cnf.jkt)",
            ));
        }
        (Scheme::Dpop, Some(jkt)) => {
            let proof =
                proof.ok_or_else(|| Refusal::dpop("exactly one DPoP header is required"))?;
            let now = unix_now();
            let checked: Proof = dpop::check(proof, token, target, settings.leeway_seconds, now)?;
            if !constant_time_eq(checked.jkt.as_bytes(), jkt.as_bytes()) {
                return Err(Refusal::dpop(
                    "the proof's key is not the one the token is bound to (cnf.jkt)",
                ));
            }
            let ttl = Duration::from_secs(settings.leeway_seconds.saturating_mul(2) + 2);
            match replay.first_seen(&checked.replay_key(), ttl).await {
                Ok(true) => {}
                Ok(false) => return Err(Refusal::dpop("the proof's jti was used before")),
                Err(error) => {
                    tracing::warn!(%error, "DPoP replay cache unavailable; refusing the proof");
                    return Err(Refusal::ReplayUnavailable);
                }
            }
        }
        (Scheme::Bearer, None) => {}
    }
    Ok(VerifiedIdentity {
        issuer: Arc::clone(&provider.issuer),
        user: claims.get(&settings.user_claim).and_then(claim_text),
        teams: settings
            .team_claim
            .as_ref()
            .and_then(|name| claims.get(name))
            .map(|v| match v {
                Value::Array(items) => items.iter().filter_map(claim_text).collect(),
                one => claim_text(one).into_iter().collect(),
            })
            .unwrap_or_default(),
    })
}

/// A claim as a subject name: a non-empty string, or a whole number's text.
fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Compares two values in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_bearer_or_dpop_jwts() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln";
        assert_eq!(
            credential(&format!("Bearer {jwt}")),
            Some((Scheme::Bearer, jwt))
        );
        assert_eq!(
            credential(&format!("dpop  {jwt} ")),
            Some((Scheme::Dpop, jwt))
        );
        assert_eq!(credential(&format!("Basic {jwt}")), None);
        assert_eq!(credential("Bearer sk-not-a-jwt"), None);
        assert_eq!(credential("Bearer ghk_abc.def.ghi"), None);
        assert_eq!(credential("Bearer eyJ.a.b.c"), None);
        assert_eq!(unverified_issuer(jwt).as_deref(), Some("x"));
        assert_eq!(unverified_issuer("eyJ.bm90IGpzb24.x"), None);
    }

    #[test]
    fn htu_compares_scheme_host_and_path_only() {
        for (raw, normal) in [
            (
                "https://GW.example.com/v1/a/b",
                "https://gw.example.com/v1/a/b",
            ),
            (
                "https://gw.example.com:443/v1?x=1#f",
                "https://gw.example.com/v1",
            ),
            ("HTTP://gw.example.com:80", "http://gw.example.com/"),
            (
                "http://gw.example.com:8080/V1",
                "http://gw.example.com:8080/V1",
            ),
            ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
        ] {
            assert_eq!(normalize_htu(raw).as_deref(), Some(normal), "{raw}");
        }
        for bad in [
            "ftp://x/y",
            "gw.example.com/v1",
            "https:///v1",
            "https://u@x/",
        ] {
            assert_eq!(normalize_htu(bad), None, "{bad}");
        }
    }

    #[test]
    fn claims_name_subjects_as_text() {
        assert_eq!(claim_text(&serde_json::json!("ada")), Some("ada".into()));
        assert_eq!(claim_text(&serde_json::json!(42)), Some("42".into()));
        assert_eq!(claim_text(&serde_json::json!("")), None);
        assert_eq!(claim_text(&serde_json::json!(1.5)), None);
        assert_eq!(claim_text(&serde_json::json!({"a": 1})), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn refusals_say_what_failed() {
        assert_eq!(
            Refusal::token("expired").message(),
            "Invalid identity token: expired"
        );
        assert_eq!(
            Refusal::dpop("stale iat").message(),
            "Invalid DPoP proof: stale iat"
        );
    }
}
