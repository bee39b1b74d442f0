//! The single writer thread: drains the queue, hands every queued change to the backend's
//! committer as one batch (one durable transaction: rows, state tables, head and its
//! signature, and a signature row when signed calls are in it), then releases each caller.
//! Only it writes rows. What a batch writes is `ledger::batch`'s, the same for every backend.

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

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

/// A change queued for commit, and where its result goes.
pub(super) struct Request {
    pub(super) change: Change,
    /// Nobody waits for it: it may wait up to [`LAZY_WAIT`] to share a waited-for commit.
    pub(super) lazy: bool,
    pub(super) reply: oneshot::Sender<Result<Vec<u64>, LedgerError>>,
}

pub(super) struct Writer {
    pub(super) committer: Box<dyn Committer>,
    pub(super) path: PathBuf,
    pub(super) head: Head,
    pub(super) signer: Option<Signer>,
    pub(super) batching: Arc<super::Batching>,
}

/// Take whatever else is queued, up to [`MAX_BATCH`].
fn drain(rx: &mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

impl Writer {
    pub(super) fn run(mut self, rx: mpsc::Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            drain(&rx, &mut batch);
            // Only changes nobody waits for: hold them briefly for one somebody waits for.
            let until = std::time::Instant::now() + LAZY_WAIT;
            while batch.len() < MAX_BATCH && batch.iter().all(|r| r.lazy) {
                let left = until.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(r) => {
                        batch.push(r);
                        drain(&rx, &mut batch);
                    }
                    Err(_) => break,
                }
            }
            if batch.iter().all(|r| r.change.is_empty()) {
                for req in batch {
                    let _ = req.reply.send(Ok(Vec::new()));
                }
                continue;
            }
            let started = std::time::Instant::now();
            let changes: Vec<&Change> = batch.iter().map(|r| &r.change).collect();
            let committed = self
                .committer
                .commit(self.head, self.signer.as_ref(), &changes);
            drop(changes);
            match committed {
                Ok((head, seqs)) => {
                    crate::metrics::global().commit(started.elapsed().as_secs_f64(), batch.len());
                    self.head = head;
                    let rows: usize = seqs.iter().flatten().map(Vec::len).sum();
                    let b = &self.batching;
                    let relaxed = std::sync::atomic::Ordering::Relaxed;
                    b.commits.fetch_add(1, relaxed);
                    b.changes.fetch_add(batch.len() as u64, relaxed);
                    b.rows.fetch_add(rows as u64, relaxed);
                    b.note(None);
                    for (req, s) in batch.into_iter().zip(seqs) {
                        let _ = req.reply.send(s);
                    }
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
                }
            }
        }
    }
}
