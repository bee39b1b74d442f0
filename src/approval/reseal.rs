//! Open approvals' sealed values moved onto the current epoch of the seal's key chain, so the
//! chain file may move past the epochs they were sealed in ([`crate::seal::chain`]). Each is
//! changed as any decision is: under the desk's lock, from its stored state, committed only if
//! that state is still the one read. It must never change anything but the sealed text.

use super::Approvals;
use super::index::stored;
use super::state::Status;
use crate::desk::ratchet::reseal_each;
use crate::ledger::{Change, LedgerError};

impl Approvals {
    /// Seal again, under this epoch's key, every open approval's values sealed before epoch
    /// `below`. Returns how many moved, or why one could not (the chain must not move then).
    pub async fn reseal(&self, below: u64) -> Result<usize, String> {
        let ids: Vec<String> = match self.ledger.open_approvals() {
            Ok(Some(entries)) => entries.into_iter().map(|(id, _)| id).collect(),
            Ok(None) => self.open.lock().await.keys().cloned().collect(),
            Err(e) => return Err(format!("cannot list open approvals: {e}")),
        };
        reseal_each("approval", ids, |id| async move {
            self.reseal_one(&id, below).await
        })
        .await
    }

    async fn reseal_one(&self, id: &str, below: u64) -> Result<bool, LedgerError> {
        let _guard = self.open.lock().await;
        let Some((mut a, prior)) = self.load_raw(id) else {
            return Ok(false);
        };
        // one being run is opened by then (with the key this process still holds)
        let Some(sealed) = a.sealed.as_ref().filter(|_| a.status == Status::Pending) else {
            return Ok(false);
        };
        let fresh = match self.forwarder.sealer().reseal(&a.call_id, sealed, below) {
            Ok(Some(fresh)) => fresh,
            Ok(None) => return Ok(false),
            // moving the chain on cannot make it worse here: say so, and let the rest move
            Err(e) => {
                tracing::error!(approval = %id, error = %e, "an open approval's sealed values cannot be opened by this gate: approving it here is refused; give this gate the seal key and chain files of the gate that sealed them");
                return Ok(false);
            }
        };
        a.sealed = Some(fresh);
        self.ledger
            .commit(Change {
                items: vec![stored(&a)?.replacing(prior)],
                ..Change::default()
            })
            .await?;
        Ok(true)
    }
}
