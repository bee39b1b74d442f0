//! Approval mail: the request to each approver (with their own link) and the outcome-unknown
//! notice. Each delivery is recorded before the approval's state says it was sent.

use std::sync::Arc;

use serde_json::json;

use super::{Desk, row, snapshot};
use crate::approval::state::Approval;
use crate::ledger::Change;
use crate::mail::{Mail, Sent};

impl Desk {
    pub(super) async fn send_unsent(self: &Arc<Self>, id: &str) {
        let Some(a) = self.get(id).await else { return };
        for approver in a.unsent.clone() {
            let Some(slot) = a.approvers.iter().position(|x| *x == approver) else {
                continue;
            };
            let link = self.link(&a, slot);
            let e = &a.envelope;
            let mail = Mail {
                to: approver.clone(),
                subject: format!(
                    "[Airlock] Approve {}? ({}, decide by {})",
                    e.tool,
                    e.class,
                    e.expires_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                ),
                body: format!(
                    "Airlock needs a decision from role `{}`.\n\n{}\nOpen this link to see the full request and decide (approve, deny, modify or escalate).\nIt is yours alone: do not forward it.\n\n{link}\n\nApproval {} (stage {}).\n",
                    e.role,
                    e.summary(),
                    a.id,
                    e.stage
                ),
                key: format!("{}-s{}-{slot}", a.id, e.stage),
            };
            if self.mailer.is_outbox() {
                tracing::info!(approval = %a.id, to = %approver, "approval link: {link}");
            }
            let (kind, body) = match self.mailer.send(&mail).await {
                Ok(sent) => (
                    "mail_sent",
                    json!({"approval_id": a.id, "stage": e.stage, "to": approver, "via": match sent { Sent::Smtp => "smtp".to_string(), Sent::Outbox(p) => p.display().to_string() }}),
                ),
                Err(err) => {
                    tracing::error!(approval = %a.id, to = %approver, error = %err, "approval mail not sent; it is retried at the next start");
                    (
                        "mail_failed",
                        json!({"approval_id": a.id, "stage": e.stage, "to": approver, "error": err.to_string()}),
                    )
                }
            };
            let mut guard = self.approvals.lock().await;
            let Some(cur) = guard.get_mut(id) else { return };
            if kind == "mail_sent" && cur.envelope.stage == e.stage {
                cur.unsent.retain(|x| *x != approver);
            }
            let change = Change {
                rows: vec![row(kind, &cur.call_id, body)],
                approvals: vec![snapshot(cur)],
            };
            if let Err(err) = self.ledger.commit(change).await {
                tracing::error!(approval = %id, error = %err, "cannot record mail delivery");
            }
        }
    }

    pub(super) async fn tell_outcome_unknown(&self, a: &Approval) {
        for to in &a.approvers {
            let mail = Mail {
                to: to.clone(),
                subject: format!("[Airlock] Outcome unknown: {}", a.envelope.tool),
                body: format!(
                    "Airlock stopped while running an approved call, so it cannot tell whether the call ran.\nIt will not run it again. Check the tool server before retrying.\n\n{}\nApproval {}.\n",
                    a.envelope.summary(),
                    a.id
                ),
                key: format!("{}-unknown-{to}", a.id),
            };
            if let Err(e) = self.mailer.send(&mail).await {
                tracing::error!(approval = %a.id, error = %e, "cannot mail the outcome-unknown notice");
            }
        }
    }
}
