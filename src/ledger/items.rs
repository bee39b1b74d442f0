//! The desk's items as the ledger stores them: an approval's or a held call's new state,
//! committed with the rows that explain it, and the condition it commits under.
//!
//! The ledger keeps each kind in its own table (an approval's state and its open-approvals index
//! entry; a held call's state) as opaque bytes its kind encodes; it never interprets an item.
//! Every item's change is conditional the same way ([`Prior`]), checked in one place
//! (`ledger::batch::check_conditions`, for both backends).

use super::schema::Table;

/// Which kind of desk item a state is, and so the table it is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// `approvals` (+ `open_approvals`); PostgreSQL `airlock_approvals` (+ `airlock_open_approvals`).
    Approval,
    /// `held`; PostgreSQL `airlock_held`.
    Held,
    /// `call_keys`; PostgreSQL `airlock_call_keys`: what a retry of a call attaches to (its id
    /// is the call's key, its state a `retry::Entry`).
    CallKey,
}

impl ItemKind {
    /// The table its states are stored in.
    pub(super) fn table(self) -> Table {
        match self {
            ItemKind::Approval => Table::Approvals,
            ItemKind::Held => Table::Held,
            ItemKind::CallKey => Table::CallKeys,
        }
    }
}

/// A desk item's new state, as its kind encodes it.
#[derive(Debug, Clone)]
pub struct ItemState {
    pub kind: ItemKind,
    pub id: String,
    /// Its whole state.
    pub state: Vec<u8>,
    /// An approval's open-approvals index entry, or `None` once it is finished (removed from
    /// the index). Held calls have no index: always `None`.
    pub open: Option<Vec<u8>>,
    /// What the stored state must be for this change to commit; otherwise the whole change is
    /// refused ([`super::LedgerError::Conflict`]): another replica changed the item meanwhile.
    pub prior: Prior,
}

/// The condition on an item's stored state.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Prior {
    /// Unconditional (a call held with its verdict; building the index of an older ledger).
    #[default]
    Any,
    /// A new item: none stored under its id.
    Absent,
    /// Exactly these bytes, as read before the change was made.
    Is(Vec<u8>),
}

impl ItemState {
    /// A new state of `kind`'s item `id`, unconditional until [`ItemState::replacing`] or
    /// [`ItemState::new_one`] says otherwise.
    pub fn of(kind: ItemKind, id: &str, state: Vec<u8>, open: Option<Vec<u8>>) -> ItemState {
        ItemState {
            kind,
            id: id.to_string(),
            state,
            open,
            prior: Prior::Any,
        }
    }

    /// Only if the stored state is still `prior` (what the caller read).
    pub fn replacing(mut self, prior: Vec<u8>) -> ItemState {
        self.prior = Prior::Is(prior);
        self
    }

    /// Only if no item of this kind has this id yet.
    pub fn new_one(mut self) -> ItemState {
        self.prior = Prior::Absent;
        self
    }
}
