//! Encryption of stored secrets: AES-256-GCM under the server's secret key; and the random
//! bearer secrets (API keys, tokens) with their stored SHA-256. Its own module, below the state
//! that holds the cipher, the store and the handlers that use it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// AES-256-GCM with a random 96-bit nonce per value; the associated data binds a ciphertext to
/// its tenant and name, so it cannot be moved to another record.
pub struct SecretCipher(Aes256Gcm);

impl SecretCipher {
    /// A cipher under `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        SecretCipher(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
    }

    /// base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, ApiError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| ApiError::Internal("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(ct);
        Ok(STANDARD.encode(out))
    }

    /// The plaintext of [`SecretCipher::seal`]'s output; fails on a wrong key or record.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, ApiError> {
        let raw = STANDARD
            .decode(sealed)
            .map_err(|e| ApiError::Internal(format!("sealed secret: {e}")))?;
        if raw.len() < 12 {
            return Err(ApiError::Internal("sealed secret too short".into()));
        }
        let (nonce, ct) = raw.split_at(12);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() })
            .map_err(|_| {
                ApiError::Internal(
                    "cannot decrypt a secret: the server's secret key is not the one it was stored with".into(),
                )
            })
    }
}

/// SHA-256 of a secret, hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret with a prefix: `<prefix>` + 43 base64url chars (256 bits).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
