//! What the desk keeps in memory about open approvals: a small entry per approval (the full state
//! stays in the ledger and is read on demand), and one timer wheel for all their deadlines.
//!
//! Memory and start-up therefore grow with the approvals still open, by a few dozen bytes each,
//! never with the approvals ever made. It must never hold an approval's envelope.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, Weak};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::Approvals;
use super::state::{Approval, Status};
use crate::desk::Phase;
use crate::ledger::{ItemKind, ItemState, LedgerError};

/// An open approval's index entry: in memory, and in the ledger's open-approvals table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub server: String,
    pub tool: String,
    /// The role asked at the current stage (absent in entries written before it was kept).
    #[serde(default)]
    pub role: String,
    /// The current stage's deadline.
    #[serde(with = "crate::instant::serde_rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// Approved, its execution under way (its intent is durable).
    pub executing: bool,
    /// Some approver of the current stage has not been mailed yet.
    pub unsent: bool,
}

impl Entry {
    /// Where the approval stands in the desk's one lifecycle (an entry is never done).
    pub fn phase(&self) -> Phase {
        if self.executing {
            Phase::Executing
        } else {
            Phase::Waiting
        }
    }

    /// The entry of an open approval; `None` once it is finished.
    pub fn of(a: &Approval) -> Option<Entry> {
        let executing = match a.status {
            Status::Pending => false,
            Status::Executing { .. } => true,
            Status::Done(_) => return None,
        };
        Some(Entry {
            server: a.envelope.server.clone(),
            tool: a.envelope.tool_name.clone(),
            role: a.envelope.role.clone(),
            expires_at: a.envelope.expires_at,
            executing,
            unsent: !a.unsent.is_empty(),
        })
    }
}

/// The approval's state as stored, with its index entry. Failing to encode it fails the commit:
/// an approval is never written as missing.
pub fn stored(a: &Approval) -> Result<ItemState, LedgerError> {
    let encode = |what: &str, e: serde_json::Error| LedgerError::Encode {
        what: format!("approval {} {what}", a.id),
        message: e.to_string(),
    };
    // an ended approval keeps no sealed values, whichever path ended it
    let state = match (&a.status, &a.sealed) {
        (crate::approval::state::Status::Done(_), Some(_)) => {
            let mut ended = a.clone();
            ended.sealed = None;
            serde_json::to_vec(&ended)
        }
        _ => serde_json::to_vec(a),
    }
    .map_err(|e| encode("state", e))?;
    let open = match Entry::of(a) {
        Some(entry) => Some(serde_json::to_vec(&entry).map_err(|e| encode("entry", e))?),
        None => None,
    };
    Ok(ItemState::of(ItemKind::Approval, &a.id, state, open))
}

/// What comes due at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    /// The stage's timeout.
    Timeout,
    /// The stage's reminder to its undecided approvers.
    Reminder,
}

/// Deadlines of every open approval's stage (its timeout, its reminder), in one ordered set
/// served by one task. A stale deadline (the approval moved on or ended) fires harmlessly: the
/// timeout and reminder rules check the state.
#[derive(Default)]
pub(super) struct Timers {
    due: StdMutex<BTreeSet<(DateTime<Utc>, String, Due)>>,
    wake: Notify,
    started: std::sync::atomic::AtomicBool,
}

impl Timers {
    /// Time out approval `id` at `at` (or as soon as possible if `at` has passed).
    pub fn arm(self: &Arc<Self>, desk: &Arc<Approvals>, at: DateTime<Utc>, id: &str) {
        self.arm_for(desk, at, id, Due::Timeout);
    }

    /// Have `due` of approval `id` at `at`.
    pub fn arm_for(self: &Arc<Self>, desk: &Arc<Approvals>, at: DateTime<Utc>, id: &str, due: Due) {
        self.due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((at, id.to_string(), due));
        if !self.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(run(self.clone(), Arc::downgrade(desk)));
        }
        self.wake.notify_one();
    }

    /// How many deadlines are waiting (stale ones included).
    pub fn len(&self) -> usize {
        self.due.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The earliest deadline, removed if it has come.
    fn next(&self, now: DateTime<Utc>) -> Next {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        match due.first() {
            None => Next::Idle,
            Some((at, _, _)) if *at > now => Next::Wait(*at - now),
            Some(_) => match due.pop_first() {
                Some((_, id, what)) => Next::Fire(id, what),
                None => Next::Idle,
            },
        }
    }
}

enum Next {
    Idle,
    Wait(TimeDelta),
    Fire(String, Due),
}

/// The timer task: sleep until the earliest deadline (or a new one), time it out, repeat. Ends
/// when the desk is gone. Boxed with a declared `Send` type: a timeout can arm the next stage.
fn run(timers: Arc<Timers>, desk: Weak<Approvals>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        loop {
            let wait = match timers.next(crate::instant::now()) {
                Next::Fire(id, what) => {
                    let Some(d) = desk.upgrade() else { return };
                    match what {
                        Due::Timeout => d.time_out(&id).await,
                        Due::Reminder => d.remind(&id).await,
                    }
                    continue;
                }
                Next::Wait(w) => w.to_std().unwrap_or_default(),
                Next::Idle => std::time::Duration::from_secs(3600),
            };
            if desk.strong_count() == 0 {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = timers.wake.notified() => {}
            }
        }
    })
}
