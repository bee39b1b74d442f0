//! Ledger tests on a real redb file: durability across reopen, group commit, and every fault
//! `verify` must name.

use std::path::Path;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableTable, StorageBackend};
use serde_json::{Value, json};

use super::chain::{leaf, link};
use super::row::{OutcomeStatus, Row, sample};
use super::schema::ROWS;
use super::{BadRow, Fault, Ledger, LedgerError, LedgerReader, NewRow, VerifyReport, chain};

mod approvals;
mod prune;
mod trust;

fn row(call: &str, row: Row) -> NewRow {
    NewRow::at(call, crate::instant::utc(2026, 11, 24, 12, 0, 0), row)
}

fn proposal() -> Row {
    sample::proposal("t")
}

fn verdict() -> Row {
    sample::verdict(None, false)
}

fn outcome() -> Row {
    sample::outcome(OutcomeStatus::Ok)
}

async fn filled(path: &Path, n: usize) {
    let l = Ledger::open(path).unwrap();
    for i in 0..n {
        l.append(vec![row(&format!("c{i}"), proposal())])
            .await
            .unwrap();
    }
}

/// Overwrite one stored row's bytes through redb, as an attacker with file access could.
struct Tamper<'a> {
    prev: &'a mut [u8; 32],
    hash: &'a mut [u8; 32],
    body: &'a mut Value,
    seq: u64,
}

fn tamper(path: &Path, seq: u64, f: impl FnOnce(&mut Tamper<'_>)) {
    let db = Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(ROWS).unwrap();
        let stored = t.get(seq).unwrap().unwrap().value().to_vec();
        let parts = chain::split(&stored).unwrap();
        let (mut prev, mut hash, entry) = (parts.prev, parts.hash, parts.entry.to_vec());
        let mut body: Value = serde_json::from_slice::<Value>(&entry).unwrap()["body"].clone();
        f(&mut Tamper {
            prev: &mut prev,
            hash: &mut hash,
            body: &mut body,
            seq,
        });
        let entry = chain::entry(
            seq,
            "2026-11-24T12:00:00Z",
            "proposal",
            &format!("c{}", seq - 1),
            &body,
        );
        t.insert(seq, chain::encode(&prev, &hash, &entry).as_slice())
            .unwrap();
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
                row(&format!("c{i}"), proposal()),
                row(&format!("c{i}"), verdict()),
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
    // every change was counted once, in commits that each carried at least one
    let (commits, changes, rows) = l.batching();
    assert_eq!((changes, rows), (64, 128));
    assert!((1..=64).contains(&commits), "{commits} commits");
    drop(l); // joins the writer, which releases the file
    let report = verify(&path);
    assert!(report.ok() && report.rows == 128, "{report:?}");
}

#[tokio::test]
async fn altered_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 4).await;
    tamper(&path, 2, |t| *t.body = json!({"n": "forged"}));
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 2,
            fault: Fault::Altered,
            detail: None,
        })
    );
}

#[tokio::test]
async fn rehashed_row_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 4).await;
    tamper(&path, 2, |t| {
        *t.body = json!({"n": "forged"});
        let entry = chain::entry(t.seq, "2026-11-24T12:00:00Z", "proposal", "c1", t.body);
        *t.hash = link(t.prev, &leaf(&entry));
    });
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 3,
            fault: Fault::BrokenLink,
            detail: None,
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
            fault: Fault::Truncated,
            detail: None,
        })
    );
    remove(&path, 2);
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 2,
            fault: Fault::Gap,
            detail: None,
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
            fault: Fault::Unreadable,
            detail: None,
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

/// An in-memory redb backend whose writes and syncs fail while `fail` is set: a disk that fills up
/// or goes away underneath a running gate.
#[derive(Debug)]
pub(crate) struct FailSwitch {
    inner: InMemoryBackend,
    pub fail: Arc<AtomicBool>,
}

impl FailSwitch {
    pub(crate) fn new() -> (FailSwitch, Arc<AtomicBool>) {
        let fail = Arc::new(AtomicBool::new(false));
        (
            FailSwitch {
                inner: InMemoryBackend::new(),
                fail: fail.clone(),
            },
            fail,
        )
    }

    fn check(&self) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(std::io::Error::other("injected: no space left on device"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FailSwitch {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

#[tokio::test]
async fn a_failed_commit_is_reported_to_every_waiting_caller() {
    let (backend, fail) = FailSwitch::new();
    let l = Ledger::open_on(backend).unwrap();
    assert_eq!(l.append(vec![row("a", proposal())]).await.unwrap(), [1]);
    fail.store(true, Ordering::SeqCst);
    let err = l.append(vec![row("b", proposal())]).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
}

#[tokio::test]
async fn after_an_io_error_the_ledger_stays_closed_until_reopened() {
    // redb refuses further writes after an I/O error; the gate therefore keeps refusing calls
    // (fail closed) until the operator restarts it on healthy storage.
    let (backend, fail) = FailSwitch::new();
    let l = Ledger::open_on(backend).unwrap();
    l.append(vec![row("a", proposal())]).await.unwrap();
    fail.store(true, Ordering::SeqCst);
    assert!(l.append(vec![row("b", proposal())]).await.is_err());
    fail.store(false, Ordering::SeqCst);
    assert!(l.append(vec![row("c", proposal())]).await.is_err());
    // and it says so to whoever asks whether it is ready
    let why = l.health().unwrap_err();
    assert!(why.contains("last ledger commit failed"), "{why}");
}

#[tokio::test]
async fn a_working_ledger_is_healthy() {
    let (backend, _fail) = FailSwitch::new();
    let l = Ledger::open_on(backend).unwrap();
    l.append(vec![row("a", proposal())]).await.unwrap();
    assert_eq!(l.health(), Ok(()));
}

#[tokio::test]
async fn the_gate_refuses_to_append_to_a_truncated_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    filled(&path, 3).await;
    remove(&path, 3);
    let err = Ledger::open(&path).err().expect("refused");
    assert!(matches!(err, LedgerError::HeadMismatch { .. }), "{err}");
    assert!(err.to_string().contains("recorded head is 3:"), "{err}");
    // and verify still names the truncation
    assert_eq!(
        verify(&path).first_bad,
        Some(BadRow {
            seq: 3,
            fault: Fault::Truncated,
            detail: None,
        })
    );
}

#[tokio::test]
async fn forwarded_marks_stay_until_an_outcome_settles_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = Ledger::open(&path).unwrap();
    let mark = |id: &str| (id.to_string(), json!({"server": "shop", "tool": "echo"}));
    l.commit(super::Change {
        rows: vec![row("a", verdict()), row("b", verdict())],
        forwarded: vec![mark("a"), mark("b")],
        ..super::Change::default()
    })
    .await
    .unwrap();
    // `a` settles in a commit of its own; `c` is marked and settled within one batch
    let settle_a = l
        .submit(super::Change {
            rows: vec![row("a", outcome())],
            settled: vec!["a".into()],
            ..super::Change::default()
        })
        .unwrap();
    let mark_c = l
        .submit(super::Change {
            rows: vec![row("c", verdict())],
            forwarded: vec![mark("c")],
            ..super::Change::default()
        })
        .unwrap();
    let settle_c = l
        .submit(super::Change {
            rows: vec![row("c", outcome())],
            settled: vec!["c".into()],
            ..super::Change::default()
        })
        .unwrap();
    for p in [settle_a, mark_c, settle_c] {
        p.await.unwrap();
    }
    l.flush().await.unwrap();
    drop(l);
    let l = Ledger::open(&path).unwrap();
    let left: Vec<String> = l
        .unsettled()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, vec!["b"], "only the call without an outcome is left");
    drop(l);
    assert_eq!(verify(&path).rows, 5, "a flush writes no row");
}

#[tokio::test]
async fn a_lazy_change_commits_alone_or_with_the_next_waited_for_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = Ledger::open(&path).unwrap();
    // nobody else writes: it still commits, on its own
    let alone = l
        .submit_lazy(super::Change {
            rows: vec![row("a", outcome())],
            ..super::Change::default()
        })
        .unwrap();
    assert_eq!(alone.await.unwrap(), vec![1]);
    // queued before a waited-for change, it is ordered before it
    let lazy = l
        .submit_lazy(super::Change {
            rows: vec![row("b", outcome())],
            ..super::Change::default()
        })
        .unwrap();
    let waited = l.append(vec![row("c", proposal())]).await.unwrap();
    assert_eq!(lazy.await.unwrap(), vec![2]);
    assert_eq!(waited, vec![3]);
    drop(l);
    assert!(verify(&path).first_bad.is_none());
}

#[tokio::test]
async fn a_change_nobody_awaits_is_still_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = Ledger::open(&path).unwrap();
    // its task would have committed it while awaiting; dropped, the writer thread does
    drop(l.submit(super::Change {
        rows: vec![row("a", proposal())],
        ..super::Change::default()
    }));
    drop(l);
    assert_eq!(verify(&path).rows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_committing_for_each_other_keep_every_task_s_order_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let l = std::sync::Arc::new(Ledger::open(&path).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let l = l.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..40 {
                    let id = format!("t{t}-{i}");
                    seqs.extend(l.append(vec![row(&id, proposal())]).await.unwrap());
                    // an outcome nobody waits for, as the gate queues them
                    let lazy = l.submit_lazy(super::Change {
                        rows: vec![row(&id, outcome())],
                        ..super::Change::default()
                    });
                    drop(lazy.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a task's rows in its order"
        );
        all.extend(seqs);
    }
    l.flush().await.unwrap();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        8 * 40,
        "every awaited row has a sequence number of its own"
    );
    drop(std::sync::Arc::into_inner(l).unwrap());
    let report = verify(&path);
    assert_eq!(
        report.rows,
        8 * 40 * 2,
        "no row lost, the lazy ones included"
    );
    assert!(report.first_bad.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_awaiting_its_change_commits_it_when_nobody_else_commits() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.redb")).unwrap();
    assert_eq!(l.append(vec![row("a", proposal())]).await.unwrap(), vec![1]);
    assert_eq!(l.batching().0, 1);
    assert_eq!(l.inline_commits(), 1, "made on the awaiting task's thread");
}
