//! Forwarding: run an allowed (or approved) call on its tool server and record the outcome.
//!
//! Owns the one code path that makes a tool server act, used by the gate for autopilot calls and
//! by the approval desk for approved ones. It must never be called before the call's proposal,
//! verdict (and, for approvals, execution intent) are durable; its callers guarantee that.
//!
//! An autopilot call's outcome row is queued before the agent gets the result and joins the next
//! group commit; the agent does not wait for it unless `[gate] outcome_before_reply` says so.
//! The call's mark (committed with its verdict, see [`Forwarder::mark`]) covers the gap: a
//! crash in it leaves the mark, which the next start turns into an `unknown` outcome row.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::canonical;
use crate::ledger::{Change, Ledger, LedgerError, NewRow, Row, row};
use crate::mcp::downstream::{DownstreamError, ToolReply, ToolServers};

/// What became of a forwarded call.
#[derive(Debug, Clone)]
pub enum Forwarded {
    /// The tool server answered (possibly with a tool-level error).
    Ran(ToolReply),
    /// It could not be run: the message says why.
    Failed(String),
}

/// Everything a forwarded call needs.
pub struct Forward<'a> {
    pub call_id: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    pub arguments: Map<String, Value>,
    pub meta: Option<Map<String, Value>>,
    /// What the call runs under, for the outcome row (e.g. the approval id).
    pub context: row::RunContext,
    /// Where the tool server's progress and log messages go (the agent's call in flight).
    pub relay: Option<String>,
    /// Fires when the agent waiting for the call cancels it: the tool server is told to stop and
    /// the outcome is `cancelled`. `None` when no agent waits (an approved or released call),
    /// so nobody but the tool server ends it.
    pub cancel: Option<CancellationToken>,
}

#[derive(Clone)]
pub struct Forwarder {
    ledger: Arc<Ledger>,
    servers: Arc<ToolServers>,
    /// Wait until the outcome row is durable before returning (one more fsync per call).
    outcome_before_reply: bool,
    /// The seal key: redacted values are taken out with its keys and put back only to run.
    sealer: Arc<crate::seal::Sealer>,
}

/// Why an `unknown` outcome row was written at start.
const UNSETTLED: &str = "the gate stopped after forwarding this call and before its outcome was recorded; the call may have run";

impl Forwarder {
    pub fn new(
        ledger: Arc<Ledger>,
        servers: Arc<ToolServers>,
        sealer: Arc<crate::seal::Sealer>,
    ) -> Forwarder {
        Forwarder {
            ledger,
            servers,
            outcome_before_reply: false,
            sealer,
        }
    }

    /// The seal key (redaction's keys, sealing and opening).
    pub fn sealer(&self) -> &crate::seal::Sealer {
        &self.sealer
    }

    /// Wait for every outcome row to be durable before answering (`[gate] outcome_before_reply`).
    pub fn outcome_before_reply(mut self, wait: bool) -> Forwarder {
        self.outcome_before_reply = wait;
        self
    }

    /// The mark to commit with the rows that let a call run (for [`Change::forwarded`]).
    pub fn mark(call_id: &str, server: &str, tool: &str) -> (String, Value) {
        (call_id.to_string(), json!({"server": server, "tool": tool}))
    }

    /// Call the tool server once and record the outcome row, which removes the call's mark.
    pub async fn run(&self, f: Forward<'_>) -> Forwarded {
        let call_id = f.call_id.to_string();
        let (row, result) = self.call(f).await;
        let change = Change {
            rows: vec![row],
            settled: vec![call_id.clone()],
            ..Change::default()
        };
        // The call has already run: whatever happens to its row, the agent gets its result
        // (hiding it would invite a retry and a second run). A row that never commits leaves
        // the mark, and the next start records the outcome as unknown.
        let queued = if self.outcome_before_reply {
            self.ledger.submit(change)
        } else {
            self.ledger.submit_lazy(change)
        };
        match queued {
            Ok(pending) if self.outcome_before_reply => {
                if let Err(e) = pending.await {
                    tracing::error!(%call_id, error = %e, "ledger write of the outcome failed after the call ran");
                }
            }
            Ok(_queued) => {}
            Err(e) => {
                tracing::error!(%call_id, error = %e, "ledger write of the outcome failed after the call ran")
            }
        }
        result
    }

    /// At start: record an `unknown` outcome for every call a previous run forwarded without
    /// recording its outcome (it crashed in between). Returns how many.
    pub async fn record_unknown_outcomes_left(&self) -> Result<usize, LedgerError> {
        self.record_unknown_outcomes(self.ledger.unsettled()?).await
    }

    /// Record an `unknown` outcome for each of these marked calls (a previous run's, or a dead
    /// replica's), removing their marks.
    pub async fn record_unknown_outcomes(
        &self,
        left: Vec<(String, Value)>,
    ) -> Result<usize, LedgerError> {
        if left.is_empty() {
            return Ok(0);
        }
        let rows = left
            .iter()
            .map(|(id, route)| {
                let text = |k: &str| route.get(k).and_then(Value::as_str).map(str::to_string);
                NewRow::now(
                    id,
                    Row::Outcome(row::Outcome {
                        server: text("server"),
                        tool: text("tool"),
                        reason: Some(UNSETTLED.to_string()),
                        ..row::Outcome::of(row::OutcomeStatus::Unknown)
                    }),
                )
            })
            .collect();
        let settled: Vec<String> = left.into_iter().map(|(id, _)| id).collect();
        let n = settled.len();
        self.ledger
            .commit(Change {
                rows,
                settled,
                ..Change::default()
            })
            .await?;
        Ok(n)
    }

    /// Call the tool server once; the outcome row is the caller's to commit (the approval desk
    /// commits it together with the approval's end, so a crash cannot split them).
    pub async fn call(&self, f: Forward<'_>) -> (NewRow, Forwarded) {
        let started = Instant::now();
        let outcome = self
            .servers
            .call(
                f.server,
                f.tool,
                f.arguments,
                f.meta,
                f.relay.as_deref(),
                f.cancel.as_ref(),
            )
            .await;
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let status = match &outcome {
            Ok(reply) if reply.is_error => row::OutcomeStatus::ToolError,
            Ok(_) => row::OutcomeStatus::Ok,
            Err(DownstreamError::Cancelled { .. }) => row::OutcomeStatus::Cancelled,
            Err(_) => row::OutcomeStatus::Failed,
        };
        crate::metrics::global().tool_call(
            f.server,
            status.as_str(),
            started.elapsed().as_secs_f64(),
        );
        let mut body = row::Outcome {
            duration_us: Some(duration_us),
            context: f.context,
            ..row::Outcome::of(status)
        };
        let result = match outcome {
            Ok(reply) => {
                body.result_sha256 = Some(canonical::sha256_hex(
                    canonical::to_string(&reply.json).as_bytes(),
                ));
                Forwarded::Ran(reply)
            }
            Err(e) => {
                body.error = Some(e.to_string());
                Forwarded::Failed(e.to_string())
            }
        };
        (NewRow::now(f.call_id, Row::Outcome(body)), result)
    }
}
