//! The rows an approval writes about itself beside its state: its end (`approval_closed`), its
//! sealed values destroyed, and a refused link. It must never decide when they are written.

use serde_json::json;

use super::state::Approval;
use crate::ledger::NewRow;
use crate::ledger::row::{self, Row};

/// An ending approval's sealed values, gone from its state: the row that says so (none when it
/// had none).
pub(super) fn destroy_sealed(a: &mut Approval, why: &str) -> Option<NewRow> {
    a.sealed.take().map(|_| {
        NewRow::now(
            &a.call_id,
            Row::SealedDestroyed(row::SealedDestroyed {
                approval_id: Some(a.id.clone()),
                why: why.to_string(),
            }),
        )
    })
}

/// The `approval_closed` row of an approval that ended as its state says.
pub(super) fn closed_row(a: &Approval) -> NewRow {
    NewRow::now(
        &a.call_id,
        Row::ApprovalClosed(row::ApprovalClosed {
            approval_id: a.id.clone(),
            outcome: json!(a.status),
        }),
    )
}

/// A `link_refused` row's body: on link `slot`, or by `approver` (a sign-in or a code).
pub(super) fn refused_link(
    a: &Approval,
    slot: Option<usize>,
    approver: Option<&str>,
    attempt: &str,
    reason: String,
) -> row::LinkRefused {
    row::LinkRefused {
        approval_id: a.id.clone(),
        slot: slot.map(|s| s as u64),
        approver: approver.map(str::to_string),
        attempt: attempt.to_string(),
        reason,
        suppressed_before: None,
    }
}
