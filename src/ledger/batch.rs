//! What one commit writes, worked out the same way for every backend, with no I/O:
//! [`check_conditions`] refuses the changes whose conditions no longer hold (reading the stored
//! state through a lookup the backend answers inside its transaction), [`plan`] chains the
//! accepted rows onto the head (and signs), [`writes`] gives every state table's final values.
//! A backend reads what these ask for and writes what they return, in one durable transaction.
//!
//! It must never touch storage, and never depend on which backend asks.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::chain::{encode, entry, leaf, link};
use super::change::{Change, Must, NewRow};
use super::error::LedgerError;
use super::head::Head;
use super::items::ItemKind;
use super::row::{self, Row};
use super::schema::{Table, meta};
use crate::signing::Signer;

/// Whether a row is a verdict that asks for its call to be signed.
fn signs_call(row: &NewRow) -> bool {
    matches!(&row.row, Row::Verdict(v) if v.signed) && !row.call_id.is_empty()
}

/// Each change's result: its rows' sequence numbers, or why it was refused.
pub(crate) type Results = Vec<Result<Vec<u64>, LedgerError>>;

/// A state value as stored now (in the commit's transaction).
pub(crate) type Lookup<'a> = dyn FnMut(Table, &str) -> Result<Option<Vec<u8>>, String> + 'a;

/// Which changes of a batch may commit: a change whose item state is no longer what its caller
/// read (or whose new item exists already), or whose call is already marked as forwarded, is
/// refused whole. Later changes see the changes of earlier accepted ones.
pub(crate) fn check_conditions(
    batch: &[&Change],
    current: &mut Lookup<'_>,
) -> Result<Vec<Option<LedgerError>>, String> {
    use std::collections::HashMap;
    let mut seen: HashMap<(Table, String), Option<Vec<u8>>> = HashMap::new();
    let mut out = Vec::with_capacity(batch.len());
    for change in batch {
        let mut refusal = None;
        // the desk's items (approvals, held calls): one check, whatever their kind
        for (table, id, must) in change.conditions() {
            let key = (table, id.to_string());
            let now = match seen.get(&key) {
                Some(v) => v.clone(),
                None => current(table, id)?,
            };
            let holds = match must {
                Must::BeAbsent => now.is_none(),
                Must::Be(bytes) => now.as_deref() == Some(bytes),
            };
            if !holds {
                refusal = Some(LedgerError::Conflict(match table {
                    Table::Held => format!(
                        "held call {id} was released or rejected meanwhile; nothing was recorded"
                    ),
                    Table::CallKeys => "an identical call was recorded meanwhile; nothing was recorded: ask again to attach to it".to_string(),
                    _ => format!(
                        "approval {id} was changed meanwhile (decided or timed out elsewhere); nothing was recorded"
                    ),
                }));
            }
        }
        for (id, _) in &change.forwarded {
            let key = (Table::Forwarded, id.clone());
            let now = match seen.get(&key) {
                Some(v) => v.clone(),
                None => current(Table::Forwarded, id)?,
            };
            if now.is_some() {
                refusal = Some(LedgerError::Conflict(format!(
                    "call {id} is already being executed; it runs once"
                )));
            }
        }
        if refusal.is_none() {
            for i in &change.items {
                seen.insert((i.kind.table(), i.id.clone()), Some(i.state.clone()));
            }
            for (id, _) in &change.forwarded {
                seen.insert((Table::Forwarded, id.clone()), Some(Vec::new()));
            }
            for id in &change.settled {
                seen.insert((Table::Forwarded, id.clone()), None);
            }
        }
        out.push(refusal);
    }
    Ok(out)
}

/// The changes [`check_conditions`] let through, in order.
pub(crate) fn accepted<'a>(
    batch: &[&'a Change],
    refusals: &[Option<LedgerError>],
) -> Vec<&'a Change> {
    batch
        .iter()
        .zip(refusals)
        .filter(|(_, r)| r.is_none())
        .map(|(change, _)| *change)
        .collect()
}

/// The rows of one commit, chained onto `head`.
pub(crate) struct Planned {
    /// (seq, stored bytes), in order.
    pub rows: Vec<(u64, Vec<u8>)>,
    /// Each accepted change's sequence numbers.
    pub seqs: Vec<Vec<u64>>,
    pub head: Head,
    /// Calls this commit starts signing.
    pub newly_signed: Vec<String>,
}

/// Chain the accepted changes' rows onto `head`, and one signature row over the new head when
/// rows of signed calls (`signed`: already marked) are among them.
pub(crate) fn plan(
    head: Head,
    accepted: &[&Change],
    signed: &mut dyn FnMut(&str) -> Result<bool, String>,
    signer: Option<&Signer>,
) -> Result<Planned, String> {
    let newly_signed: Vec<String> = accepted
        .iter()
        .flat_map(|c| &c.rows)
        .filter(|r| signs_call(r))
        .map(|r| r.call_id.clone())
        .collect();
    let mut head = head;
    let mut rows = Vec::new();
    let mut put = |head: &mut Head,
                   kind: &str,
                   call_id: &str,
                   time: &DateTime<Utc>,
                   body: &Value|
     -> Result<u64, String> {
        let seq = head.seq + 1;
        let time = crate::instant::rfc3339(time);
        let entry = entry(seq, &time, kind, call_id, body);
        let hash = link(&head.hash, &leaf(&entry));
        rows.push((seq, encode(&head.hash, &hash, &entry)));
        *head = Head { seq, hash };
        Ok(seq)
    };
    let mut to_sign = 0u64;
    let mut seqs = Vec::with_capacity(accepted.len());
    for change in accepted {
        let mut mine = Vec::with_capacity(change.rows.len());
        for row in &change.rows {
            if !row.call_id.is_empty()
                && (newly_signed.contains(&row.call_id) || signed(&row.call_id)?)
            {
                to_sign += 1;
            }
            mine.push(put(
                &mut head,
                row.row.kind(),
                &row.call_id,
                &row.time,
                &row.row.body(),
            )?);
        }
        seqs.push(mine);
    }
    // One signature per commit covers every row up to it (the chain links them).
    if let (Some(signer), true) = (signer, to_sign > 0) {
        let row = Row::Signature(row::Signature {
            head_seq: head.seq,
            head: hex::encode(head.hash),
            signed_rows: to_sign,
            key: signer.public_hex(),
            signature: signer.sign_rows(head.seq, &head.hash),
        });
        put(
            &mut head,
            row.kind(),
            "",
            &crate::instant::now(),
            &row.body(),
        )?;
    }
    Ok(Planned {
        rows,
        seqs,
        head,
        newly_signed,
    })
}

/// Each change's result: the accepted ones' sequence numbers in order, the refused ones' errors.
pub(crate) fn results(refusals: Vec<Option<LedgerError>>, seqs: Vec<Vec<u64>>) -> Results {
    let mut seqs = seqs.into_iter();
    refusals
        .into_iter()
        .map(|r| match r {
            Some(e) => Err(e),
            None => Ok(seqs.next().unwrap_or_default()),
        })
        .collect()
}

/// One state table's new values after a commit: each key's last value in the order the batch
/// set them (`None`: removed).
pub(crate) type Finals<'a> = BTreeMap<Cow<'a, str>, Option<Cow<'a, [u8]>>>;

/// Every state table a commit changes, with its final values; `meta` holds the new head (and
/// its signature), so writing these beside [`Planned::rows`] is the whole commit.
pub(crate) type Writes<'a> = BTreeMap<Table, Finals<'a>>;

/// The final value of every state key the accepted changes set, in their order.
pub(crate) fn writes<'a>(
    accepted: &[&'a Change],
    planned: &'a Planned,
    signer: Option<&Signer>,
) -> Result<Writes<'a>, String> {
    let mut w = Writes::new();
    let mut set = |t: Table, k: Cow<'a, str>, v: Option<Cow<'a, [u8]>>| {
        w.entry(t).or_default().insert(k, v);
    };
    let json = |v: &Value| serde_json::to_vec(v).map_err(|e| e.to_string());
    for c in accepted {
        for i in &c.items {
            set(
                i.kind.table(),
                i.id.as_str().into(),
                Some(i.state.as_slice().into()),
            );
            if i.kind == ItemKind::Approval {
                let open = i.open.as_deref().map(Cow::from);
                set(Table::OpenApprovals, i.id.as_str().into(), open);
            }
        }
        for k in &c.forget_keys {
            set(Table::CallKeys, k.as_str().into(), None);
        }
        for (id, route) in &c.forwarded {
            set(
                Table::Forwarded,
                id.as_str().into(),
                Some(json(route)?.into()),
            );
        }
        for id in &c.settled {
            set(Table::Forwarded, id.as_str().into(), None);
        }
        for (k, hash) in &c.tools {
            set(
                Table::Tools,
                k.as_str().into(),
                Some(hash.as_bytes().into()),
            );
        }
        for (k, v) in &c.drift {
            let v = match v {
                Some(v) => Some(json(v)?.into()),
                None => None,
            };
            set(Table::Drift, k.as_str().into(), v);
        }
        for (channel, seq) in &c.channel_cursors {
            set(
                Table::Meta,
                meta::channel_cursor(channel).into(),
                Some(seq.to_string().into_bytes().into()),
            );
        }
        if c.approvals_indexed {
            set(
                Table::Meta,
                meta::APPROVALS_INDEXED.into(),
                Some(b"1".as_slice().into()),
            );
        }
    }
    for id in &planned.newly_signed {
        set(Table::Signed, id.as_str().into(), Some(Cow::Borrowed(&[])));
    }
    let h = planned.head;
    set(
        Table::Meta,
        meta::HEAD.into(),
        Some(h.to_string().into_bytes().into()),
    );
    if let Some(signer) = signer {
        let sig = signer.sign_head(h.seq, &h.hash);
        set(
            Table::Meta,
            meta::HEAD_SIG.into(),
            Some(sig.into_bytes().into()),
        );
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use serde_json::json;

    use super::{accepted, check_conditions, plan, writes};
    use crate::ledger::chain::GENESIS;
    use crate::ledger::row::sample;
    use crate::ledger::schema::{Table, meta};
    use crate::ledger::{Change, Head, ItemKind, ItemState, LedgerError, NewRow};
    use crate::signing::Signer;

    const GENESIS_HEAD: Head = Head {
        seq: 0,
        hash: GENESIS,
    };

    fn value<'a>(w: &'a super::Writes<'_>, t: Table, k: &str) -> Option<Option<&'a [u8]>> {
        w.get(&t)?.get(k).map(|v| v.as_deref())
    }

    #[test]
    fn each_key_ends_with_the_last_value_the_batch_set_in_order() {
        let key = |v: &str| ItemState::of(ItemKind::CallKey, "k", v.as_bytes().to_vec(), None);
        let marked = Change {
            forwarded: vec![("c1".into(), json!({"server": "s", "tool": "t"}))],
            items: vec![key("first")],
            drift: vec![("count/x".into(), Some(json!(1)))],
            ..Change::default()
        };
        let settled = Change {
            settled: vec!["c1".into()],
            forget_keys: vec!["k".into()],
            drift: vec![("count/x".into(), None)],
            ..Change::default()
        };
        let again = Change {
            items: vec![key("again")],
            tools: vec![("s/t".into(), "ab12".into())],
            ..Change::default()
        };
        let batch = [&marked, &settled, &again];
        let planned = plan(GENESIS_HEAD, &batch, &mut |_| Ok(false), None).unwrap();
        let w = writes(&batch, &planned, None).unwrap();
        assert_eq!(
            value(&w, Table::Forwarded, "c1"),
            Some(None),
            "marked, then settled"
        );
        assert_eq!(value(&w, Table::Drift, "count/x"), Some(None));
        assert_eq!(
            value(&w, Table::CallKeys, "k"),
            Some(Some(b"again".as_slice())),
            "forgotten, then set again by a later change"
        );
        assert_eq!(
            value(&w, Table::Tools, "s/t"),
            Some(Some(b"ab12".as_slice()))
        );
        assert_eq!(
            value(&w, Table::Meta, meta::HEAD),
            Some(Some(GENESIS_HEAD.to_string().as_bytes())),
            "no rows: the head stays, and is written"
        );
        assert_eq!(
            value(&w, Table::Meta, meta::HEAD_SIG),
            None,
            "no key, no signature"
        );
    }

    #[test]
    fn an_approval_writes_its_state_and_index_entry_and_leaves_the_index_when_it_ends() {
        let open = ItemState::of(
            ItemKind::Approval,
            "a1",
            b"s1".to_vec(),
            Some(b"e1".to_vec()),
        );
        let ended = ItemState::of(ItemKind::Approval, "a2", b"s2".to_vec(), None);
        let change = Change {
            items: vec![open, ended],
            approvals_indexed: true,
            ..Change::default()
        };
        let batch = [&change];
        let planned = plan(GENESIS_HEAD, &batch, &mut |_| Ok(false), None).unwrap();
        let w = writes(&batch, &planned, None).unwrap();
        assert_eq!(
            value(&w, Table::Approvals, "a1"),
            Some(Some(b"s1".as_slice()))
        );
        assert_eq!(
            value(&w, Table::OpenApprovals, "a1"),
            Some(Some(b"e1".as_slice()))
        );
        assert_eq!(
            value(&w, Table::Approvals, "a2"),
            Some(Some(b"s2".as_slice()))
        );
        assert_eq!(value(&w, Table::OpenApprovals, "a2"), Some(None));
        assert_eq!(
            value(&w, Table::Meta, meta::APPROVALS_INDEXED),
            Some(Some(b"1".as_slice()))
        );
    }

    #[test]
    fn a_signed_call_gets_a_signature_row_its_mark_and_the_head_signed_in_meta() {
        let signer = Signer::from_seed([3; 32]);
        let change = Change {
            rows: vec![
                NewRow::now("c1", sample::proposal("t")),
                NewRow::now("c1", sample::verdict(Some("money"), true)),
            ],
            ..Change::default()
        };
        let batch = [&change];
        let planned = plan(GENESIS_HEAD, &batch, &mut |_| Ok(false), Some(&signer)).unwrap();
        assert_eq!(planned.seqs, vec![vec![1, 2]]);
        assert_eq!(planned.rows.len(), 3, "the two rows and the signature row");
        assert_eq!(planned.head.seq, 3);
        assert_eq!(planned.newly_signed, vec!["c1".to_string()]);
        let w = writes(&batch, &planned, Some(&signer)).unwrap();
        assert_eq!(value(&w, Table::Signed, "c1"), Some(Some([].as_slice())));
        let head = planned.head.to_string();
        assert_eq!(
            value(&w, Table::Meta, meta::HEAD),
            Some(Some(head.as_bytes()))
        );
        let sig = w[&Table::Meta][meta::HEAD_SIG].clone().map(Cow::into_owned);
        let sig = String::from_utf8(sig.unwrap()).unwrap();
        let h = planned.head;
        assert!(signer.public().verify_head(h.seq, &h.hash, &sig));
    }

    #[test]
    fn a_change_on_stale_state_is_refused_whole_and_later_changes_see_the_accepted_ones() {
        let stored: HashMap<(Table, String), Vec<u8>> =
            HashMap::from([((Table::Held, "h1".to_string()), b"waiting".to_vec())]);
        let held = |state: &str, prior: &str| {
            ItemState::of(ItemKind::Held, "h1", state.as_bytes().to_vec(), None)
                .replacing(prior.as_bytes().to_vec())
        };
        let release = Change {
            items: vec![held("released", "waiting")],
            ..Change::default()
        };
        let reject = Change {
            items: vec![held("rejected", "waiting")],
            ..Change::default()
        };
        let run = Change {
            items: vec![held("ran", "released")],
            forwarded: vec![("h1".into(), json!({}))],
            ..Change::default()
        };
        let twice = Change {
            forwarded: vec![("h1".into(), json!({}))],
            ..Change::default()
        };
        let batch = [&release, &reject, &run, &twice];
        let refusals = check_conditions(&batch, &mut |t, k| {
            Ok(stored.get(&(t, k.to_string())).cloned())
        })
        .unwrap();
        let refused: Vec<bool> = refusals.iter().map(Option::is_some).collect();
        assert_eq!(refused, vec![false, true, false, true]);
        assert!(
            matches!(&refusals[1], Some(LedgerError::Conflict(m)) if m.contains("held call h1"))
        );
        assert!(matches!(&refusals[3], Some(LedgerError::Conflict(m)) if m.contains("runs once")));
        assert_eq!(accepted(&batch, &refusals).len(), 2);
    }
}
