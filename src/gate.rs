//! The gate: the one place that sequences the effects of a tool call around the pure core.
//!
//! Split as a pure plan and a short driver. [`plan::plan`] says what becomes of a call — the
//! decision ([`crate::decide`]), the rows and state to commit, the meter change and its undo,
//! and the next step (forward, suspend at the approval desk, hold, refuse, answer a repeat) —
//! without I/O. The driver, [`Gate::call`], performs it: it takes the snapshot, the call id and
//! the time, looks up the call's key, seals redacted values, plans and queues the commit under
//! the meter's lock, and once the rows are durable forwards an allowed call (through
//! [`crate::forward`]), hands an approval to the [`crate::approval`] desk, or refuses. It owns
//! that order and nothing else. It must never forward a call whose rows are not durable (fail
//! closed), never change the arguments it forwards, and never speak MCP itself (that is
//! [`crate::mcp`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::approval::Approvals;
use crate::approval::state::Status;
use crate::decide::Decision;
use crate::drift::pauses::Pauses;
use crate::forward::{Forward, Forwarded, Forwarder};
use crate::ledger::{Ledger, Pending, row};
use crate::live::Live;
use crate::mcp::downstream::{ToolReply, ToolServers, ToolSet};
use crate::quarantine::{Held, Quarantine};

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

    /// Gate one call end to end: resolve it against one snapshot, look up its key, plan it
    /// under the meter's lock ([`plan::plan`]), commit, then do what the plan says next.
    pub async fn call(&self, call: GateCall) -> Reply {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(self.in_flight.clone());
        let call_id = uuid::Uuid::new_v4().to_string();
        let now = crate::instant::now();
        // One snapshot per call: it is decided by exactly one policy version.
        let (setup, changed) = self.live.snapshot();
        let served = self.servers.tools();
        let snapshot = plan::Snapshot {
            setup: &setup,
            changed: &changed,
            served: &served,
        };
        let keys = self.forwarder.sealer().keys();
        let (incoming, recorded) = plan::incoming(&snapshot, &call, &call_id, now, keys);
        let actor = incoming.actor;
        // a repeat of a call already made is answered by that call once decided the same way
        let retried = match self.retried(retries::Retrying::of(&setup, &incoming, &recorded)) {
            Ok(retried) => retried,
            Err(reply) => return *reply,
        };
        let sealed = self.seal(&call_id, recorded.redacted.as_ref());
        let waiting = |server: &str, tool: &str| self.quarantine.waiting(server, tool);
        let given = plan::Given {
            snapshot: &snapshot,
            incoming,
            recorded,
            retried,
            sealed,
            waiting: &waiting,
        };
        let (decision, committed) = match self.commit(given) {
            Ok(committed) => committed,
            Err(reply) => return *reply,
        };
        count(&setup, &decision);
        match committed {
            Committed::Suspend(s) => {
                self.suspend(&setup, &call, actor, &call_id, &decision, s)
                    .await
            }
            Committed::Repeat(rows, repeat) => self.answer_repeat(&call_id, rows, repeat).await,
            Committed::Queued(pending, queued) => {
                let carried = self.carry_on(&call_id, &decision, pending, queued).await;
                match carried {
                    Carried::Replied(reply) => reply,
                    Carried::Forward { server, tool, keep } => {
                        self.forward(call, &call_id, &decision, (server, tool), keep, now)
                            .await
                    }
                }
            }
        }
    }

    /// Plan the call under the meter's lock, tally a refusal, apply the meter change and queue
    /// the ledger change before releasing the lock: counters change in the order they are
    /// committed. A refusal only counted, or a change that cannot be queued, is the reply.
    fn commit<'a>(&self, given: plan::Given<'a>) -> Result<(Decision, Committed<'a>), Box<Reply>> {
        let inc = &given.incoming;
        let (call_id, now, actor, tool) = (inc.call_id, inc.now, inc.actor, &inc.call.tool);
        let limit = given.snapshot.setup.policy.refused_per_minute;
        let mut meter = self.pauses.meter().lock();
        let plan::Plan { decision, step } = plan::plan(given, &*meter);
        let mut c = match step {
            Step::Fail(why) => return Err(Box::new(ledger_failed(call_id, &decision, &why))),
            Step::Repeat { rows, repeat } => {
                return Ok((decision, Committed::Repeat(rows, repeat)));
            }
            Step::Suspend(s) => return Ok((decision, Committed::Suspend(s))),
            Step::Commit(c) => c,
        };
        if c.tally != Tallying::Exempt {
            let refusing = Refusing {
                actor,
                tool,
                call_id,
                decision: &decision,
                limit,
                must_record: c.tally == Tallying::Whole,
                now,
            };
            let mut due = Vec::new();
            if let Some(counted) = self.tally_refused(&refusing, &mut due) {
                return Err(Box::new(counted));
            }
            c.with_counts(due);
        }
        c.change.drift = c.meter.apply(&mut meter, now);
        match self.ledger.submit(c.change) {
            Ok(pending) => {
                let queued = Queued {
                    meter: c.meter,
                    on_failure: c.on_failure,
                    then: c.then,
                };
                Ok((decision, Committed::Queued(pending, queued)))
            }
            Err(e) => {
                // nothing was recorded: the pause this call would start never was
                c.on_failure.apply(&mut meter);
                Err(Box::new(ledger_failed(call_id, &decision, &e)))
            }
        }
    }

    /// Once the commit is durable: mail a pause, remember a held call, refuse — or say where to
    /// forward. A commit that failed undoes the meter change and refuses (fail closed).
    async fn carry_on(
        &self,
        call_id: &str,
        decision: &Decision,
        pending: Pending,
        q: Queued,
    ) -> Carried {
        if let Err(e) = pending.await {
            q.on_failure.apply(&mut self.pauses.meter().lock());
            return Carried::Replied(ledger_failed(call_id, decision, &e));
        }
        if let MeterChange::Pause(p) = q.meter {
            let pauses = self.pauses.clone();
            tokio::spawn(async move { pauses.notify(&p).await });
        }
        match q.then {
            Then::Refuse { message, held } => {
                if let Some(h) = held {
                    self.quarantine.notify(&h);
                    self.quarantine.remember(*h);
                }
                Carried::Replied(refused(call_id, decision, message))
            }
            Then::Forward { server, tool, keep } => Carried::Forward { server, tool, keep },
        }
    }

    /// Run an allowed call whose rows are durable; with an idempotency key, keep what the agent
    /// gets under it.
    async fn forward(
        &self,
        call: GateCall,
        call_id: &str,
        decision: &Decision,
        (server, tool): (String, String),
        keep: Option<crate::retry::Fresh>,
        now: DateTime<Utc>,
    ) -> Reply {
        let forward = Forward {
            call_id,
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
                call_id,
                decision,
                format!("`{}` was allowed but could not be run: {e}", call.tool),
            ),
        };
        if let Some(f) = keep {
            self.keep_result(&f, call_id, now, &reply).await;
        }
        reply
    }
}

/// Count a decided call in the metrics, by its class's path and its verdict.
fn count(setup: &crate::config::Setup, decision: &Decision) {
    let path = decision
        .class
        .as_deref()
        .and_then(|c| setup.policy.classes.get(c))
        .map_or("none", |rule| rule.path.name());
    crate::metrics::global().call(path, decision.verdict.name());
}

/// Where a planned call stands once its commit is queued (or handed on).
enum Committed<'a> {
    /// To the approval desk, which commits its rows with the envelope.
    Suspend(plan::Suspend<'a>),
    /// A repeat of an earlier call, answered by its item (the rows record it).
    Repeat(Vec<crate::ledger::NewRow>, retries::Repeat),
    /// Queued for commit.
    Queued(Pending, Queued),
}

/// What follows a queued commit.
struct Queued {
    meter: MeterChange,
    on_failure: plan::Undo,
    then: Then,
}

/// After the commit: the reply, or the call to forward.
enum Carried {
    Replied(Reply),
    Forward {
        server: String,
        tool: String,
        keep: Option<crate::retry::Fresh>,
    },
}

mod handoff;
mod plan;
mod recorded;
mod reply;
mod retries;
mod tally;
use plan::{MeterChange, Step, Tallying, Then};
pub use reply::verdict_body;
use reply::{ledger_failed, refused};
use tally::Refusing;

#[cfg(test)]
mod tests;
