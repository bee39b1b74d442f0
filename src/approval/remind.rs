//! Reminders: at the class's `remind_at` share of a stage's timeout, the stage's approvers who
//! have not decided are reminded once — the `reminder` row and the state marking the stage
//! reminded are committed first, then each is mailed their own link (a crash in between loses
//! that mail, never sends it twice), and the role's channels hear of it from the row.
//!
//! It must never remind a stage twice, remind anyone who already decided, or change a decision.

use std::sync::Arc;

use super::notify::Ask;
use super::{Approvals, index::Due, stored};
use crate::approval::state::Approval;
use crate::ledger::row::{self, MailAbout};
use crate::ledger::{Change, LedgerError, NewRow, Row};

impl Approvals {
    /// Arm approval `id`'s reminder, if its stage is due one.
    pub(super) async fn arm_reminder(self: &Arc<Self>, id: &str) {
        if let Some(at) = self.get(id).await.and_then(|a| a.reminder_due()) {
            self.timers.arm_for(self, at, id, Due::Reminder);
        }
    }

    /// The reminder came due: record it, then mail the undecided approvers (in the background:
    /// the timer wheel serves every approval).
    pub(super) async fn remind(self: &Arc<Self>, id: &str) {
        let mut guard = self.open.lock().await;
        let Some((a, prior)) = self.load_raw(id) else {
            return;
        };
        let Some(due) = a.reminder_due() else {
            return;
        };
        let now = crate::instant::now();
        if due > now {
            drop(guard);
            self.timers.arm_for(self, due, id, Due::Reminder);
            return;
        }
        if now >= a.envelope.expires_at {
            return; // too late: the timeout decides now
        }
        let to = a.undecided();
        let mut next = a.clone();
        next.reminded = Some(a.envelope.expires_at);
        let mut rows = Vec::new();
        if !to.is_empty() {
            rows.push(NewRow::now(
                &a.call_id,
                Row::Reminder(row::Reminder {
                    approval_id: a.id.clone(),
                    stage: a.envelope.stage,
                    role: a.envelope.role.clone(),
                    to: to.clone(),
                }),
            ));
        }
        let committed = match stored(&next) {
            Ok(state) => {
                let items = vec![state.replacing(prior)];
                (self.ledger)
                    .commit(Change {
                        rows,
                        items,
                        ..Change::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        drop(match committed {
            Ok(_) => {
                Approvals::index(&mut guard, &next);
                guard
            }
            // changed meanwhile (a decision, another replica's reminder): look again
            Err(LedgerError::Conflict(_)) => {
                drop(guard);
                return self.arm_reminder(id).await;
            }
            Err(e) => {
                tracing::error!(approval = %a.id, error = %e, "cannot record the reminder; trying again in 5 s");
                drop(guard);
                let again = now + chrono::TimeDelta::seconds(5);
                return self.timers.arm_for(self, again, id, Due::Reminder);
            }
        });
        let (me, stage) = (self.clone(), a.envelope.stage);
        let id = id.to_string();
        tokio::spawn(async move {
            for approver in to {
                // as it stands now: someone who decided meanwhile, or a stage that moved on, is not mailed
                let Some(now) = me
                    .get(&id)
                    .await
                    .filter(|x| x.is_pending() && x.envelope.stage == stage)
                else {
                    return;
                };
                if now.undecided().contains(&approver) {
                    me.mail_reminder(&now, &approver).await;
                }
            }
        });
    }

    /// One approver's reminder: their own link again; the delivery is a row.
    async fn mail_reminder(&self, a: &Approval, approver: &str) {
        let Some(slot) = a.approvers.iter().position(|x| x == approver) else {
            return;
        };
        let mail = self.request_mail(a, slot, Ask::Reminder, "-reminder");
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
