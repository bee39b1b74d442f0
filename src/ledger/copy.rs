//! `airlock ledger copy`: move a ledger between backends (redb file ↔ PostgreSQL), byte for byte.
//!
//! Rows are copied as stored (never re-hashed), then the state tables, then the head last: a
//! copy cut off midway leaves a target whose recorded head is not its last row, which refuses to
//! open and fails `verify`, never a ledger that looks whole. The target must be empty. It must
//! never write to the source.

use super::backend::{Backend, Purpose};
use super::error::{LedgerError, storage};
use super::open::{self, Location};
use super::reader::LedgerReader;
use super::schema::{Table, meta};

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
        .get(Table::Meta, meta::HEAD)?
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_else(|| format!("0:{}", hex::encode(super::chain::GENESIS)));
    let mut state = Vec::new();
    for table in Table::ALL {
        for (key, value) in source.store.scan(table)? {
            // the target's own format version stays its own
            if table == Table::Meta && key == meta::SCHEMA_VERSION {
                continue;
            }
            state.push((table, key, value));
        }
    }
    let target = target(to)?;
    let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(CHUNK);
    let mut rows = 0u64;
    let mut failed = None;
    source.store.rows(&mut |seq, bytes| {
        chunk.push((seq, bytes.to_vec()));
        rows += 1;
        if chunk.len() == CHUNK {
            if let Err(e) = target.copy_rows(std::mem::take(&mut chunk)) {
                failed = Some(e);
                return false;
            }
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !chunk.is_empty() {
        target.copy_rows(chunk)?;
    }
    target.copy_state(state)?;
    Ok(Copied { rows, head })
}

/// The ledger at `to`, new and empty: a file that does not exist yet, or a database that holds
/// no rows and no approvals.
fn target(to: &Location) -> Result<std::sync::Arc<dyn Backend>, LedgerError> {
    let target = open::backend(to, Purpose::CopyInto)?;
    let mut any = false;
    target.rows(&mut |_, _| {
        any = true;
        false
    })?;
    if any || !target.scan(Table::Approvals)?.is_empty() {
        return Err(storage(
            target.name(),
            "the target already holds a ledger: copy into an empty one",
        ));
    }
    Ok(target)
}
