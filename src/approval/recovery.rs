//! Start and stop, the approvals' side: read back the open approvals for the desk's one start
//! rule ([`crate::desk::Desk::start`]), the acts it asks for (arm, resend, close as
//! `outcome_unknown`), and letting running executions finish before a clean exit.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Approvals;
use super::index::{Entry, stored};
use crate::approval::state::{Approval, Outcome, Status};
use crate::desk::start::{Found, Kind};
use crate::ledger::{Change, LedgerError};

impl Approvals {
    /// Wait (up to `limit`) until no approved call is still executing, so its outcome is recorded.
    pub async fn drain(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let busy = self.open.lock().await.values().any(|e| e.executing);
            if !busy {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Void every pending approval for a tool whose definition changed: what the approvers were
    /// asked about is not what the server would now run.
    pub async fn void_changed(
        &self,
        changed: &std::collections::BTreeSet<(String, String)>,
    ) -> usize {
        let ids: Vec<String> = {
            let guard = self.open.lock().await;
            guard
                .iter()
                .filter(|(_, e)| {
                    !e.executing && changed.contains(&(e.server.clone(), e.tool.clone()))
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in &ids {
            let reason =
                "the tool server changed this tool's definition after the request was made"
                    .to_string();
            self.close(id, Outcome::Voided { reason }, Vec::new()).await;
        }
        ids.len()
    }

    /// The open approvals as stored (the open-approvals index; a ledger from before the index
    /// is indexed once, here): what [`crate::desk::Desk::start`] reads back.
    pub(crate) async fn stored_open(&self) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        match self.ledger.open_approvals()? {
            Some(entries) => Ok(entries),
            // copied from an older redb ledger: index it once (any replica may; it is idempotent)
            None => self.build_index().await,
        }
    }

    /// Take stored index entries into memory (with `clear`, in place of what was there), each
    /// as the desk's lifecycle sees it; acting on them is the desk's (its start rule).
    pub(crate) async fn load_found(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        clear: bool,
    ) -> Vec<Found> {
        let mut guard = self.open.lock().await;
        if clear {
            guard.clear();
        }
        let mut found = Vec::new();
        for (id, bytes) in entries {
            match serde_json::from_slice::<Entry>(&bytes) {
                Ok(e) => {
                    found.push(Found {
                        kind: Kind::Approval,
                        id: id.clone(),
                        phase: e.phase(),
                        deadline: Some(e.expires_at),
                        unsent: e.unsent,
                        prior: None,
                    });
                    guard.insert(id, e);
                }
                Err(e) => {
                    tracing::error!(approval = %id, error = %e, "unreadable open-approval entry; left as it is")
                }
            }
        }
        found
    }

    /// Arm an open approval's deadline (a waiting item the desk re-arms).
    pub(crate) fn arm(self: &Arc<Self>, at: DateTime<Utc>, id: &str) {
        self.timers.arm(self, at, id);
        let (me, id) = (self.clone(), id.to_string());
        tokio::spawn(async move { me.arm_reminder(&id).await });
    }

    /// Send an open approval's unsent mail, in the background.
    pub(crate) fn resend(self: &Arc<Self>, id: &str) {
        let (me, id) = (self.clone(), id.to_string());
        tokio::spawn(async move { me.send_unsent(&id).await });
    }

    /// An approval found executing at a start: close it as `outcome_unknown` (never re-run) and
    /// tell its approvers — unless it ended otherwise meanwhile (its replica was only slow).
    pub(crate) async fn close_unknown(&self, id: &str) {
        self.close(id, Outcome::OutcomeUnknown, Vec::new()).await;
        if let Some(a) = self
            .get(id)
            .await
            .filter(|a| a.status == Status::Done(Outcome::OutcomeUnknown))
        {
            self.tell_outcome_unknown(&a).await;
        }
    }

    async fn build_index(&self) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let mut states = Vec::new();
        for (id, bytes) in self.ledger.approvals()? {
            match serde_json::from_slice::<Approval>(&bytes) {
                Ok(a) if !matches!(a.status, Status::Done(_)) => states.push(stored(&a)?),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(approval = %id, error = %e, "unreadable approval state; left as it is")
                }
            }
        }
        let entries = states
            .iter()
            .filter_map(|s| s.open.clone().map(|e| (s.id.clone(), e)))
            .collect();
        tracing::info!(
            open = states.len(),
            "indexed the open approvals of an older ledger"
        );
        self.ledger
            .commit(Change {
                items: states,
                approvals_indexed: true,
                ..Change::default()
            })
            .await?;
        Ok(entries)
    }
}
