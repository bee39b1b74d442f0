//! Read-only access for auditors: `ledger export` and `ledger verify`.

use std::path::{Path, PathBuf};

use redb::Database;

use super::chain::{Record, decode};
use super::postgres::Pg;
use super::store::{Redb, Store, Table};
use super::{LedgerError, Location, json_table, storage};

/// Read-only access for `ledger export` and `ledger verify`.
pub struct LedgerReader {
    pub(super) store: Store,
}

impl LedgerReader {
    pub fn open(path: &Path) -> Result<LedgerReader, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Missing(path.to_path_buf()));
        }
        // a reader scans: a modest cache, as the gate's
        let open = || {
            redb::Builder::new()
                .set_cache_size(super::CACHE_DEFAULT)
                .open_read_only(path)
        };
        let read_only = || {
            open().map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::InUse(path.to_path_buf()),
                other => storage(path, other),
            })
        };
        let db = match open() {
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
            store: Store::Redb {
                db: Redb::ReadOnly(db),
                path: path.to_path_buf(),
            },
        })
    }

    /// Open a ledger wherever it lives. A PostgreSQL ledger is read beside running replicas.
    pub fn open_at(at: &Location) -> Result<LedgerReader, LedgerError> {
        match at {
            Location::File(path) => LedgerReader::open(path),
            Location::Postgres(target) => Ok(LedgerReader {
                store: Store::Postgres(Pg::open(&target.reader())?),
            }),
        }
    }

    /// The file, or the database URL (without secrets).
    pub fn path(&self) -> PathBuf {
        self.store.name().to_path_buf()
    }

    /// Every held call's last committed state (for `airlock quarantine list` without a gate).
    pub fn held(&self) -> Result<Vec<serde_json::Value>, LedgerError> {
        Ok(json_table(&self.store, Table::Held)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every drift counter and pause (for `airlock drift list` without a gate).
    pub fn drift(&self) -> Result<Vec<(String, serde_json::Value)>, LedgerError> {
        json_table(&self.store, Table::Drift)
    }

    /// Every row in sequence order, undecoded rows reported as errors.
    pub fn records(
        &self,
        each: impl FnMut(Result<Record, (u64, String)>),
    ) -> Result<(), LedgerError> {
        records_in(&self.store, each)
    }
}

/// Every row of a store, in sequence order (the reader's and the running gate's).
pub(super) fn records_in(
    store: &Store,
    mut each: impl FnMut(Result<Record, (u64, String)>),
) -> Result<(), LedgerError> {
    store.rows(&mut |seq, bytes| {
        each(decode(bytes).map_err(|f| (seq, f.to_string())));
        true
    })
}
