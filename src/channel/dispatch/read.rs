//! What a channel's follower reads: the ledger's rows as far as it answers (a row it did not
//! answer for is asked again, never passed over), and what a row does not say itself — the role
//! an approval's stage asks, a held call's roles — from what the follower read and the ledger's
//! state tables. Read-only: it never writes, posts or decides.

use std::collections::HashMap;

use serde_json::Value;

use crate::channel::event::{HeldNews, Lookup};
use crate::ledger::{Ledger, LedgerError, Record};

/// What rows do not say, from what this task read and the ledger's state tables.
pub(super) struct Looked<'a> {
    pub(super) ledger: &'a Ledger,
    pub(super) roles: &'a HashMap<(String, u32), String>,
    pub(super) review_role: Option<String>,
}

impl Lookup for Looked<'_> {
    /// From the envelope read, else the approval's stored state (its current stage's role:
    /// e.g. after a restart).
    fn approval_role(&self, approval: &str, stage: Option<u32>) -> Option<String> {
        if let Some(role) = stage.and_then(|s| self.roles.get(&(approval.to_string(), s))) {
            return Some(role.clone());
        }
        let bytes = self.ledger.approval(approval).ok()??;
        let state: Value = serde_json::from_slice(&bytes).ok()?;
        state["envelope"]["role"].as_str().map(str::to_string)
    }

    fn held(&self, call_id: &str) -> Option<HeldNews> {
        let bytes = self.ledger.held_state(call_id).ok()??;
        let state: Value = serde_json::from_slice(&bytes).ok()?;
        let text = |k: &str| state[k].as_str().unwrap_or("").to_string();
        let roles = (state["roles"].as_array().into_iter().flatten())
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        Some(HeldNews {
            tool: text("tool"),
            actor: text("actor"),
            roles,
        })
    }

    fn review_role(&self) -> Option<String> {
        self.review_role.clone()
    }
}

/// Rows read from the ledger: the readable ones, the last sequence number passed, and whether
/// the read stopped short (the ledger did not answer).
pub(super) struct Gathered {
    pub(super) records: Vec<Record>,
    pub(super) through: u64,
    /// Rows passed over for good, and why: not there (pruned), or not readable.
    pub(super) skipped: Vec<(u64, String)>,
    /// Why the read stopped short of its last row, if it did.
    pub(super) stopped: Option<String>,
}

impl Gathered {
    /// Nothing read from `from` on, because of `why`.
    pub(super) fn none(from: u64, why: String) -> Gathered {
        Gathered {
            records: Vec::new(),
            through: from.saturating_sub(1),
            skipped: Vec::new(),
            stopped: Some(why),
        }
    }
}

/// Rows `from..=to` through `fetch`, up to the first the ledger does not answer for (asked
/// again later, so nothing is passed over for a dropped connection); a row that is not there
/// (pruned) or cannot be decoded is passed over, since asking again cannot change it.
pub(super) fn gather(
    from: u64,
    to: u64,
    mut fetch: impl FnMut(u64) -> Result<Option<Result<Record, String>>, LedgerError>,
) -> Gathered {
    let mut g = Gathered {
        records: Vec::new(),
        through: from.saturating_sub(1),
        skipped: Vec::new(),
        stopped: None,
    };
    for seq in from..=to {
        match fetch(seq) {
            Ok(Some(Ok(r))) => g.records.push(r),
            Ok(Some(Err(why))) => g.skipped.push((seq, format!("cannot be read: {why}"))),
            Ok(None) => g.skipped.push((seq, "not in the ledger (pruned)".into())),
            Err(e) => {
                g.stopped = Some(e.to_string());
                return g;
            }
        }
        g.through = seq;
    }
    g
}

#[cfg(test)]
mod tests {
    use super::gather;
    use crate::ledger::{LedgerError, Record};

    fn row(seq: u64) -> Record {
        Record {
            seq,
            time: "2026-12-04T20:00:00Z".into(),
            kind: "envelope".into(),
            call_id: "c".into(),
            body: serde_json::json!({}),
            prev: "00".into(),
            hash: "ab".into(),
        }
    }

    #[test]
    fn a_row_the_ledger_could_not_be_asked_for_is_not_passed_over() {
        // row 2: the shared ledger's connection dropped; rows 1 and 3 read
        let g = gather(1, 3, |seq| match seq {
            2 => Err(LedgerError::Storage {
                path: "postgres".into(),
                message: "connection reset".into(),
            }),
            seq => Ok(Some(Ok(row(seq)))),
        });
        let seqs: Vec<u64> = g.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1], "row 3 must not go before row 2 is read");
        assert_eq!(
            g.through, 1,
            "the cursor must stay before row 2, which is asked for again"
        );
        assert!(g.stopped.is_some_and(|e| e.contains("connection reset")));
        // a row that is not there (pruned) or cannot be decoded is passed over: asking again
        // cannot change it
        let g = gather(1, 3, |seq| match seq {
            1 => Ok(None),
            2 => Ok(Some(Err("bad bytes".into()))),
            seq => Ok(Some(Ok(row(seq)))),
        });
        assert_eq!((g.records.len(), g.through, g.skipped.len()), (1, 3, 2));
        assert!(g.stopped.is_none());
    }
}
