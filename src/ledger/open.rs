//! Opening a ledger: where it lives ([`Location`]), the one place that picks its backend by
//! that, and the checks before anything is appended: the recorded head must be the last row,
//! and signed by this gate's key. Everything else holds a `dyn Backend` and never asks which.

use std::path::PathBuf;
use std::sync::Arc;

use super::backend::{Backend, Purpose};
use super::error::LedgerError;
use super::head::Head;
use super::postgres::{self, PgTarget};
use super::redb;
use crate::signing::Signer;

/// Where a ledger lives: the embedded redb file (`[gate] ledger`), or a PostgreSQL database
/// shared by several replicas (`[store] url`).
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    File(PathBuf),
    Postgres(PgTarget),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(t) => f.write_str(&t.url),
        }
    }
}

impl Location {
    /// The same place, for a serving gate: a shared ledger gets `name()` as this replica's
    /// name unless one is configured (a file has no replicas).
    pub fn serving_as(mut self, name: impl FnOnce() -> String) -> Location {
        if let Location::Postgres(target) = &mut self {
            if target.replica.is_none() {
                target.replica = Some(name());
            }
        }
        self
    }
}

impl Location {
    /// The same place for a process that is no serving replica (a maintenance command's own
    /// row): a shared ledger's configured replica name is left out.
    pub fn reading(self) -> Location {
        match self {
            Location::Postgres(target) => Location::Postgres(target.reader()),
            file => file,
        }
    }
}

/// The backend of the ledger at `at`, opened for `purpose`.
pub(crate) fn backend(at: &Location, purpose: Purpose) -> Result<Arc<dyn Backend>, LedgerError> {
    Ok(match at {
        Location::File(path) => Arc::new(redb::open(path, purpose)?),
        Location::Postgres(target) => postgres::open(target, purpose)?,
    })
}

/// The head to append after: the recorded head must be the last row (both read in one
/// snapshot, so another replica's commit in between is not taken for a rewrite), and with a
/// key, signed by it.
pub(crate) fn checked_head(
    backend: &dyn Backend,
    signer: Option<&Signer>,
) -> Result<Head, LedgerError> {
    let path = backend.name();
    let heads = backend.heads()?;
    let head = Head::of_last(path, heads.last.as_ref().map(|(s, b)| (*s, b.as_slice())))?;
    head.is_recorded(path, heads.head.as_deref())?;
    if let Some(signer) = signer {
        check_head_signature(backend, head, heads.sig, signer)?;
    }
    Ok(head)
}

/// Before signing anything more, the head must carry this key's signature: otherwise the file
/// was rewritten (or written with another key) and signing on would bless the rewrite. A ledger
/// from before head signatures (none recorded) is accepted once, and signed from now on.
fn check_head_signature(
    backend: &dyn Backend,
    head: Head,
    sig: Option<String>,
    signer: &Signer,
) -> Result<(), LedgerError> {
    let path = backend.name();
    match sig {
        Some(sig) if !signer.public().verify_head(head.seq, &head.hash, &sig) => {
            Err(LedgerError::HeadUnsigned {
                path: path.to_path_buf(),
                seq: head.seq,
            })
        }
        None if head.seq > 0 => {
            tracing::warn!(path = %path.display(), "the ledger head carries no signature (written before head signatures, or without a key); signing from now on");
            Ok(())
        }
        _ => Ok(()),
    }
}
