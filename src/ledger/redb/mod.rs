//! The ledger in one redb file (`[gate] ledger`), for a gate alone on its ledger.
//!
//! Owns the file: opening it for each purpose (a gate's writable open checks the schema
//! version; an auditor's is read-only, repairing a file not closed cleanly first), its reads
//! (`read`), the writer's commit (`commit`), a prune's removal and a copy's writes. The tables
//! are `ledger::schema`'s. It must never decide what a commit writes (`ledger::batch` does), and
//! never acknowledge one before redb's durable commit returned.

mod commit;
mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata,
};

use super::backend::{Backend, Committer, Heads, Purpose, SignTombstone};
use super::batch::Finals;
use super::error::{LedgerError, storage};
use super::head::Head;
use super::schema::{APPROVALS, META, ROWS, SCHEMA_VERSION, Table, meta};

/// A redb database opened for writing or read-only.
enum Db {
    Writable(Arc<Database>),
    ReadOnly(ReadOnlyDatabase),
}

/// The redb file as a [`Backend`].
pub(crate) struct Redb {
    db: Db,
    path: PathBuf,
}

/// Open the file at `path` for `purpose`.
pub(crate) fn open(path: &Path, purpose: Purpose) -> Result<Redb, LedgerError> {
    let in_use = |e: redb::DatabaseError| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::InUse(path.to_path_buf()),
        other => storage(path, other),
    };
    let db = match purpose {
        Purpose::Serve { cache } => {
            let db = Database::builder()
                .set_cache_size(cache)
                .create(path)
                .map_err(in_use)?;
            // every argument of every call is in it: only its owner reads it
            crate::private::file(path).map_err(|e| storage(path, e))?;
            init(&db, path)?;
            Db::Writable(Arc::new(db))
        }
        Purpose::Read => Db::ReadOnly(read_only(path)?),
        Purpose::Maintain => Db::Writable(Arc::new(Database::open(path).map_err(in_use)?)),
        Purpose::CopyInto => {
            if path.exists() {
                return Err(storage(path, "the target exists: copy into a new file"));
            }
            let db = Database::create(path).map_err(|e| storage(path, e))?;
            crate::private::file(path).map_err(|e| storage(path, e))?;
            Db::Writable(Arc::new(db))
        }
    };
    Ok(Redb {
        db,
        path: path.to_path_buf(),
    })
}

/// A ledger on any redb storage backend (tests use one that fails on demand).
#[cfg(test)]
pub(crate) fn on(backend: impl redb::StorageBackend) -> Result<Redb, LedgerError> {
    let path = PathBuf::from("<backend>");
    let db = Database::builder()
        .create_with_backend(backend)
        .map_err(|e| storage(&path, e))?;
    init(&db, &path)?;
    Ok(Redb {
        db: Db::Writable(Arc::new(db)),
        path,
    })
}

/// An auditor's open: read-only, with a modest cache (a reader scans).
fn read_only(path: &Path) -> Result<ReadOnlyDatabase, LedgerError> {
    if !path.exists() {
        return Err(LedgerError::Missing(path.to_path_buf()));
    }
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
    match open() {
        // Not closed cleanly (a crash): a read-only open cannot repair redb's allocator state.
        // Opening it writable once runs redb's repair (no row is touched), then read as usual.
        Err(redb::DatabaseError::RepairAborted) => {
            drop(Database::open(path).map_err(|e| storage(path, e))?);
            read_only()
        }
        Ok(db) => Ok(db),
        Err(_) => read_only(),
    }
}

/// A gate's open: the schema version (written on a new file, refused if another), the head
/// check (nothing is written to a ledger that fails it), and a new ledger marked as indexing
/// its open approvals.
fn init(db: &Database, path: &Path) -> Result<(), LedgerError> {
    let tx = db.begin_write().map_err(|e| storage(path, e))?;
    {
        let mut meta = tx.open_table(META).map_err(|e| storage(path, e))?;
        let rows = tx.open_table(ROWS).map_err(|e| storage(path, e))?;
        let version = meta
            .get(meta::SCHEMA_VERSION)
            .map_err(|e| storage(path, e))?
            .map(|v| v.value().to_vec());
        match version {
            None => {
                meta.insert(meta::SCHEMA_VERSION, SCHEMA_VERSION)
                    .map_err(|e| storage(path, e))?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(LedgerError::Schema {
                    path: path.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                    known: String::from_utf8_lossy(SCHEMA_VERSION).into_owned(),
                });
            }
        }
        let last = rows.last().map_err(|e| storage(path, e))?;
        let head = Head::of_last(path, last.as_ref().map(|(k, v)| (k.value(), v.value())))?;
        let recorded = meta
            .get(meta::HEAD)
            .map_err(|e| storage(path, e))?
            .map(|g| String::from_utf8_lossy(g.value()).into_owned());
        head.is_recorded(path, recorded.as_deref())?;
        // a ledger with no approvals yet is indexed from the start
        if meta
            .get(meta::APPROVALS_INDEXED)
            .map_err(|e| storage(path, e))?
            .is_none()
        {
            let approvals = tx.open_table(APPROVALS).map_err(|e| storage(path, e))?;
            if approvals.is_empty().map_err(|e| storage(path, e))? {
                meta.insert(meta::APPROVALS_INDEXED, b"1".as_slice())
                    .map_err(|e| storage(path, e))?;
            }
        }
    }
    tx.commit().map_err(|e| storage(path, e))
}

impl Redb {
    fn begin_read(&self) -> Result<ReadTransaction, LedgerError> {
        match &self.db {
            Db::Writable(d) => d.begin_read(),
            Db::ReadOnly(d) => d.begin_read(),
        }
        .map_err(|e| storage(&self.path, e))
    }

    fn writable(&self) -> Result<&Arc<Database>, LedgerError> {
        match &self.db {
            Db::Writable(d) => Ok(d),
            Db::ReadOnly(_) => Err(storage(&self.path, "opened read-only")),
        }
    }
}

impl Backend for Redb {
    fn name(&self) -> &Path {
        &self.path
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        read::get(&self.begin_read()?, &self.path, table, key)
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        read::scan(&self.begin_read()?, &self.path, table)
    }

    fn rows(&self, each: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        read::rows(&self.begin_read()?, &self.path, each)
    }

    fn row(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        read::row(&self.begin_read()?, &self.path, seq)
    }

    fn heads(&self) -> Result<Heads, LedgerError> {
        read::heads(&self.begin_read()?, &self.path)
    }

    fn committer(&self) -> Result<Box<dyn Committer>, LedgerError> {
        Ok(Box::new(commit::RedbCommitter(self.writable()?.clone())))
    }

    /// After an I/O error redb refuses every write until the file is opened again.
    fn failure_is_lasting(&self) -> bool {
        true
    }

    fn remove_prefix(&self, through: u64, sign: &mut SignTombstone<'_>) -> Result<(), LedgerError> {
        let path = &self.path;
        let tx = self
            .writable()?
            .begin_write()
            .map_err(|e| storage(path, e))?;
        let tomb = {
            let mut rows = tx.open_table(ROWS).map_err(|e| storage(path, e))?;
            let last = rows
                .get(through)
                .map_err(|e| storage(path, e))?
                .ok_or_else(|| storage(path, format!("row {through} is gone")))?
                .value()
                .to_vec();
            let tomb = sign(&last)?;
            let first = rows
                .first()
                .map_err(|e| storage(path, e))?
                .map_or(1, |(k, _)| k.value());
            for seq in first..=through {
                rows.remove(seq).map_err(|e| storage(path, e))?;
            }
            tomb
        };
        tx.open_table(META)
            .map_err(|e| storage(path, e))?
            .insert(meta::PRUNED, tomb.as_slice())
            .map_err(|e| storage(path, e))?;
        tx.commit().map_err(|e| storage(path, e))
    }

    fn copy_rows(&self, rows: Vec<(u64, Vec<u8>)>) -> Result<(), LedgerError> {
        let path = &self.path;
        let tx = self
            .writable()?
            .begin_write()
            .map_err(|e| storage(path, e))?;
        {
            let mut t = tx.open_table(ROWS).map_err(|e| storage(path, e))?;
            for (seq, bytes) in &rows {
                t.insert(*seq, bytes.as_slice())
                    .map_err(|e| storage(path, e))?;
            }
        }
        tx.commit().map_err(|e| storage(path, e))
    }

    /// The copied state with this file's own schema version, in one transaction.
    fn copy_state(&self, state: Vec<(Table, String, Vec<u8>)>) -> Result<(), LedgerError> {
        let path = &self.path;
        let mut tables: std::collections::BTreeMap<Table, Finals<'_>> = Default::default();
        tables
            .entry(Table::Meta)
            .or_default()
            .insert(meta::SCHEMA_VERSION.into(), Some(SCHEMA_VERSION.into()));
        for (table, key, value) in &state {
            tables
                .entry(*table)
                .or_default()
                .insert(key.as_str().into(), Some(value.as_slice().into()));
        }
        let tx = self
            .writable()?
            .begin_write()
            .map_err(|e| storage(path, e))?;
        for (table, finals) in &tables {
            commit::put(&tx, *table, finals).map_err(|e| storage(path, e))?;
        }
        tx.commit().map_err(|e| storage(path, e))
    }
}
