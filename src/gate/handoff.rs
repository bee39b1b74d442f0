//! Where the gate hands a call on when it does not run at once: an approval to the desk
//! ([`crate::approval::Approvals::open`], which commits the call's rows with the envelope), a
//! quarantined call to review (the held call, or why there is none). It must never run a call.

use time::OffsetDateTime;

use super::{Gate, GateCall, Reply};
use crate::approval::Open;
use crate::config::Setup;
use crate::decide::{Decision, Verdict};
use crate::envelope::Proposal;
use crate::ledger::NewRow;
use crate::mcp::downstream::ToolSet;
use crate::quarantine::{self, Held, HeldStatus};

use super::reply::ledger_failed;

impl Gate {
    /// Hand a call that needs approval to the desk (which commits its rows with the envelope).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn suspend(
        &self,
        setup: &Setup,
        call: &GateCall,
        sealed: Option<String>,
        call_id: &str,
        actor: &str,
        route: Option<(String, String)>,
        decision: &Decision,
        rows: Vec<NewRow>,
        fresh: Option<crate::retry::Fresh>,
    ) -> Reply {
        let (Verdict::Approve { role, .. }, Some((server, tool))) = (&decision.verdict, &route)
        else {
            return ledger_failed(call_id, decision, &"no route for an approval");
        };
        let Some(m) = setup.manifests.get(server, tool) else {
            return ledger_failed(call_id, decision, &"no manifest for an approval");
        };
        let open = Open {
            setup,
            call_id,
            proposal: Proposal {
                tool: &call.tool,
                server,
                arguments: &call.arguments,
                meta: call.meta.as_ref(),
                actor,
                manifest: m,
                decision,
            },
            rows,
            retry: fresh,
            sealed,
        };
        match self.approvals.open(open).await {
            Ok((approval_id, status)) => Reply::Suspended {
                approval_id,
                role: role.clone(),
                status,
            },
            Err(e) => ledger_failed(call_id, decision, &e),
        }
    }

    /// The held call for a quarantined one, or why there is none (told to the agent): nothing
    /// to release it to (no server serves the tool), or its tool already has
    /// [`quarantine::MAX_HELD_PER_TOOL`] calls waiting.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &self,
        served: &ToolSet,
        call: &GateCall,
        route: &Option<(String, String)>,
        decision: &Decision,
        call_id: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Held, &'static str> {
        let (server, tool) = route.as_ref().ok_or(
            " No tool server offers it, so nothing is held; check the name with tools/list.",
        )?;
        if served.route_of(server, tool).is_none() {
            return Err(" Its tool server does not serve it now, so nothing is held.");
        }
        if self.quarantine.waiting(server, tool) >= quarantine::MAX_HELD_PER_TOOL {
            return Err(
                " It is not held: too many calls of this tool already wait for review; try again later.",
            );
        }
        Ok(Held {
            id: call_id.to_string(),
            tool: call.tool.clone(),
            server: server.clone(),
            tool_name: tool.clone(),
            arguments: call.arguments.clone(),
            meta: call.meta.clone(),
            actor: actor.to_string(),
            reason: decision.explanation(),
            codes: decision
                .reasons
                .iter()
                .map(|r| r.code().to_string())
                .collect(),
            policy_version: decision.policy_version.clone(),
            held_at: now,
            status: HeldStatus::Held,
            roles: decision.review_roles.clone(),
            definition: None,
            sealed: None,
        })
    }
}

impl Gate {
    /// The redacted values of call `call_id`, sealed (none: nothing was redacted).
    pub(super) fn seal(
        &self,
        call_id: &str,
        redacted: Option<&crate::redact::Redacted>,
    ) -> Result<Option<String>, &'static str> {
        match redacted {
            Some(r) if !r.secrets.is_empty() => self
                .forwarder
                .sealer()
                .seal(call_id, &r.secrets)
                .map(Some)
                .map_err(|e| {
                    tracing::error!(call = %call_id, error = %e, "cannot seal redacted values");
                    " Its redacted values could not be sealed, so it was not kept (fail closed)."
                }),
            _ => Ok(None),
        }
    }
}

/// Why a quarantined call is not held when nobody could review it.
pub(super) const NO_REVIEWER: &str = " It is not held: the policy names no [review] role, so nobody could release it. Ask the operator to classify the tool (or add `[review] role` to the policy).";
