//! The ledger: an append-only, hash-chained record of every proposal, verdict and outcome, in redb.
//!
//! Owns the redb file, its tables and schema version, the single writer thread, and the domain
//! operations the rest of Airlock uses: [`Ledger::append`], [`LedgerReader::records`],
//! [`LedgerReader::verify`]. Nothing else in the crate touches redb. It must never decide anything
//! about a call, and never acknowledge a row before its commit is durable.
//!
//! Writes go through one writer thread that drains a queue: every request queued while a commit
//! is in flight joins the next commit (group commit), and each caller is released only after the
//! commit holding its rows returned. Row format and hashing do not depend on the batching.

mod approvals;
mod chain;
mod change;
pub mod checkpoint;
pub mod copy;
mod forwarded;
mod head;
mod items;
mod open;
pub mod postgres;
pub mod prune;
mod reader;
pub mod row;
pub(crate) mod store;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;

use redb::{Database, TableDefinition};
use serde_json::Value;
use tokio::sync::oneshot;

use postgres::{Pg, PgTarget};
use store::{Redb, Store, Table};

use crate::signing::Signer;

use chain::GENESIS;
pub use chain::{Fault, Record};
pub use change::{Change, NewRow};
pub(crate) use head::Head;
pub use items::{ItemKind, ItemState, Prior};
use open::{check_head_signature, init, store_head};
pub use reader::LedgerReader;
pub use row::{Row, RowError};
pub use verify::{BadRow, CheckpointReport, SignatureReport, VerifyOptions, VerifyReport};
use writer::{Sink, Writer};

/// Where a ledger lives: the embedded redb file (`[gate] ledger`), or a PostgreSQL database
/// shared by several replicas (`[store] url`).
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    File(PathBuf),
    Postgres(PgTarget),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(t) => f.write_str(&t.url),
        }
    }
}

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Approvals (open and finished), keyed by approval id: the state recovery reloads.
/// Not part of the chain: every change to it is committed together with the rows that explain it.
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// The definition hash each tool was first seen (or last accepted) with, keyed `server/tool`:
/// the rug-pull guard's memory. Changed together with the `tool_*` rows that explain it.
const TOOLS: TableDefinition<&str, &str> = TableDefinition::new("tools");
/// Quarantined calls held for review, keyed by call id, with the rows that explain each change.
const HELD: TableDefinition<&str, &[u8]> = TableDefinition::new("held");
/// Calls a retry may repeat, keyed by the call's key (`retry::CallKey`): which desk item (or
/// autopilot call) an identical call, or one with the same idempotency key, attaches to.
const CALL_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("call_keys");
/// Drift-pause counters and pauses, keyed by limit or scope: committed with the verdicts that
/// charge them, so they survive a restart exactly.
const DRIFT: TableDefinition<&str, &[u8]> = TableDefinition::new("drift");
/// Calls whose rows are signed (their verdict said `signed`), so later rows of the same call are
/// signed too, across restarts.
const SIGNED: TableDefinition<&str, ()> = TableDefinition::new("signed_calls");
const SCHEMA_VERSION: &[u8] = b"1";
/// Most requests one commit takes from the queue.
const MAX_BATCH: usize = 512;
/// The redb page cache unless `[limits] ledger_cache` says otherwise (redb's own default is
/// 1 GiB, which a flood of large rows fills).
pub const CACHE_DEFAULT: usize = 64 << 20;
/// Longest a change nobody waits for is held back for a change somebody waits for, so that
/// both share one commit (one sync instead of two).
const LAZY_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {message}")]
    Storage { path: PathBuf, message: String },
    #[error("ledger {0} is open in another process (a running `airlock serve`?); stop it or wait")]
    InUse(PathBuf),
    #[error("no ledger at {0}")]
    Missing(PathBuf),
    #[error("ledger {path} has schema version {found}, this airlock knows {known}")]
    Schema {
        path: PathBuf,
        found: String,
        known: String,
    },
    #[error(
        "ledger {path} was changed outside Airlock: its recorded head is {recorded} but its last row is {actual}; refusing to append (run `airlock ledger verify`)"
    )]
    HeadMismatch {
        path: PathBuf,
        recorded: String,
        actual: String,
    },
    #[error(
        "ledger {path}: its head (row {seq}) is not signed by this gate's signing key: the file was rewritten, or written with another key; refusing to append (run `airlock ledger verify --public-key`)"
    )]
    HeadUnsigned { path: PathBuf, seq: u64 },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    #[error("ledger writer has stopped; no further rows can be written")]
    WriterGone,
    /// A conditional change lost a race (another replica got there first); nothing was written.
    #[error("{0}")]
    Conflict(String),
}

/// A change queued for commit: await it for the rows' sequence numbers once durable.
pub struct Pending(oneshot::Receiver<Result<Vec<u64>, LedgerError>>);

impl std::future::IntoFuture for Pending {
    type Output = Result<Vec<u64>, LedgerError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.0.await.map_err(|_| LedgerError::WriterGone)? })
    }
}

struct Request {
    change: Change,
    /// Nobody waits for it: it may wait up to [`LAZY_WAIT`] to share a waited-for commit.
    lazy: bool,
    reply: oneshot::Sender<Result<Vec<u64>, LedgerError>>,
}

/// The writable ledger held by a running gate.
pub struct Ledger {
    store: Store,
    /// How the writer has grouped changes into commits so far.
    batching: Arc<Batching>,
    /// `None` only while dropping.
    queue: Option<mpsc::Sender<Request>>,
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
    /// the group-commit batch size.
    pub fn batching(&self) -> (u64, u64, u64) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        (
            load(&self.batching.commits),
            load(&self.batching.changes),
            load(&self.batching.rows),
        )
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
        if let (Some(why), Store::Redb { .. }) = (failed, &self.store) {
            return Err(format!("the last ledger commit failed: {why}"));
        }
        self.head().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Open (creating if absent) the ledger and start its writer thread.
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
        match at {
            Location::File(path) => Ledger::open_file(path, signer, cache),
            Location::Postgres(target) => {
                let pg = Pg::open(target)?;
                let store = Store::Postgres(pg.clone());
                let heads = pg.heads()?;
                let head = store_head(&store, &heads)?;
                if let Some(signer) = &signer {
                    check_head_signature(&store, head, heads.sig, signer)?;
                }
                Ledger::start(
                    store,
                    Sink::Postgres(Box::new(postgres::commit::PgSink::new(pg))),
                    head,
                    signer,
                )
            }
        }
    }

    /// The PostgreSQL database, when the ledger is shared by replicas.
    pub fn shared(&self) -> Option<Arc<Pg>> {
        match &self.store {
            Store::Postgres(pg) => Some(pg.clone()),
            Store::Redb { .. } => None,
        }
    }

    /// Open with a signing key: every commit holding rows of a signed call ends with a
    /// `signature` row over the chain head.
    pub fn open_signed(path: &Path, signer: Option<Signer>) -> Result<Ledger, LedgerError> {
        Ledger::open_file(path, signer, CACHE_DEFAULT)
    }

    fn open_file(path: &Path, signer: Option<Signer>, cache: usize) -> Result<Ledger, LedgerError> {
        let db = Database::builder()
            .set_cache_size(cache)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::InUse(path.to_path_buf()),
                other => storage(path, other),
            })?;
        // every argument of every call is in it: only its owner reads it
        crate::private::file(path).map_err(|e| storage(path, e))?;
        Ledger::start_redb(db, path, signer)
    }

    /// Start the writer on an open redb database.
    fn start_redb(
        db: Database,
        path: &Path,
        signer: Option<Signer>,
    ) -> Result<Ledger, LedgerError> {
        let head = init(&db, path)?;
        let db = Arc::new(db);
        let store = Store::Redb {
            db: Redb::Writable(db.clone()),
            path: path.to_path_buf(),
        };
        if let Some(signer) = &signer {
            check_head_signature(&store, head, store.meta("head_sig")?, signer)?;
        }
        Ledger::start(store, Sink::Redb(db), head, signer)
    }

    fn start(
        store: Store,
        sink: Sink,
        head: Head,
        signer: Option<Signer>,
    ) -> Result<Ledger, LedgerError> {
        let path = store.name().to_path_buf();
        let (queue, rx) = mpsc::channel();
        let batching = Arc::new(Batching::default());
        let writer = Writer {
            sink,
            path: path.clone(),
            head,
            signer,
            batching: batching.clone(),
        };
        let writer = thread::Builder::new()
            .name("airlock-ledger".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| storage(&path, e))?;
        Ok(Ledger {
            store,
            batching,
            queue: Some(queue),
            writer: Some(writer),
            checkpoints: checkpoint::Status::default(),
        })
    }

    /// A ledger on any redb storage backend (tests use one that fails on demand).
    #[cfg(test)]
    pub(crate) fn open_on(backend: impl redb::StorageBackend) -> Result<Ledger, LedgerError> {
        let path = PathBuf::from("<backend>");
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| storage(&path, e))?;
        Ledger::start_redb(db, &path, None)
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
    /// [`LAZY_WAIT`] to share the commit of the next change somebody waits for. Order is kept.
    pub fn submit_lazy(&self, change: Change) -> Result<Pending, LedgerError> {
        self.queue(change, true)
    }

    fn queue(&self, change: Change, lazy: bool) -> Result<Pending, LedgerError> {
        let (reply, wait) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(LedgerError::WriterGone)?;
        queue
            .send(Request {
                change,
                lazy,
                reply,
            })
            .map_err(|_| LedgerError::WriterGone)?;
        Ok(Pending(wait))
    }

    /// Every committed row, in order, read beside the writer (for the stats page).
    pub fn records(
        &self,
        each: impl FnMut(Result<Record, (u64, String)>),
    ) -> Result<(), LedgerError> {
        reader::records_in(&self.store, each)
    }

    /// The last committed (row count, head hash): what a checkpoint signs.
    pub fn head(&self) -> Result<(u64, String), LedgerError> {
        match self.store.meta("head")? {
            Some(text) => {
                let head: Head = text.parse().map_err(|e| storage(self.path(), e))?;
                Ok((head.seq, hex::encode(head.hash)))
            }
            None => Ok((0, hex::encode(GENESIS))),
        }
    }

    /// Every held call's last committed state, for recovery after a restart.
    pub fn held(&self) -> Result<Vec<Value>, LedgerError> {
        Ok(json_table(&self.store, Table::Held)?
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
        json_table(&self.store, Table::Drift)
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
fn json_table(store: &Store, table: Table) -> Result<Vec<(String, Value)>, LedgerError> {
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
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn storage(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Storage {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
