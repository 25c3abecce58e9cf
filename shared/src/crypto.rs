//! Secrets at rest: AES-256-GCM under the deployment's master key.
//!
//! The master key is shared by every process of a deployment (a file or `GATEHOUSE_MASTER_KEY`). The control plane
//! seals provider secrets and token signing keys with it; data-plane nodes open provider secrets when they compile a
//! config document. A sealed value is `v1.` + base64(nonce ‖ ciphertext ‖ tag), so the format can change later
//! without guessing.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const SEALED_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;

/// Why a master key or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes encoded as base64 (got {0})")]
    MasterKeyFormat(String),
    #[error("a sealed secret is malformed")]
    SealedFormat,
    #[error("a sealed secret does not open with this master key (wrong key or tampered value)")]
    Open,
}

/// The deployment's 256-bit master key. `Debug` never prints the key.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses the base64 text form (surrounding whitespace allowed, as in a file with a trailing newline).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| CryptoError::MasterKeyFormat(e.to_string()))?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MasterKeyFormat(format!("{} bytes", bytes.len())))?;
        Ok(Self::from_bytes(&key))
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A fresh random key in its base64 text form, for the first standalone start.
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Encrypts `plaintext` with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), plaintext)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    /// Decrypts a value made by [`MasterKey::seal`]; fails if it was made with another key or altered.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::SealedFormat)?;
        let raw = STANDARD
            .decode(body)
            .map_err(|_| CryptoError::SealedFormat)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(CryptoError::SealedFormat);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::SealedFormat)?;
        self.cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_the_same_key_only() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let sealed = key.seal(b"sk-secret");
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(key.open(&sealed).unwrap(), b"sk-secret");
        assert!(matches!(other.open(&sealed), Err(CryptoError::Open)));
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let key = MasterKey::from_bytes(&[7; 32]);
        assert_ne!(key.seal(b"x"), key.seal(b"x"));
    }

    #[test]
    fn malformed_keys_and_values_are_errors_not_panics() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64("AAAA").is_err());
        let key = MasterKey::from_bytes(&[1; 32]);
        for bad in ["", "v1.", "v1.AAAA", "v2.AAAA", "v1.!!!"] {
            assert!(key.open(bad).is_err(), "{bad}");
        }
        let mut sealed = key.seal(b"abc");
        sealed.pop();
        sealed.push('A');
        assert!(key.open(&sealed).is_err());
    }
}
