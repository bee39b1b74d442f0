//! Checkpoints: a signed statement "after N rows the head was H, at time T", small enough to
//! store off the machine (a ticket, a bucket, a git repo). A later `verify --checkpoint` proves
//! the ledger still extends it: fewer rows is a truncation, another hash at row N a rewrite.

use serde::Serialize;

use crate::signing::{Public, Signer};

const MAGIC: &str = "airlock checkpoint v1";

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
pub fn take(ledger: &super::Ledger, signer: &Signer) -> Result<Checkpoint, super::LedgerError> {
    let (rows, head) = ledger.head()?;
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(Checkpoint::sign(signer, rows, &head, &time))
}

/// Write `c` into `dir` as `checkpoint-<rows>-<unix time>.txt` (atomically); returns the path.
pub fn write(dir: &std::path::Path, c: &Checkpoint) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stamp =
        time::OffsetDateTime::parse(&c.time, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .unwrap_or_default();
    let path = dir.join(format!("checkpoint-{}-{stamp}.txt", c.rows));
    let tmp = dir.join(format!(".checkpoint-{}.tmp", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, c.render())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Write a checkpoint into `dir` every `every` while the gate runs (and once at the start),
/// unless nothing was appended since the last one.
pub async fn every(
    ledger: std::sync::Arc<super::Ledger>,
    signer: Signer,
    dir: std::path::PathBuf,
    every: std::time::Duration,
) {
    let mut last_rows = None;
    loop {
        match take(&ledger, &signer) {
            Ok(c) if last_rows != Some(c.rows) => match write(&dir, &c) {
                Ok(path) => {
                    last_rows = Some(c.rows);
                    tracing::info!(rows = c.rows, path = %path.display(), "checkpoint written; copy it off this machine");
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot write a checkpoint")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the ledger head for a checkpoint"),
        }
        tokio::time::sleep(every).await;
    }
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
