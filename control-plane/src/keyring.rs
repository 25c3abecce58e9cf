//! Token signing keys and the token lifecycle: mint, verify (with revocation), list, revoke.
//!
//! Private keys live in the database sealed under the master key, so every control-plane process and the `gatehouse
//! token` CLI sign with the same key, and a data-plane node never holds one. The first key is created under the
//! fixed id [`FIRST_KEY_ID`], which makes a race between two processes starting on an empty database harmless: one
//! insert wins, the other gets a unique violation and loads the winner's key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::ids::is_valid_account_id;
use gatehouse_shared::token::{
    ALL_ACCOUNTS, Scope, TOKEN_ISSUER, TokenClaims, TokenVerifier, VerificationKey,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::db::Database;
use crate::error::Error;
use crate::store::tokens::{self as token_store, SigningKeyRow, TokenRecord};
use crate::store::{is_unique_violation, now_ms};

pub const FIRST_KEY_ID: &str = "key-1";

/// What a new token should allow.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Account ids, or [`ALL_ACCOUNTS`].
    pub accounts: Vec<String>,
    pub scopes: Vec<Scope>,
    pub ttl: Option<std::time::Duration>,
    pub description: String,
}

/// A freshly minted token: the only moment the token text exists outside the client.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: String,
    pub record: TokenRecord,
}

/// The signing key in use and every key that verifies.
#[derive(Clone)]
pub struct Keyring {
    kid: String,
    signing_key: EncodingKey,
    public_keys: Vec<VerificationKey>,
    verifier: TokenVerifier,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the active keys, creating the first one when the database has none. Blocking: call it at start-up or
    /// from a CLI command, not from an async worker.
    pub fn load_or_create(db: &Database, master: &MasterKey) -> Result<Self, Error> {
        let mut rows = db.with_conn(token_store::active_signing_keys)?;
        if rows.is_empty() {
            let row = new_signing_key_row(FIRST_KEY_ID, master);
            match db.with_conn(|c| token_store::insert_signing_key(c, &row)) {
                Ok(()) => {}
                Err(Error::Database(e)) if is_unique_violation(&e) => {}
                Err(e) => return Err(e),
            }
            rows = db.with_conn(token_store::active_signing_keys)?;
        }
        let newest = rows
            .first()
            .ok_or_else(|| Error::Internal("no signing key after creating one".into()))?;
        let der = master.open(&newest.sealed_private_key).map_err(|e| {
            Error::Config(format!(
                "cannot open token signing key {}: {e}; is this the master key the database was created with?",
                newest.kid
            ))
        })?;
        let public_keys: Vec<VerificationKey> = rows
            .iter()
            .map(|r| VerificationKey {
                kid: r.kid.clone(),
                public_key: r.public_key.clone(),
            })
            .collect();
        Ok(Self {
            kid: newest.kid.clone(),
            signing_key: EncodingKey::from_ed_der(&der),
            verifier: TokenVerifier::new(&public_keys),
            public_keys,
        })
    }

    /// The public keys, as config documents will carry them to data-plane nodes.
    pub fn public_keys(&self) -> &[VerificationKey] {
        &self.public_keys
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Validates the request, records the token and signs it. Blocking.
    pub fn mint(&self, db: &Database, request: TokenRequest) -> Result<MintedToken, Error> {
        validate_request(&request)?;
        let now = now_ms();
        let expires_at_ms = match request.ttl {
            Some(ttl) => {
                let ms = i64::try_from(ttl.as_millis())
                    .map_err(|_| Error::BadParameter("ttl is too long".into()))?;
                Some(
                    now.checked_add(ms)
                        .ok_or_else(|| Error::BadParameter("ttl is too long".into()))?,
                )
            }
            None => None,
        };
        let record = TokenRecord {
            id: format!("tok_{}", uuid::Uuid::new_v4().simple()),
            description: request.description,
            accounts: request.accounts,
            scopes: request.scopes,
            created_at_ms: now,
            expires_at_ms,
            revoked_at_ms: None,
        };
        let claims = TokenClaims {
            jti: record.id.clone(),
            iss: TOKEN_ISSUER.to_owned(),
            accounts: record.accounts.clone(),
            scopes: record.scopes.clone(),
            iat: now / 1000,
            // Whole seconds, rounded up so a token never lives shorter than asked.
            exp: expires_at_ms.map(|ms| (ms + 999) / 1000),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|e| Error::Internal(format!("signing a token failed: {e}")))?;
        db.with_conn(|c| token_store::insert_token(c, &record))?;
        Ok(MintedToken { token, record })
    }

    /// Verifies a token's signature and expiry here, then asks the database whether it was revoked.
    pub async fn authenticate(&self, db: &Database, token: &str) -> Result<TokenClaims, Error> {
        let claims = self
            .verifier
            .verify(token)
            .map_err(|e| Error::Unauthenticated(e.to_string()))?;
        let jti = claims.jti.clone();
        if db
            .run(move |c| token_store::is_revoked_or_unknown(c, &jti))
            .await?
        {
            return Err(Error::Unauthenticated("the token has been revoked".into()));
        }
        Ok(claims)
    }
}

fn validate_request(request: &TokenRequest) -> Result<(), Error> {
    if request.accounts.is_empty() {
        return Err(Error::BadParameter(
            "a token needs at least one account (or '*' for all)".into(),
        ));
    }
    if let Some(bad) = request
        .accounts
        .iter()
        .find(|a| a.as_str() != ALL_ACCOUNTS && !is_valid_account_id(a))
    {
        return Err(Error::BadParameter(format!("invalid account id {bad:?}")));
    }
    if request.scopes.is_empty() || request.scopes.contains(&Scope::Unknown) {
        let names: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        return Err(Error::BadParameter(format!(
            "a token needs at least one scope of: {}",
            names.join(", ")
        )));
    }
    Ok(())
}

fn new_signing_key_row(kid: &str, master: &MasterKey) -> SigningKeyRow {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key
        .to_pkcs8_der()
        .expect("an Ed25519 key always encodes as PKCS#8");
    SigningKeyRow {
        kid: kid.to_owned(),
        public_key: STANDARD.encode(key.verifying_key().as_bytes()),
        sealed_private_key: master.seal(der.as_bytes()),
        created_at: now_ms(),
        retired_at: None,
    }
}
