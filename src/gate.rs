//! The gate: the one place that sequences the effects of a tool call around the pure core.
//!
//! For every call: resolve the tool, ask [`crate::decide`], write the proposal and verdict to the
//! ledger durably, and only then forward an allowed call (through [`crate::forward`]) or hand an
//! approval to the [`crate::approval`] desk. It owns that order and nothing else. It must never
//! forward a call whose rows are not durable (fail closed), never change the arguments it
//! forwards, and never speak MCP itself (that is [`crate::mcp`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::approval::state::Status;
use crate::approval::{Desk, Open};
use crate::canonical;
use crate::config::Setup;
use crate::decide::{self, Call, Context, Decision, Verdict};
use crate::envelope::Proposal;
use crate::forward::{Forward, Forwarded, Forwarder};
use crate::ledger::{Ledger, NewRow};
use crate::live::Live;
use crate::mcp::downstream::{ToolDef, ToolReply, ToolServers};

/// A `tools/call` as the agent sent it.
#[derive(Debug, Clone)]
pub struct GateCall {
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub meta: Option<Map<String, Value>>,
}

/// What the agent gets back.
#[derive(Debug)]
pub enum Reply {
    /// The tool ran; its result, as the server returned it.
    Forwarded(ToolReply),
    /// The tool did not run (or failed to be reached): a message the agent can act on, and the
    /// decision details as JSON.
    Refused { message: String, details: Value },
    /// The call waits for a human decision; follow `status` until it is done.
    Suspended {
        approval_id: String,
        role: String,
        status: watch::Receiver<Status>,
    },
}

/// The gate of a running `airlock serve`.
pub struct Gate {
    live: Arc<Live>,
    ledger: Arc<Ledger>,
    servers: Arc<ToolServers>,
    forwarder: Forwarder,
    desk: Arc<Desk>,
    /// Calls between arrival and reply, so shutdown can let them finish.
    in_flight: Arc<AtomicUsize>,
}

/// Counts a call as in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    pub fn new(
        live: Arc<Live>,
        ledger: Arc<Ledger>,
        servers: Arc<ToolServers>,
        forwarder: Forwarder,
        desk: Arc<Desk>,
    ) -> Gate {
        Gate {
            live,
            ledger,
            servers,
            forwarder,
            desk,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Wait (up to `limit`) for calls in flight to finish and record their outcome.
    pub async fn drain(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Tools exposed to agents: everything the tool servers serve. Tools no manifest describes are
    /// listed too — calling them is quarantined and recorded.
    pub fn tools(&self) -> &[ToolDef] {
        self.servers.tools()
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    /// Gate one call end to end.
    pub async fn call(&self, call: GateCall) -> Reply {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(self.in_flight.clone());
        let call_id = uuid::Uuid::new_v4().to_string();
        let now = OffsetDateTime::now_utc();
        // One snapshot per call: it is decided by exactly one policy version.
        let (setup, changed) = self.live.snapshot();
        let actor = setup.config.actor.as_str();
        let args_value = Value::Object(call.arguments.clone());
        let canonical_args = canonical::to_string(&args_value);
        let route = self.route(&setup, &call.tool);
        let manifest = route
            .as_ref()
            .and_then(|(server, tool)| setup.manifests.get(server, tool));
        let decision = decide::decide(
            &Call {
                tool: &call.tool,
                arguments: &call.arguments,
                meta: call.meta.as_ref(),
                canonical_len: canonical_args.len(),
                changed: route
                    .as_ref()
                    .and_then(|(s, t)| changed.get(&(s.clone(), t.clone())))
                    .map(|c| (c.was.as_str(), c.now.as_str())),
                reversal_served: match manifest.map(|m| &m.reversal) {
                    // the undo tool must be served, and be the definition that was reviewed
                    Some(crate::manifest::Reversal::Tool { tool }) => {
                        route.as_ref().is_some_and(|(server, _)| {
                            self.servers.route_of(server, tool).is_some()
                                && !changed.contains_key(&(server.clone(), tool.clone()))
                        })
                    }
                    _ => true,
                },
            },
            manifest,
            &setup.policy,
            &Context { actor, now },
        );
        let too_large = decision
            .reasons
            .iter()
            .any(|r| matches!(r, decide::Reason::ArgumentsTooLarge { .. }));
        let proposal = json!({
            "tool": call.tool,
            "server": route.as_ref().map(|r| r.0.clone()),
            "tool_name": route.as_ref().map(|r| r.1.clone()),
            "arguments": if too_large { Value::Null } else { args_value },
            "arguments_sha256": canonical::sha256_hex(canonical_args.as_bytes()),
            "meta": call.meta.clone().map(Value::Object),
            "actor": actor,
        });
        let mut verdict_body = serde_json::to_value(&decision).unwrap_or_else(
            |e| json!({"verdict": decision.verdict.name(), "encoding_error": e.to_string()}),
        );
        if let Value::Object(o) = &mut verdict_body {
            o.insert("explanation".into(), Value::String(decision.explanation()));
        }
        let mut rows = vec![
            NewRow::at("proposal", &call_id, now, proposal),
            NewRow::at("verdict", &call_id, now, verdict_body),
        ];
        let ledger_failed = |e: &dyn std::fmt::Display| {
            tracing::error!(%call_id, error = %e, "ledger write failed; call not run");
            refused(
                &call_id,
                &decision,
                format!(
                    "Airlock could not record this call in its ledger, so it was not run (fail closed): {e}"
                ),
            )
        };

        if let (Verdict::Approve { role, .. }, Some((server, _)), Some(m)) =
            (&decision.verdict, &route, manifest)
        {
            let open = Open {
                setup: &setup,
                call_id: &call_id,
                proposal: Proposal {
                    tool: &call.tool,
                    server,
                    arguments: &call.arguments,
                    meta: call.meta.as_ref(),
                    actor,
                    manifest: m,
                    decision: &decision,
                },
                rows,
            };
            return match self.desk.open(open).await {
                Ok((approval_id, status)) => Reply::Suspended {
                    approval_id,
                    role: role.clone(),
                    status,
                },
                Err(e) => ledger_failed(&e),
            };
        }
        let run = decision.verdict == Verdict::Allow;
        if !run {
            rows.push(NewRow::at(
                "outcome",
                &call_id,
                now,
                json!({"status": "not_run"}),
            ));
        }
        if let Err(e) = self.ledger.append(rows).await {
            return ledger_failed(&e);
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
        let forward = Forward {
            call_id: &call_id,
            server: &server,
            tool: &tool,
            arguments: call.arguments,
            meta: call.meta,
            context: Map::new(),
        };
        match self.forwarder.run(forward).await {
            Forwarded::Ran(reply) => Reply::Forwarded(reply),
            Forwarded::Failed(e) => refused(
                &call_id,
                &decision,
                format!("`{}` was allowed but could not be run: {e}", call.tool),
            ),
        }
    }

    /// (server, tool name): from the live catalog, or from the manifests when the server is down.
    fn route(&self, setup: &Setup, exposed: &str) -> Option<(String, String)> {
        if let Some(def) = self.servers.route(exposed) {
            return Some((def.server.clone(), def.name.clone()));
        }
        setup
            .resolve_static(exposed)
            .map(|(s, m)| (s.name.clone(), m.name.clone()))
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
            "`{tool}` needs approval by role `{role}`, but its tool server is not known, so it was not run (fail closed). {why}."
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

    use super::{Arc, Desk, Forwarder, Gate, GateCall, Ledger, Live, Reply, ToolServers};
    use crate::approval::link::LinkKey;
    use crate::config::load_setup;
    use crate::ledger::tests::FailSwitch;
    use crate::mail::Mailer;

    /// The demo shop built by `cargo test` (examples are built with the tests).
    fn demo_shop() -> Option<std::path::PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let p = exe.parent()?.parent()?.join("examples").join("demo_shop");
        if p.exists() {
            return Some(p);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{} missing: run `cargo test` (it builds the examples)",
            p.display()
        );
        eprintln!(
            "SKIPPED: {} is not built; run `cargo test` to build the examples",
            p.display()
        );
        None
    }

    #[tokio::test]
    async fn when_the_ledger_cannot_be_written_the_call_never_reaches_the_tool_server() {
        let Some(shop) = demo_shop() else { return };
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let log = dir.path().join("executed.jsonl");
        w(
            "airlock.toml",
            &format!(
                "[[server]]\nname = \"shop\"\ncommand = {:?}\nargs = [\"--log\", {:?}]\nprefix = \"\"\n",
                shop.display().to_string(),
                log.display().to_string()
            ),
        );
        w(
            "policies/p.toml",
            "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\n",
        );
        w(
            "tool-manifests/m.toml",
            "[[tool]]\nserver = \"shop\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
        );
        let setup = Arc::new(load_setup(&dir.path().join("airlock.toml")).unwrap());
        let (backend, fail) = FailSwitch::new();
        let ledger = Arc::new(Ledger::open_on(backend).unwrap());
        let (servers, problems) = ToolServers::connect(&setup.config.servers).await;
        assert!(problems.is_empty(), "{problems:?}");
        let servers = Arc::new(servers);
        let forwarder = Forwarder::new(ledger.clone(), servers.clone());
        let mailer = Mailer::new(&setup.config.mail).unwrap();
        let live = Arc::new(Live::new(setup.clone(), Default::default()));
        let desk = Desk::new(
            live.clone(),
            ledger.clone(),
            servers.clone(),
            forwarder.clone(),
            mailer,
            LinkKey::random().unwrap(),
            "http://127.0.0.1:1".into(),
        );
        let gate = Gate::new(live, ledger, servers, forwarder, desk);

        let echo = |text: &str| GateCall {
            tool: "echo".into(),
            arguments: serde_json::json!({"text": text})
                .as_object()
                .cloned()
                .unwrap(),
            meta: None,
        };
        assert!(
            matches!(gate.call(echo("with a ledger")).await, Reply::Forwarded(_)),
            "control: a healthy gate forwards"
        );
        fail.store(true, Ordering::SeqCst);
        match gate.call(echo("without a ledger")).await {
            Reply::Refused { message, details } => {
                assert!(
                    message.contains("could not record this call") && message.contains("not run"),
                    "{message}"
                );
                assert_eq!(details["verdict"], "allow");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let ran: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(
            ran.len(),
            1,
            "only the call made while the ledger worked reached the server: {ran:?}"
        );
        assert!(ran[0].contains("with a ledger"));
    }
}
