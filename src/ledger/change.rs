//! What callers hand the ledger: rows to append, and the state changes committed with them.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::row::Row;
use super::schema::Table;
use super::{ItemState, Prior};

/// A row to append. The ledger assigns `seq`, `prev` and `hash`; the writer takes the kind and
/// the body from [`Row`].
#[derive(Debug, Clone)]
pub struct NewRow {
    pub row: Row,
    pub call_id: String,
    pub time: DateTime<Utc>,
}

impl NewRow {
    /// A row about `call_id` (empty for gate-wide events), stamped with `time`.
    pub fn at(call_id: &str, time: DateTime<Utc>, row: Row) -> NewRow {
        NewRow {
            row,
            call_id: call_id.to_string(),
            time,
        }
    }

    /// A row stamped now.
    pub fn now(call_id: &str, row: Row) -> NewRow {
        NewRow::at(call_id, crate::instant::now(), row)
    }
}

/// One durable change: ledger rows and the new state of the desk items they concern,
/// committed in one transaction.
#[derive(Debug, Default)]
pub struct Change {
    pub rows: Vec<NewRow>,
    /// The desk's items' new states (approvals, held calls), each committed only if its
    /// condition holds.
    pub items: Vec<ItemState>,
    /// This change completes the open-approvals index of a ledger written before it existed.
    pub approvals_indexed: bool,
    /// (`server/tool`, definition hash now trusted).
    pub tools: Vec<(String, String)>,
    /// (drift key, its new value, or `None` to remove it).
    pub drift: Vec<(String, Option<Value>)>,
    /// (call id, its route): calls this change lets run, marked until their outcome is recorded.
    pub forwarded: Vec<(String, Value)>,
    /// Calls whose outcome row this change carries: their marks go.
    pub settled: Vec<String>,
    /// Call keys whose retry window has passed: their entries (and any result kept) go.
    pub forget_keys: Vec<String>,
    /// (channel name, sequence number): the last row whose news the channel has been given
    /// (or given up on), committed with the row that records the delivery.
    pub channel_cursors: Vec<(String, u64)>,
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
        self.items.iter().filter_map(|i| {
            let must = match &i.prior {
                Prior::Any => return None,
                Prior::Absent => Must::BeAbsent,
                Prior::Is(bytes) => Must::Be(bytes),
            };
            Some((i.kind.table(), i.id.as_str(), must))
        })
    }

    /// Nothing to write (a flush: it commits after everything queued before it).
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.items.is_empty()
            && !self.approvals_indexed
            && self.tools.is_empty()
            && self.drift.is_empty()
            && self.forwarded.is_empty()
            && self.settled.is_empty()
            && self.forget_keys.is_empty()
            && self.channel_cursors.is_empty()
    }
}
