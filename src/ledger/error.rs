//! The ledger's one error type, for every backend.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {message}")]
    Storage { path: PathBuf, message: String },
    #[error("ledger {0} is open in another process (a running `airlock serve`?); stop it or wait")]
    InUse(PathBuf),
    #[error("no ledger at {0}")]
    Missing(PathBuf),
    #[error("ledger {path} has schema version {found}, this airlock knows {known}")]
    Schema {
        path: PathBuf,
        found: String,
        known: String,
    },
    #[error(
        "ledger {path} was changed outside Airlock: its recorded head is {recorded} but its last row is {actual}; refusing to append (run `airlock ledger verify`)"
    )]
    HeadMismatch {
        path: PathBuf,
        recorded: String,
        actual: String,
    },
    #[error(
        "ledger {path}: its head (row {seq}) is not signed by this gate's signing key: the file was rewritten, or written with another key; refusing to append (run `airlock ledger verify --public-key`)"
    )]
    HeadUnsigned { path: PathBuf, seq: u64 },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    #[error("ledger writer has stopped; no further rows can be written")]
    WriterGone,
    /// A conditional change lost a race (another replica got there first); nothing was written.
    #[error("{0}")]
    Conflict(String),
}

/// A storage failure, named by the ledger it happened to.
pub(crate) fn storage(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Storage {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
