//! The desk's one start and adoption path: every kind's stored items are read back, and one
//! rule ([`lifecycle::on_start`]) says what happens to each — executing → `outcome_unknown`,
//! never re-run; waiting → its deadline re-armed and its unsent mail sent; done → nothing. The
//! kinds only read their items back and perform the acts asked of them.

use chrono::{DateTime, Utc};

use super::Desk;
use super::lifecycle::{self, OnStart, Phase};
use crate::ledger::LedgerError;
use crate::quarantine::Quarantine;

/// Which kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Approval,
    Held,
}

/// An item a start (or an adoption) found stored.
#[derive(Debug, Clone)]
pub struct Found {
    pub kind: Kind,
    pub id: String,
    pub phase: Phase,
    /// When it decides itself if nobody does (an approval's stage deadline).
    pub deadline: Option<DateTime<Utc>>,
    /// Someone who may decide it was not told yet.
    pub unsent: bool,
    /// The stored bytes a change must still find (an adopted item another replica may touch).
    pub prior: Option<Vec<u8>>,
}

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
    /// the desk acts on them by the start rule. Sharing the ledger with other replicas it only
    /// follows them (deadlines armed, nothing acted on): its own leftovers and dead replicas'
    /// come through [`Desk::adopt`], each to one replica.
    pub async fn start(&self) -> Result<Started, LedgerError> {
        let act = !self.ledger.is_shared();
        let entries = self.approvals.stored_open().await?;
        let mut found = self.approvals.load_found(entries, !act).await;
        found.extend(self.held.load(self.held.stored()?)?);
        self.apply_start_rule(found, act).await?;
        Ok(Started {
            approvals: self.approvals.open_count().await.0,
            held: self.held.list().iter().filter(|h| h.is_held()).count(),
            paused: self.pauses.list().len(),
        })
    }

    /// For a replica sharing the ledger (again, after its notices were interrupted): every
    /// open approval read back and its deadline armed, acting on none.
    pub async fn follow(&self) -> Result<usize, LedgerError> {
        let entries = self.approvals.stored_open().await?;
        let found = self.approvals.load_found(entries, true).await;
        self.apply_start_rule(found, false).await?;
        Ok(self.approvals.open_count().await.0)
    }

    /// Adopt the items of a replica that stopped answering (or of this replica's previous
    /// run), as a start would. Pauses need nothing: they are shared keys every replica reads
    /// each beat.
    pub async fn adopt(
        &self,
        approvals: Vec<(String, Vec<u8>)>,
        held: Vec<Vec<u8>>,
    ) -> Result<(), LedgerError> {
        let mut found = self.approvals.load_found(approvals, false).await;
        found.extend(self.held.load(Quarantine::adopted(held))?);
        self.apply_start_rule(found, true).await
    }

    /// The start rule, applied to every item found: with `act`, items found executing become
    /// `outcome_unknown` and waiting items' unsent mail is sent; waiting items' deadlines are
    /// armed either way (a stale deadline fires harmlessly: each kind checks its state).
    async fn apply_start_rule(&self, found: Vec<Found>, act: bool) -> Result<(), LedgerError> {
        for f in found {
            match (lifecycle::on_start(f.phase), f.kind) {
                (OnStart::Rearm, Kind::Approval) => {
                    if let Some(at) = f.deadline {
                        self.approvals.arm(at, &f.id);
                    }
                    if act && f.unsent {
                        self.approvals.resend(&f.id);
                    }
                }
                // a held call waits without a deadline, and its reviewers were told when held
                (OnStart::Rearm, Kind::Held) | (OnStart::Keep, _) => {}
                (OnStart::Unknown, _) if !act => {}
                (OnStart::Unknown, Kind::Approval) => self.approvals.close_unknown(&f.id).await,
                (OnStart::Unknown, Kind::Held) => self.held.close_unknown(&f.id, f.prior).await?,
            }
        }
        Ok(())
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
