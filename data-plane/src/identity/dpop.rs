//! A DPoP proof (RFC 9449 §4.3), checked against the request and the access token: everything but the `cnf.jkt`
//! comparison and the `jti` replay check, which the caller makes with what [`check`] returns.

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::{Refusal, RequestTarget, base64url, normalize_htu};

/// Algorithms a proof may use: every asymmetric one this build verifies (the client picks its own key).
const PROOF_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
/// Members of a JWK that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Longest `jti` accepted.
const MAX_JTI_CHARS: usize = 256;

/// A proof that checked out.
#[derive(Debug)]
pub(super) struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url), to compare with the token's `cnf.jkt`.
    pub jkt: String,
    pub jti: String,
}

impl Proof {
    /// What the replay cache remembers: a hash of the key and the `jti`, so the key is short and fixed in shape.
    pub(super) fn replay_key(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.jkt.as_bytes());
        h.update([0]);
        h.update(self.jti.as_bytes());
        format!("dpop:{}", hex::encode(h.finalize()))
    }
}

/// Checks `proof` for the request `target` and the access token `token` at `now` (Unix seconds), with `leeway`
/// seconds on `iat` either way.
pub(super) fn check(
    proof: &str,
    token: &str,
    target: &RequestTarget,
    leeway: u64,
    now: i64,
) -> Result<Proof, Refusal> {
    let header = proof_header(proof)?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Refusal::dpop("'typ' must be 'dpop+jwt'"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| PROOF_ALGORITHMS.contains(a))
        .ok_or_else(|| Refusal::dpop("'alg' must be an asymmetric signature algorithm"))?;
    let jwk_value = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| Refusal::dpop("the header must carry the public key ('jwk')"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_value.contains_key(*m)) {
        return Err(Refusal::dpop("'jwk' must be a public key"));
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk_value.clone()))
        .map_err(|_| Refusal::dpop("'jwk' is not a usable public key"))?;
    let key = DecodingKey::from_jwk(&jwk)
        .ok()
        .filter(|k| k.family() == alg.family())
        .ok_or_else(|| Refusal::dpop("'jwk' does not fit 'alg'"))?;
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|_| Refusal::dpop("the signature does not verify with 'jwk'"))?
        .claims;

    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
        .ok_or_else(|| Refusal::dpop("'jti' is missing"))?;
    if text("htm") != Some(target.method.as_str()) {
        return Err(Refusal::dpop("'htm' is not the request's method"));
    }
    let htu = text("htu").and_then(normalize_htu);
    if htu.is_none() || htu != target.htu {
        return Err(Refusal::dpop("'htu' is not the request's URL"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .ok_or_else(|| Refusal::dpop("'iat' is missing"))?;
    if (now as f64 - iat).abs() > leeway as f64 {
        return Err(Refusal::dpop(
            "'iat' is not within the accepted clock skew of now (a stale or future proof)",
        ));
    }
    // RFC 9449 §4.2: a proof presented with an access token must carry `ath`, the token's hash, so a proof made
    // for one token cannot carry another.
    let ath = text("ath").ok_or_else(|| Refusal::dpop("'ath' is missing"))?;
    {
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(token.as_bytes()));
        if ath != expected {
            return Err(Refusal::dpop("'ath' is not the access token's hash"));
        }
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| Refusal::dpop("'jwk' has no thumbprint"))?;
    Ok(Proof {
        jkt,
        jti: jti.to_owned(),
    })
}

/// The proof's JOSE header as JSON (jsonwebtoken's `Header` would drop the private members we must refuse).
fn proof_header(proof: &str) -> Result<Map<String, Value>, Refusal> {
    let unreadable = || Refusal::dpop("the proof is not a JWT");
    if !super::looks_like_jwt(proof) {
        return Err(unreadable());
    }
    let encoded = proof.split('.').next().ok_or_else(unreadable)?;
    let bytes = base64url(encoded).ok_or_else(unreadable)?;
    serde_json::from_slice(&bytes).map_err(|_| unreadable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn replay_keys_are_fixed_in_shape_and_tell_keys_apart() {
        let proof = |jkt: &str, jti: &str| Proof {
            jkt: jkt.into(),
            jti: jti.into(),
        };
        let a = proof("k1", "j1").replay_key();
        assert_eq!(a.len(), "dpop:".len() + 64);
        assert_ne!(a, proof("k2", "j1").replay_key());
        assert_ne!(a, proof("k1", "j2").replay_key());
        assert_ne!(
            proof("k1j", "1").replay_key(),
            proof("k1", "j1").replay_key()
        );
    }
}
