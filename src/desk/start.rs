//! The desk's one start and adoption path: every kind's stored items read back, each treated by
//! [`lifecycle::on_start`] (executing → `outcome_unknown`, never re-run; waiting → re-armed).

use super::Desk;
use crate::ledger::LedgerError;

/// What a start found open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Started {
    /// Approvals open (waiting, or closed as `outcome_unknown` just now).
    pub approvals: usize,
    /// Calls still held for review.
    pub held: usize,
    /// Scopes paused (their pauses are in the committed counters, reloaded with the meter).
    pub paused: usize,
}

impl Desk {
    /// Read back every open item after a start (a clean stop or a crash). Alone on its ledger
    /// the desk acts on them: an item found executing becomes `outcome_unknown` (never re-run),
    /// waiting items get their deadlines re-armed and their unsent mail sent. Sharing the
    /// ledger with other replicas it only follows them: its own leftovers and dead replicas'
    /// come through [`Desk::adopt`], each to one replica.
    pub async fn start(&self) -> Result<Started, LedgerError> {
        let approvals = match self.ledger.shared() {
            None => self.approvals.recover().await?,
            Some(_) => self.approvals.follow().await?,
        };
        let held = self.held.recover().await?;
        Ok(Started {
            approvals,
            held,
            paused: self.pauses.list().len(),
        })
    }

    /// Take over the items of a replica that stopped answering (or of this replica's previous
    /// run), as a start would: executing → `outcome_unknown`, waiting → re-armed, mail sent.
    /// Pauses need nothing: they are shared keys every replica reads each beat.
    pub async fn adopt(
        &self,
        approvals: Vec<(String, Vec<u8>)>,
        held: Vec<Vec<u8>>,
    ) -> Result<(), LedgerError> {
        self.approvals.adopt(approvals).await;
        self.held.adopt(held).await.map(|_| ())
    }

    /// Before a clean exit: let every item executing now (approved calls, released held calls)
    /// finish and record its outcome, up to `limit`; what is still running then becomes
    /// `outcome_unknown` at the next start.
    pub async fn drain(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        self.approvals.drain(limit).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.held.drain(left).await;
    }
}
