//! Calls forwarded whose outcome row is not yet durable: a marker per call, set in the commit
//! that lets the call run and removed in the commit that carries its outcome.
//!
//! The gate answers an agent as soon as the outcome row is queued (it joins the next group
//! commit), so a crash can fall between the tool's reply and that commit. The marker makes the
//! gap visible: at the next start every marker left becomes an `outcome` row with status
//! `unknown`, never a silent hole. It must never hold anything but the call's route.

use serde_json::Value;

use super::Ledger;
use super::error::LedgerError;
use super::schema::Table;

impl Ledger {
    /// Calls forwarded by a previous run whose outcome was never recorded.
    pub fn unsettled(&self) -> Result<Vec<(String, Value)>, LedgerError> {
        super::json_table(self.store.as_ref(), Table::Forwarded)
    }
}
