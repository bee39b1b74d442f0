//! Reads of the redb file, in one read transaction each: state tables, rows, the head.

use std::path::Path;

use redb::{ReadTransaction, ReadableTable};

use super::super::backend::Heads;
use super::super::error::{LedgerError, storage};
use super::super::schema::{ROWS, SIGNED, TOOLS, Table, meta};

/// A table that does not exist yet reads as empty.
fn missing<T>(path: &Path, e: redb::TableError, empty: T) -> Result<T, LedgerError> {
    match e {
        redb::TableError::TableDoesNotExist(_) => Ok(empty),
        e => Err(storage(path, e)),
    }
}

pub(super) fn get(
    tx: &ReadTransaction,
    path: &Path,
    table: Table,
    key: &str,
) -> Result<Option<Vec<u8>>, LedgerError> {
    match table.def() {
        Some(def) => match tx.open_table(def) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| storage(path, e))?
                .map(|v| v.value().to_vec())),
            Err(e) => missing(path, e, None),
        },
        None if table == Table::Tools => match tx.open_table(TOOLS) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| storage(path, e))?
                .map(|v| v.value().as_bytes().to_vec())),
            Err(e) => missing(path, e, None),
        },
        None => match tx.open_table(SIGNED) {
            Ok(t) => Ok(t
                .get(key)
                .map_err(|e| storage(path, e))?
                .map(|_| Vec::new())),
            Err(e) => missing(path, e, None),
        },
    }
}

pub(super) fn scan(
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
                Err(e) => missing(path, e, ())?,
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

pub(super) fn rows(
    tx: &ReadTransaction,
    path: &Path,
    each: &mut dyn FnMut(u64, &[u8]) -> bool,
) -> Result<(), LedgerError> {
    let table = match tx.open_table(ROWS) {
        Ok(t) => t,
        Err(e) => return missing(path, e, ()),
    };
    for item in table.iter().map_err(|e| storage(path, e))? {
        let (k, v) = item.map_err(|e| storage(path, e))?;
        if !each(k.value(), v.value()) {
            break;
        }
    }
    Ok(())
}

pub(super) fn row(
    tx: &ReadTransaction,
    path: &Path,
    seq: u64,
) -> Result<Option<Vec<u8>>, LedgerError> {
    let table = match tx.open_table(ROWS) {
        Ok(t) => t,
        Err(e) => return missing(path, e, None),
    };
    let got = table.get(seq).map_err(|e| storage(path, e))?;
    Ok(got.map(|g| g.value().to_vec()))
}

/// The recorded head, its signature and the last row, in one read transaction.
pub(super) fn heads(tx: &ReadTransaction, path: &Path) -> Result<Heads, LedgerError> {
    let text = |key: &str| -> Result<Option<String>, LedgerError> {
        Ok(get(tx, path, Table::Meta, key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    };
    let last = match tx.open_table(ROWS) {
        Ok(t) => t
            .last()
            .map_err(|e| storage(path, e))?
            .map(|(k, v)| (k.value(), v.value().to_vec())),
        Err(e) => missing(path, e, None)?,
    };
    Ok(Heads {
        head: text(meta::HEAD)?,
        sig: text(meta::HEAD_SIG)?,
        last,
    })
}
