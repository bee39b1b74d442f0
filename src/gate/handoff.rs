//! Where the driver hands a call on when it does not run at once: an approval to the desk
//! ([`crate::approval::Approvals::open`], which commits the call's rows with the envelope), and
//! the sealing of a call's redacted values for the held call or approval that keeps them. It
//! must never run a call.

use super::plan::Suspend;
use super::reply::ledger_failed;
use super::{Gate, GateCall, Reply};
use crate::approval::Open;
use crate::config::Setup;
use crate::decide::{Decision, Verdict};
use crate::envelope::Proposal;

impl Gate {
    /// Hand a call that needs approval to the desk (which commits its rows with the envelope).
    pub(super) async fn suspend(
        &self,
        setup: &Setup,
        call: &GateCall,
        actor: &str,
        call_id: &str,
        decision: &Decision,
        s: Suspend<'_>,
    ) -> Reply {
        let Verdict::Approve { role, .. } = &decision.verdict else {
            return ledger_failed(call_id, decision, &"an approval without an approve verdict");
        };
        let open = Open {
            setup,
            call_id,
            proposal: Proposal {
                tool: &call.tool,
                server: &s.server,
                // the arguments as recorded: markers where fields were redacted
                arguments: &s.arguments,
                meta: call.meta.as_ref(),
                actor,
                manifest: s.manifest,
                decision,
            },
            rows: s.rows,
            retry: s.fresh,
            sealed: s.sealed,
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

    /// The redacted values of call `call_id`, sealed (none: nothing was redacted), or why not.
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
