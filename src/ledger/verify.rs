//! `verify`: recompute the chain, check signature rows, and hold the ledger against checkpoints.
//!
//! Reports the first bad sequence number and why: an unreadable, altered or re-linked row, a gap,
//! a truncation (against the recorded head or a checkpoint), a bad signature, a signed call's row
//! that no signature covers, or a rewrite (a checkpoint's row hash differs). A checkpoint whose
//! signature the trusted key rejects fails as that, and is never held to the ledger: it proves
//! no rollback or rewrite.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::chain::{Fault, GENESIS, Verifier};
use super::checkpoint::Saved;
use super::error::{LedgerError, storage};
use super::reader::LedgerReader;
use super::row::{self, Row};
use crate::signing::Public;

/// What to hold the ledger against.
#[derive(Debug, Default)]
pub struct VerifyOptions {
    /// The trusted public key; without it signatures are checked for shape only.
    pub public: Option<Public>,
    /// (name, checkpoint), e.g. the file each came from; either format.
    pub checkpoints: Vec<(String, Saved)>,
}

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Rows that verified, in order from 1 (the last verified sequence number).
    pub rows: u64,
    /// First and last sequence numbers present (the first is past any pruned rows).
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub head: String,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub signatures: SignatureReport,
    /// Rows 1..=N were pruned under retention (verification starts from the tombstone).
    pub pruned_through: Option<u64>,
    pub checkpoints: Vec<CheckpointReport>,
    /// The first bad sequence number and why, if any.
    pub first_bad: Option<BadRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureReport {
    /// `signature` rows seen.
    pub signature_rows: u64,
    /// Rows of signed calls, each covered by a later signature row.
    pub signed_rows: u64,
    /// The key signatures were verified with, or `None` (shape only: no public key given).
    pub verified_with: Option<String>,
    /// Whether the recorded head carries a valid signature by that key (`None`: not checked).
    pub head_signed: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointReport {
    pub name: String,
    pub rows: u64,
    /// When it was taken (empty for a C2SP note, which does not say).
    pub time: String,
    /// `tlog-checkpoint` (a C2SP signed note) or `airlock-v1`.
    pub format: String,
    pub signature_ok: bool,
    /// False when no key could check it (a note, without a trusted public key).
    pub signature_checked: bool,
    /// The ledger extends it: it has the row and the row has the checkpoint's hash.
    pub consistent: bool,
    /// False when it names a row pruned since (it can no longer be held to the ledger).
    pub checkable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    pub seq: u64,
    pub fault: Fault,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
            && self
                .checkpoints
                .iter()
                .all(|c| (c.signature_ok || !c.signature_checked) && (c.consistent || !c.checkable))
    }
}

fn bad(seq: u64, fault: Fault, detail: Option<String>) -> Option<BadRow> {
    Some(BadRow { seq, fault, detail })
}

impl LedgerReader {
    /// Recompute the whole chain and report the first bad row, if any.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        self.verify_with(&VerifyOptions::default())
    }

    pub fn verify_with(&self, opts: &VerifyOptions) -> Result<VerifyReport, LedgerError> {
        let path = self.path();
        // The head first, then the rows up to it: replicas may append meanwhile (PostgreSQL).
        let heads = self.store.heads()?;
        let (recorded_head, recorded_sig) = (heads.head, heads.sig);
        let through = recorded_head
            .as_deref()
            .and_then(|h| h.parse::<super::head::Head>().ok())
            .map(|h| h.seq);
        let tomb = super::prune::tombstone(self.store.as_ref())?;
        let mut v = match &tomb {
            Some(t) => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(&t.head, &mut h)
                    .map_err(|e| storage(&path, format!("pruned tombstone head: {e}")))?;
                Verifier::after(t.through, h)
            }
            None => Verifier::default(),
        };
        let mut report = VerifyReport {
            rows: 0,
            first_seq: None,
            last_seq: None,
            head: hex::encode(GENESIS),
            first_time: None,
            last_time: None,
            signatures: SignatureReport {
                signature_rows: 0,
                signed_rows: 0,
                verified_with: opts.public.map(|p| p.to_hex()),
                head_signed: None,
            },
            pruned_through: tomb.as_ref().map(|t| t.through),
            checkpoints: Vec::new(),
            first_bad: None,
        };
        // hashes the checkpoints name, recorded as the rows go by
        let mut wanted: BTreeMap<u64, Option<String>> = opts
            .checkpoints
            .iter()
            .map(|(_, c)| (c.rows(), None))
            .collect();
        wanted.insert(0, Some(hex::encode(GENESIS)));
        if let Some(t) = &tomb {
            wanted.insert(t.through, Some(t.head.clone()));
            if let Some(public) = &opts.public {
                if !t.checkpoint().signature_ok(Some(public)) {
                    report.first_bad = bad(
                        t.through + 1,
                        Fault::BadSignature,
                        Some(format!(
                            "the tombstone of rows 1..={} (pruned) is not signed by the trusted key",
                            t.through
                        )),
                    );
                }
            }
        }
        let mut signed_calls: HashSet<String> = HashSet::new();
        let mut pending: Vec<u64> = Vec::new();
        // the row before: (seq, call id, whether it is a proposal)
        let mut last: Option<(u64, String, bool)> = None;
        if report.first_bad.is_none() {
            self.store.rows(&mut |seq, bytes| {
                if through.is_some_and(|t| seq > t) {
                    return false;
                }
                let r = match v.check(seq, bytes) {
                    Ok(r) => r,
                    Err(fault) => {
                        report.first_bad = bad(v.rows() + 1, fault, None);
                        return false;
                    }
                };
                if report.first_time.is_none() {
                    report.first_time = Some(r.time.clone());
                    report.first_seq = Some(r.seq);
                }
                report.last_seq = Some(r.seq);
                if let Some(slot) = wanted.get_mut(&r.seq) {
                    *slot = Some(r.hash.clone());
                }
                let row = r.row();
                let signature = match &row {
                    Ok(Row::Signature(s)) => Some(Ok(s)),
                    Err(e) if e.is_signature() => Some(Err(e)),
                    _ => None,
                };
                if let Some(s) = signature {
                    report.signatures.signature_rows += 1;
                    let problem = match s {
                        Ok(s) => signature_problem(&r, s, opts.public.as_ref()),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(problem) = problem {
                        report.first_bad = bad(r.seq, Fault::BadSignature, Some(problem));
                        return false;
                    }
                    report.signatures.signed_rows += pending.len() as u64;
                    pending.clear();
                } else {
                    if matches!(&row, Ok(Row::Verdict(v)) if v.signed) {
                        signed_calls.insert(r.call_id.clone());
                        // its proposal came just before, in the same commit
                        if let Some((seq, call, proposal)) = &last {
                            if *call == r.call_id && *proposal {
                                pending.push(*seq);
                            }
                        }
                    }
                    if !r.call_id.is_empty() && signed_calls.contains(&r.call_id) {
                        pending.push(r.seq);
                    }
                }
                last = Some((
                    r.seq,
                    r.call_id.clone(),
                    matches!(row, Ok(Row::Proposal(_))),
                ));
                report.last_time = Some(r.time);
                true
            })?;
        }
        report.rows = v.rows();
        report.head = hex::encode(v.head());
        if report.first_bad.is_none() {
            if let Some(first) = pending.first() {
                report.first_bad = bad(
                    *first,
                    Fault::Unsigned,
                    Some(format!(
                        "{} row(s) of signed calls have no signature row after them",
                        pending.len()
                    )),
                );
            }
        }
        if report.first_bad.is_none() {
            report.first_bad = head_problem(recorded_head, &report);
        }
        if let (Some(public), true) = (&opts.public, report.rows > 0) {
            let signed = recorded_sig.is_some_and(|sig| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(&report.head, &mut h).is_ok()
                    && public.verify_head(report.rows, &h, &sig)
            });
            report.signatures.head_signed = Some(signed);
            if report.first_bad.is_none() && !signed {
                report.first_bad = bad(
                    report.rows,
                    Fault::BadSignature,
                    Some("the ledger head carries no valid signature by the trusted key: the file was rewritten or truncated, or written with another key".into()),
                );
            }
        }
        for (name, c) in &opts.checkpoints {
            let signature = c.signature_ok(opts.public.as_ref());
            let (rows, head, time) = (c.rows(), c.head(), c.time().to_string());
            let checkable = tomb.as_ref().is_none_or(|t| rows >= t.through);
            let consistent = match wanted.get(&rows) {
                Some(Some(hash)) => *hash == head,
                _ => false,
            };
            // a checkpoint the trusted key did not sign says nothing about this ledger: it is
            // reported as what it is (its signature), never as a rollback or rewrite
            if report.first_bad.is_none() && !consistent && checkable && signature != Some(false) {
                let when = if time.is_empty() {
                    String::new()
                } else {
                    format!(" ({time})")
                };
                report.first_bad = if rows > report.rows {
                    bad(
                        report.rows + 1,
                        Fault::Truncated,
                        Some(format!(
                            "checkpoint {name}{when} saw {rows} rows; the ledger has {}: it was rolled back to an older copy or cut short",
                            report.rows
                        )),
                    )
                } else {
                    bad(
                        rows,
                        Fault::Rewritten,
                        Some(format!(
                            "row {rows}'s hash differs from checkpoint {name}{when}: the ledger was rewritten at or before it"
                        )),
                    )
                };
            }
            report.checkpoints.push(CheckpointReport {
                name: name.clone(),
                rows,
                time,
                format: c.format().to_string(),
                signature_ok: signature == Some(true),
                signature_checked: signature.is_some(),
                consistent,
                checkable,
            });
        }
        Ok(report)
    }
}

/// The head recorded with the last commit must be the last row verified.
fn head_problem(recorded: Option<String>, report: &VerifyReport) -> Option<BadRow> {
    let ours = format!("{}:{}", report.rows, report.head);
    let recorded = match recorded {
        None if report.rows > 0 => Some("none".to_string()),
        other => other,
    };
    recorded.filter(|h| *h != ours).and_then(|head| {
        let fault = match head.parse::<super::head::Head>().map(|h| h.seq) {
            Ok(n) if n > report.rows => Fault::Truncated,
            _ => Fault::Altered,
        };
        bad(report.rows + 1, fault, None)
    })
}

/// Why a signature row does not hold, if it does not.
fn signature_problem(
    r: &super::Record,
    s: &row::Signature,
    public: Option<&Public>,
) -> Option<String> {
    if s.head_seq != r.seq - 1 || s.head != r.prev {
        return Some("it does not sign the row before it".into());
    }
    let public = public?;
    let mut h = [0u8; 32];
    if hex::decode_to_slice(&r.prev, &mut h).is_err()
        || !public.verify_rows(r.seq - 1, &h, &s.signature)
    {
        return Some(format!(
            "the signature does not verify with key {} (the row names key {})",
            public.to_hex(),
            s.key
        ));
    }
    None
}
