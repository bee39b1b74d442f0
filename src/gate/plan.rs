//! The gate's plan for one call, pure: `plan(given, usage) -> Plan`.
//!
//! Given the call as it came in (resolved against one snapshot of the setup and the tools
//! served), what retries found under its key, its redacted values already sealed, how many calls
//! of its tool wait for review, and the meter's usage, the plan says what the gate does: the
//! [`Decision`], the ledger change to commit (proposal, verdict, held or `not_run` rows, desk
//! items, the forwarded mark), the meter change and how to undo it if the commit fails, how a
//! refusal is tallied under `refused_per_minute`, and what comes next — forward, suspend at the
//! approval desk, hold for review, refuse, or answer a repeat.
//!
//! It owns the gate's choices and nothing else. It must never do I/O, read a clock, draw
//! randomness or hold state: time and the call id come in, and the driver
//! ([`super::Gate::call`]) looks things up, seals, commits, forwards and replies. The same
//! inputs always give the same plan.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::GateCall;
use super::recorded::{self, Recorded};
use super::reply::{cap_refused, not_run, pause_of, refusal_message, verdict_body};
use super::retries::{Repeat, Retried};
use crate::config::Setup;
use crate::decide::{self, Context, Decision, Verdict};
use crate::drift::{Charge, Pause, Usage, meter};
use crate::forward::Forwarder;
use crate::ledger::{Change, NewRow, Row};
use crate::live::ChangedTools;
use crate::manifest::{Reversal, ToolManifest};
use crate::mcp::downstream::ToolSet;
use crate::quarantine::Held;
use crate::redact::Keys;
use crate::retry::{Asks, Fresh, Item};

mod held;
use held::Quarantined;

/// One snapshot of what a call is decided against: the setup (one policy version), the tools
/// whose served definition changed, and the tools served now.
pub struct Snapshot<'a> {
    pub setup: &'a Setup,
    pub changed: &'a ChangedTools,
    pub served: &'a ToolSet,
}

/// A call as it came in, resolved against a snapshot: its route, its manifest and the facts
/// `decide` reads.
pub struct Incoming<'a> {
    pub call: &'a GateCall,
    pub call_id: &'a str,
    pub actor: &'a str,
    pub now: DateTime<Utc>,
    /// (server, tool name).
    pub route: Option<(String, String)>,
    pub manifest: Option<&'a ToolManifest>,
    pub facts: decide::Call<'a>,
}

/// Resolve `call` against `snap`, and what of it is recorded (pure: the id, the time and
/// redaction's keys come in).
pub fn incoming<'a>(
    snap: &Snapshot<'a>,
    call: &'a GateCall,
    call_id: &'a str,
    now: DateTime<Utc>,
    keys: &Keys,
) -> (Incoming<'a>, Recorded) {
    let setup = snap.setup;
    let actor = call.actor.as_deref().unwrap_or(setup.config.actor.as_str());
    let whole = Value::Object(call.arguments.clone());
    let canonical = crate::canonical::to_string(&whole);
    let route = route_in(snap.served, setup, &call.tool);
    let manifest = route.as_ref().and_then(|(s, t)| setup.manifests.get(s, t));
    let changed = |s: &str, t: &str| snap.changed.get(&(s.to_string(), t.to_string()));
    let facts = decide::Call {
        tool: &call.tool,
        arguments: &call.arguments,
        meta: call.meta.as_ref(),
        canonical_len: canonical.len(),
        changed: route
            .as_ref()
            .and_then(|(s, t)| snap.changed.get(&(s.clone(), t.clone())))
            .map(|c| (c.was.as_str(), c.now.as_str())),
        reversal_served: match manifest.map(|m| &m.reversal) {
            // the undo tool must be served, and be the definition that was reviewed
            Some(Reversal::Tool { tool }) => route.as_ref().is_some_and(|(server, _)| {
                snap.served.route_of(server, tool).is_some() && changed(server, tool).is_none()
            }),
            _ => true,
        },
    };
    let recorded = recorded::of(recorded::Call {
        call,
        route: route.as_ref(),
        manifest,
        keys,
        call_id,
        actor,
        whole,
        canonical: &canonical,
    });
    let incoming = Incoming {
        call,
        call_id,
        actor,
        now,
        route,
        manifest,
        facts,
    };
    (incoming, recorded)
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

/// Everything a plan is made from.
pub struct Given<'a> {
    pub snapshot: &'a Snapshot<'a>,
    pub incoming: Incoming<'a>,
    pub recorded: Recorded,
    /// What retries found under the call's key (looked up by the driver).
    pub retried: Retried,
    /// The call's redacted values, sealed (none: nothing redacted), or why they could not be:
    /// kept only by a held call or an approval.
    pub sealed: Result<Option<String>, &'static str>,
    /// Calls of (server, tool) waiting for review now.
    pub waiting: &'a dyn Fn(&str, &str) -> usize,
}

/// What the gate does with one call.
#[derive(Debug)]
pub struct Plan<'a> {
    pub decision: Decision,
    pub step: Step<'a>,
}

/// The next step.
#[derive(Debug)]
// made once per call and taken apart at once: boxing the commit would only add an allocation
#[allow(clippy::large_enum_variant)]
pub enum Step<'a> {
    /// A repeat of an earlier call: append `rows` (proposal, verdict, `retry`) and answer it
    /// with the earlier item; nothing runs, nobody is asked.
    Repeat { rows: Vec<NewRow>, repeat: Repeat },
    /// Hand it to the approval desk, which commits its rows with the envelope.
    Suspend(Suspend<'a>),
    /// Commit, then carry on as [`Commit::then`] says.
    Commit(Commit),
    /// Refuse it unrecorded: the ledger change could not be built (fail closed).
    Fail(String),
}

/// A call handed to the approval desk.
#[derive(Debug)]
pub struct Suspend<'a> {
    pub server: String,
    /// The manifest that classed it (an approval needs one).
    pub manifest: &'a ToolManifest,
    /// The arguments as recorded (markers where fields were redacted): what the envelope shows.
    pub arguments: Map<String, Value>,
    /// Proposal and verdict, committed with the envelope.
    pub rows: Vec<NewRow>,
    pub sealed: Option<String>,
    /// The call's key, stored with the approval.
    pub fresh: Option<Fresh>,
}

/// A change to commit, and what follows it.
#[derive(Debug)]
pub struct Commit {
    /// Rows, desk items and the forwarded mark; the meter's entries are added by the driver.
    pub change: Change,
    /// Applied to the meter under its lock, and its entries committed with `change`.
    pub meter: MeterChange,
    /// What undoes `meter` when the commit fails (nothing was recorded).
    pub on_failure: Undo,
    pub tally: Tallying,
    pub then: Then,
}

/// How the meter changes.
#[derive(Debug, Clone, PartialEq)]
pub enum MeterChange {
    None,
    /// An allowed call adds to these counters.
    Charge(Vec<Charge>),
    /// A limit was crossed: its scope is paused (mail goes out once committed).
    Pause(Pause),
}

/// What undoes a meter change whose commit failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    Nothing,
    /// The pause this call started never was (a later pause of the scope stays).
    Unpause {
        scope: String,
        call_id: String,
    },
}

/// How a refusal is tallied under the policy's `refused_per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tallying {
    /// Not a refusal (it runs, or it is held).
    Exempt,
    /// Recorded whole while the agent's budget lasts, then only counted.
    Budgeted,
    /// Recorded whole whatever the budget: a signed class's refusal, or one that pauses a scope.
    Whole,
}

/// What follows a durable commit.
#[derive(Debug)]
pub enum Then {
    /// Run it on (server, tool); keep its result under the call's key when it has one.
    Forward {
        server: String,
        tool: String,
        keep: Option<Fresh>,
    },
    /// Refuse it with `message`; a held call is taken in and its reviewers told.
    Refuse {
        message: String,
        held: Option<Box<Held>>,
    },
}

impl MeterChange {
    /// Apply to the meter (under its lock); the drift entries to commit with the verdict.
    pub fn apply(&self, meter: &mut meter::State, now: DateTime<Utc>) -> Vec<meter::Entry> {
        match self {
            MeterChange::None => Vec::new(),
            MeterChange::Charge(charges) => meter.charge(charges, now),
            MeterChange::Pause(p) => meter.pause(p.clone()),
        }
    }
}

impl Undo {
    /// Undo a meter change whose commit failed.
    pub fn apply(&self, meter: &mut meter::State) {
        if let Undo::Unpause { scope, call_id } = self {
            meter.unpause(scope, call_id);
        }
    }
}

impl Commit {
    /// The counts of refused calls now due, recorded with this refusal: before its outcome row.
    pub fn with_counts(&mut self, due: Vec<NewRow>) {
        let at = self.change.rows.len().saturating_sub(1);
        self.change.rows.splice(at..at, due);
    }
}

/// The plan for one call, under the meter's `usage` as it is now.
pub fn plan<'a>(given: Given<'a>, usage: &dyn Usage) -> Plan<'a> {
    let Given {
        snapshot,
        incoming: inc,
        recorded,
        retried,
        sealed,
        waiting,
    } = given;
    let policy = &snapshot.setup.policy;
    let decision = decided(&inc, policy, usage);
    let Recorded {
        arguments_sha256,
        proposal,
        ..
    } = recorded;
    // what a held call or an approval keeps: the arguments as recorded
    let kept = || recorded::map_of(&proposal.arguments);
    let signed = policy.is_signed(decision.class.as_deref());
    let (call_id, now) = (inc.call_id, inc.now);
    let pause = pause_of(&decision, call_id, now);
    let asks = match &decision.verdict {
        Verdict::Approve { .. } if inc.manifest.is_some() => Asks::Approval,
        Verdict::Quarantine if pause.is_none() => Asks::Review,
        Verdict::Allow if keyed(&retried).is_some() => Asks::Autopilot,
        _ => Asks::Nothing,
    };
    let repeat = retried.repeat(asks, call_id, now);
    let arguments = match (&repeat, &decision.verdict, inc.manifest) {
        (None, Verdict::Approve { .. }, Some(_)) => kept(),
        (None, Verdict::Quarantine, _) => kept(),
        _ => Map::new(),
    };
    let mut rows = vec![
        NewRow::at(call_id, now, Row::Proposal(proposal)),
        NewRow::at(call_id, now, Row::Verdict(verdict_body(&decision, signed))),
    ];
    let step = if let Some((repeat, row)) = repeat {
        rows.push(row);
        Step::Repeat { rows, repeat }
    } else {
        match (&decision.verdict, inc.manifest) {
            (Verdict::Approve { .. }, Some(manifest)) => {
                suspend(inc.route, manifest, arguments, rows, sealed, retried)
            }
            (Verdict::Allow, _) => allow(&inc, &decision, rows, retried),
            (Verdict::Quarantine, _) => {
                let q = Quarantined {
                    snapshot,
                    inc: &inc,
                    decision: &decision,
                    arguments,
                    arguments_sha256,
                    sealed,
                    waiting,
                };
                q.plan(rows, retried, pause, signed)
            }
            _ => Step::Commit(refuse(
                &inc,
                rows,
                signed,
                refusal_message(&inc.call.tool, &decision),
            )),
        }
    };
    Plan { decision, step }
}

/// The decision on `inc`, its reasons quoting no redacted value.
fn decided(inc: &Incoming<'_>, policy: &crate::policy::Policy, usage: &dyn Usage) -> Decision {
    let context = Context {
        actor: inc.actor,
        now: inc.now,
        usage,
    };
    let decision = decide::decide(&inc.facts, inc.manifest, policy, &context);
    match inc.manifest {
        Some(m) if !m.redact.is_empty() => decision.hiding(&m.redact),
        _ => decision,
    }
}

/// The call's key, when the agent gave an idempotency key (only then is an autopilot call kept).
fn keyed(retried: &Retried) -> Option<&Fresh> {
    retried.fresh.as_ref().filter(|f| f.keyed)
}

fn suspend<'a>(
    route: Option<(String, String)>,
    manifest: &'a ToolManifest,
    arguments: Map<String, Value>,
    rows: Vec<NewRow>,
    sealed: Result<Option<String>, &'static str>,
    retried: Retried,
) -> Step<'a> {
    let Some((server, _)) = route else {
        return Step::Fail("no route for an approval".into());
    };
    match sealed {
        Ok(sealed) => Step::Suspend(Suspend {
            server,
            manifest,
            arguments,
            rows,
            sealed,
            fresh: retried.fresh,
        }),
        Err(why) => Step::Fail(why.trim().to_string()),
    }
}

/// An allowed call: charged, marked as forwarded, its key taken when it has one.
fn allow<'a>(
    inc: &Incoming<'_>,
    decision: &Decision,
    rows: Vec<NewRow>,
    retried: Retried,
) -> Step<'a> {
    let (call_id, now) = (inc.call_id, inc.now);
    let mut change = Change {
        rows,
        ..Change::default()
    };
    // with an idempotency key, the call takes its key: it runs at most once
    if let Some(f) = keyed(&retried) {
        match f.state(Item::Call(call_id.to_string()), call_id, now) {
            Ok(state) => change.items.push(state),
            Err(e) => return Step::Fail(e.to_string()),
        }
    }
    let then = match &inc.route {
        Some((server, tool)) => {
            change
                .forwarded
                .push(Forwarder::mark(call_id, server, tool));
            Then::Forward {
                server: server.clone(),
                tool: tool.clone(),
                keep: retried.fresh.filter(|f| f.keyed),
            }
        }
        // decide() quarantines calls without a manifest, and manifests are only found through
        // a route
        None => Then::Refuse {
            message: format!(
                "`{}` is not served by any tool server; it was not run",
                inc.call.tool
            ),
            held: None,
        },
    };
    Step::Commit(Commit {
        change,
        meter: MeterChange::Charge(decision.charges.clone()),
        on_failure: Undo::Nothing,
        tally: Tallying::Exempt,
        then,
    })
}

/// A refused call's commit: its rows (arguments capped), tallied, its outcome `not_run`.
fn refuse(inc: &Incoming<'_>, mut rows: Vec<NewRow>, whole: bool, message: String) -> Commit {
    cap_refused(&mut rows);
    rows.push(not_run(inc.call_id, inc.now));
    Commit {
        change: Change {
            rows,
            ..Change::default()
        },
        meter: MeterChange::None,
        on_failure: Undo::Nothing,
        // a signed class's refusals are evidence: always recorded whole
        tally: if whole {
            Tallying::Whole
        } else {
            Tallying::Budgeted
        },
        then: Then::Refuse {
            message,
            held: None,
        },
    }
}

#[cfg(test)]
mod tests;
