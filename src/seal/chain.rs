//! The seal's key chain: the key that seals redacted values moves forward one step an epoch
//! (`K(e+1) = HMAC-SHA256(K(e), "airlock.seal.chain.next.v1")`), and the chain file holds only
//! the oldest key still needed. A key past can be derived from it; a key before it cannot — so
//! once the file has moved past the epoch a destroyed value was last sealed in, that value's
//! ciphertext, wherever a copy lingers (a freed page of the redb file, a PostgreSQL row before
//! `VACUUM`, a backup), can no longer be opened with anything on the machine.
//!
//! Owns the chain's arithmetic and its file: 100 bytes, `v1 PERIOD(10 digits, seconds)
//! EPOCH(20 digits) KEY(64 hex)\n`, mode 0600, always the same length and rewritten in place
//! (an ext4 overwrite reuses the block: the older key is not left in a freed one; the write
//! fits one sector). Epochs count periods from the Unix epoch, so the file says which period
//! its epochs are of. It must never keep an older key in the file, and never derive a key
//! backwards.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::redact::hmac;

const NEXT: &[u8] = b"airlock.seal.chain.next.v1";
const LEN: usize = 100;

/// One epoch's key.
#[derive(Clone, PartialEq, Eq)]
pub struct Chain {
    pub epoch: u64,
    key: [u8; 32],
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain(epoch {})", self.epoch)
    }
}

impl Chain {
    pub fn new(epoch: u64, key: [u8; 32]) -> Chain {
        Chain { epoch, key }
    }

    /// The chain moved forward to `epoch` (itself when `epoch` is not later).
    pub fn at(&self, epoch: u64) -> Chain {
        let mut key = self.key;
        for _ in self.epoch..epoch {
            key = hmac(&key, &[NEXT]);
        }
        Chain {
            epoch: epoch.max(self.epoch),
            key,
        }
    }

    /// The key of `epoch`, if it is this one's or a later one's.
    pub fn key_of(&self, epoch: u64) -> Option<[u8; 32]> {
        (epoch >= self.epoch).then(|| self.at(epoch).key)
    }

    fn render(&self, period: u64) -> String {
        format!(
            "v1 {period:010} {:020} {}\n",
            self.epoch,
            hex::encode(self.key)
        )
    }

    /// The chain a file holds, and the period of its epochs in seconds.
    fn parse(text: &str) -> Result<(Chain, u64), String> {
        let mut parts = text.trim_end().split(' ');
        let (Some("v1"), Some(period), Some(epoch), Some(key), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err("not `v1 PERIOD EPOCH KEY`".into());
        };
        let period = period.parse().map_err(|_| "its period is not a number")?;
        let epoch = epoch.parse().map_err(|_| "its epoch is not a number")?;
        let mut k = [0u8; 32];
        hex::decode_to_slice(key, &mut k).map_err(|_| "its key is not 64 hex characters")?;
        Ok((Chain { epoch, key: k }, period))
    }

    /// Read the chain file (its epochs must be `period` seconds long), or create it (0600) at
    /// `epoch` with a fresh random key.
    pub fn load_or_create(path: &Path, epoch: u64, period: u64) -> Result<Chain, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let (chain, made_for) = Chain::parse(&text)?;
                if made_for != period {
                    return Err(format!(
                        "its epochs are {made_for} s long, but [gate] seal_ratchet is {period} s: set seal_ratchet back (every replica of one ledger needs the same)"
                    ));
                }
                Ok(chain)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| e.to_string())?;
                let chain = Chain { epoch, key };
                let mut f = crate::private::create_new(path).map_err(|e| e.to_string())?;
                f.write_all(chain.render(period).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| e.to_string())?;
                Ok(chain)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Move the file forward to `epoch`, in place; never backwards. Returns the file's chain.
    pub fn advance_file(path: &Path, epoch: u64) -> Result<Chain, String> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(|e| e.to_string())?;
        let (stored, period) = Chain::parse(&text)?;
        if epoch <= stored.epoch {
            return Ok(stored);
        }
        let next = stored.at(epoch);
        let bytes = next.render(period);
        debug_assert_eq!(bytes.len(), LEN);
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(bytes.as_bytes()))
            .and_then(|()| f.set_len(LEN as u64))
            .and_then(|()| f.sync_all())
            .map_err(|e| e.to_string())?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[test]
    fn the_chain_derives_forward_only_and_its_file_moves_forward_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.seal.chain");
        let first = Chain::load_or_create(&path, 10, 60).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), super::LEN);
        assert_eq!(
            Chain::load_or_create(&path, 99, 60).unwrap(),
            first,
            "read, not made again"
        );
        let other = Chain::load_or_create(&path, 10, 3600).unwrap_err();
        assert!(
            other.contains("60 s long") && other.contains("3600 s"),
            "{other}"
        );
        let k12 = first.key_of(12).unwrap();
        assert_eq!(
            first.at(11).key_of(12),
            Some(k12),
            "one step at a time or two: the same key"
        );
        assert_ne!(first.key_of(11), first.key_of(12));
        assert_eq!(first.at(12).key_of(11), None, "never backwards");
        let moved = Chain::advance_file(&path, 12).unwrap();
        assert_eq!(moved.key_of(12), Some(k12));
        assert_eq!(Chain::load_or_create(&path, 0, 60).unwrap(), moved);
        assert_eq!(Chain::advance_file(&path, 11).unwrap(), moved, "never back");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), super::LEN);
        assert!(
            !text.contains(&hex::encode(first.key_of(10).unwrap())),
            "the older key is gone"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "v1 0000000060 12 zz\n").unwrap();
        let bad = Chain::load_or_create(&path, 0, 60).unwrap_err();
        assert!(
            bad.contains("not 64 hex") && !bad.contains('z'),
            "names the fault, not the bytes: {bad}"
        );
    }
}
