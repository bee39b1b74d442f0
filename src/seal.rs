//! The seal: redacted values kept encrypted at rest, outside the hash chain, until their call
//! has run, been refused or expired — then destroyed, and past the next steps of the key chain
//! ([`chain`]) no longer openable from anything on the machine.
//!
//! Owns the seal key file (32 random bytes, hex, 0600, beside the other keys; every replica of
//! one ledger needs the same file), the keys redaction derives from it ([`crate::redact::Keys`]),
//! the chain file beside it (`airlock.seal.chain`: the sealing key of the oldest epoch still
//! needed; replicas start from the same file), and sealing: XChaCha20-Poly1305 (the RustCrypto
//! `chacha20poly1305` crate) under the current epoch's key, with a random 192-bit nonce and the
//! call's id as associated data, so a sealed value opens only for its own call. An epoch is
//! `[gate] seal_ratchet` long (1 h by default) and counted from the Unix epoch, so replicas agree
//! on it. The text is `e<EPOCH>.<base64 of nonce ‖ ciphertext>`; text without the prefix was
//! sealed before the chain, under a key derived from the seal key, and is sealed again at the
//! first step. It must never write a value or a key anywhere but the sealed text and the key
//! files, never log either, and never move the chain file back.

pub mod chain;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use self::chain::Chain;
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
    #[error(
        "a sealed value cannot be opened: the key of epoch {0} is destroyed (the chain file has moved past it)"
    )]
    Shredded(u64),
    #[error("sealed text is not base64 of a nonce and ciphertext")]
    Malformed,
}

/// The chain keys this process holds: the file's at start (so a value read before a step still
/// opens here) and the current one.
#[derive(Debug)]
struct Held {
    oldest: Chain,
    current: Chain,
}

/// The seal key's derived keys, made once when the key is read, and the key chain.
pub struct Sealer {
    keys: Keys,
    /// The key values were sealed with before the chain (text without an epoch).
    legacy: [u8; 32],
    held: Mutex<Held>,
    /// The chain file (`None`: a key only in memory).
    file: Option<PathBuf>,
    period: Duration,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The chain file beside the seal key `key`: `airlock.seal.key` → `airlock.seal.chain`.
pub fn chain_path(key: &Path) -> PathBuf {
    key.with_extension("chain")
}

impl Sealer {
    /// Read the key file and the chain file beside it, or create them (mode 0600) with fresh
    /// random bytes; epochs last `period`.
    pub fn load_or_create(path: &Path, period: Duration) -> Result<Sealer, SealError> {
        let fail = |path: &Path, message: String| SealError::Key {
            path: path.display().to_string(),
            message,
        };
        let key = crate::private::secret(path).map_err(|m| fail(path, m))?;
        let file = chain_path(path);
        let period = period.max(Duration::from_secs(1));
        let now = epoch_at(SystemTime::now(), period);
        let chain = Chain::load_or_create(&file, now.saturating_sub(1), period.as_secs())
            .map_err(|m| fail(&file, m))?;
        if chain.epoch > now + 1 {
            return Err(fail(
                &file,
                format!(
                    "it is at epoch {}, ahead of this clock's {now}: this clock runs behind, or the file came from a machine whose clock ran ahead; values sealed now could not be opened — fix the clock, or wait",
                    chain.epoch
                ),
            ));
        }
        // it must move forward (and be its owner's alone) for a destroyed value to die
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|_| crate::private::file(&file))
            .map_err(|e| {
                fail(
                    &file,
                    format!("cannot be written ({e}): the key chain could not step forward"),
                )
            })?;
        Ok(Sealer::from_keys(&key, chain, Some(file), period))
    }

    /// Keys from the OS CSPRNG, kept only in memory (tests; a gate without a key file).
    pub fn random() -> Result<Sealer, SealError> {
        let mut key = [0u8; 32];
        let mut chain = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SealError::Random(e.to_string()))?;
        getrandom::fill(&mut chain).map_err(|e| SealError::Random(e.to_string()))?;
        let period = Duration::from_secs(3600);
        let now = epoch_at(SystemTime::now(), period);
        Ok(Sealer::from_keys(
            &key,
            Chain::new(now, chain),
            None,
            period,
        ))
    }

    fn from_keys(key: &[u8; 32], chain: Chain, file: Option<PathBuf>, period: Duration) -> Sealer {
        Sealer {
            keys: derived(key),
            legacy: hmac(key, &[b"airlock.seal.aead-key.v1"]),
            held: Mutex::new(Held {
                oldest: chain.clone(),
                current: chain,
            }),
            file,
            period,
        }
    }

    /// The keys redaction computes digests and salts with.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch now.
    pub fn epoch_now(&self) -> u64 {
        epoch_at(SystemTime::now(), self.period)
    }

    /// How long an epoch lasts.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The key of `epoch`: from the current one, or (a value read before a step) the oldest.
    fn key_of(&self, epoch: u64) -> Result<[u8; 32], SealError> {
        let mut held = self.held();
        if epoch >= held.current.epoch {
            held.current = held.current.at(epoch);
            return held.current.key_of(epoch).ok_or(SealError::Shredded(epoch));
        }
        held.oldest.key_of(epoch).ok_or(SealError::Shredded(epoch))
    }

    /// Seal `secrets` (pointer → value) for call `call_id` under this epoch's key.
    pub fn seal(
        &self,
        call_id: &str,
        secrets: &BTreeMap<String, Value>,
    ) -> Result<String, SealError> {
        let epoch = self.epoch_now();
        let key = self.key_of(epoch)?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let plain = serde_json::to_vec(secrets).map_err(|_| SealError::Malformed)?;
        let sealed = XChaCha20Poly1305::new(&key.into())
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
        let text = base64::engine::general_purpose::STANDARD.encode(out);
        Ok(format!("e{epoch}.{text}"))
    }

    /// Open what [`Sealer::seal`] sealed for `call_id`.
    pub fn open(&self, call_id: &str, sealed: &str) -> Result<BTreeMap<String, Value>, SealError> {
        let (epoch, text) = split(sealed)?;
        let key = match epoch {
            // no value is sealed in an epoch yet to come (nor derived a billion steps ahead)
            Some(e) if e > self.epoch_now() + 2 => return Err(SealError::Malformed),
            Some(e) => self.key_of(e)?,
            None => self.legacy,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| SealError::Malformed)?;
        if bytes.len() < 24 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = XChaCha20Poly1305::new(&key.into())
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

    /// `sealed` opened (so a value this gate cannot open is found at every step) and sealed
    /// again under this epoch's key if it was sealed before epoch `below` (or before the
    /// chain); `None` if it need not move.
    pub fn reseal(
        &self,
        call_id: &str,
        sealed: &str,
        below: u64,
    ) -> Result<Option<String>, SealError> {
        let secrets = self.open(call_id, sealed)?;
        match split(sealed)?.0 {
            Some(e) if e >= below => Ok(None),
            _ => self.seal(call_id, &secrets).map(Some),
        }
    }

    /// Forget, in this process too, the keys before `epoch` (once the file has moved past them
    /// and a step's grace has passed: a value read before the step has been used by then).
    pub fn forget_before(&self, epoch: u64) {
        let mut held = self.held();
        if epoch > held.oldest.epoch {
            held.oldest = held.oldest.at(epoch);
        }
        if epoch > held.current.epoch {
            held.current = held.oldest.clone();
        }
    }

    /// Move the chain file forward to `epoch` (never back): keys before it are gone from the
    /// machine's disk. Returns the file's epoch. Without a file, nothing to do.
    pub fn advance_file(&self, epoch: u64) -> Result<u64, SealError> {
        let Some(file) = &self.file else {
            return Ok(epoch);
        };
        Chain::advance_file(file, epoch)
            .map(|c| c.epoch)
            .map_err(|message| SealError::Key {
                path: file.display().to_string(),
                message,
            })
    }
}

/// The keys redaction computes digests and salts with, from the seal key file alone (the
/// chain is neither read nor made: `ledger prove`).
pub fn redaction_keys(path: &Path) -> Result<Keys, SealError> {
    crate::private::secret(path)
        .map(|key| derived(&key))
        .map_err(|message| SealError::Key {
            path: path.display().to_string(),
            message,
        })
}

fn derived(key: &[u8; 32]) -> Keys {
    Keys {
        digest: hmac(key, &[b"airlock.seal.digest-key.v1"]),
        salt: hmac(key, &[b"airlock.seal.salt-key.v1"]),
    }
}

/// The epoch `at` falls in, epochs `period` long from the Unix epoch.
fn epoch_at(at: SystemTime, period: Duration) -> u64 {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs / period.as_secs().max(1)
}

/// A sealed text's epoch (`None`: sealed before the chain) and its base64.
fn split(sealed: &str) -> Result<(Option<u64>, &str), SealError> {
    match sealed.split_once('.') {
        None => Ok((None, sealed)),
        Some((e, text)) => {
            let epoch = e
                .strip_prefix('e')
                .and_then(|n| n.parse().ok())
                .ok_or(SealError::Malformed)?;
            Ok((Some(epoch), text))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use std::time::Duration;

    use super::{SealError, Sealer, chain_path};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn sealed_values_open_only_for_their_call_and_key_and_the_file_is_its_owners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.seal.key");
        let s = Sealer::load_or_create(&path, HOUR).unwrap();
        let secrets = BTreeMap::from([("/card".to_string(), json!("4111111111111111"))]);
        let sealed = s.seal("c1", &secrets).unwrap();
        assert!(!sealed.contains("4111"));
        assert_ne!(
            sealed,
            s.seal("c1", &secrets).unwrap(),
            "a fresh nonce each time"
        );
        // the same file after a restart opens it
        let again = Sealer::load_or_create(&path, HOUR).unwrap();
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

    #[test]
    fn a_value_sealed_before_the_chain_steps_forward_and_is_shredded_once_the_file_moves_past() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.seal.key");
        let s = Sealer::load_or_create(&path, HOUR).unwrap();
        assert!(chain_path(&path).ends_with("airlock.seal.chain"));
        let secrets = BTreeMap::from([("/card".to_string(), json!("4111111111111111"))]);
        // sealed at an old epoch (as by an older gate, or before a step)
        let old = s.seal("c1", &secrets).unwrap();
        let now = s.epoch_now();
        assert!(old.starts_with(&format!("e{now}.")), "{old}");
        assert_eq!(s.reseal("c1", &old, now).unwrap(), None, "current: stays");
        let moved = s
            .reseal("c1", &old, now + 1)
            .unwrap()
            .expect("sealed again");
        assert_eq!(s.open("c1", &moved).unwrap(), secrets);
        // text from before the chain: the seal key's own derived key
        let legacy = {
            use base64::Engine;
            use chacha20poly1305::aead::{Aead, KeyInit, Payload};
            let aead = chacha20poly1305::XChaCha20Poly1305::new(&s.legacy.into());
            let nonce = [7u8; 24];
            let plain = serde_json::to_vec(&secrets).unwrap();
            let payload = Payload {
                msg: &plain,
                aad: b"c1",
            };
            let mut out = nonce.to_vec();
            out.extend(
                aead.encrypt(chacha20poly1305::XNonce::from_slice(&nonce), payload)
                    .unwrap(),
            );
            base64::engine::general_purpose::STANDARD.encode(out)
        };
        assert_eq!(s.open("c1", &legacy).unwrap(), secrets);
        assert!(
            s.reseal("c1", &legacy, 0).unwrap().is_some(),
            "always moved onto the chain"
        );
        // the file moves past the epoch: a gate started from it cannot open the old text
        assert_eq!(s.advance_file(now + 1).unwrap(), now + 1);
        assert_eq!(
            s.open("c1", &old).unwrap(),
            secrets,
            "this process still holds its start key"
        );
        let later = Sealer::load_or_create(&path, HOUR).unwrap();
        assert!(matches!(later.open("c1", &old), Err(SealError::Shredded(e)) if e == now));
        assert!(matches!(
            s.open("c1", "e1x.AAAA"),
            Err(SealError::Malformed)
        ));
        let ahead = format!("e{}.AAAA", now + 1_000_000_000);
        assert!(
            matches!(s.open("c1", &ahead), Err(SealError::Malformed)),
            "never derived that far"
        );
        // a step's grace over, this process forgets the old key too
        s.forget_before(now + 1);
        assert!(matches!(s.open("c1", &old), Err(SealError::Shredded(_))));
        // a file ahead of this clock (or of another period) is refused at start, with why
        assert!(s.advance_file(now + 5).is_ok());
        let ahead = Sealer::load_or_create(&path, HOUR).unwrap_err().to_string();
        assert!(ahead.contains("ahead of this clock"), "{ahead}");
        let other = Sealer::load_or_create(&path, Duration::from_secs(60))
            .unwrap_err()
            .to_string();
        assert!(other.contains("seal_ratchet"), "{other}");
    }
}
