//! Read-only access for auditors: `ledger export` and `ledger verify`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::chain::{Fault, GENESIS, Record, Verifier, decode};
use super::{DRIFT, HELD, LedgerError, META, ROWS, json_table, storage};

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    /// Rows that verified, in order from 1.
    pub rows: u64,
    pub head: String,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// The first bad sequence number and why, if any.
    pub first_bad: Option<BadRow>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BadRow {
    pub seq: u64,
    pub fault: Fault,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Read-only access for `ledger export` and `ledger verify`.
pub struct LedgerReader {
    db: ReadOnlyDatabase,
    path: PathBuf,
}

impl LedgerReader {
    pub fn open(path: &Path) -> Result<LedgerReader, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Missing(path.to_path_buf()));
        }
        let read_only = || {
            ReadOnlyDatabase::open(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::InUse(path.to_path_buf()),
                other => storage(path, other),
            })
        };
        let db = match ReadOnlyDatabase::open(path) {
            // Not closed cleanly (a crash): a read-only open cannot repair redb's allocator state.
            // Opening it writable once runs redb's repair (no row is touched), then read as usual.
            Err(redb::DatabaseError::RepairAborted) => {
                drop(Database::open(path).map_err(|e| storage(path, e))?);
                read_only()?
            }
            Ok(db) => db,
            Err(_) => read_only()?,
        };
        Ok(LedgerReader {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Every held call's last committed state (for `airlock quarantine list` without a gate).
    pub fn held(&self) -> Result<Vec<serde_json::Value>, LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        Ok(json_table(&tx, HELD, &self.path)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every drift counter and pause (for `airlock drift list` without a gate).
    pub fn drift(&self) -> Result<Vec<(String, serde_json::Value)>, LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        json_table(&tx, DRIFT, &self.path)
    }

    /// Every row in sequence order, undecoded rows reported as errors.
    pub fn records(
        &self,
        mut each: impl FnMut(Result<Record, (u64, String)>),
    ) -> Result<(), LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        let table = match tx.open_table(ROWS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(storage(&self.path, e)),
        };
        for item in table.iter().map_err(|e| storage(&self.path, e))? {
            let (k, v) = item.map_err(|e| storage(&self.path, e))?;
            each(decode(v.value()).map_err(|f| (k.value(), f.to_string())));
        }
        Ok(())
    }

    /// Recompute the whole chain and report the first bad row, if any.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        let mut v = Verifier::default();
        let mut report = VerifyReport {
            rows: 0,
            head: hex::encode(GENESIS),
            first_time: None,
            last_time: None,
            first_bad: None,
        };
        let table = match tx.open_table(ROWS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(storage(&self.path, e)),
        };
        if let Some(table) = table {
            for item in table.iter().map_err(|e| storage(&self.path, e))? {
                let (k, val) = item.map_err(|e| storage(&self.path, e))?;
                match v.check(k.value(), val.value()) {
                    Ok(r) => {
                        if report.first_time.is_none() {
                            report.first_time = Some(r.time.clone());
                        }
                        report.last_time = Some(r.time);
                    }
                    Err(fault) => {
                        report.first_bad = Some(BadRow {
                            seq: v.rows() + 1,
                            fault,
                        });
                        break;
                    }
                }
            }
        }
        report.rows = v.rows();
        report.head = hex::encode(v.head());
        if report.first_bad.is_none() {
            // The head recorded with the last commit must be the last row we verified.
            let recorded = match tx.open_table(META) {
                Ok(meta) => meta
                    .get("head")
                    .map_err(|e| storage(&self.path, e))?
                    .map(|g| String::from_utf8_lossy(g.value()).into_owned()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(storage(&self.path, e)),
            };
            let ours = format!("{}:{}", report.rows, report.head);
            let recorded = match recorded {
                None if report.rows > 0 => Some("none".to_string()),
                other => other,
            };
            if let Some(head) = recorded.filter(|h| *h != ours) {
                let fault = match head
                    .split_once(':')
                    .and_then(|(n, _)| n.parse::<u64>().ok())
                {
                    Some(n) if n > report.rows => Fault::Truncated,
                    _ => Fault::Altered,
                };
                report.first_bad = Some(BadRow {
                    seq: report.rows + 1,
                    fault,
                });
            }
        }
        Ok(report)
    }
}
