//! How a refused call is recorded under the policy's `refused_per_minute`: whole, or — past an
//! agent's budget for the minute — only counted ([`crate::refusals`], pure), each minute's count
//! becoming one `refused_counted` row, written with the next recorded call, by the minute's
//! ticker, or at a clean stop.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::reply::{refusal_message, refused};
use super::{Gate, Reply};
use crate::decide::Decision;
use crate::ledger::Row;
use crate::ledger::{Change, NewRow};
use crate::refusals::{Counted, Refusals, Tally};

/// The gate's refused-call windows.
#[derive(Default)]
pub(super) struct Budget(Mutex<Refusals>);

/// One refused call, for its tally.
pub(super) struct Refusing<'a> {
    pub actor: &'a str,
    pub tool: &'a str,
    pub call_id: &'a str,
    pub decision: &'a Decision,
    pub limit: u32,
    /// Its rows must be written anyway (they start a pause): never only counted.
    pub must_record: bool,
    pub now: DateTime<Utc>,
}

fn rows_of(counted: Vec<Counted>, limit: u32, now: DateTime<Utc>) -> Vec<NewRow> {
    counted
        .into_iter()
        .map(|c| NewRow::at("", now, Row::RefusedCounted(c.body(limit))))
        .collect()
}

impl Gate {
    /// Tally a refused call: `None` when it is recorded (the counts now due are added to
    /// `rows`), or the reply when it is only counted (nothing of it is written).
    pub(super) fn tally_refused(&self, r: &Refusing<'_>, rows: &mut Vec<NewRow>) -> Option<Reply> {
        if self.budget(r.actor, r.tool, r.limit, r.now, r.must_record, rows) {
            return None;
        }
        let message = format!(
            "{} This agent is over the {} refused calls a minute the policy records one by one (`refused_per_minute`): this one is only counted, in the minute's `refused_counted` row.",
            refusal_message(r.tool, r.decision),
            r.limit
        );
        Some(refused(r.call_id, r.decision, message))
    }

    /// Tally one refused call of `actor`: true when it is recorded (the counts now due are added
    /// to `rows`), false when it is only counted (the counts due are written on their own).
    pub(super) fn budget(
        &self,
        actor: &str,
        tool: &str,
        limit: u32,
        now: DateTime<Utc>,
        must_record: bool,
        rows: &mut Vec<NewRow>,
    ) -> bool {
        let (tally, due) = {
            let mut r = self.refusals.0.lock().unwrap_or_else(|e| e.into_inner());
            match must_record {
                // recorded whole, so neither spending the budget nor counted
                true => (Tally::Record, r.due(now)),
                false => r.tally(actor, tool, limit, now),
            }
        };
        let due = rows_of(due, limit, now);
        if tally == Tally::Record {
            rows.extend(due);
            return true;
        }
        if !due.is_empty() {
            self.write_counts(due);
        }
        false
    }

    /// Write the counts of minutes past (every count with `all`, at a clean stop).
    pub async fn record_counted(&self, all: bool) {
        let now = crate::instant::now();
        let limit = self.live.snapshot().0.policy.refused_per_minute;
        let counted = {
            let mut r = self.refusals.0.lock().unwrap_or_else(|e| e.into_inner());
            if all { r.all() } else { r.due(now) }
        };
        if counted.is_empty() {
            return;
        }
        if let Err(e) = self.ledger.append(rows_of(counted, limit, now)).await {
            tracing::error!(error = %e, "cannot record the count of refused calls");
        }
    }

    /// Write each minute's counts once it is over, until the process ends.
    pub async fn count_every_minute(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            self.record_counted(false).await;
        }
    }

    fn write_counts(&self, rows: Vec<NewRow>) {
        let pending = self.ledger.submit(Change {
            rows,
            ..Change::default()
        });
        tokio::spawn(async move {
            let done = match pending {
                Ok(p) => p.await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                tracing::error!(error = %e, "cannot record the count of refused calls");
            }
        });
    }
}
