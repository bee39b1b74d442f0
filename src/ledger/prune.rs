//! Retention: remove the oldest rows once every one of them has outlived its class's retention,
//! without breaking verification.
//!
//! Only a prefix of the chain is ever removed (rows 1..=N), and only when each row in it has
//! expired. What was removed is replaced by a signed tombstone in the `meta` table — a
//! checkpoint of row N (count and hash), which `verify` starts from — and a `pruned` row is
//! appended so the chain itself records the prune. It must never remove a row under retention.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{Backend, Purpose};
use super::checkpoint::Checkpoint;
use super::error::{LedgerError, storage};
use super::open::{self, Location};
use super::row::{self, Row};
use super::schema::{Table, meta};
use super::{Ledger, LedgerReader, NewRow};
use crate::signing::Signer;

/// What a prune would remove.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Rows 1..=through (after any earlier prune) have expired; 0: nothing to remove.
    pub through: u64,
    pub rows: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// The first row kept, and until when its retention holds it.
    pub first_kept: Option<(u64, String)>,
}

/// The tombstone of a prune, in `meta`: a signed checkpoint of the last removed row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub through: u64,
    pub head: String,
    pub time: String,
    pub key: String,
    pub signature: String,
}

impl Tombstone {
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            rows: self.through,
            head: self.head.clone(),
            time: self.time.clone(),
            key: self.key.clone(),
            signature: self.signature.clone(),
        }
    }
}

/// The tombstone of the last prune, if any.
pub(super) fn tombstone(store: &dyn Backend) -> Result<Option<Tombstone>, LedgerError> {
    match store.get(Table::Meta, meta::PRUNED)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| storage(store.name(), format!("pruned tombstone: {e}"))),
    }
}

/// Work out what has expired: `retention(class)` for a call's class (`None` for rows that
/// belong to no call, or calls of no class).
pub fn plan(
    at: &Location,
    retention: &dyn Fn(Option<&str>) -> Duration,
    now: DateTime<Utc>,
) -> Result<Plan, LedgerError> {
    let reader = LedgerReader::open_at(at)?;
    let mut class_of: HashMap<String, String> = HashMap::new();
    reader.records(|r| {
        if let Ok(r) = r {
            if let Ok(Row::Verdict(v)) = r.row() {
                if let Some(c) = v.class {
                    class_of.insert(r.call_id.clone(), c);
                }
            }
        }
    })?;
    let mut plan = Plan {
        through: 0,
        rows: 0,
        oldest: None,
        newest: None,
        first_kept: None,
    };
    let mut done = false;
    reader.records(|r| {
        let Ok(r) = r else {
            done = true;
            return;
        };
        if done {
            return;
        }
        let keep = retention(class_of.get(&r.call_id).map(String::as_str));
        // a retention past the calendar's end keeps the row for good
        let until = crate::instant::parse_rfc3339(&r.time).map(|t| {
            TimeDelta::from_std(keep)
                .ok()
                .and_then(|keep| t.checked_add_signed(keep))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        });
        match until {
            Ok(until) if until <= now => {
                plan.through = r.seq;
                plan.rows += 1;
                plan.oldest.get_or_insert(r.time.clone());
                plan.newest = Some(r.time);
            }
            other => {
                done = true;
                plan.first_kept = Some((
                    r.seq,
                    other
                        .ok()
                        .map(|u| crate::instant::rfc3339(&u))
                        .unwrap_or_else(|| "unreadable time: kept".into()),
                ));
            }
        }
    })?;
    Ok(plan)
}

/// Remove rows 1..=`plan.through`, leave the signed tombstone, and record the prune in the chain.
pub async fn apply(at: &Location, signer: &Signer, plan: &Plan) -> Result<(), LedgerError> {
    if plan.through == 0 {
        return Ok(());
    }
    let now = crate::instant::rfc3339(&crate::instant::now());
    let store = open::backend(at, Purpose::Maintain)?;
    let name = store.name().to_path_buf();
    let mut tomb = None;
    store.remove_prefix(plan.through, &mut |last| {
        let head = hex::encode(
            super::chain::split(last)
                .map_err(|f| storage(&name, f))?
                .hash,
        );
        let cp = Checkpoint::sign(signer, plan.through, &head, &now);
        let t = Tombstone {
            through: cp.rows,
            head: cp.head,
            time: cp.time,
            key: cp.key,
            signature: cp.signature,
        };
        let bytes = serde_json::to_vec(&t).map_err(|e| storage(&name, e))?;
        tomb = Some(t);
        Ok(bytes)
    })?;
    drop(store);
    let tomb = tomb.ok_or_else(|| storage(&name, "the prune signed no tombstone"))?;
    // the prune's own row, appended as a reader would (never under a replica's name)
    let at = at.clone().reading();
    let ledger = Ledger::open_at(&at, Some(signer.clone()))?;
    ledger
        .append(vec![NewRow::now(
            "",
            Row::Pruned(row::Pruned {
                through: tomb.through,
                head: tomb.head,
                rows_removed: plan.rows,
                oldest: plan.oldest.clone(),
                newest: plan.newest.clone(),
                tombstone_signature: tomb.signature,
            }),
        )])
        .await?;
    Ok(())
}
