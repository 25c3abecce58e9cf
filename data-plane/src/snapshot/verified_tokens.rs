//! Gateway tokens already verified under one deployment document's keys, so an authenticated request pays a hash
//! lookup instead of an Ed25519 signature check (~50 µs) every time.
//!
//! Why this is safe:
//! - The cache belongs to one [`super::CompiledDeployment`]: a new deployment document (new keys, a key retired, a
//!   token revoked) compiles a new, empty cache, so nothing verified under old keys outlives them.
//! - Revocation is not cached: the caller checks the current snapshot's revocation list on every request, so a
//!   revoked token stops working as soon as the node applies the document (well within a second).
//! - Expiry is checked on every hit against the clock, with the same zero leeway as the verifier.
//! - Only valid tokens are kept; a forged or malformed one is verified (and refused) every time.
//!
//! Bounded: past [`MAX_ENTRIES`] distinct tokens the cache starts over, so a flood of distinct valid tokens costs
//! their verification, never memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gatehouse_shared::token::{TokenClaims, TokenError, TokenVerifier};

/// Distinct tokens remembered per deployment document.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, Arc<TokenClaims>>>,
    max_entries: usize,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_max_entries(MAX_ENTRIES)
    }
}

impl VerifiedTokens {
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            entries: RwLock::default(),
            max_entries: max_entries.max(1),
        }
    }

    /// The claims of `token`: remembered when it was verified before, verified by `verifier` otherwise.
    pub fn verify(
        &self,
        verifier: &TokenVerifier,
        token: &str,
    ) -> Result<Arc<TokenClaims>, TokenError> {
        let now = unix_now();
        let known = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some(claims) = known {
            return if expired(&claims, now) {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = Arc::new(verifier.verify(token)?);
        if !expired(&claims, now) {
            let mut entries = self
                .entries
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
            entries.insert(token.into(), Arc::clone(&claims));
        }
        Ok(claims)
    }

    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The verifier's rule with no leeway; `<=` so that a remembered token never outlives what the verifier allows.
fn expired(claims: &TokenClaims, now: i64) -> bool {
    claims.exp.is_some_and(|exp| exp <= now)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use gatehouse_shared::token::{Scope, TOKEN_ISSUER, VerificationKey};

    use super::*;

    fn signer() -> (jsonwebtoken::EncodingKey, TokenVerifier) {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().unwrap();
        let public = VerificationKey {
            kid: "k".into(),
            public_key: base64::engine::general_purpose::STANDARD
                .encode(key.verifying_key().as_bytes()),
        };
        (
            jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
            TokenVerifier::new([&public]),
        )
    }

    fn token(key: &jsonwebtoken::EncodingKey, exp: Option<i64>) -> String {
        let claims = TokenClaims {
            jti: "t".into(),
            iss: TOKEN_ISSUER.into(),
            accounts: vec!["a".into()],
            scopes: vec![Scope::AiGatewayRun],
            iat: 0,
            exp,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("k".into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[test]
    fn a_verified_token_is_remembered_and_a_refused_one_is_not() {
        let (key, verifier) = signer();
        let (_, other_keys) = signer();
        let cache = VerifiedTokens::default();
        let good = token(&key, None);
        assert_eq!(cache.verify(&verifier, &good).unwrap().jti, "t");
        // A verifier that knows no key would refuse it: the second answer came from the cache.
        assert_eq!(cache.verify(&other_keys, &good).unwrap().jti, "t");
        assert_eq!(cache.len(), 1);
        let forged = token(&signer().0, None);
        assert!(cache.verify(&verifier, &forged).is_err());
        assert!(cache.verify(&verifier, "not a token").is_err());
        assert_eq!(cache.len(), 1, "refused tokens are not kept");
    }

    #[test]
    fn a_remembered_token_expires_on_time() {
        let (key, verifier) = signer();
        let cache = VerifiedTokens::default();
        let soon = token(&key, Some(unix_now() + 1));
        assert!(cache.verify(&verifier, &soon).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(matches!(
            cache.verify(&verifier, &soon),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let (key, verifier) = signer();
        let cache = VerifiedTokens::with_max_entries(3);
        for i in 0..=3 {
            cache
                .verify(&verifier, &token(&key, Some(unix_now() + 3600 + i as i64)))
                .unwrap();
        }
        assert_eq!(cache.len(), 1);
    }
}
