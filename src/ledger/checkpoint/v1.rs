//! The first checkpoint format, `airlock checkpoint v1`: "after N rows the head was H, at time
//! T", signed with the domain-separated message of [`crate::signing`] and naming its key. The gate
//! now writes C2SP notes ([`super::note`]); this format is still read (`verify --checkpoint`,
//! files written by earlier versions), written on request (`ledger checkpoint --format
//! airlock-v1`), and is the shape of a prune's tombstone.

use serde::Serialize;

use crate::signing::{Public, Signer};

pub(super) const MAGIC: &str = "airlock checkpoint v1";

/// One checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub rows: u64,
    /// Hex hash of row `rows` (all zeros for an empty ledger).
    pub head: String,
    /// RFC 3339 UTC time it was taken.
    pub time: String,
    /// The public key that signed it.
    pub key: String,
    pub signature: String,
}

impl Checkpoint {
    pub fn sign(signer: &Signer, rows: u64, head: &str, time: &str) -> Checkpoint {
        Checkpoint {
            rows,
            head: head.to_string(),
            time: time.to_string(),
            key: signer.public_hex(),
            signature: signer.sign_checkpoint(rows, head, time),
        }
    }

    /// The text file.
    pub fn render(&self) -> String {
        format!(
            "{MAGIC}\nrows: {}\nhead: {}\ntime: {}\nkey: {}\nsignature: {}\n",
            self.rows, self.head, self.time, self.key, self.signature
        )
    }

    pub fn parse(text: &str) -> Result<Checkpoint, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(MAGIC) {
            return Err(format!(
                "not a checkpoint (the first line must be `{MAGIC}`)"
            ));
        }
        let mut field = |name: &str| -> Result<String, String> {
            let line = lines.next().ok_or_else(|| format!("missing `{name}:`"))?;
            line.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
                .ok_or_else(|| format!("expected `{name}:`, found `{line}`"))
        };
        let rows = field("rows")?.parse().map_err(|e| format!("rows: {e}"))?;
        Ok(Checkpoint {
            rows,
            head: field("head")?,
            time: field("time")?,
            key: field("key")?,
            signature: field("signature")?,
        })
    }

    /// Whether the signature is valid for `trusted` (or, without one, for the key it names).
    pub fn signature_ok(&self, trusted: Option<&Public>) -> bool {
        let key = match trusted {
            Some(k) => {
                if k.to_hex() != self.key {
                    return false;
                }
                *k
            }
            None => match Public::parse(&self.key) {
                Ok(k) => k,
                Err(_) => return false,
            },
        };
        key.verify_checkpoint(self.rows, &self.head, &self.time, &self.signature)
    }
}

/// Sign a checkpoint of the ledger as committed now.
pub fn sign_now(
    ledger: &super::super::Ledger,
    signer: &Signer,
) -> Result<Checkpoint, super::super::LedgerError> {
    let (rows, head) = ledger.head()?;
    let time = crate::instant::rfc3339(&crate::instant::now());
    Ok(Checkpoint::sign(signer, rows, &head, &time))
}

#[cfg(test)]
mod tests {
    use super::Checkpoint;
    use crate::signing::Signer;

    #[test]
    fn a_checkpoint_round_trips_and_any_edit_breaks_its_signature() {
        let s = Signer::from_seed([3; 32]);
        let c = Checkpoint::sign(&s, 42, &"ab".repeat(32), "2026-11-24T10:00:00Z");
        let back = Checkpoint::parse(&c.render()).unwrap();
        assert_eq!(back, c);
        assert!(back.signature_ok(Some(&s.public())));
        assert!(back.signature_ok(None));
        let edited = Checkpoint::parse(&c.render().replace("rows: 42", "rows: 41")).unwrap();
        assert!(!edited.signature_ok(None));
        let other = Signer::from_seed([4; 32]);
        assert!(
            !c.signature_ok(Some(&other.public())),
            "not the trusted key"
        );
        assert!(Checkpoint::parse("hello").is_err());
        assert!(Checkpoint::parse("airlock checkpoint v1\nrows: x\n").is_err());
    }
}
