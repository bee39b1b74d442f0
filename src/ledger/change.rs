//! What callers hand the ledger: rows to append, and the state changes committed with them.

use serde_json::Value;
use time::OffsetDateTime;

use super::store::Table;
use super::{ApprovalState, Prior};

/// A row to append. The ledger assigns `seq`, `prev` and `hash`.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub kind: &'static str,
    pub call_id: String,
    pub time: OffsetDateTime,
    pub body: Value,
}

impl NewRow {
    /// A row about `call_id` (empty for gate-wide events), stamped with `time`.
    pub fn at(kind: &'static str, call_id: &str, time: OffsetDateTime, body: Value) -> NewRow {
        NewRow {
            kind,
            call_id: call_id.to_string(),
            time,
            body,
        }
    }

    /// A row stamped now.
    pub fn now(kind: &'static str, call_id: &str, body: Value) -> NewRow {
        NewRow::at(kind, call_id, OffsetDateTime::now_utc(), body)
    }
}

/// One durable change: ledger rows and the new state of the open approvals they concern,
/// committed in one transaction.
#[derive(Debug, Default)]
pub struct Change {
    pub rows: Vec<NewRow>,
    /// Approvals' new states.
    pub approvals: Vec<ApprovalState>,
    /// This change completes the open-approvals index of a ledger written before it existed.
    pub approvals_indexed: bool,
    /// (`server/tool`, definition hash now trusted).
    pub tools: Vec<(String, String)>,
    /// (call id, the held call's new state).
    pub held: Vec<(String, Value)>,
    /// (call id, its stored state as read): the change commits only if each is still stored
    /// (no other replica released or rejected the call meanwhile).
    pub held_prior: Vec<(String, Vec<u8>)>,
    /// (drift key, its new value, or `None` to remove it).
    pub drift: Vec<(String, Option<Value>)>,
    /// (call id, its route): calls this change lets run, marked until their outcome is recorded.
    pub forwarded: Vec<(String, Value)>,
    /// Calls whose outcome row this change carries: their marks go.
    pub settled: Vec<String>,
}

/// What a decided item's stored state must still be for a change to commit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Must<'a> {
    /// Nothing stored under its key (a new item).
    BeAbsent,
    /// Exactly these bytes, as its caller read them.
    Be(&'a [u8]),
}

impl Change {
    /// Every condition on a desk item this change commits under — an approval's or a held
    /// call's stored state, one check for both: (table, key, what must be stored).
    pub(super) fn conditions(&self) -> impl Iterator<Item = (Table, &str, Must<'_>)> {
        let approvals = self.approvals.iter().filter_map(|a| {
            let must = match &a.prior {
                Prior::Any => return None,
                Prior::Absent => Must::BeAbsent,
                Prior::Is(bytes) => Must::Be(bytes),
            };
            Some((Table::Approvals, a.id.as_str(), must))
        });
        let held = self
            .held_prior
            .iter()
            .map(|(id, bytes)| (Table::Held, id.as_str(), Must::Be(bytes)));
        approvals.chain(held)
    }

    /// Nothing to write (a flush: it commits after everything queued before it).
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.approvals.is_empty()
            && !self.approvals_indexed
            && self.tools.is_empty()
            && self.held.is_empty()
            && self.held_prior.is_empty()
            && self.drift.is_empty()
            && self.forwarded.is_empty()
            && self.settled.is_empty()
    }
}
