//! How an approval ends: its clock running out, the single execution of an approved call, and
//! the closing commit that tells the waiting agent.

use std::sync::Arc;

use serde_json::{Map, json};
use time::OffsetDateTime;

use super::{Approvals, stored};
use crate::approval::state::{NextRole, Outcome, Status};
use crate::forward::{Forward, Forwarded};
use crate::ledger::{Change, LedgerError, NewRow};

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
            OffsetDateTime::now_utc(),
        ) else {
            return;
        };
        let mut rows = vec![NewRow::now(
            "timeout",
            &a.call_id,
            json!({"approval_id": a.id, "stage": a.envelope.stage, "role": a.envelope.role, "on_timeout": a.envelope.on_timeout, "expires_at": a.envelope.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()}),
        )];
        self.settle(
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
            self.timers.arm(self, OffsetDateTime::now_utc(), id);
            return;
        }
        if let Err(e) = committed {
            tracing::error!(approval = %id, error = %e, "cannot record a timeout; trying again in 5s");
            drop(guard);
            let retry_at = OffsetDateTime::now_utc() + time::Duration::seconds(5);
            self.timers.arm(self, retry_at, id);
            return;
        }
        Approvals::index(&mut guard, &next);
        drop(guard);
        self.publish(&next);
        self.after(step, &next).await;
    }

    /// Run an approved call once. Its intent is already durable.
    pub(super) async fn execute(self: &Arc<Self>, id: &str) {
        let Some(a) = self.get(id).await else { return };
        let Status::Executing { idempotency_key } = &a.status else {
            return;
        };
        let e = &a.envelope;
        // The definition the approvers saw is the one that must run: a tool changed since is not run.
        if self
            .live
            .changed()
            .contains_key(&(e.server.clone(), e.tool_name.clone()))
        {
            let reason =
                "the tool server changed this tool's definition after it was approved".to_string();
            self.close(id, Outcome::Voided { reason }, Vec::new()).await;
            return;
        }
        let mut context = Map::new();
        context.insert("approval_id".into(), json!(a.id));
        context.insert("idempotency_key".into(), json!(idempotency_key));
        context.insert("arguments_sha256".into(), json!(e.arguments_sha256));
        let arguments = e.arguments.as_object().cloned().unwrap_or_default();
        let forward = Forward {
            call_id: &a.call_id,
            server: &e.server,
            tool: &e.tool_name,
            arguments,
            meta: a.meta.clone(),
            context,
            // decided later, maybe long after the agent's request: nothing to relay to
            relay: None,
        };
        let (outcome_row, forwarded) = self.forwarder.call(forward).await;
        let outcome = match forwarded {
            Forwarded::Ran(reply) => Outcome::Executed {
                result: reply.json,
                is_error: reply.is_error,
            },
            Forwarded::Failed(error) => Outcome::Failed { error },
        };
        self.close(id, outcome, vec![outcome_row]).await;
    }

    /// End an approval: commit `rows`, the `approval_closed` row and the final state in one
    /// transaction, then tell the waiting agent. A commit that keeps failing leaves the durable
    /// state as it was (an execution becomes `outcome_unknown` at the next start), but the agent
    /// still gets what happened: hiding a result that exists would invite a second run.
    pub(super) async fn close(&self, id: &str, outcome: Outcome, rows: Vec<NewRow>) {
        let mut guard = self.open.lock().await;
        let mut failures = 0u64;
        // Another replica may change the approval meanwhile (its mail bookkeeping): read it
        // again and retry; if it was closed there, what it recorded stands.
        let (next, committed) = loop {
            let Some((mut next, prior)) = self.load_raw(id) else {
                return;
            };
            if matches!(next.status, Status::Done(_)) {
                // closed elsewhere (a replica that took this one for dead): what it recorded
                // stands, but a call that did run keeps its real outcome row beside it
                if !rows.is_empty() {
                    if let Err(e) = self.ledger.append(rows.clone()).await {
                        tracing::error!(approval = %id, error = %e, "cannot record the outcome of a call closed elsewhere");
                    }
                }
                break (next, true);
            }
            next.status = Status::Done(outcome.clone());
            let summary = match &next.status {
                Status::Done(Outcome::Executed { result, is_error }) => {
                    json!({"outcome": "executed", "is_error": is_error, "result_sha256": crate::canonical::sha256_hex(crate::canonical::to_string(result).as_bytes())})
                }
                other => json!(other),
            };
            let mut all = rows.clone();
            all.push(NewRow::now(
                "approval_closed",
                &next.call_id,
                json!({"approval_id": next.id, "outcome": summary}),
            ));
            let result = match stored(&next) {
                Ok(state) => {
                    self.ledger
                        .commit(Change {
                            rows: all,
                            items: vec![state.replacing(prior)],
                            ..Change::default()
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => break (next, true),
                Err(LedgerError::Conflict(_)) => continue,
                Err(e) if failures < 2 => {
                    tracing::error!(approval = %id, attempt = failures, error = %e, "cannot record the end of an approval");
                    failures += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * failures)).await;
                }
                Err(e) => {
                    tracing::error!(approval = %id, error = %e, "cannot record the end of an approval; giving up");
                    break (next, false);
                }
            }
        };
        if committed {
            Approvals::index(&mut guard, &next);
        }
        drop(guard);
        self.publish(&next);
    }
}
