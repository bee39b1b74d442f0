//! Ed25519 signing for the ledger: the key file, signature rows and checkpoints.
//!
//! Owns the signing key (a 0600 file of 64 hex characters, the Ed25519 seed), the public key
//! an auditor verifies with, and the exact bytes each signature covers (domain-separated). It
//! must never write the secret anywhere but its own file, and never sign anything but those
//! messages.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

const ROWS_TAG: &[u8] = b"airlock.ledger.v1.sig\0";
const CHECKPOINT_TAG: &[u8] = b"airlock.checkpoint.v1\0";
const HEAD_TAG: &[u8] = b"airlock.ledger.v1.head\0";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {message}")]
    Io { path: String, message: String },
    #[error("signing key {0} already exists; it is never overwritten")]
    Exists(String),
    #[error("`{0}` is not an Ed25519 public key (64 hex characters)")]
    BadPublic(String),
}

/// The gate's signing key.
#[derive(Clone)]
pub struct Signer(SigningKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public_hex())
    }
}

impl Signer {
    /// Create a new key file (mode 0600); refuses to overwrite one.
    pub fn create(path: &Path) -> Result<Signer, KeyError> {
        let err = |m: String| KeyError::Io {
            path: path.display().to_string(),
            message: m,
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| err(e.to_string()))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.display().to_string())
            } else {
                err(e.to_string())
            }
        })?;
        f.write_all(hex::encode(seed).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| err(e.to_string()))?;
        Ok(Signer(SigningKey::from_bytes(&seed)))
    }

    /// Read the key file.
    pub fn load(path: &Path) -> Result<Signer, KeyError> {
        let err = |m: String| KeyError::Io {
            path: path.display().to_string(),
            message: m,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|e| err(format!("not 64 hex characters: {e}")))?;
        Ok(Signer(SigningKey::from_bytes(&seed)))
    }

    /// Read the key file, creating it on first use.
    pub fn load_or_create(path: &Path) -> Result<Signer, KeyError> {
        if path.exists() {
            Signer::load(path)
        } else {
            match Signer::create(path) {
                Err(KeyError::Exists(_)) => Signer::load(path),
                other => other,
            }
        }
    }

    /// A key for tests and benchmarks.
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        Signer(SigningKey::from_bytes(&seed))
    }

    pub fn public(&self) -> Public {
        Public(self.0.verifying_key())
    }

    pub fn public_hex(&self) -> String {
        self.public().to_hex()
    }

    /// Sign the ledger head after `seq` rows (a signature row covers every row up to it).
    pub fn sign_rows(&self, seq: u64, head: &[u8; 32]) -> String {
        hex::encode(self.0.sign(&rows_message(seq, head)).to_bytes())
    }

    /// Sign the head recorded with every commit (so a rewritten file is caught even with no
    /// signed rows and no checkpoint).
    pub fn sign_head(&self, seq: u64, head: &[u8; 32]) -> String {
        hex::encode(self.0.sign(&head_message(seq, head)).to_bytes())
    }

    /// Sign a checkpoint's fields.
    pub fn sign_checkpoint(&self, rows: u64, head: &str, time: &str) -> String {
        hex::encode(
            self.0
                .sign(&checkpoint_message(rows, head, time))
                .to_bytes(),
        )
    }
}

/// A public key, as an auditor holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Public(VerifyingKey);

impl Public {
    pub fn parse(hex_text: &str) -> Result<Public, KeyError> {
        let bad = || KeyError::BadPublic(hex_text.chars().take(80).collect());
        let mut b = [0u8; 32];
        hex::decode_to_slice(hex_text.trim(), &mut b).map_err(|_| bad())?;
        VerifyingKey::from_bytes(&b).map(Public).map_err(|_| bad())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn verify_rows(&self, seq: u64, head: &[u8; 32], signature: &str) -> bool {
        self.verify(&rows_message(seq, head), signature)
    }

    pub fn verify_head(&self, seq: u64, head: &[u8; 32], signature: &str) -> bool {
        self.verify(&head_message(seq, head), signature)
    }

    pub fn verify_checkpoint(&self, rows: u64, head: &str, time: &str, signature: &str) -> bool {
        self.verify(&checkpoint_message(rows, head, time), signature)
    }

    fn verify(&self, msg: &[u8], signature: &str) -> bool {
        let mut b = [0u8; 64];
        hex::decode_to_slice(signature, &mut b).is_ok()
            && self.0.verify(msg, &Signature::from_bytes(&b)).is_ok()
    }
}

fn rows_message(seq: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ROWS_TAG.len() + 40);
    m.extend_from_slice(ROWS_TAG);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m
}

fn head_message(seq: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEAD_TAG.len() + 40);
    m.extend_from_slice(HEAD_TAG);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m
}

fn checkpoint_message(rows: u64, head: &str, time: &str) -> Vec<u8> {
    let mut m = Vec::from(CHECKPOINT_TAG);
    for part in [rows.to_string().as_str(), head, time] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part.as_bytes());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::{Public, Signer};

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let a = Signer::from_seed([1; 32]);
        let b = Signer::from_seed([2; 32]);
        let head = [7u8; 32];
        let sig = a.sign_rows(5, &head);
        assert!(a.public().verify_rows(5, &head, &sig));
        assert!(!a.public().verify_rows(6, &head, &sig), "another row count");
        assert!(!a.public().verify_rows(5, &[8; 32], &sig), "another head");
        assert!(!b.public().verify_rows(5, &head, &sig), "another key");
        assert!(!a.public().verify_rows(5, &head, "zz"), "not hex");
        let c = a.sign_checkpoint(5, "ab", "2026-11-24T00:00:00Z");
        assert!(
            a.public()
                .verify_checkpoint(5, "ab", "2026-11-24T00:00:00Z", &c)
        );
        assert!(
            !a.public()
                .verify_checkpoint(5, "ab", "2026-11-24T00:00:01Z", &c)
        );
        assert!(
            !a.public().verify_rows(5, &head, &c),
            "a checkpoint signature is not a row signature"
        );
        assert_eq!(Public::parse(&a.public_hex()).unwrap(), a.public());
        assert!(Public::parse("00").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = Signer::create(&p).unwrap();
        assert!(Signer::create(&p).is_err());
        assert_eq!(Signer::load(&p).unwrap().public_hex(), k.public_hex());
        assert_eq!(
            Signer::load_or_create(&p).unwrap().public_hex(),
            k.public_hex()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
