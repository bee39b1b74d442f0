//! What a place that keeps a ledger must answer: [`Backend`] (reads and the writer's commit)
//! and, if it is shared by several replicas, [`Replicated`]. The redb file (`ledger::redb`)
//! and PostgreSQL (`ledger::postgres`) implement them; everything above reads and writes
//! through them and never learns which one it has (`ledger::open` is the one place that picks).
//!
//! Both hold the same tables with the same bytes (`ledger::schema`). A backend must never
//! decide what a commit writes (`ledger::batch` does, the same for both), and never
//! acknowledge a commit before it is durable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::batch::Results;
use super::change::Change;
use super::error::LedgerError;
use super::head::Head;
use super::schema::Table;
use crate::signing::Signer;

/// Makes a prune's tombstone (its stored bytes) from the last removed row's bytes.
pub(crate) type SignTombstone<'a> = dyn FnMut(&[u8]) -> Result<Vec<u8>, LedgerError> + 'a;

/// A ledger's storage.
pub(crate) trait Backend: Send + Sync {
    /// What messages call it: the file, or the database URL without secrets.
    fn name(&self) -> &Path;

    /// One value of a state table.
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, LedgerError>;

    /// Every (key, value) of a state table, in key order (bytewise); an absent table is empty.
    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, LedgerError>;

    /// Every row's stored bytes in sequence order, until `each` returns false.
    fn rows(&self, each: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError>;

    /// One row's stored bytes, if the ledger has it.
    fn row(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError>;

    /// The recorded head and its signature, and the last row, read together (one snapshot).
    fn heads(&self) -> Result<Heads, LedgerError>;

    /// The writer's side: commits batches, used by the one writer thread only.
    fn committer(&self) -> Result<Box<dyn Committer>, LedgerError>;

    /// Whether a failed commit leaves it refusing every write until reopened (redb after an
    /// I/O error); otherwise the next commit starts afresh (PostgreSQL connects again).
    fn failure_is_lasting(&self) -> bool;

    /// Retention: remove rows up to `through` and record the tombstone `sign` makes from the
    /// last removed row's bytes, in one transaction (under the head lock where others append).
    fn remove_prefix(&self, through: u64, sign: &mut SignTombstone<'_>) -> Result<(), LedgerError>;

    /// `ledger copy` into it (empty): rows as stored, in one transaction.
    fn copy_rows(&self, rows: Vec<(u64, Vec<u8>)>) -> Result<(), LedgerError>;

    /// `ledger copy` into it: the state tables and the meta values (the head among them), in
    /// one transaction, after every row.
    fn copy_state(&self, state: Vec<(Table, String, Vec<u8>)>) -> Result<(), LedgerError>;

    /// What only a ledger shared by several replicas offers; `None` for one alone on its ledger.
    fn replicated(&self) -> Option<Arc<dyn Replicated>> {
        None
    }
}

/// The writer thread's handle on a backend: one durable transaction per batch.
pub(crate) trait Committer: Send {
    /// Check the conditions of, plan and write `batch` (`ledger::batch`) on top of the head, in
    /// one transaction: the new head and each change's result, or why nothing was written.
    /// `head` is the head after the last commit of this writer (a shared backend reads its own,
    /// under its lock).
    fn commit(
        &mut self,
        head: Head,
        signer: Option<&Signer>,
        batch: &[&Change],
    ) -> Result<(Head, Results), String>;

    /// Whether any thread may commit (a task awaiting its change, on a tokio worker), not only
    /// the writer thread: true for a local file; a committer bound to its own thread says no.
    fn commits_anywhere(&self) -> bool {
        false
    }
}

/// Several replicas on one ledger: each announces it lives, adopts the work of the silent,
/// and hears of the approval changes the others make.
pub trait Replicated: Send + Sync {
    /// This process's replica name.
    fn replica(&self) -> &str;

    /// Say this replica is alive, then adopt what replicas silent for longer than `dead_after`
    /// left, each dead replica by exactly one; with `own`, also what this replica's previous
    /// run left. Blocks for a round trip: call it off the async runtime's threads.
    fn heartbeat(&self, dead_after: Duration, own: bool) -> Result<Adopted, LedgerError>;

    /// The approval changes the other replicas commit, as they commit them.
    fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<Notice>;

    /// Leave cleanly: another replica adopts what this one leaves open at its next heartbeat.
    /// Blocks for a round trip.
    fn leave(&self);
}

/// What a heartbeat adopted from dead replicas.
#[derive(Debug, Default)]
pub struct Adopted {
    pub replicas: Vec<String>,
    /// (approval id, index entry bytes).
    pub approvals: Vec<(String, Vec<u8>)>,
    /// (call id, route JSON bytes).
    pub forwarded: Vec<(String, Vec<u8>)>,
    /// Held calls' states (JSON bytes).
    pub held: Vec<Vec<u8>>,
}

/// What a replica hears from the others.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Another replica committed a change to this approval.
    Approval(String),
    /// The listener was disconnected and is back: notices may have been missed, reload.
    Resync,
}

/// The recorded head, its signature and the last row, read together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heads {
    pub head: Option<String>,
    pub sig: Option<String>,
    pub last: Option<(u64, Vec<u8>)>,
}

/// Why a ledger is opened, which decides how: created and checked for a gate, read beside
/// a running gate, written by a maintenance command, or made new for a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A serving gate (or a test's ledger): create if absent, check the head, then append.
    /// redb: a page cache of this many bytes.
    Serve { cache: usize },
    /// Auditors' reads (`export`, `verify`, listings): never written.
    Read,
    /// A maintenance write beside no gate (`ledger prune`'s removal).
    Maintain,
    /// The empty target of `ledger copy`.
    CopyInto,
}
