//! Waiting held calls' sealed values moved onto the current epoch of the seal's key chain, so
//! the chain file may move past the epochs they were sealed in ([`crate::seal::chain`]). Each is
//! committed only if its stored state is still the one read (a release meanwhile wins). It must
//! never change anything but the sealed text.

use super::{Held, Quarantine, entry_replacing};
use crate::desk::Phase;
use crate::desk::ratchet::reseal_each;
use crate::ledger::{Change, LedgerError};

impl Quarantine {
    /// Seal again, under this epoch's key, every waiting held call's values sealed before
    /// epoch `below`. Returns how many moved, or why one could not (the chain must not move).
    pub async fn reseal(&self, below: u64) -> Result<usize, String> {
        let stored = self
            .ledger
            .held()
            .map_err(|e| format!("cannot list held calls: {e}"))?;
        let ids = stored.iter().filter_map(|v| {
            let waiting = v.get("sealed").is_some_and(|s| s.is_string());
            waiting.then(|| v.get("id").and_then(|i| i.as_str()).map(str::to_string))?
        });
        let ids = ids.collect();
        reseal_each("held call", ids, |id| async move {
            self.reseal_one(&id, below).await
        })
        .await
    }

    async fn reseal_one(&self, id: &str, below: u64) -> Result<bool, LedgerError> {
        let Some(bytes) = self.ledger.held_state(id)? else {
            return Ok(false);
        };
        let Ok(mut h) = serde_json::from_slice::<Held>(&bytes) else {
            return Ok(false);
        };
        // one being released is opened by then (with the key this process still holds)
        let waiting = h.status.phase() == Phase::Waiting;
        let Some(sealed) = h.sealed.clone().filter(|_| waiting) else {
            return Ok(false);
        };
        let fresh = match self.forwarder.sealer().reseal(&h.id, &sealed, below) {
            Ok(Some(fresh)) => fresh,
            Ok(None) => return Ok(false),
            // moving the chain on cannot make it worse here: say so, and let the rest move
            Err(e) => {
                tracing::error!(held = %id, error = %e, "a held call's sealed values cannot be opened by this gate: releasing it here is refused; give this gate the seal key and chain files of the gate that sealed them");
                return Ok(false);
            }
        };
        h.sealed = Some(fresh.clone());
        self.ledger
            .commit(Change {
                items: vec![entry_replacing(&h, Some(bytes))?],
                ..Change::default()
            })
            .await?;
        // the entry in memory follows, if it still holds what was sealed again
        if let Some(m) = self.lock().get_mut(id) {
            if m.sealed.as_ref() == Some(&sealed) {
                m.sealed = Some(fresh);
            }
        }
        Ok(true)
    }
}
