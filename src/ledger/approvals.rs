//! The approvals tables: every approval's last state, and the index of the open ones.
//!
//! The ledger stores both as opaque bytes the desk encodes; it never interprets an approval.
//! The index is what a restart reads (open approvals only, a few dozen bytes each), so start-up
//! does not grow with the approvals ever made; the full state is read one approval at a time.
//! A ledger written before the index existed is marked unindexed until the desk has built it.

use super::Ledger;
use super::error::LedgerError;
use super::schema::{Table, meta::APPROVALS_INDEXED as INDEXED};

/// (approval id, stored bytes): an approval's state or its index entry.
pub type Stored = (String, Vec<u8>);

impl Ledger {
    /// One approval's last committed state, if there is one.
    pub fn approval(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.store.get(Table::Approvals, id)
    }

    /// The index entry of every open approval, or `None` if this ledger predates the index (then
    /// [`Ledger::approvals`] must be read once and the index built with `approvals_indexed`).
    pub fn open_approvals(&self) -> Result<Option<Vec<Stored>>, LedgerError> {
        if self.store.get(Table::Meta, INDEXED)?.is_none() {
            return Ok(None);
        }
        self.store.scan(Table::OpenApprovals).map(Some)
    }

    /// Every approval's last committed state (open and finished): only for building the index
    /// of a ledger written before it existed.
    pub fn approvals(&self) -> Result<Vec<Stored>, LedgerError> {
        self.store.scan(Table::Approvals)
    }
}
