//! `ledger copy` into a PostgreSQL target: rows as stored, then state and head together.

use super::super::error::LedgerError;
use super::super::schema::Table;
use super::Pg;

impl Pg {
    /// `ledger copy`: rows as stored, in one transaction.
    pub(super) fn copy_rows(&self, rows: Vec<(u64, Vec<u8>)>) -> Result<(), LedgerError> {
        self.write(move |c| {
            let seqs: Vec<i64> = rows
                .iter()
                .map(|(s, _)| i64::try_from(*s).unwrap_or(i64::MAX))
                .collect();
            let data: Vec<&[u8]> = rows.iter().map(|(_, b)| b.as_slice()).collect();
            c.execute(super::INSERT_ROWS, &[&seqs, &data]).map(|_| ())
        })
    }

    /// `ledger copy`: the state tables and the meta values (the head among them), together.
    pub(super) fn copy_state(
        &self,
        state: Vec<(Table, String, Vec<u8>)>,
    ) -> Result<(), LedgerError> {
        self.write(move |c| {
            let mut tx = c.transaction()?;
            // an older redb ledger may not have its open-approvals index yet: then neither has this
            tx.execute(
                "DELETE FROM airlock_meta WHERE key = 'approvals_indexed'",
                &[],
            )?;
            for (table, key, value) in &state {
                let sql = match table {
                    Table::Meta => "INSERT INTO airlock_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    Table::Approvals => "INSERT INTO airlock_approvals (id, state) VALUES ($1, $2)",
                    Table::OpenApprovals => "INSERT INTO airlock_open_approvals (id, entry) VALUES ($1, $2)",
                    Table::Tools => "INSERT INTO airlock_tools (key, hash) VALUES ($1, convert_from($2, 'UTF8'))",
                    Table::Held => "INSERT INTO airlock_held (id, state) VALUES ($1, $2)",
                    Table::Drift => "INSERT INTO airlock_drift (key, value) VALUES ($1, $2)",
                    Table::Signed => "INSERT INTO airlock_signed_calls (call_id) SELECT $1 WHERE $2::bytea IS NOT NULL",
                    Table::Forwarded => "INSERT INTO airlock_forwarded (call_id, route) VALUES ($1, $2)",
                    Table::CallKeys => "INSERT INTO airlock_call_keys (key, entry) VALUES ($1, $2)",
                };
                tx.execute(sql, &[key, value])?;
            }
            tx.commit()
        })
    }
}
