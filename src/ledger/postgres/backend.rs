//! PostgreSQL as a [`Backend`] (reads on the reader threads, the writer's own connection for
//! commits) and as [`Replicated`] (heartbeats, adoption, notices between replicas).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::super::backend::{
    Adopted, Backend, Committer, Heads, Notice, Purpose, Replicated, SignTombstone,
};
use super::super::error::LedgerError;
use super::super::schema::Table;
use super::commit::PgSink;
use super::{Pg, PgTarget};

/// The database at `target`, opened for `purpose`: only a serving gate takes a replica's name.
pub(crate) fn open(target: &PgTarget, purpose: Purpose) -> Result<Arc<dyn Backend>, LedgerError> {
    let pg = match purpose {
        Purpose::Serve { .. } => Pg::open(target)?,
        Purpose::Read | Purpose::Maintain | Purpose::CopyInto => Pg::open(&target.reader())?,
    };
    Ok(Arc::new(Shared(pg)))
}

/// One process's handle on the shared database.
struct Shared(Arc<Pg>);

impl Backend for Shared {
    fn name(&self) -> &Path {
        self.0.name()
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.0.get(table, key)
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        self.0.scan(table)
    }

    fn rows(&self, each: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        self.0.rows(each)
    }

    fn row(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        self.0.row(seq)
    }

    fn heads(&self) -> Result<Heads, LedgerError> {
        self.0.heads()
    }

    fn committer(&self) -> Result<Box<dyn Committer>, LedgerError> {
        Ok(Box::new(PgSink::new(self.0.clone())))
    }

    /// The writer connects again for its next commit: reaching the database is what counts.
    fn failure_is_lasting(&self) -> bool {
        false
    }

    fn remove_prefix(&self, through: u64, sign: &mut SignTombstone<'_>) -> Result<(), LedgerError> {
        let last = self
            .0
            .row(through)?
            .ok_or_else(|| super::storage(self.0.name(), format!("row {through} is gone")))?;
        let tombstone = sign(&last)?;
        self.0.remove_prefix(through, tombstone)
    }

    fn copy_rows(&self, rows: Vec<(u64, Vec<u8>)>) -> Result<(), LedgerError> {
        self.0.copy_rows(rows)
    }

    fn copy_state(&self, state: Vec<(Table, String, Vec<u8>)>) -> Result<(), LedgerError> {
        self.0.copy_state(state)
    }

    fn replicated(&self) -> Option<Arc<dyn Replicated>> {
        Some(Arc::new(Shared(self.0.clone())))
    }
}

impl Replicated for Shared {
    fn replica(&self) -> &str {
        self.0.replica()
    }

    fn heartbeat(&self, dead_after: Duration, own: bool) -> Result<Adopted, LedgerError> {
        self.0.heartbeat(dead_after, own)
    }

    fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<Notice> {
        super::listen::start(self.0.clone())
    }

    fn leave(&self) {
        self.0.leave()
    }
}
