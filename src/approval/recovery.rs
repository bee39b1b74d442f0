//! Start and stop: reload open approvals after a (possibly crashed) start, and let running
//! executions finish before a clean exit.

use std::sync::Arc;

use super::Approvals;
use super::index::{Entry, stored};
use crate::approval::state::{Approval, Outcome, Status};
use crate::desk::lifecycle::{self, OnStart};
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

    /// Reload open approvals after a start: re-arm their deadlines, send unsent mail, and turn
    /// any execution that was in flight into `outcome_unknown` (never a second run). Reads only
    /// the open-approvals index (a ledger from before the index is indexed once, here).
    pub async fn recover(self: &Arc<Self>) -> Result<usize, LedgerError> {
        let entries = match self.ledger.open_approvals()? {
            Some(entries) => entries,
            None => self.build_index().await?,
        };
        self.take(entries, true).await;
        Ok(self.open.lock().await.len())
    }

    /// For a replica sharing the ledger: load every open approval into the index and arm its
    /// deadline, acting on none (the replica that owns each sends its mail and runs it).
    pub async fn follow(self: &Arc<Self>) -> Result<usize, LedgerError> {
        let entries = match self.ledger.open_approvals()? {
            Some(entries) => entries,
            // copied from an older redb ledger: index it once (any replica may; it is idempotent)
            None => self.build_index().await?,
        };
        self.open.lock().await.clear();
        self.take(entries, false).await;
        Ok(self.open.lock().await.len())
    }

    /// Take over the open approvals of a replica that died: what [`Approvals::recover`] does after a
    /// restart, for these approvals only.
    pub async fn adopt(self: &Arc<Self>, entries: Vec<(String, Vec<u8>)>) {
        self.take(entries, true).await;
    }

    /// Index the entries and arm their deadlines; with `act`, also send their unsent mail and
    /// close their interrupted executions as `outcome_unknown`.
    async fn take(self: &Arc<Self>, entries: Vec<(String, Vec<u8>)>, act: bool) {
        let mut pending = Vec::new();
        let mut unknown = Vec::new();
        {
            let mut guard = self.open.lock().await;
            for (id, bytes) in entries {
                match serde_json::from_slice::<Entry>(&bytes) {
                    Ok(e) => {
                        match lifecycle::on_start(e.phase()) {
                            OnStart::Unknown => unknown.push(id.clone()),
                            OnStart::Rearm => {
                                self.timers.arm(self, e.expires_at, &id);
                                if e.unsent {
                                    pending.push(id.clone());
                                }
                            }
                            OnStart::Keep => {}
                        }
                        guard.insert(id, e);
                    }
                    Err(e) => {
                        tracing::error!(approval = %id, error = %e, "unreadable open-approval entry; left as it is")
                    }
                }
            }
        }
        if !act {
            return;
        }
        for id in &unknown {
            self.close(id, Outcome::OutcomeUnknown, Vec::new()).await;
            // not when it had ended otherwise meanwhile (its replica was only slow)
            if let Some(a) = self
                .get(id)
                .await
                .filter(|a| a.status == Status::Done(Outcome::OutcomeUnknown))
            {
                self.tell_outcome_unknown(&a).await;
            }
        }
        for id in pending {
            let me = self.clone();
            tokio::spawn(async move { me.send_unsent(&id).await });
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
                approvals: states,
                approvals_indexed: true,
                ..Change::default()
            })
            .await?;
        Ok(entries)
    }
}
