//! The hash chain: row encoding, domain-separated hashing, and verification.
//!
//! leaf = SHA-256("airlock.ledger.v1.leaf\0" ‖ canonical(seq, time, kind, call_id, body))
//! hash = SHA-256("airlock.ledger.v1.link\0" ‖ prev ‖ leaf), with prev = 32 zero bytes for row 1.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::canonical;

const LEAF_TAG: &[u8] = b"airlock.ledger.v1.leaf\0";
const LINK_TAG: &[u8] = b"airlock.ledger.v1.link\0";

/// The hash before the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// One stored ledger row, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 UTC time the row was written.
    pub time: String,
    /// `proposal`, `verdict`, `outcome`, ...
    pub kind: String,
    /// Groups the rows of one tool call.
    pub call_id: String,
    pub body: Value,
    /// Hex hash of the previous row.
    pub prev: String,
    /// Hex hash of this row.
    pub hash: String,
}

/// Hash of a row's content (everything but `prev` and `hash`).
pub fn leaf(seq: u64, time: &str, kind: &str, call_id: &str, body: &Value) -> [u8; 32] {
    let content = json!({"seq": seq, "time": time, "kind": kind, "call_id": call_id, "body": body});
    let mut h = Sha256::new();
    h.update(LEAF_TAG);
    h.update(canonical::to_string(&content).as_bytes());
    h.finalize().into()
}

/// Hash linking a row to its predecessor.
pub fn link(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LINK_TAG);
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// What is wrong with a row, for `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The stored bytes are not a row.
    Unreadable,
    /// The sequence number does not follow the previous row's (a gap or a reordering).
    Gap,
    /// `prev` is not the previous row's hash.
    BrokenLink,
    /// The row's content does not hash to its `hash` (altered).
    Altered,
    /// The database's head does not match the last row (rows removed from the end).
    Truncated,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Unreadable => "row cannot be decoded",
            Fault::Gap => "sequence gap",
            Fault::BrokenLink => "prev does not match the previous row's hash",
            Fault::Altered => "row content does not match its hash (altered)",
            Fault::Truncated => "rows missing at the end (head mismatch)",
        })
    }
}

/// Incremental verifier: feed rows in key order.
#[derive(Debug)]
pub struct Verifier {
    prev: [u8; 32],
    expected_seq: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            prev: GENESIS,
            expected_seq: 1,
        }
    }
}

impl Verifier {
    /// Check the next stored row; returns the decoded record or the fault.
    pub fn check(&mut self, key: u64, bytes: &[u8]) -> Result<Record, Fault> {
        let r: Record = serde_json::from_slice(bytes).map_err(|_| Fault::Unreadable)?;
        if key != self.expected_seq || r.seq != key {
            return Err(Fault::Gap);
        }
        if r.prev != hex::encode(self.prev) {
            return Err(Fault::BrokenLink);
        }
        let h = link(
            &self.prev,
            &leaf(r.seq, &r.time, &r.kind, &r.call_id, &r.body),
        );
        if r.hash != hex::encode(h) {
            return Err(Fault::Altered);
        }
        self.prev = h;
        self.expected_seq += 1;
        Ok(r)
    }

    pub fn head(&self) -> [u8; 32] {
        self.prev
    }

    pub fn rows(&self) -> u64 {
        self.expected_seq - 1
    }
}
