//! The seal's key chain stepped forward once an epoch: every value still waiting for a decision
//! (open approvals, held calls) is sealed again under the current epoch's key, then the chain
//! file moves to the epoch before the current one — a value destroyed before then can no longer
//! be opened from anything on disk. One epoch of grace keeps a value sealed a moment ago by a
//! replica whose clock runs behind openable. It must never move the file while a waiting value
//! still needs an older key.

use std::sync::Arc;
use std::time::Duration;

use super::Desk;
use crate::ledger::LedgerError;
use crate::seal::Sealer;

impl Desk {
    /// One step: seal again what is sealed before the file's next epoch, then move the file
    /// there. Returns the file's epoch, or why it stayed.
    pub async fn step_seal_chain(&self, sealer: &Sealer) -> Result<u64, String> {
        let target = sealer.epoch_now().saturating_sub(1);
        let approvals = self.approvals.reseal(target).await?;
        let held = self.held.reseal(target).await?;
        if approvals + held > 0 {
            tracing::info!(
                approvals,
                held,
                epoch = target,
                "sealed values moved onto the key chain's current epoch"
            );
        }
        sealer.advance_file(target).map_err(|e| e.to_string())
    }

    /// Step the chain at the start and at every epoch's start, until the process ends.
    pub async fn run_seal_chain(self: Arc<Self>, sealer: Arc<Sealer>) {
        let mut last = None;
        loop {
            match self.step_seal_chain(&sealer).await {
                Ok(epoch) => {
                    // a step's grace: what was read before the last step has been used by now
                    if let Some(before) = last.replace(epoch) {
                        sealer.forget_before(before);
                    }
                    tracing::debug!(epoch, "the seal's key chain file is at this epoch")
                }
                Err(e) => {
                    tracing::error!(error = %e, "the seal's key chain cannot step forward now; trying again next epoch")
                }
            }
            let period = sealer.period().as_secs().max(1);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // just past the next epoch's start
            let wait = period - now % period;
            tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(50)).await;
        }
    }
}

/// Seal again each of `ids` (`what` they are, for the error) with `one` (`true`: it moved); a
/// commit that met a change made meanwhile is tried again, up to three times. Returns how many
/// moved, or why one could not (the chain must not move then).
pub(crate) async fn reseal_each<F, Fut>(
    what: &str,
    ids: Vec<String>,
    one: F,
) -> Result<usize, String>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool, LedgerError>>,
{
    let mut moved = 0;
    for id in ids {
        let mut tries = 0;
        loop {
            match one(id.clone()).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(LedgerError::Conflict(_)) if tries < 3 => {
                    tries += 1;
                    continue;
                }
                Err(e) => return Err(format!("{what} {id}: {e}")),
            }
            break;
        }
    }
    Ok(moved)
}
