//! What the gate answers and records for a decided call: refusal sentences, the verdict row,
//! and where a decision's rows go.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Decision, Held, NewRow, Pause, Pending, Reply, Verdict, decide};

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
pub(super) fn pause_of(d: &Decision, call_id: &str, now: OffsetDateTime) -> Option<Pause> {
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

/// The verdict row; `signed` asks the ledger to sign this call's rows.
/// The body of a `verdict` row: the decision, its explanation, and `signed` when its class is.
pub fn verdict_body(d: &Decision, signed: bool) -> Value {
    let mut body = serde_json::to_value(d)
        .unwrap_or_else(|e| json!({"verdict": d.verdict.name(), "encoding_error": e.to_string()}));
    if let Value::Object(o) = &mut body {
        o.insert("explanation".into(), Value::String(d.explanation()));
        if signed {
            o.insert("signed".into(), Value::Bool(true));
        }
    }
    body
}

/// Most bytes of a refused call's arguments (canonical JSON) its proposal row keeps; above it,
/// a preview of the first [`REFUSED_PREVIEW_BYTES`], marked as cut, beside their size and hash.
/// A call that can still run (approval, held) keeps its arguments whole: they are what runs.
pub const MAX_REFUSED_ARGUMENT_BYTES: usize = 64 * 1024;
/// How much of a cut argument list is kept as its preview.
pub const REFUSED_PREVIEW_BYTES: usize = 1024;

/// Cut a refused call's arguments in its proposal row (the first of `rows`) to the cap.
pub(super) fn cap_refused(rows: &mut [NewRow]) {
    let Some(p) = rows.first_mut().filter(|r| r.kind == "proposal") else {
        return;
    };
    let text = crate::canonical::to_string(&p.body["arguments"]);
    if text.len() <= MAX_REFUSED_ARGUMENT_BYTES {
        return;
    }
    let mut end = REFUSED_PREVIEW_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(o) = p.body.as_object_mut() {
        o.insert("arguments".into(), Value::Null);
        o.insert(
            "arguments_preview".into(),
            Value::String(text[..end].to_string()),
        );
        o.insert("arguments_cut".into(), Value::Bool(true));
        o.insert("arguments_bytes".into(), json!(text.len()));
    }
}

pub(super) fn not_run(call_id: &str, now: OffsetDateTime) -> NewRow {
    NewRow::at("outcome", call_id, now, json!({"status": "not_run"}))
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

/// Where a decided call's rows go.
pub(super) enum Committed {
    /// To the approval desk, which commits them with the envelope.
    ToDesk(Vec<NewRow>),
    /// A repeat of an earlier call, answered by its item (the rows record it).
    Repeat(Vec<NewRow>, super::retries::Repeat),
    /// Queued for commit, with the pause it starts and the call it holds.
    Queued {
        pending: Pending,
        pause: Option<Pause>,
        /// For a quarantined call: the call held, or why it is not (told to the agent).
        held: Option<Result<Box<Held>, &'static str>>,
    },
}

pub(super) fn refused(call_id: &str, d: &Decision, message: String) -> Reply {
    let mut details = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut details {
        o.insert("call_id".into(), Value::String(call_id.to_string()));
    }
    Reply::Refused { message, details }
}
