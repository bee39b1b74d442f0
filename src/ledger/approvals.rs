//! The approvals tables: every approval's last state, and the index of the open ones.
//!
//! The ledger stores both as opaque bytes the desk encodes; it never interprets an approval.
//! The index is what a restart reads (open approvals only, a few dozen bytes each), so start-up
//! does not grow with the approvals ever made; the full state is read one approval at a time.
//! A ledger written before the index existed is marked unindexed until the desk has built it.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::store::Table;
use super::{APPROVALS, ItemKind, Ledger, LedgerError, META, Request};

/// Open approvals, keyed by approval id: the desk's small index entry for each (what recovery
/// needs without reading the whole state). Written in the same transaction as the state.
pub(super) const OPEN_APPROVALS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("open_approvals");
/// Meta key present once `open_approvals` indexes every open approval.
const INDEXED: &str = "approvals_indexed";

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

/// At open: a ledger with no approvals yet is indexed from the start.
pub(super) fn mark_if_fresh(tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut meta = tx.open_table(META)?;
    if meta.get(INDEXED)?.is_some() {
        return Ok(());
    }
    let empty = match tx.open_table(APPROVALS) {
        Ok(t) => t.is_empty()?,
        Err(e) => return Err(e.into()),
    };
    if empty {
        meta.insert(INDEXED, b"1".as_slice())?;
    }
    Ok(())
}

/// In the writer's transaction: every approval state of the batch, with its index entry.
pub(super) fn write(tx: &redb::WriteTransaction, batch: &[&Request]) -> Result<(), redb::Error> {
    let mut states = tx.open_table(APPROVALS)?;
    let mut open = tx.open_table(OPEN_APPROVALS)?;
    for req in batch {
        for a in req.change.items_of(ItemKind::Approval) {
            states.insert(a.id.as_str(), a.state.as_slice())?;
            match &a.open {
                Some(entry) => {
                    open.insert(a.id.as_str(), entry.as_slice())?;
                }
                None => {
                    open.remove(a.id.as_str())?;
                }
            }
        }
    }
    if batch.iter().any(|r| r.change.approvals_indexed) {
        tx.open_table(META)?.insert(INDEXED, b"1".as_slice())?;
    }
    Ok(())
}
