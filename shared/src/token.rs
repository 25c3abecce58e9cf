//! API tokens: Ed25519-signed JWTs, verified the same way by the control plane and by data-plane nodes.
//!
//! A token names the accounts it may act on (or all of them) and its scopes. Verification here is pure: signature,
//! algorithm, key id and expiry. Revocation is the caller's business (the control plane asks its database; a node
//! reads the revocation list in its config document), because only the caller knows where that list lives.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// The issuer every Gatehouse token carries; a token from another issuer is refused.
pub const TOKEN_ISSUER: &str = "gatehouse";

/// The `accounts` entry that grants every account.
pub const ALL_ACCOUNTS: &str = "*";

/// What a token may do. Wire names follow Cloudflare's permission names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read gateways, logs and the other management objects.
    #[serde(rename = "ai-gateway:read")]
    AiGatewayRead,
    /// Create, change and delete management objects; implies read.
    #[serde(rename = "ai-gateway:edit")]
    AiGatewayEdit,
    /// Send inference traffic through a gateway that has `authentication: true`.
    #[serde(rename = "ai-gateway:run")]
    AiGatewayRun,
    /// Operator endpoints outside the Cloudflare namespace (tokens, node status).
    #[serde(rename = "admin")]
    Admin,
    /// A scope this build does not know (a token minted by a newer version); it grants nothing.
    #[serde(other)]
    Unknown,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::AiGatewayRead,
        Scope::AiGatewayEdit,
        Scope::AiGatewayRun,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AiGatewayRead => "ai-gateway:read",
            Scope::AiGatewayEdit => "ai-gateway:edit",
            Scope::AiGatewayRun => "ai-gateway:run",
            Scope::Admin => "admin",
            Scope::Unknown => "unknown",
        }
    }

    /// Parses a wire name; `None` for anything unknown, so that a CLI typo is an error rather than a useless token.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a Gatehouse token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The token id: what revocation names.
    pub jti: String,
    pub iss: String,
    /// Account ids this token may act on; [`ALL_ACCOUNTS`] grants every account.
    pub accounts: Vec<String>,
    pub scopes: Vec<Scope>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch; absent for a token that does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

impl TokenClaims {
    pub fn allows_account(&self, account_id: &str) -> bool {
        self.accounts
            .iter()
            .any(|a| a == ALL_ACCOUNTS || a == account_id)
    }

    pub fn has_scope(&self, wanted: Scope) -> bool {
        self.scopes
            .iter()
            .any(|&s| s == wanted || (wanted == Scope::AiGatewayRead && s == Scope::AiGatewayEdit))
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued by Gatehouse")]
    WrongIssuer,
    #[error("the token has been revoked")]
    Revoked,
}

/// A public key that verifies tokens, as it travels in config documents: its id and the raw 32-byte Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationKey {
    pub kid: String,
    /// The raw Ed25519 public key, base64 (standard alphabet).
    pub public_key: String,
}

/// Verifies tokens against a set of public keys, chosen by the token's `kid`.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    /// Builds a verifier; a key whose bytes are not a 32-byte Ed25519 key is skipped rather than trusted.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a VerificationKey>) -> Self {
        use base64::Engine as _;
        let keys = keys
            .into_iter()
            .filter_map(|k| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(&k.public_key)
                    .ok()?;
                (raw.len() == 32).then(|| (k.kid.clone(), DecodingKey::from_ed_der(&raw)))
            })
            .collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        // `exp` is optional (operators mint long-lived service tokens on purpose) but checked whenever present.
        // No leeway: every process of a deployment reads one clock source (NTP), and an expiry should mean it.
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = true;
        validation.leeway = 0;
        validation.set_issuer(&[TOKEN_ISSUER]);
        Self { keys, validation }
    }

    /// Checks signature, algorithm, issuer and expiry; returns the claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let data =
            jsonwebtoken::decode::<TokenClaims>(token, key, &self.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                    ErrorKind::InvalidSignature | ErrorKind::InvalidEddsaKey => {
                        TokenError::BadSignature
                    }
                    _ => TokenError::Malformed,
                }
            })?;
        Ok(data.claims)
    }
}

/// Reads the token out of an `Authorization`-style header value: `Bearer <token>`, or the bare token, which
/// Cloudflare's examples also show for `cf-aig-authorization`.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let value = header_value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        // A lone scheme name is a header with its token missing, not a token.
        None if value.eq_ignore_ascii_case("bearer") => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_implies_read_but_nothing_else_implies_anything() {
        let claims = |scopes: Vec<Scope>| TokenClaims {
            jti: "t".into(),
            iss: TOKEN_ISSUER.into(),
            accounts: vec!["a".into()],
            scopes,
            iat: 0,
            exp: None,
        };
        assert!(claims(vec![Scope::AiGatewayEdit]).has_scope(Scope::AiGatewayRead));
        assert!(!claims(vec![Scope::AiGatewayRead]).has_scope(Scope::AiGatewayEdit));
        assert!(!claims(vec![Scope::Admin]).has_scope(Scope::AiGatewayRead));
        assert!(!claims(vec![Scope::AiGatewayEdit]).has_scope(Scope::AiGatewayRun));
    }

    #[test]
    fn account_grants_are_exact_or_all() {
        let mut c = TokenClaims {
            jti: "t".into(),
            iss: TOKEN_ISSUER.into(),
            accounts: vec!["acme".into()],
            scopes: vec![],
            iat: 0,
            exp: None,
        };
        assert!(c.allows_account("acme"));
        assert!(!c.allows_account("acme2"));
        c.accounts = vec![ALL_ACCOUNTS.into()];
        assert!(c.allows_account("anything"));
    }

    #[test]
    fn unknown_scopes_in_a_token_grant_nothing_instead_of_failing() {
        let scopes: Vec<Scope> =
            serde_json::from_str(r#"["ai-gateway:read","future:scope"]"#).unwrap();
        assert_eq!(scopes, vec![Scope::AiGatewayRead, Scope::Unknown]);
        assert_eq!(Scope::parse("future:scope"), None);
    }

    #[test]
    fn bearer_values_are_parsed_leniently_but_other_schemes_are_refused() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token(""), None);
    }
}
