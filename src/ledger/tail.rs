//! Reading the chain from where a reader left off: one row at a time by sequence number, and
//! the cursor each channel keeps in `meta` (committed with the row recording its delivery).
//!
//! Read-only: it never writes (a cursor moves in a [`super::Change`]).

use super::Ledger;
use super::chain::{Record, decode};
use super::error::LedgerError;
use super::schema::{Table, meta};

impl Ledger {
    /// Row `seq`, decoded: `None` if the ledger has no such row (past the head, or pruned);
    /// `Some(Err(why))` for a stored row that cannot be read.
    pub fn record(&self, seq: u64) -> Result<Option<Result<Record, String>>, LedgerError> {
        Ok(self
            .store
            .row(seq)?
            .map(|bytes| decode(&bytes).map_err(|f| f.to_string())))
    }

    /// The sequence number of the last row whose news `channel` was given, if it ever was.
    pub fn channel_cursor(&self, channel: &str) -> Result<Option<u64>, LedgerError> {
        let Some(bytes) = self
            .store
            .get(Table::Meta, &meta::channel_cursor(channel))?
        else {
            return Ok(None);
        };
        Ok(std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.parse().ok()))
    }
}
