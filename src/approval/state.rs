//! The approval state machine, pure: votes and timeouts in, the next state and what happened out.
//!
//! Every rule about who may decide and what a decision means lives here (separation of duties,
//! single-use votes, N distinct approvers, any deny denies, escalation chains ending in deny,
//! exactly one terminal outcome). It must never do I/O: the desk commits and acts on the `Step`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::desk::Phase;
use crate::envelope::Envelope;
use crate::policy::OnTimeout;

/// What an approver chose on the page: the word its `decision` row records.
pub use crate::ledger::row::Choice;

/// How an approval ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Approved and executed; the tool's result (MCP `CallToolResult` JSON).
    Executed { result: Value, is_error: bool },
    /// Approved, but the tool server could not be reached or failed the call.
    Failed { error: String },
    /// Denied by a person or by a timeout.
    Denied { by: String, reason: String },
    /// Timed out with `on_timeout = "expire"`: nothing ran.
    Expired,
    /// The gate stopped between recording the execution intent and the tool's reply; the call may
    /// or may not have run and is never run again.
    OutcomeUnknown,
    /// Withdrawn by Airlock before a decision (e.g. the tool's definition changed); nothing ran.
    Voided { reason: String },
}

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Pending,
    /// Approved; the execution intent is durable and the call is being made.
    Executing {
        idempotency_key: String,
    },
    Done(Outcome),
}

/// One approval's full state, stored in the ledger's approvals table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub call_id: String,
    pub envelope: Envelope,
    pub envelope_hash: String,
    /// The agent's `_meta`, forwarded with the call when it executes.
    pub meta: Option<Map<String, Value>>,
    /// How long each stage may wait, in seconds.
    pub timeout_secs: u64,
    /// Addresses of the role asked at the current stage, in link-slot order.
    pub approvers: Vec<String>,
    /// Approvers who approved the current envelope (distinct).
    pub approved_by: Vec<String>,
    /// Approvers whose link for the current stage has been used (links are single use).
    pub used: Vec<String>,
    /// Approvers at the current stage not yet mailed.
    pub unsent: Vec<String>,
    pub status: Status,
    /// The values the manifest's `redact` took out of the envelope's arguments, sealed
    /// ([`crate::seal`]) until the approval ends; then gone from the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// The class's `remind_at`: the share of each stage's timeout after which its undecided
    /// approvers are reminded (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_pct: Option<u8>,
    /// The expiry of the stage clock whose approvers were last reminded: one reminder per
    /// stage clock (a modification keeps the clock, and so is not reminded again; an escalation
    /// starts a new one).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::instant::serde_rfc3339_option"
    )]
    pub reminded: Option<DateTime<Utc>>,
}

/// Why a vote is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this approval is no longer pending")]
    NotPending,
    #[error("this link has expired")]
    Expired,
    #[error("this link has already been used")]
    AlreadyUsed,
    #[error("the requester cannot approve its own call")]
    SelfApproval,
    #[error("an agent identity cannot approve")]
    AgentApprover,
    #[error("{0} is not an approver for this request")]
    NotAnApprover(String),
    #[error("role `{0}` has no escalate_to role")]
    NoEscalation(String),
    #[error("the request changed since this page was opened; open the newest link")]
    Stale,
}

/// What a vote or a timeout did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An approve was counted; more are needed.
    Counted { have: usize, need: u32 },
    /// Enough approvals: execute now.
    Approved,
    /// Ended denied.
    Denied,
    /// Ended as a logged no-op.
    Expired,
    /// Moved to a new stage (escalation or modification) that must be mailed.
    NewStage,
}

/// The next role up, as the policy defines it.
pub struct NextRole<'a> {
    pub name: &'a str,
    pub emails: &'a [String],
}

impl Status {
    /// Where this stands in the desk's one lifecycle.
    pub fn phase(&self) -> Phase {
        match self {
            Status::Pending => Phase::Waiting,
            Status::Executing { .. } => Phase::Executing,
            Status::Done(_) => Phase::Done,
        }
    }
}

impl Approval {
    /// Waiting for a decision (the desk's lifecycle: only then may anyone vote or time it out).
    pub fn is_pending(&self) -> bool {
        crate::desk::lifecycle::open_to_decide(self.status.phase()).is_ok()
    }

    /// Checks every vote must pass: pending, in time, a listed approver, not the requester, unused.
    fn may_vote(&self, approver: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
        if !self.is_pending() {
            return Err(Refusal::NotPending);
        }
        if now >= self.envelope.expires_at {
            return Err(Refusal::Expired);
        }
        if approver.eq_ignore_ascii_case(&self.envelope.actor) {
            return Err(Refusal::SelfApproval);
        }
        if approver.starts_with("agent:") {
            return Err(Refusal::AgentApprover);
        }
        if !self
            .approvers
            .iter()
            .any(|a| a.eq_ignore_ascii_case(approver))
        {
            return Err(Refusal::NotAnApprover(approver.to_string()));
        }
        if self.used.iter().any(|a| a.eq_ignore_ascii_case(approver)) {
            return Err(Refusal::AlreadyUsed);
        }
        Ok(())
    }

    /// Approve or deny by `approver`.
    pub fn vote(
        &mut self,
        approver: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Result<Step, Refusal> {
        self.may_vote(approver, now)?;
        self.used.push(approver.to_string());
        if !approve {
            return Ok(Step::Denied);
        }
        self.approved_by.push(approver.to_string());
        if self.approved_by.len() >= self.envelope.min_approvals as usize {
            Ok(Step::Approved)
        } else {
            Ok(Step::Counted {
                have: self.approved_by.len(),
                need: self.envelope.min_approvals,
            })
        }
    }

    /// Modify by `approver`: the edited envelope replaces the old one; the modifier's vote counts
    /// as an approval of exactly the new arguments, earlier approvals (of other arguments) do not.
    pub fn modify(
        &mut self,
        approver: &str,
        edited: Envelope,
        now: DateTime<Utc>,
    ) -> Result<Step, Refusal> {
        self.may_vote(approver, now)?;
        self.envelope = edited;
        self.envelope_hash = self.envelope.hash();
        self.approved_by = vec![approver.to_string()];
        self.used = vec![approver.to_string()];
        if self.envelope.min_approvals <= 1 {
            return Ok(Step::Approved);
        }
        self.unsent = self
            .approvers
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case(approver))
            .cloned()
            .collect();
        Ok(Step::NewStage)
    }

    /// Escalate by `approver` to the next role.
    pub fn escalate(
        &mut self,
        approver: &str,
        next: Option<NextRole<'_>>,
        now: DateTime<Utc>,
    ) -> Result<Step, Refusal> {
        self.may_vote(approver, now)?;
        let next = next.ok_or_else(|| Refusal::NoEscalation(self.envelope.role.clone()))?;
        self.next_stage(next, now);
        Ok(Step::NewStage)
    }

    /// The clock ran out at `now` (the desk only calls this once `expires_at` has passed).
    pub fn time_out(&mut self, next: Option<NextRole<'_>>, now: DateTime<Utc>) -> Option<Step> {
        if !self.is_pending() || now < self.envelope.expires_at {
            return None;
        }
        Some(match (self.envelope.on_timeout, next) {
            (OnTimeout::Expire, _) => Step::Expired,
            (OnTimeout::Escalate, Some(next)) => {
                self.next_stage(next, now);
                Step::NewStage
            }
            // deny, or an escalation chain that has run out of roles
            (OnTimeout::Deny | OnTimeout::Escalate, _) => Step::Denied,
        })
    }

    /// When this stage's undecided approvers are due a reminder, if they are and have not had
    /// one: `remind_pct` of the stage's timeout after it began (its expiry less the timeout).
    pub fn reminder_due(&self) -> Option<DateTime<Utc>> {
        let pct = self.remind_pct?;
        if !self.is_pending() || self.reminded == Some(self.envelope.expires_at) {
            return None;
        }
        let timeout = i64::try_from(self.timeout_secs).unwrap_or(i64::MAX);
        let left = timeout.saturating_mul(i64::from(100 - pct.min(99))) / 100;
        Some(self.envelope.expires_at - TimeDelta::seconds(left))
    }

    /// The current stage's approvers who have neither decided nor used their link, were mailed
    /// its request already, and are not the requester.
    pub fn undecided(&self) -> Vec<String> {
        let requester = self.envelope.actor.to_lowercase();
        (self.approvers.iter())
            .filter(|a| !self.used.contains(a) && !self.approved_by.contains(a))
            .filter(|a| !self.unsent.contains(a) && a.to_lowercase() != requester)
            .cloned()
            .collect()
    }

    fn next_stage(&mut self, next: NextRole<'_>, now: DateTime<Utc>) {
        let mut e = self.envelope.clone();
        e.stage += 1;
        e.role = next.name.to_string();
        e.min_approvals = e
            .min_approvals
            .min(u32::try_from(next.emails.len()).unwrap_or(u32::MAX))
            .max(1);
        e.expires_at =
            now + TimeDelta::seconds(i64::try_from(self.timeout_secs).unwrap_or(i64::MAX));
        self.envelope = e;
        self.envelope_hash = self.envelope.hash();
        self.approvers = next.emails.to_vec();
        self.approved_by.clear();
        self.used.clear();
        self.unsent = self.approvers.clone();
    }
}

#[cfg(test)]
mod tests;
