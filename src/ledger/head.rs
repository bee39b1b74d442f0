//! The head of the chain: the last row's sequence number and hash, and its one text form,
//! `SEQ:HEX` (what the `meta` table and PostgreSQL's head row store, and a checkpoint's row
//! count and root), and the check a ledger's recorded head must pass before anything is
//! appended. Pure: it must never read or write storage.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::chain::{self, GENESIS};
use super::error::{LedgerError, storage};

/// Head of the chain: last sequence number and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

impl FromStr for Head {
    type Err = String;

    /// `SEQ:HEX`, as [`Head`]'s `Display` writes it.
    fn from_str(text: &str) -> Result<Head, String> {
        let (n, h) = text
            .split_once(':')
            .ok_or_else(|| format!("unreadable head `{text}`"))?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(h, &mut hash).map_err(|e| format!("head hash: {e}"))?;
        Ok(Head {
            seq: n.parse().map_err(|e| format!("head count: {e}"))?,
            hash,
        })
    }
}

impl Head {
    /// The head a ledger's last row makes (genesis for none), from its stored bytes.
    pub(crate) fn of_last(path: &Path, last: Option<(u64, &[u8])>) -> Result<Head, LedgerError> {
        Ok(match last {
            None => Head {
                seq: 0,
                hash: GENESIS,
            },
            Some((seq, bytes)) => Head {
                seq,
                hash: chain::split(bytes)
                    .map_err(|f| storage(path, format!("last row {seq}: {f}")))?
                    .hash,
            },
        })
    }

    /// The head recorded by the last commit must be this one (the last row's): otherwise rows
    /// were removed (or the ledger rewritten) since, and appending would bury the evidence.
    pub(crate) fn is_recorded(
        self,
        path: &Path,
        recorded: Option<&str>,
    ) -> Result<(), LedgerError> {
        let actual = self.to_string();
        match recorded {
            Some(r) if r != actual => Err(LedgerError::HeadMismatch {
                path: path.to_path_buf(),
                recorded: r.to_string(),
                actual,
            }),
            None if self.seq > 0 => Err(LedgerError::HeadMismatch {
                path: path.to_path_buf(),
                recorded: "none".into(),
                actual,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Head;

    #[test]
    fn the_head_reads_back_what_it_writes_byte_for_byte() {
        let text = format!("42:{}", "ab".repeat(32));
        let head: Head = text.parse().unwrap();
        assert_eq!(head.seq, 42);
        assert_eq!(head.hash, [0xab; 32]);
        assert_eq!(head.to_string(), text, "the stored text is unchanged");
        assert!("42".parse::<Head>().unwrap_err().contains("unreadable"));
        assert!("x:00".parse::<Head>().unwrap_err().contains("head"));
        assert!(format!("1:{}", "zz".repeat(32)).parse::<Head>().is_err());
    }
}
