//! The head of the chain: the last row's sequence number and hash, and its one text form,
//! `SEQ:HEX` (what the `meta` table and PostgreSQL's head row store, and a checkpoint's row
//! count and root). Pure: it must never read or write storage.

use std::fmt;
use std::str::FromStr;

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
