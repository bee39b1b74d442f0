//! Read-only access for auditors: `ledger export` and `ledger verify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{Backend, Purpose};
use super::chain::{Record, decode};
use super::error::LedgerError;
use super::open::{self, Location};
use super::schema::Table;

/// Read-only access for `ledger export` and `ledger verify`.
pub struct LedgerReader {
    pub(super) store: Arc<dyn Backend>,
}

impl LedgerReader {
    /// The ledger file at `path`, read-only (a file not closed cleanly is repaired first).
    pub fn open(path: &Path) -> Result<LedgerReader, LedgerError> {
        LedgerReader::open_at(&Location::File(path.to_path_buf()))
    }

    /// Open a ledger wherever it lives. A PostgreSQL ledger is read beside running replicas.
    pub fn open_at(at: &Location) -> Result<LedgerReader, LedgerError> {
        Ok(LedgerReader {
            store: open::backend(at, Purpose::Read)?,
        })
    }

    /// The file, or the database URL (without secrets).
    pub fn path(&self) -> PathBuf {
        self.store.name().to_path_buf()
    }

    /// Every held call's last committed state (for `airlock quarantine list` without a gate).
    pub fn held(&self) -> Result<Vec<serde_json::Value>, LedgerError> {
        Ok(super::json_table(self.store.as_ref(), Table::Held)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every drift counter and pause (for `airlock drift list` without a gate).
    pub fn drift(&self) -> Result<Vec<(String, serde_json::Value)>, LedgerError> {
        super::json_table(self.store.as_ref(), Table::Drift)
    }

    /// Every row in sequence order, undecoded rows reported as errors.
    pub fn records(
        &self,
        each: impl FnMut(Result<Record, (u64, String)>),
    ) -> Result<(), LedgerError> {
        records_in(self.store.as_ref(), each)
    }
}

/// Every row of a store, in sequence order (the reader's and the running gate's).
pub(super) fn records_in(
    store: &dyn Backend,
    mut each: impl FnMut(Result<Record, (u64, String)>),
) -> Result<(), LedgerError> {
    store.rows(&mut |seq, bytes| {
        each(decode(bytes).map_err(|f| (seq, f.to_string())));
        true
    })
}
