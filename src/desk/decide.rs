//! The desk's one decision entry point: find the item, apply the one authority rule to the
//! decider (a refusal is recorded and nothing moves), then let the item's kind commit what the
//! decision means and act on it.

use serde_json::json;

use super::{Desk, authorize};
use crate::approval::state::Step;
use crate::approval::{DecisionForm, DeskError};
use crate::auth::Facts;
use crate::authority::{Decider, Matter, Refusal};
use crate::drift::Pause;
use crate::drift::pauses::PauseError;
use crate::ledger::NewRow;
use crate::quarantine::{Held, QuarantineError};
use crate::reviewer::Reviewer;

/// A reviewer's decision (the review page, the pause page and the CLI).
#[derive(Debug, Clone, Copy)]
pub enum Act<'a> {
    /// Run a held call once.
    Release { id: &'a str },
    /// A held call never runs.
    Reject { id: &'a str, reason: &'a str },
    /// Resume autopilot for `scope` (given `call`, only the pause that call started).
    Resume {
        scope: &'a str,
        call: Option<&'a str>,
    },
    /// Write the manifest of a tool no manifest describes: the desk only admits the decider
    /// (classifying adds a file, it moves no item).
    Classify,
}

impl Act<'_> {
    /// The act's name, as `decision_refused` rows record it.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Release { .. } => "release",
            Act::Reject { .. } => "reject",
            Act::Resume { .. } => "resume",
            Act::Classify => "classify",
        }
    }
}

/// What a reviewer's decision did.
#[derive(Debug)]
pub enum Decided {
    /// A held call, released (and run once) or rejected.
    Held(Box<Held>),
    /// A pause resumed.
    Resumed(Pause),
    /// The decider may classify.
    Classify(Decider),
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The authority rule refused the decider (recorded as a `decision_refused` row).
    #[error("Not done: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Held(#[from] QuarantineError),
    #[error(transparent)]
    Pause(#[from] PauseError),
}

impl Desk {
    /// A reviewer's decision: find the item, apply the authority rule, then the kind's decision.
    pub async fn decide(&self, reviewer: &Reviewer, act: Act<'_>) -> Result<Decided, DecideError> {
        match act {
            Act::Release { id } | Act::Reject { id, .. } => {
                let h = self
                    .held
                    .get(id)
                    .ok_or_else(|| QuarantineError::NotFound(id.to_string()))?;
                let matter = Matter::Held {
                    roles: &h.roles,
                    requester: &h.actor,
                };
                let by = self.admit(reviewer, matter, id, act).await?;
                let h = match act {
                    Act::Reject { reason, .. } => self.held.reject(id, &by, reason).await?,
                    _ => self.held.release(id, &by).await?,
                };
                Ok(Decided::Held(Box::new(h)))
            }
            Act::Resume { scope, call } => {
                let pause = self
                    .pauses
                    .list()
                    .into_iter()
                    .find(|p| p.scope == scope && call.is_none_or(|c| c == p.call_id))
                    .ok_or_else(|| PauseError::NotPaused(scope.to_string()))?;
                let requester = self.held.get(&pause.call_id).map(|h| h.actor);
                let matter = Matter::Pause {
                    role: pause.notify.as_deref(),
                    requester: requester.as_deref(),
                };
                let by = self.admit(reviewer, matter, &pause.call_id, act).await?;
                let p = self.pauses.resume(scope, Some(&pause.call_id), &by).await?;
                Ok(Decided::Resumed(p))
            }
            Act::Classify => Ok(Decided::Classify(
                self.admit(reviewer, Matter::Classify, "", act).await?,
            )),
        }
    }

    /// A decision posted from an approval page, by a decider authenticated as `auth` says.
    /// The approval's link names its approver; the desk hands the approvals its [`authorize`]
    /// rule, which they ask under their lock about the stage asked now (a refusal is a
    /// `link_refused` row, and nothing moves).
    pub async fn decide_approval(
        &self,
        id: &str,
        slot: usize,
        token: &str,
        form: DecisionForm,
        auth: &Facts,
    ) -> Result<Step, DeskError> {
        let admit = |matter: &Matter<'_>, who: &str| authorize(&self.live.setup(), matter, who);
        self.approvals
            .decide(id, slot, token, form, auth, &admit)
            .await
    }

    /// The decider for `matter`, if the authority rule admits the reviewer; a refusal is
    /// recorded in the ledger (under `call_id`) before it is answered.
    async fn admit(
        &self,
        reviewer: &Reviewer,
        matter: Matter<'_>,
        call_id: &str,
        act: Act<'_>,
    ) -> Result<Decider, DecideError> {
        let setup = self.live.setup();
        match authorize(&setup, &matter, &reviewer.email) {
            Ok(roles) => Ok(Decider {
                who: reviewer.email.clone(),
                roles,
                auth: reviewer.auth(),
            }),
            Err(refusal) => {
                let row = NewRow::now(
                    "decision_refused",
                    call_id,
                    json!({"act": act.name(), "by": reviewer.email, "auth": reviewer.auth(), "reason": refusal.to_string()}),
                );
                if let Err(e) = self.ledger.append(vec![row]).await {
                    tracing::error!(error = %e, "cannot record a refused decision");
                }
                tracing::warn!(by = %reviewer.email, act = act.name(), %call_id, reason = %refusal, "decision refused");
                Err(DecideError::Refused(refusal))
            }
        }
    }
}
