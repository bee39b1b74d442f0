//! The ledger: an append-only, hash-chained record of every proposal, verdict and outcome, in a
//! redb file or a PostgreSQL database shared by replicas.
//!
//! Owns the single writer thread and the domain operations the rest of Airlock uses:
//! [`Ledger::append`], [`LedgerReader::records`], [`LedgerReader::verify`]. Where the bytes
//! live is a `dyn Backend` (`backend`: `redb`, `postgres`), picked once by `open` from the
//! [`Location`]; the tables are `schema`'s, and what a commit writes is `batch`'s, the same for
//! both. Nothing else in the crate touches redb or PostgreSQL, and nothing here or above asks
//! which backend it has; a shared ledger's replica features are [`Ledger::replicated`]. It must
//! never decide anything about a call, and never acknowledge a row before its commit is durable.
//! The format is written down in `docs/ledger-format.md`.
//!
//! Writes go through one queue and one commit lock (`writer`): the writer thread, or on redb the
//! task awaiting its change when nobody commits, drains the queue in order; every request queued
//! while a commit is in flight joins the next commit (group commit), and each caller is released
//! only after the commit holding its rows returned. Row format and hashing do not depend on the
//! batching.

mod approvals;
mod backend;
mod batch;
mod chain;
mod change;
pub mod checkpoint;
pub mod copy;
mod error;
mod forwarded;
mod head;
mod items;
mod open;
pub mod postgres;
pub mod prune;
mod reader;
mod redb;
pub mod row;
mod schema;
mod tail;
mod verify;
mod writer;

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::signing::Signer;

use backend::{Backend, Purpose};
use chain::GENESIS;
use schema::{Table, meta};
use writer::{Request, Shared, Writer};

pub use backend::{Adopted, Notice, Replicated};
pub use chain::{Fault, Record};
pub use change::{Change, NewRow};
pub use error::LedgerError;
pub(crate) use error::storage;
pub(crate) use head::Head;
pub use items::{ItemKind, ItemState, Prior};
pub use open::Location;
pub use reader::LedgerReader;
pub use row::{Row, RowError};
pub use verify::{BadRow, CheckpointReport, SignatureReport, VerifyOptions, VerifyReport};

/// The redb page cache unless `[limits] ledger_cache` says otherwise (redb's own default is
/// 1 GiB, which a flood of large rows fills).
pub const CACHE_DEFAULT: usize = 64 << 20;
/// A change queued for commit: await it for the rows' sequence numbers once durable.
pub struct Pending {
    answer: Option<oneshot::Receiver<Result<Vec<u64>, LedgerError>>>,
    /// Set when the awaiting task may commit the queue itself (`writer::Shared::lead`).
    lead: Option<Arc<Shared>>,
}

impl std::future::IntoFuture for Pending {
    type Output = Result<Vec<u64>, LedgerError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        // the whole `Pending` moves in: dropped before its first poll, it still rings
        let mut pending = self;
        Box::pin(async move {
            if let Some(shared) = pending.lead.take() {
                shared.lead();
            }
            pending
                .answer
                .take()
                .ok_or(LedgerError::WriterGone)?
                .await
                .map_err(|_| LedgerError::WriterGone)?
        })
    }
}

impl Drop for Pending {
    /// Nobody will await it: the writer thread commits it.
    fn drop(&mut self) {
        if let Some(shared) = self.lead.take() {
            shared.ring();
        }
    }
}

/// The writable ledger held by a running gate.
pub struct Ledger {
    /// Where the bytes are; which backend it is, nothing here asks.
    store: Arc<dyn Backend>,
    /// How the writer has grouped changes into commits so far.
    batching: Arc<Batching>,
    /// `None` only while dropping.
    queue: Option<mpsc::Sender<Request>>,
    /// The commit lock and the queue's counts, shared with the writer thread.
    shared: Arc<Shared>,
    writer: Option<thread::JoinHandle<()>>,
    /// The newest checkpoint written and its witness's state (files, never rows).
    checkpoints: checkpoint::Status,
}

/// Counters of group commit: durable commits, the changes (callers) they carried, and rows.
#[derive(Debug, Default)]
pub struct Batching {
    pub commits: std::sync::atomic::AtomicU64,
    pub changes: std::sync::atomic::AtomicU64,
    pub rows: std::sync::atomic::AtomicU64,
    /// Of the commits, those a task awaiting its change made on its own thread (`writer`).
    pub inline: std::sync::atomic::AtomicU64,
    /// Why the last commit failed, until one succeeds.
    failure: std::sync::Mutex<Option<String>>,
}

impl Batching {
    fn note(&self, failure: Option<String>) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = failure;
    }
}

impl Ledger {
    /// How commits have been grouped so far: (commits, changes, rows). Changes per commit is
    /// the group-commit batch size. How many of the commits an awaiting task made: [`Ledger::inline_commits`].
    pub fn batching(&self) -> (u64, u64, u64) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        (
            load(&self.batching.commits),
            load(&self.batching.changes),
            load(&self.batching.rows),
        )
    }

    /// How many commits a task awaiting its change made on its own thread (no hand-over).
    pub fn inline_commits(&self) -> u64 {
        self.batching
            .inline
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the ledger can take rows now: its writer runs, its last commit did not fail, and
    /// the file reads. The reason if not (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        if self.queue.is_none() || self.writer.as_ref().is_some_and(|w| w.is_finished()) {
            return Err("the ledger writer has stopped".into());
        }
        // After an I/O error redb refuses every write until it is reopened; PostgreSQL's writer
        // connects again for its next commit, so there reaching the database is what counts.
        let failed = self
            .batching
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(why) = failed.filter(|_| self.store.failure_is_lasting()) {
            return Err(format!("the last ledger commit failed: {why}"));
        }
        self.head().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Open (creating if absent) the ledger file and start its writer thread.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_signed(path, None)
    }

    /// Open the ledger wherever it lives (creating or migrating it) and start its writer.
    pub fn open_at(at: &Location, signer: Option<Signer>) -> Result<Ledger, LedgerError> {
        Ledger::open_cached(at, signer, CACHE_DEFAULT)
    }

    /// [`Ledger::open_at`] with a redb page cache of `cache` bytes (PostgreSQL: unused).
    pub fn open_cached(
        at: &Location,
        signer: Option<Signer>,
        cache: usize,
    ) -> Result<Ledger, LedgerError> {
        Ledger::start(open::backend(at, Purpose::Serve { cache })?, signer)
    }

    /// What only a ledger shared by several replicas offers (heartbeats, adoption, notices);
    /// `None` when this gate is alone on its ledger.
    pub fn replicated(&self) -> Option<Arc<dyn Replicated>> {
        self.store.replicated()
    }

    /// Whether other replicas share this ledger (then what is stored may change beside this
    /// process, and reads go to the ledger rather than memory).
    pub fn is_shared(&self) -> bool {
        self.store.replicated().is_some()
    }

    /// Open with a signing key: every commit holding rows of a signed call ends with a
    /// `signature` row over the chain head.
    pub fn open_signed(path: &Path, signer: Option<Signer>) -> Result<Ledger, LedgerError> {
        Ledger::open_cached(&Location::File(path.to_path_buf()), signer, CACHE_DEFAULT)
    }

    /// Check the head and start the writer on an open backend.
    fn start(store: Arc<dyn Backend>, signer: Option<Signer>) -> Result<Ledger, LedgerError> {
        let head = open::checked_head(store.as_ref(), signer.as_ref())?;
        let path = store.name().to_path_buf();
        let (queue, rx) = mpsc::channel();
        let batching = Arc::new(Batching::default());
        let shared = Arc::new(Shared::new(Writer {
            committer: store.committer()?,
            path: path.clone(),
            head,
            signer,
            batching: batching.clone(),
            queue: rx,
        }));
        let runs = shared.clone();
        let writer = thread::Builder::new()
            .name("airlock-ledger".into())
            .spawn(move || runs.run())
            .map_err(|e| storage(&path, e))?;
        Ok(Ledger {
            store,
            batching,
            queue: Some(queue),
            shared,
            writer: Some(writer),
            checkpoints: checkpoint::Status::default(),
        })
    }

    /// A ledger on any redb storage backend (tests use one that fails on demand).
    #[cfg(test)]
    pub(crate) fn open_on(backend: impl ::redb::StorageBackend) -> Result<Ledger, LedgerError> {
        Ledger::start(Arc::new(redb::on(backend)?), None)
    }

    /// The file, or the database URL (without secrets), for messages.
    pub fn path(&self) -> &Path {
        self.store.name()
    }

    /// Append rows in order; returns their sequence numbers once they are durable.
    pub async fn append(&self, rows: Vec<NewRow>) -> Result<Vec<u64>, LedgerError> {
        self.commit(Change {
            rows,
            ..Change::default()
        })
        .await
    }

    /// Commit rows and approval state together; returns the rows' sequence numbers once durable.
    pub async fn commit(&self, change: Change) -> Result<Vec<u64>, LedgerError> {
        self.submit(change)?.await
    }

    /// Wait until every change queued so far is durable.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        self.commit(Change::default()).await.map(|_| ())
    }

    /// Queue a change without waiting. Changes commit in the order they are submitted, so a
    /// caller holding a lock while it submits orders its commits by that lock.
    pub fn submit(&self, change: Change) -> Result<Pending, LedgerError> {
        self.queue(change, false)
    }

    /// Queue a change nobody waits for (an outcome row already answered): it may be held up to
    /// `writer::LAZY_WAIT` (2 ms) to share the commit of the next change somebody waits for.
    /// Order is kept.
    pub fn submit_lazy(&self, change: Change) -> Result<Pending, LedgerError> {
        self.queue(change, true)
    }

    fn queue(&self, change: Change, lazy: bool) -> Result<Pending, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(LedgerError::WriterGone)?;
        self.shared.count(lazy);
        let request = Request {
            change,
            lazy,
            reply,
        };
        if queue.send(request).is_err() {
            self.shared.not_queued(lazy);
            return Err(LedgerError::WriterGone);
        }
        let leads = self.shared.queued(lazy);
        Ok(Pending {
            answer: Some(answer),
            lead: leads.then(|| self.shared.clone()),
        })
    }

    /// Every committed row, in order, read beside the writer (for the stats page).
    pub fn records(
        &self,
        each: impl FnMut(Result<Record, (u64, String)>),
    ) -> Result<(), LedgerError> {
        reader::records_in(self.store.as_ref(), each)
    }

    /// The last committed (row count, head hash): what a checkpoint signs.
    pub fn head(&self) -> Result<(u64, String), LedgerError> {
        match self.store.get(Table::Meta, meta::HEAD)? {
            Some(text) => {
                let head: Head = String::from_utf8_lossy(&text)
                    .parse()
                    .map_err(|e| storage(self.path(), e))?;
                Ok((head.seq, hex::encode(head.hash)))
            }
            None => Ok((0, hex::encode(GENESIS))),
        }
    }

    /// Every held call's last committed state, for recovery after a restart.
    pub fn held(&self) -> Result<Vec<Value>, LedgerError> {
        Ok(json_table(self.store.as_ref(), Table::Held)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// One held call's stored state (its bytes, for a change conditional on them).
    pub fn held_state(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.store.get(Table::Held, id)
    }

    /// What is stored under a call's key (`retry::Entry` bytes), if a call with that key was made.
    pub fn call_key(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.store.get(Table::CallKeys, key)
    }

    /// Every call key and its entry (`retry::Entry` bytes), in key order.
    pub fn call_keys(&self) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        self.store.scan(Table::CallKeys)
    }

    /// Every drift counter and pause, keyed as written.
    pub fn drift(&self) -> Result<Vec<(String, Value)>, LedgerError> {
        json_table(self.store.as_ref(), Table::Drift)
    }

    /// The trusted definition hash of every tool seen so far, keyed `server/tool`.
    pub fn tool_pins(&self) -> Result<std::collections::BTreeMap<String, String>, LedgerError> {
        Ok(self
            .store
            .scan(Table::Tools)?
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }
}

/// Every (key, JSON value) of a state table; an absent table is empty.
fn json_table(store: &dyn Backend, table: Table) -> Result<Vec<(String, Value)>, LedgerError> {
    store
        .scan(table)?
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_slice(&v)
                .map_err(|e| storage(store.name(), format!("{table:?} {k}: {e}")))?;
            Ok((k, value))
        })
        .collect()
}

impl Drop for Ledger {
    /// Close the queue and wait for the writer to finish its last commit and release the file.
    fn drop(&mut self) {
        drop(self.queue.take());
        self.shared.close();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
