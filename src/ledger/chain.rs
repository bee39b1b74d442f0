//! The hash chain: row encoding, domain-separated hashing, and verification.
//!
//! A row is stored as `prev (32 bytes) ‖ hash (32 bytes) ‖ entry`, where `entry` is the canonical
//! JSON of `{seq, time, kind, call_id, body}`. Hashes are over those exact entry bytes, never over
//! a re-encoding, so what is verified is what was written:
//!
//! leaf = SHA-256("airlock.ledger.v1.leaf\0" ‖ entry)
//! hash = SHA-256("airlock.ledger.v1.link\0" ‖ prev ‖ leaf), with prev = 32 zero bytes for row 1.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;

const LEAF_TAG: &[u8] = b"airlock.ledger.v1.leaf\0";
const LINK_TAG: &[u8] = b"airlock.ledger.v1.link\0";

/// The hash before the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// One ledger row as `airlock ledger export` writes it (one canonical JSON object per line).
///
/// Self-verifying: `entry` = canonical JSON (sorted keys, no spaces) of
/// `{seq, time, kind, call_id, body}`; `leaf = SHA-256("airlock.ledger.v1.leaf\0" ‖ entry)`;
/// `hash = SHA-256("airlock.ledger.v1.link\0" ‖ prev ‖ leaf)` with `prev` and `hash` as 32 raw
/// bytes; row 1's `prev` is 32 zero bytes, and each row's `prev` is the previous row's `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "Airlock ledger row (export)")]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 UTC time the row was written.
    pub time: String,
    /// `proposal`, `verdict`, `outcome`, ...
    pub kind: String,
    /// Groups the rows of one tool call.
    pub call_id: String,
    /// The row's content; its fields depend on `kind` (see ARCHITECTURE.md, "Ledger rows").
    pub body: Value,
    /// Hex hash of the previous row.
    pub prev: String,
    /// Hex hash of this row.
    pub hash: String,
}

#[derive(Deserialize)]
struct Entry {
    seq: u64,
    time: String,
    kind: String,
    call_id: String,
    body: Value,
}

/// The canonical entry bytes of a row.
pub fn entry(seq: u64, time: &str, kind: &str, call_id: &str, body: &Value) -> Vec<u8> {
    // canonical JSON of {seq, time, kind, call_id, body}, keys in sorted order, written
    // directly rather than through a copy of the body
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"{\"body\":");
    canonical::write_into(body, &mut out);
    out.extend_from_slice(b",\"call_id\":");
    canonical::write_str(call_id, &mut out);
    out.extend_from_slice(b",\"kind\":");
    canonical::write_str(kind, &mut out);
    out.extend_from_slice(format!(",\"seq\":{seq},\"time\":").as_bytes());
    canonical::write_str(time, &mut out);
    out.push(b'}');
    out
}

/// Hash of a row's entry bytes.
pub fn leaf(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LEAF_TAG);
    h.update(entry);
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

/// The stored bytes of a row.
pub fn encode(prev: &[u8; 32], hash: &[u8; 32], entry: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64 + entry.len());
    v.extend_from_slice(prev);
    v.extend_from_slice(hash);
    v.extend_from_slice(entry);
    v
}

/// A stored row, split into its parts.
pub struct Stored<'a> {
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    pub entry: &'a [u8],
}

/// Split stored bytes into their parts.
pub fn split(bytes: &[u8]) -> Result<Stored<'_>, Fault> {
    if bytes.len() < 64 {
        return Err(Fault::Unreadable);
    }
    let (prev, rest) = bytes.split_at(32);
    let (hash, entry) = rest.split_at(32);
    Ok(Stored {
        prev: prev.try_into().map_err(|_| Fault::Unreadable)?,
        hash: hash.try_into().map_err(|_| Fault::Unreadable)?,
        entry,
    })
}

/// Decode stored bytes into a record, without checking the chain.
pub fn decode(bytes: &[u8]) -> Result<Record, Fault> {
    let Stored { prev, hash, entry } = split(bytes)?;
    let e: Entry = serde_json::from_slice(entry).map_err(|_| Fault::Unreadable)?;
    Ok(Record {
        seq: e.seq,
        time: e.time,
        kind: e.kind,
        call_id: e.call_id,
        body: e.body,
        prev: hex::encode(prev),
        hash: hex::encode(hash),
    })
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
    /// A signature row does not verify (or does not sign the row before it).
    BadSignature,
    /// A row of a signed call has no signature row after it.
    Unsigned,
    /// A checkpoint's row has another hash: the chain was rewritten.
    Rewritten,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Unreadable => "row cannot be decoded",
            Fault::Gap => "sequence gap",
            Fault::BrokenLink => "prev does not match the previous row's hash",
            Fault::Altered => "row content does not match its hash (altered)",
            Fault::Truncated => "rows missing at the end (head mismatch)",
            Fault::BadSignature => "signature row does not verify",
            Fault::Unsigned => "a signed call's row is not covered by any signature",
            Fault::Rewritten => "the chain differs from a checkpoint (rewritten)",
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
    /// Continue after row `seq` whose hash was `prev` (rows before it were pruned).
    pub fn after(seq: u64, prev: [u8; 32]) -> Verifier {
        Verifier {
            prev,
            expected_seq: seq + 1,
        }
    }

    /// Check the next stored row; returns the decoded record or the fault.
    pub fn check(&mut self, key: u64, bytes: &[u8]) -> Result<Record, Fault> {
        if key != self.expected_seq {
            return Err(Fault::Gap);
        }
        let Stored { prev, hash, entry } = split(bytes)?;
        if prev != self.prev {
            return Err(Fault::BrokenLink);
        }
        if link(&prev, &leaf(entry)) != hash {
            return Err(Fault::Altered);
        }
        let r = decode(bytes)?;
        if r.seq != key {
            return Err(Fault::Gap);
        }
        self.prev = hash;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_entry_is_the_canonical_json_of_its_fields() {
        let body = json!({"z": [1, {"b": "\u{e9}\"", "a": null}], "a": 2.5});
        let written = super::entry(7, "2026-11-25T00:00:00Z", "outcome", "c-\n1", &body);
        let expected = crate::canonical::to_string(&json!({
            "seq": 7, "time": "2026-11-25T00:00:00Z", "kind": "outcome", "call_id": "c-\n1", "body": body,
        }));
        assert_eq!(String::from_utf8(written).unwrap(), expected);
    }
}
