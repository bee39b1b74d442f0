//! Where the ledger's bytes live, behind the same reads: the redb file, or a PostgreSQL
//! database shared by several replicas ([`super::postgres`]).
//!
//! Both hold the same tables with the same bytes: chain rows keyed by sequence number, and state
//! tables keyed by text. Everything above this module reads through [`Store`] and never learns
//! which one it has. It must never write: writes are the writer's (one per backend).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
};

use super::postgres::Pg;
use super::{
    APPROVALS, CALL_KEYS, DRIFT, HELD, LedgerError, META, ROWS, SIGNED, TOOLS,
    approvals::OPEN_APPROVALS, forwarded::FORWARDED, storage,
};

/// The ledger's tables besides the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Meta,
    Approvals,
    OpenApprovals,
    Tools,
    Held,
    Drift,
    Signed,
    Forwarded,
    CallKeys,
}

impl Table {
    /// Its redb table, for the tables of bytes (`Tools` and `Signed` are typed otherwise).
    pub(crate) fn def(self) -> Option<TableDefinition<'static, &'static str, &'static [u8]>> {
        Some(match self {
            Table::Meta => META,
            Table::Approvals => APPROVALS,
            Table::OpenApprovals => OPEN_APPROVALS,
            Table::Held => HELD,
            Table::Drift => DRIFT,
            Table::Forwarded => FORWARDED,
            Table::CallKeys => CALL_KEYS,
            Table::Tools | Table::Signed => return None,
        })
    }

    /// Its PostgreSQL (table, key column, value column); `Signed` has no value (empty bytes).
    pub(crate) fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Table::Meta => ("airlock_meta", "key", "value"),
            Table::Approvals => ("airlock_approvals", "id", "state"),
            Table::OpenApprovals => ("airlock_open_approvals", "id", "entry"),
            Table::Tools => ("airlock_tools", "key", "convert_to(hash, 'UTF8')"),
            Table::Held => ("airlock_held", "id", "state"),
            Table::Drift => ("airlock_drift", "key", "value"),
            Table::Signed => ("airlock_signed_calls", "call_id", "''::bytea"),
            Table::Forwarded => ("airlock_forwarded", "call_id", "route"),
            Table::CallKeys => ("airlock_call_keys", "key", "entry"),
        }
    }

    pub(crate) const ALL: [Table; 9] = [
        Table::Meta,
        Table::Approvals,
        Table::OpenApprovals,
        Table::Tools,
        Table::Held,
        Table::Drift,
        Table::Signed,
        Table::Forwarded,
        Table::CallKeys,
    ];
}

/// A redb database opened for writing (a running gate) or read-only (an auditor's command).
pub(crate) enum Redb {
    Writable(Arc<Database>),
    ReadOnly(ReadOnlyDatabase),
}

/// One ledger's storage, for reading.
pub(crate) enum Store {
    Redb { db: Redb, path: PathBuf },
    Postgres(Arc<Pg>),
}

impl Store {
    /// What error messages call this ledger: the file, or the database URL without secrets.
    pub(crate) fn name(&self) -> &Path {
        match self {
            Store::Redb { path, .. } => path,
            Store::Postgres(pg) => pg.name(),
        }
    }

    /// One value of a table.
    pub(crate) fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        match self {
            Store::Postgres(pg) => pg.get(table, key),
            Store::Redb { db, path } => redb_get(&db.begin_read(path)?, path, table, key),
        }
    }

    /// Every (key, value) of a table, in key order; an absent table is empty.
    pub(crate) fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        match self {
            Store::Postgres(pg) => pg.scan(table),
            Store::Redb { db, path } => redb_scan(&db.begin_read(path)?, path, table),
        }
    }

    /// Every row's stored bytes in sequence order, until `each` returns false.
    pub(crate) fn rows(&self, each: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        match self {
            Store::Postgres(pg) => pg.rows(each),
            Store::Redb { db, path } => redb_rows(&db.begin_read(path)?, path, each),
        }
    }

    /// One row's stored bytes, if the ledger has it.
    pub(crate) fn row(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        match self {
            Store::Postgres(pg) => pg.row(seq),
            Store::Redb { db, path } => {
                let tx = db.begin_read(path)?;
                let table = match tx.open_table(ROWS) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(e) => return Err(storage(path, e)),
                };
                let got = table.get(seq).map_err(|e| storage(path, e))?;
                Ok(got.map(|g| g.value().to_vec()))
            }
        }
    }

    /// The recorded head and its signature (and the last row), read together.
    pub(crate) fn heads(&self) -> Result<super::open::Heads, LedgerError> {
        match self {
            Store::Postgres(pg) => pg.heads(),
            // a read-only file has no writer beside it; a writable one is read by its own gate
            Store::Redb { .. } => Ok(super::open::Heads {
                head: self.meta("head")?,
                sig: self.meta("head_sig")?,
                last: None,
            }),
        }
    }

    /// A meta value as text.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .get(Table::Meta, key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

impl Redb {
    fn begin_read(&self, path: &Path) -> Result<ReadTransaction, LedgerError> {
        match self {
            Redb::Writable(d) => d.begin_read(),
            Redb::ReadOnly(d) => d.begin_read(),
        }
        .map_err(|e| storage(path, e))
    }
}

fn redb_get(
    tx: &ReadTransaction,
    path: &Path,
    table: Table,
    key: &str,
) -> Result<Option<Vec<u8>>, LedgerError> {
    let missing = |e: redb::TableError| match e {
        redb::TableError::TableDoesNotExist(_) => Ok(None),
        e => Err(storage(path, e)),
    };
    match table.def() {
        Some(def) => match tx.open_table(def) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| storage(path, e))?
                .map(|v| v.value().to_vec())),
            Err(e) => missing(e),
        },
        None if table == Table::Tools => match tx.open_table(TOOLS) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| storage(path, e))?
                .map(|v| v.value().as_bytes().to_vec())),
            Err(e) => missing(e),
        },
        None => match tx.open_table(SIGNED) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| storage(path, e))?
                .map(|_| Vec::new())),
            Err(e) => missing(e),
        },
    }
}

fn redb_scan(
    tx: &ReadTransaction,
    path: &Path,
    table: Table,
) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
    let mut out = Vec::new();
    macro_rules! each {
        ($def:expr, $conv:expr) => {
            match tx.open_table($def) {
                Ok(t) => {
                    for item in t.iter().map_err(|e| storage(path, e))? {
                        let (k, v) = item.map_err(|e| storage(path, e))?;
                        out.push((k.value().to_string(), $conv(v.value())));
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(storage(path, e)),
            }
        };
    }
    match table.def() {
        Some(def) => each!(def, |v: &[u8]| v.to_vec()),
        None if table == Table::Tools => each!(TOOLS, |v: &str| v.as_bytes().to_vec()),
        None => each!(SIGNED, |_: ()| Vec::new()),
    }
    Ok(out)
}

fn redb_rows(
    tx: &ReadTransaction,
    path: &Path,
    each: &mut dyn FnMut(u64, &[u8]) -> bool,
) -> Result<(), LedgerError> {
    let table = match tx.open_table(ROWS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(storage(path, e)),
    };
    for item in table.iter().map_err(|e| storage(path, e))? {
        let (k, v) = item.map_err(|e| storage(path, e))?;
        if !each(k.value(), v.value()) {
            break;
        }
    }
    Ok(())
}
