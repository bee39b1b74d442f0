//! The release of a held call, on a reviewer's word: recorded, run once, its outcome recorded
//! with the item's end. It must never run a call twice, nor one whose redacted values this gate
//! cannot open.

use serde_json::Value;

use super::{Held, HeldStatus, Quarantine, QuarantineError, Seen, destroy_sealed, entry};
use crate::authority::Decider;
use crate::desk::Phase;
use crate::desk::run::{self, DecidedCall, Ran};
use crate::ledger::row::{self, RunContext};
use crate::ledger::{ItemState, LedgerError, NewRow, Row};

impl Quarantine {
    /// Release a held call: record the release, run it once, record its outcome.
    pub async fn release(
        &self,
        id: &str,
        by: &Decider,
        seen: &Seen,
    ) -> Result<Held, QuarantineError> {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out = self.release_once(id, by, seen).await;
        self.running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        out
    }

    async fn release_once(
        &self,
        id: &str,
        by: &Decider,
        seen: &Seen,
    ) -> Result<Held, QuarantineError> {
        // as stored: the call may have been held by another replica sharing the ledger
        let stored = self
            .ledger
            .held_state(id)?
            .and_then(|b| serde_json::from_slice::<Held>(&b).ok());
        // a release that could not run here is not taken here
        let sealed = stored.as_ref().and_then(|h| h.sealed.as_ref());
        if let Some(Err(e)) = sealed.map(|s| self.forwarder.sealer().open(id, s)) {
            return Err(QuarantineError::Unsealable(e.to_string()));
        }
        let args_sha = stored
            .or_else(|| self.get(id))
            .map(|h| crate::redact::arguments_sha256(&Value::Object(h.arguments)));
        let h = self
            .transition(
                id,
                // what runs, so an auditor can hold it to the proposal's arguments_sha256
                Row::HeldReleased(row::HeldReleased {
                    arguments_sha256: args_sha,
                    by: by.record(),
                    seen_sha256: seen.sha256.clone(),
                    seen_of: seen.of.to_string(),
                }),
                HeldStatus::Releasing { by: by.who.clone() },
            )
            .await?;
        let call = DecidedCall {
            call_id: &h.id,
            server: &h.server,
            tool: &h.tool_name,
            arguments: h.arguments.clone(),
            meta: h.meta.clone(),
            context: RunContext {
                released_by: Some(by.who.clone()),
                ..RunContext::default()
            },
            definition: h.definition.as_deref(),
            sealed: h.sealed.as_deref(),
        };
        let (rows, ran) = run::run_once(&self.forwarder, &self.live, call).await;
        let end = |done: &mut Held| ended(done, &by.who, &ran);
        let load = || {
            let bytes = self.ledger.held_state(id).ok().flatten()?;
            Some((serde_json::from_slice::<Held>(&bytes).ok()?, bytes))
        };
        let done = match run::close(&self.ledger, id, load, end, rows).await {
            Some((done, _)) => done,
            // unreadable as stored: what happened still reaches the agent
            None => {
                let mut done = h.clone();
                ended(&mut done, &by.who, &ran);
                done
            }
        };
        self.remember(done.clone());
        Ok(done)
    }
}

/// A released call's end, as `ran` says: its final state, and the row that explains a void
/// (a call that ran or failed is explained by its outcome row).
fn ended(h: &mut Held, by: &str, ran: &Ran) -> Vec<NewRow> {
    let by = by.to_string();
    h.status = match ran.clone() {
        Ran::Executed { result, is_error } => HeldStatus::Released {
            by,
            result,
            is_error,
        },
        Ran::Failed { error } => HeldStatus::Failed { by, error },
        Ran::Voided { reason } => HeldStatus::Voided { by, reason },
    };
    let mut rows = match &h.status {
        HeldStatus::Voided { reason, .. } => {
            vec![NewRow::now(
                &h.id,
                Row::HeldVoided(row::HeldVoided {
                    reason: reason.clone(),
                }),
            )]
        }
        _ => Vec::new(),
    };
    rows.extend(destroy_sealed(h, "released"));
    rows
}

impl run::Item for Held {
    fn phase(&self) -> Phase {
        self.status.phase()
    }

    fn stored(&self) -> Result<ItemState, LedgerError> {
        entry(self)
    }
}
