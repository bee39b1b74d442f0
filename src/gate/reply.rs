//! What the gate answers and records for a decided call: refusal sentences, the verdict row,
//! and where a decision's rows go.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::ledger::{Row, row};

use super::Reply;
use crate::decide::{self, Decision, Verdict};
use crate::drift::Pause;
use crate::ledger::NewRow;

pub(super) fn refusal_message(tool: &str, d: &Decision) -> String {
    let why = d.explanation();
    match &d.verdict {
        Verdict::Allow => format!("`{tool}` was allowed: {why}"),
        Verdict::Deny => format!("Airlock denied `{tool}`; it was not run. {why}."),
        Verdict::Quarantine => format!("Airlock quarantined `{tool}`; it was not run. {why}."),
        Verdict::Approve { role, .. } => format!(
            "`{tool}` needs approval by role `{role}`, but its tool server is not known, so it was not run (fail closed). {why}."
        ),
    }
}

/// The pause a limit-crossing verdict starts.
pub(super) fn pause_of(d: &Decision, call_id: &str, now: DateTime<Utc>) -> Option<Pause> {
    d.reasons.iter().find_map(|r| match r {
        decide::Reason::LimitReached {
            scope,
            limit,
            notify,
            ..
        } => Some(Pause {
            scope: scope.clone(),
            since: now,
            limit: limit.clone(),
            call_id: call_id.to_string(),
            notify: notify.clone(),
        }),
        _ => None,
    })
}

/// The body of a `verdict` row: the decision, its explanation, and `signed` when its class is
/// (the ledger then signs this call's rows).
pub fn verdict_body(d: &Decision, signed: bool) -> row::Verdict {
    let verdict = match &d.verdict {
        Verdict::Allow => row::Decided::Allow,
        Verdict::Deny => row::Decided::Deny,
        Verdict::Quarantine => row::Decided::Quarantine,
        Verdict::Approve {
            role,
            timeout,
            on_timeout,
            expires_at,
        } => row::Decided::Approve {
            role: role.clone(),
            timeout: humantime::format_duration(*timeout).to_string(),
            on_timeout: *on_timeout,
            expires_at: crate::instant::rfc3339(expires_at),
        },
    };
    let value = |v: Result<Value, serde_json::Error>| {
        v.unwrap_or_else(|e| json!({"encoding_error": e.to_string()}))
    };
    row::Verdict {
        verdict,
        class: d.class.clone(),
        rule: d.rule.clone(),
        reasons: d
            .reasons
            .iter()
            .map(|r| value(serde_json::to_value(r)))
            .collect(),
        policy_version: d.policy_version.clone(),
        charges: d
            .charges
            .iter()
            .map(|c| value(serde_json::to_value(c)))
            .collect(),
        review_roles: d.review_roles.clone(),
        explanation: d.explanation(),
        signed,
    }
}

/// Most bytes of a refused call's arguments (canonical JSON) its proposal row keeps; above it,
/// a preview of the first [`REFUSED_PREVIEW_BYTES`], marked as cut, beside their size and hash.
/// A call that can still run (approval, held) keeps its arguments whole: they are what runs.
pub const MAX_REFUSED_ARGUMENT_BYTES: usize = 64 * 1024;
/// How much of a cut argument list is kept as its preview.
pub const REFUSED_PREVIEW_BYTES: usize = 1024;

/// Cut a refused call's arguments in its proposal row (the first of `rows`) to the cap.
pub(super) fn cap_refused(rows: &mut [NewRow]) {
    let Some(Row::Proposal(p)) = rows.first_mut().map(|r| &mut r.row) else {
        return;
    };
    let text = crate::canonical::to_string(&p.arguments);
    if text.len() <= MAX_REFUSED_ARGUMENT_BYTES {
        return;
    }
    let mut end = REFUSED_PREVIEW_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    p.arguments = Value::Null;
    p.arguments_preview = Some(text[..end].to_string());
    p.arguments_cut = Some(true);
    p.arguments_bytes = Some(text.len() as u64);
}

pub(super) fn not_run(call_id: &str, now: DateTime<Utc>) -> NewRow {
    NewRow::at(
        call_id,
        now,
        Row::Outcome(row::Outcome::of(row::OutcomeStatus::NotRun)),
    )
}

pub(super) fn ledger_failed(call_id: &str, d: &Decision, e: &dyn std::fmt::Display) -> Reply {
    tracing::error!(%call_id, error = %e, "ledger write failed; call not run");
    refused(
        call_id,
        d,
        format!(
            "Airlock could not record this call in its ledger, so it was not run (fail closed): {e}"
        ),
    )
}

pub(super) fn refused(call_id: &str, d: &Decision, message: String) -> Reply {
    let mut details = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut details {
        o.insert("call_id".into(), Value::String(call_id.to_string()));
    }
    Reply::Refused { message, details }
}
