//! `serve`'s desk, started: calls the previous run forwarded without an outcome recorded as
//! `unknown`, the rug-pull guard over the tools served now, approvals, held calls and pauses
//! (with the rate-limit counters) reloaded onto the one desk, the seal's key chain, the other
//! replicas joined.
//!
//! It must never decide, forward or refuse a call, nor listen for anyone: it builds and reloads
//! what the gate and the pages then use.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::task::JoinHandle;

use super::Opened;
use airlock::approval::Approvals;
use airlock::config::Setup;
use airlock::desk::{Desk, Started};
use airlock::drift::meter::Meter;
use airlock::drift::pauses::Pauses;
use airlock::forward::Forwarder;
use airlock::ledger::{Ledger, Replicated};
use airlock::live::{self, Live};
use airlock::mcp::downstream::ToolServers;
use airlock::quarantine::Quarantine;
use airlock::quarantine::notice::Notices;

/// The one desk started, with what every later step shares.
pub(super) struct Desked {
    pub(super) servers: Arc<ToolServers>,
    pub(super) forwarder: Forwarder,
    /// The ledger's side shared with other replicas, if it is shared.
    pub(super) shared: Option<Arc<dyn Replicated>>,
    pub(super) live: Arc<Live>,
    pub(super) approvals: Arc<Approvals>,
    pub(super) quarantine: Arc<Quarantine>,
    pub(super) pauses: Arc<Pauses>,
    pub(super) desk: Arc<Desk>,
    /// What waits for a decision, as reloaded.
    pub(super) waiting: Started,
    /// Keeping up with the other replicas, if the ledger is shared.
    pub(super) replicas: Option<JoinHandle<()>>,
}

/// Record what the previous run left unrecorded, guard the tools, reload what waits for a
/// decision onto the one desk, and join the other replicas.
pub(super) async fn start_desk(
    setup: &Arc<Setup>,
    opened: &Opened,
    servers: ToolServers,
    base_url: &str,
) -> anyhow::Result<Desked> {
    let servers = Arc::new(servers);
    let forwarder = Forwarder::new(
        opened.ledger.clone(),
        servers.clone(),
        opened.sealer.clone(),
    )
    .outcome_before_reply(setup.config.outcome_before_reply);
    // Sharing the ledger with other replicas, only what dead replicas left is recorded (below).
    let shared = opened.ledger.replicated();
    if shared.is_none() {
        record_unknown_outcomes(&forwarder).await?;
    }
    let (live, changed) = guard_tools(setup, &opened.ledger, &servers).await?;
    let parts = assemble_desk(
        opened,
        &servers,
        &forwarder,
        &live,
        base_url,
        shared.as_ref(),
    )?;
    let waiting = parts
        .desk
        .start()
        .await
        .context("cannot reload what waits for a decision (approvals, held calls)")?;
    // The seal's key chain: what waits is sealed again once an epoch and the file drops older keys.
    tokio::spawn(parts.desk.clone().run_seal_chain(opened.sealer.clone()));
    let replicas = join_replicas(shared.as_ref(), &opened.ledger, &parts, &forwarder).await?;
    let voided = parts.approvals.void_changed(&changed).await;
    if voided > 0 {
        tracing::warn!(
            voided,
            "pending approvals voided because their tool changed"
        );
    }
    Ok(Desked {
        servers,
        forwarder,
        shared,
        live,
        approvals: parts.approvals,
        quarantine: parts.quarantine,
        pauses: parts.pauses,
        desk: parts.desk,
        waiting,
        replicas,
    })
}

/// Calls forwarded by the previous run with no recorded outcome: recorded as `unknown`.
async fn record_unknown_outcomes(forwarder: &Forwarder) -> anyhow::Result<()> {
    let unknown = forwarder
        .record_unknown_outcomes_left()
        .await
        .context("cannot record the outcome of calls a previous run left unrecorded")?;
    if unknown > 0 {
        tracing::warn!(
            unknown,
            "calls forwarded by the previous run have no recorded outcome (it stopped in between): recorded as `unknown`"
        );
    }
    Ok(())
}

/// The rug-pull guard: compare what the servers present with what was reviewed. Returns what
/// calls are decided by (a changed tool quarantined) and the changed tools.
async fn guard_tools(
    setup: &Arc<Setup>,
    ledger: &Ledger,
    servers: &ToolServers,
) -> anyhow::Result<(Arc<Live>, BTreeSet<(String, String)>)> {
    let changed = live::guard(setup, ledger, &servers.tools(), &Default::default())
        .await
        .context("cannot record tool definitions")?;
    for ((server, tool), c) in &changed {
        tracing::warn!(%server, %tool, was = %c.was, now = %c.now, "tool definition changed: quarantined until reviewed (pin the new definition_hash in its manifest)");
    }
    let changed_keys = changed.keys().cloned().collect();
    Ok((Arc::new(Live::new(setup.clone(), changed)), changed_keys))
}

/// Every kind of item a person decides, and the meter the pauses stand on.
struct DeskParts {
    approvals: Arc<Approvals>,
    quarantine: Arc<Quarantine>,
    meter: Arc<Meter>,
    pauses: Arc<Pauses>,
    desk: Arc<Desk>,
}

/// Build approvals, held calls and pauses (the rate-limit counters reloaded) and the one desk
/// for every human decision: one start for every kind of item.
fn assemble_desk(
    opened: &Opened,
    servers: &Arc<ToolServers>,
    forwarder: &Forwarder,
    live: &Arc<Live>,
    base_url: &str,
    shared: Option<&Arc<dyn Replicated>>,
) -> anyhow::Result<DeskParts> {
    let (ledger, key, mailer) = (&opened.ledger, &opened.key, &opened.mailer);
    let approvals = Approvals::new(
        live.clone(),
        ledger.clone(),
        servers.clone(),
        forwarder.clone(),
        mailer.clone(),
        key.clone(),
        base_url.to_string(),
    );
    let quarantine = Arc::new(Quarantine::new(
        ledger.clone(),
        forwarder.clone(),
        live.clone(),
        key.clone(),
    ));
    quarantine.tell_with(Notices::new(
        live.clone(),
        ledger.clone(),
        mailer.clone(),
        key.clone(),
        base_url.to_string(),
    ));
    let meter = Meter::load_as(ledger.drift()?, shared.map(|r| r.replica()))
        .map_err(|e| anyhow::anyhow!("cannot reload rate-limit counters: {e}"))?;
    let meter = Arc::new(meter);
    let pauses = Arc::new(Pauses::new(
        meter.clone(),
        ledger.clone(),
        live.clone(),
        mailer.clone(),
        key.clone(),
        base_url.to_string(),
    ));
    let desk = Desk::new(
        approvals.clone(),
        quarantine.clone(),
        pauses.clone(),
        live.clone(),
        ledger.clone(),
    );
    Ok(DeskParts {
        approvals,
        quarantine,
        meter,
        pauses,
        desk,
    })
}

/// Sharing the ledger: take back this replica's own leftovers and any dead replica's, then
/// keep up with the others.
async fn join_replicas(
    shared: Option<&Arc<dyn Replicated>>,
    ledger: &Arc<Ledger>,
    parts: &DeskParts,
    forwarder: &Forwarder,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(shared) = shared else {
        return Ok(None);
    };
    let parts = airlock::replica::Parts {
        ledger: ledger.clone(),
        desk: parts.desk.clone(),
        forwarder: forwarder.clone(),
        meter: parts.meter.clone(),
    };
    airlock::replica::join(shared, &parts)
        .await
        .map_err(anyhow::Error::msg)
        .context("cannot join the other replicas")?;
    Ok(Some(tokio::spawn(airlock::replica::run(
        shared.clone(),
        parts,
    ))))
}
