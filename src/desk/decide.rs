//! The desk's one decision entry point: find the item, apply the one authority rule to the
//! decider (a refusal is recorded and nothing moves), then let the item's kind commit what the
//! decision means and act on it.
//!
//! The review side proves who the decider is first (a personal link, and a sign-in or a TOTP
//! code where the matter's roles require one: `web::review::signin`, which asks the same
//! [`authorize`] rule before it checks them); the desk applies the rule again here, on the item
//! as it is now, so no decision reaches a kind unauthorized.

use super::{Desk, authorize};
use crate::approval::state::Step;
use crate::approval::{DecisionForm, DeskError};
use crate::auth::Facts;
use crate::authority::{Decider, Matter, Refusal};
use crate::drift::Pause;
use crate::drift::pauses::PauseError;
use crate::ledger::{NewRow, Row, row};
use crate::quarantine::{Held, QuarantineError, Seen};

/// A reviewer's decision on an item (the review page, the pause page and the CLI).
#[derive(Debug, Clone, Copy)]
pub enum Act<'a> {
    /// Run a held call once; `seen` is what the reviewer was shown.
    Release { id: &'a str, seen: &'a Seen },
    /// A held call never runs.
    Reject {
        id: &'a str,
        reason: &'a str,
        seen: &'a Seen,
    },
    /// Resume autopilot for `scope` (given `call`, only the pause that call started).
    Resume {
        scope: &'a str,
        call: Option<&'a str>,
    },
}

impl Act<'_> {
    /// The act's name, as `decision_refused` rows record it.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Release { .. } => "release",
            Act::Reject { .. } => "reject",
            Act::Resume { .. } => "resume",
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
    /// A reviewer's decision: find the item, apply the authority rule to `by` on it, then the
    /// kind's decision.
    pub async fn decide(&self, by: &Decider, act: Act<'_>) -> Result<Decided, DecideError> {
        match act {
            Act::Release { id, seen } => {
                self.authorize_held(by, id, act).await?;
                let h = self.held.release(id, by, seen).await?;
                Ok(Decided::Held(Box::new(h)))
            }
            Act::Reject { id, reason, seen } => {
                self.authorize_held(by, id, act).await?;
                let h = self.held.reject(id, by, reason, seen).await?;
                Ok(Decided::Held(Box::new(h)))
            }
            Act::Resume { scope, call } => {
                let pause = self.paused(scope, call)?;
                let requester = self.held.get(&pause.call_id).map(|h| h.actor);
                let matter = Matter::Pause {
                    role: pause.notify.as_deref(),
                    requester: requester.as_deref(),
                };
                self.authorize_decision(by, matter, &pause.call_id, act)
                    .await?;
                let p = self.pauses.resume(scope, Some(&pause.call_id), by).await?;
                Ok(Decided::Resumed(p))
            }
        }
    }

    /// The authority rule on held call `id`: its roles, and its requester never deciding.
    async fn authorize_held(
        &self,
        by: &Decider,
        id: &str,
        act: Act<'_>,
    ) -> Result<(), DecideError> {
        let h = self
            .held
            .get(id)
            .ok_or_else(|| QuarantineError::NotFound(id.to_string()))?;
        let matter = Matter::Held {
            roles: &h.roles,
            requester: &h.actor,
        };
        self.authorize_decision(by, matter, id, act).await
    }

    /// The pause in force for `scope` (given `call`, only the one that call started).
    pub fn paused(&self, scope: &str, call: Option<&str>) -> Result<Pause, PauseError> {
        self.pauses
            .list()
            .into_iter()
            .find(|p| p.scope == scope && call.is_none_or(|c| c == p.call_id))
            .ok_or_else(|| PauseError::NotPaused(scope.to_string()))
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
        let rule = |matter: &Matter<'_>, who: &str| authorize(&self.live.setup(), matter, who);
        self.approvals
            .decide(id, slot, token, form, auth, &rule)
            .await
    }

    /// A `decision_refused` row for `who` under `call_id`, within their refusal quota (20 a
    /// minute; the next one recorded says how many were left out).
    pub async fn record_refused(&self, call_id: &str, mut body: row::DecisionRefused) {
        let now = crate::instant::now();
        let Some(left_out) = self.held.refusal_quota(&body.by, now) else {
            return;
        };
        if left_out > 0 {
            body.suppressed_before = Some(u64::from(left_out));
        }
        let row = NewRow::now(call_id, Row::DecisionRefused(body));
        if let Err(e) = self.ledger.append(vec![row]).await {
            tracing::error!(error = %e, "cannot record a refused decision");
        }
    }

    /// Whether the authority rule authorizes `by` to decide `matter` now; a refusal is recorded
    /// in the ledger (under `call_id`, within the decider's refusal quota) before it is answered.
    async fn authorize_decision(
        &self,
        by: &Decider,
        matter: Matter<'_>,
        call_id: &str,
        act: Act<'_>,
    ) -> Result<(), DecideError> {
        let Err(refusal) = authorize(&self.live.setup(), &matter, &by.who) else {
            return Ok(());
        };
        let body = row::DecisionRefused {
            act: act.name().to_string(),
            by: by.who.clone(),
            auth: Some(by.auth.clone()),
            reason: refusal.to_string(),
            attempt: None,
            suppressed_before: None,
        };
        self.record_refused(call_id, body).await;
        tracing::warn!(by = %by.who, act = act.name(), %call_id, reason = %refusal, "decision refused");
        Err(DecideError::Refused(refusal))
    }
}
