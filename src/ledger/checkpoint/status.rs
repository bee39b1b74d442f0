//! What the running gate knows of its checkpoints: the newest one written, and whether its
//! witness has it. Held by the [`Ledger`] so approval mail and `/readyz` can read it.

use std::sync::Mutex;

use super::SignedNote;
use crate::ledger::Ledger;

/// The checkpoint writer's state, shared with its readers.
#[derive(Debug, Default)]
pub struct Status(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    latest: Option<SignedNote>,
    /// Rows of the newest checkpoint the witness acknowledged.
    witnessed: Option<u64>,
    /// Why the newest checkpoint has not reached the witness, once its retries ran out.
    failure: Option<String>,
}

impl Status {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn written(&self, note: &SignedNote) {
        self.with(|s| s.latest = Some(note.clone()));
    }

    pub(crate) fn delivered(&self, size: u64) {
        self.with(|s| {
            s.witnessed = Some(s.witnessed.map_or(size, |w| w.max(size)));
            s.failure = None;
        });
    }

    pub(crate) fn failed(&self, size: u64, attempts: u32) {
        self.with(|s| {
            let last = s
                .witnessed
                .map_or("none yet".to_string(), |n| format!("{n} rows"));
            s.failure = Some(format!(
                "the checkpoint of {size} rows has not reached the witness after {attempts} attempts (last witnessed: {last}); see the log"
            ));
        });
    }

    /// The newest checkpoint written.
    pub fn latest(&self) -> Option<SignedNote> {
        self.with(|s| s.latest.clone())
    }

    /// Rows of the newest checkpoint the witness acknowledged.
    pub fn witnessed(&self) -> Option<u64> {
        self.with(|s| s.witnessed)
    }

    /// Whether the witness has kept up (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        self.with(|s| s.failure.clone()).map_or(Ok(()), Err)
    }
}

impl Ledger {
    /// The running gate's checkpoints.
    pub fn checkpoints(&self) -> &Status {
        &self.checkpoints
    }

    /// A closing line for approval mail naming the newest checkpoint (origin, rows, base64 root
    /// hash), so approvers' mailboxes witness the ledger too; empty before the first one.
    pub fn checkpoint_footer(&self) -> String {
        self.checkpoints.latest().map_or(String::new(), |n| {
            format!(
                "\nLedger checkpoint (keep it: it lets an auditor prove the ledger was not rolled back): {}\n",
                n.line()
            )
        })
    }
}
