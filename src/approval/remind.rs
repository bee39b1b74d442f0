//! Reminders: at the class's `remind_at` share of a stage's timeout, the stage's approvers who
//! have not decided are reminded once — the `reminder` row and the state marking the stage
//! reminded are committed first, then each is mailed their own link (a crash in between loses
//! that mail, never sends it twice), and the role's channels hear of it from the row.
//!
//! It must never remind a stage twice, remind anyone who already decided, or change a decision.

use std::sync::Arc;

use super::notify::{request_text, subject, titled};
use super::{Approvals, index::Due, stored};
use crate::approval::state::Approval;
use crate::ledger::row::{self, MailAbout};
use crate::ledger::{Change, LedgerError, NewRow, Row};
use crate::mail::Mail;

impl Approvals {
    /// Arm approval `id`'s reminder, if its stage is due one.
    pub(super) async fn arm_reminder(self: &Arc<Self>, id: &str) {
        if let Some(at) = self.get(id).await.and_then(|a| a.reminder_due()) {
            self.timers.arm_for(self, at, id, Due::Reminder);
        }
    }

    /// The reminder came due: record it, then mail the undecided approvers.
    pub(super) async fn remind(self: &Arc<Self>, id: &str) {
        let mut guard = self.open.lock().await;
        let Some((a, prior)) = self.load_raw(id) else {
            return;
        };
        let Some(due) = a.reminder_due() else {
            return;
        };
        if due > crate::instant::now() {
            drop(guard);
            self.timers.arm_for(self, due, id, Due::Reminder);
            return;
        }
        let to = a.undecided();
        let mut next = a.clone();
        next.reminded = Some(a.envelope.stage);
        let row = Row::Reminder(row::Reminder {
            approval_id: a.id.clone(),
            stage: a.envelope.stage,
            role: a.envelope.role.clone(),
            to: to.clone(),
        });
        let committed = match stored(&next) {
            Ok(state) => {
                let change = Change {
                    rows: vec![NewRow::now(&a.call_id, row)],
                    items: vec![state.replacing(prior)],
                    ..Change::default()
                };
                self.ledger.commit(change).await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(_) => Approvals::index(&mut guard, &next),
            // changed meanwhile (a decision, another replica's reminder): look again
            Err(LedgerError::Conflict(_)) => {
                drop(guard);
                return Box::pin(self.arm_reminder(id)).await;
            }
            Err(e) => {
                tracing::error!(approval = %a.id, error = %e, "cannot record the reminder; it is not sent");
                return;
            }
        }
        drop(guard);
        for approver in to {
            self.mail_reminder(&next, &approver).await;
        }
    }

    /// One approver's reminder: their own link again; the delivery is a row.
    async fn mail_reminder(&self, a: &Approval, approver: &str) {
        let Some(slot) = a.approvers.iter().position(|x| x == approver) else {
            return;
        };
        let e = &a.envelope;
        let mail = Mail {
            to: approver.to_string(),
            subject: subject("[Airlock] Reminder: approve? ", e),
            body: format!(
                "{}\n\nStill waiting for a decision from role {}, by {}.\n\n{}\nOpen this link to see the full request and decide (approve, deny, modify or escalate).\nIt is yours alone: do not forward it.\n\n{}\n\nApproval {} (stage {}).\n",
                titled(e),
                e.role,
                crate::summary::readable_time(e.expires_at),
                request_text(e),
                self.link(a, slot),
                a.id,
                e.stage
            ),
            key: format!("{}-s{}-{slot}-reminder", a.id, e.stage),
        };
        let sent = self.mailer.send(&mail).await;
        let row = Row::mail(
            MailAbout::Notice {
                approval_id: a.id.clone(),
                notice: "reminder".to_string(),
            },
            approver,
            crate::mail::delivered(&sent),
        );
        if let Err(e) = self.ledger.append(vec![NewRow::now(&a.call_id, row)]).await {
            tracing::error!(approval = %a.id, error = %e, "cannot record a reminder's mail");
        }
    }
}
