//! Opening a ledger: the schema version, and the checks before anything is appended: the
//! recorded head must be the last row, and signed by this gate's key.

use std::path::Path;

use redb::{Database, ReadableTable};

use super::chain::{self, GENESIS};
use super::store::Store;
use super::{Head, LedgerError, META, ROWS, SCHEMA_VERSION, approvals, storage};
use crate::signing::Signer;

pub(super) fn init(db: &Database, path: &Path) -> Result<Head, LedgerError> {
    let tx = db.begin_write().map_err(|e| storage(path, e))?;
    let head = {
        let mut meta = tx.open_table(META).map_err(|e| storage(path, e))?;
        let rows = tx.open_table(ROWS).map_err(|e| storage(path, e))?;
        let version = meta
            .get("schema_version")
            .map_err(|e| storage(path, e))?
            .map(|v| v.value().to_vec());
        match version {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
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
        let head = match rows.last().map_err(|e| storage(path, e))? {
            None => Head {
                seq: 0,
                hash: GENESIS,
            },
            Some((k, v)) => {
                let hash = chain::split(v.value())
                    .map_err(|f| storage(path, format!("last row {}: {f}", k.value())))?
                    .hash;
                Head {
                    seq: k.value(),
                    hash,
                }
            }
        };
        let recorded = meta
            .get("head")
            .map_err(|e| storage(path, e))?
            .map(|g| String::from_utf8_lossy(g.value()).into_owned());
        recorded_is(path, recorded, head)?;
        head
    };
    approvals::mark_if_fresh(&tx).map_err(|e| storage(path, e))?;
    tx.commit().map_err(|e| storage(path, e))?;
    Ok(head)
}

/// The head of a PostgreSQL ledger, checked like redb's at open: the recorded head must be
/// the last row, or rows were removed (or rewritten) outside Airlock. Both come from one
/// snapshot ([`Heads`]), so a commit by another replica in between is not taken for a rewrite.
pub(super) fn store_head(store: &Store, heads: &Heads) -> Result<Head, LedgerError> {
    let path = store.name();
    let last = heads.last.clone();
    let head = match last {
        None => Head {
            seq: 0,
            hash: GENESIS,
        },
        Some((seq, bytes)) => Head {
            seq,
            hash: chain::split(&bytes)
                .map_err(|f| storage(path, format!("last row {seq}: {f}")))?
                .hash,
        },
    };
    recorded_is(path, heads.head.clone(), head)?;
    Ok(head)
}

/// The head recorded by the last commit must be the last row: otherwise rows were removed (or
/// the ledger rewritten) since, and appending would bury the evidence. Refuse.
fn recorded_is(path: &Path, recorded: Option<String>, head: Head) -> Result<(), LedgerError> {
    let actual = head.to_string();
    match recorded {
        Some(r) if r != actual => Err(LedgerError::HeadMismatch {
            path: path.to_path_buf(),
            recorded: r,
            actual,
        }),
        None if head.seq > 0 => Err(LedgerError::HeadMismatch {
            path: path.to_path_buf(),
            recorded: "none".into(),
            actual,
        }),
        _ => Ok(()),
    }
}

/// Before signing anything more, the head must carry this key's signature: otherwise the file
/// was rewritten (or written with another key) and signing on would bless the rewrite. A ledger
/// from before head signatures (none recorded) is accepted once, and signed from now on.
pub(super) fn check_head_signature(
    store: &Store,
    head: Head,
    sig: Option<String>,
    signer: &Signer,
) -> Result<(), LedgerError> {
    let path = store.name();
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

/// The recorded head, its signature and the last row, read together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heads {
    pub head: Option<String>,
    pub sig: Option<String>,
    pub last: Option<(u64, Vec<u8>)>,
}
