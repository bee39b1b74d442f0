//! Calls forwarded whose outcome row is not yet durable: a marker per call, set in the commit
//! that lets the call run and removed in the commit that carries its outcome.
//!
//! The gate answers an agent as soon as the outcome row is queued (it joins the next group
//! commit), so a crash can fall between the tool's reply and that commit. The marker makes the
//! gap visible: at the next start every marker left becomes an `outcome` row with status
//! `unknown`, never a silent hole. It must never hold anything but the call's route.

use redb::TableDefinition;
use serde_json::Value;

use super::store::Table;
use super::{Ledger, LedgerError, Request};

/// Forwarded calls without a durable outcome, keyed by call id: `{server, tool}` as JSON.
pub(super) const FORWARDED: TableDefinition<&str, &[u8]> = TableDefinition::new("forwarded");

impl Ledger {
    /// Calls forwarded by a previous run whose outcome was never recorded.
    pub fn unsettled(&self) -> Result<Vec<(String, Value)>, LedgerError> {
        super::json_table(&self.store, Table::Forwarded)
    }
}

/// In the writer's transaction: set the batch's markers, then remove the settled ones (a change
/// may settle a call marked earlier in the same batch).
pub(super) fn write(tx: &redb::WriteTransaction, batch: &[&Request]) -> Result<(), String> {
    if batch
        .iter()
        .all(|r| r.change.forwarded.is_empty() && r.change.settled.is_empty())
    {
        return Ok(());
    }
    let mut table = tx.open_table(FORWARDED).map_err(|e| e.to_string())?;
    for req in batch {
        for (id, route) in &req.change.forwarded {
            let bytes = serde_json::to_vec(route).map_err(|e| e.to_string())?;
            table
                .insert(id.as_str(), bytes.as_slice())
                .map_err(|e| e.to_string())?;
        }
        for id in &req.change.settled {
            table.remove(id.as_str()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
