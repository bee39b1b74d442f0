//! Ed25519 signing for the ledger: the key file, signature rows and checkpoints.
//!
//! Owns the signing key (a 0600 file of 64 hex characters, the Ed25519 seed), the public key
//! an auditor verifies with, and the exact bytes each signature covers (domain-separated). It
//! must never write the secret anywhere but its own file, and never sign anything but those
//! messages.
//!
//! Checkpoints are also C2SP signed notes (c2sp.org/signed-note): the key signs the note text
//! of a tlog-checkpoint (origin, size, base64 root hash, each line ending in a newline), which
//! this module builds itself. That text has no control character but newline, so it can never
//! equal one of the tagged messages above (each tag ends in a NUL byte).

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

const ROWS_TAG: &[u8] = b"airlock.ledger.v1.sig\0";
const CHECKPOINT_TAG: &[u8] = b"airlock.checkpoint.v1\0";
const HEAD_TAG: &[u8] = b"airlock.ledger.v1.head\0";

/// The signed-note signature type of Ed25519 (c2sp.org/signed-note, "Signature types").
const NOTE_ED25519: u8 = 0x01;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {message}")]
    Io { path: String, message: String },
    #[error("signing key {0} already exists; it is never overwritten")]
    Exists(String),
    #[error("`{0}` is not an Ed25519 public key (64 hex characters)")]
    BadPublic(String),
    #[error("`{0}` cannot name a signed note's key: it must be non-empty, without spaces or `+`")]
    BadNoteName(String),
}

/// Why a signed checkpoint note does not verify.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("no signature by the trusted key (key name `{name}`, key ID {id:08x}) is on it")]
    NotSigned { name: String, id: u32 },
    #[error(
        "its signature by the trusted key (key name `{name}`) does not verify: the note was altered"
    )]
    BadSignature { name: String },
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

    /// A C2SP tlog-checkpoint of `size` rows with root hash `root`, signed as a signed note
    /// whose key name is the origin: the whole note, ready to write or send.
    pub fn sign_checkpoint_note(
        &self,
        origin: &str,
        size: u64,
        root: &[u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        let bad_name = || KeyError::BadNoteName(origin.chars().take(80).collect());
        if !signed_note::is_key_name_valid(origin) {
            return Err(bad_name());
        }
        let text = checkpoint_note_text(origin, size, root);
        let mut note = signed_note::Note::new(text.as_bytes(), &[]).map_err(|_| bad_name())?;
        let signer = NoteSigner {
            name: origin,
            id: self.public().note_key_id(origin),
            key: &self.0,
        };
        note.add_sigs(&[&signer]).map_err(|_| bad_name())?;
        Ok(note.to_bytes())
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

    /// The signed-note key ID of this key under `name`:
    /// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], big-endian.
    pub fn note_key_id(&self, name: &str) -> u32 {
        signed_note::key_id(name, &self.note_key_bytes())
    }

    /// The verifier key transparency-log tooling is configured with: `name+keyid+base64(0x01 ‖
    /// public key)` (the format of Go's golang.org/x/mod/sumdb/note).
    pub fn note_verifier_key(&self, name: &str) -> String {
        signed_note::new_ed25519_verifier_key(name, &self.0)
    }

    /// Check a signed note's signature by this key under `name` (signatures by other keys are
    /// ignored, as the signed-note spec says); returns the note text.
    pub fn open_note(&self, note: &[u8], name: &str) -> Result<Vec<u8>, NoteError> {
        let parsed =
            signed_note::Note::from_bytes(note).map_err(|e| NoteError::Malformed(e.to_string()))?;
        let id = self.note_key_id(name);
        let verifier = NoteVerifier {
            name: name.to_string(),
            id,
            key: self.0,
        };
        let known = signed_note::VerifierList::new(vec![Box::new(verifier)]);
        match parsed.verify(&known) {
            Ok(_) => Ok(parsed.text().to_vec()),
            Err(signed_note::NoteError::InvalidSignature { .. }) => Err(NoteError::BadSignature {
                name: name.to_string(),
            }),
            Err(signed_note::NoteError::UnverifiedNote) => Err(NoteError::NotSigned {
                name: name.to_string(),
                id,
            }),
            Err(e) => Err(NoteError::Malformed(e.to_string())),
        }
    }

    fn note_key_bytes(&self) -> Vec<u8> {
        let mut k = vec![NOTE_ED25519];
        k.extend_from_slice(&self.0.to_bytes());
        k
    }

    fn verify(&self, msg: &[u8], signature: &str) -> bool {
        let mut b = [0u8; 64];
        hex::decode_to_slice(signature, &mut b).is_ok()
            && self.0.verify(msg, &Signature::from_bytes(&b)).is_ok()
    }
}

/// The note text of a C2SP tlog-checkpoint: origin, tree size and base64 root hash, each line
/// ending in a newline, and no extension lines.
pub fn checkpoint_note_text(origin: &str, size: u64, root: &[u8; 32]) -> String {
    use base64::Engine as _;
    let root = base64::engine::general_purpose::STANDARD.encode(root);
    format!("{origin}\n{size}\n{root}\n")
}

/// This gate's key as a signed-note signer, for the checkpoint note text only.
struct NoteSigner<'a> {
    name: &'a str,
    id: u32,
    key: &'a SigningKey,
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// A trusted public key as a signed-note verifier, under one key name.
struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl signed_note::Verifier for NoteVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.key.verify(msg, &Signature::from_bytes(&sig)).is_ok()
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

    /// The published example of golang.org/x/mod/sumdb/note (the signed-note format's origin).
    const PETER_SEED_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn peter() -> Signer {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(PETER_SEED_B64)
            .unwrap();
        assert_eq!(bytes[0], 0x01, "an Ed25519 key");
        Signer::from_seed(bytes[1..].try_into().unwrap())
    }

    #[test]
    fn note_key_ids_verifier_keys_and_signatures_match_the_published_example() {
        let k = peter().public();
        assert_eq!(k.note_key_id("PeterNeumann"), 0xc74f_20a3);
        assert_eq!(k.note_verifier_key("PeterNeumann"), PETER_VKEY);
        let text = k.open_note(PETER_NOTE.as_bytes(), "PeterNeumann").unwrap();
        assert!(text.starts_with(b"If you think cryptography"));
        let altered = PETER_NOTE.replace("answer", "Answer");
        assert!(matches!(
            k.open_note(altered.as_bytes(), "PeterNeumann"),
            Err(super::NoteError::BadSignature { .. })
        ));
        assert!(matches!(
            k.open_note(PETER_NOTE.as_bytes(), "SomeoneElse"),
            Err(super::NoteError::NotSigned { .. })
        ));
        let other = Signer::from_seed([9; 32]).public();
        assert!(
            other
                .open_note(PETER_NOTE.as_bytes(), "PeterNeumann")
                .is_err()
        );
    }

    #[test]
    fn a_checkpoint_note_has_the_c2sp_shape_and_verifies_with_an_independent_verifier() {
        use signed_note::Verifier as _;
        let s = peter();
        let note = s
            .sign_checkpoint_note("example.com/airlock", 3, &[0xab; 32])
            .unwrap();
        let text = String::from_utf8(note.clone()).unwrap();
        let (body, sig) = text.rsplit_once("\n\n").unwrap();
        assert_eq!(
            body,
            "example.com/airlock\n3\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
        );
        assert!(sig.starts_with("\u{2014} example.com/airlock ") && sig.ends_with('\n'));
        // the verifier key string goes through signed_note's own parser and key-ID check
        let vkey = s.public().note_verifier_key("example.com/airlock");
        let v = signed_note::StandardVerifier::new(&vkey).unwrap();
        assert_eq!(v.key_id(), s.public().note_key_id("example.com/airlock"));
        let parsed = signed_note::Note::from_bytes(&note).unwrap();
        let known = signed_note::VerifierList::new(vec![Box::new(v)]);
        assert!(parsed.verify(&known).is_ok());
        assert!(
            s.sign_checkpoint_note("has space", 1, &[0; 32]).is_err(),
            "a key name has no spaces"
        );
        assert!(s.sign_checkpoint_note("a+b", 1, &[0; 32]).is_err());
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
