//! The gate: the one place that sequences the effects of a tool call around the pure core.
//!
//! For every call: resolve the tool, ask [`crate::decide`], write the proposal and verdict to the
//! ledger durably, and only then forward an allowed call (through [`crate::forward`]) or hand an
//! approval to the [`crate::approval`] desk. It owns that order and nothing else. It must never
//! forward a call whose rows are not durable (fail closed), never change the arguments it
//! forwards, and never speak MCP itself (that is [`crate::mcp`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::approval::Approvals;
use crate::approval::state::Status;
use crate::canonical;
use crate::config::Setup;
use crate::decide::{self, Call, Context, Decision, Verdict};
use crate::drift::Pause;
use crate::drift::pauses::Pauses;
use crate::forward::{Forward, Forwarded, Forwarder};
use crate::ledger::{Change, Ledger, NewRow, Pending, Row, row};
use crate::live::Live;
use crate::mcp::downstream::{ToolReply, ToolServers, ToolSet};
use crate::quarantine::{self, Held, Quarantine};
use crate::retry::Asks;

/// A `tools/call` as the agent sent it.
#[derive(Debug, Clone)]
pub struct GateCall {
    /// Who calls: the HTTP agent's actor, or `None` for the stdio agent (`gate.actor`).
    pub actor: Option<String>,
    /// An opaque key under which the tool server's progress and log messages reach the agent.
    pub relay: Option<String>,
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub meta: Option<Map<String, Value>>,
    /// Fires when the agent cancels its request: an allowed call in flight is then cancelled on
    /// its tool server (an approval is not: people decide it).
    pub cancel: Option<CancellationToken>,
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
    /// A repeat of a call held for review: the held call as it stands.
    Held(Box<Held>),
}

/// The gate of a running `airlock serve`.
pub struct Gate {
    live: Arc<Live>,
    ledger: Arc<Ledger>,
    servers: Arc<ToolServers>,
    forwarder: Forwarder,
    approvals: Arc<Approvals>,
    quarantine: Arc<Quarantine>,
    pauses: Arc<Pauses>,
    /// Calls between arrival and reply, so shutdown can let them finish.
    in_flight: Arc<AtomicUsize>,
    /// Each agent's refused calls this minute (`refused_per_minute`).
    refusals: tally::Budget,
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
        approvals: Arc<Approvals>,
        quarantine: Arc<Quarantine>,
        pauses: Arc<Pauses>,
    ) -> Gate {
        Gate {
            live,
            ledger,
            servers,
            forwarder,
            approvals,
            quarantine,
            pauses,
            in_flight: Arc::new(AtomicUsize::new(0)),
            refusals: tally::Budget::default(),
        }
    }

    /// Wait (up to `limit`) for calls in flight to finish and record their outcome.
    pub async fn drain(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.record_counted(true).await;
    }

    /// Tools exposed to agents: everything the tool servers serve. Tools no manifest describes are
    /// listed too — calling them is quarantined and recorded.
    pub fn tools(&self) -> Arc<ToolSet> {
        self.servers.tools()
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// The tool servers (the MCP layer routes their notifications back to agents through them).
    pub fn servers(&self) -> &Arc<ToolServers> {
        &self.servers
    }

    pub fn quarantine(&self) -> &Arc<Quarantine> {
        &self.quarantine
    }

    /// Gate one call end to end.
    pub async fn call(&self, call: GateCall) -> Reply {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(self.in_flight.clone());
        let call_id = uuid::Uuid::new_v4().to_string();
        let now = OffsetDateTime::now_utc();
        // One snapshot per call: it is decided by exactly one policy version.
        let (setup, changed) = self.live.snapshot();
        let actor = call.actor.as_deref().unwrap_or(setup.config.actor.as_str());
        let args_value = Value::Object(call.arguments.clone());
        let canonical_args = canonical::to_string(&args_value);
        // one snapshot of the tools served, borrowed for the whole decision
        let served = self.servers.tools();
        let route = route_in(&served, &setup, &call.tool);
        let manifest = route
            .as_ref()
            .and_then(|(server, tool)| setup.manifests.get(server, tool));
        let facts = Call {
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
                        served.route_of(server, tool).is_some()
                            && !changed.contains_key(&(server.clone(), tool.clone()))
                    })
                }
                _ => true,
            },
        };
        let Recorded {
            redacted,
            arguments: recorded,
            arguments_sha256,
            proposal,
        } = recorded::of(recorded::Call {
            call: &call,
            route: route.as_ref(),
            manifest,
            keys: self.forwarder.sealer().keys(),
            call_id: &call_id,
            actor,
            whole: args_value,
            canonical: &canonical_args,
        });
        // a repeat of a call already made is answered by that call once decided the same way
        let retried = match self.retried(retries::Retrying {
            setup: &setup,
            call: &call,
            route: route.as_ref(),
            class: manifest.map(|m| m.class.as_str()),
            actor,
            call_id: &call_id,
            arguments_sha256: &arguments_sha256,
            proposal: &proposal,
            now,
        }) {
            Ok(retried) => retried,
            Err(reply) => return *reply,
        };
        // Decide and charge the rate-limit counters under the meter's lock, and queue the
        // ledger change before releasing it: counters change in the order they are committed.
        let (decision, committed) = {
            let mut meter = self.pauses.meter().lock();
            let decision = decide::decide(
                &facts,
                manifest,
                &setup.policy,
                &Context {
                    actor,
                    now,
                    usage: &*meter,
                },
            );
            // a reason never quotes a redacted value
            let decision = match manifest {
                Some(m) if !m.redact.is_empty() => decision.hiding(&m.redact),
                _ => decision,
            };
            let mut rows = vec![
                NewRow::at(&call_id, now, Row::Proposal(proposal)),
                NewRow::at(
                    &call_id,
                    now,
                    Row::Verdict(verdict_body(
                        &decision,
                        setup.policy.is_signed(decision.class.as_deref()),
                    )),
                ),
            ];
            let asks = match &decision.verdict {
                Verdict::Approve { .. } if manifest.is_some() => Asks::Approval,
                Verdict::Quarantine if pause_of(&decision, &call_id, now).is_none() => Asks::Review,
                Verdict::Allow if retried.fresh.as_ref().is_some_and(|f| f.keyed) => {
                    Asks::Autopilot
                }
                _ => Asks::Nothing,
            };
            if let Some((repeat, row)) = retried.repeat(asks, &call_id, now) {
                rows.push(row);
                (decision, Committed::Repeat(rows, repeat))
            } else if matches!(decision.verdict, Verdict::Approve { .. }) && manifest.is_some() {
                (decision, Committed::ToDesk(rows))
            } else {
                let mut change = Change::default();
                let mut pause = None;
                let refusing = Refusing {
                    actor,
                    tool: &call.tool,
                    call_id: &call_id,
                    decision: &decision,
                    limit: setup.policy.refused_per_minute,
                    // a signed class's refusals are evidence: always recorded whole
                    must_record: setup.policy.is_signed(decision.class.as_deref()),
                    now,
                };
                // the held call, or why a quarantined call is not held
                let mut held: Option<Result<Held, &'static str>> = None;
                match &decision.verdict {
                    Verdict::Allow => {
                        // with an idempotency key, the call takes its key: it runs at most once
                        if let Some(f) = retried.fresh.as_ref().filter(|f| f.keyed) {
                            let item = crate::retry::Item::Call(call_id.clone());
                            match f.state(item, &call_id, now) {
                                Ok(state) => change.items.push(state),
                                Err(e) => return ledger_failed(&call_id, &decision, &e),
                            }
                        }
                        change.drift = meter.charge(&decision.charges, now);
                        if let Some((server, tool)) = &route {
                            change
                                .forwarded
                                .push(Forwarder::mark(&call_id, server, tool));
                        }
                    }
                    Verdict::Quarantine => {
                        if let Some(p) = pause_of(&decision, &call_id, now) {
                            change.drift = meter.pause(p.clone());
                            pause = Some(p);
                        }
                        held = Some(
                            if crate::authority::needed(
                                &crate::authority::Matter::Held {
                                    roles: &decision.review_roles,
                                    requester: actor,
                                },
                                &setup.policy,
                            )
                            .is_err()
                            {
                                Err(NO_REVIEWER)
                            } else {
                                // released, it runs only on the definition it was held under
                                self.hold(&served, &call, &route, &decision, &call_id, actor, now)
                                    .and_then(|h| {
                                        Ok(Held {
                                            definition: facts
                                                .changed
                                                .map(|(_, now)| now.to_string()),
                                            // held as recorded; its redacted values sealed
                                            arguments: recorded::map_of(&recorded),
                                            sealed: self.seal(&call_id, redacted.as_ref())?,
                                            ..h
                                        })
                                    })
                            },
                        );
                        match &held {
                            Some(Ok(h)) => {
                                rows.push(NewRow::at(
                                    &call_id,
                                    now,
                                    Row::Held(row::Held {
                                        reason: h.reason.clone(),
                                        arguments_sha256: arguments_sha256.clone(),
                                    }),
                                ));
                                let keys = retried.fresh.as_ref().map(|f| {
                                    f.states(
                                        crate::retry::Item::Held(call_id.clone()),
                                        &call_id,
                                        now,
                                    )
                                });
                                match quarantine::entry(h).and_then(|e| Ok((e, keys.transpose()?)))
                                {
                                    Ok((e, keys)) => change.items.extend(
                                        std::iter::once(e).chain(keys.into_iter().flatten()),
                                    ),
                                    Err(e) => {
                                        if let Some(p) = &pause {
                                            meter.unpause(&p.scope, &call_id);
                                        }
                                        return ledger_failed(&call_id, &decision, &e);
                                    }
                                }
                            }
                            _ => {
                                let refusing = Refusing {
                                    must_record: refusing.must_record || pause.is_some(),
                                    ..refusing
                                };
                                if let Some(reply) = self.tally_refused(&refusing, &mut rows) {
                                    return reply;
                                }
                                cap_refused(&mut rows);
                                rows.push(not_run(&call_id, now));
                            }
                        }
                    }
                    _ => {
                        if let Some(reply) = self.tally_refused(&refusing, &mut rows) {
                            return reply;
                        }
                        cap_refused(&mut rows);
                        rows.push(not_run(&call_id, now));
                    }
                }
                change.rows = rows;
                match self.ledger.submit(change) {
                    Ok(pending) => (
                        decision,
                        Committed::Queued {
                            pending,
                            pause,
                            held: held.map(|h| h.map(Box::new)),
                        },
                    ),
                    Err(e) => {
                        // nothing was recorded: the pause this call would start never was
                        if let Some(p) = &pause {
                            meter.unpause(&p.scope, &call_id);
                        }
                        return ledger_failed(&call_id, &decision, &e);
                    }
                }
            }
        };
        let path = decision
            .class
            .as_deref()
            .and_then(|c| setup.policy.classes.get(c))
            .map_or("none", |rule| rule.path.name());
        crate::metrics::global().call(path, decision.verdict.name());
        let (pending, pause, held) = match committed {
            Committed::ToDesk(rows) => {
                let sealed = match self.seal(&call_id, redacted.as_ref()) {
                    Ok(s) => s,
                    Err(why) => return ledger_failed(&call_id, &decision, &why.trim()),
                };
                let asked = GateCall {
                    arguments: recorded::map_of(&recorded),
                    ..call.clone()
                };
                return self
                    .suspend(
                        &setup,
                        &asked,
                        sealed,
                        &call_id,
                        actor,
                        route,
                        &decision,
                        rows,
                        retried.fresh,
                    )
                    .await;
            }
            Committed::Repeat(rows, repeat) => {
                return self.answer_repeat(&call_id, rows, repeat).await;
            }
            Committed::Queued {
                pending,
                pause,
                held,
            } => (pending, pause, held),
        };
        if let Err(e) = pending.await {
            if let Some(p) = &pause {
                self.pauses.meter().lock().unpause(&p.scope, &call_id);
            }
            return ledger_failed(&call_id, &decision, &e);
        }
        if let Some(p) = pause {
            let pauses = self.pauses.clone();
            tokio::spawn(async move { pauses.notify(&p).await });
        }
        if decision.verdict != Verdict::Allow {
            let mut message = refusal_message(&call.tool, &decision);
            if let Some(Ok(h)) = held {
                message.push_str(&format!(
                    " It is held for review as `{}`: a reviewer may release it (it then runs once; ask airlock_status with {{\"approval_id\": \"{}\"}} for its result) or reject it.",
                    h.id, h.id
                ));
                self.quarantine.notify(&h);
                self.quarantine.admit(*h);
            } else if let Some(Err(why)) = held {
                message.push_str(why);
            }
            return refused(&call_id, &decision, message);
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
            context: row::RunContext::default(),
            relay: call.relay,
            cancel: call.cancel,
        };
        let reply = match self.forwarder.run(forward).await {
            Forwarded::Ran(reply) => Reply::Forwarded(reply),
            Forwarded::Failed(e) => refused(
                &call_id,
                &decision,
                format!("`{}` was allowed but could not be run: {e}", call.tool),
            ),
        };
        if let Some(f) = retried.fresh.as_ref().filter(|f| f.keyed) {
            self.keep_result(f, &call_id, now, &reply).await;
        }
        reply
    }
}

/// (server, tool name): from the tools served, or from the manifests when the server is down.
fn route_in(served: &ToolSet, setup: &Setup, exposed: &str) -> Option<(String, String)> {
    if let Some(def) = served.route(exposed) {
        return Some((def.server.clone(), def.name.clone()));
    }
    setup
        .resolve_static(exposed)
        .map(|(s, m)| (s.name.clone(), m.name.clone()))
}

mod handoff;
mod recorded;
use recorded::Recorded;
mod tally;
use handoff::NO_REVIEWER;
use tally::Refusing;
mod reply;
pub use reply::verdict_body;
mod retries;
use reply::{Committed, cap_refused, ledger_failed, not_run, pause_of, refusal_message, refused};

#[cfg(test)]
mod tests;
