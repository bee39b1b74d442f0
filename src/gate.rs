//! The gate: the one place that sequences the effects of a tool call around the pure core.
//!
//! For every call: resolve the tool, ask [`crate::decide`], write the proposal and verdict to the
//! ledger durably, and only then forward an allowed call and record its outcome. It owns that
//! order and nothing else. It must never forward a call whose rows are not durable (fail closed),
//! never change the arguments it forwards, and never speak MCP itself (that is [`crate::mcp`]).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::canonical;
use crate::config::Setup;
use crate::decide::{self, Call, Context, Decision, Verdict};
use crate::ledger::{Ledger, NewRow};
use crate::mcp::downstream::{ToolDef, ToolReply, ToolServers};

/// A `tools/call` as the agent sent it.
#[derive(Debug, Clone)]
pub struct GateCall {
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub meta: Option<Map<String, Value>>,
}

/// What the agent gets back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The tool ran; its result, untouched.
    Forwarded(ToolReply),
    /// The tool did not run (or failed to be reached): a message the agent can act on, and the
    /// decision details as JSON.
    Refused { message: String, details: Value },
}

/// The gate of a running `airlock serve`.
pub struct Gate {
    setup: Setup,
    ledger: Ledger,
    servers: Arc<ToolServers>,
}

impl Gate {
    pub fn new(setup: Setup, ledger: Ledger, servers: Arc<ToolServers>) -> Gate {
        Gate {
            setup,
            ledger,
            servers,
        }
    }

    /// Tools exposed to agents: everything the tool servers serve. Tools no manifest describes are
    /// listed too — calling them is quarantined and recorded.
    pub fn tools(&self) -> &[ToolDef] {
        self.servers.tools()
    }

    pub fn actor(&self) -> &str {
        &self.setup.config.actor
    }

    /// Gate one call end to end.
    pub async fn call(&self, call: GateCall) -> Reply {
        let call_id = uuid::Uuid::new_v4().to_string();
        let now = OffsetDateTime::now_utc();
        let args_value = Value::Object(call.arguments.clone());
        let canonical_args = canonical::to_string(&args_value);
        let route = self.route(&call.tool);
        let manifest = route
            .as_ref()
            .and_then(|(server, tool)| self.setup.manifests.get(server, tool));
        let decision = decide::decide(
            &Call {
                tool: &call.tool,
                arguments: &call.arguments,
                meta: call.meta.as_ref(),
                canonical_len: canonical_args.len(),
            },
            manifest,
            &self.setup.policy,
            &Context {
                actor: self.actor(),
                now,
            },
        );
        let proposal = json!({
            "tool": call.tool,
            "server": route.as_ref().map(|r| r.0.clone()),
            "tool_name": route.as_ref().map(|r| r.1.clone()),
            "arguments": if decision.reasons.iter().any(|r| matches!(r, decide::Reason::ArgumentsTooLarge { .. })) { Value::Null } else { args_value },
            "arguments_sha256": canonical::sha256_hex(canonical_args.as_bytes()),
            "meta": call.meta.clone().map(Value::Object),
            "actor": self.actor(),
        });
        let verdict_body = serde_json::to_value(&decision).unwrap_or_else(
            |e| json!({"verdict": decision.verdict.name(), "encoding_error": e.to_string()}),
        );
        let mut rows = vec![
            self.row("proposal", &call_id, now, proposal),
            self.row("verdict", &call_id, now, verdict_body),
        ];
        let run = decision.verdict == Verdict::Allow;
        if !run {
            rows.push(self.row("outcome", &call_id, now, json!({"status": "not_run"})));
        }
        if let Err(e) = self.ledger.append(rows).await {
            tracing::error!(%call_id, error = %e, "ledger write failed; call not run");
            return refused(
                &call_id,
                &decision,
                format!(
                    "Airlock could not record this call in its ledger, so it was not run (fail closed): {e}"
                ),
            );
        }
        if !run {
            return refused(&call_id, &decision, refusal_message(&call.tool, &decision));
        }
        let Some((server, tool)) = route else {
            // decide() quarantines calls without a manifest, and manifests are only found through a route.
            return refused(
                &call_id,
                &decision,
                format!(
                    "`{}` is not served by any tool server; it was not run",
                    call.tool
                ),
            );
        };
        let started = Instant::now();
        let outcome = self
            .servers
            .call(&server, &tool, call.arguments, call.meta)
            .await;
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (body, reply) = match outcome {
            Ok(reply) => (
                json!({"status": if reply.is_error { "tool_error" } else { "ok" }, "result_sha256": canonical::sha256_hex(canonical::to_string(&reply.json).as_bytes()), "duration_us": duration_us}),
                Reply::Forwarded(reply),
            ),
            Err(e) => (
                json!({"status": "failed", "error": e.to_string(), "duration_us": duration_us}),
                refused(
                    &call_id,
                    &decision,
                    format!("`{}` was allowed but could not be run: {e}", call.tool),
                ),
            ),
        };
        if let Err(e) = self
            .ledger
            .append(vec![self.row(
                "outcome",
                &call_id,
                OffsetDateTime::now_utc(),
                body,
            )])
            .await
        {
            // The call has already run; hiding its result would invite a retry and a second run.
            tracing::error!(%call_id, error = %e, "ledger write of the outcome failed after the call ran");
        }
        reply
    }

    /// (server, tool name): from the live catalog, or from the manifests when the server is down.
    fn route(&self, exposed: &str) -> Option<(String, String)> {
        if let Some(def) = self.servers.route(exposed) {
            return Some((def.server.clone(), def.name.clone()));
        }
        self.setup
            .resolve_static(exposed)
            .map(|(s, m)| (s.name.clone(), m.name.clone()))
    }

    fn row(&self, kind: &'static str, call_id: &str, time: OffsetDateTime, body: Value) -> NewRow {
        NewRow {
            kind,
            call_id: call_id.to_string(),
            time,
            body,
        }
    }
}

fn refusal_message(tool: &str, d: &Decision) -> String {
    let why = d.explanation();
    match &d.verdict {
        Verdict::Allow => format!("`{tool}` was allowed: {why}"),
        Verdict::Deny => format!("Airlock denied `{tool}`; it was not run. {why}."),
        Verdict::Quarantine => format!(
            "Airlock quarantined `{tool}`; it was not run and awaits classification or review by a person. {why}."
        ),
        Verdict::Approve { role, .. } => format!(
            "`{tool}` needs approval by role `{role}`; this Airlock cannot hold calls for approval yet, so it was not run (fail closed). {why}."
        ),
    }
}

fn refused(call_id: &str, d: &Decision, message: String) -> Reply {
    let mut details = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut details {
        o.insert("call_id".into(), Value::String(call_id.to_string()));
    }
    Reply::Refused { message, details }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::load_setup;
    use crate::ledger::tests::FailSwitch;

    fn setup(dir: &std::path::Path) -> Setup {
        let w = |rel: &str, text: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w(
            "airlock.toml",
            "[[server]]\nname = \"shop\"\ncommand = \"unused\"\nprefix = \"\"\n",
        );
        w(
            "policies/p.toml",
            "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\n",
        );
        w(
            "tool-manifests/m.toml",
            "[[tool]]\nserver = \"shop\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
        );
        load_setup(&dir.join("airlock.toml")).unwrap()
    }

    #[tokio::test]
    async fn when_the_ledger_cannot_be_written_the_call_is_not_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let (backend, fail) = FailSwitch::new();
        let ledger = Ledger::open_on(backend).unwrap();
        let (servers, _) = ToolServers::connect(&[]).await;
        let gate = Gate::new(setup(dir.path()), ledger, Arc::new(servers));
        fail.store(true, Ordering::SeqCst);
        let reply = gate
            .call(GateCall {
                tool: "echo".into(),
                arguments: Map::new(),
                meta: None,
            })
            .await;
        match reply {
            Reply::Refused { message, details } => {
                // Had the gate gone on to forward, it would have reported the server as not running.
                assert!(
                    message.contains("could not record this call") && message.contains("not run"),
                    "{message}"
                );
                assert_eq!(details["verdict"], "allow");
            }
            Reply::Forwarded(r) => panic!("forwarded without a durable ledger row: {r:?}"),
        }
    }
}
