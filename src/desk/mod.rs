//! The desk: every decision a person makes — approve, deny, modify or escalate an approval;
//! release or reject a held call; resume a paused scope — enters here (classifying a tool asks
//! the same [`authorize`] rule), and every item a person decides has one lifecycle
//! ([`lifecycle`]: waiting → deciding → executing → done).
//!
//! Owns the three kinds of items together — approvals ([`crate::approval::Approvals`]), held
//! calls ([`crate::quarantine::Quarantine`]) and paused scopes ([`crate::drift::pauses::Pauses`])
//! —, the one decision entry point ([`Desk::decide`] for the review side, [`Desk::decide_approval`]
//! for the approval page), where the one [`crate::authority`] rule is applied through
//! [`authorize`] (a refusal is a ledger row and nothing moves), and the one start and adoption
//! path ([`Desk::start`], [`Desk::adopt`]): an item found executing becomes `outcome_unknown`,
//! never re-run; waiting items are re-armed. Each kind keeps what its decision *means* and
//! commits it with the rows that explain it (each kind's stored state reads as a
//! [`lifecycle::Phase`]). It must never let a decision reach an item that is not waiting
//! ([`lifecycle::open_to_decide`]), treat an item at a start but by [`lifecycle::on_start`], nor
//! let anyone decide whom [`authorize`] has not authorized.

mod decide;
pub mod lifecycle;
pub(crate) mod ratchet;
pub mod run;
pub(crate) mod start;

use std::sync::Arc;

pub use decide::{Act, DecideError, Decided};
pub use lifecycle::{Event, Illegal, OnStart, Phase};
pub use start::Started;

use crate::approval::Approvals;
use crate::authority::{self, Matter, Refusal};
use crate::config::Setup;
use crate::drift::pauses::Pauses;
use crate::ledger::Ledger;
use crate::live::Live;
use crate::quarantine::Quarantine;

/// The one desk for every human decision.
pub struct Desk {
    approvals: Arc<Approvals>,
    held: Arc<Quarantine>,
    pauses: Arc<Pauses>,
    live: Arc<Live>,
    ledger: Arc<Ledger>,
}

impl Desk {
    pub fn new(
        approvals: Arc<Approvals>,
        held: Arc<Quarantine>,
        pauses: Arc<Pauses>,
        live: Arc<Live>,
        ledger: Arc<Ledger>,
    ) -> Arc<Desk> {
        Arc::new(Desk {
            approvals,
            held,
            pauses,
            live,
            ledger,
        })
    }

    /// Approvals: calls waiting for a role's approval.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// Held calls: quarantined, waiting for a reviewer's release or rejection.
    pub fn held(&self) -> &Arc<Quarantine> {
        &self.held
    }

    /// Paused scopes: waiting for someone to resume them.
    pub fn pauses(&self) -> &Arc<Pauses> {
        &self.pauses
    }
}

/// The one authority rule, applied with the setup in force: no agent identity decides (every
/// actor the setup names), the requester never decides its own call, the decider is a member
/// of every role `matter` needs. The roles it grants, or why not. Every decision of every kind
/// asks this, once its decider is known.
pub fn authorize(setup: &Setup, matter: &Matter<'_>, who: &str) -> Result<Vec<String>, Refusal> {
    authority::authorize(matter, who, &setup.policy, &setup.agent_ids())
}

#[cfg(test)]
mod tests;
