//! Which rows are news for a channel, and the event each becomes: an approval opened (each
//! stage), decided, modified, escalated, timed out, closed. An event names the role whose
//! channels hear it and carries what the approvers' mail carries about the request — never the
//! arguments, never a link that decides, and its prose (summary, target, impact, reversal) as
//! mail shows it: hidden characters as escapes, links broken (a summary repeats what the agent
//! wrote, and a receiver that renders it must not make a link of it).
//!
//! Pure: it reads a row and nothing else, and never sends.

use serde_json::{Value, json};

use crate::ledger::Record;
use crate::ledger::row::{Choice, Row};

/// One event for the channels of `role`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `approval.opened`, `approval.decided`, …
    pub kind: &'static str,
    pub role: String,
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

/// The event `record` is, if it is one; `role_of` names the role asked at an approval's stage
/// when the row itself does not (a decision, a close).
pub fn of(record: &Record, role_of: impl Fn(&str, Option<u32>) -> Option<String>) -> Option<Event> {
    let (kind, role, data) = match record.row().ok()? {
        Row::Envelope(e) => {
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
            ("approval.opened", role, data)
        }
        Row::Decision(d) => {
            let role = role_of(&d.approval_id, Some(d.stage))?;
            let kind = match d.choice {
                Choice::Approve | Choice::Deny => "approval.decided",
                Choice::Modify => "approval.modified",
                Choice::Escalate => "approval.escalated",
            };
            let data = json!({
                "approval_id": d.approval_id,
                "stage": d.stage,
                "role": role,
                "choice": d.choice.as_str(),
                "approver": d.approver,
            });
            (kind, role, data)
        }
        Row::Timeout(t) => {
            let data = json!({
                "approval_id": t.approval_id,
                "stage": t.stage,
                "role": t.role,
                "on_timeout": t.on_timeout,
                "expires_at": t.expires_at,
            });
            ("approval.timed_out", t.role, data)
        }
        Row::ApprovalClosed(c) => {
            let role = role_of(&c.approval_id, None)?;
            let data = json!({"approval_id": c.approval_id, "role": role, "outcome": c.outcome});
            ("approval.closed", role, data)
        }
        _ => return None,
    };
    let mut data = data;
    data["ledger_seq"] = json!(record.seq);
    data["call_id"] = json!(record.call_id);
    Some(Event {
        kind,
        role,
        seq: record.seq,
        call_id: record.call_id.clone(),
        hash: record.hash.clone(),
        data,
        time: record.time.clone(),
    })
}

/// Text as mail shows it: on one line, hidden characters as escapes, links broken.
fn prose(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::shown::break_links(&crate::shown::line(s))),
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::of;
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

    #[test]
    fn an_envelope_opens_and_a_decision_decides_for_the_stages_role() {
        let envelope = json!({"approval_id": "a1", "stage": 0, "envelope_hash": "h", "approvers": ["ann@x", "bob@x"],
            "envelope": {"role": "finance", "summary": "Refund 40 EUR", "tool": "shop__refund", "class": "refund",
                "actor": "agent:1", "arguments": {"secret": "s3"}, "expires_at": "2026-12-04T21:00:00Z"}});
        let e = of(&record("envelope", envelope), |_, _| None).unwrap();
        assert_eq!((e.kind, e.role.as_str()), ("approval.opened", "finance"));
        assert_eq!(e.data["summary"], "Refund 40 EUR");
        assert_eq!(e.data["approvers"], 2);
        assert!(!e.body().to_string().contains("s3"), "never the arguments");
        let decision = json!({"approval_id": "a1", "stage": 0, "approver": "ann@x", "choice": "approve",
            "comment": "", "seen_sha256": "s", "envelope_hash": "h", "policy_version": "p"});
        let d = of(&record("decision", decision.clone()), |id, stage| {
            (id == "a1" && stage == Some(0)).then(|| "finance".to_string())
        })
        .unwrap();
        assert_eq!(
            (d.kind, d.data["choice"].as_str()),
            ("approval.decided", Some("approve"))
        );
        assert_eq!(d.data["ledger_seq"], 9);
        assert!(
            of(&record("decision", decision), |_, _| None).is_none(),
            "no role: nobody to tell"
        );
        assert!(of(&record("outcome", json!({})), |_, _| Some("r".into())).is_none());
    }

    #[test]
    fn a_link_the_agent_wrote_into_the_summary_is_broken_as_in_mail() {
        // the summary template fills in the order id, which is the agent's
        let summary = "Refund on order https://evil.example/a/approve or www.evil.example";
        let envelope = json!({"approval_id": "a1", "stage": 0, "envelope_hash": "h", "approvers": ["ann@x"],
            "envelope": {"role": "finance", "summary": summary, "target": "payments.refunds",
                "tool": "shop__refund", "class": "refund", "actor": "agent:1",
                "expires_at": "2026-12-04T21:00:00Z"}});
        let e = of(&record("envelope", envelope), |_, _| None).unwrap();
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
