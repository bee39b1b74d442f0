//! The commit lock's rules with a committer that stands in for the disk (a sleep for the sync,
//! a panic on demand): who commits on which runtime, a panic in a commit, a `Pending` dropped
//! before its first poll. The ledger's own tests (`ledger::tests`) run the real redb file.

use std::future::IntoFuture as _;

use super::{
    Arc, AtomicBool, Change, Committer, Duration, Head, LedgerError, Ordering, PathBuf, Request,
    Shared, Signer, Writer, mpsc, oneshot,
};
use crate::ledger::batch::Results;
use crate::ledger::row::sample;
use crate::ledger::{Batching, NewRow, Pending};

/// A committer that takes `sync` a commit and panics while `boom` is set.
struct Disk {
    boom: Arc<AtomicBool>,
    sync: Duration,
}

impl Committer for Disk {
    fn commit(
        &mut self,
        head: Head,
        _: Option<&Signer>,
        batch: &[&Change],
    ) -> Result<(Head, Results), String> {
        assert!(!self.boom.load(Ordering::SeqCst), "the disk exploded");
        std::thread::sleep(self.sync);
        let mut seq = head.seq;
        let mut next = || {
            seq += 1;
            seq
        };
        let results = batch
            .iter()
            .map(|c| Ok(c.rows.iter().map(|_| next()).collect()))
            .collect();
        Ok((
            Head {
                seq,
                hash: head.hash,
            },
            results,
        ))
    }

    fn commits_anywhere(&self) -> bool {
        true
    }
}

struct Started {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
    batching: Arc<Batching>,
}

fn start(boom: Arc<AtomicBool>, sync: Duration) -> Arc<Started> {
    let (tx, rx) = mpsc::channel();
    let batching = Arc::new(Batching::default());
    let shared = Arc::new(Shared::new(Writer {
        committer: Box::new(Disk { boom, sync }),
        path: PathBuf::from("disk"),
        head: Head {
            seq: 0,
            hash: [0; 32],
        },
        signer: None,
        batching: batching.clone(),
        queue: rx,
    }));
    let runs = shared.clone();
    std::thread::spawn(move || runs.run());
    Arc::new(Started {
        shared,
        tx,
        batching,
    })
}

/// What `Ledger::queue` does, with one row.
fn submit(s: &Started, lazy: bool) -> Pending {
    let (reply, answer) = oneshot::channel();
    s.shared.count(lazy);
    let change = Change {
        rows: vec![NewRow::now("c", sample::proposal("t"))],
        ..Change::default()
    };
    let request = Request {
        change,
        lazy,
        reply,
    };
    s.tx.send(request).expect("the queue is open");
    let leads = s.shared.queued(lazy);
    Pending {
        answer: Some(answer),
        lead: leads.then(|| s.shared.clone()),
    }
}

fn counts(s: &Started) -> (u64, u64) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    (load(&s.batching.commits), load(&s.batching.inline))
}

/// Wait (at most 10 s) until `commits` commits are counted.
async fn until_committed(s: &Started, commits: u64) {
    for _ in 0..1000 {
        if counts(s).0 >= commits {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never committed: {:?}", counts(s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_commit_fails_its_callers_and_the_next_commit_goes_on() {
    let boom = Arc::new(AtomicBool::new(false));
    let s = start(boom.clone(), Duration::ZERO);
    assert_eq!(submit(&s, false).await.unwrap(), vec![1]);
    boom.store(true, Ordering::SeqCst);
    // on the awaiting task's thread, and on the writer thread (a change nobody awaits)
    for lazy in [false, true] {
        let failed = submit(&s, lazy).await;
        assert!(
            matches!(&failed, Err(LedgerError::Storage { message, .. }) if message.contains("the commit panicked: the disk exploded")),
            "{failed:?}"
        );
    }
    boom.store(false, Ordering::SeqCst);
    // the head did not move, and the lock was not poisoned: commits go on
    assert_eq!(submit(&s, false).await.unwrap(), vec![2]);
    let (commits, inline) = counts(&s);
    assert_eq!(commits, 2, "failed commits are not counted");
    assert!(
        (1..=commits).contains(&inline),
        "the first change was committed by its task, and only commits count: {inline}"
    );
}

/// 32 tasks each awaiting one change on a runtime with one worker: (commits, inline ones).
fn on_one_worker(rt: tokio::runtime::Runtime) -> (u64, u64) {
    let s = start(Arc::new(AtomicBool::new(false)), Duration::from_millis(2));
    rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { submit(&s, false).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 1);
        }
    });
    counts(&s)
}

#[test]
fn on_one_worker_the_writer_thread_commits_and_groups_the_changes() {
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let one = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for rt in [current, one] {
        let (commits, inline) = on_one_worker(rt);
        assert_eq!(inline, 0, "a commit would stop the only worker");
        assert!(commits < 32, "{commits} commits: changes share commits");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_dropped_before_its_first_poll_is_committed_all_the_same() {
    let s = start(Arc::new(AtomicBool::new(false)), Duration::ZERO);
    drop(submit(&s, false).into_future());
    until_committed(&s, 1).await;
    // a select! whose other branch is ready first turns it into a future and drops it
    let p = submit(&s, false);
    tokio::select! {
        biased;
        () = std::future::ready(()) => {}
        _ = p => unreachable!("the ready branch goes first"),
    }
    until_committed(&s, 2).await;
    assert_eq!(submit(&s, false).await.unwrap(), vec![3]);
}
