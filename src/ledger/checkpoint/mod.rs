//! Checkpoints: signed statements "after N rows the chain head was H", kept beside the ledger and
//! sent off the machine, so that a ledger rolled back to an older copy of itself, or rewritten,
//! is caught.
//!
//! Owns the checkpoint formats (C2SP tlog-checkpoint notes in [`note`]; the older
//! `airlock checkpoint v1` in [`v1`], still read), the checkpoint directory ([`dir`]), the check
//! `serve` makes before it appends ([`guard`]), the writer that writes one at least every
//! `checkpoint_every` while rows are written and at every clean stop ([`writer`]), and their
//! delivery to a witness and an auditor's mailbox ([`witness`]). Checkpoints are files, never
//! ledger rows. It must never sign a checkpoint of rows that are not committed, and never let a
//! failed delivery stop the gate from recording calls.

pub mod dir;
pub mod guard;
pub mod note;
mod status;
pub mod v1;
pub mod witness;
pub mod writer;

pub use note::{SignedNote, default_origin};
pub use status::Status;
pub use v1::{Checkpoint, sign_now};
pub use writer::{Running, Settings, start};

use crate::signing::Public;

/// A checkpoint as read from a file, in either format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// A C2SP tlog-checkpoint signed note.
    Note(SignedNote),
    /// `airlock checkpoint v1`.
    V1(Checkpoint),
}

impl From<Checkpoint> for Saved {
    fn from(c: Checkpoint) -> Saved {
        Saved::V1(c)
    }
}

impl From<SignedNote> for Saved {
    fn from(n: SignedNote) -> Saved {
        Saved::Note(n)
    }
}

impl Saved {
    /// Read either format (a v1 file starts with its magic line).
    pub fn parse(bytes: &[u8]) -> Result<Saved, String> {
        let text = String::from_utf8_lossy(bytes);
        if text.trim_start().starts_with(v1::MAGIC) {
            Checkpoint::parse(&text).map(Saved::V1)
        } else {
            SignedNote::parse(bytes).map(Saved::Note)
        }
    }

    /// The rows it saw (the tree size).
    pub fn rows(&self) -> u64 {
        match self {
            Saved::Note(n) => n.size,
            Saved::V1(c) => c.rows,
        }
    }

    /// The hash of row `rows()`, in hex.
    pub fn head(&self) -> String {
        match self {
            Saved::Note(n) => n.root_hex(),
            Saved::V1(c) => c.head.clone(),
        }
    }

    /// When it was taken, if the format says (a note does not).
    pub fn time(&self) -> &str {
        match self {
            Saved::Note(_) => "",
            Saved::V1(c) => &c.time,
        }
    }

    pub fn format(&self) -> &'static str {
        match self {
            Saved::Note(_) => "tlog-checkpoint",
            Saved::V1(_) => "airlock-v1",
        }
    }

    /// Whether its signature is valid for `trusted`; without a trusted key a v1 file is checked
    /// against the key it names, and a note cannot be checked (`None`).
    pub fn signature_ok(&self, trusted: Option<&Public>) -> Option<bool> {
        match (self, trusted) {
            (Saved::V1(c), _) => Some(c.signature_ok(trusted)),
            (Saved::Note(n), Some(k)) => Some(n.verify(k).is_ok()),
            (Saved::Note(_), None) => None,
        }
    }
}

#[cfg(test)]
mod tests;
