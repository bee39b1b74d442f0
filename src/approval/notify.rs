//! Approval mail: the request to each approver (with their own link) and the outcome-unknown
//! notice. Each delivery is recorded in the ledger; a request is marked sent only after that.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Desk, stored};
use crate::approval::state::Approval;
use crate::envelope::Envelope;
use crate::ledger::{Change, LedgerError, NewRow};
use crate::mail::{Mail, Sent};

/// The summary for a subject line, with the exposed tool name when the summary does not say it
/// (a template's wording is the manifest's; the name is what runs).
fn titled(e: &Envelope) -> String {
    if e.summary.is_empty() {
        e.tool.clone()
    } else if e.summary.contains(&e.tool) {
        e.summary.clone()
    } else {
        format!("{} ({})", e.summary, e.tool)
    }
}

/// Waits between delivery attempts while the gate runs; after the last, the next start retries.
const RETRY: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

impl Desk {
    /// The approval, if it is still pending at `stage` (a later stage sends its own mail).
    async fn pending_at(&self, id: &str, stage: u32) -> Option<Approval> {
        self.get(id)
            .await
            .filter(|a| a.is_pending() && a.envelope.stage == stage)
    }

    /// Mail every approver of the approval's current stage who has not been mailed yet. The state
    /// is re-read for each recipient: a decision, modify or escalation mid-way stops this round
    /// (the new stage has its own).
    pub(super) async fn send_unsent(self: &Arc<Self>, id: &str) {
        let Some(start) = self.get(id).await else {
            return;
        };
        let stage = start.envelope.stage;
        for attempt in 0..=RETRY.len() {
            let Some(a) = self.pending_at(id, stage).await else {
                return;
            };
            if a.unsent.is_empty() {
                return;
            }
            for approver in a.unsent.clone() {
                let Some(a) = self.pending_at(id, stage).await else {
                    return;
                };
                if !a.unsent.contains(&approver) {
                    continue;
                }
                self.send_one(&a, &approver).await;
            }
            if let Some(wait) = RETRY.get(attempt) {
                tokio::time::sleep(*wait).await;
            }
        }
    }

    async fn send_one(&self, a: &Approval, approver: &str) {
        let Some(slot) = a.approvers.iter().position(|x| x == approver) else {
            return;
        };
        let link = self.link(a, slot);
        let e = &a.envelope;
        let mail = Mail {
            to: approver.to_string(),
            subject: format!("[Airlock] Approve? {}", titled(e)),
            body: format!(
                "{}\n\nAirlock needs a decision from role {}, by {}.\n\n{}\nOpen this link to see the full request and decide (approve, deny, modify or escalate).\nIt is yours alone: do not forward it.\n\n{link}\n\nApproval {} (stage {}).\n",
                titled(e),
                e.role,
                crate::summary::readable_time(e.expires_at),
                e.mail_text(),
                a.id,
                e.stage
            ),
            key: format!("{}-s{}-{slot}", a.id, e.stage),
        };
        let mail = Mail {
            body: format!("{}{}", mail.body, self.ledger.checkpoint_footer()),
            ..mail
        };
        if self.mailer.is_outbox() {
            tracing::info!(approval = %a.id, to = %approver, "approval link: {link}");
        }
        let sent = self.mailer.send(&mail).await;
        // Record it on the state as stored now; if another replica changes the approval between
        // the read and the commit, read again.
        for _ in 0..5 {
            if !self.record_sent(a, approver, &sent).await {
                return;
            }
        }
    }

    /// Record one mail's delivery; true if the approval changed meanwhile (record again).
    async fn record_sent(
        &self,
        a: &Approval,
        approver: &str,
        sent: &Result<Sent, crate::mail::MailError>,
    ) -> bool {
        let e = &a.envelope;
        let mut guard = self.open.lock().await;
        let Some((mut next, prior)) = self.load_raw(&a.id) else {
            return false;
        };
        let (kind, body) = match sent {
            Ok(via) => {
                if next.envelope.stage == e.stage {
                    next.unsent.retain(|x| x != approver);
                }
                let via = match via {
                    Sent::Smtp => "smtp".to_string(),
                    Sent::Outbox(p) => p.display().to_string(),
                };
                (
                    "mail_sent",
                    json!({"approval_id": a.id, "stage": e.stage, "to": approver, "via": via}),
                )
            }
            Err(err) => {
                tracing::error!(approval = %a.id, to = %approver, error = %err, "approval mail not sent; it will be retried");
                (
                    "mail_failed",
                    json!({"approval_id": a.id, "stage": e.stage, "to": approver, "error": err.to_string()}),
                )
            }
        };
        let committed = match stored(&next) {
            Ok(state) => {
                self.ledger
                    .commit(Change {
                        rows: vec![NewRow::now(kind, &next.call_id, body)],
                        approvals: vec![state.replacing(prior)],
                        ..Change::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(_) => Desk::index(&mut guard, &next),
            Err(LedgerError::Conflict(_)) => return true,
            // Unrecorded, the mail stays "unsent" and is sent again (at worst a duplicate link).
            Err(err) => {
                tracing::error!(approval = %a.id, error = %err, "cannot record mail delivery")
            }
        }
        false
    }

    /// Tell the approvers that an approved call's outcome is unknown; each notice is a ledger row.
    pub(super) async fn tell_outcome_unknown(&self, a: &Approval) {
        for to in &a.approvers {
            let mail = Mail {
                to: to.clone(),
                subject: format!("[Airlock] Outcome unknown: {}", titled(&a.envelope)),
                body: format!(
                    "Airlock stopped while running an approved call, so it cannot tell whether the call ran.\nIt will not run it again. Check the tool server before retrying.\n\n{}\nApproval {}.\n",
                    a.envelope.mail_text(),
                    a.id
                ),
                key: format!("{}-unknown-{to}", a.id),
            };
            let body = match self.mailer.send(&mail).await {
                Ok(_) => json!({"approval_id": a.id, "notice": "outcome_unknown", "to": to}),
                Err(e) => {
                    json!({"approval_id": a.id, "notice": "outcome_unknown", "to": to, "error": e.to_string()})
                }
            };
            let kind = if body.get("error").is_some() {
                "mail_failed"
            } else {
                "mail_sent"
            };
            if let Err(e) = self
                .ledger
                .append(vec![NewRow::now(kind, &a.call_id, body)])
                .await
            {
                tracing::error!(approval = %a.id, error = %e, "cannot record the outcome-unknown notice");
            }
        }
    }
}
