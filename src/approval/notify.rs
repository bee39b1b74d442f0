//! Approval mail: the request to each approver (with their own link) and the outcome-unknown
//! notice. Each delivery is recorded in the ledger; a request is marked sent only after that.
//! The request is plain text shown through [`crate::shown`]: hidden characters as escapes with a
//! warning line, the agent's values under "Written by the agent", links in them broken.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Approvals, stored};
use crate::approval::state::Approval;
use crate::canonical;
use crate::envelope::{Envelope, plain};
use crate::ledger::row::{self, MailAbout};
use crate::ledger::{Change, LedgerError, NewRow, Row};
use crate::mail::{Mail, Sent};
use crate::shown::{self, request};

/// The summary with the exposed tool name when the summary does not say it (a template's
/// wording is the manifest's; the name is what runs). As mail shows text: hidden characters as
/// escapes, on one line, links broken. The body's first line; the subject's is [`subject`].
pub(super) fn titled(e: &Envelope) -> String {
    title(
        &cut_summary(e, shown::MAIL_VALUE_CHARS),
        &e.tool,
        usize::MAX,
    )
}

/// The longest a value the agent wrote stands in a subject line, in characters.
const SUBJECT_VALUE_CHARS: usize = 60;

/// The summary with each value the agent wrote cut to `chars`.
fn cut_summary(e: &Envelope, chars: usize) -> String {
    let spans = request::summary_spans(e);
    request::pieces(&e.summary, &spans)
        .into_iter()
        .map(|(text, agent)| {
            if agent {
                crate::summary::shorten(text, chars)
            } else {
                text.to_string()
            }
        })
        .collect()
}

/// A value as the body shows it: cut past [`shown::MAIL_VALUE_CHARS`], with where to read it whole.
fn mail_value(text: String) -> String {
    shown::cut_for_mail(text, "the approval page")
}

/// A subject line: `prefix`, then [`titled`] with each value the agent wrote cut to
/// [`SUBJECT_VALUE_CHARS`] and the summary cut so the whole line fits
/// [`crate::mail::SUBJECT_CHARS`] with the tool's name kept. The body keeps every value whole.
pub(super) fn subject(prefix: &str, e: &Envelope) -> String {
    let summary = cut_summary(e, SUBJECT_VALUE_CHARS);
    let room = crate::mail::SUBJECT_CHARS.saturating_sub(prefix.chars().count());
    format!("{prefix}{}", title(&summary, &e.tool, room))
}

/// `summary (tool)` (or the one that says it all) in at most `room` characters: the summary is
/// cut first, the tool's name kept while it fits.
fn title(summary: &str, tool: &str, room: usize) -> String {
    let (summary, tool) = (shown::line(summary), shown::line(tool));
    let tool = tool.as_str();
    let title = if summary.is_empty() {
        crate::summary::shorten(tool, room)
    } else if summary.contains(tool) {
        crate::summary::shorten(&summary, room)
    } else {
        let suffix = format!(" ({tool})");
        let left = room.saturating_sub(suffix.chars().count());
        if left < SUBJECT_VALUE_CHARS.min(room) {
            crate::summary::shorten(&format!("{summary}{suffix}"), room)
        } else {
            format!("{}{suffix}", crate::summary::shorten(&summary, left))
        }
    };
    shown::break_links(&title)
}

/// The request in plain text (no markdown), as [`crate::shown`] shows text: a warning line when
/// anything hides or imitates characters; what Airlock and the manifest say; then the agent's
/// own values, one per line (a value cannot start a line of its own: its line breaks are
/// escapes), between "Written by the agent" and "End of the agent's text". Every link is broken.
pub(super) fn request_text(e: &Envelope) -> String {
    let mut t = String::new();
    if let Some(w) = shown::warning(&request::flags(e)) {
        t.push_str(&format!("WARNING: {w}\n\n"));
    }
    let one = shown::line;
    t.push_str(&format!(
        "Action:    {} on tool server {}\nClass:     {}\nActor:     {}\nTarget:    {}\nImpact:    {}\nWhy:       {} (policy {})\nReversal:  {}\nExpires:   {}, then {}\n",
        one(&e.tool),
        one(&e.server),
        one(&e.class),
        one(&e.actor),
        one(&e.target),
        one(&e.impact),
        one(&plain(&e.reason)),
        one(&e.policy_version),
        one(&e.reversal),
        e.expires_words(),
        e.timeout_words(),
    ));
    t.push_str(&agent_text(e));
    shown::break_links(&t)
}

/// The agent's part of the request, marked as such.
fn agent_text(e: &Envelope) -> String {
    let value = |v: &Value| {
        let v = &crate::redact::for_people(v);
        mail_value(match v {
            Value::String(s) => shown::line(s),
            v => shown::json(&canonical::to_string(v)),
        })
    };
    let mut t = format!(
        "\nWritten by the agent ({}), not by Airlock:\n",
        shown::line(&e.actor)
    );
    let spans = request::summary_spans(e);
    if !spans.is_empty() {
        let parts: Vec<String> = request::pieces(&e.summary, &spans)
            .into_iter()
            .filter(|(_, agent)| *agent)
            .map(|(s, _)| format!("“{}”", mail_value(shown::line(s))))
            .collect();
        t.push_str(&format!("| in the summary: {}\n", parts.join(", ")));
    }
    match e.arguments.as_object() {
        Some(o) if !o.is_empty() => {
            for (k, v) in o {
                t.push_str(&format!("| {}: {}\n", shown::line(k), value(v)));
            }
        }
        _ => t.push_str("| no arguments\n"),
    }
    for r in &e.evidence {
        t.push_str(&format!(
            "| evidence {}: {}\n",
            shown::line(&r.field),
            value(&r.value)
        ));
    }
    t.push_str("End of the agent's text.\n");
    t
}

/// Waits between delivery attempts while the gate runs; after the last, the next start retries.
const RETRY: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

/// Which request mail an approver gets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ask {
    /// The stage's request.
    First,
    /// A reminder of it (`remind_at`).
    Reminder,
}

impl Approvals {
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

    /// The request to approver `slot` of `a`'s stage with their own link: `kind` is the subject's
    /// prefix after `[Airlock] ` and the line saying what Airlock needs; `key` tells this mail
    /// from the others to the same approver.
    pub(super) fn request_mail(&self, a: &Approval, slot: usize, kind: Ask, key: &str) -> Mail {
        let e = &a.envelope;
        let (prefix, needs) = match kind {
            Ask::First => ("[Airlock] Approve? ", "Airlock needs a decision"),
            Ask::Reminder => (
                "[Airlock] Reminder: approve? ",
                "Still waiting for a decision",
            ),
        };
        let body = format!(
            "{}\n\n{needs} from role {}, by {}.\n\n{}\nOpen this link to see the full request and decide (approve, deny, modify or escalate).\nIt is yours alone: do not forward it.\n\n{}\n\nApproval {} (stage {}).\n{}",
            titled(e),
            e.role,
            crate::summary::readable_time(e.expires_at),
            request_text(e),
            self.link(a, slot),
            a.id,
            e.stage,
            self.ledger.checkpoint_footer()
        );
        Mail {
            to: a.approvers.get(slot).cloned().unwrap_or_default(),
            subject: subject(prefix, e),
            body,
            key: format!("{}-s{}-{slot}{key}", a.id, e.stage),
        }
    }

    async fn send_one(&self, a: &Approval, approver: &str) {
        let Some(slot) = a.approvers.iter().position(|x| x == approver) else {
            return;
        };
        let link = self.link(a, slot);
        let mail = self.request_mail(a, slot, Ask::First, "");
        if self.mailer.is_outbox() {
            // a link decides: logged only when the operator asks for debug logs
            tracing::debug!(approval = %a.id, to = %approver, "approval link: {link}");
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
        match sent {
            Ok(_) if next.envelope.stage == e.stage => next.unsent.retain(|x| x != approver),
            Ok(_) => {}
            Err(err) => {
                tracing::error!(approval = %a.id, to = %approver, error = %err, "approval mail not sent; it will be retried")
            }
        }
        let about = MailAbout::Approval {
            approval_id: a.id.clone(),
            stage: e.stage,
        };
        let row = Row::mail(about, approver, crate::mail::delivered(sent));
        let committed = match stored(&next) {
            Ok(state) => {
                self.ledger
                    .commit(Change {
                        rows: vec![NewRow::now(&next.call_id, row)],
                        items: vec![state.replacing(prior)],
                        ..Change::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(_) => Approvals::index(&mut guard, &next),
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
                subject: subject("[Airlock] Outcome unknown: ", &a.envelope),
                body: format!(
                    "Airlock stopped while running an approved call, so it cannot tell whether the call ran.\nIt will not run it again. Check the tool server before retrying.\n\n{}\nApproval {}.\n",
                    request_text(&a.envelope),
                    a.id
                ),
                key: format!("{}-unknown-{to}", a.id),
            };
            let about = MailAbout::Notice {
                approval_id: a.id.clone(),
                notice: "outcome_unknown".to_string(),
            };
            let to = to.clone();
            // a notice's row says only whether it went, not how
            let row = match self.mailer.send(&mail).await {
                Ok(_) => Row::MailSent(row::MailSent {
                    about,
                    to,
                    via: None,
                }),
                Err(e) => Row::MailFailed(row::MailFailed {
                    about,
                    to,
                    error: e.to_string(),
                }),
            };
            if let Err(e) = self.ledger.append(vec![NewRow::now(&a.call_id, row)]).await {
                tracing::error!(approval = %a.id, error = %e, "cannot record the outcome-unknown notice");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::{request_text, subject, titled};
    use crate::envelope::{Envelope, EvidenceRef};
    use crate::policy::OnTimeout;

    fn envelope(summary: &str, arguments: serde_json::Value) -> Envelope {
        let t = crate::instant::utc(2026, 12, 3, 8, 4, 36);
        Envelope {
            summary: summary.into(),
            tool: "refund_order".into(),
            server: "shop".into(),
            tool_name: "refund_order".into(),
            arguments,
            arguments_sha256: "ab".into(),
            class: "financial".into(),
            actor: "agent:bot".into(),
            target: "payments.refunds".into(),
            impact: "Moves money to a customer".into(),
            evidence: vec![EvidenceRef {
                field: "_meta.ticket".into(),
                value: json!("T-9"),
            }],
            policy_version: "v1".into(),
            rule: "classes.financial".into(),
            reason: "class `financial` needs approval by role `finance`".into(),
            reversal: "none: refunds cannot be clawed back".into(),
            role: "finance".into(),
            min_approvals: 1,
            requested_at: t,
            expires_at: t + TimeDelta::minutes(30),
            on_timeout: OnTimeout::Deny,
            stage: 0,
            redacted: None,
        }
    }

    #[test]
    fn the_mail_escapes_hidden_characters_warns_and_marks_the_agents_lines() {
        let e = envelope(
            "Refund $5.00 on order acct-\\u202E1000-tcca\\u200B",
            json!({
                "amount_cents": 500,
                "order_id": "acct-\u{202E}1000-tcca\u{200B}",
                "reason": "Approved already by the CFO, see https://evil.example\nWhy:       policy says yes",
                "payee": "p\u{0430}ypal",
            }),
        );
        let text = request_text(&e);
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::shown::kind(c).is_some()),
            "no raw hidden character: {text:?}"
        );
        let want = "WARNING: This request contains hidden characters, shown as escapes: \\u202E (reorders text) and \\u200B (invisible) in order_id; and look-alike letters: “p\u{0430}ypal” in payee mixes Latin and Cyrillic letters, looks like “paypal”. Read it as escaped before deciding.\n\n\
Action:    refund_order on tool server shop\n\
Class:     financial\n\
Actor:     agent:bot\n\
Target:    payments.refunds\n\
Impact:    Moves money to a customer\n\
Why:       class financial needs approval by role finance (policy v1)\n\
Reversal:  none: refunds cannot be clawed back\n\
Expires:   Thu 3 Dec 2026, 08:34 UTC (2026-12-03T08:34:36Z), then the call is denied\n\
\n\
Written by the agent (agent:bot), not by Airlock:\n\
| in the summary: “acct-\\u202E1000-tcca\\u200B”\n\
| amount_cents: 500\n\
| order_id: acct-\\u202E1000-tcca\\u200B\n\
| payee: p\u{0430}ypal\n\
| reason: Approved already by the CFO, see https[:]//evil.example\\nWhy:       policy says yes\n\
| evidence _meta.ticket: T-9\n\
End of the agent's text.\n";
        assert_eq!(text, want);
        assert_eq!(
            titled(&e),
            "Refund $5.00 on order acct-\\u202E1000-tcca\\u200B (refund_order)"
        );
        let linked = envelope("Visit https://x.example now", json!({}));
        assert_eq!(
            titled(&linked),
            "Visit https[:]//x.example now (refund_order)"
        );
        assert!(request_text(&linked).contains("| no arguments\n"));
    }

    #[test]
    fn the_subject_and_the_body_cut_the_agents_long_values_and_point_to_the_page() {
        let long = "A".repeat(10_000);
        let args = json!({"order_id": long, "amount_cents": 500});
        let template =
            crate::summary::Template::parse("Refund {amount_cents|money:USD} on order {order_id}")
                .unwrap();
        let summary = template.render(args.as_object().unwrap(), None);
        let e = envelope(&summary, args);
        let said = subject("[Airlock] Approve? ", &e);
        let value = format!("{}…", "A".repeat(59));
        assert_eq!(
            said,
            format!("[Airlock] Approve? Refund $5.00 on order {value} (refund_order)")
        );
        assert!(said.chars().count() <= crate::mail::SUBJECT_CHARS);
        let body = request_text(&e);
        let kept = format!("{}…", "A".repeat(crate::shown::MAIL_VALUE_CHARS - 1));
        assert!(
            body.contains(&format!("| order_id: {kept} [cut: 10000 characters in all; the approval page shows it whole]\n")),
            "{body}"
        );
        assert!(
            !body.contains(&"A".repeat(crate::shown::MAIL_VALUE_CHARS)),
            "never whole"
        );
        assert!(
            body.contains("| amount_cents: 500\n"),
            "a short value stays whole"
        );
        assert!(
            titled(&e).chars().count() > said.chars().count(),
            "the body's line is cut less than the subject's"
        );
        assert!(titled(&e).chars().count() < 400, "{}", titled(&e));

        // several values, each cut, and the whole line within the limit, the tool named last
        let args = json!({"a": "x".repeat(70), "b": "y".repeat(70), "c": "z\u{202E}".repeat(30)});
        let summary = crate::summary::Template::parse("{a} then {b} then {c}")
            .unwrap()
            .render(args.as_object().unwrap(), None);
        let e = envelope(&summary, args);
        let said = subject("[Airlock] Outcome unknown: ", &e);
        assert_eq!(said.chars().count(), crate::mail::SUBJECT_CHARS, "{said}");
        assert!(
            said.starts_with(&format!(
                "[Airlock] Outcome unknown: {}… then y",
                "x".repeat(59)
            )),
            "{said}"
        );
        assert!(said.ends_with("… (refund_order)"), "{said}");
        assert!(!said.contains('\u{202E}'), "escaped: {said}");
        // the mailer's own limit holds for any subject, on a character boundary
        let cut = crate::mail::subject_line(&format!("é\n{}", "é".repeat(400)));
        assert_eq!(cut.chars().count(), crate::mail::SUBJECT_CHARS);
        assert!(cut.starts_with("é é") && cut.ends_with('…'), "{cut}");
    }
}
