//! Which rows are news for a channel, and the event each becomes: an approval opened (each
//! stage), reminded, decided, modified, escalated, timed out, closed; a call held for review, released,
//! rejected; a scope's autopilot paused, resumed. An event names the roles whose channels hear
//! it and carries what the people's mail carries about the request — never the arguments, never
//! a link that decides, and its prose (summary, target, impact, reversal) as mail shows it:
//! hidden characters as escapes, links broken (a summary repeats what the agent wrote, and a
//! receiver that renders it must not make a link of it).
//!
//! Pure: it reads a row and what [`Lookup`] answers, and never sends.

use serde_json::{Value, json};

use crate::ledger::Record;
use crate::ledger::row::{Choice, Row};

/// One event for the channels of `roles`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `approval.opened`, `held.created`, …
    pub kind: &'static str,
    pub roles: Vec<String>,
    /// `approval.opened`: the stage's approvers, in slot order (a chat message gives each a
    /// button to their own page; never in the body posted to a webhook).
    pub approvers: Vec<String>,
    /// The source row.
    pub seq: u64,
    pub call_id: String,
    /// The source row's hash: with the channel, the delivery's stable id.
    pub hash: String,
    /// What the event says (the body's `data`).
    pub data: Value,
    /// When the source row was written (the body's `timestamp`).
    pub time: String,
}

impl Event {
    /// The JSON posted: `{"type", "timestamp", "data"}`.
    pub fn body(&self) -> Value {
        json!({"type": self.kind, "timestamp": self.time, "data": self.data})
    }
}

/// A held call as its news needs it (from its stored state).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeldNews {
    pub tool: String,
    pub actor: String,
    /// The roles its release needs; empty: the review role.
    pub roles: Vec<String>,
}

/// What a row does not say itself.
pub trait Lookup {
    /// The role asked at an approval's `stage` (`None`: at its current stage).
    fn approval_role(&self, approval: &str, stage: Option<u32>) -> Option<String>;
    /// A held call, if it is stored.
    fn held(&self, call_id: &str) -> Option<HeldNews>;
    /// The policy's `[review] role`.
    fn review_role(&self) -> Option<String>;
}

/// The event `record` is, if it is one.
pub fn of(record: &Record, look: &dyn Lookup) -> Option<Event> {
    let (kind, roles, mut data) = match record.row().ok()? {
        Row::Envelope(e) => opened(&e)?,
        Row::Decision(d) => {
            let role = look.approval_role(&d.approval_id, Some(d.stage))?;
            let kind = match d.choice {
                Choice::Approve | Choice::Deny => "approval.decided",
                Choice::Modify => "approval.modified",
                Choice::Escalate => "approval.escalated",
            };
            let data = json!({"approval_id": d.approval_id, "stage": d.stage, "role": role,
                "choice": d.choice.as_str(), "approver": d.approver});
            (kind, vec![role], data)
        }
        Row::Reminder(r) => {
            let data = json!({"approval_id": r.approval_id, "stage": r.stage, "role": r.role,
                "waiting_on": r.to});
            ("approval.reminder", vec![r.role], data)
        }
        Row::Timeout(t) => {
            let data = json!({"approval_id": t.approval_id, "stage": t.stage, "role": t.role,
                "on_timeout": t.on_timeout, "expires_at": t.expires_at});
            ("approval.timed_out", vec![t.role], data)
        }
        Row::ApprovalClosed(c) => {
            let role = look.approval_role(&c.approval_id, None)?;
            let data = json!({"approval_id": c.approval_id, "role": role, "outcome": c.outcome});
            ("approval.closed", vec![role], data)
        }
        Row::Held(h) => {
            let held = look.held(&record.call_id)?;
            let roles = held_roles(&held, look);
            let data =
                json!({"tool": held.tool, "actor": held.actor, "reason": h.reason, "roles": roles});
            ("held.created", roles, data)
        }
        Row::HeldReleased(r) => held_decided("held.released", record, &r.by.by, None, look)?,
        Row::HeldRejected(r) => {
            held_decided("held.rejected", record, &r.by.by, Some(&r.reason), look)?
        }
        Row::Verdict(v) => {
            let pause = v.reasons.iter().find(|r| r["code"] == "limit_reached")?;
            let roles = notified(pause, look);
            let data = json!({"scope": pause["scope"], "limit": pause["limit"], "roles": roles});
            ("autopilot.paused", roles, data)
        }
        Row::AutopilotResumed(r) => {
            let roles = notified(&r.pause, look);
            let data = json!({"scope": r.scope, "by": r.by.by, "roles": roles});
            ("autopilot.resumed", roles, data)
        }
        _ => return None,
    };
    if roles.is_empty() {
        return None;
    }
    data["ledger_seq"] = json!(record.seq);
    data["call_id"] = json!(record.call_id);
    let approvers = match record.row() {
        Ok(Row::Envelope(e)) => e.approvers,
        _ => Vec::new(),
    };
    Some(Event {
        kind,
        roles,
        approvers,
        seq: record.seq,
        call_id: record.call_id.clone(),
        hash: record.hash.clone(),
        data,
        time: record.time.clone(),
    })
}

/// An envelope: a stage opened, for the role it asks.
fn opened(e: &crate::ledger::row::Envelope) -> Option<(&'static str, Vec<String>, Value)> {
    let v = &e.envelope;
    let role = v["role"].as_str()?.to_string();
    let data = json!({
        "approval_id": e.approval_id,
        "stage": e.stage,
        "role": role,
        "summary": prose(&v["summary"]),
        "tool": v["tool"],
        "class": v["class"],
        "actor": v["actor"],
        "target": prose(&v["target"]),
        "impact": prose(&v["impact"]),
        "reversal": prose(&v["reversal"]),
        "min_approvals": v["min_approvals"],
        "approvers": e.approvers.len(),
        "expires_at": v["expires_at"],
        "envelope_hash": e.envelope_hash,
    });
    Some(("approval.opened", vec![role], data))
}

fn held_roles(held: &HeldNews, look: &dyn Lookup) -> Vec<String> {
    match held.roles.is_empty() {
        true => look.review_role().into_iter().collect(),
        false => held.roles.clone(),
    }
}

/// A held call released or rejected, by `by`.
fn held_decided(
    kind: &'static str,
    record: &Record,
    by: &str,
    reason: Option<&str>,
    look: &dyn Lookup,
) -> Option<(&'static str, Vec<String>, Value)> {
    let held = look.held(&record.call_id)?;
    let roles = held_roles(&held, look);
    let mut data = json!({"tool": held.tool, "actor": held.actor, "by": by, "roles": roles});
    if let Some(reason) = reason {
        data["reason"] = json!(reason);
    }
    Some((kind, roles, data))
}

/// Text as mail shows it: on one line, hidden characters as escapes, links broken.
fn prose(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::shown::break_links(&crate::shown::line(s))),
        v => v.clone(),
    }
}

/// The role a pause notifies (`notify`), else the review role.
fn notified(pause: &Value, look: &dyn Lookup) -> Vec<String> {
    match pause["notify"].as_str() {
        Some(role) => vec![role.to_string()],
        None => look.review_role().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{HeldNews, Lookup, of};
    use crate::ledger::Record;

    fn record(kind: &str, body: Value) -> Record {
        Record {
            seq: 9,
            time: "2026-12-04T20:00:00Z".into(),
            kind: kind.into(),
            call_id: "call-1".into(),
            body,
            prev: "00".into(),
            hash: "ab".into(),
        }
    }

    /// Approval a1 asks `finance` at stage 0; call-1 is held for `ops`; the review role `review`.
    struct World;

    impl Lookup for World {
        fn approval_role(&self, approval: &str, stage: Option<u32>) -> Option<String> {
            (approval == "a1" && stage.unwrap_or(0) == 0).then(|| "finance".to_string())
        }
        fn held(&self, call_id: &str) -> Option<HeldNews> {
            (call_id == "call-1").then(|| HeldNews {
                tool: "shop__wipe".into(),
                actor: "agent:1".into(),
                roles: vec!["ops".into()],
            })
        }
        fn review_role(&self) -> Option<String> {
            Some("review".into())
        }
    }

    #[test]
    fn an_envelope_opens_and_a_decision_decides_for_the_stages_role() {
        let envelope = json!({"approval_id": "a1", "stage": 0, "envelope_hash": "h", "approvers": ["ann@x", "bob@x"],
            "envelope": {"role": "finance", "summary": "Refund 40 EUR", "tool": "shop__refund", "class": "refund",
                "actor": "agent:1", "arguments": {"secret": "s3"}, "expires_at": "2026-12-04T21:00:00Z"}});
        let e = of(&record("envelope", envelope), &World).unwrap();
        assert_eq!(
            (e.kind, e.roles.clone()),
            ("approval.opened", vec!["finance".to_string()])
        );
        assert_eq!(e.data["summary"], "Refund 40 EUR");
        assert_eq!(e.data["approvers"], 2);
        assert!(!e.body().to_string().contains("s3"), "never the arguments");
        let decision = |id: &str| {
            json!({"approval_id": id, "stage": 0, "approver": "ann@x", "choice": "approve",
            "comment": "", "seen_sha256": "s", "envelope_hash": "h", "policy_version": "p"})
        };
        let d = of(&record("decision", decision("a1")), &World).unwrap();
        assert_eq!(
            (d.kind, d.data["choice"].as_str()),
            ("approval.decided", Some("approve"))
        );
        assert_eq!(d.data["ledger_seq"], 9);
        assert!(
            of(&record("decision", decision("a2")), &World).is_none(),
            "no role: nobody to tell"
        );
        assert!(of(&record("outcome", json!({})), &World).is_none());
    }

    #[test]
    fn a_held_call_and_a_pause_go_to_the_roles_that_decide_them() {
        let held = of(
            &record("held", json!({"reason": "no manifest describes shop/wipe"})),
            &World,
        )
        .unwrap();
        assert_eq!(
            (held.kind, held.roles.clone()),
            ("held.created", vec!["ops".to_string()])
        );
        assert_eq!(held.data["tool"], "shop__wipe");
        let rejected = json!({"reason": "not today", "by": "rita@x", "roles": ["ops"], "auth": {}});
        let r = of(&record("held_rejected", rejected), &World).unwrap();
        assert_eq!(
            (r.kind, r.data["by"].as_str(), r.data["reason"].as_str()),
            ("held.rejected", Some("rita@x"), Some("not today"))
        );
        let verdict = json!({"verdict": "quarantine", "class": "financial", "rule": "limits", "policy_version": "p",
            "reasons": [{"code": "limit_reached", "scope": "tool:shop/refund", "limit": "2 per 1h", "notify": "finance", "used": "x"}]});
        let p = of(&record("verdict", verdict), &World).unwrap();
        assert_eq!(
            (p.kind, p.roles.clone()),
            ("autopilot.paused", vec!["finance".to_string()])
        );
        let resumed = json!({"scope": "tool:shop/refund", "pause": {"scope": "tool:shop/refund"}, "by": "rita@x", "roles": [], "auth": {}});
        let r = of(&record("autopilot_resumed", resumed), &World).unwrap();
        assert_eq!(
            (r.kind, r.roles.clone()),
            ("autopilot.resumed", vec!["review".to_string()]),
            "no notify: the review role"
        );
        let allowed = json!({"verdict": "allow", "class": "read_only", "rule": "r", "policy_version": "p", "reasons": []});
        assert!(of(&record("verdict", allowed), &World).is_none());
    }

    #[test]
    fn a_link_the_agent_wrote_into_the_summary_is_broken_as_in_mail() {
        // the summary template fills in the order id, which is the agent's
        let summary = "Refund on order https://evil.example/a/approve or www.evil.example";
        let envelope = json!({"approval_id": "a1", "stage": 0, "envelope_hash": "h", "approvers": ["ann@x"],
            "envelope": {"role": "finance", "summary": summary, "target": "payments.refunds",
                "tool": "shop__refund", "class": "refund", "actor": "agent:1",
                "expires_at": "2026-12-04T21:00:00Z"}});
        let e = of(&record("envelope", envelope), &World).unwrap();
        let body = e.body().to_string();
        assert!(
            !body.contains("https://"),
            "no link a receiver would make clickable: {body}"
        );
        assert_eq!(
            e.data["summary"],
            "Refund on order https[:]//evil.example/a/approve or www[.]evil.example"
        );
        assert_eq!(e.data["target"], "payments.refunds");
    }
}
