//! The check `serve` makes before it appends a row: the ledger must extend the newest checkpoint
//! in its directory — have that many rows, and at that row the hash the checkpoint signed — and
//! every older one there too. It reads one row per checkpoint (at most [`super::dir::KEEP`]),
//! never the whole chain (`ledger verify` does that). A file there that is not a checkpoint
//! signed by the gate's key proves nothing: it is skipped with a warning, never a refusal.

use std::path::{Path, PathBuf};

use super::super::chain::{leaf, link, split};
use super::super::{Ledger, LedgerError, prune};
use super::{Saved, dir};
use crate::signing::Public;

/// Why `serve` refuses to start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the ledger {ledger} has {has} rows, but checkpoint {file} saw {rows}: it was replaced by an older copy of itself (or cut short). Refusing to start. Restore the newest copy of the ledger (the one that made this checkpoint) and start again. If you restored an older copy on purpose and accept losing rows {from} to {rows}, move the checkpoint files out of {dir} (keep them: they are the evidence), then start again"
    )]
    Behind {
        ledger: String,
        has: u64,
        rows: u64,
        from: u64,
        file: String,
        dir: String,
    },
    #[error(
        "row {rows} of the ledger {ledger} is not the row checkpoint {file} signed: the ledger was rewritten at or before row {rows}. Refusing to start. Run `airlock ledger verify --public-key KEY` to find the first changed row, and restore the ledger from a copy that extends the checkpoint"
    )]
    Rewritten {
        ledger: String,
        rows: u64,
        file: String,
    },
    #[error("cannot read the checkpoint directory {dir}: {why}")]
    Io { dir: String, why: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The newest checkpoint the ledger was held to: (file, rows).
pub type Held = Option<(PathBuf, u64)>;

/// Hold the ledger to every checkpoint in `dir` signed by `public`, the newest named first. A
/// file there that is not one proves nothing: it is skipped with a warning naming it (see
/// [`dir::sort`]). `Ok(None)`: no checkpoint yet.
pub fn ledger_extends(ledger: &Ledger, dir: &Path, public: &Public) -> Result<Held, Refusal> {
    let shown = dir.display().to_string();
    let sorted = dir::sort(dir, Some(public)).map_err(|e| Refusal::Io {
        dir: shown.clone(),
        why: e.to_string(),
    })?;
    for skipped in &sorted.skipped {
        tracing::warn!(file = %skipped.file(), "{skipped}");
    }
    let mut checked: Vec<(PathBuf, Saved)> = sorted.checkpoints;
    let Some(newest) = checked.iter().map(|(_, s)| s.rows()).max() else {
        return Ok(None);
    };
    let (has, _) = ledger.head()?;
    let pruned = prune::tombstone(ledger.store.as_ref())?;
    let ledger_name = ledger.path().display().to_string();
    // the newest first: a shorter ledger is named by the checkpoint that saw the most
    checked.sort_by_key(|(_, s)| std::cmp::Reverse(s.rows()));
    for (path, saved) in &checked {
        let file = path.display().to_string();
        let rows = saved.rows();
        if rows > has {
            return Err(Refusal::Behind {
                ledger: ledger_name,
                has,
                rows,
                from: has + 1,
                file,
                dir: shown,
            });
        }
        // every checkpoint, not just the newest: a history rewritten and grown past the newest
        // one differs at an older one's row
        match hash_at(ledger, pruned.as_ref(), rows)? {
            Some(hash) if hash != saved.head() => {
                return Err(Refusal::Rewritten {
                    ledger: ledger_name,
                    rows,
                    file,
                });
            }
            _ => {} // the same row, or pruned since (nothing left to hold it to)
        }
    }
    Ok(checked.into_iter().next().map(|(p, _)| (p, newest)))
}

/// The hash of row `n` in hex: a pruned prefix's tombstone, or the stored row's (which must be
/// the hash of its bytes). `None` if row `n` was pruned.
fn hash_at(
    ledger: &Ledger,
    pruned: Option<&prune::Tombstone>,
    n: u64,
) -> Result<Option<String>, LedgerError> {
    if let Some(t) = pruned {
        if n == t.through {
            return Ok(Some(t.head.clone()));
        }
        if n < t.through {
            return Ok(None);
        }
    }
    if n == 0 {
        return Ok(Some(hex::encode(super::super::chain::GENESIS)));
    }
    let Some(bytes) = ledger.store.row(n)? else {
        return Ok(Some(String::new()));
    };
    Ok(Some(match split(&bytes) {
        Ok(s) if link(&s.prev, &leaf(s.entry)) == s.hash => hex::encode(s.hash),
        // a row whose bytes do not give its hash is not the row that was signed
        _ => String::new(),
    }))
}
