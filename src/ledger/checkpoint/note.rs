//! A checkpoint as a C2SP tlog-checkpoint signed note (c2sp.org/tlog-checkpoint):
//!
//! ```text
//! <origin>
//! <size>
//! <base64 root hash>
//!
//! — <origin> <base64(key ID ‖ Ed25519 signature)>
//! ```
//!
//! The "root hash" is the ledger's chain head after `size` rows — a hash chain, not an RFC 6962
//! Merkle tree, so the format's fields are filled but no inclusion or consistency proof exists;
//! a ledger is held to a checkpoint by reading its row `size`. The key name is the origin. The
//! signing itself is [`crate::signing`]'s; this module reads and writes the fields.

use base64::Engine as _;

use crate::signing::{Public, Signer};

/// One signed checkpoint note, as written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    /// The whole note, signature lines included, exactly as signed or read.
    pub bytes: Vec<u8>,
}

/// The origin when `[ledger] origin` is not set: names this gate's signing key, so two gates
/// with different keys never share one.
pub fn default_origin(public: &Public) -> String {
    format!("airlock/{}", &public.to_hex()[..16])
}

impl SignedNote {
    /// Sign a checkpoint of `size` rows whose last row has hash `root`.
    pub fn sign(
        signer: &Signer,
        origin: &str,
        size: u64,
        root: &[u8; 32],
    ) -> Result<SignedNote, crate::signing::KeyError> {
        Ok(SignedNote {
            origin: origin.to_string(),
            size,
            root: *root,
            bytes: signer.sign_checkpoint_note(origin, size, root)?,
        })
    }

    /// Read a note's fields (its signature is checked by [`SignedNote::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<SignedNote, String> {
        let note =
            signed_note::Note::from_bytes(bytes).map_err(|e| format!("not a signed note ({e})"))?;
        let text = std::str::from_utf8(note.text()).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        let origin = lines.next().unwrap_or("");
        if origin.is_empty() {
            return Err("the origin line (the first) is empty".into());
        }
        let size_text = lines.next().ok_or("no tree size line")?;
        if (size_text.len() > 1 && size_text.starts_with('0')) || size_text.starts_with('+') {
            return Err(format!(
                "tree size `{size_text}` has a leading zero or sign"
            ));
        }
        let size = size_text
            .parse::<u64>()
            .map_err(|e| format!("tree size `{size_text}`: {e}"))?;
        let root_text = lines.next().ok_or("no root hash line")?;
        let root = base64::engine::general_purpose::STANDARD
            .decode(root_text)
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| format!("root hash `{root_text}` is not 32 bytes in base64"))?;
        if lines.any(str::is_empty) {
            return Err("an extension line is empty".into());
        }
        Ok(SignedNote {
            origin: origin.to_string(),
            size,
            root,
            bytes: bytes.to_vec(),
        })
    }

    /// Whether `public` signed it, under its origin as the key name.
    pub fn verify(&self, public: &Public) -> Result<(), crate::signing::NoteError> {
        public.open_note(&self.bytes, &self.origin).map(|_| ())
    }

    /// The root hash in hex, as the ledger's rows show hashes.
    pub fn root_hex(&self) -> String {
        hex::encode(self.root)
    }

    /// One line for a mail or a log: origin, size and base64 root hash, as in the note.
    pub fn line(&self) -> String {
        let root = base64::engine::general_purpose::STANDARD.encode(self.root);
        format!("{} {} {root}", self.origin, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::{SignedNote, default_origin};
    use crate::signing::Signer;

    #[test]
    fn a_note_round_trips_and_only_its_signer_verifies_it() {
        let s = Signer::from_seed([5; 32]);
        let origin = default_origin(&s.public());
        assert!(
            origin.starts_with("airlock/") && origin.len() == 24,
            "{origin}"
        );
        let n = SignedNote::sign(&s, &origin, 42, &[7; 32]).unwrap();
        let back = SignedNote::parse(&n.bytes).unwrap();
        assert_eq!(back, n);
        assert!(back.verify(&s.public()).is_ok());
        assert!(back.verify(&Signer::from_seed([6; 32]).public()).is_err());
        assert_eq!(back.root_hex(), "07".repeat(32));
        assert!(back.line().starts_with(&format!("{origin} 42 Bwc")));
        // another size under the same signature
        let text = String::from_utf8(n.bytes.clone()).unwrap();
        let edited = SignedNote::parse(text.replacen("\n42\n", "\n41\n", 1).as_bytes()).unwrap();
        assert_eq!(edited.size, 41);
        assert!(edited.verify(&s.public()).is_err(), "an edit breaks it");
    }

    #[test]
    fn malformed_notes_are_refused_with_a_reason() {
        let sig = "\n— o AAAAAAAAAA==\n";
        for (text, why) in [
            ("o\n42\n", "not a signed note"),
            (
                &format!("o\n042\n{}\n{sig}", "A".repeat(43) + "="),
                "leading zero",
            ),
            (
                &format!("o\nx\n{}\n{sig}", "A".repeat(43) + "="),
                "tree size",
            ),
            (&format!("o\n1\nAAAA\n{sig}"), "not 32 bytes"),
            (&format!("o\n1\n{sig}"), "no root hash"),
        ] {
            let err = SignedNote::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let ok = format!("o\n0\n{}\n{sig}", "A".repeat(43) + "=");
        assert_eq!(
            SignedNote::parse(ok.as_bytes()).unwrap().size,
            0,
            "an empty log is size 0"
        );
    }
}
