//! Every table of the ledger, in one place: its redb definition beside its PostgreSQL name and
//! columns, the `meta` keys, and the schema version. `docs/ledger-format.md` describes the bytes.
//!
//! Both backends hold the same tables with the same bytes: chain rows keyed by sequence number,
//! and state tables keyed by text. Pure declarations: it must never open, read or write storage.

use redb::TableDefinition;

/// The chain: `prev ‖ hash ‖ entry` keyed by sequence number. PostgreSQL: `airlock_rows (seq, data)`.
pub(crate) const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
/// Small values by name ([`meta`]). PostgreSQL: `airlock_meta (key, value)`.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Approvals (open and finished), keyed by approval id: the state recovery reloads.
/// Not part of the chain: every change to it is committed together with the rows that explain it.
pub(crate) const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// Open approvals, keyed by approval id: the desk's small index entry for each (what recovery
/// needs without reading the whole state). Written in the same transaction as the state.
pub(crate) const OPEN_APPROVALS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("open_approvals");
/// The definition hash each tool was first seen (or last accepted) with, keyed `server/tool`:
/// the rug-pull guard's memory. Changed together with the `tool_*` rows that explain it.
pub(crate) const TOOLS: TableDefinition<&str, &str> = TableDefinition::new("tools");
/// Quarantined calls held for review, keyed by call id, with the rows that explain each change.
pub(crate) const HELD: TableDefinition<&str, &[u8]> = TableDefinition::new("held");
/// Calls a retry may repeat, keyed by the call's key (`retry::CallKey`): which desk item (or
/// autopilot call) an identical call, or one with the same idempotency key, attaches to.
pub(crate) const CALL_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("call_keys");
/// Drift-pause counters and pauses, keyed by limit or scope: committed with the verdicts that
/// charge them, so they survive a restart exactly.
pub(crate) const DRIFT: TableDefinition<&str, &[u8]> = TableDefinition::new("drift");
/// Calls whose rows are signed (their verdict said `signed`), so later rows of the same call are
/// signed too, across restarts.
pub(crate) const SIGNED: TableDefinition<&str, ()> = TableDefinition::new("signed_calls");
/// Forwarded calls without a durable outcome, keyed by call id: `{server, tool}` as JSON.
pub(crate) const FORWARDED: TableDefinition<&str, &[u8]> = TableDefinition::new("forwarded");

/// The redb file's format version, in `meta` (PostgreSQL's is refinery's migration history).
pub(crate) const SCHEMA_VERSION: &[u8] = b"1";

/// The keys of the `meta` table.
pub(crate) mod meta {
    /// The head after the last commit, `SEQ:HEX` (`ledger::Head`).
    pub(crate) const HEAD: &str = "head";
    /// The signing key's signature over that head.
    pub(crate) const HEAD_SIG: &str = "head_sig";
    /// The tombstone of the last prune (JSON).
    pub(crate) const PRUNED: &str = "pruned";
    /// Present (`1`) once `open_approvals` indexes every open approval.
    pub(crate) const APPROVALS_INDEXED: &str = "approvals_indexed";
    /// The redb file's format version ([`super::SCHEMA_VERSION`]); never copied between backends.
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";

    /// `channel_cursor/NAME`: the sequence number (decimal) of the last row whose news channel
    /// `NAME` was given or given up on (`channel::dispatch`).
    pub(crate) fn channel_cursor(channel: &str) -> String {
        format!("channel_cursor/{channel}")
    }
}

/// The ledger's tables besides the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Table {
    Meta,
    Approvals,
    OpenApprovals,
    Tools,
    Held,
    Drift,
    Signed,
    Forwarded,
    CallKeys,
}

impl Table {
    /// Its redb table, for the tables of bytes (`Tools` and `Signed` are typed otherwise:
    /// [`TOOLS`], [`SIGNED`]).
    pub(crate) fn def(self) -> Option<TableDefinition<'static, &'static str, &'static [u8]>> {
        Some(match self {
            Table::Meta => META,
            Table::Approvals => APPROVALS,
            Table::OpenApprovals => OPEN_APPROVALS,
            Table::Held => HELD,
            Table::Drift => DRIFT,
            Table::Forwarded => FORWARDED,
            Table::CallKeys => CALL_KEYS,
            Table::Tools | Table::Signed => return None,
        })
    }

    /// Its PostgreSQL (table, key column, value column); `Tools` keeps text, `Signed` has no
    /// value (read as empty bytes).
    pub(crate) fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Table::Meta => ("airlock_meta", "key", "value"),
            Table::Approvals => ("airlock_approvals", "id", "state"),
            Table::OpenApprovals => ("airlock_open_approvals", "id", "entry"),
            Table::Tools => ("airlock_tools", "key", "hash"),
            Table::Held => ("airlock_held", "id", "state"),
            Table::Drift => ("airlock_drift", "key", "value"),
            Table::Signed => ("airlock_signed_calls", "call_id", ""),
            Table::Forwarded => ("airlock_forwarded", "call_id", "route"),
            Table::CallKeys => ("airlock_call_keys", "key", "entry"),
        }
    }

    /// Its PostgreSQL value as bytes, in a `SELECT`.
    pub(crate) fn sql_read(self) -> &'static str {
        match self {
            Table::Tools => "convert_to(hash, 'UTF8')",
            Table::Signed => "''::bytea",
            other => other.sql().2,
        }
    }

    /// Whether PostgreSQL records which replica last changed each row (`owner`): the work a
    /// replica that dies leaves to be adopted.
    pub(crate) fn owned(self) -> bool {
        matches!(self, Table::OpenApprovals | Table::Forwarded | Table::Held)
    }

    pub(crate) const ALL: [Table; 9] = [
        Table::Meta,
        Table::Approvals,
        Table::OpenApprovals,
        Table::Tools,
        Table::Held,
        Table::Drift,
        Table::Signed,
        Table::Forwarded,
        Table::CallKeys,
    ];
}
