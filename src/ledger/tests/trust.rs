//! Signatures and checkpoints on a real ledger file: signed calls are covered, a wrong key or a
//! missing signature is named, checkpoints catch truncation and a consistent whole-file rewrite,
//! and random corruption never verifies.

use std::path::Path;

use proptest::prelude::*;
use redb::{Database, ReadableTable};

use super::super::checkpoint::Checkpoint;
use super::super::row::{OutcomeStatus, sample};
use super::super::schema::ROWS;
use super::super::{Fault, Ledger, LedgerReader, NewRow, VerifyOptions, VerifyReport};
use crate::signing::Signer;

fn key(n: u8) -> Signer {
    Signer::from_seed([n; 32])
}

fn rows(call: &str, signed: bool) -> Vec<NewRow> {
    vec![
        NewRow::now(call, sample::proposal("refund_order")),
        NewRow::now(call, sample::verdict(Some("financial"), signed)),
    ]
}

/// A ledger with: an unsigned call, a signed call, and a later row of the signed call.
async fn ledger(path: &Path, signer: Option<Signer>) {
    let l = Ledger::open_signed(path, signer).unwrap();
    l.append(rows("read", false)).await.unwrap();
    l.append(rows("refund", true)).await.unwrap();
    l.append(vec![NewRow::now(
        "refund",
        sample::outcome(OutcomeStatus::Ok),
    )])
    .await
    .unwrap();
}

fn verify(path: &Path, signer: Option<&Signer>, checkpoints: Vec<Checkpoint>) -> VerifyReport {
    LedgerReader::open(path)
        .unwrap()
        .verify_with(&VerifyOptions {
            public: signer.map(Signer::public),
            checkpoints: checkpoints
                .into_iter()
                .enumerate()
                .map(|(i, c)| (format!("cp{i}"), c.into()))
                .collect(),
        })
        .unwrap()
}

fn kinds(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    LedgerReader::open(path)
        .unwrap()
        .records(|r| out.push(r.unwrap().kind))
        .unwrap();
    out
}

#[tokio::test]
async fn every_row_of_a_signed_call_is_covered_by_a_signature_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.redb");
    ledger(&p, Some(key(1))).await;
    assert_eq!(
        kinds(&p),
        [
            "proposal",
            "verdict",
            "proposal",
            "verdict",
            "signature",
            "outcome",
            "signature"
        ],
        "unsigned calls get no signature row; each commit with signed rows ends with one"
    );
    let r = verify(&p, Some(&key(1)), vec![]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        (r.signatures.signature_rows, r.signatures.signed_rows),
        (2, 3)
    );

    let wrong = verify(&p, Some(&key(2)), vec![]);
    let bad = wrong.first_bad.unwrap();
    assert_eq!(
        (bad.seq, bad.fault),
        (5, Fault::BadSignature),
        "named at the first signature row"
    );
}

#[tokio::test]
async fn a_signed_call_written_without_a_key_is_reported_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.redb");
    ledger(&p, None).await;
    let r = verify(&p, Some(&key(1)), vec![]);
    let bad = r.first_bad.unwrap();
    assert_eq!(
        (bad.seq, bad.fault),
        (3, Fault::Unsigned),
        "the signed call's proposal"
    );
}

fn cut_to(path: &Path, keep: u64) {
    // remove rows past `keep` and record the shorter head, as a careful attacker would
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    let head = {
        let mut t = tx.open_table(ROWS).unwrap();
        let last = t.last().unwrap().unwrap().0.value();
        for seq in keep + 1..=last {
            t.remove(seq).unwrap();
        }
        let bytes = t.get(keep).unwrap().unwrap().value().to_vec();
        hex::encode(super::super::chain::split(&bytes).unwrap().hash)
    };
    tx.open_table(super::super::schema::META)
        .unwrap()
        .insert("head", format!("{keep}:{head}").as_bytes())
        .unwrap();
    tx.commit().unwrap();
}

#[tokio::test]
async fn checkpoints_catch_a_truncation_and_a_consistent_rewrite_with_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.redb");
    ledger(&p, Some(key(1))).await;
    let taken = {
        let l = Ledger::open_signed(&p, Some(key(1))).unwrap();
        super::super::checkpoint::sign_now(&l, &key(1)).unwrap()
    };
    assert_eq!(taken.rows, 7);
    // the ledger grows after the checkpoint: still consistent
    {
        let l = Ledger::open_signed(&p, Some(key(1))).unwrap();
        l.append(rows("later", false)).await.unwrap();
    }
    let r = verify(&p, Some(&key(1)), vec![taken.clone()]);
    assert!(r.ok(), "{r:?}");

    // truncated below the checkpoint, with the head fixed up so the file alone looks fine
    cut_to(&p, 2);
    assert!(
        verify(&p, None, vec![]).ok(),
        "without a key the file alone looks fine"
    );
    let r = verify(&p, Some(&key(1)), vec![]);
    let bad = r.first_bad.unwrap();
    assert_eq!(
        (bad.seq, bad.fault),
        (2, Fault::BadSignature),
        "with the key, its head is not signed"
    );
    assert_eq!(r.signatures.head_signed, Some(false));
    assert!(
        matches!(
            Ledger::open_signed(&p, Some(key(1))),
            Err(super::super::LedgerError::HeadUnsigned { .. })
        ),
        "and the gate refuses to sign on after it"
    );
    let r = verify(&p, None, vec![taken.clone()]);
    let bad = r.first_bad.unwrap();
    assert_eq!(
        (bad.seq, bad.fault),
        (3, Fault::Truncated),
        "{:?}",
        bad.detail
    );

    // a whole new chain, consistent in itself, signed with the attacker's key
    let q = dir.path().join("rewritten.redb");
    {
        let l = Ledger::open_signed(&q, Some(key(9))).unwrap();
        l.append(rows("read", false)).await.unwrap();
        l.append(rows("refund", true)).await.unwrap();
        l.append(vec![NewRow::now(
            "refund",
            sample::outcome(OutcomeStatus::Failed),
        )])
        .await
        .unwrap();
    }
    assert!(
        verify(&q, Some(&key(9)), vec![]).ok(),
        "consistent with its own key"
    );
    let r = verify(&q, Some(&key(9)), vec![taken.clone()]);
    assert!(!r.ok());
    assert!(
        !r.checkpoints[0].signature_ok && r.checkpoints[0].signature_checked,
        "the checkpoint was not signed by the key given"
    );
    assert_eq!(
        r.first_bad, None,
        "a checkpoint the key did not sign proves no rewrite: it fails as unsigned"
    );
    // the v1 file names its key: checked against that, it catches the rewrite
    let bad = verify(&q, None, vec![taken.clone()]).first_bad.unwrap();
    assert_eq!(
        (bad.seq, bad.fault),
        (7, Fault::Rewritten),
        "{:?}",
        bad.detail
    );
    let r = verify(&q, Some(&key(1)), vec![taken]);
    assert_eq!(
        r.first_bad.unwrap().fault,
        Fault::BadSignature,
        "and the trusted key rejects its signatures"
    );
}

#[tokio::test]
async fn reordered_rows_are_named_at_the_first_moved_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.redb");
    ledger(&p, Some(key(1))).await;
    let db = Database::create(&p).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(ROWS).unwrap();
        let two = t.get(2).unwrap().unwrap().value().to_vec();
        let three = t.get(3).unwrap().unwrap().value().to_vec();
        t.insert(2, three.as_slice()).unwrap();
        t.insert(3, two.as_slice()).unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    let bad = verify(&p, Some(&key(1)), vec![]).first_bad.unwrap();
    assert_eq!(bad.seq, 2);
    assert!(
        matches!(bad.fault, Fault::BrokenLink | Fault::Gap),
        "{:?}",
        bad.fault
    );
}

fn corrupt(path: &Path, seq: u64, at: usize, xor: u8) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(ROWS).unwrap();
        let mut bytes = t.get(seq).unwrap().unwrap().value().to_vec();
        let i = at % bytes.len();
        bytes[i] ^= xor;
        t.insert(seq, bytes.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    /// Flip any bits of any byte of any row: `verify` never calls the ledger valid, and names a
    /// row at or before the one corrupted.
    #[test]
    fn random_corruption_is_never_reported_valid(seq in 1u64..=7, at in 0usize..4096, xor in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.redb");
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
            .block_on(ledger(&p, Some(key(1))));
        corrupt(&p, seq, at, xor);
        let r = verify(&p, Some(&key(1)), vec![]);
        prop_assert!(!r.ok());
        let bad = r.first_bad.unwrap();
        prop_assert!(bad.seq <= seq + 1, "corrupted {} but named {}", seq, bad.seq);
    }
}
