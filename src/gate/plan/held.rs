//! The plan of a quarantined call: held for review (with the roles its release needs, on the
//! definition it was held under, its redacted values sealed), or refused with why it is not
//! held. A crossed limit pauses its scope either way. Pure, like the rest of the plan.

use std::iter;

use serde_json::{Map, Value};

use super::{Commit, Incoming, MeterChange, Snapshot, Step, Tallying, Then, Undo, refuse};
use crate::authority::{self, Matter};
use crate::decide::Decision;
use crate::drift::Pause;
use crate::ledger::{Change, NewRow, Row, row};
use crate::quarantine::{self, Held, HeldStatus};
use crate::retry::Item;

use super::super::reply::refusal_message;
use super::super::retries::Retried;

/// Why a quarantined call is not held when nobody could review it.
pub(in crate::gate) const NO_REVIEWER: &str = " It is not held: the policy names no [review] role, so nobody could release it. Ask the operator to classify the tool (or add `[review] role` to the policy).";

/// A quarantined call, being planned.
pub(super) struct Quarantined<'a, 'b> {
    pub snapshot: &'b Snapshot<'a>,
    pub inc: &'b Incoming<'a>,
    pub decision: &'b Decision,
    /// The arguments as recorded.
    pub arguments: Map<String, Value>,
    pub arguments_sha256: String,
    pub sealed: Result<Option<String>, &'static str>,
    pub waiting: &'b dyn Fn(&str, &str) -> usize,
}

impl<'a> Quarantined<'a, '_> {
    /// Held, or refused; `pause`: the scope a crossed limit pauses; `signed`: its class is.
    pub(super) fn plan(
        self,
        mut rows: Vec<NewRow>,
        retried: Retried,
        pause: Option<Pause>,
        signed: bool,
    ) -> Step<'a> {
        let (call_id, now) = (self.inc.call_id, self.inc.now);
        let (meter, on_failure) = match &pause {
            Some(p) => (
                MeterChange::Pause(p.clone()),
                Undo::Unpause {
                    scope: p.scope.clone(),
                    call_id: call_id.to_string(),
                },
            ),
            None => (MeterChange::None, Undo::Nothing),
        };
        let refused = refusal_message(&self.inc.call.tool, self.decision);
        let held = match self.held() {
            Ok(held) => held,
            Err(why) => {
                // a refusal that pauses a scope is recorded whole
                let whole = signed || pause.is_some();
                let commit = refuse(self.inc, rows, whole, refused + why);
                return Step::Commit(Commit {
                    meter,
                    on_failure,
                    ..commit
                });
            }
        };
        rows.push(NewRow::at(
            call_id,
            now,
            Row::Held(row::Held {
                reason: held.reason.clone(),
                arguments_sha256: self.arguments_sha256,
            }),
        ));
        let keys = retried
            .fresh
            .as_ref()
            .map(|f| f.states(Item::Held(call_id.to_string()), call_id, now));
        let items = match quarantine::entry(&held).and_then(|e| Ok((e, keys.transpose()?))) {
            Ok((e, keys)) => iter::once(e).chain(keys.into_iter().flatten()).collect(),
            Err(e) => return Step::Fail(e.to_string()),
        };
        let message = format!(
            "{refused} It is held for review as `{}`: a reviewer may release it (it then runs once; ask airlock_status with {{\"approval_id\": \"{}\"}} for its result) or reject it.",
            held.id, held.id
        );
        Step::Commit(Commit {
            change: Change {
                rows,
                items,
                ..Change::default()
            },
            meter,
            on_failure,
            tally: Tallying::Exempt,
            then: Then::Refuse {
                message,
                held: Some(Box::new(held)),
            },
        })
    }

    /// The held call, or why there is none (told to the agent): nobody could release it, nothing
    /// to release it to (no server serves the tool), its tool already has
    /// [`quarantine::MAX_HELD_PER_TOOL`] calls waiting, or its redacted values cannot be sealed.
    fn held(&self) -> Result<Held, &'static str> {
        let (inc, d) = (self.inc, self.decision);
        let matter = Matter::Held {
            roles: &d.review_roles,
            requester: inc.actor,
        };
        if authority::needed(&matter, &self.snapshot.setup.policy).is_err() {
            return Err(NO_REVIEWER);
        }
        let (server, tool) = inc.route.as_ref().ok_or(
            " No tool server offers it, so nothing is held; check the name with tools/list.",
        )?;
        if self.snapshot.served.route_of(server, tool).is_none() {
            return Err(" Its tool server does not serve it now, so nothing is held.");
        }
        if (self.waiting)(server, tool) >= quarantine::MAX_HELD_PER_TOOL {
            return Err(
                " It is not held: too many calls of this tool already wait for review; try again later.",
            );
        }
        Ok(Held {
            id: inc.call_id.to_string(),
            tool: inc.call.tool.clone(),
            server: server.clone(),
            tool_name: tool.clone(),
            // held as recorded; its redacted values sealed
            arguments: self.arguments.clone(),
            meta: inc.call.meta.clone(),
            actor: inc.actor.to_string(),
            reason: d.explanation(),
            codes: d.reasons.iter().map(|r| r.code().to_string()).collect(),
            policy_version: d.policy_version.clone(),
            held_at: inc.now,
            status: HeldStatus::Held,
            roles: d.review_roles.clone(),
            // released, it runs only on the definition it was held under
            definition: inc.facts.changed.map(|(_, now)| now.to_string()),
            sealed: self.sealed.clone()?,
        })
    }
}
