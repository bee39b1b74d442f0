//! Start and stop: reload open approvals after a (possibly crashed) start, and let running
//! executions finish before a clean exit.

use std::sync::Arc;

use super::Desk;
use crate::approval::state::{Approval, Outcome, Status};
use crate::ledger::LedgerError;

impl Desk {
    /// Wait (up to `limit`) until no approved call is still executing, so its outcome is recorded.
    pub async fn drain(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let busy = self
                .approvals
                .lock()
                .await
                .values()
                .any(|a| matches!(a.status, Status::Executing { .. }));
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
            let guard = self.approvals.lock().await;
            guard
                .values()
                .filter(|a| {
                    a.is_pending()
                        && changed
                            .contains(&(a.envelope.server.clone(), a.envelope.tool_name.clone()))
                })
                .map(|a| a.id.clone())
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

    /// Reload open approvals after a start: re-arm timers, send unsent mail, and turn any
    /// execution that was in flight into `outcome_unknown` (never a second run).
    pub async fn recover(self: &Arc<Self>) -> Result<usize, LedgerError> {
        let states = self.ledger.approvals()?;
        let mut pending = Vec::new();
        let mut unknown = Vec::new();
        {
            let mut guard = self.approvals.lock().await;
            for v in states {
                match serde_json::from_value::<Approval>(v) {
                    Ok(a) => {
                        match a.status {
                            Status::Pending => pending.push(a.id.clone()),
                            Status::Executing { .. } => unknown.push(a.id.clone()),
                            Status::Done(_) => {}
                        }
                        guard.insert(a.id.clone(), a);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable approval state; left as it is")
                    }
                }
            }
        }
        for id in &unknown {
            self.close(id, Outcome::OutcomeUnknown, Vec::new()).await;
            if let Some(a) = self.get(id).await {
                self.tell_outcome_unknown(&a).await;
            }
        }
        for id in &pending {
            self.after_new_stage(id).await;
        }
        Ok(pending.len())
    }
}
