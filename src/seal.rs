//! The seal: redacted values kept encrypted at rest, outside the hash chain, until their call
//! has run, been refused or expired — then destroyed.
//!
//! Owns the seal key file (32 random bytes, hex, 0600, beside the other keys; every replica of
//! one ledger needs the same file), the keys redaction derives from it ([`crate::redact::Keys`]),
//! and sealing: XChaCha20-Poly1305 (the RustCrypto `chacha20poly1305` crate) with a random
//! 192-bit nonce, the call's id as associated data, so a sealed value opens only for its own
//! call. It must never write a value or the key anywhere but the sealed text and the key file,
//! and never log either.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use crate::redact::{Keys, hmac};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("seal key {path}: {message}")]
    Key { path: String, message: String },
    #[error("no randomness for a nonce: {0}")]
    Random(String),
    #[error("a sealed value cannot be opened (another seal key, or altered)")]
    Open,
    #[error("sealed text is not base64 of a nonce and ciphertext")]
    Malformed,
}

/// The seal key's derived keys, made once when the key is read.
#[derive(Clone)]
pub struct Sealer {
    keys: Keys,
    aead: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Read the key file, or create it (mode 0600) with fresh random bytes.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SealError> {
        crate::private::secret(path)
            .map(|key| Sealer::from_key(&key))
            .map_err(|message| SealError::Key {
                path: path.display().to_string(),
                message,
            })
    }

    /// A key from the OS CSPRNG, kept only in memory (tests; a gate without a key file).
    pub fn random() -> Result<Sealer, SealError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(Sealer::from_key(&key))
    }

    fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer {
            keys: Keys {
                digest: hmac(key, &[b"airlock.seal.digest-key.v1"]),
                salt: hmac(key, &[b"airlock.seal.salt-key.v1"]),
            },
            aead: hmac(key, &[b"airlock.seal.aead-key.v1"]),
        }
    }

    /// The keys redaction computes digests and salts with.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.aead.into())
    }

    /// Seal `secrets` (pointer → value) for call `call_id`: base64 of nonce ‖ ciphertext.
    pub fn seal(
        &self,
        call_id: &str,
        secrets: &BTreeMap<String, Value>,
    ) -> Result<String, SealError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let plain = serde_json::to_vec(secrets).map_err(|_| SealError::Malformed)?;
        let sealed = self
            .aead()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: call_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Open what [`Sealer::seal`] sealed for `call_id`.
    pub fn open(&self, call_id: &str, sealed: &str) -> Result<BTreeMap<String, Value>, SealError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| SealError::Malformed)?;
        if bytes.len() < 24 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self
            .aead()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: call_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        serde_json::from_slice(&plain).map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::{SealError, Sealer};

    #[test]
    fn sealed_values_open_only_for_their_call_and_key_and_the_file_is_its_owners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.seal.key");
        let s = Sealer::load_or_create(&path).unwrap();
        let secrets = BTreeMap::from([("/card".to_string(), json!("4111111111111111"))]);
        let sealed = s.seal("c1", &secrets).unwrap();
        assert!(!sealed.contains("4111"));
        assert_ne!(
            sealed,
            s.seal("c1", &secrets).unwrap(),
            "a fresh nonce each time"
        );
        // the same file after a restart opens it
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open("c1", &sealed).unwrap(), secrets);
        assert!(
            matches!(again.open("c2", &sealed), Err(SealError::Open)),
            "bound to its call"
        );
        let other = Sealer::random().unwrap();
        assert!(matches!(other.open("c1", &sealed), Err(SealError::Open)));
        assert!(matches!(s.open("c1", "!!"), Err(SealError::Malformed)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
