//! `airlock ledger copy`: move a ledger between backends (redb file ↔ PostgreSQL), byte for byte.
//!
//! Rows are copied as stored (never re-hashed), then the state tables, then the head last: a
//! copy cut off midway leaves a target whose recorded head is not its last row, which refuses to
//! open and fails `verify`, never a ledger that looks whole. The target must be empty. It must
//! never write to the source.

use std::path::Path;

use redb::Database;

use super::postgres::Pg;
use super::store::{Store, Table};
use super::{LedgerError, LedgerReader, Location, META, ROWS, SIGNED, TOOLS, storage};

/// Rows per transaction.
const CHUNK: usize = 10_000;

/// What was copied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Copied {
    pub rows: u64,
    /// The head (`count:hash`) both ledgers now record.
    pub head: String,
}

/// Copy the ledger at `from` into the empty ledger at `to`.
pub fn copy(from: &Location, to: &Location) -> Result<Copied, LedgerError> {
    let source = LedgerReader::open_at(from)?;
    let head = source
        .store
        .meta("head")?
        .unwrap_or_else(|| format!("0:{}", hex::encode(super::chain::GENESIS)));
    let mut state = Vec::new();
    for table in Table::ALL {
        for (key, value) in source.store.scan(table)? {
            // the target's own format version stays its own
            if table == Table::Meta && key == "schema_version" {
                continue;
            }
            state.push((table, key, value));
        }
    }
    let mut target = Target::open(to)?;
    let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(CHUNK);
    let mut rows = 0u64;
    let mut failed = None;
    source.store.rows(&mut |seq, bytes| {
        chunk.push((seq, bytes.to_vec()));
        rows += 1;
        if chunk.len() == CHUNK {
            if let Err(e) = target.rows(std::mem::take(&mut chunk)) {
                failed = Some(e);
                return false;
            }
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    target.rows(chunk)?;
    target.finish(state)?;
    Ok(Copied { rows, head })
}

enum Target {
    Redb(Database, std::path::PathBuf),
    Postgres(std::sync::Arc<Pg>),
}

impl Target {
    fn open(to: &Location) -> Result<Target, LedgerError> {
        match to {
            Location::File(path) => {
                if path.exists() {
                    return Err(storage(path, "the target exists: copy into a new file"));
                }
                let db = Database::create(path).map_err(|e| storage(path, e))?;
                crate::private::file(path).map_err(|e| storage(path, e))?;
                Ok(Target::Redb(db, path.clone()))
            }
            Location::Postgres(target) => {
                let pg = Pg::open(&target.reader())?;
                let store = Store::Postgres(pg.clone());
                let mut any = false;
                store.rows(&mut |_, _| {
                    any = true;
                    false
                })?;
                if any || !store.scan(Table::Approvals)?.is_empty() {
                    return Err(storage(
                        pg.name(),
                        "the target database already holds a ledger: copy into an empty database",
                    ));
                }
                Ok(Target::Postgres(pg))
            }
        }
    }

    fn rows(&mut self, rows: Vec<(u64, Vec<u8>)>) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Target::Redb(db, path) => {
                let e = |x: &dyn std::fmt::Display| storage(path, x);
                let tx = db.begin_write().map_err(|x| e(&x))?;
                {
                    let mut t = tx.open_table(ROWS).map_err(|x| e(&x))?;
                    for (seq, bytes) in &rows {
                        t.insert(*seq, bytes.as_slice()).map_err(|x| e(&x))?;
                    }
                }
                tx.commit().map_err(|x| e(&x))
            }
            Target::Postgres(pg) => pg.copy_rows(rows),
        }
    }

    /// The state tables and the head, in one transaction.
    fn finish(self, state: Vec<(Table, String, Vec<u8>)>) -> Result<(), LedgerError> {
        match self {
            Target::Redb(db, path) => finish_redb(&db, &path, &state),
            Target::Postgres(pg) => pg.copy_state(state),
        }
    }
}

fn finish_redb(
    db: &Database,
    path: &Path,
    state: &[(Table, String, Vec<u8>)],
) -> Result<(), LedgerError> {
    let e = |x: &dyn std::fmt::Display| storage(path, x);
    let tx = db.begin_write().map_err(|x| e(&x))?;
    {
        let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
        meta.insert("schema_version", super::SCHEMA_VERSION)
            .map_err(|x| e(&x))?;
        drop(meta);
        for (table, key, value) in state {
            match table {
                Table::Tools => {
                    let hash = String::from_utf8_lossy(value);
                    tx.open_table(TOOLS)
                        .map_err(|x| e(&x))?
                        .insert(key.as_str(), hash.as_ref())
                        .map_err(|x| e(&x))?;
                }
                Table::Signed => {
                    tx.open_table(SIGNED)
                        .map_err(|x| e(&x))?
                        .insert(key.as_str(), ())
                        .map_err(|x| e(&x))?;
                }
                t => {
                    let def = t
                        .def()
                        .ok_or_else(|| storage(path, "a table without bytes"))?;
                    tx.open_table(def)
                        .map_err(|x| e(&x))?
                        .insert(key.as_str(), value.as_slice())
                        .map_err(|x| e(&x))?;
                }
            }
        }
    }
    tx.commit().map_err(|x| e(&x))
}
