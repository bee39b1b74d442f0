//! How an approval ends: its clock running out, the single execution of an approved call, and
//! the closing commit that tells the waiting agent.

use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::json;

use super::{Approval, Approvals, stored};
use crate::approval::state::{NextRole, Outcome, Status};
use crate::desk::Phase;
use crate::desk::run::{self, DecidedCall, Ran};
use crate::ledger::row::{self, RunContext};
use crate::ledger::{Change, ItemState, LedgerError, NewRow, Row};

impl Approvals {
    /// The clock ran out: apply `on_timeout` if still pending. If the ledger cannot record it,
    /// nothing changes and the timeout is tried again shortly (fail closed: still not run).
    pub(super) async fn time_out(self: &Arc<Self>, id: &str) {
        let mut guard = self.open.lock().await;
        let Some((a, prior)) = self.load_raw(id) else {
            return;
        };
        let mut next = a.clone();
        let up = self.next_role(&next);
        let Some(step) = next.time_out(
            up.as_ref().map(|(n, e)| NextRole { name: n, emails: e }),
            crate::instant::now(),
        ) else {
            return;
        };
        let mut rows = vec![NewRow::now(
            &a.call_id,
            Row::Timeout(row::Timeout {
                approval_id: a.id.clone(),
                stage: a.envelope.stage,
                role: a.envelope.role.clone(),
                on_timeout: a.envelope.on_timeout,
                expires_at: crate::instant::rfc3339(&a.envelope.expires_at),
            }),
        )];
        self.apply_step(
            &mut next,
            &step,
            "timeout",
            "no decision before the approval expired",
            &mut rows,
        );
        let committed = match stored(&next) {
            Ok(state) => {
                self.ledger
                    .commit(Change {
                        rows,
                        items: vec![state.replacing(prior)],
                        ..Change::default()
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(LedgerError::Conflict(_)) = committed {
            // another replica changed it first: decide again on what it recorded (a decision
            // there makes this a no-op; its mail bookkeeping does not)
            drop(guard);
            self.refresh(id).await;
            self.timers.arm(self, crate::instant::now(), id);
            return;
        }
        if let Err(e) = committed {
            tracing::error!(approval = %id, error = %e, "cannot record a timeout; trying again in 5s");
            drop(guard);
            let retry_at = crate::instant::now() + TimeDelta::seconds(5);
            self.timers.arm(self, retry_at, id);
            return;
        }
        Approvals::index(&mut guard, &next);
        drop(guard);
        self.publish(&next);
        self.after(step, &next).await;
    }

    /// Run an approved call once (the desk's one execution path). Its intent is already durable.
    pub(super) async fn execute(self: &Arc<Self>, id: &str) {
        let Some(a) = self.get(id).await else { return };
        let Status::Executing { idempotency_key } = &a.status else {
            return;
        };
        let e = &a.envelope;
        let context = RunContext {
            approval_id: Some(a.id.clone()),
            idempotency_key: Some(idempotency_key.clone()),
            arguments_sha256: Some(e.arguments_sha256.clone()),
            released_by: None,
        };
        let call = DecidedCall {
            call_id: &a.call_id,
            server: &e.server,
            tool: &e.tool_name,
            arguments: e.arguments.as_object().cloned().unwrap_or_default(),
            meta: a.meta.clone(),
            context,
            // approvals are asked only of trusted definitions: one that changed since is not run
            definition: None,
            sealed: a.sealed.as_deref(),
        };
        let (rows, ran) = run::run_once(&self.forwarder, &self.live, call).await;
        let outcome = match ran {
            Ran::Executed { result, is_error } => Outcome::Executed { result, is_error },
            Ran::Failed { error } => Outcome::Failed { error },
            Ran::Voided { reason } => Outcome::Voided { reason },
        };
        self.close(id, outcome, rows).await;
    }

    /// End an approval: commit `rows`, the `approval_closed` row and the final state in one
    /// transaction (the desk's [`run::close`]), then tell the waiting agent. A commit that keeps
    /// failing leaves the durable state as it was (an execution becomes `outcome_unknown` at the
    /// next start), but the agent still gets what happened: hiding a result that exists would
    /// invite a second run.
    pub(super) async fn close(&self, id: &str, outcome: Outcome, rows: Vec<NewRow>) {
        let mut guard = self.open.lock().await;
        let end = |next: &mut Approval| {
            next.status = Status::Done(outcome.clone());
            let summary = match &outcome {
                Outcome::Executed { result, is_error } => {
                    json!({"outcome": "executed", "is_error": is_error, "result_sha256": crate::canonical::sha256_hex(crate::canonical::to_string(result).as_bytes())})
                }
                other => json!(Status::Done(other.clone())),
            };
            let mut rows = vec![NewRow::now(
                &next.call_id,
                Row::ApprovalClosed(row::ApprovalClosed {
                    approval_id: next.id.clone(),
                    outcome: summary,
                }),
            )];
            rows.extend(super::rows::destroy_sealed(next, "ended"));
            rows
        };
        let Some((next, committed)) =
            run::close(&self.ledger, id, || self.load_raw(id), end, rows).await
        else {
            return;
        };
        if committed {
            Approvals::index(&mut guard, &next);
        }
        drop(guard);
        self.publish(&next);
    }
}

impl run::Item for Approval {
    fn phase(&self) -> Phase {
        self.status.phase()
    }

    fn stored(&self) -> Result<ItemState, LedgerError> {
        stored(self)
    }
}
