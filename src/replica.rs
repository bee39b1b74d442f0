//! Several replicas on one PostgreSQL ledger: what one replica does to keep up with the others.
//!
//! Owns the replica's loop: a heartbeat every [`BEAT`]; adopting the work of replicas silent for
//! [`DEAD_AFTER`] (their unsent approval mail, their interrupted executions and releases, their
//! unsettled forwarded calls), each adopted by exactly one replica; and following the approval changes the
//! others announce (LISTEN/NOTIFY), so an agent waiting here hears a decision posted there; and
//! the other replicas' rate-limit counters and pauses, read every beat. It acts only on work it
//! adopted; a replica merely slow for [`DEAD_AFTER`] is taken for dead, and then the ledger's
//! conditional commits, not this loop's timing, keep each verdict and execution single (the slow
//! replica's late outcome rows are still recorded).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::desk::Desk;
use crate::drift::meter::Meter;
use crate::forward::Forwarder;
use crate::ledger::Ledger;
use crate::ledger::{Adopted, Notice, Replicated};

/// How often a replica says it is alive.
pub const BEAT: Duration = Duration::from_secs(1);
/// How long a replica may be silent before the others adopt its work.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);

/// Say this replica is alive and adopt what dead replicas left (once, before serving).
pub async fn join(shared: &Arc<dyn Replicated>, parts: &Parts) -> Result<(), String> {
    beat(shared, parts, true).await
}

/// What the loop keeps in step with the other replicas.
pub struct Parts {
    pub ledger: Arc<Ledger>,
    /// The one desk: its approvals follow the others; what a dead replica left is adopted.
    pub desk: Arc<Desk>,
    pub forwarder: Forwarder,
    pub meter: Arc<Meter>,
}

/// Keep up with the other replicas until the task is dropped.
pub async fn run(shared: Arc<dyn Replicated>, parts: Parts) {
    let mut notices = shared.listen();
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = beat(&shared, &parts, false).await {
                    tracing::warn!(error = %e, "replica heartbeat failed; retrying");
                }
                // the other replicas' rate-limit counters, and pauses and resumes made there
                let l = parts.ledger.clone();
                match tokio::task::spawn_blocking(move || l.drift()).await {
                    Ok(Ok(entries)) => parts.meter.lock().absorb(entries),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the shared rate-limit counters"),
                    Err(e) => tracing::warn!(error = %e, "cannot read the shared rate-limit counters"),
                }
            }
            notice = notices.recv() => match notice {
                Some(Notice::Approval(id)) => parts.desk.approvals().refresh(&id).await,
                Some(Notice::Resync) => {
                    if let Err(e) = parts.desk.follow().await {
                        tracing::warn!(error = %e, "cannot reload the open approvals after reconnecting");
                    }
                }
                None => return,
            },
        }
    }
}

/// With `own`, also take back what this replica's previous run left.
async fn beat(shared: &Arc<dyn Replicated>, parts: &Parts, own: bool) -> Result<(), String> {
    let db = shared.clone();
    let adopted: Adopted = tokio::task::spawn_blocking(move || db.heartbeat(DEAD_AFTER, own))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if adopted.replicas.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        replicas = ?adopted.replicas,
        approvals = adopted.approvals.len(),
        calls = adopted.forwarded.len(),
        held = adopted.held.len(),
        "adopting the work of replicas that stopped answering"
    );
    let marks: Vec<(String, Value)> = adopted
        .forwarded
        .into_iter()
        .map(|(id, route)| (id, serde_json::from_slice(&route).unwrap_or(Value::Null)))
        .collect();
    // The work is this replica's now (recorded in the same transaction); do it beside the
    // heartbeat, never in its way (mail may be slow, and a late beat looks like a death).
    let (desk, forwarder) = (parts.desk.clone(), parts.forwarder.clone());
    let work = async move {
        if let Err(e) = forwarder.record_unknown_outcomes(marks).await {
            tracing::error!(error = %e, "cannot record the unknown outcomes of an adopted replica's calls");
        }
        // the desk's one adoption path: executing → outcome_unknown, waiting → re-armed
        if let Err(e) = desk.adopt(adopted.approvals, adopted.held).await {
            tracing::error!(error = %e, "cannot take over an adopted replica's held calls");
        }
    };
    if own {
        // at start, before serving: done before the gate takes calls
        work.await;
    } else {
        tokio::spawn(work);
    }
    Ok(())
}
