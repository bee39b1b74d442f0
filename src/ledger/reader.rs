//! Read-only access for auditors: `ledger export` and `ledger verify`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::chain::{Record, decode};
use super::{DRIFT, HELD, LedgerError, ROWS, json_table, storage};

/// Read-only access for `ledger export` and `ledger verify`.
pub struct LedgerReader {
    pub(super) db: ReadOnlyDatabase,
    pub(super) path: PathBuf,
}

impl LedgerReader {
    pub fn open(path: &Path) -> Result<LedgerReader, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Missing(path.to_path_buf()));
        }
        let read_only = || {
            ReadOnlyDatabase::open(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::InUse(path.to_path_buf()),
                other => storage(path, other),
            })
        };
        let db = match ReadOnlyDatabase::open(path) {
            // Not closed cleanly (a crash): a read-only open cannot repair redb's allocator state.
            // Opening it writable once runs redb's repair (no row is touched), then read as usual.
            Err(redb::DatabaseError::RepairAborted) => {
                drop(Database::open(path).map_err(|e| storage(path, e))?);
                read_only()?
            }
            Ok(db) => db,
            Err(_) => read_only()?,
        };
        Ok(LedgerReader {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Every held call's last committed state (for `airlock quarantine list` without a gate).
    pub fn held(&self) -> Result<Vec<serde_json::Value>, LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        Ok(json_table(&tx, HELD, &self.path)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every drift counter and pause (for `airlock drift list` without a gate).
    pub fn drift(&self) -> Result<Vec<(String, serde_json::Value)>, LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        json_table(&tx, DRIFT, &self.path)
    }

    /// Every row in sequence order, undecoded rows reported as errors.
    pub fn records(
        &self,
        each: impl FnMut(Result<Record, (u64, String)>),
    ) -> Result<(), LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        records_in(&tx, &self.path, each)
    }
}

/// Every row of a read transaction, in sequence order (the reader's and the running gate's).
pub(super) fn records_in(
    tx: &redb::ReadTransaction,
    path: &Path,
    mut each: impl FnMut(Result<Record, (u64, String)>),
) -> Result<(), LedgerError> {
    let table = match tx.open_table(ROWS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(storage(path, e)),
    };
    for item in table.iter().map_err(|e| storage(path, e))? {
        let (k, v) = item.map_err(|e| storage(path, e))?;
        each(decode(v.value()).map_err(|f| (k.value(), f.to_string())));
    }
    Ok(())
}
