//! What a chat channel (Slack, Teams) shows of an event, before either's format: a title, the
//! agent's text apart from Airlock's, the facts, a line of Airlock's words, and the buttons to
//! the approvers' own pages. The agent's text is shown as a person reads it (`shown`): hidden
//! characters as escapes, on one line, links broken; the renderers put it only where the chat
//! shows text as written (no markup).
//!
//! Pure: links are minted by the caller and handed in; it never sends.

use serde_json::Value;

use super::event::Event;

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Airlock's heading, e.g. `Approve? Refund $5.00 on order A-1001`.
    pub title: String,
    /// What the agent wrote (the request's summary), shown: `None` when the event has none.
    pub agent_text: Option<String>,
    /// (label, value), Airlock's and the manifest's words.
    pub facts: Vec<(String, String)>,
    /// Airlock's closing line: who decides, where, by when.
    pub note: String,
    /// (label, url): an approver's own page.
    pub buttons: Vec<(String, String)>,
    /// Plain text for notifications (Slack's `text`).
    pub fallback: String,
}

/// Shown as a person reads it: escapes, one line, links broken, cut to `chars`.
pub fn shown(text: &str, chars: usize) -> String {
    let line = crate::shown::break_links(&crate::shown::line(text));
    crate::summary::shorten(&line, chars)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(t) => t.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a message says: title, the agent's text, facts, Airlock's line.
type Content = (String, Option<String>, Vec<(String, String)>, String);

/// One fact: `label` and the event's `key`, shown.
fn fact(d: &Value, label: &str, key: &str) -> (String, String) {
    (label.to_string(), shown(&s(&d[key]), 300))
}

/// The message for `ev`, with `links[slot]` the page of `ev.approvers[slot]`.
pub fn message(ev: &Event, links: &[String]) -> Message {
    let d = &ev.data;
    let (title, agent_text, facts, note) = match ev.kind {
        k if k.starts_with("approval.") => approval_content(k, d),
        k => review_content(k, d),
    };
    let facts = facts.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let buttons = (ev.approvers.iter().zip(links))
        .map(|(who, url)| (format!("Open as {}", shown(who, 60)), url.clone()))
        .collect();
    Message {
        fallback: format!("[Airlock] {title}"),
        title,
        agent_text,
        facts,
        note,
        buttons,
    }
}

/// An approval's events.
fn approval_content(kind: &str, d: &Value) -> Content {
    match kind {
        "approval.opened" => (
            format!("Approve? {}", shown(&s(&d["summary"]), 120)),
            Some(shown(&s(&d["summary"]), 2000)),
            vec![
                fact(d, "Tool", "tool"),
                fact(d, "Class", "class"),
                fact(d, "Actor", "actor"),
                fact(d, "Target", "target"),
                fact(d, "Impact", "impact"),
                fact(d, "Reversal", "reversal"),
                fact(d, "Expires", "expires_at"),
            ],
            format!(
                "Role {} decides on Airlock's page, each approver through their own button (sign-in as the role requires). Approval {}, stage {}.",
                s(&d["role"]),
                s(&d["approval_id"]),
                s(&d["stage"])
            ),
        ),
        "approval.decided" | "approval.modified" | "approval.escalated" => (
            format!("{} by {}", past(&s(&d["choice"])), s(&d["approver"])),
            None,
            vec![
                fact(d, "Approval", "approval_id"),
                fact(d, "Role", "role"),
                fact(d, "Stage", "stage"),
            ],
            "Decided on Airlock's page; the ledger holds the decision.".to_string(),
        ),
        "approval.reminder" => (
            "Reminder: still waiting for a decision".to_string(),
            None,
            vec![
                fact(d, "Approval", "approval_id"),
                fact(d, "Role", "role"),
                ("Waiting on".into(), list(d, "waiting_on")),
            ],
            "Each approver decides through their own link (mailed again with this reminder)."
                .to_string(),
        ),
        "approval.timed_out" => (
            format!("Nobody decided in time: {}", s(&d["on_timeout"])),
            None,
            vec![
                fact(d, "Approval", "approval_id"),
                fact(d, "Role", "role"),
                fact(d, "Expired", "expires_at"),
            ],
            "The approval's on_timeout rule applied.".to_string(),
        ),
        _ => (
            "Approval closed".to_string(),
            None,
            vec![
                fact(d, "Approval", "approval_id"),
                fact(d, "Role", "role"),
                ("Outcome".into(), shown(&s(&d["outcome"]), 300)),
            ],
            "The approval has ended; the ledger holds its story.".to_string(),
        ),
    }
}

/// A held call's and a paused scope's events.
fn review_content(kind: &str, d: &Value) -> Content {
    match kind {
        "held.created" => (
            format!("Held for review: {}", shown(&s(&d["tool"]), 100)),
            None,
            vec![
                fact(d, "Tool", "tool"),
                fact(d, "Actor", "actor"),
                fact(d, "Why", "reason"),
                ("Roles".into(), roles(d)),
            ],
            "A member of these roles releases or rejects it on Airlock's review page.".to_string(),
        ),
        "held.released" | "held.rejected" => (
            format!(
                "{} by {}",
                if kind == "held.released" {
                    "Released"
                } else {
                    "Rejected"
                },
                s(&d["by"])
            ),
            None,
            vec![
                fact(d, "Tool", "tool"),
                fact(d, "Actor", "actor"),
                fact(d, "Reason", "reason"),
            ],
            "Decided on Airlock's review page.".to_string(),
        ),
        _ => (
            format!(
                "Autopilot {}: {}",
                if kind == "autopilot.paused" {
                    "paused"
                } else {
                    "resumed"
                },
                s(&d["scope"])
            ),
            None,
            vec![
                fact(d, "Scope", "scope"),
                fact(d, "Limit", "limit"),
                fact(d, "By", "by"),
                ("Roles".into(), roles(d)),
            ],
            "Paused calls wait for a member of these roles on Airlock's review page.".to_string(),
        ),
    }
}

fn past(choice: &str) -> &'static str {
    match choice {
        "approve" => "Approved",
        "deny" => "Denied",
        "modify" => "Modified",
        "escalate" => "Escalated",
        _ => "Decided",
    }
}

fn roles(d: &Value) -> String {
    list(d, "roles")
}

fn list(d: &Value, key: &str) -> String {
    (d[key].as_array().into_iter().flatten())
        .map(s)
        .collect::<Vec<_>>()
        .join(", ")
}
