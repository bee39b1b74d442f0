//! Who commits: the queue of changes, and one commit lock over the backend's committer. Whoever
//! holds the lock drains the queue in order and hands every change in it to the committer as
//! one batch (one durable transaction: rows, state tables, head and its signature, and a
//! signature row when signed calls are in it), then releases each caller. Only the lock's
//! holder writes rows. What a batch writes is `ledger::batch`'s, the same for every backend.
//!
//! The holder is the writer thread, or — where the committer allows it (redb) — the task that
//! awaits a change: when nobody commits at that moment it commits the queue itself, on its own
//! thread, sparing the two thread hand-overs a call would otherwise wait for (measured with
//! `examples/ledger_floor`). A commit in progress makes the awaiting task ring for the writer
//! thread instead, which then takes everything queued meanwhile (group commit). It must never
//! commit a change before one queued earlier, and never release a caller before the commit
//! holding its change returned.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::backend::Committer;
use super::change::Change;
use super::error::LedgerError;
use super::head::Head;
use crate::signing::Signer;

/// Most requests one commit takes from the queue.
const MAX_BATCH: usize = 512;
/// Longest a change nobody waits for is held back for a change somebody waits for, so that
/// both share one commit (one sync instead of two).
const LAZY_WAIT: Duration = Duration::from_millis(2);
/// How long the writer thread waits when a request is counted but not yet in the queue.
const NOT_YET_SENT: Duration = Duration::from_micros(200);

/// Whether the current tokio runtime has more than one worker (none: no).
fn several_workers() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().num_workers() > 1)
}

/// A change queued for commit, and where its result goes.
pub(super) struct Request {
    pub(super) change: Change,
    /// Nobody waits for it: it may wait up to [`LAZY_WAIT`] to share a waited-for commit.
    pub(super) lazy: bool,
    pub(super) reply: oneshot::Sender<Result<Vec<u64>, LedgerError>>,
}

/// The committing side, held by whoever commits now.
pub(super) struct Writer {
    pub(super) committer: Box<dyn Committer>,
    pub(super) path: PathBuf,
    pub(super) head: Head,
    pub(super) signer: Option<Signer>,
    pub(super) batching: Arc<super::Batching>,
    pub(super) queue: mpsc::Receiver<Request>,
}

/// What the ledger's callers and the writer thread share.
pub(super) struct Shared {
    /// Taken by the writer thread as it ends, so the committer (PostgreSQL's client blocks on
    /// a runtime of its own when dropped) goes on that thread, never on a tokio worker.
    writer: Mutex<Option<Writer>>,
    /// Requests queued and not yet taken, and how many of them somebody waits for.
    queued: AtomicUsize,
    waited: AtomicUsize,
    closed: AtomicBool,
    bell: Mutex<()>,
    rung: Condvar,
    /// Whether a task awaiting its change may commit on its own thread (the committer allows it).
    inline: bool,
}

impl Shared {
    pub(super) fn new(writer: Writer) -> Shared {
        let inline = writer.committer.commits_anywhere();
        Shared {
            writer: Mutex::new(Some(writer)),
            queued: AtomicUsize::new(0),
            waited: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            bell: Mutex::new(()),
            rung: Condvar::new(),
            inline,
        }
    }

    /// Count a request about to be queued.
    pub(super) fn count(&self, lazy: bool) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        if !lazy {
            self.waited.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A counted request is queued: ring for the writer thread, unless the task awaiting it
    /// will try to commit it (the answer). Only on a runtime with another worker to run the
    /// rest meanwhile: on one worker (a one-CPU machine, `current_thread`) a commit on it would
    /// stop every task for the sync, and each would then commit alone (no group commit).
    pub(super) fn queued(&self, lazy: bool) -> bool {
        let leads = self.inline && !lazy && several_workers();
        if !leads {
            self.ring();
        }
        leads
    }

    /// A request counted by [`Shared::count`] was not queued after all, or was taken.
    pub(super) fn not_queued(&self, lazy: bool) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !lazy {
            self.waited.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wake the writer thread: something is queued that it may have to commit.
    pub(super) fn ring(&self) {
        drop(self.bell.lock().unwrap_or_else(PoisonError::into_inner));
        self.rung.notify_one();
    }

    /// Commit what is queued on this thread if nobody commits now; otherwise leave it to the
    /// writer thread.
    pub(super) fn lead(&self) {
        match self.writer.try_lock() {
            Ok(mut guard) => {
                if let Some(w) = guard.as_mut()
                    && w.commit_queued(self) == Some(true)
                {
                    w.batching.inline.fetch_add(1, Ordering::Relaxed);
                }
                drop(guard);
                if self.queued.load(Ordering::SeqCst) > 0 {
                    self.ring();
                }
            }
            // somebody commits, or (poisoned) something outside a commit panicked: the writer
            // thread carries on with the state as it was
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => self.ring(),
        }
    }

    /// No more requests: the writer thread commits what is left and ends.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ring();
    }

    fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: sleep until something is queued, give changes nobody waits for up to
    /// [`LAZY_WAIT`] to be taken along by one somebody waits for, then commit the queue.
    pub(super) fn run(&self) {
        loop {
            let work = {
                let mut bell = self.bell.lock().unwrap_or_else(PoisonError::into_inner);
                while self.queued.load(Ordering::SeqCst) == 0 && !self.closed.load(Ordering::SeqCst)
                {
                    bell = self.rung.wait(bell).unwrap_or_else(PoisonError::into_inner);
                }
                let until = Instant::now() + LAZY_WAIT;
                while self.waited.load(Ordering::SeqCst) == 0
                    && self.queued.load(Ordering::SeqCst) > 0
                    && !self.closed.load(Ordering::SeqCst)
                {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    bell = (self.rung.wait_timeout(bell, left))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                self.queued.load(Ordering::SeqCst) > 0
            };
            if work {
                let took = self.lock().as_mut().and_then(|w| w.commit_queued(self));
                if took.is_none() {
                    // counted but not yet sent: let its sender finish instead of spinning
                    let bell = self.bell.lock().unwrap_or_else(PoisonError::into_inner);
                    drop(self.rung.wait_timeout(bell, NOT_YET_SENT));
                }
            } else if self.closed.load(Ordering::SeqCst) {
                // the committer ends here, on this thread
                drop(self.lock().take());
                return;
            }
        }
    }
}

/// Take whatever is queued, up to [`MAX_BATCH`], counting it off.
fn drain(w: &Writer, shared: &Shared) -> Vec<Request> {
    let mut batch = Vec::new();
    while batch.len() < MAX_BATCH {
        match w.queue.try_recv() {
            Ok(r) => {
                shared.not_queued(r.lazy);
                batch.push(r);
            }
            Err(_) => break,
        }
    }
    batch
}

impl Writer {
    /// Commit what is queued (up to [`MAX_BATCH`]) as one batch and release its callers:
    /// `None` when nothing was queued, else whether a transaction committed.
    fn commit_queued(&mut self, shared: &Shared) -> Option<bool> {
        let batch = drain(self, shared);
        if batch.is_empty() {
            return None;
        }
        if batch.iter().all(|r| r.change.is_empty()) {
            for req in batch {
                let _ = req.reply.send(Ok(Vec::new()));
            }
            return Some(false);
        }
        let started = std::time::Instant::now();
        let changes: Vec<&Change> = batch.iter().map(|r| &r.change).collect();
        // a panic in the backend is a failed commit: its callers are told, nobody waits forever,
        // and the lock is not poisoned (the head moves only after a commit returned)
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.committer
                .commit(self.head, self.signer.as_ref(), &changes)
        }))
        .unwrap_or_else(|panic| Err(format!("the commit panicked: {}", panic_text(&*panic))));
        drop(changes);
        match committed {
            Ok((head, seqs)) => {
                self.head = head;
                crate::metrics::global().commit(started.elapsed().as_secs_f64(), batch.len());
                let rows: usize = seqs.iter().flatten().map(Vec::len).sum();
                let b = &self.batching;
                b.commits.fetch_add(1, Ordering::Relaxed);
                b.changes.fetch_add(batch.len() as u64, Ordering::Relaxed);
                b.rows.fetch_add(rows as u64, Ordering::Relaxed);
                b.note(None);
                for (req, s) in batch.into_iter().zip(seqs) {
                    let _ = req.reply.send(s);
                }
                Some(true)
            }
            Err(message) => {
                tracing::error!(path = %self.path.display(), %message, "ledger commit failed; the calls in it will not run");
                self.batching.note(Some(message.clone()));
                for req in batch {
                    let _ = req.reply.send(Err(LedgerError::Storage {
                        path: self.path.clone(),
                        message: message.clone(),
                    }));
                }
                Some(false)
            }
        }
    }
}

/// A panic's message, for the error its callers get.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests;
