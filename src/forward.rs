//! Forwarding: run an allowed (or approved) call on its tool server and record the outcome.
//!
//! Owns the one code path that makes a tool server act, used by the gate for autopilot calls and
//! by the approval desk for approved ones. It must never be called before the call's proposal,
//! verdict (and, for approvals, execution intent) are durable; its callers guarantee that.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::canonical;
use crate::ledger::{Ledger, NewRow};
use crate::mcp::downstream::{ToolReply, ToolServers};

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
    /// Extra fields for the outcome row (e.g. the approval id).
    pub context: Map<String, Value>,
    /// Where the tool server's progress and log messages go (the agent's call in flight).
    pub relay: Option<String>,
}

#[derive(Clone)]
pub struct Forwarder {
    ledger: Arc<Ledger>,
    servers: Arc<ToolServers>,
}

impl Forwarder {
    pub fn new(ledger: Arc<Ledger>, servers: Arc<ToolServers>) -> Forwarder {
        Forwarder { ledger, servers }
    }

    /// Call the tool server once and append the outcome row.
    pub async fn run(&self, f: Forward<'_>) -> Forwarded {
        let call_id = f.call_id.to_string();
        let (row, result) = self.call(f).await;
        if let Err(e) = self.ledger.append(vec![row]).await {
            // The call has already run; hiding its result would invite a retry and a second run.
            tracing::error!(%call_id, error = %e, "ledger write of the outcome failed after the call ran");
        }
        result
    }

    /// Call the tool server once; the outcome row is the caller's to commit (the approval desk
    /// commits it together with the approval's end, so a crash cannot split them).
    pub async fn call(&self, f: Forward<'_>) -> (NewRow, Forwarded) {
        let started = Instant::now();
        let outcome = self
            .servers
            .call(f.server, f.tool, f.arguments, f.meta, f.relay.as_deref())
            .await;
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (mut body, result) = match outcome {
            Ok(reply) => (
                json!({
                    "status": if reply.is_error { "tool_error" } else { "ok" },
                    "result_sha256": canonical::sha256_hex(canonical::to_string(&reply.json).as_bytes()),
                    "duration_us": duration_us,
                }),
                Forwarded::Ran(reply),
            ),
            Err(e) => (
                json!({"status": "failed", "error": e.to_string(), "duration_us": duration_us}),
                Forwarded::Failed(e.to_string()),
            ),
        };
        if let Value::Object(o) = &mut body {
            o.extend(f.context);
        }
        (NewRow::now("outcome", f.call_id, body), result)
    }
}
