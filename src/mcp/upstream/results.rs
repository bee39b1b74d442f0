//! The agent's answers about suspended and held calls: MCP results, tasks and their `_meta`.

use rmcp::model::{
    CallToolResult, ContentBlock, DetailedTask, MetaObject, ResultType, Task, TaskPayload,
    TaskStatus,
};
use serde_json::{Value, json};

use super::{APPROVAL_META_KEY, STATUS_TOOL};
use crate::approval::state::{Approval, Outcome, Status};
use crate::quarantine::{Held, HeldStatus};

/// An approval as an MCP task: working while it waits or runs, completed with the agent's answer.
pub(super) fn task_of(a: &Approval) -> DetailedTask {
    let fmt = crate::instant::rfc3339;
    let now = fmt(&crate::instant::now());
    let task = Task::new(
        a.id.clone(),
        TaskStatus::Working,
        fmt(&a.envelope.requested_at),
        now,
    )
    .with_poll_interval_ms(2000);
    match &a.status {
        Status::Done(outcome) => {
            let result = serde_json::to_value(outcome_result(&a.id, outcome))
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            DetailedTask::new(task, TaskPayload::Completed { result })
        }
        Status::Executing { .. } => DetailedTask::new(
            task.with_status_message("approved; the call is running"),
            TaskPayload::Working,
        ),
        Status::Pending => DetailedTask::new(
            task.with_status_message(format!(
                "waiting for approval by role `{}` until {}",
                a.envelope.role,
                fmt(&a.envelope.expires_at)
            )),
            TaskPayload::Working,
        ),
    }
}

/// A tool result as a 2026-07-28 agent needs it: with its `resultType` (a result stored before
/// Airlock set it, or relayed from an older tool server, has none; rmcp removes it again for
/// agents on older versions).
pub(super) fn complete(mut r: CallToolResult) -> CallToolResult {
    r.result_type.get_or_insert(ResultType::COMPLETE);
    r
}

pub(super) fn with_meta(mut r: CallToolResult, key: &str, value: Value) -> CallToolResult {
    let mut meta = r.meta.take().map(|m| m.0).unwrap_or_default();
    meta.insert(key.into(), value);
    r.meta = Some(MetaObject(meta));
    r
}

/// The agent's answer for a decided approval.
pub(super) fn outcome_result(id: &str, outcome: &Outcome) -> CallToolResult {
    let info = json!({"approval_id": id, "state": "done", "outcome": outcome_name(outcome)});
    let r = match outcome {
        Outcome::Executed { result, .. } => {
            match serde_json::from_value::<CallToolResult>(result.clone()) {
                Ok(r) => return complete(r),
                Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
                    "the approved call ran, but its result could not be relayed: {e}"
                ))]),
            }
        }
        Outcome::Denied { by, reason } if by == "timeout" => {
            CallToolResult::error(vec![ContentBlock::text(format!(
                "No decision before the approval expired, so the call was denied and not run ({reason})."
            ))])
        }
        Outcome::Denied { by, reason } if reason.trim().is_empty() => {
            CallToolResult::error(vec![ContentBlock::text(format!(
                "Denied by {by}; the call was not run."
            ))])
        }
        Outcome::Denied { by, reason } => CallToolResult::error(vec![ContentBlock::text(format!(
            "Denied by {by}: {reason}. The call was not run."
        ))]),
        Outcome::Expired => CallToolResult::error(vec![ContentBlock::text(
            "The approval expired without a decision; nothing ran (recorded as a no-op).",
        )]),
        Outcome::Voided { reason } => CallToolResult::error(vec![ContentBlock::text(format!(
            "The approval was voided: {reason}. Nothing ran."
        ))]),
        Outcome::Failed { error } => CallToolResult::error(vec![ContentBlock::text(format!(
            "Approved, but the call could not be run: {error}"
        ))]),
        Outcome::OutcomeUnknown => CallToolResult::error(vec![ContentBlock::text(
            "Approved, but Airlock stopped while the call was running: its outcome is unknown and it will not be run again. Check the tool server.",
        )]),
    };
    with_meta(r, APPROVAL_META_KEY, info)
}

pub(super) fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Executed { .. } => "executed",
        Outcome::Failed { .. } => "failed",
        Outcome::Denied { .. } => "denied",
        Outcome::Expired => "expired",
        Outcome::OutcomeUnknown => "outcome_unknown",
        Outcome::Voided { .. } => "voided",
    }
}

/// The agent's answer for a call held in quarantine.
pub(super) fn held_result(h: &Held) -> CallToolResult {
    let text = |t: String| vec![ContentBlock::text(t)];
    let (state, r) = match &h.status {
        HeldStatus::Held => (
            "held",
            CallToolResult::success(text(format!(
                "Call {} is held in quarantine for review ({}). It has not run. Ask again later.",
                h.id, h.reason
            ))),
        ),
        HeldStatus::Releasing { by } => (
            "executing",
            CallToolResult::success(text(format!(
                "Call {} was released by {by} and is running. Ask again later.",
                h.id
            ))),
        ),
        HeldStatus::Released { result, .. } => {
            match serde_json::from_value::<CallToolResult>(result.clone()) {
                Ok(r) => return complete(r),
                Err(e) => (
                    "released",
                    CallToolResult::error(text(format!(
                        "the released call ran, but its result could not be relayed: {e}"
                    ))),
                ),
            }
        }
        HeldStatus::Failed { by, error } => (
            "failed",
            CallToolResult::error(text(format!(
                "Released by {by}, but the call could not be run: {error}"
            ))),
        ),
        HeldStatus::Rejected { by, reason } => (
            "rejected",
            CallToolResult::error(text(format!(
                "Rejected in review by {by}{}. The call was not run.",
                if reason.is_empty() { String::new() } else { format!(": {reason}") }
            ))),
        ),
        HeldStatus::Voided { by, reason } => (
            "voided",
            CallToolResult::error(text(format!(
                "Released by {by}, but not run: {reason}. Call it again to have it decided on the tool as it is now."
            ))),
        ),
        HeldStatus::OutcomeUnknown { .. } => (
            "outcome_unknown",
            CallToolResult::error(text(
                "Released, but Airlock stopped while the call was running: its outcome is unknown and it will not be run again. Check the tool server.".to_string(),
            )),
        ),
    };
    with_meta(
        r,
        APPROVAL_META_KEY,
        json!({"held_id": h.id, "state": state}),
    )
}

/// The agent's answer while a decision is still outstanding (not an error: nothing failed).
pub(super) fn pending_result(id: &str, role: &str, state: &Status) -> CallToolResult {
    let what = match state {
        Status::Executing { .. } => "was approved and is running",
        _ => "is waiting for approval",
    };
    let r = CallToolResult::success(vec![ContentBlock::text(format!(
        "This call {what} by role `{role}` (approval {id}). It has not finished yet. Call `{STATUS_TOOL}` with {{\"approval_id\": \"{id}\"}} later to get the outcome and the tool's result."
    ))]);
    with_meta(
        r,
        APPROVAL_META_KEY,
        json!({"approval_id": id, "state": if matches!(state, Status::Executing { .. }) { "executing" } else { "pending" }}),
    )
}

/// An answer Airlock makes for a tool that declares an `outputSchema` (`typed`) while it has
/// no result yet (pending, held): clients validate a successful result against the schema
/// (the Python SDK raises on one without structured content), so it goes out as an error that
/// says nothing failed and carries the approval id in `_meta` as before. Results the tool made
/// and every other answer pass unchanged.
pub(super) fn for_output_schema(mut r: CallToolResult, typed: bool) -> CallToolResult {
    let ours = r
        .meta
        .as_ref()
        .is_some_and(|m| m.0.contains_key(APPROVAL_META_KEY));
    if typed && ours && r.is_error != Some(true) && r.structured_content.is_none() {
        r.is_error = Some(true);
        r.content.push(ContentBlock::text(
            "(Sent as an error only because this tool declares an output schema and has no result yet: nothing failed. Ask airlock_status with the approval_id in _meta[\"airlock/approval\"] for the result.)",
        ));
    }
    r
}
