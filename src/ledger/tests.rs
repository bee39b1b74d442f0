//! Ledger tests on a real redb file: durability across reopen, group commit, and every fault
//! `verify` must name.

use std::path::Path;

use redb::{Database, ReadableTable};
use serde_json::json;

use super::*;

fn row(call: &str, kind: &'static str) -> NewRow {
    NewRow {
        kind,
        call_id: call.into(),
        time: time::macros::datetime!(2026-11-24 12:00 UTC),
        body: json!({"n": call}),
    }
}

async fn filled(path: &Path, n: usize) {
    let l = Ledger::open(path).unwrap();
    for i in 0..n {
        l.append(vec![row(&format!("c{i}"), "proposal")])
            .await
            .unwrap();
    }
}

/// Overwrite one stored row's bytes through redb, as an attacker with file access could.
fn tamper(path: &Path, seq: u64, f: impl FnOnce(&mut Record)) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(ROWS).unwrap();
        let mut r: Record = serde_json::from_slice(t.get(seq).unwrap().unwrap().value()).unwrap();
        f(&mut r);
        let bytes = serde_json::to_vec(&r).unwrap();
        t.insert(seq, bytes.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

fn remove(path: &Path, seq: u64) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(ROWS).unwrap().remove(seq).unwrap();
    tx.commit().unwrap();
}

fn verify(path: &Path) -> VerifyReport {
    LedgerReader::open(path).unwrap().verify().unwrap()
}

#[tokio::test]
async fn rows_chain_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 3).await;
    let first = verify(&path);
    assert!(first.ok(), "{first:?}");
    assert_eq!(first.rows, 3);
    filled(&path, 2).await;
    let second = verify(&path);
    assert!(second.ok(), "{second:?}");
    assert_eq!(second.rows, 5);
    let mut seqs = Vec::new();
    LedgerReader::open(&path)
        .unwrap()
        .records(|r| seqs.push(r.unwrap().seq))
        .unwrap();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = std::sync::Arc::new(Ledger::open(&path).unwrap());
    let mut tasks = Vec::new();
    for i in 0..64 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            l.append(vec![
                row(&format!("c{i}"), "proposal"),
                row(&format!("c{i}"), "verdict"),
            ])
            .await
            .unwrap()
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert_eq!(seqs[1], seqs[0] + 1, "one request's rows stay adjacent");
        all.extend(seqs);
    }
    all.sort();
    assert_eq!(all, (1..=128).collect::<Vec<u64>>());
    drop(l); // joins the writer, which releases the file
    let report = verify(&path);
    assert!(report.ok() && report.rows == 128, "{report:?}");
}

#[tokio::test]
async fn altered_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 4).await;
    tamper(&path, 2, |r| r.body = json!({"n": "forged"}));
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 2,
            fault: Fault::Altered
        })
    );
}

#[tokio::test]
async fn rehashed_row_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 4).await;
    tamper(&path, 2, |r| {
        r.body = json!({"n": "forged"});
        let prev: [u8; 32] = hex::decode(&r.prev).unwrap().try_into().unwrap();
        r.hash = hex::encode(link(
            &prev,
            &leaf(r.seq, &r.time, &r.kind, &r.call_id, &r.body),
        ));
    });
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 3,
            fault: Fault::BrokenLink
        })
    );
}

#[tokio::test]
async fn removed_rows_are_a_gap_or_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 4).await;
    remove(&path, 4);
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 4,
            fault: Fault::Truncated
        })
    );
    remove(&path, 2);
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 2,
            fault: Fault::Gap
        })
    );
}

#[tokio::test]
async fn garbage_bytes_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 2).await;
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(ROWS)
            .unwrap()
            .insert(1, b"not json".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 1,
            fault: Fault::Unreadable
        })
    );
}

#[test]
fn missing_ledger_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = LedgerReader::open(&dir.path().join("none.redb"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("no ledger at"), "{err}");
}
