//! Held calls at a start, for the desk's one start rule ([`crate::desk::Desk::start`]): read
//! back as stored (or as an adoption hands them over), and a release found under way closed as
//! `outcome_unknown` when the rule asks. It must never decide what happens to a held call at a
//! start (the desk's rule does) and never run one.

use super::{Held, HeldStatus, Quarantine, StoredHeld, entry_replacing};
use crate::desk::start::{Found, Kind};
use crate::ledger::{Change, LedgerError, NewRow, Row, row};

impl Quarantine {
    /// Every held call as stored: what [`crate::desk::Desk::start`] reads back.
    pub(crate) fn stored(&self) -> Result<Vec<StoredHeld>, LedgerError> {
        Ok(self.ledger.held()?.into_iter().map(|v| (v, None)).collect())
    }

    /// A dead replica's held calls, as its adoption hands them over (their bytes, so a change
    /// is conditional on them).
    pub(crate) fn adopted(states: Vec<Vec<u8>>) -> Vec<StoredHeld> {
        states
            .into_iter()
            .filter_map(|b| serde_json::from_slice(&b).ok().map(|v| (v, Some(b))))
            .collect()
    }

    /// Take stored held calls into memory, each as the desk's lifecycle sees it; acting on
    /// them is the desk's (its start rule).
    pub(crate) fn load(&self, items: Vec<StoredHeld>) -> Result<Vec<Found>, LedgerError> {
        let mut map = self.lock();
        let mut found = Vec::new();
        for (v, prior) in items {
            let h: Held = serde_json::from_value(v).map_err(|e| LedgerError::Encode {
                what: "held call".into(),
                message: e.to_string(),
            })?;
            found.push(Found {
                kind: Kind::Held,
                id: h.id.clone(),
                phase: h.status.phase(),
                deadline: None,
                unsent: false,
                prior,
            });
            map.insert(h.id.clone(), h);
        }
        Ok(found)
    }

    /// A held call found being released at a start: whether it ran is unknown. Record
    /// `outcome_unknown` (committed only if the stored state is still `prior`, when given) and
    /// never run it again; if it ended meanwhile (its replica was only slow), what it recorded
    /// stands.
    pub(crate) async fn close_unknown(
        &self,
        id: &str,
        prior: Option<Vec<u8>>,
    ) -> Result<(), LedgerError> {
        let Some(mut h) = self.lock().get(id).cloned() else {
            return Ok(());
        };
        let HeldStatus::Releasing { by } = &h.status else {
            return Ok(());
        };
        h.status = HeldStatus::OutcomeUnknown { by: by.clone() };
        tracing::warn!(call_id = %h.id, "a released call was running when its gate stopped; it will not run again");
        let committed = self
            .ledger
            .commit(Change {
                rows: vec![NewRow::now(
                    &h.id,
                    Row::Outcome(row::Outcome {
                        released: Some(true),
                        ..row::Outcome::of(row::OutcomeStatus::OutcomeUnknown)
                    }),
                )],
                items: vec![entry_replacing(&h, prior)?],
                ..Change::default()
            })
            .await;
        match committed {
            Ok(_) => {
                self.remember(h);
                Ok(())
            }
            Err(LedgerError::Conflict(_)) => {
                if let Some(now) = self
                    .ledger
                    .held_state(&h.id)?
                    .and_then(|b| serde_json::from_slice::<Held>(&b).ok())
                {
                    self.remember(now);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
